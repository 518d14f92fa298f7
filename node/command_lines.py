"""The ``clawsync`` commands printed for people to copy and run, built in one place for
the node (``node.peers.links``: what a device waiting to be added is told) and the
commands (``clawsync status``, ``clawsync devices add``). Light (the standard library
only): the commands load it without the crypto libraries.

A command printed for another node than the default carries ``--node``: copied as shown,
it would go to whichever node answers at the default address where it is run, another
node or none.
"""

from __future__ import annotations

import shlex


def add_command(device_id: str, name: str | None = None, node: str | None = None) -> str:
    """``clawsync devices add`` for ``device_id`` under ``name`` (``NAME`` if not known),
    on the node at ``node`` (None: the default one).

    >>> add_command("BBB", "my phone")
    "clawsync devices add BBB --name 'my phone'"
    >>> add_command("BBB", node="http://laptop:7878")
    'clawsync devices add BBB --name NAME --node http://laptop:7878'
    """
    named = shlex.quote(name) if name else "NAME"
    on = f" --node {shlex.quote(node)}" if node else ""
    return f"clawsync devices add {device_id} --name {named}{on}"
