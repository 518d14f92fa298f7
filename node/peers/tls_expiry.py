"""The dates of the node's TLS certificates, watched: the one it serves (the first of
``--tls-cert``), the intermediates served with it (the rest of that file), and the CAs
it trusts (``--tls-ca``). Peers refuse the node once any of them has expired (its own
certificate, or the chain to the CA they trust), and the node refuses its peers once its
CA has: each is watched alike, with a line of its own (``certificate``: "served",
"intermediate" or "ca").

From ``TLS_EXPIRY_WARN_DAYS`` before a certificate expires a warning names its file and
date, once per certificate, at start or at the first look that finds it so; once expired
it is said again, as an error, with how long ago in words. A certificate not valid yet
(its notBefore ahead: a clock or a CA gone wrong) is warned of too: peers refuse it until
then. A file OpenSSL uses whose dates cannot be read (a ``BEGIN TRUSTED CERTIFICATE`` of
``openssl x509 -trustout``) is said once per content. A certificate no longer in use is
forgotten: put back later (a renewal rolled back), it is said again.

Each kind's soonest expiry is the gauge ``clawsync_tls_certificate_expiry_timestamp_seconds``
(label ``certificate``; ``TlsCollector``), for an alert that warns sooner.

>>> ago(timedelta(minutes=3, seconds=20))
'3 minutes'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from cryptography import x509
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

#: Days before a certificate (served, intermediate or CA) expires from which the node
#: warns of it. Let's Encrypt's certificates last 90 days and certbot renews them 30 days
#: before: a warning means a renewal failed some two weeks running, with two weeks left to
#: mend it. An organisation's yearly certificates warn as late; the gauge lets an alert
#: warn sooner.
TLS_EXPIRY_WARN_DAYS = 14


@dataclass(frozen=True, slots=True)
class Served:
    """A certificate watched: its serial number, and from when and until when it is
    valid."""

    serial: int
    begins: datetime
    expires: datetime

    def fields(self) -> dict[str, str]:
        """For a log line: the serial in hex and the expiry in ISO 8601, nothing else."""
        return {"certificate_serial": format(self.serial, "x"),
                "certificate_expires": self.expires.isoformat()}

    def invalid(self, now: datetime) -> str | None:
        """Why peers would refuse it at ``now`` (expired, or not valid yet), else None.

        >>> from datetime import UTC
        >>> day = datetime(2030, 1, 2, tzinfo=UTC)
        >>> Served(1, day, day + timedelta(days=90)).invalid(day + timedelta(days=91))
        'the certificate expired at 2030-04-02T00:00:00+00:00'
        >>> Served(1, day, day + timedelta(days=90)).invalid(day) is None
        True
        """
        if now > self.expires:
            return f"the certificate expired at {self.expires.isoformat()}"
        if now < self.begins:
            return f"the certificate is not valid before {self.begins.isoformat()}"
        return None


@dataclass(frozen=True, slots=True)
class Read:
    """The certificates of one file, in its order (empty if none could be read), and
    its content's SHA-256 (which file a line of unknown dates was said of)."""

    certificates: tuple[Served, ...]
    digest: bytes


@dataclass(frozen=True, slots=True)
class Watched:
    """What the dates are watched of: ``--tls-cert`` and ``--tls-ca`` as read (None
    without the option), with their paths."""

    cert_path: Path | None = None
    cert: Read | None = None
    ca_path: Path | None = None
    ca: Read | None = None

    @property
    def served(self) -> Served | None:
        """The certificate served: the first of ``--tls-cert``."""
        return self.cert.certificates[0] if self.cert and self.cert.certificates else None

    def kinds(self) -> Iterator[tuple[str, Path, Read]]:
        """Each file as a kind of certificate, its path and what was read of it."""
        if self.cert_path is not None and self.cert is not None:
            yield "served", self.cert_path, self.cert
        if self.ca_path is not None and self.ca is not None:
            yield "ca", self.ca_path, self.ca

    def soonest(self) -> dict[str, Served]:
        """Of each kind (served, intermediate, ca), the certificate that expires first."""
        found: dict[str, list[Served]] = {}
        for kind, _, read in self.kinds():
            for index, cert in enumerate(read.certificates):
                found.setdefault(kind if kind == "ca" or index == 0 else "intermediate",
                                 []).append(cert)
        return {kind: min(certs, key=lambda cert: cert.expires)
                for kind, certs in found.items()}


