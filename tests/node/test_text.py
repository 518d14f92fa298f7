"""What ``node.text.printable`` escapes before text from elsewhere reaches a terminal."""

from __future__ import annotations

import unicodedata

import pytest

from node.text import printable

#: Unicode's Bidi_Control characters (PropList.txt): marks, embeddings, overrides,
#: isolates. Printed raw, each reorders what a terminal that honours them shows.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: The classes ``unicodedata.bidirectional`` gives the embeddings, overrides and isolates.
EXPLICIT_CLASSES = {"LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI"}


@pytest.mark.parametrize("char", BIDI_CONTROLS)
def test_a_bidirectional_control_is_shown_escaped(char: str) -> None:
    """A session writer's ``evil\\u202etxt.exe`` would be shown as ``evilexe.txt``."""
    shown = printable(f"evil{char}txt.exe")
    assert shown == f"evil\\u{ord(char):04x}txt.exe"
    assert not set(shown) & set(BIDI_CONTROLS)
    assert printable(shown) == shown


def test_every_explicit_direction_character_is_escaped() -> None:
    """The list above misses none of the embeddings, overrides and isolates."""
    explicit = [chr(code) for code in range(0x110000)
                if unicodedata.bidirectional(chr(code)) in EXPLICIT_CLASSES]
    assert explicit and set(explicit) <= set(BIDI_CONTROLS)
    assert all(printable(char) != char for char in explicit)


@pytest.mark.parametrize("text", [
    "\U0001f469\u200d\U0001f4bb",  # a zero width joiner joins one emoji of a name
    "caf\u00e9 \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # RTL letters
    "soft\u00adhyphen\ufe0f",  # other format or variation characters change no order
])
def test_other_text_is_left_as_it_is(text: str) -> None:
    assert printable(text) == text


def test_c0_c1_and_del_are_still_escaped_as_before() -> None:
    assert printable("\x1b[2J\x7f\x9b\n") == "\\x1b[2J\\x7f\\x9b\\x0a"
