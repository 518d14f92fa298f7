"""What ``clawsync status`` says of a removed device's removal, with real node processes:
the remover's name as ``clawsync devices`` shows it, and a character that shows as nothing
escaped wherever it is in the sentence (the reason a member wrote), as the console's
device card shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import Cluster
from tests.support.devices import device_id, removed_phone
from tests.support.processes import run_cli

pytestmark = pytest.mark.integration

#: A remover's name (a node so named still starts) and a reason holding the Hangul
#: filler, which shows as nothing.
REMOVER = "mallory\u3164"
REASON = "lost\u3164"


def test_status_shows_a_removal_with_its_hidden_characters_escaped(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        a, phone = removed_phone(cluster, REMOVER, REASON)
        shown = run_cli(phone, "status")
        assert shown.returncode == 0, shown.stderr
        [line] = [line for line in shown.stdout.splitlines() if line.startswith("REMOVED:")]
        assert line.startswith("REMOVED: this device was removed from the cluster by "
                               f"mallory\\u3164 ({device_id(a)}) at "), line
        assert line.endswith(" (lost\\u3164); no member links with it any more"), line
        assert "\u3164" not in shown.stdout
        # So does the warning after a write there.
        late = run_cli(phone, "append", "chat", "message_received", "content=late")
        assert late.returncode == 0, late.stderr
        assert "warning: this device was removed from the cluster by mallory\\u3164 (" \
            in late.stderr and "(lost\\u3164): " in late.stderr, late.stderr
