"""What a node's start does to its data folder, and to the ``--storage`` folder, before it
serves (``node.server.run.start``): checks their formats before anything is made, makes
the folders, locks the data folder when the log is elsewhere, marks its format once the
store holds it, and says or undoes what a start that fails made there."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from crdt.errors import FolderInUse, LogFormatError, StoreError
from crdt.log.store import EventStore
from crdt.storage.backends import backend_of
from crdt.storage.disk import holds_storage
from crdt.storage.lock import LOCK_NAME, FolderLock
from node.config import Config, software_version
from node.data_format import (
    FolderFormatError,
    Marking,
    check_format,
    log_refusal,
    mark_format,
    read_log_first,
)
from node.device import KEY_FILE, DeviceKey
from node.folder import make_folders
from node.server.start_errors import FolderTaken, StartError


def folder_lock(config: Config) -> FolderLock | None:
    """The data folder's lock when the log lives elsewhere (``--storage``): the folder
    holds the device key, and two nodes with one key would number their own events from
    one counter each, giving two events one origin and seq. A log in the folder locks it
    itself (``crdt.storage.lock``). ``StartError`` if another process holds it."""
    if not folder_lock_needed(config):
        return None
    try:
        return FolderLock.acquire(config.data_dir)
    except FolderInUse as error:
        raise FolderTaken(str(error)) from None


def folder_lock_needed(config: Config) -> bool:
    """Whether the log lives outside the data folder, which then needs a lock of its own
    (``folder_lock``)."""
    storage = config.storage
    return storage is not None and not (
        backend_of(storage) is None and Path(storage).resolve() == config.data_dir.resolve())


def check_folder_format(config: Config) -> None:
    """``StartError`` if the data folder is of a newer format than this version reads;
    before anything is made or locked in it, so that a refused folder is left as it is."""
    try:
        check_format(config.data_dir, software_version())
    except FolderFormatError as error:
        raise StartError(str(error)) from None


def check_storage_log(config: Config) -> None:
    """``StartError`` if the log elsewhere (``--storage DIR``) is refused as another
    version's or damaged; before the data folder is made or locked (``folder_lock``), so
    that a refused start leaves that folder as it found it: no folder made, no lock file
    in it; the log is read changing nothing in its folder (``read_log_first``), which a
    refused start leaves as it found it too. A log that cannot be read at all (SQLite
    finds no database, or a malformed one) is refused here too: the open would fail the
    same way, after making the folder. What may pass is said where the log is opened
    (another node holding it, a lock held past the wait: the open waits again, and
    serves once it is let go).
    A new log, a storage URL, or a log in the data folder (``check_log_first``) is not
    read here."""
    storage = config.storage
    if storage is None or not folder_lock_needed(config) or backend_of(storage) is not None \
            or not holds_storage(storage):
        return
    try:
        read_log_first(storage)
    except LogFormatError as error:
        raise StartError(str(log_refusal(error, config.log_location,
                                         software_version()))) from None
    except StoreError as error:  # no database, a malformed one: the open refuses it too
        raise StartError(str(error)) from None


async def mark_folder_format(config: Config) -> Marking:
    """Mark the data folder with this version's format (``node.data_format``), once the
    store holds it: a folder of an earlier version, which has no marker, gets it now.
    Whether this start wrote it is said in the "serving" line; why it could not, in a
    warning after it."""
    try:
        return await asyncio.to_thread(mark_format, config.data_dir, software_version())
    except FolderFormatError as error:
        raise StartError(str(error)) from None


def check_folder_free(config: Config) -> None:
    """``StartError`` if a node holds the data folder already (nothing is made)."""
    if not (config.data_dir / LOCK_NAME).is_file():
        return
    try:
        FolderLock.acquire(config.data_dir).release()
    except FolderInUse as error:
        raise FolderTaken(str(error)) from None
    except OSError:
        return  # the listen error is the one to tell


def left_behind(made: Path, data_dir: Path) -> str:
    """What a failed first start left in the folder it made, and that it may be used."""
    holds = "a new device key and no events" if (data_dir / KEY_FILE).is_file() \
        else "no device key"
    return f"this start made {made}, with {holds}: start again with it, or remove it"


def make_data_folder(folder: Path) -> Path | None:
    """Create ``folder`` and its missing parents; the highest of them this made (None if
    it existed). ``StartError`` if it cannot be made."""
    made = _make_folders(folder, "data folder")
    return made[0] if made else None


def make_storage_folder(config: Config) -> list[Path]:
    """Make the folder of ``--storage DIR`` (the store would, but then what it made is
    not known); exactly the folders this made, for ``remove_empty`` when the start
    fails: a failed first start leaves no empty ``--storage`` folder behind. ``rmdir``
    removes only an empty folder, so nothing that holds a file goes: not a log the store
    began (the port lost to a start at once: that folder is kept, as the data folder
    is), nor one another node made there meanwhile. None made for a storage URL
    (``memory:``) or none given (the log is in the data folder)."""
    if config.storage is None or backend_of(config.storage) is not None:
        return []
    return _make_folders(Path(config.storage), "storage folder")


def _make_folders(folder: Path, what: str) -> list[Path]:
    """``make_folders``, its failure a ``StartError`` naming ``what`` the folder is."""
    try:
        return make_folders(folder)
    except OSError as error:
        raise StartError(f"cannot create the {what} {folder}: "
                         f"{error.strerror or error}") from None


def check_log_first(config: Config) -> None:
    """Read the log's meta record before a key is made for a data folder that holds the
    log (``EventStore.check_format``), so that a log refused as another version's or
    damaged is refused with no key made. Else the key would be removed only after the
    refused open let go of the folder, and a start meanwhile with the log elsewhere
    (``--storage``), which locks the folder, would run with that key and then lose it.
    A folder with its key already, or a new one, or a log elsewhere (whose folder
    lock is held from before the key is made), is not read twice."""
    folder = config.data_dir
    if folder_lock_needed(config) or os.path.lexists(folder / KEY_FILE) \
            or not holds_storage(folder):
        return
    EventStore.check_format(folder)


def unmake_key(device: DeviceKey | None) -> str:
    """Remove the key this start made (``device.created``) in a folder whose log is
    refused: the log was moved in or is another version's, and a key left behind would
    pass for the folder's identity on a later start. What to add to the refusal: nothing
    once removed (the folder is as it was), else that the key stays."""
    if device is None or not device.created:
        return ""
    try:
        device.path.unlink()
    except FileNotFoundError:
        return ""
    except OSError as error:
        return (f" (this start made the device key {device.path} and could not remove "
                f"it: {error.strerror or error})")
    return ""
