"""Limits that go together (``node.limits``): a pair out of order that a node cannot
keep is refused (its start, or a ``ClientLimits`` when built), one that only risks
dropping a client or is pointless is let through and warned of, in words that name
each setting, its value and where it came from, and what to set."""

from __future__ import annotations

import dataclasses
import re

import pytest

from node.config import Config
from node.limits import (
    LIMIT_TABLES,
    ORDERED,
    POINTLESS,
    RISKY,
    SECONDS_MAX,
    ClientLimits,
    Limits,
    check_order,
    limits_from,
    out_of_order,
)
from sync.repo.config import RepoLimits


def test_the_first_byte_limit_may_not_exceed_the_headers_limit() -> None:
    limits = Limits(first_byte_timeout_s=20, headers_timeout_s=10)
    with pytest.raises(ValueError, match=r"\[limits\] first_byte_timeout_s \(20\) is above "
                                         r"\[limits\] headers_timeout_s \(10\)"):
        Config(limits=limits).check()


def test_the_defaults_keep_every_order_of_limits() -> None:
    kinds = (*LIMIT_TABLES.values(), ClientLimits)
    assert {*ORDERED, *RISKY, *POINTLESS} <= set(kinds)
    for kind in kinds:
        check_order(kind(), "table")
        assert out_of_order(kind(), "table") == []
        names = {field.name for field in dataclasses.fields(kind)}
        for order in (*ORDERED.get(kind, ()), *RISKY.get(kind, ()), *POINTLESS.get(kind, ())):
            assert {order.low, order.high} <= names, order  # two settings of its table


@pytest.mark.parametrize(("swapped", "said"), [
    ({"reconnect_delay_min_s": 10.0},
     "ClientLimits: reconnect_delay_min_s (10) is above reconnect_delay_max_s (5): a live "
     "stream's first reconnection would wait longer than every later one; set "
     "reconnect_delay_min_s to at most 5, or reconnect_delay_max_s to at least 10"),
    ({"subscribe_retry_base_s": 2.0, "subscribe_retry_max_s": 1.5},
     "ClientLimits: subscribe_retry_base_s (2) is above subscribe_retry_max_s (1.5): every "
     "reconnection of the projection follower would wait subscribe_retry_max_s: no "
     "back-off; set subscribe_retry_base_s to at most 1.5, or subscribe_retry_max_s to at "
     "least 2")])
def test_client_limits_out_of_order_are_refused_when_built(swapped: dict[str, float],
                                                           said: str) -> None:
    """No flag, variable or file sets ``ClientLimits``: an app that swaps a pair hears
    of it when it builds them, not as pauses that never grow. A pair equal is taken."""
    with pytest.raises(ValueError) as refused:
        ClientLimits(**swapped)
    assert str(refused.value) == said
    names = {field.name for field in dataclasses.fields(ClientLimits)}
    for order in ORDERED[ClientLimits]:
        assert {order.low, order.high} <= names, order
        equal = ClientLimits(**{order.low: 1.0, order.high: 1.0})
        assert getattr(equal, order.low) == getattr(equal, order.high)


