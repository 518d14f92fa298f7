"""Free loopback ports for nodes a program starts itself (``clawsync demo``, the tests).

A port the kernel hands out (bind to port 0) lies in its range for the local ends of
outgoing connections (``ip_local_port_range``): between finding it free and a started
node's listening on it, any connection of the machine may take it as its local end, and
the node finds its port in use. Ports below that range are not handed out so.
"""

from __future__ import annotations

import errno
import random
import re
import socket
from collections.abc import Container
from pathlib import Path

#: Nodes started by a program listen from here up to the kernel's range.
PORTS_FROM = 20000
#: Random ports tried before the kernel is asked for one.
PORT_TRIES = 50
#: The fewest ports below the kernel's range worth picking from; fewer, and the kernel picks.
ROOM_MIN = 1000
_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_UNPRIVILEGED_FROM = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def local_ports_start() -> int:
    """The first port of the kernel's range for the local ends of outgoing connections
    (Linux's default, 32768, where it cannot be read)."""
    return _first_number(_PORT_RANGE, 32768)


def unprivileged_ports_start() -> int:
    """The first port a user without privileges may listen on (Linux's default, 1024,
    where it cannot be read)."""
    return _first_number(_UNPRIVILEGED_FROM, 1024)


def _first_number(setting: Path, default: int) -> int:
    """The first number a kernel setting's file holds; ``default`` if it cannot be read."""
    try:
        return int(setting.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def kernel_port() -> int:
    """A loopback port nothing listens on right now, as the kernel picks it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_free(port: int) -> bool:
    """Whether a loopback listener could bind ``port`` now (not in use nor in TIME_WAIT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def listen_error(port: int) -> OSError | None:
    """Why a server could not listen on loopback ``port`` now, None if it could. Tried as
    a node binds (``node.http.listener.bind`` sets SO_REUSEADDR, as here; this module
    may not import ``node.http``): a connection of an earlier listener there, closed and
    left in TIME_WAIT, does not stand in its way, as it does in ``is_free``'s.

    >>> listen_error(free_port()) is None
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError as error:
            return error
    return None


def listen_refusal(port: int, error: OSError) -> str:
    """Why a listener on loopback ``port`` failed with ``error``, said for the person who
    chose it (``clawsync demo --port``) or who may free it (a demo's link). An errno
    without words of its own here is named (to look it up) with the system's text.

    >>> listen_refusal(7901, OSError(errno.EADDRINUSE, "Address already in use"))
    'port 7901 is in use'
    >>> listen_refusal(7901, OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"))
    'port 7901 cannot be listened on at 127.0.0.1: EADDRNOTAVAIL, cannot assign requested address'

    An error with no text (a listener's start that timed out) is said by its kind:

    >>> listen_refusal(7901, TimeoutError())
    'port 7901 cannot be listened on at 127.0.0.1: timeout error'
    """
    if error.errno in (errno.EACCES, errno.EPERM):
        return (f"port {port} needs privileges: only root (or CAP_NET_BIND_SERVICE) "
                f"listens below port {unprivileged_ports_start()}")
    if error.errno == errno.EADDRINUSE:
        return f"port {port} is in use"
    said = str(error) or _words(type(error).__name__)
    if error.errno is not None and error.strerror:
        name = errno.errorcode.get(error.errno, f"errno {error.errno}")
        said = f"{name}, {error.strerror[:1].lower()}{error.strerror[1:]}"
    return f"port {port} cannot be listened on at 127.0.0.1: {said}"


def _words(name: str) -> str:
    """A class's name as plain words, a run of capitals (an acronym) one word.

    >>> [_words(name) for name in ("ConnectionResetError", "OSError", "TimeoutError")]
    ['connection reset error', 'os error', 'timeout error']
    """
    return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name).lower()


def free_port(avoid: Container[int] = ()) -> int:
    """A loopback port nothing listens on right now, and none of ``avoid`` (ports meant
    for something else), below the kernel's range where there is room (else as the
    kernel picks it).

    >>> is_free(free_port())
    True
    """
    below = local_ports_start()
    if below - PORTS_FROM >= ROOM_MIN:
        for _ in range(PORT_TRIES):
            port = random.randrange(PORTS_FROM, below)
            if port not in avoid and is_free(port):
                return port
    for _ in range(PORT_TRIES):
        port = kernel_port()
        if port not in avoid:
            return port
    raise OSError(f"no free loopback port in {PORT_TRIES} tries")
