"""Anti-entropy between nodes: one ``PeerSync`` machine per peer link.

    messages  hello / events / ack, canonical CBOR, and their strict parser
    limits    what one message, batch and version vector may hold
    plain_items  a quick reader of the common events message
    outbox    what one peer is known to hold, and the next batch of what it lacks
    machine   ``PeerSync``: feed it bytes and time, send what it returns
    intake    which events of a peer's batch ``PeerSync`` stores
    counters  ``Counters``: the traffic of one link, for metrics
    config    ``SyncConfig``: timing and window of a link, back-off
    quota     ``OriginQuota``: new origins one link may bring
    retired   retired origins on a link: what is sent of them, what is taken
    live      whether an origin still writes, before it is retired
    signatures  which events to take, by their origin's device key
    forgotten  addresses given up after their failures, held off from member lists

The event log comes in through the ``Log`` interface (``crdt.log.store.EventStore`` has
it); the node's transport (``node.peers``) moves the bytes.

May import: crdt, crdt.log, sync
"""
