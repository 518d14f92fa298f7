"""Automerge app tokens issued by a device: the records and the rule, as pure functions.

A token is issued and revoked by ordinary events in the session ``DEVICES_SESSION``, so
they replicate as every event does (and older nodes store and forward them as kinds they
do not know, ``crdt.kinds``):

    {"type": "token_issued", "token_id": <16 hex>, "token_sha256": <64 hex>,
     "sessions": [<fnmatch pattern>, ...], "read_only": <bool>, "name": <text>}
    {"type": "token_revoked", "token_id": <16 hex>}

The record holds the SHA-256 of the secret, never the secret: a node that holds the
record can check a token an app presents, and nothing it stores or sends lets anyone
make one. The secret is 32 random bytes (``secrets``), so a hash needs no salt.

The rule, the same on every node (a 2P-set, like the membership rule): a token is valid
iff some ``token_issued`` names its id, no ``token_revoked`` does, and the device that
issued it (the device its record's origin is bound to; any, of forged copies) is not
removed (``crdt.membership``). A revocation is final: a revoked id never comes back
(issue a new token instead), whether the revocation arrived before or after the issue,
or concurrently with it; so is a removal, which revokes every token the removed device
issued, whichever arrives first. Two issues of one id (which random ids make a forgery,
not an accident) resolve alike everywhere: the first by ``(timestamp, id)`` counts.

>>> secret, draft = issue(["tg:*"], read_only=True, name="reader")
>>> book = Book()
>>> book.take(draft.seal(Hlc(1_000, 0)), origin="o1")
>>> found = book.find(secret)
>>> found.sessions, found.read_only, found.name, book.is_revoked(found.token_id)
(('tg:*',), True, 'reader', False)
>>> book.take(revoke(found.token_id).seal(Hlc(2_000, 0)), origin="o2") == found.token_id
True
>>> book.is_revoked(found.token_id), book.find("not a token")
(True, None)
>>> secret, draft = issue(["*"], name="phone app")
>>> book = Book(bound={"o3": "PHONE"}.get)
>>> book.take(draft.seal(Hlc(3_000, 0)), origin="o3")
>>> book.remove_devices({"PHONE"}) == [book.find(secret).token_id]
True
>>> book.state(book.find(secret).token_id)
'issuer removed'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from crdt.clock import Hlc
from crdt.errors import InvalidInput, LimitExceeded
from crdt.events import Draft, Event
from crdt.keys import check_name, type_name
from crdt.membership import AGENT_ID, DEVICES_SESSION, TOKEN_ISSUED, TOKEN_REVOKED, Bound

#: Patterns one token may list: an app sees a handful of session families.
PATTERNS_MAX = 32
#: Longest pattern, in UTF-8 bytes: as a session key (``crdt.keys``).
PATTERN_BYTES_MAX = 512
#: Longest name, in UTF-8 bytes.
NAME_BYTES_MAX = 128
#: Valid tokens a node lets one more be issued beside: each app check compares the
#: presented token with every one (constant time), so the table stays small.
TOKENS_MAX = 1024
#: Random bytes in a token id (shown as hex) and in a secret (shown base64url).
ID_BYTES = 8
SECRET_BYTES = 32

_ID = re.compile(f"[0-9a-f]{{{2 * ID_BYTES}}}")
_SHA256 = re.compile("[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Issued:
    """A token as its ``token_issued`` record says, with who wrote it and when."""

    token_id: str
    sha256: bytes
    sessions: tuple[str, ...]
    read_only: bool
    name: str
    origin: str
    at: Hlc
    record_id: bytes
    #: The device ``origin`` is bound to (None: a ``Book`` without bindings).
    device_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """For people: everything but the hash."""
        return {"id": self.token_id, "name": self.name, "sessions": list(self.sessions),
                "read_only": self.read_only, "origin": self.origin,
                "issued_at": self.at.rfc3339()}


def digest(secret: str) -> bytes:
    """SHA-256 of a presented secret (any string a client can send, lone surrogates
    included, as ``node.http.auth`` reads it)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def check_token_id(value: object, field: str = "token_id") -> str:
    """A token id: 16 lowercase hex digits."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(f"must be {2 * ID_BYTES} lowercase hex digits", field=field)
    return value


def check_patterns(value: object, field: str = "sessions") -> tuple[str, ...]:
    """Session patterns (``fnmatch``: ``*`` any text, ``?`` one character): 1 to
    ``PATTERNS_MAX`` of them, each a valid session key as text; duplicates dropped."""
    if not isinstance(value, (list, tuple)):
        raise InvalidInput(f"must be an array of patterns, not {type_name(value)}",
                           field=field)
    if not value:
        raise InvalidInput("must list at least one pattern ('*' for every session)",
                           field=field)
    if len(value) > PATTERNS_MAX:
        raise LimitExceeded(f"{len(value)} patterns; the limit is {PATTERNS_MAX}",
                            field=field)
    patterns = [check_name(item, f"{field}[{i}]", bytes_max=PATTERN_BYTES_MAX)
                for i, item in enumerate(value)]
    return tuple(dict.fromkeys(patterns))


def issue(sessions: Iterable[str], *, read_only: bool = False, name: str = "app"
          ) -> tuple[str, Draft]:
    """A new secret and the record that issues it (stamped when appended). The secret
    is shown once to whoever asked, and kept nowhere."""
    patterns = check_patterns(list(sessions))
    if not isinstance(read_only, bool):
        raise InvalidInput(f"must be a boolean, not {type_name(read_only)}",
                           field="read_only")
    check_name(name, "name", bytes_max=NAME_BYTES_MAX)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    payload = {"token_id": secrets.token_hex(ID_BYTES),
               "token_sha256": digest(secret).hex(), "sessions": list(patterns),
               "read_only": read_only, "name": name}
    return secret, Draft(DEVICES_SESSION, AGENT_ID, TOKEN_ISSUED, payload)


def revoke(token_id: str) -> Draft:
    """The record that revokes ``token_id`` for good."""
    return Draft(DEVICES_SESSION, AGENT_ID, TOKEN_REVOKED,
                 {"token_id": check_token_id(token_id)})


def read_issued(event: Event, origin: str) -> Issued | None:
    """The token a well-formed ``token_issued`` event issues, else None (a record that
    only looks like one is kept as any event, and issues nothing)."""
    if event.kind != TOKEN_ISSUED or event.session_key != DEVICES_SESSION:
        return None
    payload = event.payload
    try:
        token_id = check_token_id(payload.get("token_id"))
        sessions = check_patterns(payload.get("sessions"))
        name = check_name(payload.get("name"), "name", bytes_max=NAME_BYTES_MAX)
    except InvalidInput:
        return None
    sha = payload.get("token_sha256")
    read_only = payload.get("read_only")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha) \
            or not isinstance(read_only, bool):
        return None
    return Issued(token_id, bytes.fromhex(sha), sessions, read_only, name, origin,
                  event.timestamp, event.id)


def read_revoked(event: Event) -> str | None:
    """The token id a well-formed ``token_revoked`` event revokes, else None."""
    if event.kind != TOKEN_REVOKED or event.session_key != DEVICES_SESSION:
        return None
    try:
        return check_token_id(event.payload.get("token_id"))
    except InvalidInput:
        return None


@dataclass(frozen=True, slots=True)
class Revoked:
    """Who revoked a token, and when (the first revocation by ``(timestamp, id)``)."""

    origin: str
    at: Hlc
    record_id: bytes


#: A token's state: ``valid``, ``revoked`` (a ``token_revoked`` names it) or ``issuer
#: removed`` (the device that issued it was removed; a revocation, if any, shows first).
State = Literal["valid", "revoked", "issuer removed"]


@dataclass(slots=True)
class Book:
    """The tokens the records taken so far issue and revoke; the same records in any
    order give the same book.

    With ``bound`` (``crdt.membership.Bound``: the device an origin is bound to, or
    None), as with membership records, a record counts only once its origin is bound
    to a device; records of origins not bound yet are kept aside until ``refresh``.
    Without it every record counts (a cluster whose nodes do not sign yet: the log
    holds only what the links' authentication let in), and no token has an issuing
    device that a removal could name.

    ``removed_devices`` are the devices known removed (``remove_devices``); a token one
    of them issued is revoked, so the book depends only on the records and that set.
    (Of two issues of one id, a forgery, a removed signer of either revokes it: so a
    token once refused never comes back, whatever arrives later.)
    """

    issued: dict[str, Issued] = field(default_factory=dict)
    revoked: dict[str, Revoked] = field(default_factory=dict)
    bound: Bound | None = None
    removed_devices: set[str] = field(default_factory=set)
    _unbound: dict[bytes, tuple[Event, str]] = field(default_factory=dict)
    #: Every device that signed an issue of each id (one, unless forged).
    _issuers: dict[str, set[str]] = field(default_factory=dict)

    def take(self, event: Event, origin: str) -> str | None:
        """Take in one event of ``DEVICES_SESSION`` (others, and other kinds, are
        ignored); the id of the token it revoked, if that token was issued and valid."""
        if event.kind not in (TOKEN_ISSUED, TOKEN_REVOKED):
            return None
        device = None if self.bound is None else self.bound(origin)
        if self.bound is not None and device is None:
            self._unbound[event.id] = (event, origin)
            return None
        self._unbound.pop(event.id, None)
        token = read_issued(event, origin)
        token_id = token.token_id if token is not None else read_revoked(event)
        if token_id is None:
            return None
        was_valid = token_id in self.issued and not self.is_revoked(token_id)
        if token is not None:
            if device is not None:
                token = replace(token, device_id=device)
                self._issuers.setdefault(token_id, set()).add(device)
            held = self.issued.get(token_id)
            if held is None or (token.at, token.record_id) < (held.at, held.record_id):
                self.issued[token_id] = token
        else:
            was = self.revoked.get(token_id)
            if was is None or (event.timestamp, event.id) < (was.at, was.record_id):
                self.revoked[token_id] = Revoked(origin, event.timestamp, event.id)
        return token_id if was_valid and self.is_revoked(token_id) else None

    def refresh(self) -> list[str]:
        """Take in again the records kept aside for want of a bound origin; the ids
        revoked by doing so."""
        revoked = {self.take(event, origin) for event, origin in list(self._unbound.values())}
        return sorted(token_id for token_id in revoked if token_id is not None)

    def remove_devices(self, devices: Iterable[str]) -> list[str]:
        """Take in devices known removed (a removal is final: the set only grows); the
        ids of the tokens revoked by doing so (those they issued, valid until now)."""
        new = set(devices) - self.removed_devices
        if not new:
            return []
        before = {token.token_id for token in self.valid()}
        self.removed_devices |= new
        return sorted(before - {token.token_id for token in self.valid()})

    def state(self, token_id: str) -> State:
        """``token_id``'s state (an id never issued, but revoked, is ``revoked``)."""
        if token_id in self.revoked:
            return "revoked"
        if not self._issuers.get(token_id, set()).isdisjoint(self.removed_devices):
            return "issuer removed"
        return "valid"

    def is_revoked(self, token_id: str) -> bool:
        """True if a ``token_revoked`` names it or the device that issued it was removed:
        either way no node takes it any more."""
        return self.state(token_id) != "valid"

    def valid(self) -> Iterator[Issued]:
        """The tokens issued and not revoked (nor issued by a removed device)."""
        return (token for token_id, token in self.issued.items()
                if not self.is_revoked(token_id))

    def find(self, secret: str) -> Issued | None:
        """The token (valid or revoked) whose secret is ``secret``, or None. Every
        token's hash is compared, in constant time, so the time taken tells nothing
        of which (or how much of one) matched."""
        given = digest(secret)
        found = None
        for token in self.issued.values():
            if hmac.compare_digest(given, token.sha256):
                found = token
        return found
