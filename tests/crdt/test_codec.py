"""crdt.codec: canonical encoding, and a decoder that refuses everything but plain data.

Refused input is built by hand (RFC 8949 initial bytes), not with cbor2, so the tests do
not depend on what cbor2 happens to emit.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec
from crdt.codec import DEPTH_MAX, decode, encode
from crdt.errors import InvalidInput, LimitExceeded


def head(major: int, argument: int) -> bytes:
    """The initial byte(s) of a CBOR item: major type and its argument, shortest form."""
    if argument < 24:
        return bytes([major << 5 | argument])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if argument < 1 << (8 * size):
            return bytes([major << 5 | extra]) + argument.to_bytes(size, "big")
    raise ValueError(argument)


def tstr(value: str) -> bytes:
    raw = value.encode()
    return head(3, len(raw)) + raw


def json_like(depth: int = 4) -> st.SearchStrategy[Any]:
    """Plain values the codec must round-trip: no NaN (unequal to itself), integers in
    CBOR's native range (larger ones would need bignum tags, which decode refuses)."""
    scalars = st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64 - 1),
        st.floats(allow_nan=False), st.text(max_size=20), st.binary(max_size=20))
    if depth == 0:
        return scalars
    inner = json_like(depth - 1)
    return st.one_of(scalars, st.lists(inner, max_size=4),
                     st.dictionaries(st.text(max_size=8), inner, max_size=4))


def nested(levels: int, container: str = "array") -> bytes:
    """``levels`` arrays (or single-entry maps) around the integer 1."""
    if container == "array":
        return head(4, 1) * levels + b"\x01"
    return (head(5, 1) + tstr("k")) * levels + b"\x01"


def assert_refused(data: bytes, error: type[InvalidInput] = InvalidInput) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        decode(data)
    assert type(caught.value) is error, caught.value
    return caught.value


# -- encoding --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"),
    (2**32, "1b0000000100000000"), (-1, "20"), (-25, "3818"),
    (1.0, "f93c00"), (1.1, "fb3ff199999999999a"), (float("inf"), "f97c00"),
    ("a", "6161"), ("ü", "62c3bc"), (b"\x01", "4101"), ([], "80"), ({}, "a0"),
    (True, "f5"), (False, "f4"), (None, "f6"),
    # Keys sorted by their encoded bytes: shorter text first, then bytewise.
    ({"bb": 1, "a": 2, "c": 3}, "a3616102616303626262" "01"),
])
def test_encode_is_the_shortest_deterministic_form(value: Any, expected: str) -> None:
    assert encode(value).hex() == expected


@given(st.dictionaries(st.text(max_size=6), st.integers(), max_size=8), st.randoms())
def test_encoding_does_not_depend_on_key_order(mapping: dict[str, int], rnd: Any) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    assert encode(dict(items)) == encode(mapping)
    assert encode({"outer": dict(items)}) == encode({"outer": mapping})


@settings(max_examples=200)
@given(json_like())
def test_round_trip(value: Any) -> None:
    data = encode(value)
    back = decode(data)
    assert back == value
    assert encode(back) == data  # also -0.0, and int vs float, survive exactly


@given(json_like())
def test_fast_and_trusted_forms_round_trip(value: Any) -> None:
    assert codec.decode_trusted(codec.encode_fast(value)) == value


def anything(depth: int = 3) -> st.SearchStrategy[Any]:
    """Beyond ``json_like``: what ``encode_json`` leaves to cbor2 (big integers, NaN,
    tuples, subclasses, non-text keys, lone surrogates) and key lengths either side of
    the heads' sizes, nested anywhere."""
    class Text(str):
        pass

    scalars = st.one_of(
        json_like(0), st.integers(), st.floats(), st.sampled_from(
            [True, False, 2**64, -(2**64) - 1, -0.0, 5.960464477539063e-08, 65504.0,
             65520.0, 2.0**-24, 2.0**-25, 2.0**-149, 2.0**-150, 1e-310, 3.4028234663852886e38,
             3.4028235677973366e38, 1e300, float("inf"), float("-inf"), float("nan"), 0.1,
             "\ud800", Text("x"), 1 << 80, b"", "é" * 12]))
    if depth == 0:
        return scalars
    inner = anything(depth - 1)
    keys = st.one_of(st.text(max_size=8), st.sampled_from(
        ["a" * 23, "a" * 24, "b" * 255, "b" * 256, "é", "\ud800", "", Text("k")]),
        st.integers(0, 3), st.binary(max_size=2))
    return st.one_of(scalars, st.lists(inner, max_size=4), st.lists(inner, max_size=2).map(tuple),
                     st.dictionaries(keys, inner, max_size=5))


