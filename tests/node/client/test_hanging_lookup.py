"""node.client.transport with a node whose host name never resolves: the client gives up
after its connect timeout, and the process ends then, not when the lookup returns.

``asyncio.run`` joins the default executor's threads at exit, where aiohttp's own
resolver would leave a lookup that hangs. The client's lookups run on daemon threads of
their own (``node.lookups``). A child process holds ``socket.getaddrinfo`` on an event
nobody sets, for one name, so the lookup never returns: the child ends only if nothing
waits for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.support.processes import ROOT

#: The child: one request through the real client to a name whose lookup never returns.
CHILD = textwrap.dedent("""
    import asyncio, socket, threading
    from node.client.api import Client, ClientError
    from node.limits import ClientLimits

    never = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "hangs.invalid":
            never.wait()
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo

    async def ask():
        async with Client("http://hangs.invalid:7878",
                          limits=ClientLimits(connect_timeout_s=0.2)) as client:
            await client.health()

    try:
        asyncio.run(ask())
    except ClientError as refused:
        print(refused, flush=True)
""")

#: How long the child may take before the test calls it stuck: far past its 0.2 s connect
#: timeout, a bound for a stuck child, not a measure of speed.
STUCK_S = 30


def test_a_client_ends_without_waiting_for_a_lookup_that_hangs() -> None:
    try:
        done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                              text=True, timeout=STUCK_S, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError("the process waited for the lookup that hangs") from None
    assert done.returncode == 0, done.stderr
    assert "cannot reach the node at http://hangs.invalid:7878 within 0.2 s" in done.stdout
