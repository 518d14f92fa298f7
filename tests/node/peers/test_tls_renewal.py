"""Renewed TLS files while the node runs (``node.peers.tls_renewal``): unchanged files are
not read again; changed ones give new contexts, a new CA file included; files that cannot
be used keep the contexts in use, with one warning per change that names no key material,
and are tried again until they can be used."""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path

from cryptography import x509
from structlog.testing import capture_logs

from node.config import Config
from node.peers.tls_renewal import TlsFiles
from tests.support.certs import make_ca, make_cert


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


def install(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` as a renewal does: a new file renamed over the old."""
    shutil.copyfile(source, target.with_suffix(".new"))
    os.replace(target.with_suffix(".new"), target)


def served_files(tmp_path: Path) -> tuple[Config, tuple[Path, Path]]:
    """A config with certificate, key and CA files of its own, and that CA."""
    ca = make_ca(tmp_path, "ca")
    cert, key = make_cert(tmp_path, "first", ca)
    live = tmp_path / "live"
    live.mkdir()
    for source, name in ((cert, "cert.pem"), (key, "key.pem"), (ca[0], "ca.pem")):
        install(source, live / name)
    return Config(tls_cert=live / "cert.pem", tls_key=live / "key.pem",
                  tls_ca=live / "ca.pem"), ca


def test_unchanged_files_give_nothing_new(tmp_path: Path) -> None:
    config, _ = served_files(tmp_path)
    files = TlsFiles(config)
    assert files.watched
    assert files.look() is None
    assert not TlsFiles(Config()).watched  # nothing to look at: no TLS


def test_renewed_files_and_a_new_ca_give_new_contexts(tmp_path: Path) -> None:
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    assert config.tls_ca is not None
    files = TlsFiles(config)
    before = files.contexts
    cert, key = make_cert(tmp_path, "second", ca)
    install(key, config.tls_key)
    install(cert, config.tls_cert)
    with capture_logs() as logs:
        renewed = files.look()
    assert renewed is not None and renewed is files.contexts
    assert renewed.server is not before.server and renewed.client is not before.client
    assert [line["event"] for line in logs] == ["tls files reloaded"]
    serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    assert logs[0]["certificate_serial"] == format(serial, "x")
    assert files.look() is None  # taken once

    # The CA rotates: a bundle of the old and the new, then the new alone.
    new_ca = make_ca(tmp_path, "new-ca")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca[0].read_bytes() + new_ca[0].read_bytes())
    install(bundle, config.tls_ca)
    renewed = files.look()
    assert renewed is not None and renewed.client is not None and renewed.server is not None
    assert set(renewed.client.get_ca_certs(binary_form=True)) == {der(ca[0]), der(new_ca[0])}
    install(new_ca[0], config.tls_ca)
    renewed = files.look()
    assert renewed is not None and renewed.client is not None and renewed.server is not None
    assert renewed.client.get_ca_certs(binary_form=True) == [der(new_ca[0])]
    assert der(ca[0]) not in renewed.server.get_ca_certs(binary_form=True)


def test_files_that_cannot_be_used_keep_the_contexts_and_warn_once(tmp_path: Path) -> None:
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    files = TlsFiles(config)
    before = files.contexts
    cert, key = make_cert(tmp_path, "second", ca)
    install(cert, config.tls_cert)  # the renewal is half written: the key is the old one
    with capture_logs() as logs:
        assert files.look() is None
        assert files.look() is None  # looked at again: the same files, no second warning
    assert files.contexts is before
    assert [line["event"] for line in logs] == ["tls files not reloaded"]
    warned = logs[0]
    assert warned["log_level"] == "warning"
    assert warned["error"].startswith(f"cannot use --tls-cert {config.tls_cert} with "
                                      f"--tls-key {config.tls_key}: not a PEM file of the "
                                      "right kind, or a key of another certificate (")
    keys = config.tls_key.read_text() + key.read_text()
    body = [line for line in keys.splitlines() if not line.startswith("-----")]
    assert not any(part in str(warned) for part in body)

    # Half written in another way (an empty key file): warned of again, as a new state.
    config.tls_key.write_text("")
    with capture_logs() as logs:
        assert files.look() is None
    assert [line["event"] for line in logs] == ["tls files not reloaded"]

    install(key, config.tls_key)  # the renewal completes: taken at the next look
    with capture_logs() as logs:
        renewed = files.look()
    assert renewed is not None and renewed.server is not before.server
    assert [line["event"] for line in logs] == ["tls files reloaded"]
