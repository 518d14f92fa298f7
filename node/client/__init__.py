"""Talking to a node from outside: the HTTP API client (``api``, built on the requests and
failures of ``transport``) and following a session's projection over the Automerge
websocket (``subscribe``).

May import: crdt, sync, node
"""
