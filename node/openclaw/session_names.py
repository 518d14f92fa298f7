"""OpenClaw's session keys and ids as the node can name them.

The node names a session by a valid session key and holds only valid text in an event;
OpenClaw's keys and ids need not be either (too long, control characters, a lone
surrogate from a file name that is not UTF-8). ``session_key_for`` gives a session's
clawsync key (OpenClaw's key under ``agent:<agentId>:``) and ``nameable`` the key or id
an event holds, each a short hash (``openclaw-<BLAKE2b-128 hex>``) where the value
itself cannot be: the same on every device and at every run, so a session keeps one name.
"""

from __future__ import annotations

import hashlib

from crdt.errors import InvalidInput
from crdt.keys import check_name, check_session_key
from crdt.kinds import text as checked_text

#: Bytes of the hash that stands for a name (``digest_of``): 128 bits, so that no two of
#: an agent's sessions or files share it.
DIGEST_BYTES = 16


def session_key_for(agent_id: str, openclaw_session_key: str) -> str:
    """The clawsync session key of an OpenClaw session key: the key itself when it is
    OpenClaw's usual ``agent:<agentId>:...`` form (the seed's form too), else the key
    behind ``agent:<agentId>:``; a key that would not be a valid clawsync key (too long,
    control characters) becomes ``agent:<agentId>:openclaw-<BLAKE2b-128 hex>``.

    >>> session_key_for("main", "agent:main:explicit:s1")
    'agent:main:explicit:s1'
    >>> session_key_for("main", "s1")
    'agent:main:s1'
    """
    check_name(agent_id, "agent_id")
    prefix = f"agent:{agent_id}:"
    key = openclaw_session_key
    if not key.startswith(prefix):
        key = prefix + key
    try:
        return check_session_key(key)
    except InvalidInput:
        return check_session_key(prefix + _hashed(openclaw_session_key))


def nameable(value: str) -> str:
    """OpenClaw's session key or id ``value`` as events can name it: itself, or, where it
    is not valid text (a lone surrogate: a ``.jsonl``'s name with a byte that is not
    UTF-8, as Python reads it, or a ``\\udcff`` escape in ``sessions.json``, as
    JavaScript writes a string cut inside a surrogate pair), ``openclaw-<BLAKE2b-128
    hex>``, as ``session_key_for`` hashes a key: the same at every run, and the
    session's clawsync key is the one ``session_key_for`` gives ``value``. No event can
    hold a lone surrogate: each record of the session failed, and its agent's import
    at every run.

    >>> nameable("s1"), nameable("s" + chr(0xDCFF))[:9]
    ('s1', 'openclaw-')
    """
    try:
        return checked_text(value, "session")
    except InvalidInput:
        return _hashed(value)


def _hashed(text: str) -> str:
    """``openclaw-`` and ``digest_of(text)``: what stands for a key or an id no event can
    name."""
    return f"openclaw-{digest_of(text)}"


def digest_of(text: str) -> str:
    """The BLAKE2b hash of ``text`` (``DIGEST_BYTES``, in hex) that stands for a name the
    node cannot hold as it is: here, and in a cursor's entry (``cursor_room.hashed``).
    Its lone surrogates (a file name that is not UTF-8) are hashed as they are.

    >>> len(digest_of("s1")), digest_of("s" + chr(0xDCFF)) != digest_of("s" + chr(0xDCFE))
    (32, True)
    """
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"),
                           digest_size=DIGEST_BYTES).hexdigest()
