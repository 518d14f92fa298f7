"""The certificate files read for their dates (``node.peers.tls_pem.read_file``): the
blocks OpenSSL reads, no others, whatever the line ends and the text around them, and a
trusted form only where OpenSSL reads one; a block never ended read to its end once."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.peers.tls_pem import CA_FILE, CHAIN_FILE, read_file
from tests.support.certs import make_ca, trusted_form

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
    read = read_file(path, CA_FILE)
    assert read is not None
    assert len(read.certificates) == count, read


def test_a_block_never_ended_is_no_block(tmp_path: Path) -> None:
    """BEGIN lines with no END, many: nothing read (a pattern that looks for an END
    from each BEGIN would scan the rest of the file from each)."""
    path = tmp_path / "unended.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n" * 20_000)
    read = read_file(path, CA_FILE)
    assert read is not None and read.blocks == () and not read.too_large


def test_a_trusted_form_is_read_first_in_a_chain_file_and_anywhere_in_a_ca_file(
        tmp_path: Path) -> None:
    """``--tls-cert`` is read as ``SSL_CTX_use_certificate_chain_file`` reads it: its
    first block in trusted form too, the others not (``PEM_read_bio_X509`` skips them,
    kept apart with their places); ``--tls-ca`` takes trusted forms anywhere."""
    a, b, c = (make_ca(tmp_path, name)[0] for name in ("a", "b", "c"))
    path = tmp_path / "file.pem"
    path.write_bytes(b"".join(trusted_form(pem, tmp_path / f"t{pem.name}").read_bytes()
                              for pem in (a, b)) + c.read_bytes())
    chain, cas = read_file(path, CHAIN_FILE), read_file(path, CA_FILE)
    assert chain is not None and cas is not None
    assert [block.index for block in chain.blocks] == [0, 2]
    assert [block.index for block in chain.skipped] == [1]
    assert chain.skipped[0].cert is not None  # read, for the line that says it is skipped
    assert [block.index for block in cas.blocks] == [0, 1, 2] and cas.skipped == ()
    serials = [cert.serial for cert in cas.certificates]
    assert [cert.serial for cert in chain.certificates] == [serials[0], serials[2]]

