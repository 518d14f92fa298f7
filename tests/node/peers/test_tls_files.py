"""The node's TLS contexts from its files (``node.peers.api``): the CA file is read
once for both, and a file that cannot be used is named by its option."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from node.config import Config
from node.peers.api import TlsFileError, client_tls, read_ca, server_tls
from tests.support.certs import make_ca, make_cert


def contexts(config: Config) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    ca = read_ca(config)
    return server_tls(config, ca), client_tls(config, ca)


def test_both_contexts_trust_the_ca_of_one_reading(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "ca")
    cert, key = make_cert(tmp_path, "node", ca)
    # A bundle's comments may be other than ASCII; the certificates are read all the same.
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes("# Émetteur: the cluster's CA\n".encode() + ca[0].read_bytes())
    config = Config(tls_cert=cert, tls_key=key, tls_ca=bundle)
    text = read_ca(config)
    assert text is not None
    bundle.write_text("replaced meanwhile")  # read once: the contexts never see this
    server, client = server_tls(config, text), client_tls(config, text)
    assert server is not None and client is not None
    assert server.verify_mode == ssl.CERT_OPTIONAL
    ours = ssl.PEM_cert_to_DER_cert(ca[0].read_text())
    assert ours in server.get_ca_certs(binary_form=True)
    assert client.get_ca_certs(binary_form=True) == [ours]  # the cluster's CA alone


@pytest.mark.parametrize("content, reason", [
    (None, "No such file or directory"),
    ("not a certificate", "not a PEM file of CA certificates (no certificate in it)"),
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
