"""Other encodings of a value than the canonical one, for property tests of the checks
that must tell canonical bytes from the rest: each head in a wider form than needed,
floats wider than needed, map keys out of order or twice, indefinite lengths, tags,
simple values and bytes after the item. ``variant(rng, value)`` makes one (often the
canonical one itself); ``mutated(rng, data)`` flips, drops or inserts a byte. Choices
come from one ``random.Random`` seeded by hypothesis: drawing each would exceed what
hypothesis draws for one example."""

from __future__ import annotations

import contextlib
import random
import struct
from typing import Any

from crdt import codec


def _head(rng: random.Random, major: int, argument: int) -> bytes:
    """The head of ``argument``, in its shortest form or, sometimes, a wider one."""
    shortest = codec.head(major, argument)
    if rng.randint(0, 9) != 0:
        return shortest
    widths = [w for w, top in ((1, 0x100), (2, 0x10000), (4, 2**32), (8, 2**64))
              if argument < top and 1 + w > len(shortest)]
    if not widths:
        return shortest
    width = rng.choice(widths)
    info = {1: 24, 2: 25, 4: 26, 8: 27}[width]
    return bytes((major << 5 | info,)) + argument.to_bytes(width, "big")


def _float(rng: random.Random, value: float) -> bytes:
    canonical = codec.encode(value)
    if rng.randint(0, 5) != 0:
        return canonical
    forms = [b"\xfb" + struct.pack(">d", value)]
    with contextlib.suppress(OverflowError):  # beyond float32's range
        if struct.unpack(">f", struct.pack(">f", value))[0] == value:
            forms.append(b"\xfa" + struct.pack(">f", value))
    return rng.choice(forms)


def variant(rng: random.Random, value: Any) -> bytes:
    """An encoding of ``value``: often canonical, sometimes not at some node."""
    out = _variant(rng, value)
    if rng.randint(0, 19) == 0:
        out += rng.choice([b"\x00", b"\xf6", b"\x60"])  # trailing bytes
    return out


def _variant(rng: random.Random, value: Any) -> bytes:
    wrap = rng.randint(0, 39)
    if wrap == 0:  # a tag around the item
        return _head(rng, 6, rng.choice([0, 1, 24, 55799, 300])) + \
            _variant(rng, value)
    if wrap == 1 and not isinstance(value, dict | list):
        return rng.choice([b"\xf7", b"\xe0", b"\xf8\x20"])  # undefined, simple
    if value is None or isinstance(value, bool):
        return codec.encode(value)
    if isinstance(value, int):
        return _head(rng, 0, value) if value >= 0 else _head(rng, 1, -1 - value)
    if isinstance(value, float):
        return _float(rng, value)
    if isinstance(value, str | bytes):
        major, data = (3, value.encode("utf-8")) if isinstance(value, str) else (2, value)
        if len(data) > 1 and rng.randint(0, 19) == 0:  # indefinite, in two chunks
            cut = len(data) // 2
            return bytes((major << 5 | 31,)) + _head(rng, major, cut) + data[:cut] + \
                _head(rng, major, len(data) - cut) + data[cut:] + b"\xff"
        return _head(rng, major, len(data)) + data
    if isinstance(value, list):
        items = [_variant(rng, item) for item in value]
        if rng.randint(0, 19) == 0:
            return b"\x9f" + b"".join(items) + b"\xff"
        return _head(rng, 4, len(items)) + b"".join(items)
    assert isinstance(value, dict)
    entries = [(codec.encode(key), _variant(rng, item)) for key, item in value.items()]
    entries.sort()  # canonical order for text keys: by encoded bytes
    if len(entries) > 1 and rng.randint(0, 9) == 0:
        entries = rng.sample(entries, len(entries))
    if entries and rng.randint(0, 29) == 0:
        entries.append(entries[rng.randrange(len(entries))])  # a key twice
    body = b"".join(key + item for key, item in entries)
    if rng.randint(0, 19) == 0:
        return b"\xbf" + body + b"\xff"
    return _head(rng, 5, len(entries)) + body


def mutated(rng: random.Random, data: bytes) -> bytes:
    """``data`` with one byte flipped, dropped or inserted, or cut short."""
    if not data:
        return b"\x00"
    where = rng.randrange(len(data))
    how = rng.randint(0, 3)
    if how == 0:
        return data[:where] + bytes((data[where] ^ rng.randint(1, 255),)) + \
            data[where + 1:]
    if how == 1:
        return data[:where] + data[where + 1:]
    if how == 2:
        return data[:where] + bytes((rng.randint(0, 255),)) + data[where:]
    return data[:where]
