"""``Intake`` (``sync.peer.intake``) declares the machine's state and methods it uses, and
``PeerSync`` sets them: mypy takes the declarations on trust, so a name ``PeerSync`` no
longer sets would only fail once a batch came in."""

from __future__ import annotations

import random

from crdt.log.store import EventStore
from sync.peer.intake import Intake
from sync.peer.machine import PeerSync


def test_a_new_machine_has_everything_the_intake_declares() -> None:
    store = EventStore.open("memory:")
    try:
        machine = PeerSync(store, "peer", now=0.0, rng=random.Random(0))
        missing = [name for name in Intake.__annotations__ if not hasattr(machine, name)]
    finally:
        store.close()
    assert Intake.__annotations__  # the check below reads something
    assert missing == []
