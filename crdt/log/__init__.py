"""The event log: events stored once by id, gap-free positions, per-origin sequence
numbers, and each session's projection kept up to date in the same commit.

    eventlog    records and the one-transaction-per-batch append (``EventLog``)
    projection  the fold of a session's events into its state
    store       ``EventStore``, the embedded API (append, read, checkpoints)
    retire      retiring origins: the retirement event and the rules every node applies
    bound       origins bound to a device key: the ``device_key`` record, what it binds

It knows nothing of Automerge: documents are built from it, in ``crdt.automerge``.

May import: crdt, crdt.storage
"""
