"""The bounds of what a node says of the client certificates it refuses
(``node.http.tls_refusals``): anyone reaching it can show one from many addresses."""

from __future__ import annotations

import ssl

import pytest
from structlog.testing import capture_logs

from node.http import tls_refusals
from node.http.tls_refusals import (
    REFUSED_EVENT,
    TLS_REFUSED_ADDRESSES_MAX,
    TLS_REFUSED_LINES_MAX,
    TLS_REFUSED_LINES_WINDOW_S,
    TlsRefusals,
)
from tests.node.http.support import CannotWarn


def refusal(reason: str) -> ssl.SSLCertVerificationError:
    """A client certificate that did not verify, as OpenSSL says it."""
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {reason}")
    error.reason, error.verify_message = "CERTIFICATE_VERIFY_FAILED", reason
    return error


def warned(logs: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(line["event"], line.get("address"), line.get("count"))
            for line in logs if line["log_level"] == "warning"]


def test_lines_of_new_addresses_are_bounded_per_window_and_the_rest_counted() -> None:
    refusals = TlsRefusals()
    expired = refusal("certificate has expired")
    with capture_logs() as logs:
        for n in range(TLS_REFUSED_LINES_MAX + 2):
            refusals.refused(f"10.0.0.{n}", f"10.0.0.{n}", expired, now=0.0)
        refusals.refused("10.0.1.0", "10.0.1.0", expired, now=TLS_REFUSED_LINES_WINDOW_S)
    assert warned(logs) == [
        *((REFUSED_EVENT, f"10.0.0.{n}", None) for n in range(TLS_REFUSED_LINES_MAX)),
        ("lines not logged", None, 2), (REFUSED_EVENT, "10.0.1.0", None)]
    assert refusals.count == TLS_REFUSED_LINES_MAX + 3


def test_an_address_held_back_is_warned_of_at_its_next_refusal() -> None:
    refusals = TlsRefusals()
    expired = refusal("certificate has expired")
    for n in range(TLS_REFUSED_LINES_MAX):
        refusals.refused(f"10.0.0.{n}", f"10.0.0.{n}", expired, now=0.0)
    with capture_logs() as logs:
        refusals.refused("10.0.1.0", "10.0.1.0", expired, now=1.0)  # held back
        refusals.refused("10.0.1.0", "10.0.1.0", expired, now=TLS_REFUSED_LINES_WINDOW_S)
    assert warned(logs) == [("lines not logged", None, 1), (REFUSED_EVENT, "10.0.1.0", None)]


def test_each_address_is_warned_of_once_per_reason_and_the_oldest_forgotten() -> None:
    refusals = TlsRefusals()
    unknown, expired = refusal("unable to get local issuer certificate"), \
        refusal("certificate has expired")
    now = 0.0
    with capture_logs() as logs:
        refusals.refused("10.0.0.1", "10.0.0.1", unknown, now)
        refusals.refused("10.0.0.1", "10.0.0.1", unknown, now)  # the same: debug
        refusals.refused("10.0.0.1", "10.0.0.1", expired, now)  # a change: warned
        for n in range(TLS_REFUSED_ADDRESSES_MAX):  # each in a window of its own
            now += TLS_REFUSED_LINES_WINDOW_S
            refusals.refused(f"addr{n}", f"addr{n}", expired, now)
        refusals.refused("10.0.0.1", "10.0.0.1", expired, now + TLS_REFUSED_LINES_WINDOW_S)
    first = [(line["log_level"], line["reason"]) for line in logs
             if line.get("address") == "10.0.0.1"]
    assert first == [("warning", "unable to get local issuer certificate"),
                     ("debug", "unable to get local issuer certificate"),
                     ("warning", "certificate has expired"),
                     ("warning", "certificate has expired")]  # forgotten: said again


def test_an_address_refused_again_is_kept_past_the_bound_and_the_oldest_forgotten() -> None:
    """Refused again just before the bound overflows, an address is the one refused
    most lately: it is still remembered (its next refusal at debug), and the address
    refused least lately is forgotten (warned of again)."""
    refusals = TlsRefusals()
    expired = refusal("certificate has expired")
    now = 0.0

    def refuse(address: str) -> None:
        nonlocal now
        now += TLS_REFUSED_LINES_WINDOW_S  # each in a window of its own
        refusals.refused(address, address, expired, now)

    refuse("10.0.0.1")
    refuse("10.0.0.2")
    for n in range(TLS_REFUSED_ADDRESSES_MAX - 2):  # the bound reached
        refuse(f"addr{n}")
    refuse("10.0.0.1")  # now refused most lately
    refuse("overflow")  # one past the bound: the one refused least lately goes
    with capture_logs() as logs:
        refuse("10.0.0.1")
        refuse("10.0.0.2")
    assert [(line["log_level"], line["address"]) for line in logs] == [
        ("debug", "10.0.0.1"), ("warning", "10.0.0.2")]


def test_a_refusal_that_cannot_be_said_is_logged_again_once_a_line_was_written_between(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure to say refusals is logged once while their lines fail; once one is
    written, a failure that comes back is logged again."""
    failing = CannotWarn(tls_refusals.log)
    monkeypatch.setattr(tls_refusals, "log", failing)
    refusals = TlsRefusals()
    expired = refusal("certificate has expired")
    with capture_logs() as logs:
        for n, fails in enumerate([True, True, False, True, True]):
            failing.failing = fails
            refusals.refused(f"10.0.0.{n}", f"10.0.0.{n}", expired, now=0.0)
    assert [(line["event"], line.get("address")) for line in logs] == [
        ("peer tls refusal not said", None), (REFUSED_EVENT, "10.0.0.2"),
        ("peer tls refusal not said", None)]
    assert refusals.count == 5
