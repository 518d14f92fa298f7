"""Searching a data folder's raw bytes: is a forgotten string still on disk?"""

from __future__ import annotations

from pathlib import Path


def files_holding(folder: Path, marker: str | bytes) -> list[str]:
    """Every file under ``folder`` (SQLite's ``-wal`` and ``-shm`` too) whose bytes hold
    ``marker``: bytes as they are, text in UTF-8 or in UTF-16 (as some tools write text),
    relative to ``folder``."""
    needles = ([marker] if isinstance(marker, bytes)
               else [marker.encode(), marker.encode("utf-16-le")])
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                found.append(str(path.relative_to(folder)))
    return found
