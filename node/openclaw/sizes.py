"""The size rule: an OpenClaw record too big for one event is imported, smaller.

An event may be at most ``crdt.events.EVENT_BYTES_MAX`` (128 KiB) of canonical CBOR. A
record whose event would be bigger (a pasted screenshot, a long tool output) keeps
everything but its largest values: the largest string in the event is replaced by a
summary, then the next largest, until the event fits. A summary is a text that says what
was there and lets anyone check a copy of it:

    [not kept by clawsync: image/png, 312345 bytes, sha256 9f86d081...]

An image block whose base64 ``data`` is summarised becomes a text block holding that
summary (OpenClaw reads it back as text, and a model sees what was left out); any other
string is replaced by the summary in place. The size is of the decoded image, or of the
string's UTF-8; the hash is SHA-256 of those same bytes. Strings shorter than
``SUMMARY_FROM_BYTES`` are never summarised: a record that only many small values make
too big is kept as its envelope and one summary of its whole JSON.

>>> summary_text(b"hello", "text/plain")
'[not kept by clawsync: text/plain, 5 bytes, sha256 2cf24dba5fb0a30e26e83b2ac5b9e29e...]'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from typing import Any

#: Strings shorter than this (UTF-8 bytes) are never summarised: a summary is about
#: 130 bytes, so replacing a short string would not make an event much smaller.
SUMMARY_FROM_BYTES = 1024
SUMMARY_PREFIX = "[not kept by clawsync: "

Path = tuple[str | int, ...]


def summary_text(data: bytes, mime_type: str) -> str:
    """The text that stands for ``data``: its type, size and SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    return f"{SUMMARY_PREFIX}{mime_type}, {len(data)} bytes, sha256 {digest}]"


def largest_string(value: Any, path: Path = ()) -> tuple[int, Path] | None:
    """The UTF-8 size and path of the largest string in a JSON value (first if tied)."""
    best: tuple[int, Path] | None = None
    for size, where in _strings(value, path):
        if best is None or size > best[0]:
            best = (size, where)
    return best


def _strings(value: Any, path: Path) -> Iterator[tuple[int, Path]]:
    if isinstance(value, str):
        yield len(value.encode("utf-8", "surrogatepass")), path
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*path, key))


def summarise_at(value: Any, path: Path) -> dict[str, Any]:
    """Replace the string at ``path`` inside ``value`` (changed in place) by its summary;
    return what was summarised: ``{"path", "mime_type", "bytes", "sha256"}``."""
    parent = get_at(value, path[:-1])
    text = parent[path[-1]]
    block_path: Path | None = None
    if path[-1] == "data" and isinstance(parent, dict) and parent.get("type") == "image":
        mime_type = str(parent.get("mimeType") or "application/octet-stream")
        data = _decoded(text)
        block_path = path[:-1]
    else:
        mime_type, data = "text/plain", text.encode("utf-8", "surrogatepass")
    summary = summary_text(data, mime_type)
    if block_path is not None:
        # The image becomes a text block: OpenClaw has no image without its bytes.
        holder = get_at(value, block_path[:-1])
        holder[block_path[-1]] = {"type": "text", "text": summary}
    else:
        parent[path[-1]] = summary
    return {"path": list(block_path or path), "mime_type": mime_type, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def _decoded(text: str) -> bytes:
    """The bytes of base64 image data; text that is not base64 counts as its UTF-8."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return text.encode("utf-8", "surrogatepass")


def get_at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def whole_summary(record: Any) -> str:
    """The summary of a whole record, as its compact JSON."""
    data = json.dumps(record, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    return summary_text(data.encode("utf-8", "surrogatepass"), "application/json")
