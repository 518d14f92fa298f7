"""The node as a server: the client API (``app``), live event streams (``streams``),
starting and stopping a node with its peer links and Automerge clients (``run``; what
a start does to its data folder: ``folders``; its errors: ``start_errors``),
``clawsync serve`` (``command``, its ``--config`` file: ``config_file``), the web
console's files (``console``).

May import: crdt, sync, node, node.http, node.peers, node.automerge, node.console
"""
