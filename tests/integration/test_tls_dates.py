"""The dates of a running node's TLS certificates (``node.peers.tls_expiry``), with a
real node process and real certificates: an expired certificate says how long ago in
words; one not valid yet is warned of; files whose dates cannot be read are said of once
per content; the CA and the intermediates served expiring soon are warned of with lines
of their own, and are samples of the expiry metric."""

from __future__ import annotations

import json
import re
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from node.peers.tls_expiry import TLS_CA_LINES_MAX
from node.peers.tls_pem import TLS_FILE_BYTES_MAX
from tests.support.certs import (
    bundle,
    expires,
    install,
    long_length_form,
    make_ca,
    make_ca_expiring,
    make_cert_expiring,
    openssl,
    sign_again,
    trusted_form,
)
from tests.support.cluster import wait_until
from tests.support.processes import NodeProcess
from tests.support.tls_files import live_files

pytestmark = pytest.mark.integration

#: Seconds between the node's looks at its files: short, so that the test waits little.
LOOKS = "[limits]\ntls_files_check_interval_s = 0.2\ntls_files_settle_s = 0.2\n"
#: Seconds the test waits for the node to log what it should (many looks).
SAID_WITHIN_S = 30.0


class OutOfDates(NodeProcess):
    """A node whose certificate peers refuse (expired, or not valid yet): the test's
    requests take it without a look at its dates or name, to tell when it started."""

    def ssl_context(self) -> ssl.SSLContext | None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context


def tls_node(tmp_path: Path, cert: Path, key: Path, ca: Path,
             kind: type[NodeProcess] = NodeProcess) -> NodeProcess:
    """A node serving ``cert`` with ``key``, trusting ``ca``, logging JSON lines."""
    config = tmp_path / "clawsync.toml"
    config.write_text(LOOKS)
    return kind(tmp_path, tls_ca=ca, extra_args=[
        "--config", str(config), "--log-format", "json", "--tls-cert", str(cert),
        "--tls-key", str(key), "--tls-ca", str(ca)])


def said(node: NodeProcess, event: str) -> list[dict[str, Any]]:
    """The node's log lines of ``event``."""
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    return [line for line in lines if line["event"] == event]


def test_an_expired_certificate_says_how_long_ago_in_words(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "ca")
    cert, key = make_cert_expiring(tmp_path, "expired", ca, days=-3 / (24 * 60),
                                   begins_days=-1.0)
    with tls_node(tmp_path, cert, key, ca[0], OutOfDates) as node:
        wait_until(lambda: said(node, "tls certificate expired"), SAID_WITHIN_S,
                   "the node says its certificate has expired")
    [expired] = said(node, "tls certificate expired")
    assert "days_left" not in expired and "-0.0" not in json.dumps(expired), expired
    assert re.fullmatch(r"[34] minutes", expired["expired_for"]), expired
    assert expired["level"] == "error" and expired["certificate"] == "served"


def test_a_certificate_not_valid_yet_is_warned_of(tmp_path: Path) -> None:
    """At start: a warning, once (the looks after say nothing more of it). A renewal to
    another not valid yet is not taken, and said so."""
    ca = make_ca(tmp_path, "ca")
    early = make_cert_expiring(tmp_path, "early", ca, days=90, begins_days=1.0)
    cert, key = live_files(tmp_path, *early)
    with tls_node(tmp_path, cert, key, ca[0], OutOfDates) as node:
        wait_until(lambda: said(node, "tls certificate not valid yet"), SAID_WITHIN_S,
                   "the node warns that its certificate is not valid yet")
        later = make_cert_expiring(tmp_path, "later", ca, days=90, begins_days=2.0)
        install(later[1], key)
        install(later[0], cert)
        wait_until(lambda: said(node, "tls files not reloaded"), SAID_WITHIN_S,
                   "the node does not take a renewal not valid yet")
    [warned] = said(node, "tls certificate not valid yet")
    begins = x509.load_pem_x509_certificate(early[0].read_bytes()).not_valid_before_utc
    assert warned["level"] == "warning" and warned["certificate"] == "served"
    # As the log writes every time (its own timestamp too): with Z, not +00:00.
    assert warned["valid_from"] == begins.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert warned["path"] == str(cert)
    [refused] = said(node, "tls files not reloaded")
    assert "is not valid before" in refused["error"]


