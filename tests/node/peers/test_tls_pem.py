"""The certificate files read for their dates (``node.peers.tls_pem.read_file``): the
blocks OpenSSL reads, no others, whatever the line ends and the text around them; a
block never ended read to its end once."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.peers.tls_pem import read_file
from tests.support.certs import make_ca

#: A file's text around two certificates, and how many of them OpenSSL reads (``openssl
#: crl2pkcs7 -nocrl -certfile`` then ``openssl pkcs7 -print_certs``).
CASES = {
    "plain": (lambda a, b: a + b, 2),
    "CRLF line ends": (lambda a, b: (a + b).replace(b"\n", b"\r\n"), 2),
    "no newline at the end": (lambda a, b: a + b.rstrip(b"\n"), 2),
    "text before and between": (lambda a, b: b"Certificate:\n  text\n" + a + b"junk\n" + b, 2),
    "X509 CERTIFICATE": (lambda a, b: a + b.replace(b" CERTIFICATE-", b" X509 CERTIFICATE-"), 2),
    "second indented": (lambda a, b: a + b"".join(b"  " + line
                                                  for line in b.splitlines(keepends=True)), 1),
    "second after text on its line": (lambda a, b: a + b"xx" + b, 1),
    "CR alone": (lambda a, b: (a + b).replace(b"\n", b"\r"), 0),
    "white space after BEGIN and END": (
        lambda a, b: a.replace(b"CERTIFICATE-----\n", b"CERTIFICATE-----\t \n") + b, 2),
}


@pytest.mark.parametrize("case", CASES)
def test_the_blocks_read_are_those_openssl_reads(tmp_path: Path, case: str) -> None:
    a, b = (make_ca(tmp_path, name)[0].read_bytes() for name in ("a", "b"))
    text, count = CASES[case]
    path = tmp_path / "file.pem"
    path.write_bytes(text(a, b))
    read = read_file(path)
    assert read is not None
    assert len(read.certificates) == count, read


def test_a_block_never_ended_is_no_block(tmp_path: Path) -> None:
    """BEGIN lines with no END, many: nothing read (a pattern that looks for an END
    from each BEGIN would scan the rest of the file from each)."""
    path = tmp_path / "unended.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n" * 20_000)
    read = read_file(path)
    assert read is not None and read.blocks == () and not read.too_large
