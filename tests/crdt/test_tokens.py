"""Automerge tokens issued by a device (crdt.tokens): the 2P-set rule, the same book
whatever the order of the records, only hashes in the records, malformed records count
for nothing, and bound origins when asked."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import tokens
from crdt.clock import Hlc
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import Draft, Event
from crdt.membership import DEVICES_SESSION, TOKEN_ISSUED
from crdt.tokens import Book

SECRETS_AND_DRAFTS = [tokens.issue(["tg:*"], read_only=n % 2 == 0, name=f"t{n}")
                      for n in range(3)]
IDS = [draft.payload["token_id"] for _, draft in SECRETS_AND_DRAFTS]


def _state(book: Book) -> tuple[object, object]:
    return ({t.token_id: t for t in book.valid()},
            {token_id: (r.origin, r.at) for token_id, r in book.revoked.items()})


# An event has one origin (here: by its timestamp, so that copies agree).
record = st.builds(
    lambda revoke, n, ms: (f"o{ms % 2}", (
        tokens.revoke(IDS[n]) if revoke else SECRETS_AND_DRAFTS[n][1]).seal(Hlc(ms, 0))),
    st.booleans(), st.integers(0, 2), st.integers(1, 30))


@settings(max_examples=200)
@given(st.lists(record, max_size=10),
       st.randoms(use_true_random=False))
def test_any_order_gives_the_same_book(records: list[tuple[str, Event]],
                                       rnd: random.Random) -> None:
    book = Book()
    for origin, event in records:
        book.take(event, origin)
    shuffled = Book()
    for origin, event in rnd.sample(records, len(records)) * 2:  # twice: duplicates too
        shuffled.take(event, origin)
    assert _state(book) == _state(shuffled)
    for token_id in IDS:  # 2P-set: revoked once, revoked for good
        revoked = any(e.kind == "token_revoked" and e.payload["token_id"] == token_id
                      for _, e in records)
        assert book.is_revoked(token_id) == revoked


DEVICE_OF = {"o0": "D0", "o1": "D1"}  # each origin bound to its device
step = st.one_of(st.tuples(st.just("take"), record),
                 st.tuples(st.just("remove"), st.sampled_from(sorted(DEVICE_OF.values()))))


def _expected(steps: list[tuple[str, object]]) -> dict[str, str]:
    """The rule, read straight off the records and the removed devices."""
    records = [item for kind, item in steps if kind == "take"]
    removed = {item for kind, item in steps if kind == "remove"}
    out = {}
    for token_id in IDS:
        issuers = {DEVICE_OF[origin] for origin, e in records  # type: ignore[misc]
                   if e.kind == "token_issued" and e.payload["token_id"] == token_id}
        if any(e.kind == "token_revoked" and e.payload["token_id"] == token_id
               for _, e in records):  # type: ignore[misc]
            out[token_id] = "revoked"
        elif issuers & removed:  # any signer of an issue of it (one, unless forged)
            out[token_id] = "issuer removed"
        else:
            out[token_id] = "valid"
    return out


@settings(max_examples=200)
@given(st.lists(step, max_size=12), st.randoms(use_true_random=False))
def test_a_removed_device_revokes_its_tokens_in_any_order(
        steps: list[tuple[str, object]], rnd: random.Random) -> None:
    """A token is valid iff issued, not revoked and its issuer not removed: the same
    whichever comes first, records or removals, and each revocation (by a record or a
    removal) is told once."""
    expected = _expected(steps)
    for order in (steps, rnd.sample(steps, len(steps)) * 2):
        book = Book(bound=DEVICE_OF.get)
        told: list[str] = []
        for kind, item in order:
            if kind == "take":
                origin, event = item  # type: ignore[misc]
                valid = {t.token_id for t in book.valid()}
                revoked = book.take(event, origin)
                assert revoked is None or revoked in valid
                told += [revoked] if revoked is not None else []
            else:
                told += book.remove_devices({item})  # type: ignore[arg-type]
        assert {token_id: book.state(token_id) for token_id in IDS} == expected
        assert {t.token_id for t in book.valid()} \
            == {t for t, state in expected.items() if state == "valid" and t in book.issued}
        assert all(book.is_revoked(t) == (state != "valid") for t, state in expected.items())
        # Told once each (a token refused is never valid again), and only of tokens
        # issued and valid until then.
        assert len(told) == len(set(told))
        assert all(expected[t] != "valid" for t in told)


def test_a_removal_revokes_only_its_devices_tokens() -> None:
    phone_secret, phone = tokens.issue(["*"], name="phone app")
    laptop_secret, laptop = tokens.issue(["*"], name="laptop app")
    book = Book(bound={"op": "PHONE", "ol": "LAPTOP"}.get)
    book.take(phone.seal(Hlc(1, 0)), "op")
    book.take(laptop.seal(Hlc(2, 0)), "ol")
    phone_token, laptop_token = book.find(phone_secret), book.find(laptop_secret)
    assert phone_token is not None and laptop_token is not None
    assert phone_token.device_id == "PHONE"
    assert book.remove_devices(["PHONE", "ELSEWHERE"]) == [phone_token.token_id]
    assert book.remove_devices(["PHONE"]) == []  # told once
    assert book.state(phone_token.token_id) == "issuer removed"
    assert book.state(laptop_token.token_id) == "valid"
    assert [t.token_id for t in book.valid()] == [laptop_token.token_id]
    book.take(tokens.revoke(phone_token.token_id).seal(Hlc(3, 0)), "ol")
    assert book.state(phone_token.token_id) == "revoked"  # a revocation shows first


def test_without_bindings_no_removal_names_an_issuer() -> None:
    secret, draft = tokens.issue(["*"])
    book = Book()
    book.take(draft.seal(Hlc(1, 0)), "o1")
    assert book.remove_devices(["o1", "DEVICE"]) == []
    found = book.find(secret)
    assert found is not None and not book.is_revoked(found.token_id)


def test_a_revocation_before_its_issue_still_revokes() -> None:
    secret, draft = tokens.issue(["*"])
    book = Book()
    book.take(tokens.revoke(draft.payload["token_id"]).seal(Hlc(1, 0)), "o1")
    book.take(draft.seal(Hlc(2, 0)), "o2")
    found = book.find(secret)
    assert found is not None and book.is_revoked(found.token_id)
    assert list(book.valid()) == []


def test_the_record_holds_the_hash_not_the_secret() -> None:
    secret, draft = tokens.issue(["tg:*", "web:bob", "tg:*"], read_only=True, name="app")
    event = draft.seal(Hlc(1, 0))
    assert secret.encode() not in event.canonical
    assert event.session_key == DEVICES_SESSION and event.kind == TOKEN_ISSUED
    assert event.payload["sessions"] == ["tg:*", "web:bob"]  # duplicates dropped
    assert len(secret) >= 43  # 32 random bytes
    book = Book()
    book.take(event, "o1")
    assert book.find(secret + "x") is None and book.find("") is None
    assert book.find(secret) is not None


def test_two_issues_of_one_id_resolve_alike() -> None:
    first_secret, first = tokens.issue(["a*"])
    second_secret, _ = tokens.issue(["*"])
    forged = Draft(DEVICES_SESSION, "clawsync", TOKEN_ISSUED, {
        **first.payload, "token_sha256": tokens.digest(second_secret).hex(),
        "sessions": ["*"]})
    one, two = first.seal(Hlc(1, 0)), forged.seal(Hlc(2, 0))
    for order in ([one, two], [two, one]):
        book = Book()
        for event in order:
            book.take(event, "o1")
        assert book.find(first_secret) is not None and book.find(second_secret) is None


@pytest.mark.parametrize("change", [
    {"token_sha256": "secret-in-clear"}, {"token_id": "XYZ"}, {"sessions": []},
    {"sessions": "tg:*"}, {"read_only": "no"}, {"name": ""},
])
def test_malformed_records_count_for_nothing(change: dict[str, object]) -> None:
    _, draft = tokens.issue(["*"])
    bad = Draft(DEVICES_SESSION, "clawsync", TOKEN_ISSUED, {**draft.payload, **change})
    book = Book()
    book.take(bad.seal(Hlc(1, 0)), "o1")
    assert book.issued == {}


def test_records_of_unbound_origins_wait_for_their_binding() -> None:
    secret, draft = tokens.issue(["*"])
    bound: dict[str, str] = {}
    book = Book(bound=bound.get)
    book.take(draft.seal(Hlc(1, 0)), "o1")
    book.take(tokens.revoke(draft.payload["token_id"]).seal(Hlc(2, 0)), "o1")
    assert book.find(secret) is None
    bound["o1"] = "DEVICE"
    assert book.refresh() == [draft.payload["token_id"]]
    found = book.find(secret)
    assert found is not None and book.is_revoked(found.token_id)


@pytest.mark.parametrize(("sessions", "error"), [
    ([], InvalidInput), (["ok", ""], InvalidInput), (["a\x00"], InvalidInput),
    (["x" * (tokens.PATTERN_BYTES_MAX + 1)], LimitExceeded),
    (["p"] * (tokens.PATTERNS_MAX + 1), LimitExceeded),
])
def test_bad_patterns_are_refused(sessions: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        tokens.issue(sessions)


def test_bad_ids_are_refused() -> None:
    for bad in ("", "0123", "0123456789ABCDEF", "0123456789abcdef0", None):
        with pytest.raises(InvalidInput):
            tokens.revoke(bad)  # type: ignore[arg-type]
