"""Renewed TLS files that cannot be used (``node.peers.tls_renewal``): they keep the
contexts in use, with one warning per change that names no key material, after the time
a renewal half written is given to settle; a certificate out of its dates is not taken.
They are tried again until they can be used."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from cryptography import x509
from structlog.testing import capture_logs

from node.peers.tls_renewal import TlsFiles, watch
from tests.support.certs import install, make_cert, make_cert_expiring, trusted_form
from tests.support.tls_files import look_at, of_files, served_files, settled_at_once
from tests.support.waits import until


async def test_files_that_cannot_be_used_keep_the_contexts_and_warn_once(tmp_path: Path) -> None:
    config, ca = served_files(tmp_path)
    config = settled_at_once(config)
    assert config.tls_cert is not None and config.tls_key is not None
    files = TlsFiles(config)
    before = files.contexts
    cert, key = make_cert(tmp_path, "second", ca)
    install(cert, config.tls_cert)  # the renewal is half written: the key is the old one
    with capture_logs() as logs:
        assert await look_at(files) is None
        # Warned of: looked at again at the interval, not the settle's.
        assert files.next_look_s() == config.limits.tls_files_check_interval_s
        assert await look_at(files) is None  # looked at again: the same files, no second warning
    assert files.contexts is before
    [warned] = [line for line in logs if line["event"] == "tls files not reloaded"]
    assert of_files(logs) == ["tls files settling", "tls files not reloaded"]
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
        assert await look_at(files) is None
    assert of_files(logs) == ["tls files settling", "tls files not reloaded"]

    install(key, config.tls_key)  # the renewal completes: taken at the next look
    with capture_logs() as logs:
        renewed = await look_at(files)
    assert renewed is not None and renewed.server is not before.server
    assert of_files(logs) == ["tls files reloaded"]


async def test_a_renewal_half_written_is_given_time_to_settle(tmp_path: Path) -> None:
    """The certificate written, not yet its key: no warning while the pair may still be
    settling, and the next look is sooner; the key written, the pair is taken."""
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    config = dataclasses.replace(config, limits=dataclasses.replace(
        config.limits, tls_files_check_interval_s=60.0, tls_files_settle_s=30.0))
    files = TlsFiles(config)
    cert, key = make_cert(tmp_path, "second", ca)
    install(cert, config.tls_cert)
    with capture_logs() as logs:
        assert await look_at(files) is None
        assert files.next_look_s() == 30.0
        install(key, config.tls_key)
        assert await look_at(files) is not None
        assert files.next_look_s() == 60.0
    assert of_files(logs) == ["tls files settling", "tls files reloaded"]


async def test_a_lasting_mismatch_is_warned_of_once_settled(tmp_path: Path) -> None:
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None
    config = dataclasses.replace(config, limits=dataclasses.replace(
        config.limits, tls_files_check_interval_s=0.01, tls_files_settle_s=0.05))
    files = TlsFiles(config)
    install(make_cert(tmp_path, "second", ca)[0], config.tls_cert)
    with capture_logs() as logs:
        looks = asyncio.create_task(watch(files, lambda contexts: None))
        try:
            await until(lambda: "tls files not reloaded" in of_files(logs))
        finally:
            looks.cancel()
            await asyncio.wait([looks])
        for _ in range(3):  # more looks at the same files
            assert await look_at(files) is None
            assert files.next_look_s() == config.limits.tls_files_check_interval_s
    assert of_files(logs).count("tls files not reloaded") == 1
    assert of_files(logs)[0] == "tls files settling"


async def test_files_warned_of_that_come_back_are_looked_at_at_the_interval(
        tmp_path: Path) -> None:
    """A key missing (warned of), then half written (settling), then missing again: the
    same files as warned of, so the looks go back to the interval."""
    config, _ = served_files(tmp_path)
    assert config.tls_key is not None
    config = dataclasses.replace(config, limits=dataclasses.replace(
        config.limits, tls_files_check_interval_s=60.0, tls_files_settle_s=0.2))
    files = TlsFiles(config)
    config.tls_key.unlink()
    with capture_logs() as logs:
        assert await look_at(files) is None
        assert files.next_look_s() == 0.2  # settling
        time.sleep(0.25)  # the settle passes, the key still missing
        assert await look_at(files) is None
        assert files.next_look_s() == 60.0
        config.tls_key.write_text("not a key")
        assert await look_at(files) is None
        assert files.next_look_s() == 0.2  # a new state: settling
        config.tls_key.unlink()
        assert await look_at(files) is None
        assert files.next_look_s() == 60.0
    assert of_files(logs).count("tls files not reloaded") == 1


async def test_a_renewal_to_a_certificate_out_of_its_dates_is_not_taken(tmp_path: Path) -> None:
    """Expired, or not valid yet, in trusted form (``openssl x509 -trustout``) too: peers
    would refuse it, so the certificate in use is kept, with the usual warning naming why
    and the date."""
    config, ca = served_files(tmp_path)
    config = settled_at_once(config)
    assert config.tls_cert is not None and config.tls_key is not None
    files = TlsFiles(config)
    before, served = files.contexts, files.served
    for name, days, begins_days, why in (
            ("expired", -3 / (24 * 60), -1.0, "expired at "),
            ("early", 90.0, 1.0, "is not valid before "),
            ("trusted", -3 / (24 * 60), -1.0, "expired at ")):
        cert, key = make_cert_expiring(tmp_path, name, ca, days=days, begins_days=begins_days)
        install(key, config.tls_key)
        install(trusted_form(cert, tmp_path / "trusted-form.pem") if name == "trusted" else cert,
                config.tls_cert)
        with capture_logs() as logs:
            assert await look_at(files) is None
        assert files.contexts is before and files.served == served
        [warned] = [line for line in logs if line["event"] == "tls files not reloaded"]
        read = x509.load_pem_x509_certificate(cert.read_bytes())
        date = read.not_valid_before_utc if name == "early" else read.not_valid_after_utc
        assert warned["error"] == (f"cannot use --tls-cert {config.tls_cert}: "
                                   f"the certificate {why}{date:%Y-%m-%d %H:%M:%SZ}")
