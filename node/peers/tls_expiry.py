"""The dates of the node's TLS certificates, watched: the one it serves (the first of
``--tls-cert``), the intermediates served with it (the rest of that file), and the CAs of
``--tls-ca``. Peers refuse the node once its certificate or an intermediate has expired,
or the CA that issued its chain (peers that share the CA verify the node with it), and
the node refuses its peers once their CA has: each has a line of its own
(``certificate``: "served", "intermediate", "ca" for a CA that issued the chain served,
by name and signature, "other_ca" for the others).

From ``TLS_EXPIRY_WARN_DAYS`` before a certificate expires a warning names its file and
date, once per certificate, at start or at the first look that finds it so; once expired
it is said again, as an error, with how long ago in words. A certificate not valid yet
(its notBefore ahead: a clock or a CA gone wrong) is warned of too: peers refuse it until
then. The other CAs of ``--tls-ca`` (old roots of a bundle, a CA rotated out) are only
warned of, even expired, ``TLS_CA_LINES_MAX`` lines a look, the rest counted in one line;
no CA of the file having issued the chain is said once. Each file is read block by block,
as OpenSSL does: a block whose dates cannot be read (a ``BEGIN TRUSTED CERTIFICATE`` of
``openssl x509 -trustout``, or one malformed) is said once per content, with its place,
and moves no other. A certificate no longer in use is forgotten: put back later (a
renewal rolled back), it is said again.

The gauge ``clawsync_tls_certificate_expiry_timestamp_seconds`` (label ``certificate``;
``TlsCollector``), for an alert that warns sooner: the served certificate's expiry, the
soonest intermediate's, and the latest of the CAs that issued the chain (the chain
verifies until then). No other CA is in it: an old root left in a bundle would keep the
alert firing.

>>> ago(timedelta(minutes=3, seconds=20))
'3 minutes'
"""

from __future__ import annotations

import base64
import hashlib
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.utils import CryptographyDeprecationWarning
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

# Old roots of system bundles have serials that are not positive: cryptography parses
# them with this warning, once per certificate, which would be a ``py.warnings`` line at
# every start. OpenSSL takes them, and the dates are all that is read of them here.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive",
                        category=CryptographyDeprecationWarning)

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


#: The PEM labels OpenSSL reads a certificate from (``PEM_read_bio_X509_AUX``): the
#: ``TRUSTED CERTIFICATE`` of ``openssl x509 -trustout`` too, whose dates are not read here.
CERTIFICATE_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)

#: Lines said in one look of the blocks of ``--tls-ca`` other than the CA that issued the
#: node's own chain (old roots, an organisation's bundle, a CA rotated out, blocks whose
#: dates cannot be read): those beyond are counted in one line. A bundle of a hundred
#: roots would otherwise say a hundred lines at every start.
TLS_CA_LINES_MAX = 5


