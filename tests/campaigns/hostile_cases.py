"""Generated hostile input for the hostile-input campaign: each generator takes a seeded
``random.Random`` and the target's particulars, and returns one case to send.

An HTTP case is the raw bytes of one request (``Connection: close``), so that input
aiohttp's client would refuse to send (non-UTF-8 headers, broken framing) still goes out.
A websocket case is a handshake (path and headers) and the frames sent after it.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import cbor2

#: Endpoints that want a credential, for authentication probes.
GUARDED = ("/v1/sessions", "/v1/events", "/v1/events?after=0&limit=5", "/metrics",
           "/v1/peers", "/v1/origins", "/peer/v1/members", "/peer/v1/ws", "/automerge",
           "/v1/sessions/seed%3A0", "/v1/sessions/seed%3A0/events",
           "/v1/sessions/seed%3A0/automerge")
#: Bytes of the decompressed gzip bomb (its compressed form is about 1/1000 of it).
BOMB_BYTES = 256 * 1024 * 1024


@dataclass
class Target:
    """What the generators need to know about the node under attack."""

    host: str
    token: str
    secret: str
    automerge_rw: str
    automerge_ro: str
    node_id: str
    head: int
    session_keys: list[str]
    document_ids: list[str]
    body_bytes_max: int
    bomb: bytes = b""


@dataclass
class HttpCase:
    what: str
    raw: bytes
    #: A POST that may store events: the answer's events are counted as accepted writes.
    writes: bool = False

    def session_key(self) -> str | None:
        """The session a POST names in its path (None if the path is not an append's)."""
        parts = self.raw.split(b" ", 2)
        path = parts[1].decode(errors="replace") if len(parts) > 2 else ""
        if not (path.startswith("/v1/sessions/") and path.endswith("/events")):
            return None
        return unquote(path.removeprefix("/v1/sessions/").removesuffix("/events"))

    def events_max(self) -> int:
        """How many events this request could store at most, were it accepted: what its
        body holds, once decoded (a request left unanswered may have been stored)."""
        if not self.writes:
            return 0
        head, _, body = self.raw.partition(b"\r\n\r\n")
        if b"chunked" in head.lower():
            return 1
        try:
            if b"content-encoding: gzip" in head.lower() or b"x-gzip" in head.lower():
                body = gzip.decompress(body)
            elif b"content-encoding: deflate" in head.lower():
                body = zlib.decompress(body)
            value = json.loads(body)
        except (ValueError, OSError, EOFError, zlib.error, RecursionError):
            return 0
        return len(value) if isinstance(value, list) else 1


@dataclass
class WsCase:
    what: str
    path: str
    headers: dict[str, str]
    frames: list[bytes | str] = field(default_factory=list)


Case = HttpCase | WsCase


def request(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None,
            body: bytes = b"", *, host: str, length: bool = True) -> bytes:
    """A raw HTTP/1.1 request; header names and values are bytes, sent as they are."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + host.encode(),
             b"Connection: close"]
    lines += [name + b": " + value for name, value in headers or []]
    if length and body is not None and (body or method in ("POST", "PUT")):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def bearer(token: str) -> tuple[bytes, bytes]:
    return b"Authorization", b"Bearer " + token.encode()


def make_bomb() -> bytes:
    """``BOMB_BYTES`` of zeros, gzipped (compressed once, then reused)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    chunk = bytes(1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))]
    return b"".join(parts) + compressor.flush()


# -- building blocks -----------------------------------------------------------------------


def event(rng: random.Random, content: str = "hi") -> dict[str, Any]:
    return {"agent_id": f"agent{rng.randrange(3)}",
            "kind": {"type": "message_received", "content": content}}


def control_text(rng: random.Random, chars: int) -> str:
    """Characters JSON must escape (control characters) and some that are awkward."""
    alphabet = [chr(c) for c in range(32)] + ["\u2028", "\u2029", "\x7f", "\"", "\\",
                                              "\ufeff", "\U0001f600", "\u0301"]
    return "".join(rng.choice(alphabet) for _ in range(chars))


def deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def wrong_event(rng: random.Random) -> Any:
    """An event with one field of a wrong type or shape."""
    base: Any = event(rng)
    choice = rng.randrange(14)
    if choice == 0:
        base["agent_id"] = rng.choice([1, None, [], {}, True, 1.5, "", "a" * 100_000])
    elif choice == 1:
        base["kind"] = rng.choice([None, "message_received", [], 7, {"type": None}])
    elif choice == 2:
        base["kind"]["type"] = rng.choice(["", "x" * 10_000, 5, ["a"], "unknown_kind"])
    elif choice == 3:
        base["kind"]["content"] = rng.choice([None, 5, {"a": 1}, [1, 2], 1e308])
    elif choice == 4:
        base["hlc"] = rng.choice([[-1, 0], [2**63, 0], [2**70, 2**70], "now", [1], None,
                                  [1.5, 0], [0, -1], [253402300799999, 0]])
    elif choice == 5:
        base["id"] = rng.choice(["00" * 32, "zz", 5, None])
    elif choice == 6:
        del base["agent_id"]
    elif choice == 7:
        base = rng.choice([None, 1, "event", [], [[]], True])
    elif choice == 8:
        base["kind"]["content"] = deep(rng.randint(50, 500), "{\"a\":", "}")
    elif choice == 9:
        base["extra" * rng.randint(1, 50)] = {"nested": list(range(rng.randint(1, 2000)))}
    elif choice == 10:
        base["kind"] = {"type": "state_changed", "key": rng.choice(["", None, "k" * 5000]),
                        "value": rng.choice([None, [], {"x": [1] * 100}])}
    elif choice == 11:
        base["kind"] = {"type": "tool_result", "tool_name": 5, "result": None,
                        "success": "yes"}
    elif choice == 12:
        base["session_key"] = rng.choice(["other", 5, None])
    else:
        base["kind"]["content"] = control_text(rng, rng.randint(1, 200))
    return base


# -- HTTP bodies ---------------------------------------------------------------------------


def body_case(rng: random.Random, t: Target) -> Case:
    key = quote(f"hostile:{rng.randrange(8)}", safe="")
    path = f"/v1/sessions/{key}/events"
    choice = rng.randrange(12)
    valid = json.dumps([event(rng) for _ in range(rng.randint(1, 5))]).encode()
    if choice == 0:
        what, body = "truncated JSON", valid[: rng.randrange(1, len(valid))]
    elif choice == 1:
        what, body = "random bytes", rng.randbytes(rng.randint(1, 4096))
    elif choice == 2:
        what, body = "bad JSON literal", rng.choice(
            [b"{", b"[,]", b"NaN", b"[Infinity]", b"[1e999999]", b"\"\\ud800\"",
             b"\xef\xbb\xbf[]", valid + b"garbage", b"[" + b"1," * 10 + b"]", b"",
             b"[{\"agent_id\": \"\xff\xfe\", \"kind\": {\"type\": \"message_received\"}}]"])
    elif choice == 3:
        depth = rng.choice([1000, 10_000, 100_000, 1_000_000])
        what, body = f"nesting {depth}", deep(depth).encode()
    elif choice == 4:
        size = t.body_bytes_max + rng.randint(1, 1024 * 1024)
        what = "body over body_bytes_max"
        body = json.dumps([event(rng, "x" * (size // 4))] * 4).encode()
    elif choice == 5:
        count = rng.choice([1001, 5000, 50_000])
        what, body = f"{count} events", json.dumps([event(rng)] * count).encode()
    elif choice in (6, 7):
        what = "wrong types"
        body = json.dumps([wrong_event(rng) for _ in range(rng.randint(1, 3))]).encode()
    elif choice == 8:
        what = "control characters"
        body = json.dumps([event(rng, control_text(rng, rng.randint(1, 5000)))]).encode()
    elif choice == 9:
        what = "invalid UTF-8 in a string"
        body = valid.replace(b"hi", rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80",
                                                  b"\x00", b"\xf4\x90\x80\x80"]), 1)
    elif choice == 10:
        what = "wrong Content-Type"
        content_type = rng.choice([b"text/plain", b"application/x-www-form-urlencoded",
                                   b"multipart/form-data; boundary=x", b"\xff/\xfe"])
        return HttpCase(what, request("POST", path, [bearer(t.token),
                                                     (b"Content-Type", content_type)],
                                      valid, host=t.host), writes=True)
    else:
        what = "odd session key"
        bad = rng.choice(["%00", "%ff%fe", "a" * 20_000, "..%2F..%2Fetc", "%E2%80%AE",
                          quote("é" * 100), "%", "%zz", ""])
        path = f"/v1/sessions/{bad}/events"
        body = valid
    headers = [bearer(t.token), (b"Content-Type", b"application/json")]
    return HttpCase(what, request("POST", path, headers, body, host=t.host), writes=True)


# -- headers and request lines -------------------------------------------------------------


def bad_credential(rng: random.Random, t: Target) -> bytes:
    choice = rng.randrange(12)
    if choice == 0:
        return b"Bearer \xff"
    if choice == 1:
        return b"Bearer " + bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randint(1, 40)))
    if choice == 2:
        return b"Bearer " + t.token.encode() + b"\xff"
    if choice == 3:
        return b"Bearer " + t.token.encode()[:-1]
    if choice == 4:
        return b"Bearer " + "é".encode("latin-1") + t.token.encode()
    if choice == 5:
        return b"Bearer " + "ü€".encode() * rng.randint(1, 500)
    if choice == 6:
        return rng.choice([b"Basic dXNlcjpwYXNz", b"Bearer", b"Bearer  ", b"bearer",
                           b"Token " + t.token.encode(), b"\xff\xfe"])
    if choice == 7:
        return b"Bearer " + b"a" * rng.choice([1000, 8000, 60_000])
    if choice == 8:
        return b"Bearer " + t.secret.encode()  # the cluster secret on the client API
    if choice == 9:
        return b"Bearer " + t.automerge_ro.encode()
    if choice == 10:
        return b"Bearer \t" + t.token.encode()[:8] + b"\x7f"
    return b"Bearer " + rng.randbytes(rng.randint(1, 64)).replace(b"\r", b"").replace(b"\n", b"")


