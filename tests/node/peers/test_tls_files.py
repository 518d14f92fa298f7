"""The node's TLS contexts from its files (``node.peers.api``): the CA file is read as
OpenSSL reads it, and a file that cannot be used is named by its option."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from node.config import Config
from node.peers.api import TlsFileError, client_tls, server_tls
from tests.support.certs import make_ca, make_cert, openssl


def contexts(config: Config) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    return server_tls(config), client_tls(config)


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


def test_both_contexts_trust_the_cas_of_a_bundle_as_openssl_writes_them(tmp_path: Path) -> None:
    ca, other = make_ca(tmp_path, "ca"), make_ca(tmp_path, "other")
    cert, key = make_cert(tmp_path, "node", ca)
    # ``openssl x509 -trustout`` writes a TRUSTED CERTIFICATE block (as some systems'
    # bundles hold); a bundle's comments may be other than ASCII.
    openssl("x509", "-in", "other.pem", "-trustout", "-addtrust", "serverAuth",
            "-out", "other.trusted.pem", cwd=tmp_path)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes("# Émetteur: the cluster's CAs\n".encode() + ca[0].read_bytes()
                       + (tmp_path / "other.trusted.pem").read_bytes())
    server, client = contexts(Config(tls_cert=cert, tls_key=key, tls_ca=bundle))
    assert server is not None and client is not None
    assert server.verify_mode == ssl.CERT_OPTIONAL
    ours = {der(ca[0]), der(other[0])}
    assert ours <= set(server.get_ca_certs(binary_form=True))
    assert set(client.get_ca_certs(binary_form=True)) == ours  # the cluster's CAs alone


@pytest.mark.parametrize("content, reason", [
    (None, "No such file or directory"),
    ("", "not a PEM file of CA certificates (NO_CERTIFICATE_OR_CRL_FOUND)"),
    ("not a certificate", "not a PEM file of CA certificates (NO_CERTIFICATE_OR_CRL_FOUND)"),
    ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
     "not a PEM file of CA certificates ("),
])
def test_a_ca_file_that_cannot_be_used_is_named(tmp_path: Path, content: str | None,
                                                 reason: str) -> None:
    cert, key = make_cert(tmp_path, "node", make_ca(tmp_path, "ca"))
    path = tmp_path / "cluster-ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TlsFileError) as raised:
        contexts(Config(tls_cert=cert, tls_key=key, tls_ca=path))
    assert raised.value.option == f"--tls-ca {path}"
    assert raised.value.reason.startswith(reason), raised.value.reason
    # Without a certificate of its own, the node still dials with the CA alone.
    with pytest.raises(TlsFileError) as raised:
        client_tls(Config(tls_ca=path))
    assert raised.value.option == f"--tls-ca {path}"


def test_a_key_of_another_certificate_names_the_pair(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "ca")
    cert, _ = make_cert(tmp_path, "node", ca)
    _, other_key = make_cert(tmp_path, "other", ca)
    with pytest.raises(TlsFileError) as raised:
        contexts(Config(tls_cert=cert, tls_key=other_key, tls_ca=ca[0]))
    assert raised.value.option == f"--tls-cert {cert} with --tls-key {other_key}"
    assert raised.value.reason.startswith("not a PEM file of the right kind, or a key of "
                                          "another certificate ("), raised.value.reason
    assert str(raised.value) == f"cannot use {raised.value.option}: {raised.value.reason}"
