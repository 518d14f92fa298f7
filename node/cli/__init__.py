"""The ``clawsync`` client commands: they talk to a node over HTTP and never load the
server. ``group`` is the command group; ``serve`` is added to it by ``node.main``.

May import: crdt, node, node.client, node.openclaw
"""