def header_case(rng: random.Random, t: Target) -> Case:
    path = rng.choice(GUARDED)
    choice = rng.randrange(10)
    if choice <= 3:
        credential = shown = bad_credential(rng, t)
        for secret in (t.token, t.secret, t.automerge_ro):  # not printed in the report
            shown = shown.replace(secret.encode(), b"<secret>")
        return HttpCase(f"bad credential {shown[:24]!r} on {path}", request(
            "GET", path, [(b"Authorization", credential)], host=t.host))
    if choice == 4:
        token = rng.choice(["%ff", "%ff%fe", "%00", "%C3%28", "%" + "e9" * 3, "%u00e9"])
        return HttpCase("bad query token", request("GET", f"/automerge?token={token}",
                                                   host=t.host))
    if choice == 5:
        size = rng.choice([9000, 70_000, 1_000_000])
        return HttpCase(f"header of {size} bytes", request(
            "GET", path, [bearer(t.token), (b"X-Big", b"a" * size)], host=t.host))
    if choice == 6:
        count = rng.choice([150, 1000, 10_000])
        headers = [(f"X-H{n}".encode(), b"v") for n in range(count)]
        return HttpCase(f"{count} headers", request("GET", path, headers, host=t.host))
    if choice == 7:
        raw = rng.choice([
            b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/9.9\r\nConnection: close\r\n\r\n",
            b"BREW /v1/sessions HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"GET http://evil/v1/sessions HTTP/1.1\r\nConnection: close\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS hello
            b"GET / HTTP/1.1\r\nBad Header\r\nConnection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n folded\r\nConnection: close\r\n\r\n",
            b"POST /v1/sessions/a/events HTTP/1.1\r\nContent-Length: 5\r\n"
            b"Content-Length: 7\r\nConnection: close\r\n\r\n[]",
            b"POST /v1/sessions/a/events HTTP/1.1\r\nContent-Length: -1\r\n"
            b"Connection: close\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-N\x00: v\r\nConnection: close\r\n\r\n",
            b"\r\n\r\n\r\n",
            b"GET /healthz HTTP/1.0\r\n\r\n",
        ])
        return HttpCase("bad request line or framing", raw)
    if choice == 8:
        value = rng.choice([b"\xff", b"a" * 5000, b"", b"node\x01", "n\u00e9".encode()])
        headers = [bearer(t.secret), (b"X-Clawsync-Node", value),
                   (b"X-Clawsync-Advertise", rng.choice([b"\xff", b"javascript:x", b"http://"]))]
        return HttpCase("odd peer handshake headers", request("GET", "/peer/v1/ws", headers,
                                                              host=t.host))
    query = rng.choice(["after=-1", "limit=1000000000", "limit=abc", "after=1e99",
                        "after=99999999999999999999999", "limit=-5", "after=%ff",
                        "limit=0", "after=0&after=1", "limit=" + "9" * 5000])
    endpoint = rng.choice(["/v1/events", "/v1/sessions", "/v1/sessions/seed%3A0/events"])
    return HttpCase("odd query", request("GET", f"{endpoint}?{query}", [bearer(t.token)],
                                         host=t.host))