@dataclass(frozen=True, slots=True)
class Block:
    """One certificate block of a file: its position among them, its SHA-256 (which
    block a line of unknown dates was said of), and its dates and certificate (None if
    they cannot be read)."""

    index: int
    digest: bytes
    cert: Served | None
    parsed: x509.Certificate | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Read:
    """The certificate blocks of one file, in its order (those whose dates cannot be
    read kept in place), and its content's SHA-256."""

    blocks: tuple[Block, ...]
    digest: bytes

    @property
    def certificates(self) -> tuple[Served, ...]:
        """The certificates whose dates were read, in the file's order."""
        return tuple(block.cert for block in self.blocks if block.cert is not None)


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
        """The certificate served: the first block of ``--tls-cert`` (None if its dates
        cannot be read, even when the others' can: OpenSSL serves the first)."""
        return self.cert.blocks[0].cert if self.cert and self.cert.blocks else None

    @property
    def top(self) -> x509.Certificate | None:
        """The top of the chain served (the last block of ``--tls-cert``), if read."""
        return self.cert.blocks[-1].parsed if self.cert and self.cert.blocks else None

    def issuers(self) -> tuple[Block, ...]:
        """The CAs of ``--tls-ca`` that issued the top of the chain served, by name and
        by signature: peers that share the CA verify the node with them."""
        top = self.top
        if top is None or self.ca is None:
            return ()
        return tuple(block for block in self.ca.blocks
                     if block.parsed is not None and issued_by(block.parsed, top))

    def each(self) -> Iterator[tuple[str, Path, Block]]:
        """Each certificate block watched, with its kind ("served", "intermediate", "ca":
        a CA that issued the chain served, "other_ca": any other block of ``--tls-ca``)
        and its file's path. The one place a certificate's kind is named."""
        if self.cert_path is not None and self.cert is not None:
            for block in self.cert.blocks:
                yield ("served" if block.index == 0 else "intermediate"), self.cert_path, block
        if self.ca_path is not None and self.ca is not None:
            issuers = self.issuers()
            for block in self.ca.blocks:
                yield ("ca" if block in issuers else "other_ca"), self.ca_path, block

    def soonest(self) -> dict[str, Served]:
        """The expiry samples: the served certificate, the soonest intermediate, and the
        latest of the CAs that issued the chain (it verifies until then); no other CA."""
        found: dict[str, list[Served]] = {}
        for kind, _, block in self.each():
            if block.cert is not None and kind != "other_ca":
                found.setdefault(kind, []).append(block.cert)
        return {kind: (max if kind == "ca" else min)(certs, key=lambda cert: cert.expires)
                for kind, certs in found.items()}


def read_file(path: Path | None) -> Read | None:
    """The certificate blocks ``path`` holds (None without a path, or if it cannot be
    read: OpenSSL will say why), each parsed alone: one whose dates cannot be read
    (trusted form, or malformed) leaves the others, and their places, as they are.

    >>> read_file(Path("/nonexistent/tls.pem")) is None
    True
    """
    if path is None:
        return None
    try:
        content = path.read_bytes()
    except OSError:
        return None
    blocks = [match for match in _PEM_BLOCK.finditer(content)
              if match.group(1) in CERTIFICATE_LABELS]
    return Read(tuple(_block(index, match) for index, match in enumerate(blocks)),
                hashlib.sha256(content).digest())


def _block(index: int, match: re.Match[bytes]) -> Block:
    digest = hashlib.sha256(match.group(0)).digest()
    if match.group(1) == b"TRUSTED CERTIFICATE":
        return Block(index, digest, None)
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(match.group(2)))
        dates = Served(cert.serial_number, cert.not_valid_before_utc,
                       cert.not_valid_after_utc)
    except ValueError:  # binascii.Error is one: not base64, not DER, not a certificate
        return Block(index, digest, None)
    return Block(index, digest, dates, cert)


