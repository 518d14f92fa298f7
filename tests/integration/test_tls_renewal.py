"""A running node takes renewed TLS files without a restart (``node.peers.tls_renewal``),
with a real node process and real certificates: a new client sees the new certificate
while a connection opened before keeps working on the old one; a CA taken out ends the
peer links made under it, and a CA rotated without a gap (deploy/README.md) ends each
node's links once and loses no event; a half-written renewal leaves the old certificate
served, and the node says so once, naming no key material, but not while the pair may
still be settling; a certificate expiring soon is warned of once, and its expiry is a
metric."""

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
    all_events,
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
        wait_until(lambda: "peer dial failed" in b.log_path.read_text(), TAKEN_WITHIN_S,
                   "a turns b's certificate away")
        assert not peer_rows(a)
        from_b = {e["id"] for e in append(b, "rotated", [message("from b")])}

        install(bundle, a_trusts)
        wait_until(lambda: any(row["direction"] == "in" and row["state"] == "up"
                               for row in peer_rows(a)), TAKEN_WITHIN_S,
                   "a lets b in once it trusts the new CA")
        assert wait_converged([a, b], must_hold=from_b) == from_b


def linked_by_certificate(tmp_path: Path, cluster: Cluster) -> tuple[
        NodeProcess, NodeProcess, Path, tuple[Path, Path], tuple[Path, Path]]:
    """a dials b, both with certificates of the old CA and no cluster secret, each given
    a CA file of its own (``ca_file``) and b its certificate and key as a renewal tool
    keeps them (``live/``): a, b, the folder of certificates, the old CA and the new.
    Returned once a's link is up on b and has carried an event of a's."""
    certs, old_ca, new_ca, _, config = rotating_cas(tmp_path)
    a_cert = make_cert(certs, "a", old_ca)
    b_cert, b_key = live_files(tmp_path, *make_cert(certs, "b", old_ca))
    for name in ("a", "b"):
        install(old_ca[0], tmp_path / f"{name}-ca.pem")
    b = cluster.add(NodeProcess(tmp_path, name="b", tls_ca=old_ca[0], extra_args=[
        *serve_args(secret=None), "--config", str(config), "--tls-cert", str(b_cert),
        "--tls-key", str(b_key), "--tls-ca", str(tmp_path / "b-ca.pem")]))
    a = cluster.add(NodeProcess(tmp_path, name="a", tls_ca=old_ca[0], extra_args=[
        *serve_args([b.url], secret=None), "--config", str(config),
        "--tls-cert", str(a_cert[0]), "--tls-key", str(a_cert[1]),
        "--tls-ca", str(tmp_path / "a-ca.pem")]))
    linked = {e["id"] for e in append(a, "linked", [message("from a")])}
    assert linked <= wait_converged([a, b], must_hold=linked)
    return a, b, certs, old_ca, new_ca


def ca_file(node: NodeProcess) -> Path:
    """The ``--tls-ca`` of a node of ``linked_by_certificate``."""
    return node.log_path.parent / f"{node.name}-ca.pem"


def links_in(node: NodeProcess) -> list[str]:
    """The accepted links up on ``node``, by their keys (a new link, a new key)."""
    return [row["link"] for row in peer_rows(node)
            if row["direction"] == "in" and row["state"] == "up"]


def taken(node: NodeProcess, written: list[tuple[Path, Path]]) -> None:
    """Each (source, target) of ``written`` installed, in order, and taken by ``node``."""
    reloads = node.log_path.read_text().count("tls files reloaded")
    for source, target in written:
        install(source, target)
    wait_until(lambda: node.log_path.read_text().count("tls files reloaded") > reloads,
               TAKEN_WITHIN_S, f"{node.name} takes the files written")


@pytest.mark.parametrize(("changed", "ended"), [("b", "accepted_connections"),
                                                ("a", "dialed_links")])
