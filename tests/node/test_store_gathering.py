"""The group commit's gathering of appends before a commit (``GATHER_TURNS_MAX``, the wait
for the callers of the previous commit and its bound ``RETURN_WAIT_MAX_S``), and its
split commits, counted in commits on a real store (``node.group_commit``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crdt.errors import IdMismatch, StorageFull
from crdt.events import Draft, Event, parse_event
from crdt.log.store import EventStore
from crdt.storage.backends import open_storage
from node import group_commit
from node.group_commit import GATHER_TURNS_MAX, GroupCommit
from node.store import AsyncStore, Commit, StoreClosing
from tests.support.storage import FailingStorage

#: Generous bound on anything that could hang: a test fails instead of waiting forever.
HANG_S = 30


def draft(n: int) -> Draft | Event:
    return parse_event({"agent_id": "main", "hlc": [1_700_000_000_000 + n, 0],
                        "kind": {"type": "message_received", "content": f"m{n}"}},
                       session_key="s1")


async def turns(n: int) -> None:
    """Let the event loop run ``n`` turns."""
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.fixture
async def astore(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    store = await AsyncStore.open(tmp_path / "data")
    yield store
    await store.close()


def commit_sizes(astore: AsyncStore) -> list[int]:
    """The number of events of each commit from now on."""
    sizes: list[int] = []

    def seen(commit: Commit) -> None:
        sizes.append(commit.events)

    astore.add_commit_listener(seen)
    return sizes


async def test_appends_of_one_loop_turn_share_one_commit(astore: AsyncStore) -> None:
    sizes = commit_sizes(astore)
    await asyncio.gather(*(astore.append([draft(n)]) for n in range(8)))
    # Fewer callers than the commit before answered: one commit still, once the wait for
    # the missing ones ended.
    await asyncio.gather(*(astore.append([draft(n)]) for n in range(8, 13)))
    assert sizes == [8, 5]


async def commit_sizes_of(location: Path, arrivals: list[int]) -> list[int]:
    """On a new store, one append of one event at each of the ``arrivals`` (loop turns
    counted from the first): the number of events of each commit."""
    astore = await AsyncStore.open(location)
    sizes = commit_sizes(astore)

    async def append_after(turns_before: int, n: int) -> None:
        await turns(turns_before)
        await astore.append([draft(n)])

    try:
        await asyncio.wait_for(asyncio.gather(
            *(append_after(turn, n) for n, turn in enumerate(arrivals))), HANG_S)
    finally:
        await astore.close()
    return sizes


async def test_appends_ready_over_a_few_turns_join_one_commit(tmp_path: Path) -> None:
    # One more append every turn, for fewer turns than GATHER_TURNS_MAX.
    arrivals = list(range(GATHER_TURNS_MAX))
    assert await commit_sizes_of(tmp_path, arrivals) == [len(arrivals)]


async def test_an_append_after_the_queue_stopped_growing_does_not_hold_the_commit(
        tmp_path: Path) -> None:
    # Nothing queues in turn 2: the commit is taken without the append of turn 3.
    assert await commit_sizes_of(tmp_path, [0, 1, 3]) == [2, 1]


async def test_a_steady_stream_does_not_hold_the_commit_for_ever(tmp_path: Path) -> None:
    arrivals = list(range(4 * GATHER_TURNS_MAX))
    sizes = await commit_sizes_of(tmp_path, arrivals)
    assert sum(sizes) == len(arrivals)
    assert sizes[0] <= GATHER_TURNS_MAX + 1  # the turn that woke it, and the turns gathered


async def test_a_lone_caller_gets_one_commit_per_append(astore: AsyncStore) -> None:
    """Each commit expects its one caller back, who is already queued: never held."""
    sizes = commit_sizes(astore)
    for n in range(5):
        await asyncio.wait_for(astore.append([draft(n)]), HANG_S)
    assert sizes == [1] * 5


async def test_closing_while_a_commit_waits_for_callers_leaves_nobody_waiting(
        astore: AsyncStore) -> None:
    callers = 4
    await asyncio.gather(*(astore.append([draft(n)]) for n in range(callers)))
    # Two of the four callers come back: the next commit waits for the other two, and the
    # store closes meanwhile. It commits the two appends that wait (``close``).
    back = [asyncio.ensure_future(astore.append([draft(n)])) for n in (10, 11)]
    await turns(GATHER_TURNS_MAX + 2)
    await asyncio.wait_for(astore.close(), HANG_S)
    for append in back:
        [appended] = await asyncio.wait_for(append, HANG_S)
        assert appended.created
    assert astore.head == callers + 2
    with pytest.raises(StoreClosing):
        await astore.append([draft(12)])


async def test_callers_of_a_failed_commit_are_not_waited_for(tmp_path: Path) -> None:
    """A commit that failed (a full disk) answered its callers with the error: the next
    commit does not wait for them, as it waits for callers answered with success."""
    storage = FailingStorage(open_storage(tmp_path / "data"))
    astore = AsyncStore(EventStore(storage), ThreadPoolExecutor(max_workers=1))
    try:
        await asyncio.gather(*(astore.append([draft(n)]) for n in range(2)))
        storage.failing = ""  # every write: the disk is full
        failed = await asyncio.gather(*(astore.append([draft(n)]) for n in (2, 3)),
                                      return_exceptions=True)
        assert all(isinstance(result, StorageFull) for result in failed)
        storage.failing = None
        sizes = commit_sizes(astore)
        # One append, and another once the queue stopped growing: the first is committed
        # alone, not held for the second as for a caller of the failed commit.
        first = asyncio.ensure_future(astore.append([draft(4)]))
        await turns(GATHER_TURNS_MAX + 2)
        second = asyncio.ensure_future(astore.append([draft(5)]))
        await asyncio.wait_for(asyncio.gather(first, second), HANG_S)
        assert sizes == [1, 1]
        assert astore.commits == 3
    finally:
        await astore.close()


def forged(n: int) -> Draft:
    """An append the store refuses (its claimed id is not its hash) once it commits it,
    failing the group commit it shares with others."""
    good = draft(n)
    return Draft(good.session_key, good.agent_id, good.kind, {"content": "x",
                 "attachments": []}, good.timestamp, claimed_id=bytes(32))


async def test_callers_of_a_split_commit_are_waited_for(astore: AsyncStore) -> None:
    """A group commit that one caller failed is committed caller by caller: the next
    commit waits for every caller answered with success, not for the last one's
    commit alone (which failed, and expected none)."""
    results = await asyncio.gather(*(astore.append([draft(n)]) for n in range(3)),
                                   astore.append([forged(3)]), return_exceptions=True)
    assert isinstance(results[3], IdMismatch)
    assert astore.commits == 3  # one per caller stored
    sizes = commit_sizes(astore)
    # The three come back, one at once and two once the queue stopped growing.
    first = asyncio.ensure_future(astore.append([draft(10)]))
    await turns(GATHER_TURNS_MAX + 2)
    rest = [asyncio.ensure_future(astore.append([draft(n)])) for n in (11, 12)]
    await asyncio.wait_for(asyncio.gather(first, *rest), HANG_S)
    assert sizes == [3]


async def test_a_caller_whose_expected_company_never_comes_is_answered(
        astore: AsyncStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit expects the eight callers of the one before; only one comes back, and
    no other: the wait ends at its bound and that one is committed and answered."""
    monkeypatch.setattr(group_commit, "RETURN_WAIT_MAX_S", 0.001)
    sizes = commit_sizes(astore)
    await asyncio.gather(*(astore.append([draft(n)]) for n in range(8)))
    [appended] = await asyncio.wait_for(astore.append([draft(8)]), HANG_S)
    assert appended.created
    assert sizes == [8, 1]


