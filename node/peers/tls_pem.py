"""The certificate files of ``--tls-cert`` and ``--tls-ca`` read for their dates
(``node.peers.tls_expiry`` watches them): block by block, line by line, as OpenSSL reads
them (``pem_blocks``), up to ``TLS_FILE_BYTES_MAX``; a ``BEGIN TRUSTED CERTIFICATE`` of
``openssl x509 -trustout`` by the certificate it begins with, where OpenSSL reads one
(``Labels``: any block of ``--tls-ca``, only the first of ``--tls-cert``). Each block is
parsed alone, so that one whose dates cannot be read (malformed, or a form OpenSSL takes
and the ``cryptography`` library refuses) keeps its place and moves no other.
"""

from __future__ import annotations

import base64
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from node.text import log_time, utc_text

# Old roots of system bundles have serials that are not positive: cryptography parses
# them with this warning, once per certificate, which would be a ``py.warnings`` line at
# every start. OpenSSL takes them, and the dates are all that is read of them here.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive",
                        category=CryptographyDeprecationWarning)


@dataclass(frozen=True, slots=True)
class Served:
    """A certificate watched: its serial number, and from when and until when it is
    valid."""

    serial: int
    begins: datetime
    expires: datetime

    def fields(self) -> dict[str, str]:
        """For a log line: the serial in hex and the expiry as the log writes a time
        (``log_time``: programs read a log's fields, not ``utc_text``'s words for
        people)."""
        return {"certificate_serial": format(self.serial, "x"),
                "certificate_expires": log_time(self.expires)}

    def invalid(self, now: datetime) -> str | None:
        """Why peers would refuse it at ``now`` (expired, or not valid yet), else None; in
        words a person reads (``utc_text``), where ``fields`` keep ISO 8601.

        >>> from datetime import UTC, timedelta
        >>> day = datetime(2030, 1, 2, tzinfo=UTC)
        >>> Served(1, day, day + timedelta(days=90)).invalid(day + timedelta(days=91))
        'the certificate expired at 2030-04-02 00:00:00Z'
        >>> Served(1, day, day + timedelta(days=90)).invalid(day) is None
        True
        """
        if now > self.expires:
            return f"the certificate expired at {utc_text(self.expires)}"
        if now < self.begins:
            return f"the certificate is not valid before {utc_text(self.begins)}"
        return None


#: The PEM labels OpenSSL reads a certificate from (``PEM_read_bio_X509_AUX``): the
#: ``TRUSTED CERTIFICATE`` of ``openssl x509 -trustout`` too, a certificate followed by
#: trust settings, whose dates are read from the certificate.
CERTIFICATE_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE")
#: The PEM labels of ``PEM_read_bio_X509``, which skips a ``TRUSTED CERTIFICATE``.
PLAIN_LABELS = (b"CERTIFICATE", b"X509 CERTIFICATE")


@dataclass(frozen=True, slots=True)
class Labels:
    """The PEM labels OpenSSL reads the certificate blocks of one kind of file with: the
    first block, and those after it."""

    first: tuple[bytes, ...]
    rest: tuple[bytes, ...]


#: ``--tls-cert`` (``SSL_CTX_use_certificate_chain_file``): the certificate served with
#: ``PEM_read_bio_X509_AUX``, its chain with ``PEM_read_bio_X509``, so a trusted form
#: after the first block is skipped: never sent to peers.
CHAIN_FILE = Labels(CERTIFICATE_LABELS, PLAIN_LABELS)
#: ``--tls-ca`` (``load_verify_locations``, ``PEM_X509_INFO_read_bio``): every block,
#: trusted forms too.
CA_FILE = Labels(CERTIFICATE_LABELS, CERTIFICATE_LABELS)
_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
#: What OpenSSL strips from the end of each line of a PEM file (CR of a CRLF among it).
_TRAILING = bytes(range(0x21))

#: Bytes read of a certificate or CA file: a system bundle is some 200 KiB, a fullchain
#: a few KiB. A certificate file over it is said of, and its dates not read (OpenSSL
#: loads it or not, as it would anyway); a CA file over it cannot be used
#: (``node.peers.tls_renewal.read_ca``: its blocks are what links are ended by).
TLS_FILE_BYTES_MAX = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Block:
    """One certificate block of a file: its position among them, its SHA-256 (which
    block a line of unknown dates was said of, which CA a link was verified by: of the
    DER its body decodes to, so the same certificate wrapped at another width or with
    other line ends is the same block; of its text if the body does not decode), and its
    dates and certificate (None if they cannot be read)."""

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
    #: Over ``TLS_FILE_BYTES_MAX``: not read for its dates (a ``--tls-cert``; a
    #: ``--tls-ca`` so is refused before it is read: ``node.peers.tls_renewal.read_ca``).
    too_large: bool = False
    #: Certificate blocks OpenSSL skips in this kind of file (``Labels``), with their
    #: places among all: no part of what it loads.
    skipped: tuple[Block, ...] = ()

    @property
    def block_digests(self) -> frozenset[bytes]:
        """The digests of its blocks, whatever their order and the lines between them."""
        return frozenset(block.digest for block in self.blocks)


