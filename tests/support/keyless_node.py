"""A build of clawsync that proves no device key on its peer links, as a node of 0.2 (which
has none) does, or a node that leaves its proof out: it dials without naming its device
and accepts without asking for the dialer's proof, so its links rest on the cluster
secret alone. It takes a hello naming any origin, as a node of 0.2 (which knows of no
origin bound to a key) does: so a link to it ends only by the other node's doing.
Everything else is this version's (it keeps and signs with its key, and refuses peers
as this version does: with ``--keyless-peers`` it takes every holder of the secret, as
a node of 0.2 does, once devices were added or removed). Run it
as the ``clawsync`` command, ``python -m tests.support.keyless_node serve ...``;
importing it changes nothing."""

from __future__ import annotations

from typing import Any

from aiohttp import web

if __name__ == "__main__":
    import node.peers.api as api_module
    import node.peers.gossip as gossip_module
    from node.main import main
    from node.peers.transport import Link, dial
    from sync.peer.machine import PeerSync
    from sync.peer.messages import Batch, Hello, Message

    checked_hello = PeerSync._on_hello

    def unbound_hello(machine: PeerSync, hello: Hello, now: float) -> list[Message | Batch]:
        """The hello taken as if the key its origin is bound to were proven."""
        proven, machine.peer_key = machine.peer_key, machine.store.origin_key(hello.node)
        try:
            return checked_hello(machine, hello, now)
        finally:
            machine.peer_key = proven

    async def keyless_dial(*args: Any, **kwargs: Any) -> Link:
        return await dial(*args, **{**kwargs, "device": None})

    def names_no_device(request: web.Request) -> None:
        return None  # the device headers go unread, as a node of 0.2 leaves them

    setattr(gossip_module, "dial", keyless_dial)  # noqa: B010 (what its links dial with)
    setattr(api_module, "claimed_device", names_no_device)  # noqa: B010 (what it accepts)
    setattr(PeerSync, "_on_hello", unbound_hello)  # noqa: B010 (no origin is bound)
    main(prog_name="clawsync")