@pytest.mark.parametrize("name", ["reconnect_delay_min_s", "subscribe_retry_base_s",
                                  "connect_timeout_s"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_client_limits_out_of_range_are_refused_when_built(name: str, value: float) -> None:
    """A pause of 0 s (or less) would reconnect in a loop without one: refused as a
    config file's value is, with the same words."""
    with pytest.raises(ValueError) as refused:
        ClientLimits(**{name: value})
    assert str(refused.value) == (f"ClientLimits: {name} must be positive and at most "
                                  f"{SECONDS_MAX}, not {value}")


@pytest.mark.parametrize(("given", "said"), [
    ({"import_batch_events_max": 0.5}, "import_batch_events_max must be a whole number, "
                                       "not 0.5"),
    ({"request_timeout_s": True}, "request_timeout_s must be a number, not True"),
    ({"connect_timeout_s": None}, "connect_timeout_s must be a number, not None")])
def test_client_limits_of_the_wrong_type_are_refused_when_built(given: dict[str, object],
                                                                said: str) -> None:
    """A value of the wrong type is refused in the config file's words, not built (a
    batch of half an event) nor left to fail as a ``TypeError`` at its first use."""
    with pytest.raises(ValueError) as refused:
        ClientLimits(**given)  # type: ignore[arg-type]
    assert str(refused.value) == f"ClientLimits: {said}"


@pytest.mark.parametrize(("table", "said"), [
    # Per address above the whole: the per-address cap can never bite.
    ({"streams-per-address-max": 300},
     "[limits] streams-per-address-max (300, from the file) is above [limits] streams_max "
     "(256, the default): one address may take every stream"),
    ({"connections_max": 100},
     "[limits] connections_per_address_max (256, the default) is above [limits] "
     "connections_max (100, from the file): one address may take every connection"),
    ({"commit_events_max": 500},
     "[limits] batch_events_max (1000, the default) is above [limits] commit_events_max "
     "(500, from the file)")])
def test_limits_that_cannot_bite_are_let_through_and_said(
        table: dict[str, int], said: str) -> None:
    """A per-address cap above the whole one is pointless, not harmful: the node starts,
    and the warning it logs names both settings, their values and where each came from,
    and what to change."""
    limits = limits_from(table, Limits, "limits")  # not refused
    keys = {key.replace("-", "_"): key for key in table}
    assert said in " ".join(out_of_order(limits, "limits", keys))


def test_ephemeral_data_larger_than_its_outbox_is_said_never_to_pass() -> None:
    """Ephemeral data above ephemeral_outbox_bytes_max is refused even into an empty
    outbox: pointless, as data above the burst is."""
    table = {"ephemeral-outbox-bytes-max": 32768}
    limits = limits_from(table, RepoLimits, "automerge-limits")
    assert out_of_order(limits, "automerge-limits", {"ephemeral_outbox_bytes_max":
                                                     "ephemeral-outbox-bytes-max"}) == [
        "[automerge-limits] ephemeral_bytes_max (65536, the default) is above "
        "[automerge-limits] ephemeral-outbox-bytes-max (32768, from the file): ephemeral "
        "data above ephemeral_outbox_bytes_max is never passed on; set [automerge-limits] "
        "ephemeral_bytes_max to at most 32768, or [automerge-limits] "
        "ephemeral-outbox-bytes-max to at least 65536"]


def test_a_smaller_outbox_that_started_before_still_starts_and_is_warned_of() -> None:
    """Pairs that only risk dropping a client were not checked once: a file that keeps
    the others in order starts as it did, each such pair warned of with both settings,
    their values and sources, what happens and what to set. No limit is changed."""
    table = {"outbox-frames-max": 16, "outbox-bytes-max": 1_000_000,
             "served-bytes-max": 500_000}
    limits = limits_from(table, RepoLimits, "automerge_limits")  # not refused
    assert limits == RepoLimits(outbox_frames_max=16, outbox_bytes_max=1_000_000,
                                served_bytes_max=500_000)  # nothing lowered behind it
    keys = {key.replace("-", "_"): key for key in table}
    assert out_of_order(limits, "automerge_limits", keys) == [
        "[automerge_limits] ephemeral_outbox_frames_max (32, the default) is not below "
        "[automerge_limits] outbox-frames-max (16, from the file): presence messages alone "
        "can fill a client's outbox and get it dropped as too slow at its next sync "
        "message; set [automerge_limits] ephemeral_outbox_frames_max below 16, or "
        "[automerge_limits] outbox-frames-max above 32",
        "[automerge_limits] served-bytes-max (500000, from the file) + [automerge_limits] "
        "ephemeral_outbox_bytes_max (1048576, the default) + 4096 bytes around a sync "
        "frame is above [automerge_limits] outbox-bytes-max (1000000, from the file): a "
        "document's first sync, in its frame, behind as much ephemeral data as may wait, "
        "can overflow a client's outbox and get it dropped as too slow; set "
        "[automerge_limits] outbox-bytes-max to at least 1552672, or [automerge_limits] "
        "ephemeral_outbox_bytes_max to at most 495904"]


@pytest.mark.parametrize("table", [
    {"outbox-frames-max": 16, "outbox-bytes-max": 1_000_000, "served-bytes-max": 500_000},
    {"outbox-bytes-max": 1_000_000, "served-bytes-max": 1_000_000},
    {"served-bytes-max": 134_000_000},
    {"outbox-frames-max": 1},
    {"ephemeral-outbox-frames-max": 300}])
def test_the_advice_of_a_warning_makes_it_go_away(table: dict[str, int]) -> None:
    """Each alternative a warning gives, set alone on the file as it stands, leaves no
    such warning: advice worked out from the values, not from defaults."""
    moves = {"to at least": 0, "to at most": 0, "below": -1, "above": 1}
    table = {key.replace("-", "_"): value for key, value in table.items()}
    warned = out_of_order(limits_from(table, RepoLimits, "t"), "t")
    assert warned, table
    for said in warned:
        alternatives = said.split("; set ")[-1].split(", or ")
        assert alternatives, said
        for alternative in alternatives:
            name, how, number = re.fullmatch(
                r"\[t\] ([a-z_]+) (to at least|to at most|below|above) (\d+)",
                alternative).groups()  # type: ignore[union-attr]
            fixed = {**table, name: int(number) + moves[how]}
            assert out_of_order(limits_from(fixed, RepoLimits, "t"), "t") == [
                other for other in warned if other != said], (alternative, fixed)


@pytest.mark.parametrize("table", [
    {"outbox-bytes-max": 1_000_000}, {"served-bytes-max": 134_217_729},
    {"outbox-bytes-max": 64 * 1024 * 1024 - 1}, {"outbox-bytes-max": 64 * 1024 * 1024},
    {"outbox-bytes-max": 1000, "served-bytes-max": 1000},
    {"outbox-frames-max": 1, "ephemeral-outbox-bytes-max": 10**9}])
def test_only_a_first_sync_above_the_whole_outbox_is_refused(table: dict[str, int]) -> None:
    """As before the pairs that only risk dropping a client were checked: a file is
    refused for the outbox's limits alone when served_bytes_max is above
    outbox_bytes_max."""
    values = {**dataclasses.asdict(RepoLimits()),
              **{key.replace("-", "_"): value for key, value in table.items()}}
    if values["served_bytes_max"] > values["outbox_bytes_max"]:
        with pytest.raises(ValueError, match=r"served.bytes.max .* is above"):
            limits_from(table, RepoLimits, "t")
    else:
        limits_from(table, RepoLimits, "t")
