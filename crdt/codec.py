"""Canonical CBOR for hashing and the wire, and a strict decoder for untrusted bytes.

Output is RFC 8949 core deterministic encoding (cbor2 ``canonical=True``): map keys sorted
by their encoded bytes, shortest integer and float forms, definite lengths. That makes
the encoding of a value unique, so hashes of it are the same on every node and in every
language.

Input is decoded strictly. cbor2's defaults would turn tags into datetimes, compiled
regular expressions, e-mail messages and shared (possibly cyclic) structures, accept
duplicate map keys and silently ignore bytes after the first item. None of that may reach
the event log, so every tag, duplicate key, indefinite length, simple value and trailing
byte is refused.

>>> decode(encode({"b": 1, "a": [True, None, "x"]}))
{'a': [True, None, 'x'], 'b': 1}
>>> encode({"b": 1, "a": 2}).hex()
'a2616102616201'
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import cbor2

from crdt.errors import InvalidInput, LimitExceeded
from crdt.keys import DEPTH_MAX as DEPTH_MAX  # the codec's limit, kept where kinds reads it

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


def _reject_tag(tag: cbor2.CBORTag, *_rest: object) -> object:
    """cbor2's ``tag_hook``, for tags not in ``_NO_SEMANTIC_TAGS``."""
    raise InvalidInput(f"CBOR tags are not accepted (tag {tag.tag})")


def _refusal(message: str) -> Callable[..., object]:
    def refuse(*_args: object) -> object:
        raise InvalidInput(message)
    return refuse


# cbor2 decodes these tags itself unless told otherwise (dates, bignums, decimals, regexes,
# MIME, UUIDs, IP addresses, sets, shared references, self-describe marker, ...). Anything
# outside this range goes through ``tag_hook``, which refuses as well.
_NO_SEMANTIC_TAGS = {tag: _refusal(f"CBOR tags are not accepted (tag {tag})")
                     for tag in (*range(0, 300), 1004, 1040, 55799)}
# Bignums are how CBOR writes an integer beyond 64 bits: name the integer, not the tag.
_NO_SEMANTIC_TAGS[2] = _NO_SEMANTIC_TAGS[3] = _refusal(
    "integers beyond 64 bits are not accepted (a CBOR bignum)")


def encode(value: Any) -> bytes:
    """Encode ``value`` as canonical CBOR (the form that is hashed and sent).

    >>> encode([1, "a"]).hex()
    '82016161'
    """
    return cbor2.dumps(value, canonical=True)


_STRICT: dict[str, Any] = {"tag_hook": _reject_tag, "semantic_decoders": _NO_SEMANTIC_TAGS,
                           "allow_indefinite": False, "allow_duplicate_keys": False,
                           "strict_hashable_types": True}


def decode(data: bytes, *, depth_max: int = DEPTH_MAX) -> Any:
    """Decode one CBOR item from untrusted ``data``; raise ``InvalidInput`` if it is not clean.

    >>> decode(bytes.fromhex("0102"))
    Traceback (most recent call last):
    ...
    crdt.errors.InvalidInput: CBOR: 1 trailing byte(s) after the first item
    """
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(stream, max_depth=depth_max + 1, **_STRICT)
    try:
        value = decoder.decode()
    except InvalidInput:
        raise
    except cbor2.CBORDecodeError as exc:
        if isinstance(exc.__cause__, InvalidInput):
            raise exc.__cause__ from None
        message = str(exc)
        if "depth" in message:
            raise LimitExceeded(f"CBOR nesting deeper than {depth_max}") from None
        raise InvalidInput(f"CBOR: {message}") from None
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidInput(f"CBOR: {exc}") from None
    trailing = len(data) - stream.tell()
    if trailing:
        raise InvalidInput(f"CBOR: {trailing} trailing byte(s) after the first item")
    check_plain(value, depth_max=depth_max)
    return value


#: What ``decode_first`` raises for bytes it refuses.
DECODE_ERRORS = (InvalidInput, cbor2.CBORDecodeError, RecursionError, ValueError,
                 TypeError, OverflowError)