def test_each_certificate_whose_dates_cannot_be_read_is_said_of(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "ca")
    first, second = (make_cert_expiring(tmp_path, name, ca, days=90)
                     for name in ("first", "second"))
    cert, key = live_files(tmp_path, long_length_form(first[0], tmp_path / "t1.pem"),
                           first[1])
    with tls_node(tmp_path, cert, key, ca[0]) as node:
        wait_until(lambda: said(node, "tls certificate expiry unknown"), SAID_WITHIN_S,
                   "the node says it cannot read the dates")
        install(second[1], key)
        install(long_length_form(second[0], tmp_path / "t2.pem"), cert)
        wait_until(lambda: said(node, "tls files reloaded"), SAID_WITHIN_S,
                   "the node takes the second certificate")
        wait_until(lambda: len(said(node, "tls certificate expiry unknown")) == 2,
                   SAID_WITHIN_S, "the node says it cannot read the second's dates either")
    assert all(line["path"] == str(cert) for line in said(node, "tls certificate expiry unknown"))


def expiry_samples(node: NodeProcess) -> dict[str, float]:
    """The node's ``clawsync_tls_certificate_expiry_timestamp_seconds``, by certificate."""
    with urllib.request.urlopen(node.url + "/metrics", timeout=10,
                                context=node.ssl_context()) as response:
        text = response.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return {sample.labels["certificate"]: sample.value
            for sample in families["clawsync_tls_certificate_expiry_timestamp_seconds"].samples}


def test_the_ca_and_an_intermediate_expiring_soon_are_warned_of(tmp_path: Path) -> None:
    """The leaf lasts 90 days, the intermediate that signs it 5, the CA 3: each expiring
    within the bound is warned of with its own line, and is a sample of the metric."""
    root = make_ca_expiring(tmp_path, "root", days=3)
    middle = make_ca_expiring(tmp_path, "middle", days=5, signer=root)
    leaf = make_cert_expiring(tmp_path, "leaf", middle, days=90)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(leaf[0].read_bytes() + middle[0].read_bytes())
    with tls_node(tmp_path, chain, leaf[1], root[0]) as node:
        wait_until(lambda: len(said(node, "tls certificate expires soon")) == 2, SAID_WITHIN_S,
                   "the node warns of its CA and intermediate")
        assert expiry_samples(node) == {"served": expires(leaf[0]),
                                        "intermediate": expires(middle[0]),
                                        "ca": expires(root[0])}
    warned = {line["certificate"]: line for line in said(node, "tls certificate expires soon")}
    assert set(warned) == {"ca", "intermediate"}
    assert warned["ca"]["path"] == str(root[0]) and warned["intermediate"]["path"] == str(chain)
    assert 2.9 < warned["ca"]["days_left"] <= 3 and 4.9 < warned["intermediate"]["days_left"] <= 5
    assert warned["ca"]["certificate_expires"] == x509.load_pem_x509_certificate(
        root[0].read_bytes()).not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def tls_node_of(tmp_path: Path, cert: Path, key: Path, ca: Path, trusted: Path,
                kind: type[NodeProcess] = NodeProcess) -> NodeProcess:
    """A node serving ``cert`` with ``key``, with ``ca`` as its ``--tls-ca``; the test's
    requests trust ``trusted`` alone (a bundle of CAs of one name would confuse them)."""
    config = tmp_path / "clawsync.toml"
    config.write_text(LOOKS)
    return kind(tmp_path, tls_ca=trusted, extra_args=[
        "--config", str(config), "--log-format", "json", "--tls-cert", str(cert),
        "--tls-key", str(key), "--tls-ca", str(ca)])


def test_other_cas_of_a_bundle_are_warned_of_a_few_lines_a_look_and_not_sampled(
        tmp_path: Path) -> None:
    """A bundle of old roots, expired, and the node's CA last: the expired ones are
    warnings (not errors), ``TLS_CA_LINES_MAX`` lines, then one counting the rest; the
    ``ca`` sample is the CA that issued the node's certificate, not the soonest of the
    file, nor a CA of the same name and another key (lasting longer)."""
    ca = make_ca(tmp_path, "ca")
    leaf = make_cert_expiring(tmp_path, "leaf", ca, days=90)
    old = [make_ca_expiring(tmp_path, f"old{n}", days=-1 - n, begins_days=-400)[0]
           for n in range(TLS_CA_LINES_MAX + 3)]
    (tmp_path / "other").mkdir()
    namesake = make_ca_expiring(tmp_path / "other", "ca", days=60)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "negative.key", "-out", "negative.pem", "-days", "300",
            "-subj", "/CN=negative", "-set_serial", "-5", cwd=tmp_path)
    cas = bundle(tmp_path / "bundle.pem", *old, tmp_path / "negative.pem", namesake[0],
                 ca[0])
    with tls_node_of(tmp_path, *leaf, cas, ca[0]) as node:
        wait_until(lambda: said(node, "tls certificate lines left out"), SAID_WITHIN_S,
                   "the node counts the lines it left out")
        assert expiry_samples(node) == {"served": expires(leaf[0]), "ca": expires(ca[0])}
        later_looks(node, tmp_path, cas)
    expired = said(node, "tls certificate expired")
    assert len(expired) == TLS_CA_LINES_MAX
    assert all(line["level"] == "warning" and line["certificate"] == "other_ca"
               and line["path"] == str(cas) for line in expired), expired
    [left_out] = said(node, "tls certificate lines left out")
    assert left_out["count"] == 3 and left_out["lines_max"] == TLS_CA_LINES_MAX
    assert not said(node, "tls certificate issuer not found")
    # A root of a serial not positive (system bundles hold some) is read without a word.
    assert "positive" not in node.log_path.read_text()


