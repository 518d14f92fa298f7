"""The ``/automerge`` websocket: every automerge-repo client of the node (``hub``), each
a ``connection`` driven by a ``sync.repo`` machine, and the node's documents as that
machine sees them (``library``); clients' changes are tried first in worker processes
(``trials`` over a ``node.workers`` pool) that may be cut short. ``tokens`` follows the app
tokens devices issue.

May import: crdt, sync, node, node.http
"""
