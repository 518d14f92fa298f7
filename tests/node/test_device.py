"""The device key file: made once, owner-only, refused when others may read it or when it
is not a key; and the node's name and device id in ``/v1/node``."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from crdt import device
from node.config import NAME_FALLBACK, Config, default_name, host_name
from node.device import KEY_FILE, KEY_FILE_BYTES_MAX, DeviceKeyError, open_key, read_key
from node.server.run import start
from node.server.start_errors import StartError
from tests.node.conftest import NodeFactory


@pytest.fixture
def no_umask() -> Iterator[None]:
    """A umask that takes no bit away: the key must be 0600 by itself."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("no_umask")
def test_the_first_open_makes_an_owner_only_key_and_later_opens_keep_it(
        tmp_path: Path) -> None:
    first = open_key(tmp_path)
    path = tmp_path / KEY_FILE
    assert first.created and first.path == path
    assert path.stat().st_mode & 0o777 == 0o600
    again = open_key(tmp_path)
    assert not again.created
    assert again.device_id == first.device_id == device.device_id(first.public_key)
    assert sorted(os.listdir(tmp_path)) == [KEY_FILE]  # no temporary file left behind
    assert device.load_private_pem(path.read_bytes())  # PKCS #8 PEM that others can read


def test_processes_starting_at_once_share_one_key(tmp_path: Path) -> None:
    ids: list[str] = []
    barrier = threading.Barrier(4)

    def race() -> None:
        barrier.wait()
        ids.append(open_key(tmp_path).device_id)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    assert sorted(os.listdir(tmp_path)) == [KEY_FILE]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o644, 0o666, 0o700 | 0o007])
def test_a_key_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    open_key(tmp_path)
    path = tmp_path / KEY_FILE
    path.chmod(mode)
    with pytest.raises(DeviceKeyError) as caught:
        open_key(tmp_path)
    message = str(caught.value)
    assert f"the device key {path} is open to others (mode {mode:04o})" in message
    assert message.endswith(f"chmod 600 {path}")
    path.chmod(0o600)  # the fix the message gives works
    assert open_key(tmp_path).device_id


def test_owner_read_only_is_fine(tmp_path: Path) -> None:
    made = open_key(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o400)
    assert read_key(tmp_path).device_id == made.device_id


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "is not a private key in PEM"),
    (b"ssh-ed25519 AAAA", "is not a private key in PEM"),
    (b"x" * (KEY_FILE_BYTES_MAX + 1), f"is over {KEY_FILE_BYTES_MAX} bytes"),
])
def test_a_file_that_is_not_a_key_is_refused_and_left_alone(tmp_path: Path, content: bytes,
                                                            reason: str) -> None:
    path = tmp_path / KEY_FILE
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(DeviceKeyError, match=f"the device key {path} {reason}"):
        open_key(tmp_path)
    assert path.read_bytes() == content  # never replaced by a new key


def test_a_folder_in_the_key_s_place_is_refused(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).mkdir(mode=0o700)
    with pytest.raises(DeviceKeyError, match="is not a file"):
        open_key(tmp_path)


def test_a_key_behind_a_symbolic_link_is_read(tmp_path: Path) -> None:
    # As a secret mounted into a container is.
    secrets, folder = tmp_path / "secrets", tmp_path / "data"
    secrets.mkdir()
    folder.mkdir()
    made = open_key(secrets)
    (folder / KEY_FILE).symlink_to(made.path)
    assert open_key(folder).device_id == made.device_id


def test_reading_without_a_key_says_how_one_is_made(tmp_path: Path) -> None:
    with pytest.raises(DeviceKeyError, match="does not exist: a node makes its device key "
                                             "when it first starts"):
        read_key(tmp_path)
    assert not (tmp_path / KEY_FILE).exists()


async def test_a_node_shows_its_device_id_and_name(make_node: NodeFactory,
                                                   tmp_path: Path) -> None:
    node = await make_node(name="Anna's laptop")
    async with aiohttp.ClientSession() as client, client.get(node.url + "/v1/node") as resp:
        about = await resp.json()
    assert about["device_id"] == read_key(node.config.data_dir).device_id
    assert about["name"] == "Anna's laptop"
    assert about["node_id"] == node.astore.node_id  # the origin it writes under, apart


async def test_a_node_with_a_shared_key_does_not_open_its_log(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    open_key(folder)
    (folder / KEY_FILE).chmod(0o644)
    with pytest.raises(StartError, match="chmod 600"):
        await start(Config(data_dir=folder, port=0))
    assert sorted(os.listdir(folder)) == [KEY_FILE]


def test_the_name_defaults_to_the_host_name_and_is_checked() -> None:
    assert Config().name == host_name()
    assert Config(name="phone").check().name == "phone"
    with pytest.raises(ValueError, match="--name: is 65 bytes; the limit is 64"):
        Config(name="x" * 65).check()
    with pytest.raises(ValueError, match="--name: must not contain control characters"):
        Config(name="a\tb").check()


@pytest.mark.parametrize("name", ["laptop\u200b", "\u202elaptop", "pho\u2028ne", "\u200d"])
def test_a_name_a_new_device_may_not_take_is_this_devices_still(name: str) -> None:
    """This device's own name is in its own records already: characters refused in a new
    name since do not stop it starting (``serve`` warns of them instead)."""
    assert Config(name=name).check().name == name


@pytest.mark.parametrize(("host", "name"), [
    ("laptop", "laptop"), ("laptop.lan", "laptop.lan"),
    ("laptop." + "x" * 60, "laptop"),  # the whole is too long: its first label
    ("\u00e9" * 40, "\u00e9" * 32),  # a first label too long: cut at a whole character
    # Names a new device may not take: neither the whole nor the first label.
    ("lap\u200btop.lan", NAME_FALLBACK), ("\u202elaptop." + "x" * 60, NAME_FALLBACK),
    ("phone\u3164", NAME_FALLBACK), ("\u2800", NAME_FALLBACK),
    # Names no node takes: it would not start with the name it chose itself.
    ("lap\x07top", NAME_FALLBACK), ("lap\udcfftop", NAME_FALLBACK), ("", NAME_FALLBACK),
])
def test_the_default_name_is_one_a_new_device_may_take(host: str, name: str) -> None:
    """The default name is not chosen, yet this device's record names it: it is one
    ``devices add`` would take, and ``serve`` starts with it without a warning."""
    assert default_name(host) == name
    assert device.check_device_name(name) == name
    assert Config(name=default_name(host)).check().name == name
    assert device.check_device_name(host_name()) == host_name()
