"""How much the change chunks of a client's sync message unpack to, read without automerge.

Automerge stores changes in a compact form: a whole change may be deflated (chunk type
2), the columns of a saved document may each be deflated (type 0), and every column is
run-length encoded. Automerge unpacks all of it before it checks anything, without a
bound, so a few kilobytes can claim gigabytes (a deflate bomb) or billions of operations
(one run of length 2^40). ``measure_chunks`` walks the same structures and stops as soon
as either bound is passed, so the node can refuse the message before automerge sees it.

Layout (automerge's ``storage/chunk.rs``, ``change.rs``, ``document.rs``)::

    chunk:    magic 85 6f 4a 83, 4-byte checksum, type byte, uLEB128 length, data
    change:   deps (count + 32-byte hashes), actor, seq, start_op, time, message,
              other actors, column metadata, column data, extra bytes
    document: actors, heads, change column metadata, op column metadata,
              change column data, op column data, head indexes
    metadata: uLEB128 count, then (uLEB128 spec, uLEB128 length) per column;
              spec = id << 4 | deflate bit (8) | type (0-7)

Rows are counted in every column but raw values: automerge drives its reading of
operations and changes by numeric columns, so bounding them bounds how many it builds,
and a string column is charged the bytes it expands to, since automerge copies a
repeated string (a map key, a change message) once per row. Every change counts as a
row too (it may hold no operation), and every chunk, column, actor, run and string is
a step of the walk, so that the walk itself is bounded in time.

Some shapes cost automerge (or the node's reading of what changed) far more than their
rows: operations piled on one key, changes that are all concurrent, objects nested in
a long chain, operations that refer to later ones. Once every chunk is read, the columns
naming each operation's object, key and id are read in step to refuse those
(``KEY_OPERATIONS_MAX``, ``HEADS_MAX``, ``NESTING_MAX``). What a document already
holds is not known here, so these bound one message, not what many messages pile up.

>>> measure_chunks([], UnpackLimits(bytes_max=1, rows_max=1))
Unpacked(bytes=0, rows=0)
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from crdt.automerge.binreader import BinReader, uleb
from crdt.errors import InvalidInput, LimitExceeded

MAGIC = bytes.fromhex("856f4a83")
DOCUMENT, CHANGE, COMPRESSED = 0, 1, 2
DEFLATE_BIT = 0b1000
TYPE_BITS = 0b0111
DELTA, BOOLEAN, STRING, VALUE = 3, 4, 5, 7
#: The operation columns that name what an operation changes: the object (actor,
#: counter) and the key (an element's actor and counter, or a map key), with their types.
KEY_COLUMNS = {0x01: 1, 0x02: 2, 0x11: 1, 0x13: DELTA, 0x15: STRING}
#: The operation columns that say which object an operation is in, its own id (a
#: document's; a change numbers its operations from its start_op), its action and the
#: counter of the list element it follows.
OBJECT_COLUMNS = {0x01: 1, 0x02: 2, 0x21: 1, 0x23: DELTA, 0x42: 2, 0x13: DELTA}
#: Actions that make an object: map, list, text, table.
MAKE_ACTIONS = frozenset({0, 2, 4, 6})
#: Objects one message may nest inside each other. Every change the node reads comes
#: with the path from the root to each object it touched, so a chain of new objects
#: costs the square of its depth (16,000 levels made automerge abort the process). A
#: session document nests about 35 deep at most (JSON values are 32).
NESTING_MAX = 64
#: Operations on one key of one object in one message. Automerge applies each against
#: the others already on that key, so their cost grows with the square of their number
#: (10,000 take about 0.3 s; 250,000 would stall the node for minutes); the sum of those
#: squares over every key is held to this one's square too. A client's edits
#: and a relayed node change are far below it; a document's history of one field (the
#: node rewrites ``event_count`` at each catch-up) could reach it only in a session
#: caught up more than 10,000 times, sent whole by a client.
KEY_OPERATIONS_MAX = 10_000
#: Changes in one message that no other change of it depends on (each becomes a head of
#: the document). The node reads what a message changed by diffing the heads before
#: and after, which costs the square of their number; a client's changes form a chain.
HEADS_MAX = 1000
#: What a column reads as once it has ended: nulls, forever.
_ENDED: tuple[object, float] = (None, math.inf)
HASH_BYTES = 32
#: Bytes inflated per step: a bomb is stopped within this much of the bound.
_INFLATE_STEP = 1024 * 1024


@dataclass(frozen=True, slots=True)
class UnpackLimits:
    """Bounds on what one message's changes may unpack to."""

    bytes_max: int  # bytes after inflating every deflated chunk and column
    rows_max: int  # rows of changes and operations, over every chunk


@dataclass(frozen=True, slots=True)
class Unpacked:
    bytes: int
    rows: int


