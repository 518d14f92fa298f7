"""The Prometheus alert rules and the Grafana dashboard in deploy/: they parse, and every
metric they query is one a real node exposes on /metrics. With promtool on PATH (Debian:
``apt-get install prometheus``), the rules are also checked and their unit tests
(deploy/prometheus/alerts_test.yml) run, and the dashboard's queries are parsed as PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.metrics import exposed_names, scrape
from tests.support.processes import NodeProcess

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "clawsync.json"
#: A metric name in a PromQL expression (the project's names all start so).
METRIC = re.compile(r"\bclawsync_[a-z0-9_]+")
#: Grafana's variables, replaced by values PromQL takes, to parse its queries.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}
PROMTOOL_TIMEOUT_S = 60


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in panels(dashboard["panels"])
               for target in panel.get("targets", [])]
    queries += [variable["definition"] for variable in dashboard["templating"]["list"]
                if variable["type"] == "query"]
    return queries


def test_the_rules_an_operator_wants() -> None:
    found = {rule["alert"]: rule for rule in rules()}
    assert set(found) == {"ClawsyncPeerDown", "ClawsyncPeerFallingBehind",
                          "ClawsyncCommitsSlow", "ClawsyncAfterCommitFailures",
                          "ClawsyncTlsCertificateExpiring"}
    assert found["ClawsyncPeerDown"]["for"] == "10m"
    # Forgotten content may stay in the files: one failure is worth a look.
    assert "clawsync_after_commit_failures_total" in found["ClawsyncAfterCommitFailures"][
        "expr"]
    assert "for" not in found["ClawsyncAfterCommitFailures"]
    # Sooner than the node's log (TLS_EXPIRY_WARN_DAYS), later than certbot's renewal.
    assert "clawsync_tls_certificate_expiry_timestamp_seconds - time() < 21 * 86400" in \
        found["ClawsyncTlsCertificateExpiring"]["expr"]
    for name, rule in found.items():
        assert rule["labels"]["severity"], name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert METRIC.search(rule["expr"]), name


def test_the_dashboard_shows_what_the_issue_asks() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "clawsync"
    queries = " ".join(dashboard_queries())
    for metric in ("clawsync_peer_up", "clawsync_peer_events_lacking",
                   "clawsync_peer_received_bytes_total", "clawsync_peer_sent_bytes_total",
                   "clawsync_commit_seconds_bucket", "clawsync_events_appended_total",
                   "clawsync_automerge_clients"):
        assert metric in queries, metric
    ids = [panel["id"] for panel in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


async def test_every_metric_queried_is_one_a_node_exposes(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, extra_args=["--cluster-secret", "s" * 32]) as node:
        exposed = exposed_names(await scrape(node.url))
    queried = {name for expr in [rule["expr"] for rule in rules()] + dashboard_queries()
               for name in METRIC.findall(expr)}
    assert len(queried) >= 15
    assert queried <= exposed, f"not on /metrics: {sorted(queried - exposed)}"


def promtool(*args: str) -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    done = subprocess.run([path, *args], capture_output=True, text=True,
                          timeout=PROMTOOL_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_checks_the_rules_and_runs_their_tests() -> None:
    assert "SUCCESS: 5 rules found" in promtool("check", "rules", str(RULES))
    assert "SUCCESS" in promtool("test", "rules", str(RULE_TESTS))


def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    queries = []
    for query in dashboard_queries():
        for variable, stands_for in GRAFANA_VARIABLES.items():
            query = query.replace(variable, stands_for)
        # label_values() is Grafana's, not PromQL: its first argument is a selector.
        queries.append(re.sub(r"^label_values\((\w+), \w+\)$", r"\1", query))
    recorded = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}", "expr": query} for n, query in enumerate(queries)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(recorded))
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", str(path))
