"""crdt.automerge.chunks: what a sync message's changes unpack to, against real automerge output
and hand-made bombs."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from automerge.core import ROOT, Document, ObjType, ScalarType
from hypothesis import given
from hypothesis import strategies as st

from crdt.automerge.binreader import uleb
from crdt.automerge.chunks import (
    CHANGE,
    COMPRESSED,
    DOCUMENT,
    HEADS_MAX,
    KEY_OPERATIONS_MAX,
    NESTING_MAX,
    UnpackLimits,
    measure_chunks,
)
from crdt.errors import InvalidInput, LimitExceeded
from tests.support.automerge import chunk, deflate

ROOMY = UnpackLimits(bytes_max=2**30, rows_max=10**9)
ACTION_COLUMN = 0x42  # id 4, integer: one row per operation


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def change_body(columns: list[tuple[int, bytes]], author: bytes = b"\x01" * 16,
                others: tuple[bytes, ...] = (), start_op: int = 2**20) -> bytes:
    """A change by ``author`` naming ``others``, no deps, seq 1, no message; its
    operations are numbered from ``start_op`` (after whatever they refer to)."""
    head = (uleb(0) + uleb(len(author)) + author + uleb(1) + uleb(start_op) + uleb(0) + uleb(0)
            + uleb(len(others)) + b"".join(uleb(len(o)) + o for o in others))
    meta = uleb(len(columns)) + b"".join(uleb(spec) + uleb(len(data)) for spec, data in columns)
    return head + meta + b"".join(data for _, data in columns)


def busy_document(keys: int) -> Document:
    doc = Document(actor_id=b"\x02" * 16)
    with doc.transaction() as tx:
        for i in range(keys):
            tx.put(ROOT, f"k{i}", ScalarType.Str, f"value {i}")
        text = tx.put_object(ROOT, "text", ObjType.Text)
        tx.insert(text, 0, ScalarType.Str, "hi")
    return doc


def test_real_changes_and_documents_are_measured() -> None:
    doc = busy_document(2000)
    [change] = [bytes(c.bytes) for c in doc.get_changes([])]
    assert change[8] == COMPRESSED  # large changes travel deflated
    saved = doc.save()
    assert saved[8] == DOCUMENT
    for data in (change, saved):
        unpacked = measure_chunks([data], ROOMY)
        assert unpacked.rows >= 2001  # one row per operation at least
        assert unpacked.bytes > len(data)  # inflated
    small = Document(actor_id=b"\x03" * 16)
    with small.transaction() as tx:
        tx.put(ROOT, "a", ScalarType.Int, 1)
    [plain] = [bytes(c.bytes) for c in small.get_changes([])]
    assert plain[8] == CHANGE
    assert measure_chunks([plain, plain + plain], ROOMY).rows == 6  # a change and its op, x3


def test_a_deflate_bomb_stops_at_the_bound() -> None:
    bomb = chunk(COMPRESSED, deflate(bytes(64 * 1024 * 1024)))
    assert len(bomb) < 100_000
    with pytest.raises(LimitExceeded, match="more than 1048576 bytes"):
        measure_chunks([bomb], UnpackLimits(bytes_max=2**20, rows_max=10**6))


def test_a_bomb_in_a_document_column_stops_at_the_bound() -> None:
    column = deflate(bytes(64 * 1024 * 1024))
    body = (uleb(0) + uleb(0)  # no actors, no heads
            + uleb(0)  # no change columns
            + uleb(1) + uleb(0x57 | 0x08) + uleb(len(column))  # one deflated value column
            + column)
    with pytest.raises(LimitExceeded, match="bytes"):
        measure_chunks([chunk(DOCUMENT, body)], UnpackLimits(bytes_max=2**20, rows_max=10**6))


@pytest.mark.parametrize("run", [
    sleb(2**40) + uleb(1),  # one value repeated 2^40 times
    sleb(0) + uleb(2**40),  # 2^40 nulls
])
def test_a_run_of_billions_of_operations_is_refused(run: bytes) -> None:
    body = change_body([(ACTION_COLUMN, run)])
    assert len(body) < 100
    with pytest.raises(LimitExceeded, match="rows"):
        measure_chunks([chunk(CHANGE, body)], UnpackLimits(bytes_max=2**20, rows_max=10**6))


def test_rows_count_literal_runs_and_booleans() -> None:
    literal = sleb(-3) + uleb(1) + uleb(300) + uleb(2**40)  # three values, one of 6 bytes
    booleans = uleb(2) + uleb(5)  # two false, five true
    body = change_body([(ACTION_COLUMN, literal + sleb(4) + uleb(7)), (0x34, booleans)])
    assert measure_chunks([chunk(CHANGE, body)], ROOMY).rows == 1 + 7  # the change, its ops


def test_many_small_runs_are_bounded_in_steps() -> None:
    # Five columns of 300 one-row runs: within 400 rows, but each run is a step to read.
    runs = (sleb(1) + uleb(0)) * 300
    body = change_body([(0x02 | i << 4, runs) for i in range(5)])
    with pytest.raises(LimitExceeded, match="runs"):
        measure_chunks([chunk(CHANGE, body)], UnpackLimits(bytes_max=2**20, rows_max=400))


@pytest.mark.parametrize(("data", "problem"), [
    (b"\x00" * 12, "bad magic bytes"),
    (chunk(3, b""), "type 3 is not accepted"),
    (chunk(CHANGE, change_body([(ACTION_COLUMN, b"")]))[:-1], "runs past its end"),
    (chunk(COMPRESSED, b"\xff" * 8), "does not inflate"),
    (chunk(CHANGE, change_body([(ACTION_COLUMN | 0x08, deflate(b"\x01\x00"))])),
     "deflated columns"),
    (chunk(CHANGE, change_body([(ACTION_COLUMN, sleb(-5) + uleb(1))])), "runs past its end"),
])
def test_malformed_chunks_are_invalid_input(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        measure_chunks([data], ROOMY)


@given(st.binary(max_size=200))
def test_any_bytes_are_measured_or_refused(data: bytes) -> None:
    for candidate in (data, chunk(CHANGE, data), chunk(DOCUMENT, data),
                      chunk(COMPRESSED, deflate(data))):
        with contextlib.suppress(InvalidInput):  # and nothing else
            measure_chunks([candidate], UnpackLimits(bytes_max=4096, rows_max=1000))


def test_changes_without_operations_count_as_rows() -> None:
    empty = chunk(CHANGE, change_body([]))
    with pytest.raises(LimitExceeded, match="rows"):
        measure_chunks([empty * 101], UnpackLimits(bytes_max=2**20, rows_max=100))


def test_a_repeated_string_is_charged_what_it_expands_to() -> None:
    key = b"k" * 1000
    keys = sleb(10_000) + uleb(len(key)) + key  # one key for 10,000 operations: 10 MB
    body = change_body([(0x15, keys)])  # the key string column
    assert len(body) < 2000
    with pytest.raises(LimitExceeded, match="bytes"):
        measure_chunks([chunk(CHANGE, body)], UnpackLimits(bytes_max=2**20, rows_max=10**6))


def test_structures_cost_steps_of_the_walk() -> None:
    actors = uleb(0) + uleb(0)  # deps, then an actor of length 0 ...
    many = uleb(1000) + b"\x00" * 1000  # ... and 1,000 empty other actors
    body = actors + uleb(1) + uleb(1) + uleb(0) + uleb(0) + many + uleb(0)
    with pytest.raises(LimitExceeded, match="runs, chunks, columns and actors"):
        measure_chunks([chunk(CHANGE, body)], UnpackLimits(bytes_max=2**20, rows_max=100))
    columns = change_body([(0x02, b"")] * 65)
    with pytest.raises(InvalidInput, match="at most 64"):
        measure_chunks([chunk(CHANGE, columns)], ROOMY)


def test_a_number_may_not_run_on() -> None:
    endless = sleb(-1) + b"\x80" * 10_000 + b"\x00"  # one literal of 10,001 bytes
    body = change_body([(ACTION_COLUMN, endless)])
    with pytest.raises(InvalidInput, match="bad number"):
        measure_chunks([chunk(CHANGE, body)], ROOMY)


def key_operations(columns: list[tuple[int, bytes]], rows: int) -> bytes:
    """A change of ``rows`` operations that set nulls, keyed by ``columns``."""
    return chunk(CHANGE, change_body([*columns, (ACTION_COLUMN, sleb(rows) + uleb(1))]))


@pytest.mark.parametrize("columns", [
    [(0x15, sleb(10_001) + uleb(1) + b"k")],  # one map key, a run
    [(0x15, sleb(-20_002) + (uleb(1) + b"a" + uleb(1) + b"b") * 10_001)],  # two, alternating
    [(0x11, sleb(10_001) + uleb(0)), (0x13, sleb(1) + sleb(7) + sleb(10_000) + sleb(0))],
])
def test_too_many_operations_on_one_key_are_refused(columns: list[tuple[int, bytes]]) -> None:
    rows = 20_002 if len(columns[0][1]) > 1000 else 10_001
    with pytest.raises(LimitExceeded, match=f"{KEY_OPERATIONS_MAX} (operations )?on one key"):
        measure_chunks([key_operations(columns, rows)], ROOMY)


def test_operations_on_a_few_keys_are_refused_together() -> None:
    keys = b"".join(sleb(6_000) + uleb(1) + name for name in (b"a", b"b", b"c"))
    with pytest.raises(LimitExceeded, match="operations that share keys cost more"):
        measure_chunks([key_operations([(0x15, keys)], 18_000)], ROOMY)
    two = b"".join(sleb(6_000) + uleb(1) + name for name in (b"a", b"b"))
    assert measure_chunks([key_operations([(0x15, two)], 12_000)], ROOMY).rows == 12_001


def test_operations_on_many_keys_pass() -> None:
    doc = busy_document(KEY_OPERATIONS_MAX + 2000)  # one change, every key once
    [change] = [bytes(c.bytes) for c in doc.get_changes([])]
    assert measure_chunks([change], ROOMY).rows > KEY_OPERATIONS_MAX
    counting = sleb(10_001) + sleb(1)  # element counters 1, 2, 3, ...: all different
    measure_chunks([key_operations([(0x11, sleb(10_001) + uleb(0)), (0x13, counting)],
                                   10_001)], ROOMY)


def test_one_object_is_counted_whatever_index_names_its_actor() -> None:
    a, c = b"\x0a" * 16, b"\x0c" * 16
    ops = [(0x15, sleb(6_000) + uleb(1) + b"k"), (ACTION_COLUMN, sleb(6_000) + uleb(1))]
    # Object (c, 5): actor index 1 in a change by a, index 0 in a change by c.
    by_a = change_body([(0x01, sleb(6_000) + uleb(1)), (0x02, sleb(6_000) + uleb(5)), *ops],
                       author=a, others=(c,))
    by_c = change_body([(0x01, sleb(6_000) + uleb(0)), (0x02, sleb(6_000) + uleb(5)), *ops],
                       author=c)
    with pytest.raises(LimitExceeded, match="on one key"):
        measure_chunks([chunk(CHANGE, by_a) + chunk(CHANGE, by_c)], ROOMY)
    with pytest.raises(InvalidInput, match="listed twice"):
        measure_chunks([chunk(CHANGE, change_body([], author=a, others=(c, c)))], ROOMY)
    with pytest.raises(InvalidInput, match="listed twice"):
        measure_chunks([chunk(CHANGE, change_body([], author=a, others=(a,)))], ROOMY)


def test_concurrent_changes_are_bounded_and_chains_are_not() -> None:
    def change(n: int, dep: bytes = b"") -> bytes:
        body = (uleb(len(dep) // 32) + dep + uleb(4) + n.to_bytes(4, "big") + uleb(1)
                + uleb(1) + uleb(0) + uleb(0) + uleb(0) + uleb(0))
        return body

    def hash_of(body: bytes) -> bytes:
        return hashlib.sha256(bytes([CHANGE]) + uleb(len(body)) + body).digest()

    apart = b"".join(chunk(CHANGE, change(n)) for n in range(HEADS_MAX + 1))
    with pytest.raises(LimitExceeded, match=f"{HEADS_MAX + 1} concurrent heads"):
        measure_chunks([apart], ROOMY)
    chain, dep = [], b""
    for n in range(HEADS_MAX + 500):
        body = change(n, dep)
        chain.append(chunk(CHANGE, body))
        dep = hash_of(body)
    assert measure_chunks([b"".join(chain)], ROOMY).rows == HEADS_MAX + 500


def nested_document(depth: int, keys: int = 100) -> Document:
    doc = Document(actor_id=b"\x04" * 16)
    with doc.transaction() as tx:
        for i in range(keys):
            tx.put(ROOT, f"k{i}", ScalarType.Int, i)
        obj = ROOT
        for _ in range(depth):
            obj = tx.put_object(obj, "x", ObjType.Map)
    return doc


@pytest.mark.parametrize("depth", [NESTING_MAX - 24, NESTING_MAX + 1])
def test_objects_nested_too_deep_are_refused(depth: int) -> None:
    doc = nested_document(depth)
    [change] = [bytes(c.bytes) for c in doc.get_changes([])]
    for data in (change, doc.save()):
        if depth <= NESTING_MAX:
            assert measure_chunks([data], ROOMY).rows > NESTING_MAX  # so it was checked
        else:
            with pytest.raises(LimitExceeded, match=f"nested more than {NESTING_MAX} deep"):
                measure_chunks([data], ROOMY)


def test_an_operation_may_not_refer_to_a_later_one() -> None:
    def inserts_after(element: int) -> bytes:
        """100 operations after list element (author, ``element``), numbered from 8."""
        return change_body([(0x11, sleb(100) + uleb(0)),
                            (0x13, sleb(1) + sleb(element) + sleb(99) + sleb(0)),
                            (ACTION_COLUMN, sleb(100) + uleb(1))], start_op=8)

    measure_chunks([chunk(CHANGE, inserts_after(7))], ROOMY)
    with pytest.raises(InvalidInput, match="refers to one that comes after it"):
        measure_chunks([chunk(CHANGE, inserts_after(8))], ROOMY)