def test_a_changed_ca_file_ends_the_links_made_under_the_old_ca(
        tmp_path: Path, changed: str, ended: str) -> None:
    """The CA file of b (which a's link reached: a showed it a certificate) or of a
    (which dialed: b showed it one) rewritten to the new CA alone, which signed neither
    certificate: that node ends the link at once, no restart, and a's redials fail in
    the handshake, so a's new events no longer reach b. The node says once why, and how
    many links it ended, of which side. An app's connection (no client certificate: it
    gives its token) stays."""
    with Cluster(tmp_path) as cluster:
        a, b, _, old_ca, new_ca = linked_by_certificate(tmp_path, cluster)
        assert links_in(b)
        node = a if changed == "a" else b
        app = connect(node, old_ca[0])

        install(new_ca[0], ca_file(node))
        wait_until(lambda: not links_in(b), TAKEN_WITHIN_S,
                   f"{changed} ends the link once its CA file trusts the new CA alone")
        wait_until(lambda: all(row["state"] != "up" for row in peer_rows(a)),
                   TAKEN_WITHIN_S, "a sees its link down")
        offset = len(a.log_path.read_bytes())
        later = {e["id"] for e in append(a, "later", [message("after the new CA")])}
        # Two dials of a that failed since the event was appended: one at least began
        # after it, and none linked (the same failure again is logged at debug).
        wait_until(lambda: a.log_path.read_bytes()[offset:].count(b"peer dial failed") >= 2,
                   TAKEN_WITHIN_S, "a's redials fail")
        assert not links_in(b)
        assert not later & {e["id"] for e in all_events(b)}
        assert healthy(app)
        app.close()
    said = [line for line in node.log_path.read_text().splitlines()
            if "peer links ended" in line]
    assert len(said) == 1, said
    # b: a's link, and the connection a asks b's members on (kept alive); a: its link.
    assert f"{ended}=0" not in said[0] and str(ca_file(node)) in said[0]


def test_a_renewed_certificate_a_ca_added_or_a_ca_file_written_alike_ends_no_link(
        tmp_path: Path) -> None:
    """b's own certificate and key renewed, then its CA file written anew with the same
    content, then b's and a's CA files given the new CA too (a bundle: the old one is
    trusted still): each is taken, and a's link stays up all along, the same link."""
    with Cluster(tmp_path) as cluster:
        a, b, certs, old_ca, _ = linked_by_certificate(tmp_path, cluster)
        [link] = links_in(b)
        linked_at = len(a.log_path.read_bytes())  # no dial of a's fails from here
        renewed = make_cert(certs, "b-renewed", old_ca)
        live, both = tmp_path / "live", certs / "bundle.pem"
        for node, written in (
                (b, [(renewed[1], live / "key.pem"), (renewed[0], live / "cert.pem")]),
                (b, [(old_ca[0], ca_file(b))]), (b, [(both, ca_file(b))]),
                (a, [(both, ca_file(a))])):
            taken(node, written)
            more = {e["id"] for e in append(a, "renewed", [message("still linked")])}
            assert more <= wait_converged([a, b], must_hold=more)
            assert links_in(b) == [link]
    for node in (a, b):
        assert "peer links ended" not in node.log_path.read_text()
    assert "peer link down" not in a.log_path.read_text()
    assert b"peer dial failed" not in a.log_path.read_bytes()[linked_at:]


def test_a_gapless_ca_rotation_ends_the_links_once_and_loses_no_event(tmp_path: Path) -> None:
    """The rotation deploy/README.md gives, events appended on both nodes all along: both
    CAs in each node's CA file (no link ends), then each node's certificate of the new CA
    (none ends), then the new CA alone: each node ends its links once, they come back,
    and every event appended is held by both nodes, each exactly once."""
    with Cluster(tmp_path) as cluster:
        a, b, certs, _, new_ca = linked_by_certificate(tmp_path, cluster)
        both, live = certs / "bundle.pem", tmp_path / "live"
        for node in (a, b):
            node.tls_ca = both  # the test's own requests: either CA signs the node's
        [link] = links_in(b)
        appended: set[str] = set()

        def appended_on_both(step: str) -> None:
            for node in (a, b):
                appended.update(e["id"] for e in append(node, f"{step}-{node.name}",
                                                        [message(step)]))

        a_new, b_new = make_cert(certs, "a-new", new_ca), make_cert(certs, "b-new", new_ca)
        for step, node, written in (
                ("bundle", b, [(both, ca_file(b))]), ("bundle", a, [(both, ca_file(a))]),
                ("certs", a, [(a_new[1], certs / "a.key"), (a_new[0], certs / "a.pem")]),
                ("certs", b, [(b_new[1], live / "key.pem"), (b_new[0], live / "cert.pem")])):
            taken(node, written)
            appended_on_both(step)
            assert links_in(b) == [link]
        for node in (b, a):
            taken(node, [(new_ca[0], ca_file(node))])
            appended_on_both(f"new-ca-{node.name}")
        wait_until(lambda: bool(links_in(b)), TAKEN_WITHIN_S, "a links again, by the new CA")
        assert links_in(b) != [link]
        appended_on_both("after")
        assert appended <= wait_converged([a, b], must_hold=appended)
        for node in (a, b):
            ids = [event["id"] for event in all_events(node)]
            assert len(ids) == len(set(ids)), node.name
            said = node.log_path.read_text().count("peer links ended")
            assert said == 1, (node.name, said)


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
    # As every time in the log: UTC with Z, not Python's +00:00.
    assert str(cert) in warned[0] \
        and soon_expires.strftime("%Y-%m-%dT%H:%M:%SZ") in warned[0], warned[0]
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