def decode_first(data: bytes, *, depth_max: int = DEPTH_MAX) -> Any:
    """The first CBOR item of ``data``, decoded as strictly as ``decode`` does but
    unchecked (raises one of ``DECODE_ERRORS``): bytes after it are ignored, and its
    types are not checked (``check_plain``), nor its depth exactly: it may be one level
    deeper than ``depth_max``, but ``check_plain(value, depth_max=depth_max + 1)``
    takes whatever it returns. Nor are duplicate map keys or indefinite lengths
    refused: no canonical encoding holds either. For a caller that compares ``data``
    with the canonical encoding it expects of the value, and checks its types
    (``Event.from_canonical``).

    >>> decode_first(bytes.fromhex("0102"))
    1
    """
    return cbor2.loads(data, max_depth=depth_max, **_FIRST)


#: ``_STRICT`` but for what ``decode_first`` lets through (each option costs a little).
_FIRST = {name: value for name, value in _STRICT.items()
          if name not in ("allow_indefinite", "allow_duplicate_keys")}


def encode_fast(value: Any) -> bytes:
    """Encode a record only this node reads (not hashed, not sent): no canonical sorting."""
    return cbor2.dumps(value)


def array_of(encoded_items: Sequence[bytes]) -> bytes:
    """The CBOR array of items encoded already: the bytes ``encode_fast`` gives the list.

    >>> array_of([encode_fast(1), encode_fast("a")]) == encode_fast([1, "a"])
    True
    """
    return head(4, len(encoded_items)) + b"".join(encoded_items)


def head(major: int, argument: int) -> bytes:
    """The head of a CBOR item of major type ``major`` in its shortest form: the
    unsigned integer ``argument`` itself (0), or the length of a text (3) or array (4).

    >>> head(0, 1_700_000_000_000) == encode(1_700_000_000_000)
    True
    """
    # Unrolled, one ``struct`` call: every stored event and entry takes a few heads.
    if argument < 24:
        return _SMALL_HEADS[major][argument]
    if argument < 0x100:
        return _HEAD_1(major << 5 | 24, argument)
    if argument < 0x10000:
        return _HEAD_2(major << 5 | 25, argument)
    if argument < 0x1_0000_0000:
        return _HEAD_4(major << 5 | 26, argument)
    if argument < 0x1_0000_0000_0000_0000:
        return _HEAD_8(major << 5 | 27, argument)
    raise ValueError(f"{argument} does not fit a CBOR head")


_SMALL_HEADS = [[bytes((major << 5 | n,)) for n in range(24)] for major in range(8)]
_HEAD_1, _HEAD_2, _HEAD_4, _HEAD_8 = (struct.Struct(form).pack
                                      for form in (">BB", ">BH", ">BI", ">BQ"))


def encode_text(value: str) -> bytes:
    """``encode(value)`` for a string, without cbor2's per-call set-up.

    >>> encode_text("héllo") == encode("héllo")
    True
    """
    data = value.encode("utf-8")
    return head(3, len(data)) + data


def encode_stamp(ms: int, counter: int) -> bytes:
    """``encode([ms, counter])`` for an event's timestamp (two unsigned integers).

    >>> encode_stamp(1_700_000_000_000, 70_000) == encode([1_700_000_000_000, 70_000])
    True
    """
    if 0x1_0000_0000 <= ms < 0x1_0000_0000_0000_0000 and 0 <= counter < 24:
        # A wall clock's milliseconds (8 bytes) and a small counter: one struct call.
        return _STAMP_OF_NOW(0x82, 0x1B, ms) + _SMALL_HEADS[0][counter]
    return b"\x82" + head(0, ms) + head(0, counter)


_STAMP_OF_NOW = struct.Struct(">BBQ").pack


def encode_json(value: Any) -> bytes:
    """``encode(value)`` for a JSON-like value (an event's payload), sorted and encoded
    here rather than by cbor2's canonical mode, which encodes every map key apart and
    costs about twice as much for a small payload. Floats take the shortest form that
    holds them exactly, as cbor2's canonical mode does (NaN and infinities go to cbor2).
    Anything else (bytes, tuples, subclasses, integers past 64 bits) sends the whole
    value to ``encode``, as does any error, so the result is always ``encode``'s, or its
    exception.

    >>> encode_json({"b": [1, -2, None], "aa": {"é": True}}) == encode(
    ...     {"b": [1, -2, None], "aa": {"é": True}})
    True
    """
    try:
        return _json(value)
    except Exception:  # not JSON-like as this encoder reads it: cbor2 decides
        return encode(value)


