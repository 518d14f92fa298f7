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
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.support.certs import install, make_ca, make_ca_expiring, make_cert_expiring
from tests.support.cluster import wait_until
from tests.support.processes import NodeProcess

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


def live_files(tmp_path: Path, cert: Path, key: Path) -> tuple[Path, Path]:
    live = tmp_path / "live"
    live.mkdir(exist_ok=True)
    install(cert, live / "cert.pem")
    install(key, live / "key.pem")
    return live / "cert.pem", live / "key.pem"


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
    assert warned["valid_from"] == begins.isoformat() and warned["path"] == str(cert)
    [refused] = said(node, "tls files not reloaded")
    assert "is not valid before" in refused["error"]


def trusted_form(pem: Path, target: Path) -> Path:
    """``pem`` as a ``BEGIN TRUSTED CERTIFICATE`` (OpenSSL serves it; its dates are not
    read), at ``target``."""
    target.write_text(pem.read_text().replace(" CERTIFICATE-----", " TRUSTED CERTIFICATE-----"))
    return target


def test_each_certificate_whose_dates_cannot_be_read_is_said_of(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, "ca")
    first, second = (make_cert_expiring(tmp_path, name, ca, days=90)
                     for name in ("first", "second"))
    cert, key = live_files(tmp_path, trusted_form(first[0], tmp_path / "t1.pem"), first[1])
    with tls_node(tmp_path, cert, key, ca[0]) as node:
        wait_until(lambda: said(node, "tls certificate expiry unknown"), SAID_WITHIN_S,
                   "the node says it cannot read the dates")
        install(second[1], key)
        install(trusted_form(second[0], tmp_path / "t2.pem"), cert)
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


def expires(pem: Path) -> float:
    return x509.load_pem_x509_certificate(pem.read_bytes()).not_valid_after_utc.timestamp()


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
        root[0].read_bytes()).not_valid_after_utc.isoformat()
