"""Renewed TLS files while the node runs (``node.peers.tls_renewal``): unchanged files are
not read again; changed ones give new contexts, a new CA file included (with the CA
blocks they trust, built from the very bytes read: the links made under a CA trusted no
more are to end, not for a renewed certificate nor a CA added); files that cannot be used
keep the contexts in use, with one warning per change that names no key material, and are
tried again until they can be used."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import ssl
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from structlog.testing import capture_logs

from node.config import Config
from node.peers import tls_renewal
from node.peers.api import TlsFileError
from node.peers.tls_expiry import TLS_EXPIRY_WARN_DAYS
from node.peers.tls_pem import TLS_FILE_BYTES_MAX
from node.peers.tls_renewal import START_LOADS, Contexts, TlsFiles, look, watch
from node.tls_trust import ends_links
from tests.support.certs import (
    bundle,
    expires,
    install,
    long_length_form,
    make_ca,
    make_cert,
    make_cert_expiring,
    trusted_form,
    unknown_version_form,
)
from tests.support.tls_files import expiry_gauge, live_files, settled_at_once
from tests.support.waits import DEADLINE_S, until


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


def rewrapped(pem: Path) -> str:
    """The certificate of ``pem`` as PEM whose lines are 76 characters, not 64."""
    body = base64.b64encode(der(pem)).decode()
    lines = [body[start:start + 76] for start in range(0, len(body), 76)]
    return "\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----", ""])


def of_files(logs: list[dict[str, Any]]) -> list[str]:
    """The lines about the files (the test certificates, of two days, are warned of as
    expiring soon too: ``test_a_certificate_expiring_soon_is_warned_of_once``)."""
    return [line["event"] for line in logs if line["event"].startswith("tls files")]


async def look_at(files: TlsFiles) -> Contexts | None:
    """One look at ``files``, as the node's (``look``), by a node whose contexts are put
    in use at once."""
    return await look(files, lambda contexts: None)


def served_files(tmp_path: Path) -> tuple[Config, tuple[Path, Path]]:
    """A config with certificate, key and CA files of its own, and that CA."""
    ca = make_ca(tmp_path, "ca")
    cert, key = live_files(tmp_path, *make_cert(tmp_path, "first", ca))
    install(ca[0], cert.with_name("ca.pem"))
    return Config(tls_cert=cert, tls_key=key, tls_ca=cert.with_name("ca.pem")), ca


async def test_unchanged_files_give_nothing_new(tmp_path: Path) -> None:
    config, _ = served_files(tmp_path)
    files = TlsFiles(config)
    assert files.watched
    assert await look_at(files) is None
    assert not TlsFiles(Config()).watched  # nothing to look at: no TLS


async def test_renewed_files_and_a_new_ca_give_new_contexts(tmp_path: Path) -> None:
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    assert config.tls_ca is not None
    files = TlsFiles(config)
    before = files.contexts
    cert, key = make_cert(tmp_path, "second", ca)
    install(key, config.tls_key)
    install(cert, config.tls_cert)
    with capture_logs() as logs:
        renewed = await look_at(files)
    assert renewed is not None and renewed is files.contexts
    assert renewed.server is not before.server and renewed.client is not before.client
    assert renewed.ca == before.ca  # the links stay: the CA they were verified by is the same
    assert of_files(logs) == ["tls files reloaded"]
    serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    assert logs[0]["certificate_serial"] == format(serial, "x")
    assert await look_at(files) is None  # taken once

    # The CA rotates: a bundle of the old and the new, then the new alone.
    new_ca = make_ca(tmp_path, "new-ca")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(ca[0].read_bytes() + new_ca[0].read_bytes())
    install(bundle, config.tls_ca)
    renewed = await look_at(files)
    assert renewed is not None and renewed.client is not None and renewed.server is not None
    assert set(renewed.client.get_ca_certs(binary_form=True)) == {der(ca[0]), der(new_ca[0])}
    assert not ends_links(before.ca, renewed.ca)  # a CA added: the old one is trusted still
    both = renewed.ca
    # The bundle written otherwise: the other order, CRLF, a comment and blank lines.
    bundle.write_bytes(b"# the cluster's CAs\r\n\r\n" + new_ca[0].read_bytes().replace(
        b"\n", b"\r\n") + b"\n\n" + ca[0].read_bytes())
    install(bundle, config.tls_ca)
    renewed = await look_at(files)
    assert renewed is not None and renewed.ca == both
    # The same certificates wrapped at 76 columns (``base64``, some config tools).
    bundle.write_text("".join(rewrapped(pem) for pem in (ca[0], new_ca[0])))
    install(bundle, config.tls_ca)
    renewed = await look_at(files)
    assert renewed is not None and renewed.ca == both
    install(new_ca[0], config.tls_ca)
    renewed = await look_at(files)
    assert renewed is not None and renewed.client is not None and renewed.server is not None
    assert renewed.client.get_ca_certs(binary_form=True) == [der(new_ca[0])]
    assert der(ca[0]) not in renewed.server.get_ca_certs(binary_form=True)
    assert ends_links(both, renewed.ca)  # the old CA is trusted no more
    # The same CA written anew (a new file, the same content): taken, and no CA is new.
    alone = renewed.ca
    install(new_ca[0], config.tls_ca)
    renewed = await look_at(files)
    assert renewed is not None and renewed.ca == alone


async def test_a_ca_file_written_while_loaded_is_loaded_again_next_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CA file replaced while the contexts are built from it: they are not used (what
    they trust is not what was read), and the file is loaded again at the next look, so
    that a CA taken out then ends its links."""
    config, ca = served_files(tmp_path)
    assert config.tls_ca is not None
    files = TlsFiles(config)
    before = files.contexts
    new_ca = make_ca(tmp_path, "new-ca")
    install(bundle(tmp_path / "both.pem", ca[0], new_ca[0]), config.tls_ca)
    build = tls_renewal.server_tls

    def written_meanwhile(*args: Any, **kwargs: Any) -> ssl.SSLContext | None:
        install(new_ca[0], config.tls_ca)  # the old CA taken out, as the contexts are built
        return build(*args, **kwargs)

    monkeypatch.setattr(tls_renewal, "server_tls", written_meanwhile)
    with capture_logs() as logs:
        assert await look_at(files) is None
    monkeypatch.undo()
    assert files.contexts is before
    settling = [line for line in logs if line["event"] == "tls files settling"]
    assert settling and settling[0]["error"].endswith("changed while loaded")
    after = await look_at(files)  # the file written meanwhile: its CA alone
    assert after is not None and after.client is not None and after.server is not None
    assert after.client.get_ca_certs(binary_form=True) == [der(new_ca[0])]
    assert der(ca[0]) not in after.server.get_ca_certs(binary_form=True)
    assert ends_links(before.ca, after.ca)


