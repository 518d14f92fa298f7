"""Automerge documents of sessions: projections, built from the log, synced by clients.

    layout      what a session document holds; ids, actors; the one automerge wrapper
    document    ``SessionDoc``: write a projection into the document
    syncing     sync with a client, read its edits, put back what it may not change
    answers     the answer to a client with nothing, and the save it carries
    documents   ``Documents``: each session's document, caught up from the log on demand
    outline     read a client's sync message and patches without automerge
    chunks      bound what a sync message's change chunks unpack to, before automerge
    trial       apply a client's sync message to a copy, for a worker process to run
    binreader   a cursor over Automerge's binary formats

The only room that calls the ``automerge`` library.

May import: crdt, crdt.log, crdt.storage
"""
