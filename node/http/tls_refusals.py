"""What this node says of a client certificate it refused in the TLS handshake as it did
not verify (for example one no CA of ``--tls-ca`` signed, or one expired): the dialer
hears why in TLS's alert (``node.http.tls_accept``), and this node logs ``peer tls
refused`` with the address and OpenSSL's reason, once per change of that reason per
address (as a dialer says ``peer dial failed``: ``node.log_window.level_on_change``),
and counts each refusal (``clawsync_peer_tls_refused_total``). Anyone reaching the node
can make it refuse a certificate: the lines are bounded per window, the addresses
remembered too.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator

import structlog
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from node.log_window import LineWindow, level_on_change, may_log

log = structlog.get_logger(__name__)

#: The event of the line of a refused client certificate.
REFUSED_EVENT = "peer tls refused"
#: Addresses (``node.http.listener.address_key``) whose last refusal's reason is kept,
#: so that a refusal is said once per change of reason; beyond it, the one refused
#: least lately is forgotten (said again if it comes back).
TLS_REFUSED_ADDRESSES_MAX = 1024
#: ``peer tls refused`` lines logged per ``TLS_REFUSED_LINES_WINDOW_S``: each new
#: address (an IPv6 /64 each) has one. The rest are counted, the count logged as the
#: next window opens (``lines not logged``).
TLS_REFUSED_LINES_MAX = 10
#: The window of ``TLS_REFUSED_LINES_MAX``, in seconds.
TLS_REFUSED_LINES_WINDOW_S = 60.0


class TlsRefusals:
    """The client certificates a site refused in its handshakes: how many, and what
    was said last of each address."""

    def __init__(self) -> None:
        self.count = 0
        self._failed: set[str] = set()  # the kinds of failure to say one, said already
        self._said: dict[str, str] = {}  # by address, the one refused least lately first
        self._lines = LineWindow(TLS_REFUSED_LINES_MAX, TLS_REFUSED_LINES_WINDOW_S)

    def refused(self, address: str, host: str, error: ssl.SSLCertVerificationError,
                now: float) -> None:
        """The client at ``host`` (of ``address``, what per-address limits count by)
        showed a certificate that ``error`` says did not verify, at ``now``: count it,
        and say it unless it was said last of that address. Never raises: it runs in
        the connection's own task, where an error would be left unretrieved (asyncio's
        "Task exception was never retrieved"); a failure to say it (a log that cannot be
        written) is logged once per kind, as an error, until a refusal's line no longer
        fails."""
        self.count += 1
        try:
            self._say(address, host, error, now)
        except Exception as failure:
            kind = type(failure).__name__
            if kind not in self._failed:
                self._failed.add(kind)
                with contextlib.suppress(Exception):  # nor a line that cannot be written
                    log.error("peer tls refusal not said", error_type=kind,
                              error=str(failure))
        else:
            self._failed.clear()  # a kind that comes back is said again

    def _say(self, address: str, host: str, error: ssl.SSLCertVerificationError,
             now: float) -> None:
        # OpenSSL's words for why ("certificate has expired"); its reason code alone
        # (CERTIFICATE_VERIFY_FAILED) says only that it failed.
        reason = error.verify_message or error.reason or str(error)
        said = self._said.pop(address, None)
        self._said[address] = said or ""  # refused most lately: last in the order
        level = level_on_change(said, reason, logging.WARNING)
        if len(self._said) > TLS_REFUSED_ADDRESSES_MAX:
            del self._said[next(iter(self._said))]
        if level == logging.DEBUG:
            log.debug(REFUSED_EVENT, address=host, reason=reason)
        elif may_log(self._lines, now, REFUSED_EVENT, log.warning):
            log.warning(REFUSED_EVENT, address=host, reason=reason)
            self._said[address] = reason  # said: not again until it changes


class TlsRefusedCollector(Collector):
    """``TlsRefusals.count`` of a site, read when scraped."""

    def __init__(self, refusals: TlsRefusals) -> None:
        self.refusals = refusals

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "clawsync_peer_tls_refused", "Client certificates this node refused in the "
            "TLS handshake as they did not verify (for example: not signed by a CA of "
            "--tls-ca, self-signed, expired or not valid yet, of a key too weak, "
            "without clientAuth)",
            value=self.refusals.count)