#: Steps (runs, strings, chunks, columns, actors) read per message, as a multiple of
#: ``rows_max``: bounds the time the walk takes (one Python step each) while leaving
#: room for columns that change every row.
RUNS_PER_ROW = 3
#: Columns in one section of a chunk. Automerge writes about fifteen; more is not a
#: chunk it made, and each costs automerge an allocation before it checks anything.
COLUMNS_MAX = 64


class _Budget:
    def __init__(self, limits: UnpackLimits) -> None:
        self.limits = limits
        self.bytes = 0
        self.rows = 0
        self.runs_left = RUNS_PER_ROW * limits.rows_max
        self.key_operations: Counter[tuple[object, object]] = Counter()
        #: The sum of the squares of operations per key: what applying them costs.
        self.key_cost = 0
        #: Hashes of the changes read, the changes they depend on, and the heads of the
        #: documents read: what the message adds to the document's heads.
        self.hashes: set[bytes] = set()
        self.deps: set[bytes] = set()
        self.document_heads = 0
        self.operation_rows = 0
        #: Per operation section: the columns naming its objects, keys and ids, its
        #: actors and its first operation's counter (a change's; None for a document),
        #: read once all are measured.
        self.sections: list[tuple[dict[int, bytes], list[bytes], int | None]] = []
        #: Depth of each object made in the message (objects made before count as 0).
        self.depths: dict[object, int] = {}

    def spend_run(self) -> None:
        self.runs_left -= 1
        if self.runs_left < 0:
            raise LimitExceeded(f"changes are encoded in more than "
                                f"{RUNS_PER_ROW * self.limits.rows_max} runs, chunks, "
                                "columns and actors", field="data")

    def spend_bytes(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.bytes_max:
            raise LimitExceeded(f"changes unpack to more than {self.limits.bytes_max} bytes",
                                field="data")

    def spend_rows(self, count: int) -> None:
        self.rows += count
        if self.rows > self.limits.rows_max:
            raise LimitExceeded(f"changes hold more than {self.limits.rows_max} rows of "
                                "operations and changes", field="data")


def measure_chunks(entries: Iterable[bytes | memoryview], limits: UnpackLimits) -> Unpacked:
    """What the change entries of a sync message unpack to. ``LimitExceeded`` as soon as
    a bound is passed; ``InvalidInput`` for bytes that are not chunks automerge accepts
    from a peer (types other than document, change and compressed change included)."""
    budget = _Budget(limits)
    for entry in entries:
        budget.spend_run()
        data = bytes(entry)
        at = 0
        while at < len(data):  # an entry may hold several chunks back to back
            budget.spend_run()
            at = _chunk(data, at, budget)
    heads = len(budget.hashes - budget.deps) + budget.document_heads
    if heads > HEADS_MAX:
        raise LimitExceeded(f"changes would add {heads} concurrent heads; the limit is "
                            f"{HEADS_MAX}", field="data")
    for columns, actors, first_op in budget.sections:
        if budget.operation_rows > NESTING_MAX:  # else no chain can be too deep
            _check_objects(columns, actors, first_op, budget)
        if budget.operation_rows > KEY_OPERATIONS_MAX:  # else no key can have too many
            _count_key_operations(columns, actors, budget)
    return Unpacked(budget.bytes, budget.rows)


def _chunk(data: bytes, at: int, budget: _Budget) -> int:
    reader = BinReader(data, "a change chunk", at)
    if reader.take(4, "magic bytes") != MAGIC:
        raise reader.fail("not an automerge chunk (bad magic bytes)")
    reader.take(4, "checksum")
    kind = reader.take(1, "chunk type")[0]
    body = reader.take(reader.uleb("chunk length"), "chunk")
    if kind == CHANGE:
        budget.spend_bytes(len(body))
        _change(body, budget)
    elif kind == COMPRESSED:
        _change(_inflate(body, budget, "a compressed change"), budget)
    elif kind == DOCUMENT:
        _document(body, budget)
    else:
        raise reader.fail(f"type {kind} is not accepted in a sync message")
    return reader.at


def _change(body: bytes, budget: _Budget) -> None:
    reader = BinReader(body, "a change")
    deps = reader.take(reader.uleb("deps") * HASH_BYTES, "deps")
    # automerge's hash of a change: of its chunk type, length and (inflated) body
    budget.hashes.add(hashlib.sha256(bytes([CHANGE]) + uleb(len(body)) + body).digest())
    budget.deps.update(deps[i:i + HASH_BYTES] for i in range(0, len(deps), HASH_BYTES))
    author = reader.take(reader.uleb("actor"), "actor")
    reader.uleb("seq")
    start_op = reader.uleb("start_op")
    reader.uleb("time")
    reader.take(reader.uleb("message"), "message")
    actors = _actors(reader, budget, "other actors", [author])
    columns = _columns(reader, budget, "operation columns")
    if any(spec & DEFLATE_BIT for spec, _ in columns):
        raise reader.fail("deflated columns (only documents may have them)")
    budget.spend_rows(1)  # the change itself, which may hold no operation
    _section(reader, columns, budget, account_bytes=False, actors=actors, first_op=start_op)


def _document(body: bytes, budget: _Budget) -> None:
    reader = BinReader(body, "a document")
    actors = _actors(reader, budget, "actors", [])
    heads = reader.uleb("heads")
    budget.document_heads += heads
    reader.take(heads * HASH_BYTES, "heads")
    change_columns = _columns(reader, budget, "change columns")
    op_columns = _columns(reader, budget, "operation columns")
    budget.spend_bytes(reader.at)
    _section(reader, change_columns, budget, account_bytes=True, actors=None)
    _section(reader, op_columns, budget, account_bytes=True, actors=actors, first_op=None)
    budget.spend_bytes(len(body) - reader.at)  # head indexes


def _actors(reader: BinReader, budget: _Budget, what: str, actors: list[bytes]
            ) -> list[bytes]:
    """``actors`` followed by the chunk's list of them. Automerge never lists an actor
    twice; a chunk that does could name one object or key in several ways."""
    for _ in range(reader.uleb(what)):
        budget.spend_run()
        actors.append(reader.take(reader.uleb(what), what))
    if len(set(actors)) < len(actors):
        raise reader.fail(f"an actor is listed twice in its {what}")
    return actors


def _columns(reader: BinReader, budget: _Budget, what: str) -> list[tuple[int, int]]:
    """Column metadata: (spec, length) per column."""
    count = reader.uleb(what)
    if count > COLUMNS_MAX:
        raise reader.fail(f"{count} {what}; automerge writes at most {COLUMNS_MAX}")
    for _ in range(count):
        budget.spend_run()
    return [(reader.uleb(what), reader.uleb(what)) for _ in range(count)]


def _section(reader: BinReader, columns: list[tuple[int, int]], budget: _Budget,
             account_bytes: bool, actors: list[bytes] | None,
             first_op: int | None = None) -> None:
    """Charge a section's rows (the most any column holds) and, for a section of
    operations (``actors`` given: what its actor indexes name), keep what names their
    objects, keys and ids for the checks that follow."""
    rows = 0
    keys: dict[int, bytes] = {}
    for spec, length in columns:
        raw = reader.take(length, "column data")
        if spec & DEFLATE_BIT:
            raw = _inflate(raw, budget, "a deflated column")
        elif account_bytes:
            budget.spend_bytes(len(raw))
        kind = spec & TYPE_BITS
        if kind == BOOLEAN:
            rows = max(rows, _boolean_rows(raw, budget))
        elif kind != VALUE:
            rows = max(rows, _run_rows(raw, budget, strings=kind == STRING))
        if spec & ~DEFLATE_BIT in KEY_COLUMNS.keys() | OBJECT_COLUMNS.keys():
            keys[spec & ~DEFLATE_BIT] = raw
    budget.spend_rows(rows)
    if actors is not None:
        budget.operation_rows += rows
        budget.sections.append((keys, actors, first_op))


def _count_key_operations(columns: dict[int, bytes], actors: list[bytes],
                          budget: _Budget) -> None:
    """Count operations per (object, key) over the whole message. Actor indexes are read
    as the actors they name (each chunk numbers its own), and every object or element
    with counter 0 as the root or the head of a list, as automerge does."""
    for (obj_actor, obj_counter, key_actor, key_counter, key_string), step in _in_step(
            columns, KEY_COLUMNS, budget):
        key = (_id(obj_actor, obj_counter, actors), key_string
               if key_string is not None else _id(key_actor, key_counter, actors))
        before = budget.key_operations[key]
        after = budget.key_operations[key] = before + step
        if after > KEY_OPERATIONS_MAX:
            raise LimitExceeded(f"more than {KEY_OPERATIONS_MAX} operations on one key",
                                field="data")
        budget.key_cost += after * after - before * before
        if budget.key_cost > KEY_OPERATIONS_MAX**2:
            raise LimitExceeded(f"operations that share keys cost more than "
                                f"{KEY_OPERATIONS_MAX} on one key", field="data")


def _check_objects(columns: dict[int, bytes], actors: list[bytes], first_op: int | None,
                   budget: _Budget) -> None:
    """Follow the objects the message makes inside each other, refusing a chain deeper
    than ``NESTING_MAX``; in a change, refuse an operation in an object or after an
    element that comes after it (automerge never writes one: such an element makes
    every insertion before it scan past all the ones after it)."""
    row = 0
    for (obj_actor, obj_counter, id_actor, id_counter, action, after), step in _in_step(
            columns, OBJECT_COLUMNS, budget):
        if first_op is not None and max(obj_counter or 0, after or 0) >= first_op + row:
            raise InvalidInput("an operation refers to one that comes after it",
                               field="data")
        if action in MAKE_ACTIONS:
            depth = budget.depths.get(_id(obj_actor, obj_counter, actors), 0) + 1
            if depth > NESTING_MAX:
                raise LimitExceeded(f"objects nested more than {NESTING_MAX} deep",
                                    field="data")
            for n in range(step):  # a document's ids come as rows of one
                made = (_id(0, first_op + row + n, actors) if first_op is not None
                        else _id(id_actor, id_counter, actors))
                budget.depths[made] = depth
        row += step


def _in_step(columns: dict[int, bytes], kinds: dict[int, int], budget: _Budget
             ) -> Iterator[tuple[list[Any], int]]:
    """The values of several columns read in step, a run of equal rows at a time:
    (values, rows). A column that has ended reads as nulls."""
    runs = [_runs(columns.get(spec, b""), kind) for spec, kind in kinds.items()]
    current: list[tuple[object, float]] = [next(run, _ENDED) for run in runs]
    while True:
        step = min(count for _, count in current)
        if step == math.inf:
            return
        budget.spend_run()
        yield [value for value, _ in current], int(step)
        for i, (value, count) in enumerate(current):
            current[i] = (value, count - step) if count > step else next(runs[i], _ENDED)


def _id(actor: object, counter: object, actors: list[bytes]) -> object:
    """An object or element id as (actor bytes, counter); None for the root or head."""
    if not counter:
        return None
    if not isinstance(actor, int) or actor >= len(actors):
        raise InvalidInput(f"a change names actor {actor!r} of {len(actors)}", field="data")
    return actors[actor], counter


def _runs(column: bytes, kind: int) -> Iterator[tuple[object, int]]:
    """(value, rows) runs of a column of actors, integers, deltas (as running sums) or
    strings; None for nulls."""
    reader = BinReader(column, "a column")
    total = 0  # a delta column's running sum

    def value() -> object:
        nonlocal total
        if kind == STRING:
            return reader.take(reader.uleb("a string"), "a string")
        if kind == DELTA:
            total += reader.sleb("a delta")
            return total
        return reader.uleb("a value")

    while reader.at < len(column):
        count = reader.sleb("a run")
        if count > 0:
            if kind == DELTA:
                delta = reader.sleb("a delta")
                if delta:  # every row a different number
                    for _ in range(count):
                        total += delta
                        yield total, 1
                    continue
                yield total, count
            else:
                yield value(), count
        elif count < 0:
            for _ in range(-count):
                yield value(), 1
        else:
            yield None, reader.uleb("a null run")


def _inflate(raw: bytes, budget: _Budget, what: str) -> bytes:
    """Raw deflate, stopped once the budget's bytes are spent."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    parts = []
    pending = raw
    try:
        while pending or not inflater.eof:
            part = inflater.decompress(pending, _INFLATE_STEP)
            if not part and not inflater.unconsumed_tail:
                break
            budget.spend_bytes(len(part))
            parts.append(part)
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InvalidInput(f"{what} does not inflate: {exc}", field="data") from None
    return b"".join(parts)


def _run_rows(column: bytes, budget: _Budget, strings: bool = False) -> int:
    """Rows of a run-length encoded column: a signed count, then one value repeated
    (count > 0), -count literal values (count < 0), or a null run whose length follows
    (count = 0). Values are LEB128 numbers, or ``strings`` (LEB128 length, then UTF-8),
    which are charged the bytes they expand to: automerge copies a repeated string once
    per row (map keys, change messages). Stops counting past ``rows_max``."""
    reader = BinReader(column, "a column")
    rows = 0
    while reader.at < len(column) and rows <= budget.limits.rows_max:
        budget.spend_run()
        count = reader.sleb("a run")
        values = 1 if count > 0 else -count
        if count == 0:
            count = reader.uleb("a null run")
        elif not strings:
            reader.skip_lebs(values, "a run")
        else:
            for _ in range(values):
                budget.spend_run()
                string = reader.take(reader.uleb("a string"), "a string")
                budget.spend_bytes(len(string) * max(count, 1))
        rows += max(abs(count), 1)  # an empty run still costs a step to read
    return rows


def _boolean_rows(column: bytes, budget: _Budget) -> int:
    """Rows of a boolean column: alternating run lengths, false first."""
    reader = BinReader(column, "a column")
    rows = 0
    while reader.at < len(column) and rows <= budget.limits.rows_max:
        budget.spend_run()
        rows += max(reader.uleb("a boolean run"), 1)
    return rows
