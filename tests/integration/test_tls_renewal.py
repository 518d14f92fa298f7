"""A running node takes renewed TLS files without a restart (``node.peers.tls_renewal``),
with a real node process and real certificates: a new client sees the new certificate
while a connection opened before keeps working on the old one; a half-written renewal
leaves the old certificate served, and the node says so once, naming no key material,
but not while the pair may still be settling; a certificate expiring soon is warned of
once, and its expiry is a metric."""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.support.certs import expires, install, make_ca, make_cert, make_cert_expiring
from tests.support.cluster import (
    Cluster,
    append,
    message,
    peer_rows,
    serve_args,
    wait_converged,
    wait_until,
)
from tests.support.processes import NodeProcess
from tests.support.tls_files import live_files

pytestmark = pytest.mark.integration

#: Seconds between the node's looks at its files: short, so that the test waits little.
CHECK_INTERVAL_S = 0.2
#: Seconds the test waits for the node to take a change (many looks).
TAKEN_WITHIN_S = 30.0
#: The node's looks at its files, and the time files that cannot be used get to settle
#: before it warns of them: short, so that the test waits little.
LOOKS = f"[limits]\ntls_files_check_interval_s = {CHECK_INTERVAL_S}\ntls_files_settle_s = 0.5\n"


def serial_of(pem: Path) -> int:
    return x509.load_pem_x509_certificate(pem.read_bytes()).serial_number


def connect(node: NodeProcess, ca: Path) -> http.client.HTTPSConnection:
    """A connection to ``node`` that has made its handshake (and one request)."""
    conn = http.client.HTTPSConnection("127.0.0.1", node.port, timeout=10,
                                       context=ssl.create_default_context(cafile=str(ca)))
    assert healthy(conn)
    return conn


def healthy(conn: http.client.HTTPSConnection) -> bool:
    conn.request("GET", "/healthz")
    reply = conn.getresponse()
    reply.read()
    return reply.status == 200


def served_serial(conn: http.client.HTTPSConnection) -> int:
    assert conn.sock is not None
    der = conn.sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def new_client_sees(node: NodeProcess, ca: Path) -> int:
    conn = connect(node, ca)
    try:
        return served_serial(conn)
    finally:
        conn.close()


def expiry_served(node: NodeProcess, ca: Path) -> float:
    """The node's ``clawsync_tls_certificate_expiry_timestamp_seconds`` of the certificate
    it serves, as scraped."""
    conn = connect(node, ca)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    [sample] = [sample for sample in
                families["clawsync_tls_certificate_expiry_timestamp_seconds"].samples
                if sample.labels["certificate"] == "served"]
    return sample.value


def test_renewed_files_are_served_to_new_connections_without_a_restart(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "ca")
    first, second, third = (make_cert(certs, name, ca) for name in ("first", "second", "third"))
    cert, key = live_files(tmp_path, *first)
    config = tmp_path / "clawsync.toml"
    config.write_text(LOOKS)
    with NodeProcess(tmp_path, tls_ca=ca[0], extra_args=[
            "--config", str(config), "--tls-cert", str(cert), "--tls-key", str(key),
            "--tls-ca", str(ca[0])]) as node:
        before = connect(node, ca[0])
        assert served_serial(before) == serial_of(first[0])

        install(second[1], key)
        install(second[0], cert)
        wait_until(lambda: new_client_sees(node, ca[0]) == serial_of(second[0]),
                   TAKEN_WITHIN_S, "a new client sees the renewed certificate")
        # The connection made before is not dropped, and keeps its handshake.
        assert healthy(before)
        assert served_serial(before) == serial_of(first[0])
        assert "tls files reloaded" in node.log_path.read_text()
        # A look between the two files' renewal may have found them mismatched: what
        # follows is read from here on.
        offset = len(node.log_path.read_bytes())

        # Half written: the new certificate, the old key. The old one stays served.
        install(third[0], cert)
        wait_until(lambda: b"tls files not reloaded" in node.log_path.read_bytes()[offset:],
                   TAKEN_WITHIN_S, "the node says it cannot use the files")
        assert new_client_sees(node, ca[0]) == serial_of(second[0])
        assert healthy(before)

        install(third[1], key)  # the renewal completes: taken at a later look
        wait_until(lambda: new_client_sees(node, ca[0]) == serial_of(third[0]),
                   TAKEN_WITHIN_S, "a new client sees the completed renewal")
        assert healthy(before)
        before.close()
    log = node.log_path.read_text()
    later = node.log_path.read_bytes()[offset:].decode()
    assert later.count("tls files not reloaded") == 1, later  # once, though looked again
    for pem in (first[1], second[1], third[1]):
        body = [line for line in pem.read_text().splitlines() if not line.startswith("-----")]
        assert not any(part in log for part in body)


