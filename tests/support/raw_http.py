"""Requests sent to a node as raw bytes, ones aiohttp's client would not send (a bad
request line, a header without a colon), and the node's answer read as it came."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time

from tests.support.processes import NodeProcess

#: Seconds to wait for each answer to a hostile client (a raw request, a peer's attack:
#: the node closing the link, or acking): one the node neither answers nor closes fails.
#: Longer than the default headers_timeout_s (10 s), so that a request the node waits on
#: until then, instead of answering it at once, shows closed unanswered (``status_of``:
#: no answer), not as a timeout that a slow machine could cause.
ANSWER_TIMEOUT_S = 20.0
#: Seconds between the parts of a request sent in parts: on loopback, enough for the node
#: to read each part on its own, as a head split by the network arrives.
PART_APART_S = 0.2


def exchange(node: NodeProcess, request: bytes, *later: bytes) -> bytes:
    """Send ``request`` as is, then each of ``later`` after ``PART_APART_S``; everything
    the node answers until it closes."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=ANSWER_TIMEOUT_S) as sock:
        with contextlib.suppress(OSError):  # refused before all was sent: read its answer
            sock.sendall(request)
            for part in later:
                time.sleep(PART_APART_S)
                sock.sendall(part)
        answer = b""
        while piece := sock.recv(65536):
            answer += piece
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/"), f"no answer: {answer[:200]!r}"
    return int(answer.split(b" ", 2)[1])


def answer(node: NodeProcess, request: bytes, *later: bytes) -> tuple[int, str | None]:
    """The status of the node's answer to ``request`` (and ``later``, as ``exchange``
    sends them) and its JSON error code (None if the body is not one)."""
    received = exchange(node, request, *later)
    try:
        code = json.loads(received.partition(b"\r\n\r\n")[2])["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    return status_of(received), code


def get(target: bytes, *headers: bytes, version: bytes = b"HTTP/1.1",
        method: bytes = b"GET") -> bytes:
    """A request with no body that closes its connection; ``headers`` are lines without
    their CRLF."""
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1",
             b"Connection: close", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def tls_hello() -> bytes:
    """The first flight of a TLS client (its ClientHello), as Python's ssl sends it."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO())
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()
