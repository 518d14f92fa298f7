"""``BinReader``: a cursor over Automerge's binary formats (LEB128 numbers, byte runs),
whose errors say which part of what was cut short or malformed.

>>> reader = BinReader(bytes([0xE5, 0x8E, 0x26, 0x7F, 1, 2]), "sync message")
>>> reader.uleb("a length"), reader.sleb("a count"), reader.take(2, "data")
(624485, -1, b'\\x01\\x02')
>>> reader.take(1, "heads")
Traceback (most recent call last):
crdt.errors.InvalidInput: data: sync message: heads runs past its end
"""

from __future__ import annotations

from crdt.errors import InvalidInput

#: LEB128 numbers longer than this many bytes exceed 64 bits.
LEB_BYTES_MAX = 10
#: Every byte with its high bit set: deleting them leaves one byte per LEB128 number.
_CONTINUATION = bytes(range(0x80, 0x100))


def uleb(value: int) -> bytes:
    """``value`` (>= 0) as unsigned LEB128.

    >>> uleb(624485).hex()
    'e58e26'
    """
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class BinReader:
    """Reads ``data`` from ``at``; every error is ``InvalidInput`` on field ``data``."""

    def __init__(self, data: bytes, subject: str, at: int = 0) -> None:
        self.data = data
        self.subject = subject
        self.at = at

    def fail(self, problem: str) -> InvalidInput:
        return InvalidInput(f"{self.subject}: {problem}", field="data")

    def take(self, count: int, what: str) -> bytes:
        if count > len(self.data) - self.at:
            raise self.fail(f"{what} runs past its end")
        self.at += count
        return self.data[self.at - count:self.at]

    def uleb(self, what: str) -> int:
        if self.at < len(self.data) and self.data[self.at] < 0x80:  # most numbers are small
            self.at += 1
            return self.data[self.at - 1]
        value = shift = 0
        for _ in range(LEB_BYTES_MAX):
            if self.at >= len(self.data):
                break
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
        raise self.fail(f"bad number in {what}")

    def sleb(self, what: str) -> int:
        start = self.at
        value = self.uleb(what)
        bits = 7 * (self.at - start)
        return value - (1 << bits) if value & (1 << (bits - 1)) else value

    def skip_lebs(self, count: int, what: str) -> None:
        """Skip ``count`` LEB128 numbers without a step per number: each ends with the
        one byte whose high bit is clear."""
        start, total = self.at, count
        while count:
            window = self.data[self.at:self.at + count]
            if len(window) < count:
                raise self.fail(f"{what} runs past its end")
            self.at += count
            count -= len(window.translate(None, _CONTINUATION))
            if self.at - start > LEB_BYTES_MAX * total:  # else a long number is slow
                raise self.fail(f"bad number in {what}")
