"""bench.http_append splits a node's round by the sums its /metrics answers."""

from __future__ import annotations

import pytest

from bench.http_append import Stages, describe_stages, stage_figures
from node.http.metrics import Metrics
from node.store import Commit


def test_commits_and_appends_are_read_from_the_metrics_text() -> None:
    metrics = Metrics()
    metrics.observe_commit(Commit(events=30, created=30, head=30, seconds=0.004))
    metrics.observe_commit(Commit(events=20, created=20, head=50, seconds=0.006))
    for _ in range(50):
        metrics.append_seconds.observe(0.01)
    stages = stage_figures(metrics.render().decode())
    assert stages[:2] == (2, 50) and stages.appends == 50
    assert stages.commit_s == pytest.approx(0.01) and stages.append_s == pytest.approx(0.5)


def test_a_round_is_the_difference_of_two_readings() -> None:
    before = Stages(commits=10, commit_events=100, commit_s=0.05, appends=100, append_s=0.5)
    after = Stages(commits=12, commit_events=150, commit_s=0.06, appends=150, append_s=1.0)
    # 50 requests waited 10 ms each of a mean latency of 25 ms.
    assert describe_stages(before, after, [0.02, 0.03]) == (
        "; 25.0 events a commit, 5.0 ms each (transaction, fsync); 10.0 ms from a parsed "
        "request to its durable answer, 15.0 ms of the mean latency elsewhere (HTTP, the "
        "clients)")
    assert describe_stages(before, before, [0.02]) == ""  # no commit in the round


def test_metrics_without_appends_are_an_error() -> None:
    with pytest.raises(ValueError, match="clawsync_commit_events_count"):
        stage_figures("# HELP other_total x\n# TYPE other_total counter\nother_total 1\n")
