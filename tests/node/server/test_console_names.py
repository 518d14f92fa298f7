"""The console escapes in a device name exactly the characters ``clawsync devices``
escapes (``crdt.device.shown_name``), written alike: its character class is a copy of
``crdt.device``'s sets, and this runs it under Node.js over every code point, so an
edit to one side alone fails here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crdt.device import shown_name

STATIC = Path(__file__).resolve().parents[3] / "node" / "console" / "static"
#: Surrogates are no characters: a Python ``str`` may hold one, a name sent as UTF-8 never.
SURROGATES = range(0xD800, 0xE000)
# Every code point but the surrogates through the console's shownName; prints those it
# changes, with what it shows instead.
SHOWN = f"""
import {{ shownName }} from {json.dumps((STATIC / "dom.js").as_uri())};
const changed = {{}};
for (let code = 0; code <= 0x10ffff; code++) {{
  if (code >= 0xd800 && code < 0xe000) continue;
  const char = String.fromCodePoint(code);
  const shown = shownName(char);
  if (shown !== char) changed[code] = shown;
}}
console.log(JSON.stringify(changed));
"""


def test_the_console_escapes_what_shown_name_escapes() -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the console's own code needs it")
    done = subprocess.run(["node", "--input-type=module", "-e", SHOWN],
                          capture_output=True, text=True, check=True, timeout=120)
    console = {int(code): shown for code, shown in json.loads(done.stdout).items()}
    python: dict[int, str] = {}
    for code in range(sys.maxunicode + 1):
        if code not in SURROGATES and (shown := shown_name(chr(code))) != chr(code):
            python[code] = shown
    assert python  # the sets are not empty, so the comparison means something
    differing = sorted(code for code in console.keys() | python.keys()
                       if console.get(code) != python.get(code))
    assert not differing, [(f"U+{code:04X}", console.get(code), python.get(code))
                           for code in differing]
