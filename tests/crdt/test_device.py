"""Device keys and device ids: golden vectors, what a person may type, what is refused.

The vectors are the contract between devices and between versions: a device id people
have written down or added on another device must never change. Never update a vector
to make a test pass.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import itertools
import re
import unicodedata

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import device
from crdt.errors import InvalidInput
from tests.support.ed25519 import GROUP_ORDER, IDENTITY, crafted_by_holder, openssl_verifies

# RFC 8032 section 7.1, tests 1 and 2: (secret seed, public key) as the RFC prints them,
# and the device id of that public key.
VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "EH7DDX5-BKSRGCD-YTL7BKA-I36SE44-NXX3KLN-K7ELKS2-YQ57PI7-4XEG4QI"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "HH3RHUF-GIQST64-BCSSQQ3-T5I3TMF-EJPHIIF-FMVTRHQ-TTEHOMF-7VCOPQN"),
]
ID = VECTORS[0][2]


@pytest.mark.parametrize(("seed", "public", "expected"), VECTORS)
def test_golden_device_ids(seed: str, public: str, expected: str) -> None:
    key = device.private_key_from_seed(bytes.fromhex(seed))
    assert device.public_bytes(key).hex() == public
    assert device.device_id(bytes.fromhex(public)) == expected
    # Steps 1 and 2 of the format by hand: the id without its check characters and
    # dashes is the unpadded base32 of SHA-256 of the public key.
    digest = base64.b32encode(hashlib.sha256(bytes.fromhex(public)).digest()).decode()
    bare = expected.replace("-", "")
    assert "".join(bare[i:i + 13] for i in range(0, 56, 14)) == digest.rstrip("=")
    assert device.parse_device_id(expected) == expected


def test_luhn_mod_32_by_hand() -> None:
    # "BA" = values 1, 0. From the right: 0 x 2 = 0, then 1 x 1 = 1; sum 1; check value
    # (32 - 1) % 32 = 31 = "7". "A" alone: sum 0, check "A". "7" (31) doubled is 62 =
    # 1 x 32 + 30: digits summed 31, check value 1 = "B".
    assert device.luhn32("BA") == "7"
    assert device.luhn32("A") == "A"
    assert device.luhn32("7") == "B"


@pytest.mark.parametrize("typed", [
    ID.lower(),
    ID.replace("-", ""),
    ID.replace("-", " "),
    "  " + " ".join(ID.replace("-", "")[i:i + 4] for i in range(0, 56, 4)) + "\n",
    ID.replace("O", "0").replace("I", "1").replace("B", "8"),  # look-alike digits
])
def test_what_people_type_is_normalised(typed: str) -> None:
    assert device.parse_device_id(typed) == ID


def test_every_single_mistyped_character_is_refused() -> None:
    bare = ID.replace("-", "")
    for position, wrong in itertools.product(range(len(bare)), device.ALPHABET):
        if wrong == bare[position]:
            continue
        typo = bare[:position] + wrong + bare[position + 1:]
        with pytest.raises(InvalidInput, match="check character") as caught:
            device.parse_device_id(typo)
        group = position // 7 + 1  # the run of the typo is the groups it spans
        first = group if group % 2 else group - 1
        assert f"groups {first} and {first + 1}" in str(caught.value)


def test_a_wrong_check_character_names_its_groups() -> None:
    typo = ID[:-1] + ("A" if ID[-1] != "A" else "B")
    with pytest.raises(InvalidInput) as caught:
        device.parse_device_id(typo)
    assert str(caught.value) == ("device_id: check character 4 does not match: a "
                                 "character in groups 7 and 8 is mistyped")


def test_most_swaps_of_neighbours_are_refused() -> None:
    bare = ID.replace("-", "")
    swaps = caught = 0
    for position in range(len(bare) - 1):
        if bare[position] == bare[position + 1]:
            continue
        swapped = bare[:position] + bare[position + 1] + bare[position] + bare[position + 2:]
        swaps += 1
        try:
            device.parse_device_id(swapped)
        except InvalidInput:
            caught += 1
    assert caught >= swaps * 0.9, (caught, swaps)


@pytest.mark.parametrize(("typed", "message"), [
    (ID[:-8], "has 49 characters without dashes and spaces; a device id has 56"),
    (ID + "A", "has 57 characters"),
    ("", "has 0 characters"),
    (ID[:-1] + "9", "has '9', which is not a letter or a digit 2-7"),
    (ID[:-1] + "é", "has 'É'"),
    (42, "must be a string"),
])
def test_malformed_ids_say_what_is_wrong(typed: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        device.parse_device_id(typed)
    assert caught.value.field == "device_id"


def test_device_ids_of_new_keys_parse_back() -> None:
    for _ in range(20):
        made = device.device_id(device.public_bytes(device.generate()))
        assert device.parse_device_id(made) == made
        assert len(made) == 63 and made.count("-") == 7


def test_a_public_key_must_be_32_bytes() -> None:
    with pytest.raises(InvalidInput, match="is 31 bytes; an Ed25519 public key is 32"):
        device.device_id(bytes(31))


def test_the_private_key_pem_round_trips() -> None:
    key = device.generate()
    pem = device.private_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = device.load_private_pem(pem)
    assert device.public_bytes(again) == device.public_bytes(key)


# RFC 8410 section 10.3: a private key file as OpenSSL writes one (what earlier versions
# of the node wrote to device.key), and its public key from section 10.1.
RFC_8410_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
"""
RFC_8410_PUBLIC = "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"