def later_looks(node: NodeProcess, tmp_path: Path, ca: Path) -> None:
    """Wait until the node has looked at its files again, twice, after what it said:
    ``ca`` written anew (the same content) twice, each taken; the second is taken at a
    look after the one that took the first had said all it would."""
    for n in (1, 2):
        install(bundle(tmp_path / f"again{n}.pem", ca), ca)
        wait_until(lambda n=n: len(said(node, "tls files reloaded")) == n, SAID_WITHIN_S,
                   "the node takes its files written anew")


def test_no_ca_of_the_bundle_having_issued_the_chain_is_said_once(tmp_path: Path) -> None:
    """``--tls-ca`` holds a CA of the issuer's name and another key: not the issuer. Said
    once, and again by no renewal the same CA signs; no ``ca`` sample."""
    ca = make_ca(tmp_path, "ca")
    cert, key = live_files(tmp_path, *make_cert_expiring(tmp_path, "first", ca, days=90))
    (tmp_path / "other").mkdir()
    namesake = make_ca_expiring(tmp_path / "other", "ca", days=60)
    with tls_node_of(tmp_path, cert, key, namesake[0], ca[0]) as node:
        wait_until(lambda: said(node, "tls certificate issuer not found"), SAID_WITHIN_S,
                   "the node says no CA of its bundle issued its certificate")
        second = make_cert_expiring(tmp_path, "second", ca, days=80)
        install(second[1], key)
        install(second[0], cert)
        wait_until(lambda: said(node, "tls files reloaded"), SAID_WITHIN_S,
                   "the node takes the renewal")
        assert expiry_samples(node) == {"served": expires(second[0])}
    [not_found] = said(node, "tls certificate issuer not found")
    assert not_found["path"] == str(namesake[0]) and not_found["issuer"] == "CN=ca"


def test_a_trusted_leaf_and_its_intermediate_keep_their_places(tmp_path: Path) -> None:
    """``--tls-cert`` is a leaf in trusted form, then its intermediate; ``--tls-ca`` a CA
    in trusted form, one of a length OpenSSL reads and ``cryptography`` refuses, then the
    root. The leaf is served (its dates read from the certificate the trusted form
    begins with), not the intermediate; the block whose dates cannot be read is said of
    with its place, and the others of its file are read."""
    root = make_ca_expiring(tmp_path, "root", days=30)
    middle = make_ca_expiring(tmp_path, "middle", days=5, signer=root)
    leaf = make_cert_expiring(tmp_path, "leaf", middle, days=90)
    other = make_ca_expiring(tmp_path, "other", days=40)
    chain = bundle(tmp_path / "chain.pem", trusted_form(leaf[0], tmp_path / "tleaf.pem"),
                   middle[0])
    cas = bundle(tmp_path / "cas.pem", trusted_form(other[0], tmp_path / "tother.pem"),
                 long_length_form(other[0], tmp_path / "lother.pem"), root[0])
    with tls_node_of(tmp_path, chain, leaf[1], cas, root[0]) as node:
        wait_until(lambda: said(node, "tls certificate expiry unknown"),
                   SAID_WITHIN_S, "the node says which block it cannot read")
        wait_until(lambda: said(node, "tls certificate expires soon"), SAID_WITHIN_S,
                   "the node warns of the intermediate")
        assert expiry_samples(node) == {"served": expires(leaf[0]),
                                        "intermediate": expires(middle[0]),
                                        "ca": expires(root[0])}
    unknown = [(line["certificate"], line["index"], line["path"])
               for line in said(node, "tls certificate expiry unknown")]
    assert unknown == [("other_ca", 1, str(cas))]
    [soon] = said(node, "tls certificate expires soon")
    assert soon["certificate"] == "intermediate"
    assert soon["certificate_serial"] == format(
        x509.load_pem_x509_certificate(middle[0].read_bytes()).serial_number, "x")