def test_a_ca_file_written_while_loaded_at_start_is_loaded_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At start, a CA file that changes as it is loaded is loaded again, a few times
    (``START_LOADS``), ``tls_files_settle_s`` apart (the rest of the rotation is written
    meanwhile), before the node refuses to start."""
    config, ca = served_files(tmp_path)
    assert config.tls_ca is not None
    config = dataclasses.replace(config, limits=dataclasses.replace(
        config.limits, tls_files_settle_s=0.01))
    new_ca = make_ca(tmp_path, "new-ca")
    build = tls_renewal.server_tls
    written = [ca[0], new_ca[0]] * START_LOADS
    steps: list[str | float] = []

    def written_meanwhile(*args: Any, **kwargs: Any) -> ssl.SSLContext | None:
        steps.append("load")
        if written:
            install(written.pop(), config.tls_ca)
        return build(*args, **kwargs)

    monkeypatch.setattr(tls_renewal, "server_tls", written_meanwhile)
    monkeypatch.setattr(tls_renewal.time, "sleep", steps.append)
    with pytest.raises(TlsFileError, match="changed while loaded"):
        TlsFiles(config)
    assert steps == ["load", 0.01] * (START_LOADS - 1) + ["load"]  # none after the last
    written[:] = [ca[0]]  # written once more, then settled
    files = TlsFiles(config)
    assert files.contexts.client is not None
    assert files.contexts.client.get_ca_certs(binary_form=True) == [der(ca[0])]


def test_a_ca_file_needs_no_temporary_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is written to load the files: a node on a read-only root starts."""
    config, _ = served_files(tmp_path)
    not_a_folder = tmp_path / "not-a-folder"
    not_a_folder.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    assert TlsFiles(config).contexts.server is not None