def test_a_key_file_written_before_loads_and_signs_as_before() -> None:
    key = device.load_private_pem(RFC_8410_PEM)
    assert device.public_bytes(key).hex() == RFC_8410_PUBLIC
    assert device.private_pem(key) == RFC_8410_PEM  # written back byte for byte
    message = b"clawsync"
    signature = device.sign_bytes(device.secret_key(key), message)
    assert signature == key.sign(message)  # what cryptography (OpenSSL) made before
    assert device.verifies(bytes.fromhex(RFC_8410_PUBLIC), signature, message)


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300), st.binary(max_size=300))
def test_both_libraries_sign_alike_and_verify_each_other(seed: bytes, message: bytes,
                                                         other: bytes) -> None:
    key = device.private_key_from_seed(seed)
    public = device.public_bytes(key)
    ours = device.sign_bytes(device.secret_key(key), message)
    theirs = key.sign(message)
    assert ours == theirs  # Ed25519 is deterministic: one signature per key and bytes
    assert device.verifies(public, theirs, message)
    assert openssl_verifies(public, ours, message)
    if other != message:
        assert not device.verifies(public, ours, other)
        assert not openssl_verifies(public, ours, other)


def test_crafted_signatures_are_refused_without_raising() -> None:
    # These are the cases where libsodium is stricter than OpenSSL (crdt.device's
    # docstring): OpenSSL (cryptography 50) takes the first two; a node refuses all.
    seed = bytes(range(32))
    public = device.public_bytes(device.private_key_from_seed(seed))
    message = b"anything at all"
    assert device.verifies(IDENTITY, IDENTITY + bytes(32), message) is False  # small-order key
    assert device.verifies(public, crafted_by_holder(seed, message), message) is False
    honest = device.sign_bytes(device.secret_key(device.private_key_from_seed(seed)), message)
    s = int.from_bytes(honest[32:], "little")
    assert device.verifies(public, honest[:32] + (s + GROUP_ORDER).to_bytes(32, "little"),
                           message) is False  # S not reduced
    for junk_key in (bytes(32), b"\xff" * 32, IDENTITY[:31], public + b"\x00"):
        assert device.verifies(junk_key, honest, message) is False
    for junk in (b"", honest[:63], honest + b"\x00", bytes(64), b"\xff" * 64, "text"):
        assert device.verifies(public, junk, message) is False  # type: ignore[arg-type]
    assert device.verifies(public, honest, message)


def test_a_batch_verifies_as_each_of_its_signatures_does() -> None:
    seed = bytes(range(32))
    public = device.public_bytes(device.private_key_from_seed(seed))
    message = b"anything at all"
    honest = device.sign_bytes(device.secret_key(device.private_key_from_seed(seed)), message)
    cases = [(public, honest, message), (public, honest, message + b"!"),
             (IDENTITY, IDENTITY + bytes(32), message),
             (public, crafted_by_holder(seed, message), message),
             (public[:31], honest, message), (public, honest[:63], message), (public, honest, b"")]
    keys, signatures, messages = (list(column) for column in zip(*cases, strict=True))
    assert device.verifies_many(keys, signatures, messages) \
        == [device.verifies(*case) for case in cases] == [True] + [False] * 6
    assert device.verifies_many([], [], []) == []
    with pytest.raises(ValueError, match="lists of 1 keys, 2 signatures and 2 messages"):
        device.verifies_many(keys[:1], signatures[:2], messages[:2])


