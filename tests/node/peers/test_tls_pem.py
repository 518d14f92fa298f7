"""The certificate files read for their dates (``node.peers.tls_pem.read_file``): the
blocks OpenSSL reads, no others, whatever the line ends and the text around them, and a
trusted form only where OpenSSL reads one; a block never ended read to its end once; a
trusted form's certificate cut by its length, a length that cuts none giving a block of
unknown dates."""

from __future__ import annotations

import base64
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
    assert len(read.blocks) == count, read
    assert all(block.cert is not None for block in read.blocks), read


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
    assert all(block.cert is not None for block in cas.blocks)
    assert chain.blocks == (cas.blocks[0], cas.blocks[2])  # each the same certificate


#: Headers of a trusted form that cut no certificate from it: each put before the rest of
#: the form (a certificate of 256 to 65535 bytes, then trust settings).
HOSTILE = {
    "too short for a header": lambda form: form[:1],
    "a length of 127 bytes, past the end": lambda form: b"\x30\xff" + b"\xff" * 127 + form[4:],
    "a length inside the certificate": lambda form: b"\x30\x82\x00\x10" + form[4:],
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_trusted_form_whose_length_cuts_no_certificate_is_of_unknown_dates(
        tmp_path: Path, case: str) -> None:
    """The outer length of a trusted form is read by hand (to cut the certificate from
    the trust settings): a header too short, a length past the end or one that cuts the
    certificate short gives a block of unknown dates, in its place, never an error, and
    the next block is read."""
    ca = make_ca(tmp_path, "ca")[0]
    trusted = trusted_form(ca, tmp_path / "trusted.pem").read_text()
    form = base64.b64decode("".join(trusted.splitlines()[1:-1]))
    assert form[:2] == b"\x30\x82" and len(form) > 4 + int.from_bytes(form[2:4], "big")
    body = base64.encodebytes(HOSTILE[case](form)).decode()
    path = tmp_path / "hostile.pem"
    path.write_text(f"-----BEGIN TRUSTED CERTIFICATE-----\n{body}"
                    f"-----END TRUSTED CERTIFICATE-----\n{trusted}")
    read = read_file(path, CA_FILE)
    assert read is not None
    assert [(block.index, block.cert is None) for block in read.blocks] == [
        (0, True), (1, False)]
