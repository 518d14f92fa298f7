"""The event log: events stored once by id, gap-free positions, per-origin sequence
numbers, and each session's projection kept up to date in the same commit.

    eventlog    the one-transaction-per-batch append and the reads (``EventLog``)
    origins     the origin the log writes under: signer, bindings, a new one when it retires
    upgrade     folders written by earlier versions, brought up to date when opened
    batch       one commit's reads and writes, and the chunks sessions are stored in
    records     how events, indexes, sessions and the meta record are laid out
    projection  the fold of a session's events into its state
    store       ``EventStore``, the embedded API (append, forget, retire, checkpoints)
    reads       its reads (events, sessions, origins, projections), paged by ``PAGE_MAX``
    retire      retiring origins: the retirement event and the rules every node applies
    bound       origins bound to a device key: the ``device_key`` record, what it binds
    forget      forgetting: the forget record and the rule of what it covers
    erase       erasing what forget records cover, inside one commit
    cursors     named cursors, where a bridge's source has been read up to

It knows nothing of Automerge: documents are built from it, in ``crdt.automerge``.

May import: crdt, crdt.storage
"""
