"""AsyncStore: group commit, head waiting and shutdown, on a real EventStore."""

from __future__ import annotations

import asyncio
import errno
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crdt.device import private_key_from_seed
from crdt.errors import IdMismatch, NotFound, TimestampAhead
from crdt.events import Draft, Event, parse_event
from crdt.log import forget
from crdt.log.forget import Forget
from crdt.log.records import Appended
from crdt.log.store import EventStore
from crdt.signing import Signer
from node import logs
from node.limits import Limits
from node.store import AsyncStore, Commit, StoreBusy, StoreClosing

#: Generous bound on anything that could hang: a test fails instead of waiting forever.
HANG_S = 30


def draft(n: int, session_key: str = "s1") -> Draft | Event:
    return parse_event({"agent_id": "main", "hlc": [1_700_000_000_000 + n, 0],
                        "kind": {"type": "message_received", "content": f"m{n}"}},
                       session_key=session_key)


@pytest.fixture
async def astore(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    store = await AsyncStore.open(tmp_path / "data")
    yield store
    await store.close()


async def test_concurrent_appends_share_commits(astore: AsyncStore) -> None:
    results = await asyncio.gather(*(astore.append([draft(n)]) for n in range(50)))
    assert astore.commits < 50
    assert astore.head == 50
    # Each caller got exactly its own event back.
    for n, [appended] in enumerate(results):
        assert appended.created
        assert appended.stored.event.payload["content"] == f"m{n}"
    assert sorted(r[0].stored.position for r in results) == list(range(1, 51))


async def test_each_caller_gets_its_own_slice(astore: AsyncStore) -> None:
    batches = [[draft(10 * caller + i) for i in range(caller + 1)] for caller in range(6)]
    results = await asyncio.gather(*(astore.append(batch) for batch in batches))
    for batch, result in zip(batches, results, strict=True):
        assert [a.stored.event.payload for a in result] == [d.payload for d in batch]


async def test_commit_never_exceeds_commit_events_max(tmp_path: Path) -> None:
    astore = await AsyncStore.open(tmp_path, Limits(commit_events_max=5))
    seen: list[Commit] = []
    astore.add_commit_listener(seen.append)
    try:
        await asyncio.gather(*(astore.append([draft(10 * c + i) for i in range(3)])
                               for c in range(4)))
    finally:
        await astore.close()
    # 3 + 3 > 5: no two callers fit together, and a caller is never split.
    assert [commit.events for commit in seen] == [3, 3, 3, 3]
    assert astore.commits == 4


async def test_duplicates_are_not_created_again(astore: AsyncStore) -> None:
    [first] = await astore.append([draft(1)])
    [again] = await astore.append([draft(1)])
    assert first.created and not again.created
    assert again.stored.position == first.stored.position
    assert astore.head == 1


async def test_commit_listener_counts_new_events(astore: AsyncStore) -> None:
    seen: list[Commit] = []
    astore.add_commit_listener(seen.append)
    await astore.append([draft(1), draft(2)])
    await astore.append([draft(2), draft(3)])
    assert [commit[:3] for commit in seen] == [(2, 2, 2), (2, 1, 3)]
    # Each group commit says how long it took (the metrics' commit latency).
    assert all(commit.seconds is not None and commit.seconds > 0 for commit in seen)


async def test_a_commit_names_the_sessions_of_its_events(astore: AsyncStore) -> None:
    seen: list[Commit] = []
    astore.add_commit_listener(seen.append)
    await astore.append([draft(1, "tg:a"), draft(2, "tg:b")])
    await astore.write(lambda store: store.append(draft(3, "tg:c")))
    assert seen[0].sessions == {"tg:a", "tg:b"}
    assert seen[0].touches("tg:a") and not seen[0].touches("clawsync:devices")
    # A write does not say what it stored: its listeners must read it as any session.
    assert seen[1].sessions is None and seen[1].touches("clawsync:devices")


async def test_a_first_append_of_a_signing_store_is_any_session(tmp_path: Path) -> None:
    # A group commit of client appends that also stored the device's key record (in
    # the membership session) cannot name only its callers' sessions.
    astore = await AsyncStore.open(tmp_path / "data",
                                   signer=Signer(private_key_from_seed(bytes(32)), "d0"))
    seen: list[Commit] = []
    astore.add_commit_listener(seen.append)
    try:
        await astore.append([draft(1, "tg:a")])
        await astore.append([draft(2, "tg:a")])
    finally:
        await astore.close()
    assert [commit.created for commit in seen] == [2, 1]
    assert seen[0].sessions is None and seen[0].touches("clawsync:devices")
    assert seen[1].sessions == {"tg:a"}


async def test_failing_caller_does_not_fail_the_others(astore: AsyncStore) -> None:
    good = draft(1)
    bad = Draft(good.session_key, good.agent_id, good.kind, {"content": "x",
                "attachments": []}, good.timestamp, claimed_id=bytes(32))
    results = await asyncio.gather(astore.append([good]), astore.append([bad]),
                                   astore.append([draft(2)]), return_exceptions=True)
    assert isinstance(results[1], IdMismatch)
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert astore.head == 2


async def test_a_far_future_caller_is_refused_before_it_shares_a_commit(
        astore: AsyncStore) -> None:
    late = parse_event({"agent_id": "main", "timestamp": "9999-12-31T23:59:59Z",
                        "kind": {"type": "session_ended", "reason": "never"}},
                       session_key="s1")
    results = await asyncio.gather(astore.append([draft(1)]), astore.append([late]),
                                   astore.append([draft(2)]), return_exceptions=True)
    assert isinstance(results[1], TimestampAhead)
    assert not any(isinstance(result, BaseException) for result in (results[0], results[2]))
    assert astore.head == 2 and astore.commits == 1  # the others were not split apart


async def test_reads(astore: AsyncStore) -> None:
    await astore.append([draft(1, "a"), draft(2, "b"), draft(3, "a")])
    assert [e.position for e in await astore.get_events_since("a")] == [1, 3]
    assert [e.position for e in await astore.get_events_since("a", 1)] == [3]
    assert [e.position for e in await astore.events_after(1, 1)] == [2]
    assert [ref.session_key for ref in await astore.list_sessions()] == ["a", "b"]
    assert (await astore.get_projection("a")).header.event_count == 2
    assert (await astore.stats())["events"] == 3
    with pytest.raises(NotFound):
        await astore.get_events_since("nobody")


async def test_automerge_runs_on_the_writer(astore: AsyncStore) -> None:
    await astore.append([draft(1)])
    assert isinstance(await astore.automerge("s1"), bytes)
    with pytest.raises(NotFound):
        await astore.automerge("nobody")


class Refused(Exception):
    """What a write raises after it stored events (a peer's batch refused in part)."""


async def test_a_write_that_stores_then_raises_is_told_at_once(astore: AsyncStore) -> None:
    heard: list[Commit] = []
    astore.add_commit_listener(heard.append)

    def store_then_raise(store: EventStore) -> None:
        store.append_batch([draft(1), draft(2)])
        raise Refused

    with pytest.raises(Refused):
        await astore.write(store_then_raise)
    assert astore.head == 2
    assert [(commit.created, commit.head) for commit in heard] == [(2, 2)]


class Panic(BaseException):
    """What a panicking extension raises: no ``Exception``, so nothing on the way
    catches it."""


async def test_an_append_that_stores_then_panics_is_told_at_once(
        astore: AsyncStore) -> None:
    """A stored-listener's panic after the transaction committed fails the caller and
    the committer, but the stored event is told of: the head moves, waiters wake."""
    heard: list[Commit] = []
    astore.add_commit_listener(heard.append)

    def panic(_results: list[Appended]) -> None:
        raise Panic

    store = astore._store
    store.stored_listeners.append(panic)
    with pytest.raises(StoreClosing):
        await astore.append([draft(1)])
    await astore.wait_for_head(0, HANG_S)
    assert astore.head == store.head == 1
    assert [(commit.created, commit.head) for commit in heard] == [(1, 1)]


async def test_a_write_whose_caller_was_cancelled_is_told_at_once(
        astore: AsyncStore) -> None:
    """The caller (a peer link, cut) is cancelled while its write runs on the writer:
    the write still stores its events, and waiters and listeners hear of them without
    waiting for another commit."""
    running, release = threading.Event(), threading.Event()
    heard = asyncio.Event()
    astore.add_commit_listener(lambda commit: heard.set())

    def blocked_write(store: EventStore) -> None:
        running.set()
        release.wait(HANG_S)
        store.append_batch([draft(1)])

    writing = asyncio.ensure_future(astore.write(blocked_write))
    await asyncio.to_thread(running.wait, HANG_S)
    writing.cancel()
    release.set()
    await asyncio.wait_for(heard.wait(), HANG_S)
    assert astore.head == 1
    assert writing.cancelled()


async def test_commits_are_told_in_the_order_the_writer_stored_them(
        astore: AsyncStore) -> None:
    """The writer stores a group commit, then a write, while the event loop is busy:
    the loop hears of them in that order, each with its own events, and the head never
    moves back."""
    heard: list[Commit] = []
    astore.add_commit_listener(heard.append)
    gate = threading.Event()
    blocking = asyncio.ensure_future(astore.write(lambda store: gate.wait(HANG_S)))
    appending = asyncio.ensure_future(astore.append([draft(1)]))

    async def handed_to_the_writer() -> None:
        await asyncio.sleep(0)  # the append queued
        while astore._appends._queue:
            await asyncio.sleep(0)
    await asyncio.wait_for(handed_to_the_writer(), HANG_S)
    writing = asyncio.ensure_future(
        astore.write(lambda store: store.append_batch([draft(2, "s2")])))
    await asyncio.sleep(0)  # the write waits for the writer too
    idle = astore._writer.submit(lambda: None)
    gate.set()
    idle.result(HANG_S)  # the loop is held while the writer stores both
    await asyncio.wait_for(asyncio.gather(blocking, appending, writing), HANG_S)
    assert [(commit.head, commit.created, commit.appends, commit.sessions)
            for commit in heard] == [(1, 1, True, frozenset({"s1"})), (2, 1, False, None)]
    assert astore.head == 2


async def test_wait_for_head_wakes_on_append(astore: AsyncStore) -> None:
    waiter = asyncio.create_task(astore.wait_for_head(0, timeout_s=60))
    await asyncio.sleep(0)
    assert not waiter.done()
    await astore.append([draft(1)])
    assert await waiter == 1


async def test_wait_for_head_returns_at_once_when_already_past(astore: AsyncStore) -> None:
    await astore.append([draft(1)])
    assert await astore.wait_for_head(0, timeout_s=60) == 1


async def test_wait_for_head_gives_up_after_timeout(astore: AsyncStore) -> None:
    assert await astore.wait_for_head(0, timeout_s=0.01) == 0


async def test_wait_for_head_without_limit_waits_until_the_head_passes(
        astore: AsyncStore) -> None:
    waiter = asyncio.create_task(astore.wait_for_head(1, timeout_s=None))
    await astore.append([draft(1)])  # the head moves, but not past 1: still waiting
    await asyncio.sleep(0)
    assert not waiter.done()
    await astore.append([draft(2)])
    assert await waiter == 2


async def test_a_cancelled_wait_for_head_leaves_the_others_waiting(astore: AsyncStore) -> None:
    gone = asyncio.create_task(astore.wait_for_head(0, timeout_s=None))
    staying = asyncio.create_task(astore.wait_for_head(0, timeout_s=None))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    await astore.append([draft(1)])
    assert await staying == 1


async def test_release_waiters_ends_waits(astore: AsyncStore) -> None:
    waiter = asyncio.create_task(astore.wait_for_head(0, timeout_s=60))
    await asyncio.sleep(0)
    astore.release_waiters()
    assert await waiter == 0
    assert await astore.wait_for_head(0, timeout_s=60) == 0  # no new waits either


async def test_a_follower_waits_through_a_stop_till_the_waiters_are_released(
        astore: AsyncStore) -> None:
    """A stop ends long polls and streams; a follower, which feeds clients the site still
    serves, is woken by the commits made meanwhile and ended only by the release."""
    waiter = asyncio.create_task(astore.wait_for_head(0, timeout_s=60))
    follower = asyncio.create_task(astore.wait_for_head(0, None, follower=True))
    await asyncio.sleep(0)
    astore.begin_stopping()
    assert await waiter == 0
    assert await astore.wait_for_head(0, timeout_s=60) == 0  # no new waits either
    await asyncio.sleep(0)
    assert not follower.done()
    await astore.append([draft(1)])
    assert await follower == 1
    follower = asyncio.create_task(astore.wait_for_head(1, None, follower=True))
    await asyncio.sleep(0)
    astore.release_waiters()
    assert await follower == 1


async def test_close_commits_queued_appends_first(tmp_path: Path) -> None:
    astore = await AsyncStore.open(tmp_path)
    pending = [asyncio.create_task(astore.append([draft(n)])) for n in range(20)]
    await asyncio.sleep(0)  # let them queue
    await astore.close()
    assert all(task.done() and task.result()[0].created for task in pending)
    with EventStore.open(tmp_path) as store:
        assert store.head == 20


async def test_append_after_close_is_refused(tmp_path: Path) -> None:
    astore = await AsyncStore.open(tmp_path)
    await astore.close()
    with pytest.raises(StoreClosing):
        await astore.append([draft(1)])
    with pytest.raises(StoreClosing):
        await astore.events_after()
    await astore.close()  # closing twice is harmless


async def test_node_id_and_head_survive_reopen(tmp_path: Path) -> None:
    astore = await AsyncStore.open(tmp_path)
    node_id = astore.node_id
    await astore.append([draft(1), draft(2)])
    await astore.close()
    reopened = await AsyncStore.open(tmp_path)
    try:
        assert (reopened.node_id, reopened.head) == (node_id, 2)
    finally:
        await reopened.close()


async def test_a_failing_commit_listener_does_not_stop_appends(astore: AsyncStore) -> None:
    def broken(_commit: Commit) -> None:
        raise RuntimeError("metrics bug")

    astore.add_commit_listener(broken)
    await astore.append([draft(1)])
    [appended] = await astore.append([draft(2)])
    assert appended.created and astore.head == 2


async def test_appends_beyond_the_queue_limit_are_refused_at_once(tmp_path: Path) -> None:
    astore = await AsyncStore.open(tmp_path, Limits(queue_events_max=3))
    try:
        drafts = [parse_event({"agent_id": "a", "kind": {"type": "session_ended",
                                                        "reason": str(n)}}, session_key="s")
                  for n in range(5)]
        waiting = [asyncio.ensure_future(astore.append([d])) for d in drafts[:3]]
        await asyncio.sleep(0)  # all three are queued before the committer runs
        with pytest.raises(StoreBusy):
            await astore.append(drafts[3:])
        assert len(await asyncio.gather(*waiting)) == 3
        assert len(await astore.append(drafts[3:])) == 2  # room again once committed
    finally:
        await astore.close()


async def test_a_background_writer_lets_queued_appends_commit_first(
        astore: AsyncStore) -> None:
    appending = asyncio.ensure_future(astore.append([draft(1)]))
    await asyncio.sleep(0)  # queued, not committed yet
    await astore.after_queued_appends()
    assert appending.done() and astore.head == 1
    await astore.after_queued_appends()  # nothing queued: no wait


async def test_a_forget_shares_a_commit_once_while_every_log_line_fails(
        restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log's writes fail (its disk full: /dev/full) while a client append and a
    forget record share a group commit: the forget is logged after the commit, and that
    line's failure is no failed commit. The append is stored once (not again, under a
    new timestamp) and the forget's caller hears it was stored."""
    with open("/dev/full", "w") as full:
        monkeypatch.setattr(sys, "stderr", full)
        logs.configure()
        astore = await AsyncStore.open("memory:")
        try:
            await astore.append([parse_event({"agent_id": "a", "kind": {
                "type": "message_received", "content": "old"}}, session_key="gone")])
            hello = parse_event({"agent_id": "a", "kind": {
                "type": "message_received", "content": "hello"}}, session_key="s1")
            said, forgot = await asyncio.gather(
                astore.append([hello]), astore.append([forget.forget("gone", by="t")]))
            assert [a.created for a in said + forgot] == [True, True]
            stored = await astore.get_events_since("s1")
            assert [e.event.payload["content"] for e in stored] == ["hello"]
            assert astore.commits == 2  # the two shared one
            assert logs.drain()  # the log's writer thread tried them all
            assert logs.lines_dropped()["write_error"] >= 1  # "forgotten" among them
        finally:
            await astore.close()


async def test_a_listener_failing_after_a_forget_committed_fails_no_caller(
        astore: AsyncStore) -> None:
    """A listener told of a forget after its commit raises: the commit stands. No caller
    of the group commit hears of an error, and none of its events is stored again."""

    def broken(_records: list[Forget]) -> None:
        raise OSError(errno.EIO, "derived state's disk failed")

    await astore.append([draft(1, "gone")])
    astore.documents.store.erased_listeners.insert(0, broken)
    hello = parse_event({"agent_id": "a", "kind": {
        "type": "message_received", "content": "hello"}}, session_key="s1")
    said, forgot = await asyncio.gather(
        astore.append([hello]), astore.append([forget.forget("gone", by="t")]))
    assert [a.created for a in said + forgot] == [True, True]
    assert len(await astore.get_events_since("s1")) == 1
    assert astore.commits == 2 and astore.head == 3
    record = await astore.forget("s1", by="t")  # a forget of its own, on the writer
    assert record.created and astore.head == 4
