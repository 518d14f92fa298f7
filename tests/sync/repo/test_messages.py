"""sync.repo.messages: the automerge-repo frames, and the token table of sync.repo.connection."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest

from sync.errors import PeerFault
from sync.repo.config import Access, parse_tokens
from sync.repo.messages import (
    ITEMS_MAX,
    Ephemeral,
    Join,
    Other,
    Sync,
    encode_ephemeral,
    encode_error,
    encode_peer,
    encode_sync,
    parse_frame,
)
from tests.support.automerge import text_id

DOC = text_id("s1")


def frame(**fields: Any) -> bytes:
    return bytes(cbor2.dumps(fields))


def test_a_join_as_automerge_repo_sends_it() -> None:
    # cbor-x writes ``undefined`` for a storage id the client does not have.
    raw = frame(type="join", senderId="peer-x", supportedProtocolVersions=["1"],
                peerMetadata={"storageId": cbor2.undefined, "isEphemeral": True})
    assert parse_frame(raw) == Join("peer-x", ("1",), {"storageId": None, "isEphemeral": True})
    assert parse_frame(frame(type="join", senderId="p")) == Join("p", None, {})


def test_sync_request_and_others() -> None:
    data = b"\x42\x00\x00\x00\x00"
    for kind in ("sync", "request"):
        parsed = parse_frame(frame(type=kind, senderId="p", targetId="n", documentId=DOC,
                                   data=data, extra="ignored"))
        assert parsed == Sync(kind, "p", "n", DOC, data)
    assert parse_frame(frame(type="remote-heads-changed", senderId="p", targetId="n")) == Other(
        "remote-heads-changed", "p", "n")


def test_what_we_send_parses_back() -> None:
    assert parse_frame(encode_sync("n", "p", DOC, b"\x42")) == Sync("sync", "n", "p", DOC,
                                                                    b"\x42")
    message = Ephemeral("p", "n", DOC, 3, "sess", b"\x01")
    assert parse_frame(encode_ephemeral(message, "q")) == Ephemeral("p", "q", DOC, 3, "sess",
                                                                    b"\x01")
    peer = cbor2.loads(encode_peer("n", "p", {"isEphemeral": False}))
    assert peer == {"type": "peer", "senderId": "n", "targetId": "p",
                    "selectedProtocolVersion": "1", "peerMetadata": {"isEphemeral": False}}
    assert len(cbor2.loads(encode_error("n", "p", "x" * 10_000))["message"]) == 512


GOOD = {"type": "sync", "senderId": "p", "targetId": "n", "documentId": DOC, "data": b"\x42"}


@pytest.mark.parametrize(("change", "field"), [
    ({"type": 1}, "type"),
    ({"type": "bogus"}, "type"),
    ({"senderId": ""}, "senderId"),
    ({"senderId": "x" * 257}, "senderId"),
    ({"targetId": None}, "targetId"),
    ({"documentId": "automerge:" + DOC}, "documentId"),
    ({"documentId": DOC[:-1] + "x"}, "documentId"),
    ({"data": "text"}, "data"),
    ({"data": b""}, "data"),
])
def test_bad_fields_are_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(PeerFault) as info:
        parse_frame(frame(**{**GOOD, **change}))
    assert info.value.field == field


@pytest.mark.parametrize("raw", [
    cbor2.dumps([1, 2]),
    cbor2.dumps({1: 2}),
    cbor2.dumps({"type": "sync", "data": cbor2.CBORTag(2, b"\x01")}),
    cbor2.dumps({"a": list(range(ITEMS_MAX))}),
    b"\xa1\x61a\x61b\x00",  # trailing
    b"\xa2\x61a\x01\x61a\x02",  # duplicate key
    b"\xf8\x20",  # simple value 32
    b"\x5a\xff\xff\xff\xff",  # byte string longer than the frame
    frame(type="ephemeral", senderId="p", targetId="n", documentId=DOC, count=-1,
          sessionId="s", data=b"\x01"),
    frame(type="join", senderId="p", supportedProtocolVersions="1"),
    frame(type="join", senderId="p", peerMetadata=[1]),
])
def test_malformed_frames_are_refused(raw: bytes) -> None:
    with pytest.raises(PeerFault):
        parse_frame(raw)


def test_token_table() -> None:
    table = parse_tokens({"read-only-token": {"sessions": ["tg:*"], "read_only": True},
                          "everything-token": {}})
    assert table["read-only-token"] == Access(("tg:*",), True)
    assert table["everything-token"].allows("anything")
    assert not table["read-only-token"].allows("web:alice")


@pytest.mark.parametrize("raw", [
    [], {"short": {}}, {"long-enough": []}, {"long-enough": {"sessions": "tg:*"}},
    {"long-enough": {"sessions": [""]}}, {"long-enough": {"read_only": "yes"}},
    {"long-enough": {"other": 1}},
    {" padded-token": {}}, {"padded-token\n": {}},  # a header's value loses the spaces
])
def test_bad_token_tables(raw: Any) -> None:
    with pytest.raises(ValueError) as refused:
        parse_tokens(raw)
    for token in raw if isinstance(raw, dict) else ():
        assert token.strip()[:4] not in str(refused.value)  # a secret: never shown


@pytest.mark.parametrize(("second", "said"), [
    ({"second-token": {"read_only": "yes"}}, "'read_only' must be"),
    ({"short": {}}, "a token must be a string of at least 8 characters"),
    ({"second-token ": {}}, "its token begins or ends with white space"),
])
def test_a_bad_entry_is_named_by_its_place(second: dict[str, Any], said: str) -> None:
    with pytest.raises(ValueError, match=rf"^token 2 of the table: {said}"):
        parse_tokens({"first-token": {}, **second})


def test_what_a_node_sends_a_client() -> None:
    from sync.repo.messages import Error, Peer, encode_join, parse_node_frame

    assert parse_node_frame(encode_peer("n", "p", {})) == Peer("n", "p", "1")
    assert parse_node_frame(encode_error("n", "p", "bye")) == Error("n", "p", "bye")
    assert parse_node_frame(encode_sync("n", "p", DOC, b"\x42")) == Sync("sync", "n", "p",
                                                                         DOC, b"\x42")
    with pytest.raises(PeerFault):
        parse_node_frame(encode_join("p"))  # nodes do not join clients
    request = parse_frame(encode_sync("p", "n", DOC, b"\x42", kind="request"))
    assert isinstance(request, Sync) and request.kind == "request"
