"""bench.replication reads a node's commits from the text its /metrics answers."""

from __future__ import annotations

import pytest

from bench.replication import commit_figures
from node.http.metrics import Metrics
from node.store import Commit


def test_commits_and_their_seconds_are_read_from_the_metrics_text() -> None:
    metrics = Metrics()
    metrics.observe_commit(Commit(events=500, created=500, head=500, seconds=0.25))
    metrics.observe_commit(Commit(events=20, created=20, head=520, seconds=0.5))
    metrics.observe_commit(Commit(events=3, created=0, head=520))  # no time: not counted
    assert commit_figures(metrics.render().decode()) == (2, 0.75)


def test_metrics_without_commits_are_an_error() -> None:
    with pytest.raises(ValueError, match="clawsync_commit_seconds"):
        commit_figures("# HELP other_total x\n# TYPE other_total counter\nother_total 1\n")