def rotating_cas(tmp_path: Path) -> tuple[Path, tuple[Path, Path], tuple[Path, Path], Path,
                                         Path]:
    """A CA rotation's files: the folder of certificates, the old CA and the new (each its
    certificate and key), a bundle trusting both, and a config file that looks at TLS
    files often and redials soon."""
    certs = tmp_path / "certs"
    certs.mkdir()
    old_ca, new_ca = make_ca(certs, "old-ca"), make_ca(certs, "new-ca")
    bundle = certs / "bundle.pem"
    bundle.write_bytes(old_ca[0].read_bytes() + new_ca[0].read_bytes())
    config = tmp_path / "clawsync.toml"
    config.write_text(f"[limits]\ntls_files_check_interval_s = {CHECK_INTERVAL_S}\n"
                      "[sync]\nbackoff_base_s = 0.2\nbackoff_max_s = 0.5\n")
    return certs, old_ca, new_ca, bundle, config


def test_a_rotated_ca_file_is_dialed_with_without_a_restart(tmp_path: Path) -> None:
    """The dialing side: b trusts the old CA alone, and a's certificate is of the new one,
    so b's dials fail; once b's CA file holds both, b's next dial links, no restart, and
    b asks a for its members with the new CA too: it learns c there and links with it."""
    certs, old_ca, new_ca, bundle, config = rotating_cas(tmp_path)
    a_cert, b_cert = make_cert(certs, "a", new_ca), make_cert(certs, "b", old_ca)
    b_trusts = tmp_path / "b-ca.pem"
    install(old_ca[0], b_trusts)
    with Cluster(tmp_path) as cluster:
        a = cluster.add(NodeProcess(tmp_path, name="a", tls_ca=bundle, extra_args=[
            *serve_args(secret=None), "--config", str(config), "--tls-cert", str(a_cert[0]),
            "--tls-key", str(a_cert[1]), "--tls-ca", str(bundle)]))
        c_cert = make_cert(certs, "c", new_ca)
        c = NodeProcess(tmp_path, name="c", tls_ca=bundle)
        c.extra_args = [
            *serve_args([a.url], secret=None, advertise_url=c.url), "--config", str(config),
            "--tls-cert", str(c_cert[0]), "--tls-key", str(c_cert[1]), "--tls-ca", str(bundle)]
        cluster.add(c)
        b = cluster.add(NodeProcess(tmp_path, name="b", tls_ca=bundle, extra_args=[
            *serve_args([a.url], secret=None), "--config", str(config),
            "--tls-cert", str(b_cert[0]), "--tls-key", str(b_cert[1]),
            "--tls-ca", str(b_trusts), "--members-interval", "0.5"]))
        wait_until(lambda: "certificate did not verify" in b.log_path.read_text(), TAKEN_WITHIN_S,
                   "b cannot verify a's certificate")
        from_a = {e["id"] for e in append(a, "rotated", [message("from a")])}

        install(bundle, b_trusts)
        wait_until(lambda: any(row["state"] == "up" for row in peer_rows(b)), TAKEN_WITHIN_S,
                   "b links with a once it trusts the new CA")
        assert wait_converged([a, b], must_hold=from_a) == from_a
        # c's address is only in a's member list: b asked for it with the new CA.
        wait_until(lambda: any(row["url"] == c.url and row["state"] == "up"
                               for row in peer_rows(b)), TAKEN_WITHIN_S,
                   "b learns c from a's members and links with it")


