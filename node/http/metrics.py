"""Prometheus metrics of one node, in a registry of its own.

A registry per application (not the process-global default) lets several nodes run in
one process, as the tests do, without their counters mixing or colliding. The peer
links (``node.peers.metrics``) and Automerge clients (``node.automerge.metrics``) add
collectors of their own, read when scraped. The log lines dropped are the process's, not
one node's: its stderr is one (``node.logs``).

>>> metrics = Metrics()
>>> metrics.observe_commit(Commit(events=3, created=2, head=2, seconds=0.004))
>>> b"clawsync_events_appended_total 2.0" in metrics.render()
True
>>> b'clawsync_commit_seconds_bucket{le="0.005"} 1.0' in metrics.render()
True
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from node import logs
from node.folder import FolderSize
from node.store import Commit

#: Append latency buckets (seconds): an fsync takes from ~0.1 ms (NVMe) to tens of ms
#: (SD cards, network disks), and a request may wait behind a commit of thousands.
APPEND_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0)
#: Events per commit: powers of two up to the default ``commit_events_max``.
COMMIT_BUCKETS = tuple(float(2**n) for n in range(13))

# No ``*_created`` series beside each counter and histogram: their value would be when
# this process first made the series, not when what it counts began, and nothing reads
# them. The switch is prometheus_client's own, for the whole process.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library


class Metrics:
    """The node's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "clawsync_http_requests", "HTTP requests answered, by route, method and status",
            ["route", "method", "status"], registry=self.registry)
        #: Answers counted since the last scrape, by route, method and status: a plain
        #: dict per request, added to ``requests`` when scraped (a counter's ``inc``
        #: takes a lock, and ``labels`` builds its key under another, on every request).
        self._answers: dict[tuple[str, str, int], int] = {}
        self.append_seconds = Histogram(
            "clawsync_append_seconds",
            "Time from a validated append request to its durable acknowledgement",
            buckets=APPEND_BUCKETS_S, registry=self.registry)
        self.events_appended = Counter(
            "clawsync_events_appended", "Events newly stored (duplicates not counted)",
            registry=self.registry)
        self.commit_events = Histogram(
            "clawsync_commit_events", "Events per group commit", buckets=COMMIT_BUCKETS,
            registry=self.registry)
        self.head = Gauge("clawsync_head_position", "Position of the newest stored event",
                          registry=self.registry)
        self.sessions = Gauge("clawsync_sessions",
                              "Sessions stored on this node, the cluster's own and those "
                              "forgotten whole among them", registry=self.registry)
        self.sessions_forgotten = Gauge(
            "clawsync_sessions_forgotten", "Sessions stored on this node whose every event "
            "was forgotten (counted in clawsync_sessions)", registry=self.registry)
        self.events = Gauge("clawsync_events_stored", "Events stored on this node",
                            registry=self.registry)
        self.commit_seconds = Histogram(
            "clawsync_commit_seconds", "Time of one commit that stored events (a group "
            "commit of appends, or a peer's batch): the transaction and its fsync",
            buckets=APPEND_BUCKETS_S, registry=self.registry)
        self.data_bytes = Gauge("clawsync_data_folder_bytes",
                                "Bytes of the files in the data folder",
                                registry=self.registry)
        self.registry.register(LogCollector())
        self.store_counts = StoreCollector()
        self.registry.register(self.store_counts)

    def observe_commit(self, commit: Commit) -> None:
        """Record one group commit (an ``AsyncStore`` commit listener)."""
        self.events_appended.inc(commit.created)
        self.commit_events.observe(commit.events)
        self.head.set(commit.head)
        if commit.seconds is not None:
            self.commit_seconds.observe(commit.seconds)

    async def refresh_storage(self, head: int, stats: dict[str, int], forgotten: int,
                              folder: FolderSize, after_commit_failures: int) -> None:
        """Update the storage gauges before a scrape, from the store's ``stats`` (read on
        a reader thread) and the sessions ``forgotten`` whole as ``GET /v1/node`` counts
        them (kept within 0 and the sessions it lists, should the log's count be off);
        the folder's size is the one ``GET /v1/node`` answers (walked on another
        thread, at most every ``STORAGE_SIZE_TTL_S``); the store's count of
        ``after_commit_failures`` (``StoreCollector``)."""
        self.store_counts.after_commit_failures = after_commit_failures
        self.head.set(head)
        self.events.set(stats["events"])
        self.sessions.set(stats["sessions"])
        self.sessions_forgotten.set(forgotten)
        self.data_bytes.set(await folder.bytes())

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        answers, self._answers = self._answers, {}
        for (route, method, status), count in answers.items():
            self.requests.labels(route, method, str(status)).inc(count)
        return generate_latest(self.registry)

    def response(self) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def count_answer(self, request: web.Request, status: int) -> None:
        """Count one answer by route template, method and status (called by the node's
        one middleware, ``node.http.wire.answer_middleware``, for every request)."""
        key = (route_of(request), request.method, status)
        self._answers[key] = self._answers.get(key, 0) + 1


class LogCollector(Collector):
    """The log lines this process dropped (``node.log_stream.LogStream``), by reason
    (``node.logs.REASONS``): nobody reads them any more (a terminal closed, a pipe's
    reader gone, stderr closed), stderr's reader was slow or stalled (the lines waiting
    for it filled the queue, or a non-blocking stderr was full), or the write failed (a
    log file's disk failing or full); or a report of Python's was dropped before it
    became a line (the report of a record the handler could not write failed in turn,
    a warning raised while warnings were logged too deep); or a record another library's
    handler could not write (never one of the node's lines, counted and not written);
    or a line of a kind strangers can make this node log, over its bound
    (``node.log_window``). Read when scraped."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "clawsync_log_lines_dropped", "Log lines not written: nobody could read them "
            "(reader_gone), stderr's reader was slow or stalled (would_block), the write "
            "failed (write_error), a record that could not be written and its report, "
            "which failed in turn (report_failed), a warning was raised too deep within "
            "warnings (warning_nested), or a record another library's handler could not "
            "write; never one of the node's lines (foreign_failed), or a line of a kind "
            "strangers can make this node log was over its bound for the window (held; "
            "the next line of its kind says how many, if one comes)",
            labels=["reason"])
        for reason, lines in logs.lines_dropped().items():
            family.add_metric([reason], lines)
        yield family


class StoreCollector(Collector):
    """What failed after a commit that stands, since the store opened
    (``crdt.log.store.EventStore.after_commit_failures``): a listener told of forget
    records (a session's Automerge document to drop) or the purge that erases forgotten
    content from the storage files. Each is logged and tried again after later commits;
    the count is the store's own, set before each scrape."""

    def __init__(self) -> None:
        self.after_commit_failures = 0

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "clawsync_after_commit_failures", "Listeners and purges that failed after a "
            "commit that stands (each logged, tried again after later commits)",
            value=self.after_commit_failures)


def route_of(request: web.Request) -> str:
    """The route template (``/v1/sessions/{key}``), never the raw path: raw paths would
    make one time series per session."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"