# -- encodings -----------------------------------------------------------------------------


def encoding_case(rng: random.Random, t: Target) -> Case:
    key = quote(f"hostile:{rng.randrange(8)}", safe="")
    path = f"/v1/sessions/{key}/events"
    valid = json.dumps([event(rng)]).encode()
    headers = [bearer(t.token), (b"Content-Type", b"application/json")]
    choice = rng.randrange(8)
    if choice <= 1:
        encoding = rng.choice([b"gzip", b"deflate", b"x-gzip", b"br", b"gzip, deflate"])
        what, body = f"{encoding.decode()} on a plain body", valid
    elif choice == 2:
        encoding = b"gzip"
        packed = gzip.compress(valid)
        what, body = "truncated gzip", packed[: rng.randrange(1, len(packed))]
    elif choice == 3:
        encoding, what, body = b"gzip", "gzip bomb", t.bomb
    elif choice == 4:
        encoding = rng.choice([b"foo", b"identity, foo", b"\xff", b"compress"])
        what, body = "unknown encoding", valid
    elif choice == 5:
        encoding, what = b"gzip", "valid gzip"
        body = gzip.compress(valid)
    elif choice == 6:
        chunked = rng.choice([b"zz\r\nabc\r\n0\r\n\r\n", b"5\r\nab\r\n0\r\n\r\n",
                              b"ffffffffffffffff\r\n[]\r\n0\r\n\r\n", b"0\r\n\r\n",
                              hex(len(valid))[2:].encode() + b"\r\n" + valid
                              + b"\r\n0\r\n\r\n"])
        raw = request("POST", path, [*headers, (b"Transfer-Encoding", b"chunked")], chunked,
                      host=t.host, length=False)
        return HttpCase("chunked framing", raw, writes=True)
    else:
        charset = rng.choice([b"utf-16", b"latin-1", b"ebcdic", b"\xff"])
        body = valid.decode().encode("utf-16") if charset == b"utf-16" else \
            valid.replace(b"hi", b"h\xe9")
        raw = request("POST", path, [bearer(t.token), (b"Content-Type",
                                                       b"application/json; charset=" + charset)],
                      body, host=t.host)
        return HttpCase("charset", raw, writes=True)
    raw = request("POST", path, [*headers, (b"Content-Encoding", encoding)], body,
                  host=t.host)
    return HttpCase(what, raw, writes=True)


# -- peer frames ---------------------------------------------------------------------------


def odd_version(rng: random.Random, t: Target) -> Any:
    choice = rng.randrange(9)
    if choice == 0:
        return {f"made-up-{n}": rng.randint(1, 10) for n in range(rng.choice([10, 5000]))}
    if choice == 1:
        return {t.node_id: rng.choice([-1, 2**64, 2**63, 1.5, "3", None])}
    if choice == 2:
        return {rng.choice(["", "a" * 5000, "\x00", "é", "n/../x"]): 1}
    if choice == 3:
        return rng.choice([[], None, "v", 5, [[t.node_id, 1]]])
    if choice == 4:
        return {5: 1, b"bytes": 2}
    if choice == 5:
        return {t.node_id: t.head + rng.randint(1, 1000)}  # numbers ahead of the node itself
    if choice == 6:
        return {"x": {"nested": {"deep": 1}}}
    if choice == 7:
        return {t.node_id: 0}
    return {}