def read_file(path: Path | None) -> Read | None:
    """The certificates ``path`` holds (None without a path, or if it cannot be read:
    OpenSSL will say why; none if not as PEM ``BEGIN CERTIFICATE`` blocks).

    >>> read_file(Path("/nonexistent/tls.pem")) is None
    True
    """
    if path is None:
        return None
    try:
        content = path.read_bytes()
    except OSError:
        return None
    try:
        certs = x509.load_pem_x509_certificates(content)
    except ValueError:
        certs = []
    return Read(tuple(Served(cert.serial_number, cert.not_valid_before_utc,
                             cert.not_valid_after_utc) for cert in certs),
                hashlib.sha256(content).digest())


def ago(elapsed: timedelta) -> str:
    """How long ``elapsed`` is, in plain words, rounded down.

    >>> [ago(timedelta(seconds=s)) for s in (20, 60, 7_200, 90_000, 200_000)]
    ['under a minute', '1 minute', '2 hours', '25 hours', '2 days']
    """
    seconds = int(elapsed.total_seconds())
    for unit, unit_s, from_s in (("day", 86_400, 2 * 86_400), ("hour", 3_600, 7_200),
                                 ("minute", 60, 60)):
        if seconds >= from_s:
            count = seconds // unit_s
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "under a minute"


#: A thing said once: (kind, certificate) and what of it, or ("unknown", digest).
Said = tuple[str, Served | bytes, str]


class ExpiryWarnings:
    """What was said of the certificates watched, so that each is said once."""

    __slots__ = ("_said",)

    def __init__(self) -> None:
        self._said: set[Said] = set()

    def warn(self, watched: Watched, now: datetime) -> None:
        """Say what is to be said of ``watched`` at ``now`` and was not said yet;
        forget what was said of certificates no longer watched."""
        current: set[Said] = set()
        for kind, path, read in watched.kinds():
            if not read.certificates:
                current.add(self._say_unknown(kind, path, read.digest))
            for index, cert in enumerate(read.certificates):
                named = kind if kind == "ca" or index == 0 else "intermediate"
                current |= self._say_dates(named, path, cert, now)
        self._said &= current

    def _say_unknown(self, kind: str, path: Path, digest: bytes) -> Said:
        said: Said = ("unknown", digest, kind)
        if said not in self._said:
            self._said.add(said)
            # No gauge and no warning would come: said, or it would look like plain HTTP.
            log.warning("tls certificate expiry unknown", certificate=kind, path=str(path),
                        reason="not read as a PEM certificate (BEGIN CERTIFICATE)")
        return said

    def _say_dates(self, kind: str, path: Path, cert: Served, now: datetime) -> set[Said]:
        """Say what ``cert``'s dates call for at ``now`` once; what is said of it."""
        fields: dict[str, object] = {"certificate": kind, "path": str(path),
                                     **cert.fields()}
        left = cert.expires - now
        said: tuple[str, Callable[..., object], str, dict[str, object]] | None = None
        if now < cert.begins:
            said = ("early", log.warning, "tls certificate not valid yet", {
                "valid_from": cert.begins.isoformat(),
                "effect": "peers refuse it until then"})
        elif left <= timedelta(0):
            said = ("expired", log.error, "tls certificate expired",
                    {"expired_for": ago(-left)})
        elif left <= timedelta(days=TLS_EXPIRY_WARN_DAYS):
            said = ("soon", log.warning, "tls certificate expires soon", {
                "days_left": round(left / timedelta(days=1), 1),
                "warn_days": TLS_EXPIRY_WARN_DAYS})
        # What was said of it stays said while it is watched: an expiry warned of is
        # not again, and an expired one is not "expiring soon" after it.
        kept = {entry for entry in self._said if entry[0] == kind and entry[1] == cert}
        if said is None or (kind, cert, said[0]) in kept:
            return kept
        what, say, event, more = said
        self._said.add((kind, cert, what))
        say(event, **fields, **more)
        return kept | {(kind, cert, what)}


class TlsCollector(Collector):
    """The expiry of the certificates in use, read when scraped: of each kind its
    soonest, none without (plain HTTP, no CA, dates that cannot be read)."""

    def __init__(self, watched: Callable[[], Watched]) -> None:
        self.watched = watched

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "clawsync_tls_certificate_expiry_timestamp_seconds", "When the node's TLS "
            "certificates in use expire: its notAfter, in seconds since the Unix epoch, "
            "of the one served (--tls-cert), and the soonest of the intermediates served "
            "with it and of the CAs of --tls-ca", labels=["certificate"])
        for kind, cert in sorted(self.watched().soonest().items()):
            family.add_metric([kind], cert.expires.timestamp())
        yield family
