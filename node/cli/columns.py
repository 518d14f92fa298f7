"""Fitting a table of whole cells into a terminal's width: where a cell breaks into lines
(between words, a time kept whole) and how wide each column may be. Apart from
``node.cli.output`` because it is pure text arithmetic, no printing and no terminal: it
takes the width it is given, and its doctests say all it does.
"""

from __future__ import annotations

import re

#: A date and time as ``node.text.time_text`` writes it (``2026-12-01 10:00:00Z``), or
#: as another might (to the minute, or past the second).
_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d(?:\.\d+)?)?Z?"
#: A word where a cell may be broken into lines: a time is one (its date on one line and
#: its clock on the next would read as two values), with what follows it up to a space
#: ("05:04:02Z:" before a reason), which would else be a word of its own; and the schema of
#: a version ("0.3.0 (schema 1)", ``node.cli.status.version``), whose "1)" on a line of
#: its own says nothing.
_WORD = re.compile(rf"{_TIME}\S*|\(schema \d+\)\S*|\S+")


def wrapped(cell: str, width: int, *, fold: bool = False, one_per_line: bool = False) -> str:
    """``cell`` broken into lines of at most ``width`` terminal cells, between words,
    none of which is broken (a word wider than ``width`` takes a line of its own), unless
    ``fold``: then such a word is broken between characters. ``one_per_line``: the words
    are items of a list (a token's session patterns), each on a line of its own where
    they do not all fit on one: a list, not lines filled as prose are.

    >>> print(wrapped("revoked 2026-12-02 12:00:00Z", 20))
    revoked
    2026-12-02 12:00:00Z
    >>> print(wrapped("removed by home, 2026-12-02 12:00:00Z: lost", 21))
    removed by home,
    2026-12-02 12:00:00Z:
    lost
    >>> print(wrapped("0.3.0 (schema 1)", 12))
    0.3.0
    (schema 1)
    >>> print(wrapped("家族のノート アプリ", 12))
    家族のノート
    アプリ
    >>> print(wrapped("see https://example.com/a/b ok", 12, fold=True))
    see
    https://exam
    ple.com/a/b
    ok
    >>> print(wrapped("tg:* a:* agent:main:*", 12, one_per_line=True))
    tg:*
    a:*
    agent:main:*
    """
    from rich.cells import cell_len

    if one_per_line and cell_len(cell) > width:
        return "\n".join(_WORD.findall(cell))

    def pieces(word: str) -> list[str]:
        if not fold or cell_len(word) <= width:
            return [word]
        found = [""]
        for char in word:  # by terminal cells: 家 takes two
            if found[-1] and cell_len(found[-1] + char) > width:
                found.append("")
            found[-1] += char
        return found

    lines: list[str] = []
    for word in _WORD.findall(cell):
        for piece in pieces(word):
            if lines and cell_len(lines[-1]) + 1 + cell_len(piece) <= width:
                lines[-1] += " " + piece
            else:
                lines.append(piece)
    return "\n".join(lines)


def column_widths(headers: list[str], rows: list[list[str]], wrap: tuple[int, ...],
                   width: int, padding: int, fold: tuple[int, ...] = (),
                   floor: list[int] | None = None) -> list[int] | None:
    """The width of each column of a table of whole cells that fits ``width`` (``padding``
    between two columns, none at the edges), or None if none does. A column takes its
    widest cell; the columns in ``wrap`` give up columns, the widest first, down to
    their longest word (a time is one), those in ``fold`` further, and any column down to
    its header's longest word ("bytes out" over two lines). rich's own shrinking takes no
    minimum: it narrowed the widest column below a word's width, and cut the word with
    "…". ``floor``: the widths each column takes at the least while there is room (those
    of a table's pages before, ``node.cli.output._later_widths``).

    >>> column_widths(["id", "bytes out"], [["3f9c0a1b", "1331"]], (), 15, 2)
    [8, 5]
    >>> column_widths(["id", "note"], [["3f9c", "a b"]], (1,), 20, 2, floor=[8, 6])
    [8, 6]
    >>> column_widths(["id", "note"], [["3f9c", "a b"]], (1,), 12, 2, floor=[4, 10])
    [4, 6]
    """
    from rich.cells import cell_len

    def longest_word(cells: list[str]) -> int:
        return max((cell_len(word) for cell in cells for word in _WORD.findall(cell)),
                   default=0)

    widths = [max(cell_len(cell) for cell in [header, *(row[index] for row in rows)])
              for index, header in enumerate(headers)]
    if floor is not None:
        widths = [max(width, below) for width, below in zip(widths, floor, strict=True)]
    least = [longest_word([header]) if index in fold
             else max(longest_word([header]),
                      longest_word([row[index] for row in rows]) if index in wrap
                      else max((cell_len(row[index]) for row in rows), default=0))
             for index, header in enumerate(headers)]
    # What the cells take whole: a column wider than that is so for its header alone
    # ("peer lacks" over cells of "0"), which gives up columns first, over two lines,
    # before any cell is broken ("0.3.0 (schema 1)" over three, the number columns
    # keeping spare room).
    cells = [max((cell_len(row[index]) for row in rows), default=0)
             for index in range(len(headers))]
    excess = sum(widths) + padding * (len(widths) - 1) - width
    while excess > 0:
        shrinkable = [index for index in range(len(widths))
                      if widths[index] > max(least[index], cells[index])] \
            or [index for index in range(len(widths)) if widths[index] > least[index]]
        if not shrinkable:
            return None
        widest = max(shrinkable, key=lambda index: widths[index])
        widths[widest] -= 1
        excess -= 1
    return widths


def layout_tries(wrap: tuple[int, ...], optional: tuple[int, ...],
                 wrap_last: tuple[int, ...], wrap_before: tuple[int, ...],
                 ) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The tables a whole table tries, in order (``print_rows`` says what the columns
    are): the columns wrapped, those left out. The columns of ``wrap_last`` whole with
    ever fewer ``optional`` columns, then wrapped with ever fewer; or, with
    ``wrap_before`` (the last of ``optional``), wrapped as soon as the others are left
    out, before each of ``wrap_before`` is.

    >>> layout_tries((1, 2), (5, 4), (2,), (4,))
    [((1,), ()), ((1,), (5,)), ((1, 2), (5,)), ((1,), (5, 4)), ((1, 2), (5, 4))]
    """
    firm = tuple(index for index in wrap if index not in wrap_last)
    held = len(optional) - len(wrap_before)
    tries = [(firm, optional[:count]) for count in range(held + 1)]
    if not wrap_before:
        return tries + ([(wrap, optional[:count]) for count in range(held + 1)]
                        if wrap_last else [])
    tries.append((wrap, optional[:held]))
    for count in range(held + 1, len(optional) + 1):
        tries += [(firm, optional[:count]), (wrap, optional[:count])]
    return tries
