"""Renewed TLS files while the node runs (``node.peers.tls_renewal``): unchanged files are
not read again; changed ones give new contexts, a new CA file included; files that cannot
be used keep the contexts in use, with one warning per change that names no key material,
and are tried again until they can be used."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import ssl
import time
from pathlib import Path

from cryptography import x509
from structlog.testing import capture_logs

from node.config import Config
from node.peers.tls_renewal import Contexts, TlsFiles, watch
from tests.support.certs import install, make_ca, make_cert
from tests.support.waits import DEADLINE_S


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


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


def test_a_copy_in_place_that_keeps_the_modification_time_is_seen(tmp_path: Path) -> None:
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
    renewed = files.look()
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
        while not taken and not looks.done():
            await asyncio.sleep(0.01)
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

    def use(contexts: Contexts) -> None:
        taken.append(contexts)
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