def test_a_renewal_served_with_an_expired_intermediate_is_not_taken(tmp_path: Path) -> None:
    root = make_ca_expiring(tmp_path, "root", days=30)
    middle = make_ca_expiring(tmp_path, "middle", days=20, signer=root)
    leaf = make_cert_expiring(tmp_path, "leaf", middle, days=90)
    cert, key = live_files(tmp_path, bundle(tmp_path / "chain.pem", leaf[0], middle[0]),
                           leaf[1])
    with tls_node_of(tmp_path, cert, key, root[0], root[0]) as node:
        stale = make_ca_expiring(tmp_path, "stale", days=-1, begins_days=-30, signer=root)
        renewed = make_cert_expiring(tmp_path, "renewed", stale, days=90)
        install(renewed[1], key)
        install(bundle(tmp_path / "chain2.pem", renewed[0], stale[0]), cert)
        wait_until(lambda: said(node, "tls files not reloaded"), SAID_WITHIN_S,
                   "the node does not take a renewal whose intermediate expired")
        assert expiry_samples(node)["served"] == expires(leaf[0])
    [refused] = said(node, "tls files not reloaded")
    assert "intermediate 1 of the file: the certificate expired at" in refused["error"]
    assert not said(node, "tls files reloaded")


def cross_signed_chain(tmp_path: Path, leaf: tuple[Path, Path], middle: tuple[Path, Path],
                       root: tuple[Path, Path], old: tuple[Path, Path], name: str) -> Path:
    """A fullchain: ``leaf``, ``middle`` (``root`` signed it), then ``root``'s name and
    key cross-signed by ``old``, expired 5 days ago: peers trusting ``root`` build leaf,
    middle, root, and never use the cross-sign (Let's Encrypt's DST Root X3 was one)."""
    cross = sign_again(tmp_path, f"cross-{name}", root, old, days=-5, begins_days=-2000)
    return bundle(tmp_path / f"{name}.pem", leaf[0], middle[0], cross)


@dataclass
class CrossSignedFiles:
    """A root (``old`` cross-signed it, expired), ``middle`` it signed, and two leaves
    ``middle`` signed: the first's ``cross_signed_chain`` live at ``cert`` and ``key``,
    the second's installed there by ``renew``."""

    tmp_path: Path
    old: tuple[Path, Path]
    root: tuple[Path, Path]
    middle: tuple[Path, Path]
    second: tuple[Path, Path]
    cert: Path
    key: Path

    def renew(self) -> None:
        install(self.second[1], self.key)
        install(cross_signed_chain(self.tmp_path, self.second, self.middle, self.root,
                                   self.old, "chain2"), self.cert)


def cross_signed_files(tmp_path: Path) -> CrossSignedFiles:
    old = make_ca_expiring(tmp_path, "oldroot", days=-10, begins_days=-4000)
    root = make_ca_expiring(tmp_path, "root", days=3000)
    middle = make_ca_expiring(tmp_path, "middle", days=1000, signer=root)
    first, second = (make_cert_expiring(tmp_path, name, middle, days=days)
                     for name, days in (("first", 60), ("second", 90)))
    cert, key = live_files(tmp_path, cross_signed_chain(tmp_path, first, middle, root, old,
                                                        "chain1"), first[1])
    return CrossSignedFiles(tmp_path, old, root, middle, second, cert, key)


def test_an_expired_cross_sign_off_the_chain_peers_build_is_not_judged(
        tmp_path: Path) -> None:
    """Started with a fullchain ending with an expired cross-sign: no error line, no
    issuer not found, the ``ca`` sample the root; a renewal to another such chain is
    taken."""
    files = cross_signed_files(tmp_path)
    root = files.root
    with tls_node_of(tmp_path, files.cert, files.key, root[0], root[0]) as node:
        files.renew()
        wait_until(lambda: said(node, "tls files reloaded"), SAID_WITHIN_S,
                   "the node takes the renewal")
        later_looks(node, tmp_path, root[0])
        assert expiry_samples(node) == {"served": expires(files.second[0]),
                                        "intermediate": expires(files.middle[0]),
                                        "ca": expires(root[0])}
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    assert not [line for line in lines if line["level"] == "error"], lines
    assert not said(node, "tls certificate expired")
    assert not said(node, "tls certificate issuer not found")
    assert not said(node, "tls files not reloaded")


