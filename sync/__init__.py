"""sync: the protocols, as pure state machines. Messages in, messages out, ``now`` and
storage passed in; no sockets, no event loop, no clock, no disk of its own.

    peer/   node-to-node anti-entropy (``PeerSync``): version vectors, event batches
    repo/   the automerge-repo protocol with one client (``RepoConnection``)
    retention  which sessions to forget for age, and the record that does it

``errors`` separates a peer's fault (``PeerFault``) from our own misuse.

May import: crdt
"""