def test_a_secret_key_of_another_size_is_refused_before_libsodium_reads_it() -> None:
    with pytest.raises(ValueError, match="a secret key is 64 bytes, not 32"):
        device.sign_bytes(bytes(32), b"x")


def test_what_is_not_an_ed25519_key_is_named() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(InvalidInput, match=r"holds another kind of key \(ECPrivateKey\), "
                                           "not an Ed25519 key"):
        device.load_private_pem(other)
    x = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(InvalidInput, match="not an Ed25519 key"):
        device.load_private_pem(x)
    encrypted = device.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass"))
    with pytest.raises(InvalidInput, match="is encrypted"):
        device.load_private_pem(encrypted)
    for garbage in (b"", b"\x00" * 119, device.private_pem(device.generate())[:-40]):
        with pytest.raises(InvalidInput, match="is not a private key in PEM"):
            device.load_private_pem(garbage)


@pytest.mark.parametrize(("name", "ok"), [
    ("laptop", True), ("Anna's phone", True), ("x" * 64, True), ("é" * 32, True),
    ("x" * 65, False), ("é" * 33, False), ("", False), ("a\nb", False), (None, False),
    # What hides or reorders text is refused; invisible characters that spell words are not:
    # the joiner of an emoji, the non-joiner of Persian, a flag's tags, a variation selector.
    ("laptop\u200b", False), ("\u202elaptop", False), ("lap\u00adtop", False),
    ("\ufefflaptop", False), ("lap\u2062top", False), ("\u2067laptop", False),
    ("pho\u2028ne", False), ("pho\u2029ne", False),
    ("\U0001f468\u200d\U0001f4bb", True), ("\u0644\u067e\u200c\u062a\u0627\u067e", True),
    ("\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", True),
    ("\u2764\ufe0f", True),
    # A name that shows as nothing.
    ("\u200d", False), (" ", False), ("\ufe0f\u3164", False),
])
def test_device_names(name: object, ok: bool) -> None:
    if ok:
        assert device.check_device_name(name) == name
    else:
        with pytest.raises(InvalidInput):
            device.check_device_name(name)


def test_a_name_recorded_with_a_format_character_still_reads() -> None:
    """Records written before format characters were refused still hold their name."""
    assert device.stored_device_name("laptop\u200b") == "laptop\u200b"


@pytest.mark.parametrize("name", ["phone\ufe0f", "phone\u034f", "phone\u3164", "phone\u200c",
                                  "pho\u180bne", "phone\U000e0067", "\u115fphone"])
def test_invisible_characters_do_not_make_another_name(name: str) -> None:
    assert device.name_key(name) == device.name_key("phone")


@pytest.mark.parametrize(("name", "said"), [
    ("phone\U0001d173", "U+1D173"), ("pho\U0001d17ane", "U+1D17A"),
    ("phone\U0001bca0", "U+1BCA0"), ("\U0001bca3phone", "U+1BCA3"),
    ("phone\u3164", "U+3164"), ("phone\uffa0", "U+FFA0"), ("\u115fphone", "U+115F"),
    ("pho\u1160ne", "U+1160"),
    ("\u2800", "shows as nothing"), ("\u2800 \u2800", "shows as nothing"),
])
def test_a_new_name_may_not_hold_other_blank_or_invisible_characters(name: str,
                                                                      said: str) -> None:
    """The format controls of musical notation and of Duployan shorthand, and the Hangul
    fillers, show as nothing (or a blank) in a name, as a zero-width space does; a name
    of braille blanks alone shows as nothing. Read from a record, each still counts."""
    with pytest.raises(InvalidInput, match=re.escape(said)):
        device.check_device_name(name)
    assert device.stored_device_name(name) == name


def test_braille_reads_as_a_name_and_its_blank_as_a_space() -> None:
    """Braille letters make a name; a braille blank at an end makes no second name, and
    between words it is the space."""
    hello = "\u2813\u2811\u2807\u2807\u2815"
    assert device.check_device_name(f"{hello}\u2800\u283a") == f"{hello}\u2800\u283a"
    assert device.name_key("phone\u2800") == device.name_key("\u2800phone") == "phone"
    assert device.name_key("my\u2800phone") == device.name_key("my phone")


def test_members_sharing_a_name_are_found_as_people_read_names() -> None:
    groups = device.name_groups({"A": "phone", "B": "\uff30hone", "C": "laptop",
                                 "D": "laptop\u2800", "E": "tablet"})
    assert groups == [["A", "B"], ["C", "D"]]
    assert device.shared_with(groups) == {"A": ["B"], "B": ["A"], "C": ["D"], "D": ["C"]}
    assert device.name_groups({"A": "phone"}) == []