@pytest.mark.parametrize(("bound_s", "expected"), [
    (group_commit.RETURN_WAIT_MAX_S, [8, 8]),
    # No wait at all: those that came back first are committed without the others.
    (0, [8, 5, 3]),
])
async def test_the_wait_for_returning_callers_is_the_bound(
        astore: AsyncStore, monkeypatch: pytest.MonkeyPatch, bound_s: float,
        expected: list[int]) -> None:
    monkeypatch.setattr(group_commit, "RETURN_WAIT_MAX_S", bound_s)
    sizes = commit_sizes(astore)
    await asyncio.gather(*(astore.append([draft(n)]) for n in range(8)))
    # The eight come back: five at once, three once the queue stopped growing.
    first = [asyncio.ensure_future(astore.append([draft(n)])) for n in range(8, 13)]
    await turns(GATHER_TURNS_MAX + 2)
    rest = [asyncio.ensure_future(astore.append([draft(n)])) for n in range(13, 16)]
    await asyncio.wait_for(asyncio.gather(*first, *rest), HANG_S)
    assert sizes == expected


def counted_at_each_commit(appends: GroupCommit) -> list[tuple[int, int]]:
    """(callers queued, callers expected) as each commit from now on takes its batch."""
    taken: list[tuple[int, int]] = []
    take_batch = appends._take_batch

    def take_and_count() -> list[group_commit._Pending]:
        taken.append((len(appends._queue), appends._expected_callers))
        return take_batch()

    appends._take_batch = take_and_count  # type: ignore[method-assign]
    return taken