def issued_by(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    """Whether ``issuer`` issued ``cert``: its subject is ``cert``'s issuer, and its key
    verifies ``cert``'s signature (a CA made again under the same name, with a new key,
    did not)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


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


#: A thing said once: (kind, certificate or block digest, what of it).
Said = tuple[str, object, str]
#: What a certificate's dates call for: what (the key of it said), event, level, fields.
Verdict = tuple[str, str, Callable[..., object], dict[str, object]]
#: What is to be said of a block: its key, event, level and fields.
Keyed = tuple[Said, str, Callable[..., object], dict[str, object]]


def verdict(kind: str, cert: Served, now: datetime) -> Verdict | None:
    """What ``cert``'s dates call for at ``now``, if anything. A CA of ``--tls-ca`` that
    did not issue the node's chain is only warned of, even expired: nothing the node
    serves or dials with depends on it."""
    left = cert.expires - now
    if now < cert.begins:
        return ("early", "tls certificate not valid yet", log.warning, {
            "valid_from": cert.begins.isoformat(), "effect": "peers refuse it until then"})
    if left <= timedelta(0):
        return ("expired", "tls certificate expired",
                log.warning if kind == "other_ca" else log.error, {"expired_for": ago(-left)})
    if left <= timedelta(days=TLS_EXPIRY_WARN_DAYS):
        return ("soon", "tls certificate expires soon", log.warning, {
            "days_left": round(left / timedelta(days=1), 1),
            "warn_days": TLS_EXPIRY_WARN_DAYS})
    return None


class ExpiryWarnings:
    """What was said of the certificates watched, so that each is said once."""

    __slots__ = ("_said",)

    def __init__(self) -> None:
        self._said: set[Said] = set()

    def warn(self, watched: Watched, now: datetime) -> None:
        """Say what is to be said of ``watched`` at ``now`` and was not said yet (of
        the CAs that did not issue the chain, ``TLS_CA_LINES_MAX`` lines a look, the rest
        counted); forget what was said of certificates no longer watched."""
        current: set[Said] = set()
        lines: Counter[Path] = Counter()  # of other CAs, said in this look
        left_out: Counter[Path] = Counter()
        for kind, path, block in watched.each():
            said = self._to_say(kind, block, now)
            if said is None:
                continue
            key, event, say, fields = said
            current.add(key)
            if key in self._said:
                continue
            self._said.add(key)
            if kind == "other_ca":
                if lines[path] >= TLS_CA_LINES_MAX:
                    left_out[path] += 1
                    continue
                lines[path] += 1
            say(event, certificate=kind, path=str(path), **fields)
        for path, count in left_out.items():
            log.warning("tls certificate lines left out", certificate="other_ca",
                        path=str(path), count=count, lines_max=TLS_CA_LINES_MAX)
        current |= self._say_no_issuer(watched)
        self._said &= current

    @staticmethod
    def _to_say(kind: str, block: Block, now: datetime) -> Keyed | None:
        """What is to be said of ``block`` at ``now``, with its key: a certificate's
        kind, dates and verdict (each said once while it is watched), or a block whose
        dates cannot be read by its content and place."""
        if block.cert is None:
            # No gauge and no warning would come: said, or it would look like plain HTTP.
            return (("unknown", block.digest, f"{kind} {block.index}"),
                    "tls certificate expiry unknown", log.warning, {
                        "index": block.index,
                        "reason": "not read as a PEM certificate (BEGIN CERTIFICATE)"})
        said = verdict(kind, block.cert, now)
        if said is None:
            return None
        what, event, say, fields = said
        return (kind, block.cert, what), event, say, {**block.cert.fields(), **fields}

    def _say_no_issuer(self, watched: Watched) -> set[Said]:
        """Say once that no CA of ``--tls-ca`` issued the chain served, if so."""
        top = watched.top
        if top is None or watched.ca is None or watched.issuers():
            return set()
        # Keyed by the issuer's name: a renewal the same CA signs is not said of again.
        said: Said = ("no issuer", watched.ca.digest, top.issuer.rfc4514_string())
        if said not in self._said:
            self._said.add(said)
            log.warning("tls certificate issuer not found", certificate="ca",
                        path=str(watched.ca_path), issuer=top.issuer.rfc4514_string(),
                        effect="no expiry sample of the CA; peers that verify with this "
                        "file refuse the node")
        return {said}


class TlsCollector(Collector):
    """The expiry of the certificates in use, read when scraped (``Watched.soonest``):
    none of a kind without (plain HTTP, no CA that issued the chain, dates that cannot be
    read)."""

    def __init__(self, watched: Callable[[], Watched]) -> None:
        self.watched = watched

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "clawsync_tls_certificate_expiry_timestamp_seconds", "When the node's TLS "
            "certificates in use expire: its notAfter, in seconds since the Unix epoch, "
            "of the one served (--tls-cert), the soonest of the intermediates served with "
            "it, and the CA of --tls-ca that issued them", labels=["certificate"])
        for kind, cert in sorted(self.watched().soonest().items()):
            family.add_metric([kind], cert.expires.timestamp())
        yield family
