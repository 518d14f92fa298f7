"""A device waiting to be added whose member then goes down and stays down, with real
node processes: it dials the member again within a pull interval after its first few
failed dials (``node.peers.redials.WAITING_SOON_DIALS``: the member may be restarting to
take its add), then backs off as any address that fails, not at every pull interval for
as long as the member is down."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from node.peers.redials import WAITING_SOON_DIALS
from tests.support.cluster import Cluster, wait_until
from tests.support.devices import FAST, LINK_TIMEOUT_S, device_node, device_view
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

#: The waiting device's pull interval: short, so that many go by while the member is down.
PULL_S = 0.2
#: Its back-off: from well under a pull interval up to ten of them.
SYNC = f"[sync]\nbackoff_base_s = 0.05\nbackoff_max_s = {10 * PULL_S}\n"
#: Pull intervals the member stays down for, from the device's first failed dial: far
#: more than the failed dials made again within one.
DOWN_INTERVALS = 40


def failed_dials(node: NodeProcess, url: str) -> list[float]:
    """When ``node`` logged each of its failed dials of ``url`` (``peer link down``, its
    log's clock, in seconds): a device refused never had a link up to end."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return [datetime.fromisoformat(line["timestamp"]).timestamp() for line in lines
            if line.get("event") == "peer link down" and line.get("peer") == url]


def test_a_member_down_for_long_is_dialed_with_back_off_not_at_every_pull_interval(
        tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(SYNC)
    with Cluster(tmp_path) as cluster:
        member = device_node(cluster, "member")
        phone = cluster.node("phone", secret=None, peers=[member.url], advertise=True,
                             extra_args=[*FAST, "--name", "phone", "--log-format", "json",
                                         "--pull-interval", str(PULL_S),
                                         "--config", str(config)])
        wait_until(lambda: device_view(phone)["waiting"], LINK_TIMEOUT_S,
                   "the phone refused as waiting to be added")
        member.stop()

        def down_long() -> bool:
            dials = failed_dials(phone, member.url)
            return len(dials) > 1 and dials[-1] - dials[0] >= DOWN_INTERVALS * PULL_S

        wait_until(down_long, LINK_TIMEOUT_S, "the member down for many pull intervals")
        dials = failed_dials(phone, member.url)
    intervals = (dials[-1] - dials[0]) / PULL_S
    # Dialed at every pull interval, about one dial per interval would have been made.
    assert WAITING_SOON_DIALS < len(dials) < intervals / 2, (len(dials), intervals)