def test_without_a_ca_a_renewal_is_not_refused_for_its_intermediates(
        tmp_path: Path) -> None:
    """No ``--tls-ca``: which chain peers build is their trust store's, so of a
    fullchain ending with an expired cross-sign (which they stop before) only the first
    intermediate is judged: no error line, no sample of the cross-sign, and a renewal to
    another such chain is taken."""
    files = cross_signed_files(tmp_path)
    config = tmp_path / "clawsync.toml"
    config.write_text(LOOKS)
    with NodeProcess(tmp_path, tls_ca=files.root[0], extra_args=[
            "--config", str(config), "--log-format", "json", "--tls-cert", str(files.cert),
            "--tls-key", str(files.key)]) as node:
        files.renew()
        wait_until(lambda: said(node, "tls files reloaded"), SAID_WITHIN_S,
                   "the node takes the renewal")
        assert expiry_samples(node) == {"served": expires(files.second[0]),
                                        "intermediate": expires(files.middle[0])}
    lines = [json.loads(line) for line in node.log_path.read_text().splitlines()
             if line.startswith("{")]
    assert not [line for line in lines if line["level"] == "error"], lines
    assert not said(node, "tls files not reloaded")


def test_a_ca_issued_again_under_its_name_and_key_is_the_ca_once(tmp_path: Path) -> None:
    """``--tls-ca`` holds a CA's old copy, expired, and the copy issued again (same name
    and key, new dates): the old one is an other CA, warned of; no error line."""
    ca = make_ca_expiring(tmp_path, "ca", days=-2, begins_days=-400)
    again = sign_again(tmp_path, "ca-again", ca, ca, days=700)
    leaf = make_cert_expiring(tmp_path, "leaf", (again, ca[1]), days=90)
    cas = bundle(tmp_path / "bundle.pem", ca[0], again)
    with tls_node_of(tmp_path, *leaf, cas, again) as node:
        wait_until(lambda: said(node, "tls certificate expired"), SAID_WITHIN_S,
                   "the node warns of the old copy")
        assert expiry_samples(node) == {"served": expires(leaf[0]), "ca": expires(again)}
    [expired] = said(node, "tls certificate expired")
    assert expired["level"] == "warning" and expired["certificate"] == "other_ca", expired


def test_a_ca_rotated_out_is_not_warned_of_again(tmp_path: Path) -> None:
    """``--tls-ca`` holds the old CA, expiring soon, and the new one; the node's
    certificate is renewed by the new: the old one, warned of as the ``ca``, is not
    warned of again as another CA."""
    old = make_ca_expiring(tmp_path, "oldca", days=10)
    new = make_ca_expiring(tmp_path, "newca", days=700)
    cas = bundle(tmp_path / "bundle.pem", old[0], new[0])
    cert, key = live_files(tmp_path, *make_cert_expiring(tmp_path, "first", old, days=90))
    with tls_node_of(tmp_path, cert, key, cas, cas) as node:
        wait_until(lambda: said(node, "tls certificate expires soon"), SAID_WITHIN_S,
                   "the node warns of its CA")
        renewed = make_cert_expiring(tmp_path, "renewed", new, days=90)
        install(renewed[1], key)
        install(renewed[0], cert)
        wait_until(lambda: said(node, "tls files reloaded"), SAID_WITHIN_S,
                   "the node takes the renewal")
        later_looks(node, tmp_path, cas)
        assert expiry_samples(node)["ca"] == expires(new[0])
    [soon] = said(node, "tls certificate expires soon")
    assert soon["certificate"] == "ca"


def test_a_certificate_file_over_the_bound_is_not_read_for_its_dates(
        tmp_path: Path) -> None:
    """A ``--tls-cert`` of the leaf then comment lines, over ``TLS_FILE_BYTES_MAX``:
    OpenSSL serves the leaf; the node says once the file is too large, and has no
    sample of it."""
    ca = make_ca(tmp_path, "ca")
    leaf = make_cert_expiring(tmp_path, "leaf", ca, days=90)
    padded = tmp_path / "padded.pem"
    padded.write_bytes(leaf[0].read_bytes() + b"# padding\n" * (TLS_FILE_BYTES_MAX // 10 + 1))
    with tls_node(tmp_path, padded, leaf[1], ca[0]) as node:
        wait_until(lambda: said(node, "tls certificate file too large"), SAID_WITHIN_S,
                   "the node says the file is too large")
        later_looks(node, tmp_path, ca[0])
        assert expiry_samples(node) == {}
    [large] = said(node, "tls certificate file too large")
    assert large["path"] == str(padded) and large["bytes_max"] == TLS_FILE_BYTES_MAX
    assert large["level"] == "warning"