class _NotJson(Exception):
    """``encode_json`` leaves the value to cbor2."""


_ARRAY_HEADS, _TEXT_HEADS, _MAP_HEADS = _SMALL_HEADS[4], _SMALL_HEADS[3], _SMALL_HEADS[5]


def _json(value: Any) -> bytes:
    # Few calls: a payload is mostly short texts, which are encoded in line.
    kind = type(value)
    if kind is str:
        data: bytes = value.encode("utf-8")
        size = len(data)
        return (_TEXT_HEADS[size] if size < 24 else head(3, size)) + data
    if kind is dict:
        entries = []
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJson
            data = key.encode("utf-8")
            size = len(data)
            if type(item) is str:
                text = item.encode("utf-8")
                length = len(text)
                entries.append((_TEXT_HEADS[size] if size < 24 else head(3, size)) + data
                               + (_TEXT_HEADS[length] if length < 24 else head(3, length))
                               + text)
            else:
                entries.append((_TEXT_HEADS[size] if size < 24 else head(3, size)) + data
                               + _json(item))
        # Canonical order sorts the keys' encodings. Keys are distinct and no item's
        # encoding is a prefix of another's, so sorting each key with its value
        # appended compares the keys alone.
        entries.sort()
        size = len(entries)
        return (_MAP_HEADS[size] if size < 24 else head(5, size)) + b"".join(entries)
    if kind is list:
        size = len(value)
        if not size:
            return b"\x80"
        return (_ARRAY_HEADS[size] if size < 24 else head(4, size)) + \
            b"".join([_json(item) for item in value])
    if kind is int:  # past 64 bits, ``head`` raises and cbor2 makes a bignum
        return head(0, value) if value >= 0 else head(1, ~value)
    if value is None:
        return b"\xf6"
    if kind is bool:
        return b"\xf5" if value else b"\xf4"
    if kind is float:
        return _float(value)
    raise _NotJson


def _float(value: float) -> bytes:
    """The shortest of half, single and double precision that holds ``value`` exactly."""
    if not math.isfinite(value):
        return encode(value)
    for initial, form in _NARROWER:
        try:
            data = form.pack(value)
        except OverflowError:  # too large for this form
            continue
        if form.unpack(data)[0] == value:
            return initial + data
    return b"\xfb" + _DOUBLE.pack(value)


_NARROWER = ((b"\xf9", struct.Struct(">e")), (b"\xfa", struct.Struct(">f")))
_DOUBLE = struct.Struct(">d")


def decode_trusted(data: bytes) -> Any:
    """Decode bytes this node wrote itself (its own records): no checks, full speed."""
    return cbor2.loads(data)


#: The exact types of the scalars the decoder makes; ``check_plain`` takes them as they are.
_SCALARS = frozenset({type(None), bool, int, float, str, bytes})


def check_plain(value: Any, *, depth_max: int = DEPTH_MAX, _depth: int = 0) -> None:
    """Raise ``InvalidInput`` unless ``value`` is made only of JSON-like types and bytes.

    Refuses CBOR ``undefined`` and simple values, non-string map keys and nesting deeper
    than ``depth_max`` (a bare scalar is depth 0, ``[[1]]`` is depth 2).
    """
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return
    if isinstance(value, list | dict):
        if _depth >= depth_max:
            raise LimitExceeded(f"nesting deeper than {depth_max}")
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                raise InvalidInput("map keys must be text strings")
            value = value.values()
        for item in value:
            # Most items are scalars the decoder made: skip the call (a peer's catch-up
            # checks hundreds of thousands of them).
            if type(item) not in _SCALARS:
                check_plain(item, depth_max=depth_max, _depth=_depth + 1)
        return
    if value is cbor2.undefined:
        raise InvalidInput("CBOR undefined is not accepted (null is)")
    if isinstance(value, cbor2.CBORSimpleValue):
        raise InvalidInput(f"CBOR simple value {value.value} is not accepted")
    raise InvalidInput(f"value of type {type(value).__name__} is not accepted")
