"""Renewed TLS files while the node runs (``node.peers.tls_renewal``): unchanged files are
not read again; changed ones give new contexts, a new CA file included (with the CA
blocks they trust, built from the very bytes read: the links made under a CA trusted no
more are to end, not for a renewed certificate nor a CA added), a CA file written while it
is loaded is loaded again, and contexts not put in use are given again. Files that cannot
be used: ``test_tls_renewal_unusable``; the warnings of the certificate's expiry:
``test_tls_expiry_warnings``."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from structlog.testing import capture_logs

from node.config import Config
from node.peers import tls_renewal
from node.peers.api import TlsFileError
from node.peers.tls_pem import TLS_FILE_BYTES_MAX
from node.peers.tls_renewal import START_LOADS, Contexts, TlsFiles, watch
from node.tls_trust import ends_links
from tests.support.certs import bundle, install, make_ca, make_cert
from tests.support.tls_files import look_at, of_files, served_files
from tests.support.waits import DEADLINE_S, until


def der(pem: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.read_text())


def rewrapped(pem: Path) -> str:
    """The certificate of ``pem`` as PEM whose lines are 76 characters, not 64."""
    body = base64.b64encode(der(pem)).decode()
    lines = [body[start:start + 76] for start in range(0, len(body), 76)]
    return "\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----", ""])


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
