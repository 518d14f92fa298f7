"""A device waiting to be added whose member then goes down and stays down, with real
node processes: it dials the member again within a pull interval after its first few
failed dials (``node.peers.redials.WAITING_SOON_DIALS``: the member may be restarting to
take its add), then backs off as any address that fails, not at every pull interval for
as long as the member is down."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

import pytest

from node.peers.redials import WAITING_SOON_DIALS
from tests.support.cluster import Cluster, wait_until
from tests.support.devices import FAST, LINK_TIMEOUT_S, device_node, device_view
from tests.support.processes import NodeProcess

pytestmark = pytest.mark.integration

#: The waiting device's pull interval: short, so that its dials made again soon go by fast.
PULL_S = 0.25
#: Gaps between its failed dials up to this are dials made again within a pull interval
#: (the three more allow for a loaded machine, which only makes gaps longer).
SOON_S = 4 * PULL_S
#: Its back-off: every wait at least half the base (``backoff_delay_s``'s jitter), so
#: above ``SOON_S`` however the jitter falls; back-off dials are never taken for dials
#: made again soon.
SYNC = f"[sync]\nbackoff_base_s = {12 * PULL_S}\nbackoff_max_s = {12 * PULL_S}\n"
#: Back-off dials seen after the dials made again soon.
BACKED_OFF = 2


def failed_dials(node: NodeProcess, url: str) -> list[float]:
    """When ``node`` logged each of its failed dials of ``url`` (``peer dial failed``:
    the first at info, the same failure again at debug, which test nodes log; its log's
    clock, in seconds)."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return [datetime.fromisoformat(line["timestamp"]).timestamp() for line in lines
            if line.get("event") == "peer dial failed" and line.get("peer") == url]


def test_a_member_down_is_dialed_soon_after_its_first_failed_dials_then_backs_off(
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
        seen = WAITING_SOON_DIALS + BACKED_OFF + 1
        wait_until(lambda: len(failed_dials(phone, member.url)) >= seen, LINK_TIMEOUT_S,
                   "the member's dials made again soon, then backed off")
        dials = failed_dials(phone, member.url)
    gaps = [later - earlier for earlier, later in itertools.pairwise(dials)]
    soon = [gap < SOON_S for gap in gaps[:seen - 1]]
    # Each of the first failed dials made again soon, the next ones after the back-off;
    # dialed at every pull interval, all would be soon.
    assert soon == [True] * WAITING_SOON_DIALS + [False] * BACKED_OFF, gaps
