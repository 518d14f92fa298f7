"""openclaw: the bridge to OpenClaw's own store of session transcripts.

OpenClaw (2026.9) keeps each agent's sessions as records of the pi session format
(version 3, or 4 as OpenClaw 2026.9.6 writes it), one JSON object per record. These
modules turn those records into clawsync events and back, losslessly (decision 15):

    mapping.py        record -> events (``events_for``): no I/O
    session_names.py  the session key rule (``session_key_for``), and a key or id no
                      event can name hashed (``nameable``): no I/O
    records.py        events -> records (``transcripts_for``), the inverse: no I/O
    sizes.py          the size rule: what of a record too big for one event is summarised

Writing into a state folder keeps out OpenClaw's own processes and other writers:

    state_locks.py   OpenClaw's per-machine locks on a state folder: is one held, and
                     taking and holding them (and the folder's own) while writing
    lock_holders.py  who holds a lock there: its process, and whether it is a writer

May import: crdt, node, node.client
"""
