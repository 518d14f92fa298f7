"""The dates of the node's TLS certificates, watched: the one it serves (the first of
``--tls-cert``), the intermediates on the chain peers build from it, and the CAs of
``--tls-ca``. That chain (``Watched.chain``) follows, from the served certificate, the
blocks of ``--tls-cert`` that issued each (by name and signature) until a CA of
``--tls-ca`` issued one, or one is self-signed: a block off it (a cross-signed copy of the
root at the end of a fullchain, expired) is not used by peers, and not judged. Peers
refuse the node once its certificate or an intermediate on the chain has expired, or the
CA that issued the chain (peers that share the CA verify the node with it), and the node
refuses its peers once their CA has: each has a line of its own (``certificate``:
"served", "intermediate", "ca" for the CA that issued the chain, "other_ca" for the other
blocks of ``--tls-ca``; "tls_ca" for each of them when the node has no certificate of its
own read to compare them with, ``NOT_COMPARED``). Of several copies of one issuer (same
name and key) in either file, the one peers take: the first valid now, else the one
lasting longest (of several valid now in ``--tls-ca``, OpenSSL's store may put another
first: ``peers_choice``).

From ``TLS_EXPIRY_WARN_DAYS`` before a certificate expires a warning names its file and
date, once per certificate, at start or at the first look that finds it so; once expired
it is said again, as an error, with how long ago in words. A certificate not valid yet
(its notBefore ahead: a clock or a CA gone wrong) is warned of too: peers refuse it until
then. The other CAs of ``--tls-ca`` (old roots of a bundle, a CA rotated out: not warned
of again for dates already said of as the ``ca``) are only warned of, even expired,
``TLS_CA_LINES_MAX`` lines a look, the rest counted in one line; no CA of the file having
issued the chain is said once. Each file is read as OpenSSL reads it
(``node.peers.tls_pem``): a ``--tls-cert`` over ``TLS_FILE_BYTES_MAX`` is said of once, its dates
not read; a block whose dates cannot be read (malformed) is said once
per content, with its place, and moves no other. A block of ``--tls-cert`` OpenSSL
skips (a ``BEGIN TRUSTED CERTIFICATE`` after the first: peers never get it) is warned of
once per content, with its place, and an issuer not found that is that block is said in
its name, not the CA file's. A certificate no longer in use is
forgotten: put back later (a renewal rolled back), it is said again.

The gauge ``clawsync_tls_certificate_expiry_timestamp_seconds`` (label ``certificate``;
``TlsCollector``), for an alert that warns sooner: the served certificate's expiry, the
soonest intermediate's on the chain, and the CA's that issued it (the chain verifies
until then). No other CA is in it: an old root left in a bundle would keep the alert
firing.

>>> ago(timedelta(minutes=3, seconds=20))
'3 minutes'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.peers.tls_pem import TLS_FILE_BYTES_MAX, Block, Read, Served
from node.text import log_time

log = structlog.get_logger(__name__)

#: Days before a certificate (served, intermediate or CA) expires from which the node
#: warns of it. Let's Encrypt's certificates last 90 days and certbot renews them 30 days
#: before: a warning means a renewal failed some two weeks running, with two weeks left to
#: mend it. An organisation's yearly certificates warn as late; the gauge lets an alert
#: warn sooner.
TLS_EXPIRY_WARN_DAYS = 14

#: Lines said in one look of the blocks of ``--tls-ca`` other than the CA that issued the
#: node's own chain (old roots, an organisation's bundle, a CA rotated out, blocks whose
#: dates cannot be read): those beyond are counted in one line. A bundle of a hundred
#: roots would otherwise say a hundred lines at every start.
TLS_CA_LINES_MAX = 5

#: The kinds of the blocks of ``--tls-ca`` not known to have issued the node's chain:
#: "other_ca", a CA other than the one that did; "tls_ca", any of them, when the node has
#: no certificate of its own read (no ``--tls-cert``, one over ``TLS_FILE_BYTES_MAX``, or
#: one whose dates cannot be read) to tell which CA issued it. Only warned of, a few lines
#: a look.
NOT_THE_CA = ("other_ca", "tls_ca")
#: Why a "tls_ca" is not said to be the CA that issued the chain, nor another one.
NOT_COMPARED = "not compared: the node has no certificate of its own read (--tls-cert)"

#: Why a block of ``--tls-cert`` is skipped (``Read.skipped``), and what to do.
_SKIPPED_REASON = "OpenSSL reads a BEGIN TRUSTED CERTIFICATE only as the first block " \
    "of --tls-cert"
_SKIPPED_EFFECT = "peers are not sent it: write it as BEGIN CERTIFICATE"


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

    def chain(self, now: datetime) -> Chain:
        """The chain peers build at ``now`` from the served certificate: the blocks of
        ``--tls-cert`` on it after the first (each issued the one before, by name and
        signature), and the CA of ``--tls-ca`` that issued its top. Of several copies of
        one issuer (same name and key), the one peers take (``peers_choice``). Other
        blocks of the file (a cross-signed copy of the root, kept at the end of a
        fullchain and expired) are not on it: peers stop at the CA they trust. A chain
        that reaches no CA of ``--tls-ca`` is its first intermediate alone: which CA
        peers stop at is their trust store's. A served certificate whose dates cannot be
        read starts the chain at the next block read, taken as its issuer. Each step
        checks signatures: built once per look, or per scrape."""
        if self.cert is None or not self.cert.blocks:
            return Chain(self)
        blocks = self.cert.blocks
        on: list[Block] = []
        current = blocks[0].parsed
        if current is None:
            first = next((block for block in blocks[1:] if block.parsed is not None), None)
            if first is None:
                return Chain(self)
            on.append(first)
            current = first.parsed
        assert current is not None
        while True:
            ca = peers_choice(self._ca_issuers(current), now)
            if ca is not None:
                return Chain(self, tuple(on), ca)
            if issued_by(current, current):  # a root the file holds, no CA of --tls-ca
                return Chain(self, tuple(on[:1]))
            # Each block at most once: the chain ends, whatever the file holds.
            chosen = peers_choice(
                [block for block in blocks[1:] if block not in on
                 and block.parsed is not None and issued_by(block.parsed, current)], now)
            if chosen is None:
                # Reaching no CA of --tls-ca, peers build it up to one of their own
                # trust, which may be any block above the first intermediate (a
                # fullchain's expired cross-sign is one they stop before): only that
                # first intermediate, which they all need, is taken as on it.
                return Chain(self, tuple(on[:1]))
            on.append(chosen)
            current = chosen.parsed
            assert current is not None

    def _ca_issuers(self, cert: x509.Certificate) -> list[Block]:
        """The CAs of ``--tls-ca`` that issued ``cert``, by name and signature, in the
        file's order."""
        if self.ca is None:
            return []
        return [block for block in self.ca.blocks
                if block.parsed is not None and issued_by(block.parsed, cert)]