def read_file(path: Path | None, labels: Labels) -> Read | None:
    """The certificate blocks ``path`` holds (None without a path, or if it cannot be
    read: OpenSSL will say why), each parsed alone: one whose dates cannot be read
    (malformed) leaves the others, and their places, as they are. Those OpenSSL reads
    with ``labels`` are its blocks, the others ``Read.skipped``. A file over
    ``TLS_FILE_BYTES_MAX`` is not read for its dates (``Read.too_large``): the
    ``--tls-cert``, which OpenSSL loads or refuses as it would.

    >>> read_file(Path("/nonexistent/tls.pem"), CA_FILE) is None
    True
    """
    if path is None:
        return None
    try:
        content = read_capped(path)
    except OSError:
        return None
    return read_content(content, labels)


def read_capped(path: Path) -> bytes:
    """What ``path`` holds, up to one byte over ``TLS_FILE_BYTES_MAX`` (so a file over
    it is told, and a huge one never held whole); ``OSError`` if it cannot be read."""
    with path.open("rb") as file:
        return file.read(TLS_FILE_BYTES_MAX + 1)


def read_content(content: bytes, labels: Labels) -> Read:
    """The certificate blocks of ``content``, a file's, as ``read_file`` reads them."""
    digest = hashlib.sha256(content).digest()
    if len(content) > TLS_FILE_BYTES_MAX:
        return Read((), digest, too_large=True)
    read: list[Block] = []
    skipped: list[Block] = []
    found = (block for block in pem_blocks(content) if block[0] in CERTIFICATE_LABELS)
    for index, (label, body, text) in enumerate(found):
        taken = label in (labels.rest if read else labels.first)
        (read if taken else skipped).append(_block(index, label, body, text))
    return Read(tuple(read), digest, skipped=tuple(skipped))


def pem_blocks(content: bytes) -> Iterator[tuple[bytes, bytes, bytes]]:
    """The PEM blocks of ``content`` as OpenSSL reads them, line by line: a block begins
    at a line that is ``-----BEGIN label-----`` from its start (not indented, not after
    other text), and ends at the next line beginning ``-----END ``; each is (label, body,
    the block's text). One ended under another label, or not ended, is not a block. Lines
    end with LF (CRLF too), trailing white space left out; CR alone ends none, as for
    OpenSSL. Linear in the size.

    >>> [label for label, _, _ in pem_blocks(
    ...     b"-----BEGIN A-----\\nQQ==\\n-----END A-----\\n  -----BEGIN B-----\\n"
    ...     b"-----END B-----\\nx-----BEGIN C-----\\n-----END C-----\\n")]
    [b'A']
    """
    label: bytes | None = None
    lines: list[bytes] = []
    for line in content.split(b"\n"):
        line = line.rstrip(_TRAILING)  # as OpenSSL: a BEGIN line with a space after
        if label is None:
            begun = _BEGIN.fullmatch(line)
            if begun is not None:
                label, lines = begun.group(1), [line]
            continue
        lines.append(line)
        if line.startswith(b"-----END "):
            if line == b"-----END " + label + b"-----":
                yield label, b"".join(lines[1:-1]), b"\n".join(lines)
            label = None


def _block(index: int, label: bytes, body: bytes, text: bytes) -> Block:
    try:
        der = base64.b64decode(body)
    except ValueError:  # binascii.Error: not base64
        return Block(index, hashlib.sha256(text).digest(), None)
    # Of the whole DER, a trusted form's trust settings with it: a trust changed is
    # another block.
    digest = hashlib.sha256(der).digest()
    try:
        if label == b"TRUSTED CERTIFICATE":
            der = der[:_first_element_end(der)]
        cert = x509.load_der_x509_certificate(der)
        dates = Served(cert.serial_number, cert.not_valid_before_utc,
                       cert.not_valid_after_utc)
    # Not DER, not a certificate (ValueError). A version
    # field other than v1 to v3 is InvalidVersion, which is not: OpenSSL loads it.
    except (ValueError, x509.InvalidVersion):
        return Block(index, digest, None)
    return Block(index, digest, dates, cert)


def _first_element_end(der: bytes) -> int:
    """Where the DER element ``der`` begins with ends, by the length in its header: a
    trusted form (``openssl x509 -trustout``) is a certificate, then OpenSSL's trust
    settings.

    >>> _first_element_end(bytes([0x30, 0x82, 0x01, 0x00]) + bytes(300))
    260
    >>> _first_element_end(bytes([0x30]))  # too short for a header: the whole
    1
    """
    # Only what would raise here is guarded. Whatever else a hostile header holds (not a
    # SEQUENCE, an indefinite length, length bytes not minimal or many, a length past
    # the end or inside the certificate), the cut it gives is refused by cryptography's
    # strict DER parser: a block of unknown dates, as for any other malformed block.
    if len(der) < 2:
        return len(der)
    if der[1] < 0x80:
        return 2 + der[1]
    count = der[1] & 0x7F
    return 2 + count + int.from_bytes(der[2:2 + count], "big")
