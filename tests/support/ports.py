"""Loopback ports for the nodes tests start, none handed out by two test processes.

Test nodes listen on ports from ``TEST_PORTS_FROM`` up to the kernel's range for the
local ends of outgoing connections (``ip_local_port_range``). A port the kernel hands out
(bind to port 0) lies in that range: while a node is down between a kill and its
restart, any connection of the run could take it as its local end, and the restart would
find its port in use.

A port found free is not taken until the node started on it listens, nor while that node
is down between a kill and its restart: another process asking for a free port meanwhile
must not be given it. So each test process (a run, each of its xdist workers, a run in
another checkout) claims blocks of ``PORT_BLOCK`` ports for as long as it lives, and hands
out ports of its own blocks only. A claim is an abstract Unix socket bound to the block's
name: the kernel lets one process at a time hold it, across users and checkouts, in the
network namespace the ports belong to, and lets it go when the process ends, however it
ends. Where there are no abstract sockets (not Linux), a claim is a lock (``lockf``) on
the block's file in ``CLAIMS_DIR``, which the system lets go when the process ends too
(a block whose file another user made, not open to this one, counts as held). Where
there are neither (no ``fcntl``), ports are handed out unclaimed.

    >>> free_port() != free_port()
    True
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile
from typing import IO

from node.ports import PORTS_FROM, ROOM_MIN, is_free, kernel_port, local_ports_start

try:
    import fcntl
except ImportError:  # not POSIX: no locks either
    fcntl = None  # type: ignore[assignment]

TEST_PORTS_FROM = PORTS_FROM
#: Ports claimed at a time by one test process.
PORT_BLOCK = 100
#: The abstract socket name of a claim, ``%d`` the block's first port.
CLAIM_NAME = "\0clawsync-test-ports-%d"
#: Whether claims are abstract Unix sockets (Linux's own); else locks on files.
ABSTRACT_CLAIMS = sys.platform.startswith("linux")
#: Where claims are locks: the folder of the blocks' files, one per block.
CLAIMS_DIR = os.path.join(tempfile.gettempdir(), "clawsync-test-ports")

_claims: list[socket.socket | IO[bytes]] = []  # held open: the claims last as long as the process
_blocks: list[int] = []  # first ports of this process's blocks, in the order claimed
_next = 0  # index, in this process's blocks' ports, of the next port to try


def _claim(start: int) -> bool | None:
    """Claim the block from ``start``: True if this process now holds it, False if
    another does, None where claims cannot be made."""
    if not ABSTRACT_CLAIMS:
        return _lock(start)
    try:
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except (AttributeError, OSError):
        return None
    try:
        claim.bind(CLAIM_NAME % start)
    except OSError as error:
        claim.close()
        return False if error.errno == errno.EADDRINUSE else None  # another holds it
    _claims.append(claim)
    return True


def _lock(start: int) -> bool | None:
    """Claim the block from ``start`` by a lock on its file in ``CLAIMS_DIR``."""
    if fcntl is None:
        return None
    try:
        os.makedirs(CLAIMS_DIR, exist_ok=True)
        claim = open(os.path.join(CLAIMS_DIR, str(start)), "ab")  # noqa: SIM115 (held)
    except PermissionError:
        return False  # another user's file: held or not, not ours to lock
    except OSError:
        return None
    try:
        fcntl.lockf(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        # Closing it lets go of no lock of ours: this process holds none on a block
        # it does not count as its own.
        claim.close()
        return False if error.errno in (errno.EACCES, errno.EAGAIN) else None
    _claims.append(claim)
    return True


def _first_block(starts: list[int]) -> int:
    """The index, in ``starts``, of the block the search for one to claim starts at: at
    random, so runs one after another use other ports."""
    return int.from_bytes(os.urandom(4), "big") % len(starts)


def _claim_a_block(ports: range) -> bool:
    """Claim one more block of ``ports`` not held by any process; False if there is none."""
    starts = [start for start in range(ports.start, ports.stop - PORT_BLOCK + 1, PORT_BLOCK)
              if start not in _blocks]
    if not starts:
        return False
    first = _first_block(starts)
    for start in starts[first:] + starts[:first]:
        claimed = _claim(start)
        if claimed is False:
            continue
        _blocks.append(start)  # held, or handed out unclaimed where claims cannot be made
        return True
    return False


def free_port() -> int:
    """A TCP port nothing listens on right now, of this process's claimed blocks, each
    handed out once before any is again (the kernel picks one where there is no room
    below its range, or every port of this process's blocks is in use)."""
    global _next
    ports = range(TEST_PORTS_FROM, local_ports_start())
    if len(ports) < ROOM_MIN:
        return kernel_port()
    while True:
        if _next >= len(_blocks) * PORT_BLOCK:
            if not _claim_a_block(ports):
                break  # no block left to claim: the ports of this process's own again
            # From the new block's first port: while every block was taken, the ports
            # of this process's own were gone through again, past the end of them.
            _next = (len(_blocks) - 1) * PORT_BLOCK
        while _next < len(_blocks) * PORT_BLOCK:
            block, offset = divmod(_next, PORT_BLOCK)
            _next += 1
            port = _blocks[block] + offset
            if is_free(port):  # not in use, nor in TIME_WAIT
                return port
    for _ in range(len(_blocks) * PORT_BLOCK):
        block, offset = divmod(_next % (len(_blocks) * PORT_BLOCK), PORT_BLOCK)
        _next += 1
        if is_free(port := _blocks[block] + offset):
            return port
    return kernel_port()
