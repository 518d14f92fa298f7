"""The console escapes in a device name exactly the characters ``clawsync devices``
escapes (``crdt.device.shown_name``), written alike: its character class is a copy of
``crdt.device``'s sets, and this runs it under Node.js over every code point (alone and
after a backslash) and over runs of backslashes, so an edit to one side alone fails here."""

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
#: Names of backslashes, typed escapes and characters shown escaped, as they come.
BACKSLASHED = ["\\", "\\\\", "a\\", "C:\\temp", "\\u3164", "\\\\u3164", "\\\u3164",
               "\\\\\u3164", "\\x1b", "\\\x1b", "\\U0001d173", "\\\U0001d173",
               "a\\\\\\b\\\\\\u\\\\\u200b\\"]
# Every code point but the surrogates through the console's shownName, alone and after a
# backslash; prints those it changes, with what it shows instead; then the names above.
SHOWN = f"""
import {{ shownName }} from {json.dumps((STATIC / "dom.js").as_uri())};
const changed = {{}};
for (let code = 0; code <= 0x10ffff; code++) {{
  if (code >= 0xd800 && code < 0xe000) continue;
  for (const name of [String.fromCodePoint(code), "\\\\" + String.fromCodePoint(code)]) {{
    const shown = shownName(name);
    if (shown !== name) changed[name] = shown;
  }}
}}
console.log(JSON.stringify([changed, {json.dumps(BACKSLASHED)}.map(shownName)]));
"""


def test_the_console_escapes_what_shown_name_escapes() -> None:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the console's own code needs it")
    done = subprocess.run(["node", "--input-type=module", "-e", SHOWN],
                          capture_output=True, text=True, check=True, timeout=120)
    console, backslashed = json.loads(done.stdout)
    python: dict[str, str] = {}
    for code in range(sys.maxunicode + 1):
        if code in SURROGATES:
            continue
        for name in (chr(code), "\\" + chr(code)):
            if (shown := shown_name(name)) != name:
                python[name] = shown
    assert python  # the sets are not empty, so the comparison means something
    differing = sorted(name for name in console.keys() | python.keys()
                       if console.get(name) != python.get(name))
    assert not differing, [(name, console.get(name), python.get(name))
                           for name in differing[:20]]
    assert backslashed == [shown_name(name) for name in BACKSLASHED]
