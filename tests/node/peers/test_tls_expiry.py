"""The chain the node's certificate dates are judged on (``node.peers.tls_expiry``): of
several copies of one issuer (same name and key) in ``--tls-cert`` or ``--tls-ca``, the
one peers take, as OpenSSL does: the first valid now, not one lasting longer that is not
valid yet; of copies none valid now, the one lasting longest. A block of
``--tls-cert`` OpenSSL skips (a trusted form after the first) is no copy of it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from node.config import Config
from node.peers.tls_expiry import NOT_COMPARED, TLS_CA_LINES_MAX, ExpiryWarnings, Watched
from node.peers.tls_pem import CA_FILE, TLS_FILE_BYTES_MAX, read_file
from node.peers.tls_renewal import TlsFiles, look
from tests.support.certs import (
    bundle,
    expires,
    install,
    make_ca_expiring,
    make_cert_expiring,
    sign_again,
    trusted_form,
)
from tests.support.tls_files import expiry_gauge, live_files, settled_at_once


def renewal_files(tmp_path: Path, root: tuple[Path, Path], middle: tuple[Path, Path],
                  ) -> tuple[TlsFiles, Path, Path]:
    """Files in use (a leaf ``middle`` signs and ``middle``, ``--tls-ca`` ``root``), a
    renewal that cannot be used warned of at once; and the paths of the certificate and
    key, for a renewal."""
    first = make_cert_expiring(tmp_path, "first", middle, days=90)
    cert, key = live_files(tmp_path, bundle(tmp_path / "chain1.pem", first[0], middle[0]),
                           first[1])
    config = settled_at_once(Config(tls_cert=cert, tls_key=key, tls_ca=root[0]))
    return TlsFiles(config), cert, key


async def test_a_renewal_with_a_copy_of_its_intermediate_not_valid_yet_is_taken(
        tmp_path: Path) -> None:
    """The renewed fullchain holds the intermediate issued again by the root, lasting
    longer but valid only in two days, before the copy valid now: peers build the chain
    with the one valid now, so the renewal is taken, and that one is sampled."""
    root = make_ca_expiring(tmp_path, "root", days=3000)
    middle = make_ca_expiring(tmp_path, "middle", days=200, signer=root)
    files, cert, key = renewal_files(tmp_path, root, middle)
    later = sign_again(tmp_path, "middle-later", middle, root, days=2000, begins_days=2.0)
    second = make_cert_expiring(tmp_path, "second", middle, days=90)
    install(second[1], key)
    install(bundle(tmp_path / "chain2.pem", second[0], later, middle[0]), cert)
    with capture_logs() as logs:
        assert await look(files, lambda contexts: None) is not None
    assert "tls files reloaded" in [line["event"] for line in logs], logs
    assert expiry_gauge(files) == {"served": expires(second[0]),
                                   "intermediate": expires(middle[0]), "ca": expires(root[0])}


def test_the_ca_is_the_copy_valid_now_not_one_lasting_longer_not_valid_yet(
        tmp_path: Path) -> None:
    """``--tls-ca`` holds the CA issued again (same name and key), valid only in two days
    and lasting longer, then the CA valid now, which expires soon: that one is the
    ``ca``, sampled and warned of as such; the copy not valid yet is another CA."""
    ca = make_ca_expiring(tmp_path, "ca", days=10)
    again = sign_again(tmp_path, "ca-again", ca, ca, days=700, begins_days=2.0)
    leaf = make_cert_expiring(tmp_path, "leaf", ca, days=90)
    cas = bundle(tmp_path / "cas.pem", again, ca[0])
    files = TlsFiles(Config(tls_cert=leaf[0], tls_key=leaf[1], tls_ca=cas))
    assert expiry_gauge(files) == {"served": expires(leaf[0]), "ca": expires(ca[0])}
    with capture_logs() as logs:
        files.warn_of_expiry(datetime.now(UTC))
    assert [(line["event"], line["certificate"]) for line in logs] == [
        ("tls certificate not valid yet", "other_ca"),
        ("tls certificate expires soon", "ca")], logs


async def test_of_copies_none_valid_now_the_one_lasting_longest_is_judged(
        tmp_path: Path) -> None:
    """The renewed fullchain holds two copies of its intermediate, both expired, the one
    lasting longer second: peers take that one, so the refusal names its date."""
    root = make_ca_expiring(tmp_path, "root", days=3000)
    middle = make_ca_expiring(tmp_path, "middle", days=200, signer=root)
    files, cert, key = renewal_files(tmp_path, root, middle)
    older = sign_again(tmp_path, "middle-older", middle, root, days=-20, begins_days=-300)
    newer = sign_again(tmp_path, "middle-newer", middle, root, days=-2, begins_days=-300)
    second = make_cert_expiring(tmp_path, "second", middle, days=90)
    install(second[1], key)
    install(bundle(tmp_path / "chain2.pem", second[0], older, newer), cert)
    with capture_logs() as logs:
        assert await look(files, lambda contexts: None) is None
    [refused] = [line for line in logs if line["event"] == "tls files not reloaded"]
    newer_expires = f"{datetime.fromtimestamp(expires(newer), UTC):%Y-%m-%d %H:%M:%SZ}"
    assert refused["error"] == (f"cannot use --tls-cert {cert}: intermediate 2 of the "
                                f"file: the certificate expired at {newer_expires}")


async def test_a_trusted_form_after_the_first_block_is_skipped_as_openssl_does(
        tmp_path: Path) -> None:
    """OpenSSL reads the blocks of ``--tls-cert`` after the first with
    ``PEM_read_bio_X509``, which skips a ``TRUSTED CERTIFICATE``: of a renewal holding
    the intermediate in trusted form, valid, then a copy of it expired, peers get the
    expired one, so the renewal is refused, naming that block by its place in the
    file. The trusted form alone is taken (peers get no intermediate, the CA file cannot
    tell) and warned of, once, by its place: as the cause of the issuer not found too,
    not the CA file."""
    root = make_ca_expiring(tmp_path, "root", days=3000)
    middle = make_ca_expiring(tmp_path, "middle", days=200, signer=root)
    files, cert, key = renewal_files(tmp_path, root, middle)
    old = sign_again(tmp_path, "middle-old", middle, root, days=-1, begins_days=-30)
    second = make_cert_expiring(tmp_path, "second", middle, days=90)
    install(second[1], key)
    install(bundle(tmp_path / "chain2.pem", second[0],
                   trusted_form(middle[0], tmp_path / "trusted-middle.pem"), old), cert)
    with capture_logs() as logs:
        assert await look(files, lambda contexts: None) is None
    [refused] = [line for line in logs if line["event"] == "tls files not reloaded"]
    assert refused["error"].startswith(f"cannot use --tls-cert {cert}: intermediate 2 of "
                                       "the file: the certificate expired at"), refused
    install(bundle(tmp_path / "chain3.pem", second[0],
                   trusted_form(middle[0], tmp_path / "trusted-middle.pem")), cert)
    with capture_logs() as logs:  # the trusted form alone: peers get no intermediate
        assert await look(files, lambda contexts: None) is not None
        files.warn_of_expiry(datetime.now(UTC))
    assert expiry_gauge(files) == {"served": expires(second[0])}
    assert [(line["event"], line.get("index")) for line in logs] == [
        ("tls files reloaded", None), ("tls certificate block skipped", 1),
        ("tls certificate issuer not found", 1)], logs
    skipped, no_issuer = logs[1:]
    assert skipped["log_level"] == "warning" and skipped["path"] == str(cert), skipped
    assert skipped["effect"] == "peers are not sent it: write it as BEGIN CERTIFICATE"
    assert "TRUSTED CERTIFICATE only as the first block" in skipped["reason"], skipped
    # The CA file holds the root that issued the skipped block: the block is the cause.
    assert no_issuer["path"] == str(cert) and no_issuer["issuer"] == "CN=middle", no_issuer
    assert no_issuer["reason"].startswith("the issuer is block 1 of this file"), no_issuer
    with capture_logs() as logs:  # once per content of the file
        files.warn_of_expiry(datetime.now(UTC))
    assert logs == []
    alone = TlsFiles(Config(tls_cert=cert, tls_key=key))  # without --tls-ca: said too
    with capture_logs() as logs:
        alone.warn_of_expiry(datetime.now(UTC))
    assert [(line["event"], line["index"]) for line in logs] == [
        ("tls certificate block skipped", 1)], logs


def test_a_node_with_no_certificate_of_its_own_read_calls_no_ca_other(
        tmp_path: Path) -> None:
    """The CAs of ``--tls-ca`` are said as ``tls_ca``, with why they were not compared,
    where the node has no certificate of its own read to tell which issued it: without
    ``--tls-cert``, or with one over ``TLS_FILE_BYTES_MAX`` (OpenSSL serves it, its dates
    are not read). Said as ``other_ca``, they would claim the node's own CA is another."""
    ca = make_ca_expiring(tmp_path, "ca", days=10)
    leaf = make_cert_expiring(tmp_path, "leaf", ca, days=90)
    padded = tmp_path / "padded.pem"
    padded.write_bytes(leaf[0].read_bytes() + b"# padding\n" * (TLS_FILE_BYTES_MAX // 10 + 1))
    no_cert = Watched(ca_path=ca[0], ca=read_file(ca[0], CA_FILE))
    too_large = TlsFiles(Config(tls_cert=padded, tls_key=leaf[1], tls_ca=ca[0])).dates
    for watched in (no_cert, too_large):
        with capture_logs() as logs:
            ExpiryWarnings().warn(watched, datetime.now(UTC))
        [soon] = [line for line in logs if line["event"] == "tls certificate expires soon"]
        assert (soon["certificate"], soon["path"]) == ("tls_ca", str(ca[0])), logs
        assert soon["chain"] == "not compared: the node has no certificate of its own " \
            "read (--tls-cert)"
    # Its certificate read, the node's own CA is the ``ca``.
    with capture_logs() as logs:
        TlsFiles(Config(tls_cert=leaf[0], tls_key=leaf[1], tls_ca=ca[0])).warn_of_expiry(
            datetime.now(UTC))
    assert [(line["event"], line["certificate"]) for line in logs] == [
        ("tls certificate expires soon", "ca")], logs


def test_a_node_with_no_certificate_of_its_own_warns_of_an_expired_ca_and_counts_the_rest(
        tmp_path: Path) -> None:
    """Without ``--tls-cert``, no CA of ``--tls-ca`` is known to be the node's own: one
    expired is warned of, not an error (as an ``other_ca``), and the lines over
    ``TLS_CA_LINES_MAX`` are counted in one line that says them ``tls_ca`` too, with
    why they were not compared."""
    cas = [make_ca_expiring(tmp_path, "expired", days=-1, begins_days=-2)[0]]
    cas += [make_ca_expiring(tmp_path, f"ca{n}", days=10)[0]
            for n in range(TLS_CA_LINES_MAX + 1)]
    ca_file = bundle(tmp_path / "cas.pem", *cas)
    with capture_logs() as logs:
        ExpiryWarnings().warn(Watched(ca_path=ca_file, ca=read_file(ca_file, CA_FILE)),
                              datetime.now(UTC))
    [expired] = [line for line in logs if line["event"] == "tls certificate expired"]
    assert (expired["log_level"], expired["certificate"]) == ("warning", "tls_ca"), logs
    [left_out] = [line for line in logs if line["event"] == "tls certificate lines left out"]
    assert (left_out["certificate"], left_out["count"], left_out["chain"]) == (
        "tls_ca", 2, NOT_COMPARED), logs