def test_a_ca_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    """A ``--tls-ca`` over ``TLS_FILE_BYTES_MAX`` is not read whole: the node says the
    cap."""
    config, ca = served_files(tmp_path)
    assert config.tls_ca is not None
    padded = tmp_path / "padded.pem"
    padded.write_bytes(ca[0].read_bytes() + b"# padding\n" * (TLS_FILE_BYTES_MAX // 10 + 1))
    install(padded, config.tls_ca)
    with pytest.raises(TlsFileError) as raised:
        TlsFiles(config)
    assert raised.value.option == f"--tls-ca {config.tls_ca}"
    assert raised.value.reason == \
        f"over {TLS_FILE_BYTES_MAX} bytes (node.peers.tls_pem.TLS_FILE_BYTES_MAX)"


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


async def test_a_copy_in_place_that_keeps_the_modification_time_is_seen(tmp_path: Path) -> None:
    """``cp -p`` of a renewed certificate of the same size over the file in use: the same
    inode, size and modification time; only the change time tells."""
    config, _ = served_files(tmp_path)
    assert config.tls_ca is not None
    files = TlsFiles(config)
    size = len(config.tls_ca.read_bytes())
    for attempt in range(20):  # a name as long, and a signature no longer (they vary)
        other_ca = make_ca(tmp_path, f"c{attempt % 10}")
        if len(other_ca[0].read_bytes()) <= size:
            break
    # Of the same size, with newlines after the certificate (PEM readers skip them).
    same_size = other_ca[0].read_bytes().ljust(size, b"\n")
    kept = os.stat(config.tls_ca)
    time.sleep(0.02)  # a change time the file system can tell apart
    with config.tls_ca.open("r+b") as file:  # in place: the same inode
        file.write(same_size)
    os.utime(config.tls_ca, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    found = os.stat(config.tls_ca)
    assert (found.st_ino, found.st_size, found.st_mtime_ns) == \
        (kept.st_ino, kept.st_size, kept.st_mtime_ns)
    renewed = await look_at(files)
    assert renewed is not None and renewed.client is not None
    assert renewed.client.get_ca_certs(binary_form=True) == [der(other_ca[0])]


def looked_at_often(tmp_path: Path) -> tuple[Config, tuple[Path, Path], TlsFiles]:
    """Served files (``served_files``) looked at every 10 ms: their config, CA and
    ``TlsFiles``."""
    config, ca = served_files(tmp_path)
    assert config.tls_cert is not None and config.tls_key is not None
    config = dataclasses.replace(config, limits=dataclasses.replace(
        config.limits, tls_files_check_interval_s=0.01))
    return config, ca, TlsFiles(config)


async def test_an_unexpected_error_of_a_look_is_logged_once_and_the_looks_go_on(
        tmp_path: Path) -> None:
    config, ca, files = looked_at_often(tmp_path)
    taken: list[Contexts] = []
    second_taken = asyncio.Event()

    def use(contexts: Contexts) -> None:
        taken.append(contexts)
        if len(taken) == 1:
            raise RuntimeError("could not use them")
        second_taken.set()

    async def renew(name: str) -> None:
        cert, key = make_cert(tmp_path, name, ca)
        install(key, config.tls_key)  # type: ignore[arg-type]
        install(cert, config.tls_cert)  # type: ignore[arg-type]

    with capture_logs() as logs:
        looks = asyncio.create_task(watch(files, use))
        await renew("second")
        await until(lambda: taken or looks.done())
        await renew("third")
        done, _ = await asyncio.wait([looks, asyncio.create_task(second_taken.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        assert looks not in done  # the error did not end the looks
        looks.cancel()
        await asyncio.wait([looks])
    failed = [line for line in logs if line["event"] == "tls files look failed"]
    assert len(failed) == 1
    assert failed[0]["error_type"] == "RuntimeError" and failed[0]["log_level"] == "error"
    assert len(taken) == 2


async def test_contexts_that_could_not_be_put_in_use_are_given_again(tmp_path: Path) -> None:
    """A renewal whose use failed is not taken as done: the next look loads the same
    files again and gives them, with no further change of the files."""
    config, ca, files = looked_at_often(tmp_path)
    taken: list[Contexts] = []
    given_again = asyncio.Event()
    before = files.served
    served_meanwhile = []  # the certificate served (the gauge) while they are given

    def use(contexts: Contexts) -> None:
        taken.append(contexts)
        served_meanwhile.append(files.served)
        if len(taken) == 1:
            raise RuntimeError("could not use them")
        given_again.set()

    cert, key = make_cert(tmp_path, "second", ca)
    install(key, config.tls_key)
    install(cert, config.tls_cert)
    looks = asyncio.create_task(watch(files, use))
    try:
        await asyncio.wait_for(given_again.wait(), DEADLINE_S)
    finally:
        looks.cancel()
        await asyncio.wait([looks])
    assert len(taken) == 2
    assert served_meanwhile == [before, before]  # not the new one before it is in use
    assert files.served is not None and files.served != before
    assert files.served.serial == x509.load_pem_x509_certificate(cert.read_bytes()).serial_number


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
    assert warned["certificate_expires"] == datetime.fromtimestamp(expires(later),
                                                                   UTC).isoformat()
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