def peer_frame(rng: random.Random, t: Target) -> tuple[str, bytes | str]:
    choice = rng.randrange(11)
    if choice == 10:  # claims numbers of the node's own origin it never wrote
        return "hello, the node's own origin ahead", cbor2.dumps({
            "type": "hello", "protocol": 1, "node": "hostile",
            "version": {t.node_id: t.head + rng.randint(1, 1000)}})
    if choice == 0:
        return "random bytes", rng.randbytes(rng.randint(1, 2048))
    if choice == 1:
        return "CBOR not a map", cbor2.dumps(rng.choice([[], 1, "hello", None, b"x"]))
    if choice == 2:
        return "hello, odd version", cbor2.dumps({"type": "hello", "protocol": 1,
                                                  "node": "hostile", "version":
                                                  odd_version(rng, t)})
    if choice == 3:
        return "hello, odd protocol", cbor2.dumps({
            "type": "hello", "protocol": rng.choice([0, 2, -1, "1", 2**70, None]),
            "node": rng.choice(["hostile", t.node_id, "", 5]), "version": {}})
    if choice == 4:
        item = rng.choice([[], ["o"], ["o", 1, b"\xff"], ["o", -1, b""], [t.node_id,
                                                                          t.head + 1,
                                                                          rng.randbytes(100)],
                           ["o", 1, cbor2.dumps({"id": "x"})], "item", None])
        return "events, bad items", cbor2.dumps({"type": "events", "items": [item] *
                                                 rng.choice([1, 600])})
    if choice == 5:
        return "ack, odd version", cbor2.dumps({"type": "ack", "version": odd_version(rng, t)})
    if choice == 6:
        return "unknown type", cbor2.dumps({"type": rng.choice(["bye", "", None, 5]),
                                            "x": 1})
    if choice == 7:
        return "text frame", rng.choice(["hello", "{\"type\": \"hello\"}", "\x00" * 100])
    if choice == 8:
        return "deep CBOR", b"\x81" * rng.choice([100, 10_000]) + b"\x00"
    return "oversized frame", b"\xa1\x61x\x5a" + (2_000_000).to_bytes(4, "big") \
        + bytes(2_000_000)


def peer_case(rng: random.Random, t: Target) -> Case:
    frames = []
    whats = []
    for _ in range(rng.randint(1, 3)):
        what, frame = peer_frame(rng, t)
        whats.append(what)
        frames.append(frame)
    headers = {"Authorization": f"Bearer {t.secret}", "X-Clawsync-Node": "hostile"}
    return WsCase("peer: " + ", ".join(whats), "/peer/v1/ws", headers, frames)


# -- Automerge frames ----------------------------------------------------------------------


def automerge_frame(rng: random.Random, t: Target) -> tuple[str, bytes | str]:
    doc = rng.choice([*t.document_ids, "not-a-doc", "", "2rPXk7WCZuV9W9C4pNhWXz4JezQ6"])
    choice = rng.randrange(9)
    if choice == 0:
        return "random bytes", rng.randbytes(rng.randint(1, 2048))
    if choice == 1:
        return "CBOR not a map", cbor2.dumps(rng.choice([[], 1, "join", None]))
    if choice == 2:
        return "join, odd versions", cbor2.dumps({
            "type": "join", "senderId": rng.choice(["p", "", "x" * 1000, 5]),
            "peerMetadata": rng.choice([{}, None, [], {"x": [1] * 600}]),
            "supportedProtocolVersions": rng.choice([["99"], [], None, "1", [1]])})
    if choice in (3, 4):
        data = rng.choice([rng.randbytes(rng.randint(0, 512)), b"", b"\x42",
                           b"\x42" + rng.randbytes(64), None, "text", 5])
        return "sync, bad message", cbor2.dumps({
            "type": rng.choice(["sync", "request"]), "senderId": "p", "targetId": "server",
            "documentId": doc, "data": data})
    if choice == 5:
        return "ephemeral, odd", cbor2.dumps({
            "type": "ephemeral", "senderId": "p", "targetId": "server", "documentId": doc,
            "count": rng.choice([-1, 2**70, "x"]), "sessionId": 5, "data": b"\xff"})
    if choice == 6:
        return "text frame", "garbage"
    if choice == 7:
        return "tagged CBOR", cbor2.dumps(cbor2.CBORTag(55799, {"type": "join"}))
    return "many items", cbor2.dumps({"type": "sync", "data": list(range(5000))})


def automerge_case(rng: random.Random, t: Target) -> Case:
    token = rng.choice([t.automerge_rw, t.automerge_ro, t.token])
    join = cbor2.dumps({"type": "join", "senderId": "hostile-app",
                        "peerMetadata": {"isEphemeral": True},
                        "supportedProtocolVersions": ["1"]})
    frames: list[bytes | str] = [join] if rng.random() < 0.7 else []
    whats = []
    for _ in range(rng.randint(1, 3)):
        what, frame = automerge_frame(rng, t)
        whats.append(what)
        frames.append(frame)
    return WsCase("automerge: " + ", ".join(whats), f"/automerge?token={token}", {}, frames)


#: Categories of single cases, with their relative weights.
GENERATORS = {
    "bodies": (body_case, 4),
    "headers": (header_case, 4),
    "encodings": (encoding_case, 2),
    "peer frames": (peer_case, 2),
    "automerge frames": (automerge_case, 2),
}