@settings(max_examples=1000)
@given(anything())
def test_encode_json_is_encode(value: Any) -> None:
    expected: Any
    try:
        expected = encode(value)
    except Exception as error:
        expected = (type(error), str(error))
    try:
        got: Any = codec.encode_json(value)
    except Exception as error:
        got = (type(error), str(error))
    assert got == expected


@given(st.integers(0, 2**64 - 1) | st.sampled_from([2**32 - 1, 2**32, 1_700_000_000_000]),
       st.integers(0, 2**32 - 1) | st.integers(0, 30))
def test_a_timestamp_encodes_as_its_array(ms: int, counter: int) -> None:
    assert codec.encode_stamp(ms, counter) == encode([ms, counter])


@pytest.mark.parametrize("count", [0, 23, 24, 255, 256, 65_536])
def test_encode_json_of_long_containers_is_encode(count: int) -> None:
    values = [{f"k{n}": n for n in range(count)}, list(range(count)), "x" * count]
    for value in values:
        assert codec.encode_json(value) == encode(value)


@pytest.mark.parametrize("count", [0, 1, 23, 24, 255, 256, 65_535, 65_536])
def test_an_array_of_encoded_items_is_the_list_encoded(count: int) -> None:
    items = [n % 300 for n in range(count)]
    assert codec.array_of([codec.encode_fast(item) for item in items]) == \
        codec.encode_fast(items)


def test_exactly_depth_max_levels_are_accepted() -> None:
    assert decode(nested(DEPTH_MAX)) is not None
    assert decode(nested(DEPTH_MAX, "map")) is not None
    assert decode(nested(3), depth_max=3) == [[[1]]]


# -- refusals --------------------------------------------------------------------------


@settings(max_examples=60)
@given(st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 21, 24, 25, 28, 29, 30, 32, 35, 36, 37, 256, 258,
                     260, 261, 1004, 1040, 12345, 55799, 2**32, 2**64 - 1]),
    st.integers(min_value=0, max_value=2**64 - 1)),
    st.sampled_from([b"\x00", b"\x1a\x65\x53\xf1\x00", tstr("2024-01-01T00:00:00Z"),
                     head(2, 2) + b"\x01\x00", tstr("a.*b"), head(4, 0)]))
def test_every_tag_is_refused(tag: int, content: bytes) -> None:
    """Dates, bignums, shared references, regexes, sets, self-describe... all refused,
    alone or nested in an array or a map value."""
    tagged = head(6, tag) + content
    assert_refused(tagged)
    assert_refused(head(4, 2) + b"\x01" + tagged)
    assert_refused(head(5, 1) + tstr("k") + tagged)


def test_shared_reference_cycles_are_refused() -> None:
    # 28(array[29(0)]) is a list that contains itself under cbor2's default decoders.
    assert_refused(head(6, 28) + head(4, 1) + head(6, 29) + b"\x00")


def test_duplicate_keys_are_refused() -> None:
    assert_refused(head(5, 2) + tstr("a") + b"\x01" + tstr("a") + b"\x02")
    assert_refused(head(4, 1) + head(5, 2) + tstr("x") + b"\x01" + tstr("x") + b"\x01")


@pytest.mark.parametrize("data", [
    "9f01ff",          # array
    "bf616101ff",      # map
    "5f4101ff",        # byte string
    "7f6161ff",        # text string
    "819f01ff",        # nested
], ids=["array", "map", "bytes", "text", "nested"])
def test_indefinite_lengths_are_refused(data: str) -> None:
    assert_refused(bytes.fromhex(data))