@dataclass(frozen=True, slots=True)
class Chain:
    """The chain peers build at one time from ``watched``'s served certificate
    (``Watched.chain``): the blocks of ``--tls-cert`` on it after the first, and the CA
    of ``--tls-ca`` that issued its top (None if none did)."""

    watched: Watched
    on: tuple[Block, ...] = ()
    ca: Block | None = None

    @property
    def top(self) -> x509.Certificate | None:
        """The top of the chain, if read."""
        if self.on:
            return self.on[-1].parsed
        cert = self.watched.cert
        return cert.blocks[0].parsed if cert and cert.blocks else None

    def each(self) -> Iterator[tuple[str, Path, Block]]:
        """Each certificate block watched, with its kind ("served"; "intermediate", on
        the chain, or unread; "unused", a block of ``--tls-cert`` off it; "skipped", one
        of ``--tls-cert`` OpenSSL skips, never sent to peers; "ca", the CA of
        ``--tls-ca`` that issued the chain; "other_ca", any other block of ``--tls-ca``;
        "tls_ca", each block of ``--tls-ca`` when there is no chain read to compare
        them with) and its file's path. The one place a certificate's kind is named."""
        watched = self.watched
        if watched.cert_path is not None and watched.cert is not None:
            for block in watched.cert.blocks:
                # One whose dates cannot be read cannot be placed: said of as unknown.
                kind = "intermediate" if block in self.on or block.parsed is None \
                    else "unused"
                yield ("served" if block.index == 0 else kind), watched.cert_path, block
            for block in watched.cert.skipped:  # a trusted form OpenSSL does not send
                yield "skipped", watched.cert_path, block
        if watched.ca_path is not None and watched.ca is not None:
            # Without a certificate of its own read, no CA is known to be "other".
            other = "other_ca" if self.top is not None else "tls_ca"
            for block in watched.ca.blocks:
                yield ("ca" if block == self.ca else other), watched.ca_path, block

    def soonest(self) -> dict[str, Served]:
        """The expiry samples: the served certificate, the soonest intermediate, and the
        CA that issued the chain (it verifies until then); no other CA."""
        found: dict[str, list[Served]] = {}
        for kind, _, block in self.each():
            if block.cert is not None and kind in ("served", "intermediate", "ca"):
                found.setdefault(kind, []).append(block.cert)
        return {kind: min(certs, key=lambda cert: cert.expires)
                for kind, certs in found.items()}


