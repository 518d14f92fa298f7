"""Peer links: the websocket transport (``transport``, with what an acceptor reads of a
dialer's handshake and answers before the upgrade, ``handshake``), one ``sync.peer``
machine per link driven on the store's writer (``driver``), the links' life (``gossip``,
which wires the rest: who may link, ``admission``; member addresses learned and listed,
``learning``, with ``member_lists`` and ``holds``; status rows, ``rows``), and the peer
API with its authentication (``api``).

May import: crdt, sync, node, node.http
"""
