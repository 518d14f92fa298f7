"""The warnings of the served certificate's expiry as the TLS files are looked at
(``TlsFiles.warn_of_expiry``): expiring soon once per certificate, expired as an error,
an expiry that cannot be read once, and the expiry gauge of what is served."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from node.config import Config
from node.peers.tls_expiry import TLS_EXPIRY_WARN_DAYS
from node.peers.tls_renewal import TlsFiles
from tests.support.certs import (
    bundle,
    expires,
    install,
    long_length_form,
    make_ca,
    make_cert,
    make_cert_expiring,
    unknown_version_form,
)
from tests.support.tls_files import expiry_gauge, look_at, served_files


async def test_a_certificate_expiring_soon_is_warned_of_once(tmp_path: Path) -> None:
    """Within ``TLS_EXPIRY_WARN_DAYS`` of its expiry the certificate served is warned of,
    once per certificate however often the files are looked at, naming its file and
    date (never what it holds); the gauge is its notAfter."""
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    later, key_later = make_cert_expiring(tmp_path, "later", ca, days=90)
    install(key_later, config.tls_key)
    install(later, config.tls_cert)
    files = TlsFiles(config)
    assert expiry_gauge(files)["served"] == expires(later)
    now = datetime.now(UTC)
    with capture_logs() as logs:
        assert await look_at(files) is None
        files.warn_of_expiry(now)
        # The day it is within the bound, and each look after: one warning.
        for days in (90 - TLS_EXPIRY_WARN_DAYS + 0.5, 80, 85):
            files.warn_of_expiry(now + timedelta(days=days))
    # The CA, of 30 days, has expired by then: said of in lines of its own.
    logs = [line for line in logs if line["certificate"] == "served"]
    [warned] = [line for line in logs if line["event"] == "tls certificate expires soon"]
    assert len(logs) == 1
    assert warned["log_level"] == "warning" and warned["path"] == str(config.tls_cert)
    # As the log writes every time (its own timestamp too): with Z, not +00:00.
    assert warned["certificate_expires"] == datetime.fromtimestamp(
        expires(later), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert warned["warn_days"] == TLS_EXPIRY_WARN_DAYS and warned["days_left"] < 14

    soon, key = make_cert_expiring(tmp_path, "soon", ca, days=3)  # a renewal gone wrong
    install(key, config.tls_key)
    install(soon, config.tls_cert)
    with capture_logs() as logs:
        assert await look_at(files) is not None
        assert await look_at(files) is None
    assert [line["event"] for line in logs] == ["tls files reloaded",
                                                "tls certificate expires soon"]
    assert 2.9 < logs[1]["days_left"] <= 3
    assert expiry_gauge(files)["served"] == expires(soon)
    body = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
    assert not any(part in str(logs) for part in body)

    # Rewritten (a new file, the same certificate): not warned of again. Another taken,
    # then this one put back (a renewal rolled back): warned of again.
    install(soon, config.tls_cert)
    with capture_logs() as logs:
        assert await look_at(files) is not None
    assert [line["event"] for line in logs] == ["tls files reloaded"]
    install(key_later, config.tls_key)
    install(later, config.tls_cert)
    assert await look_at(files) is not None
    install(key, config.tls_key)
    install(soon, config.tls_cert)
    with capture_logs() as logs:
        assert await look_at(files) is not None
    assert [line["event"] for line in logs] == ["tls files reloaded",
                                                "tls certificate expires soon"]
    assert expiry_gauge(TlsFiles(Config())) == {}  # no certificate (plain HTTP): no series


async def test_a_certificate_expired_is_said_as_an_error(tmp_path: Path) -> None:
    """Loaded at start (it was accepted before): an error once. One warned of as
    expiring soon is said again once it has expired."""
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    cert, key = make_cert_expiring(tmp_path, "expired", ca, days=-3 / (24 * 60),
                                   begins_days=-1.0)
    install(key, config.tls_key)
    install(cert, config.tls_cert)
    files = TlsFiles(config)
    now = datetime.now(UTC)
    with capture_logs() as logs:
        files.warn_of_expiry(now)
        files.warn_of_expiry(now + timedelta(days=1))
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("tls certificate expired", "error")]
    assert logs[0]["path"] == str(config.tls_cert) and "days_left" not in logs[0]
    assert logs[0]["expired_for"] in ("3 minutes", "4 minutes")  # made 3 minutes ago

    soon, key = make_cert_expiring(tmp_path, "soon", ca, days=3)
    install(key, config.tls_key)
    install(soon, config.tls_cert)
    with capture_logs() as logs:
        assert await look_at(files) is not None
        files.warn_of_expiry(now + timedelta(days=2))
        files.warn_of_expiry(now + timedelta(days=4))
        files.warn_of_expiry(now + timedelta(days=5))
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("tls files reloaded", "info"), ("tls certificate expires soon", "warning"),
        ("tls certificate expired", "error")]


async def test_a_certificate_whose_expiry_cannot_be_read_is_warned_of_once(tmp_path: Path) -> None:
    """OpenSSL serves a certificate of a length it reads and the expiry's reader
    (``cryptography``) refuses: no gauge, so a warning says so, once, with the path."""
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    install(long_length_form(config.tls_cert, tmp_path / "long.pem"), config.tls_cert)
    files = TlsFiles(config)
    assert files.served is None and files.contexts.server is not None
    with capture_logs() as logs:
        for _ in range(2):
            assert await look_at(files) is None
    assert [(line["event"], line["log_level"]) for line in logs] == [
        ("tls certificate expiry unknown", "warning")]
    assert logs[0]["path"] == str(config.tls_cert)

    cert, key = make_cert(tmp_path, "second", ca)  # one that can be read: no warning
    install(key, config.tls_key)
    install(cert, config.tls_cert)
    with capture_logs() as logs:
        assert await look_at(files) is not None
    assert files.served is not None
    assert "tls certificate expiry unknown" not in [line["event"] for line in logs]
    with capture_logs() as logs:  # no certificate (plain HTTP): nothing to say
        TlsFiles(Config()).warn_of_expiry(datetime.now(UTC))
    assert logs == []


def test_a_ca_bundle_openssl_loads_with_a_block_of_unknown_version_starts(
        tmp_path: Path) -> None:
    """``--tls-ca`` holds a CA whose version field is none of X.509's (OpenSSL loads it,
    ``cryptography`` refuses it with an error of its own), then the CA of the chain: the
    files are used, that block is of unknown dates, the CA after it is the ``ca``."""
    ca, other = make_ca(tmp_path, "ca"), make_ca(tmp_path, "other")
    cert, key = make_cert(tmp_path, "leaf", ca)
    cas = bundle(tmp_path / "cas.pem", unknown_version_form(other[0], tmp_path / "v4.pem"),
                 ca[0])
    files = TlsFiles(Config(tls_cert=cert, tls_key=key, tls_ca=cas))
    assert expiry_gauge(files) == {"served": expires(cert), "ca": expires(ca[0])}
    with capture_logs() as logs:
        files.warn_of_expiry(datetime.now(UTC))
    unknown = [(line["certificate"], line["index"]) for line in logs
               if line["event"] == "tls certificate expiry unknown"]
    assert unknown == [("other_ca", 0)], logs