def peers_choice(copies: list[Block], now: datetime) -> Block | None:
    """Of ``copies`` of one issuer (same name and key: a CA issued again with new dates,
    or cross-signed), in their file's order, the one peers put on the chain at ``now``,
    as OpenSSL chooses (``x509_vfy.c``, ``get0_best_issuer_sk``,
    ``X509_STORE_CTX_get1_issuer``): the first valid at ``now``, else the first of those
    lasting longest. A copy not valid yet is not taken while another is valid, however
    long it lasts. (Of several valid now in ``--tls-ca``, OpenSSL's store may keep them
    in another order: all of them hold now.) None without copies.

    >>> day = datetime(2030, 1, 2, tzinfo=UTC)
    >>> later = Served(1, day + timedelta(days=5), day + timedelta(days=400))
    >>> copies = [Block(0, b"", later), Block(1, b"", Served(2, day, day + timedelta(30)))]
    >>> peers_choice(copies, day + timedelta(days=1)).index
    1
    >>> peers_choice(copies, day + timedelta(days=6)).index
    0
    """
    valid = (block for block in copies
             if block.cert is not None and block.cert.invalid(now) is None)
    return next(valid, None) or max(copies, key=_expiry, default=None)


def _expiry(block: Block) -> float:
    """When ``block`` expires, in Unix seconds (a block of unknown dates: never first)."""
    return block.cert.expires.timestamp() if block.cert is not None else float("-inf")


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
        # A log field, which programs read: ISO 8601 as the log writes times, not
        # utc_text.
        return ("early", "tls certificate not valid yet", log.warning, {
            "valid_from": log_time(cert.begins), "effect": "peers refuse it until then"})
    if left <= timedelta(0):
        return ("expired", "tls certificate expired",
                log.warning if kind in NOT_THE_CA else log.error, {"expired_for": ago(-left)})
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
        left_out: Counter[tuple[Path, str]] = Counter()
        current |= self._say_too_large(watched)
        chain = watched.chain(now)
        for kind, path, block in chain.each():
            if kind == "unused":
                current |= self._say_unused(path, block)
                continue
            if kind == "skipped":
                assert watched.cert is not None
                current |= self._say_skipped(path, block, watched.cert.digest)
                continue
            said = self._to_say(kind, block, now)
            if said is None:
                continue
            key, event, say, fields = said
            current.add(key)
            if key in self._said:
                continue
            self._said.add(key)
            if kind in NOT_THE_CA:
                if lines[path] >= TLS_CA_LINES_MAX:
                    left_out[path, kind] += 1
                    continue
                lines[path] += 1
            if kind == "tls_ca":
                fields = {**fields, "chain": NOT_COMPARED}
            say(event, certificate=kind, path=str(path), **fields)
        for (path, kind), count in left_out.items():
            log.warning("tls certificate lines left out", certificate=kind,
                        path=str(path), count=count, lines_max=TLS_CA_LINES_MAX,
                        **({"chain": NOT_COMPARED} if kind == "tls_ca" else {}))
        current |= self._say_no_issuer(chain)
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
                        "reason": "not read as an X.509 certificate"})
        said = verdict(kind, block.cert, now)
        if said is None:
            return None
        what, event, say, fields = said
        # The CAs of ``--tls-ca`` keyed as one kind: a CA rotated out, warned of as
        # "ca", is not warned of again as "other_ca" (or "tls_ca") for the same dates.
        key_kind = "ca" if kind in NOT_THE_CA else kind
        return (key_kind, block.cert, what), event, say, {**block.cert.fields(), **fields}

    def _say_unused(self, path: Path, block: Block) -> set[Said]:
        """Say once, at debug level, that a block of ``--tls-cert`` is not on the chain
        peers build (a cross-signed root kept at the end of a fullchain): its dates are
        not judged, peers do not use it."""
        said: Said = ("unused", block.digest, str(path))
        if said not in self._said:
            self._said.add(said)
            log.debug("tls certificate not on the chain", path=str(path), index=block.index,
                      **(block.cert.fields() if block.cert is not None else {}))
        return {said}

    def _say_skipped(self, path: Path, block: Block, content: bytes) -> set[Said]:
        """Warn once per content of ``--tls-cert`` of a block OpenSSL skips there (a
        ``BEGIN TRUSTED CERTIFICATE`` after the first): almost always an intermediate
        written with ``openssl x509 -trustout`` by mistake, which peers then never
        get."""
        said: Said = ("skipped", content, f"{path} {block.index}")
        if said not in self._said:
            self._said.add(said)
            log.warning("tls certificate block skipped", path=str(path), index=block.index,
                        reason=_SKIPPED_REASON, effect=_SKIPPED_EFFECT,
                        **(block.cert.fields() if block.cert is not None else {}))
        return {said}

    def _say_too_large(self, watched: Watched) -> set[Said]:
        """Say once per content that ``--tls-cert`` is over ``TLS_FILE_BYTES_MAX``, its
        dates not read (a ``--tls-ca`` so is never loaded: ``tls_renewal.read_ca``)."""
        read = watched.cert
        if read is None or not read.too_large:
            return set()
        said: Said = ("too large", read.digest, str(watched.cert_path))
        if said not in self._said:
            self._said.add(said)
            log.warning("tls certificate file too large", path=str(watched.cert_path),
                        bytes_max=TLS_FILE_BYTES_MAX, effect="its dates are not read")
        return {said}

    def _say_no_issuer(self, chain: Chain) -> set[Said]:
        """Say once that no CA of ``--tls-ca`` issued the chain served, if so: in the
        name of the block of ``--tls-cert`` OpenSSL skips if that one issued its top
        (the CA file is not the cause), else of the CA file."""
        top, watched = chain.top, chain.watched
        if top is None or watched.ca is None or chain.ca is not None:
            return set()
        issuer = top.issuer.rfc4514_string()
        skipped = next((block for block in watched.cert.skipped if block.parsed is not None
                        and issued_by(block.parsed, top)), None) if watched.cert else None
        # Keyed by the issuer's name: a renewal the same CA signs is not said of again.
        said: Said = ("no issuer", watched.ca.digest,
                      issuer if skipped is None else f"{issuer} skipped {skipped.index}")
        if said in self._said:
            return {said}
        self._said.add(said)
        if skipped is None:
            log.warning("tls certificate issuer not found", certificate="ca",
                        path=str(watched.ca_path), issuer=issuer,
                        effect="no expiry sample of the CA; peers that verify with this "
                        "file refuse the node")
        else:
            log.warning("tls certificate issuer not found", certificate="intermediate",
                        path=str(watched.cert_path), issuer=issuer, index=skipped.index,
                        reason=f"the issuer is block {skipped.index} of this file: "
                        f"{_SKIPPED_REASON}", effect=f"{_SKIPPED_EFFECT}; until then peers "
                        "that verify with --tls-ca refuse the node")
        return {said}


class TlsCollector(Collector):
    """The expiry of the certificates in use, read when scraped (``Chain.soonest``):
    none of a kind without (plain HTTP, no CA that issued the chain, dates that cannot be
    read)."""

    def __init__(self, watched: Callable[[], Watched]) -> None:
        self.watched = watched

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "clawsync_tls_certificate_expiry_timestamp_seconds", "When the node's TLS "
            "certificates in use expire: its notAfter, in seconds since the Unix epoch, "
            "of the one served (--tls-cert), the soonest of the intermediates on the "
            "chain peers build from it, and the CA of --tls-ca that issued that chain",
            labels=["certificate"])
        samples = self.watched().chain(datetime.now(UTC)).soonest()
        for kind, cert in sorted(samples.items()):
            family.add_metric([kind], cert.expires.timestamp())
        yield family
