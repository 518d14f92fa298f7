"""Session keys: the seed's structured form, or any opaque key within limits.

>>> build_session_key("main", "telegram", "bot123", "dm", "user456")
'agent:main:telegram:bot123:dm:user456'
>>> check_session_key("")
Traceback (most recent call last):
...
crdt.errors.InvalidInput: session_key: must not be empty
"""

from __future__ import annotations

import re
from typing import TypeGuard

from crdt.errors import InvalidInput, LimitExceeded

#: Longest session key, in UTF-8 bytes. Keys travel in URLs and in every event.
SESSION_KEY_BYTES_MAX = 512
#: What a session key may be, in words (the commands' refusal of an empty one).
SESSION_KEYS_SAID = f"1 to {SESSION_KEY_BYTES_MAX} UTF-8 bytes"
#: Longest agent id, state key or tool name, in UTF-8 bytes.
NAME_BYTES_MAX = 256
#: Deepest nesting of arrays and maps accepted from outside (``crdt.codec``, and event
#: values in ``crdt.kinds``). Session events are shallow; a tool's JSON parameters rarely
#: exceed ten levels. Deep nesting only costs stack. Here, in a module without cbor2, so
#: that ``crdt.kinds`` (which ``clawsync append --help`` lists) needs no codec.
DEPTH_MAX = 32

PEER_TYPES = ("dm", "group", "channel", "thread")
#: Unicode's control characters (category Cc, fixed since Unicode 1.1): C0, DEL and C1.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def check_name(value: object, field: str, *, bytes_max: int = NAME_BYTES_MAX) -> str:
    """Return ``value`` if it is a non-empty string of printable characters within limits."""
    if not isinstance(value, str):
        raise InvalidInput(f"must be a string, not {type_name(value)}", field=field)
    if not value:
        raise InvalidInput("must not be empty", field=field)
    size = utf8_len(value, field)
    if size > bytes_max:
        raise LimitExceeded(f"is {size} bytes; the limit is {bytes_max}", field=field)
    if CONTROL.search(value):
        raise InvalidInput("must not contain control characters", field=field)
    return value


def is_name(value: object, *, bytes_max: int = NAME_BYTES_MAX) -> TypeGuard[str]:
    """Whether ``check_name`` takes ``value``: for a caller that keeps or drops it, and
    has no field to blame.

    >>> is_name("entry"), is_name("e" * 257), is_name("a" + chr(1)), is_name("a" + chr(0xDCFF))
    (True, False, False, False)
    """
    try:
        check_name(value, "", bytes_max=bytes_max)
    except InvalidInput:
        return False
    return True


def check_session_key(value: object, field: str = "session_key") -> str:
    """Validate an opaque session key: ``SESSION_KEYS_SAID`` (1 to
    ``SESSION_KEY_BYTES_MAX`` UTF-8 bytes), no control characters."""
    return check_name(value, field, bytes_max=SESSION_KEY_BYTES_MAX)


def build_session_key(
    agent_id: str, channel: str, account_id: str, peer_type: str, peer_id: str
) -> str:
    """The seed's ``SessionKey::build``: ``agent:<agent>:<channel>:<account>:<type>:<peer>``."""
    if peer_type not in PEER_TYPES:
        raise InvalidInput(f"must be one of {', '.join(PEER_TYPES)}", field="peer_type")
    parts = {"agent_id": agent_id, "channel": channel, "account_id": account_id,
             "peer_id": peer_id}
    for field, part in parts.items():
        if ":" in check_name(part, field):
            raise InvalidInput("must not contain ':'", field=field)
    return check_session_key(f"agent:{agent_id}:{channel}:{account_id}:{peer_type}:{peer_id}")


def utf8_len(value: str, field: str) -> int:
    """UTF-8 length of ``value``; lone surrogates (possible via JSON escapes) are refused."""
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("is not valid Unicode (lone surrogate)", field=field) from None


def type_name(value: object) -> str:
    """The JSON name of a value's type (``integer``, ``null``), for error messages."""
    return {type(None): "null", bool: "boolean", int: "integer", float: "number",
            str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)
