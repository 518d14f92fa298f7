"""Peer links: the websocket transport (``transport``), one ``sync.peer`` machine per link
driven on the store's writer (``gossip``), and the peer API with its authentication
(``api``).

May import: crdt, sync, node, node.http
"""
