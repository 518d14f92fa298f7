"""Devices: each node's Ed25519 key, and the device id a person reads out and compares.

A device id is derived from the device's public key the way Syncthing derives its ids
(there from a certificate, here from the key itself):

1. ``SHA-256`` of the raw 32-byte Ed25519 public key (RFC 8032 encoding);
2. base32 of the 32-byte digest (RFC 4648 alphabet ``A-Z2-7``, no padding): 52 characters;
3. each of its four runs of 13 characters followed by a Luhn mod 32 check character
   (computed over that run, alphabet as in 2): 56 characters;
4. written as 8 groups of 7, joined by dashes.

The check characters catch every single mistyped character and most swaps of two
neighbours. ``parse_device_id`` takes what a person types: any case, dashes or spaces
anywhere or none, and ``0``, ``1``, ``8`` read as ``O``, ``I``, ``B`` (base32 has no
such digits).

>>> key = private_key_from_seed(bytes(range(32)))
>>> device_id(public_bytes(key))
'KZDVVJ2-UMNDUYL-AUF35O3-6K6KW4U-62MUJVR-A46TN3R-UQGZOVM-IHOCGAL'
>>> parse_device_id("kzdvvj2 umnduyl auf35o3 6k6kw4u 62mujvr a46tn3r uqgzovm ihocgal")
'KZDVVJ2-UMNDUYL-AUF35O3-6K6KW4U-62MUJVR-A46TN3R-UQGZOVM-IHOCGAL'
>>> parse_device_id("KZDVVJ2-UMNDUYL-AUF35O3-6K6KW4U-62MUJVR-A46TN3R-UQGZOVM-IHOCGAM")
Traceback (most recent call last):
...
crdt.errors.InvalidInput: device_id: check character 4 does not match: ... groups 7 and 8 ...

Two libraries, each for what it does best. ``cryptography`` holds a key as an object:
it makes new keys and reads and writes the key file (PKCS #8 PEM, and it names what
else a file holds: an encrypted key, a key of another kind). Signing and verifying go
through libsodium (PyNaCl's ``nacl.bindings``, in ``crdt.ed25519``), which takes raw
bytes and is faster: measured with 20,000 signatures of 80 bytes, the best of 8 rounds
of CPU time, 24 us per signature against 40, and 67 us per verification against 128
(``cryptography`` 50, OpenSSL 3; PyNaCl 1.6.2). Both are Ed25519 as RFC 8032 defines it and make the
same signature of the same key and bytes (signatures are deterministic), so keys,
signatures and files are what they were. ``cryptography`` costs about 40 ms of import
at start and is used nowhere per event.

Verification is stricter than OpenSSL's, for crafted inputs only. Both refuse a
signature whose ``S`` is not below the group order; libsodium also refuses a public key
of small order or in a non-canonical encoding, and a signature whose ``R`` has small
order. An honest device's key and signatures are never such points, so every signature
a device makes verifies on every node, of any version. What a cluster of mixed versions
may see: a signature made up on purpose, with ``R`` the identity point (by the key's
holder, who can pick ``S`` to fit), or under a small-order key that a ``device_key``
record (``crdt.log.bound``) binds an origin to (any signature with ``R`` the identity
and ``S`` zero fits). A node of an earlier version takes such an event; a node of this
version refuses it as forged (``sync.peer.signatures``) without raising, so that origin
stops there at that event, while every other origin replicates as before.

>>> secret = secret_key(key)
>>> signature = sign_bytes(secret, b"hello")
>>> [verifies(public_bytes(key), signature, text) for text in (b"hello", b"hullo")]
[True, False]
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from collections.abc import Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# Signing and checking on raw bytes live in a module of their own, which a process that
# only checks signatures imports without ``cryptography``; offered here as well.
from crdt.ed25519 import PUBLIC_KEY_BYTES as PUBLIC_KEY_BYTES
from crdt.ed25519 import SECRET_KEY_BYTES as SECRET_KEY_BYTES
from crdt.ed25519 import SIGNATURE_BYTES as SIGNATURE_BYTES
from crdt.ed25519 import sign_bytes as sign_bytes
from crdt.ed25519 import verifies as verifies
from crdt.ed25519 import verifies_many as verifies_many
from crdt.errors import InvalidInput
from crdt.keys import check_name

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
#: Characters of the base32 digest after which a check character follows (4 runs).
RUN_CHARS = 13
#: Characters of a group as written, and groups of a device id (8 x 7 = 4 x (13 + 1)).
GROUP_CHARS = 7
GROUPS = 8
ID_CHARS = GROUP_CHARS * GROUPS
#: Longest device name (``--name``), in UTF-8 bytes: shown beside ids in lists and hellos.
DEVICE_NAME_BYTES_MAX = 64
#: Characters a new device name may not hold, as ``(first, last)`` code points: they
#: hide text or reorder it, so a name holding one shows as another's, or backwards (the
#: zero-width space, the soft hyphen, the byte order mark, the invisible operators, the
#: bidirectional marks and controls, the Hangul fillers, which show as a blank or as
#: nothing outside the old jamo sequences no name is typed in, and the format controls
#: of musical notation and of Duployan shorthand, which show as nothing in a name), or
#: break it into lines (the line and paragraph separators). Invisible characters that
#: spell words stay allowed: the zero-width non-joiner (Persian, Urdu), the joiner and
#: variation selectors of emoji, the tags of a flag such as Scotland's; ``name_key``
#: drops them, so they cannot make a second name that reads as one held.
HIDING_CHARS = ((0x00AD, 0x00AD), (0x061C, 0x061C), (0x115F, 0x1160), (0x180E, 0x180E),
                (0x200B, 0x200B), (0x200E, 0x200F), (0x2028, 0x202E), (0x2060, 0x206F),
                (0x3164, 0x3164), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB),
                (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A))
#: Unicode's default-ignorable code points (DerivedCoreProperties.txt, Unicode 15.1):
#: what a text shows as nothing where it cannot render it. ``name_key`` drops them.
IGNORABLE_CHARS = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
                   (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
                   (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
                   (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
                   (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
#: Characters that show as a blank though Unicode counts them neither as spaces nor as
#: ignorable: ``name_key`` reads each as a space (the braille blank, which braille text
#: holds between words), so a name of them alone shows as nothing, and a blank one at an
#: end does not make a second name.
BLANK_CHARS = {0x2800: " "}
#: Of ``IGNORABLE_CHARS``, those that spell words in a name (the Mongolian variation
#: selectors, the non-joiner and joiner, the variation selectors of emoji and ideographs,
#: the tags of a flag): ``shown_name`` keeps them as they are.
SPELLING_CHARS = ((0x180B, 0x180D), (0x180F, 0x180F), (0x200C, 0x200D), (0xFE00, 0xFE0F),
                  (0xE0020, 0xE007F), (0xE0100, 0xE01EF))
#: Of ``HIDING_CHARS``, those named apart when a name holds one.
_REORDERING = ((0x061C, 0x061C), (0x200E, 0x200F), (0x202A, 0x202E), (0x2066, 0x2069))
_BREAKING = ((0x2028, 0x2029),)
#: Characters people type for base32 letters that look alike.
_LOOKALIKES = str.maketrans({"0": "O", "1": "I", "8": "B"})
_VALUE = {char: value for value, char in enumerate(ALPHABET)}


def generate() -> Ed25519PrivateKey:
    """A new device key (the operating system's random source)."""
    return Ed25519PrivateKey.generate()


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """The key of a 32-byte RFC 8032 seed (test vectors; real keys come from ``generate``)."""
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key of ``key``."""
    return key.public_key().public_bytes_raw()


def secret_key(key: Ed25519PrivateKey) -> bytes:
    """``key`` in the form ``sign_bytes`` takes (libsodium's 64-byte secret key): made
    once per key, since reading the seed out of the object costs a few microseconds."""
    return key.private_bytes_raw() + public_bytes(key)


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """``key`` as an unencrypted PKCS #8 PEM file (``openssl pkey`` reads it); the file
    is protected by its permissions."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private_pem(data: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key of a PKCS #8 PEM file; ``InvalidInput`` saying what else it is.

    >>> load_private_pem(b"hello")
    Traceback (most recent call last):
    ...
    crdt.errors.InvalidInput: is not a private key in PEM (PKCS #8)
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InvalidInput("is encrypted; a device key is protected by its file "
                           "permissions instead") from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput("is not a private key in PEM (PKCS #8)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"holds another kind of key ({type(key).__name__}), not an "
                           "Ed25519 key")
    return key


def load_public_key(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes; ``InvalidInput`` otherwise."""
    if len(raw) != PUBLIC_KEY_BYTES:
        raise InvalidInput(f"is {len(raw)} bytes; an Ed25519 public key is "
                           f"{PUBLIC_KEY_BYTES}", field="public_key")
    return Ed25519PublicKey.from_public_bytes(raw)


def device_id(public_key: bytes) -> str:
    """The device id of a raw 32-byte Ed25519 public key (the module's steps 1-4)."""
    load_public_key(public_key)  # the length, checked
    digest = base64.b32encode(hashlib.sha256(public_key).digest()).decode().rstrip("=")
    runs = [digest[i:i + RUN_CHARS] for i in range(0, len(digest), RUN_CHARS)]
    checked = "".join(run + luhn32(run) for run in runs)
    return "-".join(checked[i:i + GROUP_CHARS] for i in range(0, ID_CHARS, GROUP_CHARS))


def luhn32(text: str) -> str:
    """The Luhn mod 32 check character of ``text`` (base32 characters): from the right,
    every second value doubled, the base-32 digits of each product summed.

    >>> luhn32("A"), luhn32("B"), luhn32("BA")
    ('A', '6', '7')
    """
    total, factor = 0, 2
    for char in reversed(text):
        addend = factor * _VALUE[char]
        total += addend // 32 + addend % 32
        factor = 3 - factor
    return ALPHABET[(32 - total % 32) % 32]


def parse_device_id(text: object, field: str = "device_id") -> str:
    """A device id as typed by a person, in its written form (``device_id``'s), or
    ``InvalidInput`` naming what is wrong: the length, a character base32 has not, or
    which check character does not match (a mistyped character near it)."""
    if not isinstance(text, str):
        raise InvalidInput("must be a string", field=field)
    bare = "".join(text.split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(bare) != ID_CHARS:
        raise InvalidInput(f"has {len(bare)} characters without dashes and spaces; a device "
                           f"id has {ID_CHARS} ({GROUPS} groups of {GROUP_CHARS})", field=field)
    wrong = sorted({char for char in bare if char not in _VALUE})
    if wrong:
        raise InvalidInput(f"has {wrong[0]!r}, which is not a letter or a digit 2-7",
                           field=field)
    for number in range(ID_CHARS // (RUN_CHARS + 1)):
        start = number * (RUN_CHARS + 1)
        run, check = bare[start:start + RUN_CHARS], bare[start + RUN_CHARS]
        if luhn32(run) != check:
            # A run and its check character are two groups as written.
            raise InvalidInput(f"check character {number + 1} does not match: a character "
                               f"in groups {2 * number + 1} and {2 * number + 2} is mistyped",
                               field=field)
    return "-".join(bare[i:i + GROUP_CHARS] for i in range(0, ID_CHARS, GROUP_CHARS))


def check_device_name(value: object, field: str = "name") -> str:
    """A new name for a device, as one is given (``devices add``): 1 to 64 UTF-8 bytes of
    printable characters, none that hides or reorders text (``HIDING_CHARS``), and at
    least one that shows (its ``name_key`` is not empty).

    >>> check_device_name("laptop\u200b")
    Traceback (most recent call last):
    ...
    crdt.errors.InvalidInput: name: must not contain invisible characters (U+200B)
    >>> check_device_name("\u0644\u067e\u200c\u062a\u0627\u067e")  # Persian "laptop"
    'لپ‌تاپ'
    >>> check_device_name(" \u200d")
    Traceback (most recent call last):
    ...
    crdt.errors.InvalidInput: name: shows as nothing: it must hold a visible character
    """
    name = stored_device_name(value, field)
    hidden = hiding_characters(name)
    if hidden:
        raise InvalidInput(f"must not contain {hidden}", field=field)
    if not name_key(name):
        raise InvalidInput("shows as nothing: it must hold a visible character", field=field)
    return name


def hiding_characters(name: str) -> str:
    """The characters of ``name`` that a new name may not hold (``HIDING_CHARS``), said
    by kind with their code points, or "" if it holds none.

    >>> hiding_characters("\u202elap\u200btop")
    'invisible characters (U+200B), bidirectional controls (U+202E)'
    >>> hiding_characters("pho\u2029ne"), hiding_characters("\u0644\u067e\u200c\u062a\u0627\u067e")
    ('line or paragraph separators (U+2029)', '')
    """
    kinds: dict[str, list[str]] = {}
    for char in sorted(set(name)):
        if _within(char, HIDING_CHARS):
            kind = ("bidirectional controls" if _within(char, _REORDERING)
                    else "line or paragraph separators" if _within(char, _BREAKING)
                    else "invisible characters")
            kinds.setdefault(kind, []).append(f"U+{ord(char):04X}")
    order = ("invisible characters", "bidirectional controls", "line or paragraph separators")
    return ", ".join(f"{kind} ({', '.join(kinds[kind])})" for kind in order if kind in kinds)


def _within(char: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    code = ord(char)
    return any(first <= code <= last for first, last in ranges)


def stored_device_name(value: object, field: str = "name") -> str:
    """A device's name as a record or a peer gives it, or as this node is configured
    with (``--name``): ``check_device_name`` but for the characters that hide text, which
    names given before they were refused may hold (such a record still counts, and its
    name is shown, escaped where it is printed; a node so named still starts, warned).

    >>> stored_device_name("laptop\u200b")
    'laptop\u200b'
    """
    return check_name(value, field, bytes_max=DEVICE_NAME_BYTES_MAX)


def shown_name(name: str) -> str:
    """``name`` as it is shown, with each character that hides text (``HIDING_CHARS``),
    shows as a blank (``BLANK_CHARS``) or as nothing (``IGNORABLE_CHARS`` but
    ``SPELLING_CHARS``) as its escape: of two members whose names read as one, people
    see which name holds such a character. A backslash the name holds is doubled where
    it would read as one of those escapes, or as a control character's (``\\x1b``, as
    the CLI shows one): before ``u``, ``U`` or ``x``, before a character shown escaped
    or a control character, with the backslashes right before it. So a name typed with
    the six characters ``\\u3164`` shows apart from one that holds U+3164; any other
    backslash shows as it is ("C:\\temp").

    >>> print(shown_name("phone\u3164"), shown_name("\u2800x\U0001d173"))
    phone\u3164 \u2800x\U0001d173
    >>> print(shown_name("phone\\\\u3164"), shown_name("a\\\\\u3164"), shown_name("C:\\\\temp\\\\"))
    phone\\\\u3164 a\\\\\\u3164 C:\\temp\\
    >>> shown_name("\U0001f469\u200d\U0001f4bb") == "\U0001f469\u200d\U0001f4bb"
    True
    """
    shown: list[str] = []
    backslashes = 0  # the run of them before ``char``
    for char in name:
        if char == "\\":
            backslashes += 1
            continue
        escaped = _escaped(char)
        if backslashes:
            reads_as_escape = char in "uUx" or escaped != char \
                or unicodedata.category(char) == "Cc"
            shown.append("\\" * (2 * backslashes if reads_as_escape else backslashes))
            backslashes = 0
        shown.append(escaped)
    shown.append("\\" * backslashes)
    return "".join(shown)


def shown_words(text: str) -> str:
    """A sentence a node wrote, as the console's ``words`` shows it: each character
    ``shown_name`` escapes as its escape (a removal's reason may hold one, and a node of
    an older version named members as they are), its backslashes as they are: they may
    begin the escapes of the names in it, which the node showed by ``shown_name``.

    >>> print(shown_words("removed by a\\\\\\\\u3164 (AAA) at noon (lost\u3164)"))
    removed by a\\\\u3164 (AAA) at noon (lost\\u3164)
    """
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    """``char``, or its escape where ``shown_name`` shows it escaped."""
    if _within(char, HIDING_CHARS) or ord(char) in BLANK_CHARS \
            or (_within(char, IGNORABLE_CHARS) and not _within(char, SPELLING_CHARS)):
        return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
    return char


def quoted_name(name: str) -> str:
    """``name`` quoted as Python writes a string, for a sentence that quotes it: in the
    quotes ``repr`` picks, a quote or a backslash in it is escaped, so where the name ends
    and which of its backslashes it holds are plain, and each character ``shown_name``
    escapes is escaped alike: a name with no quote or backslash reads as the tables show
    it (``repr`` would also escape the joiner of an emoji, the non-joiner of Persian, a
    variation selector or a no-break space, which the tables show as they are), and the
    quoted text, read as a Python string, is the name.

    >>> print(quoted_name("bob's"), quoted_name("phone\u3164"), quoted_name("phone\\\\u3164"))
    "bob's" 'phone\\u3164' 'phone\\\\u3164'
    >>> quoted_name("\U0001f469\u200d\U0001f4bb") == "'\U0001f469\u200d\U0001f4bb'"
    True
    """
    quote = '"' if "'" in name and '"' not in name else "'"
    escaped = name.replace("\\", "\\\\").replace(quote, "\\" + quote)
    # Its backslashes doubled already: each character alone, not ``shown_name``'s runs.
    return quote + "".join(_escaped(char) for char in escaped) + quote


def name_key(name: str) -> str:
    """``name`` as people read it, for telling whether two names are one: compatibility
    forms folded (NFKC: fullwidth letters are the plain ones, a composed "é" the "e" and
    accent typed apart), case folded, default-ignorable characters (``IGNORABLE_CHARS``:
    the joiners, variation selectors, Hangul fillers) and other format characters
    dropped, blanks that are not spaces (``BLANK_CHARS``) read as spaces, spaces at
    either end stripped. Letters of other scripts that look alike (a
    Cyrillic "\u0440" for a Latin "p") stay apart: telling those would take Unicode's
    confusables tables.

    >>> fullwidth = " \uff2c\uff41\uff50\uff54\uff4f\uff50\u200b"
    >>> name_key(fullwidth) == name_key("laptop") == name_key("LAPTOP ")
    True
    >>> name_key("cafe\u0301") == name_key("café")
    True
    >>> {name_key(name) for name in ("phone\ufe0f", "phone\u034f", "phone\u3164")}
    {'phone'}
    >>> {name_key(f"cafe{hidden}\u0301") for hidden in "\u034f\u200d\u200c\ufe0f"}
    {'café'}
    >>> name_key("\u2800"), name_key("phone\u2800") == name_key("phone")
    ('', True)
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    folded = folded.translate(BLANK_CHARS)
    kept = "".join(char for char in folded if unicodedata.category(char) != "Cf"
                   and not _within(char, IGNORABLE_CHARS))
    # Composed again: an invisible character between a letter and its accent kept the
    # two apart until it was dropped ("cafe\u034f\u0301" is "café").
    return unicodedata.normalize("NFKC", kept).strip()


def name_groups(names: Mapping[str, str]) -> list[list[str]]:
    """The keys of ``names`` (a device id, say, and its name) whose names read as one
    (``name_key``), grouped: each group sorted, in the order of its first key; the keys
    whose names are their own are left out.

    >>> name_groups({"A": "phone", "B": "laptop", "C": "Phone ", "D": "PHONE", "E": "pi",
    ...              "F": "PI"})
    [['A', 'C', 'D'], ['E', 'F']]
    """
    by_key: dict[str, list[str]] = {}
    for held, name in sorted(names.items()):
        by_key.setdefault(name_key(name), []).append(held)
    return sorted(group for group in by_key.values() if len(group) > 1)


def shared_with(groups: list[list[str]]) -> dict[str, list[str]]:
    """Per key of ``groups`` (``name_groups``), the other keys of its group.

    >>> shared_with([["A", "C", "D"]])
    {'A': ['C', 'D'], 'C': ['A', 'D'], 'D': ['A', 'C']}
    """
    return {held: [other for other in group if other != held]
            for group in groups for held in group}
