"""This node's device key: a file in the data folder, made on first start, the owner's only.

The key is an Ed25519 private key (``crdt.device``) in ``device.key``, PKCS #8 PEM. It is
written to a new file created with mode 0600 (never readable by others, not even for an
instant), fsynced, then linked into place, so that a crash leaves either no key or a
whole one, and two processes starting at once end up with the same key. On every start
the file must be a key and be neither readable nor writable by group or others, or the
node refuses to start, naming the file and the fix.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> first = open_key(folder)
>>> first.created, open_key(folder).device_id == first.device_id, oct(mode(folder))
(True, True, '0o600')
>>> read_key(folder).created
False
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crdt import device
from crdt.errors import InvalidInput
from crdt.signing import Signer
from node.folder import create_file

#: The key's file in the data folder.
KEY_FILE = "device.key"
#: Largest key file read (an Ed25519 key in PEM is 119 bytes); a larger one is not a key.
KEY_FILE_BYTES_MAX = 4096
#: Permission bits of group and others: any of them set refuses the key.
_SHARED_BITS = 0o077


class DeviceKeyError(Exception):
    """The key file is missing, shared with others or not a key. The message names the
    file and what to do, in one line."""


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """This node's key, where it lives, and whether this start made it."""

    private_key: Ed25519PrivateKey
    path: Path
    created: bool = False

    @property
    def public_key(self) -> bytes:
        return device.public_bytes(self.private_key)

    @property
    def device_id(self) -> str:
        return device.device_id(self.public_key)

    def signer(self, name: str) -> Signer:
        """What the store signs this device's events with (``crdt.signing``)."""
        return Signer(self.private_key, name)


def key_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE


def open_key(data_dir: Path) -> DeviceKey:
    """The key of ``data_dir``, made first if the folder has none (the folder must
    exist); ``DeviceKeyError`` if it cannot be used."""
    path = key_path(data_dir)
    created = False
    if not os.path.lexists(path):
        created = _create(path)
    key = read_key(data_dir)
    return DeviceKey(key.private_key, key.path, created)


def read_key(data_dir: Path) -> DeviceKey:
    """The key of ``data_dir``, which must have one; ``DeviceKeyError`` otherwise."""
    path = key_path(data_dir)
    try:
        # Not O_NOFOLLOW: a key mounted as a secret is often a symbolic link. The checks
        # below are of the file that was opened.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DeviceKeyError(f"{path} does not exist: a node makes its device key when it "
                             f"first starts (clawsync serve --data-dir {path.parent})") from None
    except OSError as error:
        raise DeviceKeyError(f"cannot read the device key {path}: "
                             f"{error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DeviceKeyError(f"the device key {path} is not a file")
        if os.name == "posix" and info.st_mode & _SHARED_BITS:
            raise DeviceKeyError(
                f"the device key {path} is open to others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): anyone who can read it can write as this "
                f"device. Make it the owner's only: chmod 600 {path}")
        data = b""
        while len(data) <= KEY_FILE_BYTES_MAX and (part := os.read(fd, 8192)):
            data += part
    finally:
        os.close(fd)
    try:
        if len(data) > KEY_FILE_BYTES_MAX:
            raise InvalidInput(f"is over {KEY_FILE_BYTES_MAX} bytes")
        private_key = device.load_private_pem(data)
    except InvalidInput as error:
        raise DeviceKeyError(
            f"the device key {path} {error.reason}. Restore the file from a backup; or, "
            f"to make this node a new device, move it away (its events stay valid; peers "
            f"must then add the new device id)") from None
    return DeviceKey(private_key, path)


def folder_signer(data_dir: Path, name: str) -> Signer | None:
    """The signer of ``data_dir``'s key, for an embedded store on a node's folder (its
    events are signed as the node's); None if the folder has no key (not a node's)."""
    if not os.path.lexists(key_path(data_dir)):
        return None
    return read_key(data_dir).signer(name)


def mode(data_dir: Path) -> int:
    """The permission bits of ``data_dir``'s key file."""
    return stat.S_IMODE(os.stat(key_path(data_dir)).st_mode)


def _create(path: Path) -> bool:
    """Write a new key to ``path`` unless one appears there first; True if ours did
    (a key that another process put there meanwhile is kept, and both use it)."""
    try:
        return create_file(path, device.private_pem(device.generate()), 0o600)
    except OSError as error:
        raise DeviceKeyError(f"cannot write the device key {path}: "
                             f"{error.strerror or error}") from None

