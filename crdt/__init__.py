"""crdt: the replicated data. No networking, no asyncio; a pure function of the events.

The modules here are what every room below shares, the event itself: ``errors`` (one
base error; the sender's fault apart from ours), ``codec`` (canonical CBOR), ``clock``
(hybrid logical clock), ``keys`` (session keys and names), ``kinds`` (the kinds this
version knows, and how events evolve), ``events`` (validation, content addressing;
``quick_checks``: the cheap checks it reads canonical bytes with first;
``event_objects``: events and drafts made without their ``__init__``),
``device`` (device keys and the device ids people compare), ``ed25519`` (signing
and checking on raw bytes, all that a process checking signatures imports),
``addresses`` (whether an address could be dialed) and ``signing`` (signatures of
origin over an event's id, origin and seq), ``membership`` (which devices belong to
the cluster: a fold of the records that add and remove them), ``tokens`` (the records
that issue and revoke Automerge app tokens) and ``linkproof`` (how two devices prove
their keys to each other when a peer link opens).

    storage/    keyed records behind one interface: diskcache, memory
    log/        the event log: append, positions, projections (``EventStore``)
    automerge/  each session's projection as an Automerge document

May import: nothing of this project but the modules here.
"""
