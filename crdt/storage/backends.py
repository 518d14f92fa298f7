"""Which backend a storage location names, and opening it.

A location is a folder (the default backend: diskcache, ``crdt.storage.disk``) or a URL
whose scheme names a backend: ``memory:`` for ``crdt.storage.memory``. To add a backend
(PostgreSQL for a hub, say): write one module with a class that has the methods of
``crdt.storage.base.Storage`` and a classmethod ``open(location)``, add its scheme to
``BACKENDS``, and name it in ``tests/support/storage.py``: the conformance suite
(``tests/crdt/storage``) and the store tests then run against it too. Nothing in
``crdt.log``, ``sync`` or ``node`` changes: they open whatever ``--storage`` names
through ``open_storage``.

>>> open_storage("memory:").location
'memory:'
>>> open_storage("nosuch://x")
Traceback (most recent call last):
ValueError: unknown storage 'nosuch://x': give a folder, or one of memory:
>>> open_storage("memroy:")
Traceback (most recent call last):
ValueError: unknown storage 'memroy:': give a folder, or one of memory:
"""

from __future__ import annotations

import importlib
import os
import re

from crdt.storage.base import Storage
from crdt.storage.lock import Holder

#: Scheme -> "module:class" of its backend, imported only when used.
BACKENDS: dict[str, str] = {
    "memory": "crdt.storage.memory:MemoryStorage",
}
_SCHEME = re.compile(r"([a-z][a-z0-9+.-]+):")


def backend_of(location: str | os.PathLike[str]) -> str | None:
    """The scheme of the backend ``location`` names; None for a folder. ``ValueError``
    for a URL of no known backend: ``scheme://...``, or a bare ``scheme:`` (a mistyped
    ``memory:`` would otherwise become a folder of that name, on disk).

    >>> backend_of("memory:"), backend_of("clawsync-data")
    ('memory', None)
    """
    text = os.fspath(location)
    match = _SCHEME.match(text)
    scheme = match.group(1) if match else None
    if scheme in BACKENDS:
        return scheme
    if match is not None and (match.end() == len(text)
                              or text[match.end():].startswith("//")):
        raise ValueError(f"unknown storage {text!r}: give a folder, or one of "
                         f"{', '.join(f'{name}:' for name in sorted(BACKENDS))}")
    return None


def open_storage(location: str | os.PathLike[str],
                 holder: Holder | None = None) -> Storage:
    """Open the storage at ``location``: a backend's URL, or else a folder (diskcache),
    whose lock file says what ``holder`` says (a URL has no lock file)."""
    scheme = backend_of(location)
    if scheme is not None:
        module, _, name = BACKENDS[scheme].partition(":")
        opened: Storage = getattr(importlib.import_module(module), name).open(
            os.fspath(location))
        return opened
    from crdt.storage.disk import DiskStorage  # imports diskcache only when used

    return DiskStorage.open(location, holder)


def peek(location: str | os.PathLike[str], key: str) -> bytes | None:
    """``key``'s value at ``location`` (None if it has none), read changing nothing there:
    a folder as ``crdt.storage.disk.peek`` reads it; a backend's URL through an open,
    which for ``memory:`` holds nothing yet.

    >>> peek("memory:", "meta") is None
    True
    """
    if backend_of(location) is not None:
        storage = open_storage(location)
        try:
            return storage.get(key)
        finally:
            storage.close()
    from crdt.storage.disk import peek as peek_folder  # imports diskcache only when used

    return peek_folder(location, key)
