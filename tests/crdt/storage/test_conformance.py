"""The storage contract (``crdt.storage.base``), run against every backend.

A new backend passes this suite by adding its name to ``tests.support.storage.BACKENDS``
(and its opening to ``open_backend``); nothing else here changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from crdt.errors import StoreError
from crdt.storage.base import Storage
from tests.support.storage import BACKENDS, open_backend


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened = open_backend(request.param, tmp_path / "storage")
    yield opened
    opened.close()


def test_a_new_storage_is_empty(storage: Storage) -> None:
    assert storage.get("k") is None
    assert not storage.has("k")
    assert storage.get_many(["a", "b"]) == [None, None]
    assert storage.location


def test_put_get_and_delete(storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put("k", b"v")
        tx.put("empty", b"")
    assert storage.get("k") == b"v"
    assert storage.get("empty") == b"" and storage.has("empty")  # empty is not missing
    with storage.transaction() as tx:
        tx.put("k", b"w")
        tx.delete("empty")
        tx.delete("never there")
    assert storage.get("k") == b"w"
    assert not storage.has("empty")


def test_add_writes_only_what_is_absent(storage: Storage) -> None:
    with storage.transaction() as tx:
        assert tx.add("k", b"first")
        assert not tx.add("k", b"second")  # also against this transaction's own write
    with storage.transaction() as tx:
        assert not tx.add("k", b"third")
    assert storage.get("k") == b"first"


def test_a_transaction_reads_its_own_writes(storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put("k", b"v")
        assert tx.get("k") == b"v" and tx.has("k")
        tx.delete("k")
        assert tx.get("k") is None and not tx.has("k")


def test_a_failed_transaction_writes_nothing(storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put("kept", b"1")
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.put("kept", b"2")
        tx.put("new", b"x")
        tx.delete("kept")
        raise RuntimeError("the caller failed half way")
    assert storage.get("kept") == b"1"
    assert not storage.has("new")
    with storage.transaction() as tx:  # and the next one works
        tx.put("new", b"y")
    assert storage.get("new") == b"y"


def test_get_many_keeps_the_order_of_the_keys(storage: Storage) -> None:
    with storage.transaction() as tx:
        for n in range(10):
            tx.put(f"r{n}", str(n).encode())
    assert storage.get_many(["r3", "missing", "r0", "r9"]) == [b"3", None, b"0", b"9"]
    assert storage.get_many([]) == []


def test_a_batch_read_and_written_at_once(storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put("old", b"0")
        tx.put("gone", b"0")
    with storage.transaction() as tx:
        tx.delete("gone")
        tx.put_many([("a", b"1"), ("old", b"2"), ("a", b"3"), ("empty", b"")])
        # Its own writes, deletes and committed records alike; more keys than one
        # statement of the disk backend takes.
        keys = ["a", "missing", "old", "gone", "empty", *(f"x{n}" for n in range(600))]
        assert tx.get_many(keys) == [b"3", None, b"2", None, b"", *([None] * 600)]
        assert tx.get_many([]) == []
        assert not tx.add("a", b"4") and tx.add("b", b"5")
    assert storage.get_many(["a", "old", "empty", "b"]) == [b"3", b"2", b"", b"5"]
    with storage.transaction() as tx:  # an update through put_many is then a replace
        tx.put_many([("b", b"6")])
        tx.put("a", b"7")
    assert storage.get_many(["a", "b"]) == [b"7", b"6"]


def test_put_many_in_a_failed_transaction_writes_nothing(storage: Storage) -> None:
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.put_many([("k", b"v")])
        raise RuntimeError("the caller failed half way")
    assert storage.get("k") is None


def test_keys_after_walk_one_kind_of_record_in_key_order(storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put_many([(f"d\x1fs{n}", b"") for n in (3, 1, 2, 10)])
        tx.put_many([("d\x1f", b""), ("ds\x1fs1", b""), ("d", b""), ("c\x1fs1", b""),
                     ("e\x1fs0", b""), ("d\x1fü", b"")])
        tx.put("d\x1fgone", b"")
    with storage.transaction() as tx:
        tx.delete("d\x1fgone")
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        tx.put("d\x1fnever", b"")
        raise RuntimeError("not committed")
    every = ["d\x1f", "d\x1fs1", "d\x1fs10", "d\x1fs2", "d\x1fs3", "d\x1fü"]
    assert storage.keys_after("d\x1f", "", 100) == every
    assert storage.keys_after("d\x1f", "", 2) == every[:2]
    assert storage.keys_after("d\x1f", "d\x1fs10", 2) == ["d\x1fs2", "d\x1fs3"]
    assert storage.keys_after("d\x1f", "d\x1fs3", 100) == ["d\x1fü"]
    assert storage.keys_after("d\x1f", "d\x1fü", 100) == []
    assert storage.keys_after("ü", "", 100) == []
    assert storage.keys_after("", "d\x1fs3", 3) == ["d\x1fü", "ds\x1fs1", "e\x1fs0"]


def test_keys_and_values_of_any_content(storage: Storage) -> None:
    keys = ["c\x1fsession\x1f0", "ünïcødé ✓", "a" * 2000, " "]
    values = [bytes(range(256)), b"\x00" * 10, b"x" * (2 * 1024 * 1024), b"\xff"]
    with storage.transaction() as tx:
        for key, value in zip(keys, values, strict=True):
            tx.put(key, value)
    assert storage.get_many(keys) == values


def test_get_many_outside_a_transaction_reads_more_keys_than_one_select_takes(
        storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put_many([(f"k{i:04}", str(i).encode()) for i in range(0, 1200, 2)])
    keys = [f"k{i:04}" for i in reversed(range(1200))] + ["k0000", "k0000"]
    expected = [str(i).encode() if i % 2 == 0 else None for i in reversed(range(1200))]
    assert storage.get_many(keys) == [*expected, b"0", b"0"]


def test_transactions_do_not_nest(storage: Storage) -> None:
    with storage.transaction(), pytest.raises(StoreError), storage.transaction():
        pass


def test_other_threads_see_a_transaction_whole_or_not_at_all(storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put("a", b"0")
        tx.put("b", b"0")
    seen: list[list[bytes | None]] = []
    inside = threading.Event()
    done = threading.Event()

    def read() -> None:
        inside.wait()
        seen.append(storage.get_many(["a", "b"]))  # while the writer is half way
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    with storage.transaction() as tx:
        tx.put("a", b"1")
        inside.set()
        done.wait(10)
        tx.put("b", b"1")
    reader.join()
    assert seen == [[b"0", b"0"]]
    assert storage.get_many(["a", "b"]) == [b"1", b"1"]


def test_a_second_writer_waits_for_the_first(storage: Storage) -> None:
    order: list[str] = []
    started = threading.Event()

    def second() -> None:
        started.wait()
        with storage.transaction() as tx:
            order.append("second")
            tx.put("k", b"second")

    thread = threading.Thread(target=second)
    thread.start()
    with storage.transaction() as tx:
        started.set()
        thread.join(0.2)  # it cannot begin while this one is open
        order.append("first")
        tx.put("k", b"first")
    thread.join()
    assert order == ["first", "second"]
    assert storage.get("k") == b"second"


def test_a_closed_storage_refuses_every_call(storage: Storage) -> None:
    storage.close()
    for call in (lambda: storage.get("k"), lambda: storage.has("k"),
                 lambda: storage.get_many(["k"])):
        with pytest.raises(StoreError):
            call()
    with pytest.raises(StoreError), storage.transaction():
        pass
    storage.close()  # twice is harmless


def test_purge_leaves_the_records_as_they_are(storage: Storage) -> None:
    with storage.transaction() as tx:
        tx.put("kept", b"v1")
        tx.put("gone", b"secret")
    with storage.transaction() as tx:
        tx.put("kept", b"v2")
        tx.delete("gone")
    assert storage.purge()
    assert storage.get("kept") == b"v2" and storage.get("gone") is None
