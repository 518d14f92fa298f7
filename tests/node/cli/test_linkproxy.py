"""node.cli.linkproxy: stopping a proxy ends every connection it still pipes."""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import threading

import pytest

from node.cli.linkproxy import LinkProxy


def test_stop_ends_connections_whose_replies_are_held(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    """A connection held mid-reply is ended with the proxy, not left pending on its
    loop (whose end would destroy it, with a warning)."""
    with socket.create_server(("127.0.0.1", 0)) as target:
        def answer() -> None:
            conn, _ = target.accept()
            with conn, contextlib.suppress(OSError):  # the proxy resets it at its stop
                conn.recv(16)
                conn.sendall(b"reply")  # held by the proxy
                conn.recv(16)  # until the proxy ends the connection

        server = threading.Thread(target=answer, daemon=True)
        server.start()
        proxy = LinkProxy(target_port=target.getsockname()[1]).start()
        proxy.hold_replies()
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            client.sendall(b"ask")
            client.settimeout(0.2)
            with pytest.raises(TimeoutError):
                client.recv(16)  # the reply is held
            with caplog.at_level(logging.ERROR, logger="asyncio"):
                proxy.stop()
                gc.collect()
        server.join(5)
    assert "Task was destroyed" not in caplog.text


def test_a_proxy_that_cannot_listen_raises_and_leaves_nothing_running() -> None:
    """Its port taken: the bind's OSError, and no thread of the proxy left running (its
    loop would run on until the process ends)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proxy = LinkProxy(target_port=port, port=port)
        with pytest.raises(OSError, match="address already in use"):
            proxy.start()
    assert f"link-proxy-{port}" not in [thread.name for thread in threading.enumerate()]


def test_a_proxys_thread_is_named_after_the_port_it_listens_on() -> None:
    """Two proxies to one node had threads of the same name, the target's port."""
    with socket.create_server(("127.0.0.1", 0)) as target:
        port = target.getsockname()[1]
        with LinkProxy(target_port=port) as one, LinkProxy(target_port=port) as two:
            names = {thread.name for thread in threading.enumerate()}
            assert {f"link-proxy-{one.port}", f"link-proxy-{two.port}"} <= names
            assert f"link-proxy-{port}" not in names