async def test_callers_of_a_split_commit_back_at_once_are_expected_once(
        astore: AsyncStore) -> None:
    """Callers of a split commit that append again as soon as they are answered are
    counted once by the next commit: all of them queued, it waits for nobody more."""
    taken = counted_at_each_commit(astore._appends)

    async def twice(n: int) -> None:
        await astore.append([draft(n)])
        await astore.append([draft(n + 10)])

    results = await asyncio.wait_for(asyncio.gather(
        *(twice(n) for n in range(3)), astore.append([forged(3)]),
        return_exceptions=True), HANG_S)
    assert results[:3] == [None] * 3
    assert isinstance(results[3], IdMismatch)
    assert taken == [(4, 0), (3, 3)]
    assert astore.commits == 4  # three parts of the split, then one for all three
    assert astore.head == 6


class WriterDied(BaseException):
    """What kills the writer, as a crash of the thread would: not an ``Exception``."""


async def test_callers_stored_before_the_writer_died_in_a_split_hear_of_their_events(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split commit whose writer dies in a later part: the callers stored before hear
    of their events (they are stored: told of the failure, a client would append them
    again), the forged one of its own error, the rest that the store is closing."""
    astore = await AsyncStore.open(tmp_path / "data")
    real, calls = astore._append_batch, []

    def append_batch(items: list[Draft | Event]) -> object:
        calls.append(len(items))
        if len(calls) == 4:  # the whole batch, then its parts: the third part dies
            raise WriterDied
        return real(items)
    monkeypatch.setattr(astore, "_append_batch", append_batch)
    answers = await asyncio.wait_for(asyncio.gather(
        *(astore.append([item]) for item in (draft(0), forged(1), draft(2), draft(3))),
        return_exceptions=True), HANG_S)
    assert calls == [4, 1, 1, 1]
    assert not isinstance(answers[0], BaseException) and astore.head == 1
    assert isinstance(answers[1], IdMismatch)
    assert [type(answer) for answer in answers[2:]] == [StoreClosing, StoreClosing]
    with pytest.raises(StoreClosing):
        await astore.append([draft(9)])


@pytest.mark.parametrize("split", [False, True])
async def test_callers_that_gave_up_are_not_expected(astore: AsyncStore,
                                                     split: bool) -> None:
    """Callers cancelled while they wait (their client disconnected) have their events
    stored, but are not answered and do not come back: the next commit expects only
    the two answered, in one commit or in a split one."""
    taken = counted_at_each_commit(astore._appends)

    async def twice(n: int) -> None:
        await astore.append([draft(n)])
        await astore.append([draft(n + 10)])

    staying = [asyncio.ensure_future(twice(n)) for n in range(2)]
    leaving = [asyncio.ensure_future(astore.append([draft(n)])) for n in (2, 3)]
    failing = [asyncio.ensure_future(astore.append([forged(4)]))] if split else []
    await turns(1)  # all queued, none committed yet
    for append in leaving:
        append.cancel()
    await asyncio.wait_for(asyncio.gather(*staying), HANG_S)
    if split:
        with pytest.raises(IdMismatch):
            await failing[0]
    assert taken == [(4 + len(failing), 0), (2, 2)]
    assert astore.head == 6


async def test_a_caller_that_gave_up_while_queued_is_answered_as_stored_when_it_retries(
        astore: AsyncStore) -> None:
    """Cancelled while its append waits for a commit (its client disconnected), a caller
    was told nothing, yet its events are stored: its retry of the same events (same
    timestamps, so the same ids) is answered as already stored, and each is stored once."""
    events = [draft(0), draft(1)]
    gave_up = asyncio.ensure_future(astore.append(events))
    await turns(1)  # queued, not committed yet
    gave_up.cancel()
    await astore.after_queued_appends()  # the commit it was queued for
    assert gave_up.cancelled()
    assert astore.head == 2  # stored, though never answered
    retried = await asyncio.wait_for(astore.append(events), HANG_S)
    assert [appended.created for appended in retried] == [False, False]
    assert [appended.stored.event.id for appended in retried] == [e.id for e in events]
    assert astore.head == 2