#: Characters that spell words, kept in a name and shown as they are, that people do not
#: see: the zero-width joiner and non-joiner, a variation selector of emoji and one of
#: ideographs (beyond the first plane).
SPELLING = ["\u200d", "\u200c", "\ufe0f", "\ufe00", "\U000e0100", "\U000e01ef"]


@pytest.mark.parametrize("spelling", SPELLING)
def test_names_apart_only_by_a_character_that_spells_are_one_name(spelling: str) -> None:
    """A joiner, a non-joiner or a variation selector stays allowed in a new name and
    shown as it is, but names that differ only by one read as one: their members share
    a name."""
    name = f"pho{spelling}ne"
    assert device.check_device_name(name) == name
    assert device.shown_name(name) == name
    groups = device.name_groups({"A": "phone", "B": name, "C": "laptop",
                                 "D": f"laptop{spelling}", "E": "tablet"})
    assert groups == [["A", "B"], ["C", "D"]]
    assert device.shared_with(groups) == {"A": ["B"], "B": ["A"], "C": ["D"], "D": ["C"]}


def test_emoji_apart_only_by_their_joiner_or_selector_are_one_name() -> None:
    coder = "\U0001f469\u200d\U0001f4bb"
    assert device.name_groups({"A": coder, "B": "\U0001f469\U0001f4bb",
                               "C": "\U0001f469\ufe0f\u200d\U0001f4bb"}) == [["A", "B", "C"]]


@settings(max_examples=300)
@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20))
def test_a_quoted_name_reads_back_and_reads_as_shown(name: str) -> None:
    """``quoted_name`` reads back (as a Python string) as the name, and between its
    quotes shows the name as ``shown_name`` does, where the name holds no quote or
    backslash: a quoted name and the tables' name can be matched."""
    quoted = device.quoted_name(name)
    assert ast.literal_eval(quoted) == name
    if not set("'\"\\") & set(name):
        assert quoted[1:-1] == device.shown_name(name)


def unshown(shown: str) -> str:
    """The name a text of ``shown_name`` shows, read as people read it: a run of
    backslashes before ``u``, ``U``, ``x`` or a control character is half of them, and
    an odd one left begins an escape; any other backslash is itself."""
    name: list[str] = []
    at = 0
    while at < len(shown):
        if shown[at] != "\\":
            name.append(shown[at])
            at += 1
            continue
        run = len(shown[at:]) - len(shown[at:].lstrip("\\"))
        at += run
        after = shown[at:at + 1]
        if not after or not (after in "uUx" or unicodedata.category(after) == "Cc"):
            name.append("\\" * run)
            continue
        name.append("\\" * (run // 2))
        if run % 2:
            digits = {"u": 4, "U": 8}[after]  # shown_name writes no other escape
            name.append(chr(int(shown[at + 1:at + 1 + digits], 16)))
            at += 1 + digits
    return "".join(name)


def test_a_typed_escape_shows_apart_from_the_character_it_names() -> None:
    """A name typed with the six characters ``\\u3164`` and one that holds U+3164 read as
    one name to a person only if the tables show them alike: they do not."""
    real, typed = "phone\u3164", "phone\\u3164"
    assert device.check_device_name(typed) == typed
    assert device.shown_name(real) == "phone\\u3164"
    assert device.shown_name(typed) == "phone\\\\u3164"
    assert device.shown_name("C:\\temp\\") == "C:\\temp\\"  # reads as no escape


NAME_PARTS = ["\\", "u", "U", "x", "3164", "1b", "a", "\u3164", "\u200b", "\U0001d173",
              "\x1b", "\u200d"]


@settings(max_examples=500)
@given(st.lists(st.sampled_from(NAME_PARTS), max_size=12).map("".join))
def test_a_shown_name_reads_back_as_the_name(name: str) -> None:
    """Backslashes, typed escapes and characters shown escaped, in any order: the text
    shown reads back as the name, so two names never show alike."""
    assert unshown(device.shown_name(name)) == name


@pytest.mark.parametrize("name", ["\U0001f469\u200d\U0001f4bb", "\u0644\u067e\u200c\u062a",
                                  "\u2764\ufe0f", "my\u00a0phone", "\u845b\U000e0100"])
def test_a_quoted_name_keeps_what_the_tables_show_as_it_is(name: str) -> None:
    assert device.quoted_name(name) == f"'{name}'"
