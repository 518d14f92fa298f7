"""The node as a server: the client API (``app``), live event streams (``streams``),
starting and stopping a node with its peer links and Automerge clients (``run``), and
``clawsync serve`` (``command``).

May import: crdt, sync, node, node.http, node.peers, node.automerge
"""