@pytest.mark.parametrize("data", [
    "f7",              # undefined
    "e0", "f0", "f3",  # simple values 0, 16, 19
    "f820", "f8ff",    # one-byte simple values
    "81f7",            # nested undefined
    "a16161f0",        # simple value as a map value
])
def test_undefined_and_simple_values_are_refused(data: str) -> None:
    assert_refused(bytes.fromhex(data))


@pytest.mark.parametrize("data", ["f4", "f5", "f6"])
def test_false_true_null_are_plain_values(data: str) -> None:
    assert decode(bytes.fromhex(data)) in (False, True, None)


@given(json_like(2), st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(value: Any, extra: bytes) -> None:
    error = assert_refused(encode(value) + extra)
    assert "trailing" in str(error)


@given(json_like(3).filter(lambda v: len(encode(v)) > 1), st.data())
def test_truncated_input_is_refused(value: Any, data: st.DataObject) -> None:
    encoded = encode(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    assert_refused(encoded[:cut])


@pytest.mark.parametrize("key", [
    b"\x01",                  # integer
    b"\x20",                  # negative integer
    head(2, 1) + b"k",        # byte string
    b"\xf5",                  # true
    b"\xf6",                  # null
    b"\xf9\x3c\x00",          # float
    head(4, 0),               # array
    head(5, 0),               # map
], ids=["int", "negint", "bytes", "bool", "null", "float", "array", "map"])
def test_non_string_map_keys_are_refused(key: bytes) -> None:
    assert_refused(head(5, 1) + key + b"\x01")
    assert_refused(head(4, 1) + head(5, 1) + key + b"\x01")


@pytest.mark.parametrize("container", ["array", "map"])
@pytest.mark.parametrize("levels", [DEPTH_MAX + 1, DEPTH_MAX + 2, 10_000])
def test_nesting_deeper_than_depth_max_is_a_limit(container: str, levels: int) -> None:
    assert_refused(nested(levels, container), LimitExceeded)


def test_the_depth_limit_is_a_parameter() -> None:
    with pytest.raises(LimitExceeded):
        decode(nested(4), depth_max=3)


def test_invalid_utf8_and_unknown_initial_bytes_are_refused() -> None:
    assert_refused(bytes.fromhex("62c328"))      # invalid UTF-8 in a text string
    assert_refused(bytes.fromhex("62eda080"))    # an encoded lone surrogate
    assert_refused(bytes.fromhex("1c"))          # reserved additional information
    assert_refused(bytes.fromhex("ff"))          # a stray break code
    assert_refused(b"")


def test_huge_declared_lengths_fail_cleanly() -> None:
    for major in (2, 3, 4, 5):
        assert_refused(head(major, 2**64 - 1))
        assert_refused(head(major, 2**31) + b"\x00" * 16)


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_invalid_input(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        decode(data)


@settings(max_examples=300)
@given(json_like(3), st.data())
def test_mutated_encodings_decode_or_raise_invalid_input(value: Any,
                                                         data: st.DataObject) -> None:
    """Corrupting a valid encoding reaches deeper decoder states than random bytes do."""
    encoded = bytearray(encode(value))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
        encoded[index] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        decoded = decode(bytes(encoded))
    except InvalidInput:
        return
    codec.check_plain(decoded)  # whatever comes back is plain data


def test_check_plain_refuses_foreign_types() -> None:
    for value in ({1: "a"}, {"a": {1.5: 2}}, [object()], {"a": {1, 2}}, (1, 2)):
        with pytest.raises(InvalidInput):
            codec.check_plain(value)
    codec.check_plain({"a": [1, 2.5, None, True, "x", b"y"]})


@pytest.mark.parametrize(("data", "says"), [
    (encode(2**64), "integers beyond 64 bits are not accepted (a CBOR bignum)"),
    (encode(-2**64 - 1), "integers beyond 64 bits are not accepted (a CBOR bignum)"),
    (head(6, 1) + b"\x00", "CBOR tags are not accepted (tag 1)"),
    (head(6, 12345) + b"\x00", "CBOR tags are not accepted (tag 12345)"),
    (bytes.fromhex("81f7"), "CBOR undefined is not accepted (null is)"),
    (bytes.fromhex("f820"), "CBOR simple value 32 is not accepted"),
])
def test_a_refusal_names_what_was_refused(data: bytes, says: str) -> None:
    assert str(assert_refused(data)) == says