def test_a_rotated_ca_file_lets_in_a_client_certificate_of_the_new_ca(tmp_path: Path) -> None:
    """The accepting side: a trusts the old CA alone, and b's certificate is of the new
    one, so a turns b's dials away in the handshake; once a's CA file holds both, a lets
    b's next dial in on its certificate, no restart."""
    certs, old_ca, new_ca, bundle, config = rotating_cas(tmp_path)
    a_cert, b_cert = make_cert(certs, "a", old_ca), make_cert(certs, "b", new_ca)
    a_trusts = tmp_path / "a-ca.pem"
    install(old_ca[0], a_trusts)
    with Cluster(tmp_path) as cluster:
        a = cluster.add(NodeProcess(tmp_path, name="a", tls_ca=bundle, extra_args=[
            *serve_args(secret=None), "--config", str(config), "--tls-cert", str(a_cert[0]),
            "--tls-key", str(a_cert[1]), "--tls-ca", str(a_trusts)]))
        b = cluster.add(NodeProcess(tmp_path, name="b", tls_ca=bundle, extra_args=[
            *serve_args([a.url], secret=None), "--config", str(config),
            "--tls-cert", str(b_cert[0]), "--tls-key", str(b_cert[1]),
            "--tls-ca", str(bundle)]))
        wait_until(lambda: "peer link down" in b.log_path.read_text(), TAKEN_WITHIN_S,
                   "a turns b's certificate away")
        assert not peer_rows(a)
        from_b = {e["id"] for e in append(b, "rotated", [message("from b")])}

        install(bundle, a_trusts)
        wait_until(lambda: any(row["direction"] == "in" and row["state"] == "up"
                               for row in peer_rows(a)), TAKEN_WITHIN_S,
                   "a lets b in once it trusts the new CA")
        assert wait_converged([a, b], must_hold=from_b) == from_b


def served_live(tmp_path: Path, name: str, days: float) -> tuple[
        tuple[Path, Path], tuple[Path, Path], Path, Path]:
    """A CA, and a certificate of ``days`` it signs, installed as the node's files: the
    CA, the certificate and key made, and the node's certificate and key files."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "ca")
    made = make_cert_expiring(certs, name, ca, days)
    return ca, made, *live_files(tmp_path, *made)


def test_a_certificate_expiring_soon_is_warned_of_once_and_is_a_metric(
        tmp_path: Path) -> None:
    ca, soon, cert, key = served_live(tmp_path, "soon", days=3)
    later = make_cert_expiring(soon[0].parent, "later", ca, days=90)
    config = tmp_path / "clawsync.toml"
    config.write_text(LOOKS)
    with NodeProcess(tmp_path, tls_ca=ca[0], extra_args=[
            "--config", str(config), "--tls-cert", str(cert), "--tls-key", str(key),
            "--tls-ca", str(ca[0])]) as node:
        wait_until(lambda: "tls certificate expires soon" in node.log_path.read_text(),
                   TAKEN_WITHIN_S, "the node warns of the certificate it serves")
        assert expiry_served(node, ca[0]) == expires(soon[0])

        install(later[1], key)
        install(later[0], cert)
        wait_until(lambda: new_client_sees(node, ca[0]) == serial_of(later[0]),
                   TAKEN_WITHIN_S, "a new client sees the renewed certificate")
        assert expiry_served(node, ca[0]) == expires(later[0])
    warned = [line for line in node.log_path.read_text().splitlines()
              if "tls certificate expires soon" in line]
    assert len(warned) == 1, warned  # at start, not again at each look
    soon_expires = x509.load_pem_x509_certificate(soon[0].read_bytes()).not_valid_after_utc
    assert str(cert) in warned[0] and soon_expires.isoformat() in warned[0]
    body = [line for line in soon[1].read_text().splitlines() if not line.startswith("-----")]
    assert not any(part in warned[0] for part in body)


def test_a_renewal_written_certificate_first_is_taken_without_a_warning(
        tmp_path: Path) -> None:
    """The certificate written, a look finds it with the old key; the key written after:
    the pair is taken, and no warning was logged for the look between."""
    ca, _, cert, key = served_live(tmp_path, "first", days=90)
    second = make_cert(ca[0].parent, "second", ca)
    config = tmp_path / "clawsync.toml"
    # Settling for long: the key is surely written within it.
    config.write_text(f"[limits]\ntls_files_check_interval_s = {CHECK_INTERVAL_S}\n"
                      "tls_files_settle_s = 60\n")
    with NodeProcess(tmp_path, tls_ca=ca[0], extra_args=[
            "--config", str(config), "--tls-cert", str(cert), "--tls-key", str(key),
            "--tls-ca", str(ca[0])]) as node:
        install(second[0], cert)
        wait_until(lambda: "tls files settling" in node.log_path.read_text(),
                   TAKEN_WITHIN_S, "a look finds the new certificate with the old key")
        install(second[1], key)
        wait_until(lambda: new_client_sees(node, ca[0]) == serial_of(second[0]),
                   TAKEN_WITHIN_S, "a new client sees the renewed certificate")
    log = node.log_path.read_text()
    assert "tls files reloaded" in log
    assert "tls files not reloaded" not in log
