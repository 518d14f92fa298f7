"""The test processes' ports (``tests.support.ports``): a block of ports one process
claimed is handed out by no other (another xdist worker, a run in another checkout)
while that process lives, and is free to claim once it ended, however it ended."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.support import ports
from tests.support.processes import ROOT, child_env

#: A test process of its own: asks for a port, says it, and lives until its input ends.
HOLDER = ("from tests.support.ports import free_port\n"
          "print(free_port(), flush=True)\n"
          "import sys; sys.stdin.read()\n")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="claims are abstract Unix sockets, Linux's own")


def block_of(port: int) -> int:
    return port - (port - ports.TEST_PORTS_FROM) % ports.PORT_BLOCK


def test_a_block_another_process_holds_is_handed_out_here_only_once_it_ended() -> None:
    if ports.local_ports_start() - ports.TEST_PORTS_FROM < 1000:
        pytest.skip("no room below the kernel's range: the kernel picks the ports")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=ROOT, env=child_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        taken = int(holder.stdout.readline())
        block = block_of(taken)
        # Enough ports here to go through several blocks: none is of the holder's.
        mine = {ports.free_port() for _ in range(3 * ports.PORT_BLOCK)}
        assert not any(block <= port < block + ports.PORT_BLOCK for port in mine)
        assert ports._claim(block) is False
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up of its own
        holder.wait()
    assert ports._claim(block) is True
