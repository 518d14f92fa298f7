"""The test processes' ports (``tests.support.ports``): a block of ports one process
claimed is handed out by no other (another xdist worker, a run in another checkout)
while that process lives, and is free to claim once it ended, however it ended; where
there are no abstract sockets, by a lock on the block's file. Once every block was
taken, a block freed later is handed out from its first port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ports
from tests.support.processes import ROOT, child_env

#: A test process of its own: asks for a port, says it, and lives until its input ends.
#: Its arguments: "lock" to claim by locks on files (in the folder given next).
HOLDER = ("import sys\n"
          "from tests.support import ports\n"
          "if sys.argv[1:2] == ['lock']:\n"
          "    ports.ABSTRACT_CLAIMS, ports.CLAIMS_DIR = False, sys.argv[2]\n"
          "print(ports.free_port(), flush=True)\n"
          "sys.stdin.read()\n")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="claims are abstract Unix sockets, Linux's own")


def block_of(port: int) -> int:
    return port - (port - ports.TEST_PORTS_FROM) % ports.PORT_BLOCK


@pytest.fixture
def own_ports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process's ports as in a process of its own: no blocks yet; the claims it
    makes here let go of after the test."""
    if ports.local_ports_start() - ports.TEST_PORTS_FROM < 1000:
        pytest.skip("no room below the kernel's range: the kernel picks the ports")
    monkeypatch.setattr(ports, "_claims", [])
    monkeypatch.setattr(ports, "_blocks", [])
    monkeypatch.setattr(ports, "_next", 0)
    yield
    for claim in ports._claims:
        claim.close()


@pytest.mark.parametrize("claims", ["abstract", "lock"])
def test_a_block_another_process_holds_is_handed_out_here_only_once_it_ended(
        own_ports: None, claims: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = []
    if claims == "lock":  # as where there are no abstract sockets
        monkeypatch.setattr(ports, "ABSTRACT_CLAIMS", False)
        monkeypatch.setattr(ports, "CLAIMS_DIR", str(tmp_path))
        args = ["lock", str(tmp_path)]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, *args], cwd=ROOT,
                              env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None
        taken = int(holder.stdout.readline())
        block = block_of(taken)
        # The search for a block to claim starts at the holder's; enough ports here to
        # go through several blocks: none is of the holder's.
        monkeypatch.setattr(ports, "_first_block", lambda starts: starts.index(block))
        mine = {ports.free_port() for _ in range(3 * ports.PORT_BLOCK)}
        assert not any(block <= port < block + ports.PORT_BLOCK for port in mine)
        assert ports._claim(block) is False
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up of its own
        holder.wait()
    assert ports._claim(block) is True


def test_a_block_freed_after_all_were_taken_is_handed_out_from_its_first_port(
        own_ports: None, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = 10
    monkeypatch.setattr(ports, "local_ports_start",
                        lambda: ports.TEST_PORTS_FROM + blocks * ports.PORT_BLOCK)
    others: dict[int, socket.socket] = {}  # claims as another process's, let go of below
    try:
        for start in range(ports.TEST_PORTS_FROM, ports.local_ports_start(), ports.PORT_BLOCK):
            claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                claim.bind(ports.CLAIM_NAME % start)
            except OSError:  # another test process's
                claim.close()
                continue
            others[start] = claim
        if len(others) < 2:
            pytest.skip("the blocks are another test process's")
        first, second = sorted(others)[:2]
        others.pop(first).close()
        # Its one block, and then half of it again: every other block is taken.
        mine = [ports.free_port() for _ in range(ports.PORT_BLOCK * 3 + ports.PORT_BLOCK // 2)]
        assert {block_of(port) for port in mine} == {first}
        others.pop(second).close()
        free = [port for port in range(second, second + ports.PORT_BLOCK) if ports.is_free(port)]
        assert ports.free_port() == free[0]
        assert ports._blocks == [first, second]
    finally:
        for claim in others.values():
            claim.close()
