"""The peer protocol's limits: what one message, batch and version vector may hold."""

from __future__ import annotations

from crdt.events import EVENT_BYTES_MAX
from crdt.signing import SIGNATURE_BYTES

#: Most events in one ``events`` message. Larger batches amortise per-message cost and
#: round trips during a catch-up; smaller ones bound the work (re-hashing, one commit)
#: a single message can cause and how much a lost message costs to resend.
BATCH_EVENTS_MAX = 512
#: Most canonical event bytes in one ``events`` message (1 MiB). At least one event of
#: the largest allowed size always fits, so a batch can always make progress.
BATCH_BYTES_MAX = 1024 * 1024
#: Most origins (node ids) in a version vector. Every node that ever wrote an event is
#: an origin, so this bounds the size of a hello and of an ack (about 80 bytes each).
ORIGINS_MAX = 4096
#: Origins kept for nodes themselves: a node holding ``ORIGINS_MAX - ORIGINS_RESERVED``
#: origins takes a new one only from the node it names (a peer's own events), so that a
#: peer sending events of made-up origins cannot fill the table and shut out every node
#: that joins later (``sync.peer.messages.takes_origin``).
ORIGINS_RESERVED = 256
#: Longest origin name, in UTF-8 bytes (node ids are 16 hex digits).
ORIGIN_BYTES_MAX = 64
#: Longest software version a peer may name in its hello.
SOFTWARE_CHARS_MAX = 64
#: Largest sequence number accepted (CBOR and SQLite integers are 64-bit).
SEQ_MAX = 2**63 - 1
#: Worst-case framing of one item beside its event bytes: array header, origin, seq, the
#: byte-string header and a signature.
_ITEM_OVERHEAD_MAX = 1 + (2 + ORIGIN_BYTES_MAX) + 9 + 5 + (2 + SIGNATURE_BYTES)
#: Largest message accepted, in bytes; checked before anything is decoded. It holds a
#: full batch with worst-case framing and a hello with ``ORIGINS_MAX`` origins.
MESSAGE_BYTES_MAX = BATCH_BYTES_MAX + BATCH_EVENTS_MAX * _ITEM_OVERHEAD_MAX + 1024
#: Most CBOR data items in one message (each map key and value, array entry, scalar).
#: A full batch has about 5 per event, a hello 2 per origin; the pre-scan stops there,
#: so a small message of millions of tiny items is refused before it is built in memory.
ITEMS_MAX = 5 * BATCH_EVENTS_MAX + 2 * ORIGINS_MAX + 64
#: A skeleton (a map of six fields) is 18 items, its signature and proof two more: a full
#: batch of them fits too.
assert 20 * BATCH_EVENTS_MAX + 64 <= ITEMS_MAX
#: Framing of one proof beside its bytes, counted in ``BATCH_BYTES_MAX``.
PROOF_OVERHEAD = 5

assert EVENT_BYTES_MAX <= BATCH_BYTES_MAX, "one event must always fit in a batch"
assert ORIGINS_MAX * (3 + ORIGIN_BYTES_MAX + 9) + 256 <= MESSAGE_BYTES_MAX
