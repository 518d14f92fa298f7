"""What a node says of a dial that fails, with real node processes: the address and
the reason, as ``/v1/peers`` shows it in ``failure`` (``node.peers.dial_words.why``);
and of a peer that refuses to list its members: its status and what its answer says
(``node.peers.dial_words.refusal_text``)."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.certs import make_ca, make_cert
from tests.support.cluster import SECRET, wait_until
from tests.support.processes import CLI_TIMEOUT_S, NodeProcess, child_env, cli_args, run_cli
from tests.support.waits import PROCESS_DEADLINE_S


def failure(node: NodeProcess, url: str) -> str | None:
    """The ``failure`` of ``node``'s dial of ``url``, once it backs off."""
    rows = [row for row in node.get("/v1/peers")["peers"] if row["url"] == url]
    return rows[0]["failure"] if rows and rows[0]["state"] == "backoff" else None


@pytest.mark.parametrize("dialer", ["plain", "mutual_tls"])
def test_https_dialed_at_a_plain_http_node_says_tls_failed(tmp_path: Path,
                                                          dialer: str) -> None:
    """An https:// address where a node serves plain HTTP: the TLS handshake fails, and
    the dial says so with OpenSSL's reason, whether the dialer trusts the system's CAs
    or only its cluster's (``--tls-ca``), not aiohttp's words or "ssl:default"."""
    with NodeProcess(tmp_path, name="plain") as plain:
        address = f"https://127.0.0.1:{plain.port}"
        args = ["--peer", address]
        ca_path = None
        if dialer == "mutual_tls":
            certs = tmp_path / "certs"
            certs.mkdir()
            ca = make_ca(certs, "cluster-ca")
            cert = make_cert(certs, "dialer", ca)
            ca_path = ca[0]
            args += ["--tls-cert", str(cert[0]), "--tls-key", str(cert[1]),
                     "--tls-ca", str(ca_path)]
        with NodeProcess(tmp_path, name="dialer", extra_args=args, tls_ca=ca_path) as node:
            said = wait_until(lambda: failure(node, address), PROCESS_DEADLINE_S,
                              "the dial failed and says why")
    # OpenSSL's reason code, e.g. WRONG_VERSION_NUMBER (its words differ by version).
    assert re.fullmatch(rf"cannot reach {re.escape(address)}: TLS failed \([A-Z_]+\)",
                        said), said


def tls_args(cert: tuple[Path, Path], ca: Path) -> list[str]:
    """A node's options to serve HTTPS with ``cert`` and trust ``ca`` for its peers."""
    return ["--tls-cert", str(cert[0]), "--tls-key", str(cert[1]), "--tls-ca", str(ca)]


def log_lines(node: NodeProcess, event: str) -> list[dict[str, object]]:
    """``node``'s JSON log lines of ``event``; read once it stopped, as a line counted
    in ``/metrics`` may not be written yet while it runs."""
    return [line for line in map(json.loads, (text for text in
                                              node.log_path.read_text().splitlines()
                                              if text.startswith("{")))
            if line.get("event") == event]


def dial_down_reasons(node: NodeProcess, url: str) -> list[str]:
    """The reasons of ``node``'s ``peer dial failed`` log lines (JSON) of its dials of
    ``url`` (a dial that never linked; ``peer link down`` is for links that were up)."""
    return [str(line["reason"]) for line in log_lines(node, "peer dial failed")
            if line.get("peer") == url]


def test_a_peer_refusing_the_dialers_certificate_says_so(tmp_path: Path) -> None:
    """The dialer trusts the peer's CA, but its own certificate is of another CA: the
    peer refuses it in the TLS handshake, with OpenSSL's alert, and the dialer's log
    line and its row in ``clawsync status`` say so, and that its certificate may not be
    signed by a CA the peer trusts, not aiohttp's "Server disconnected" (in TLS 1.3 the
    alert comes after the dialer's side of the handshake ended: the peer must send it)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, other_ca = make_ca(certs, "cluster-ca"), make_ca(certs, "other-ca")
    # The first back-off (30 to 60 s) outlasts clawsync status: its row is still in
    # backoff, not connecting again as it would be after the default's 0.5 to 1 s.
    config = tmp_path / "slow-redials.toml"
    config.write_text("[sync]\nbackoff_base_s = 60\n")
    with NodeProcess(tmp_path, name="peer", tls_ca=ca[0],
                     extra_args=tls_args(make_cert(certs, "peer", ca), ca[0])) as peer, \
            NodeProcess(tmp_path, name="dialer", tls_ca=other_ca[0], extra_args=[
                *tls_args(make_cert(certs, "dialer", other_ca), ca[0]),
                "--peer", peer.url, "--log-format", "json",
                "--config", str(config)]) as dialer:
        said = wait_until(lambda: failure(dialer, peer.url), PROCESS_DEADLINE_S,
                          "the dial failed and says why")
        status = subprocess.run(cli_args(dialer, "status"), capture_output=True,
                                text=True, timeout=CLI_TIMEOUT_S, check=False,
                                env=child_env({"SSL_CERT_FILE": str(other_ca[0])}))
    assert said == (f"cannot reach {peer.url}: it refused the TLS connection "
                    "(TLSV1_ALERT_UNKNOWN_CA): this node's certificate may not be signed "
                    "by a CA the peer trusts")
    assert status.returncode == 0, status.stderr
    assert f"{peer.url}: {said}" in status.stdout.splitlines(), status.stdout
    assert said in dial_down_reasons(dialer, peer.url)


def tls_refused(node: NodeProcess) -> float:
    """How many client certificates ``node`` refused (its ``/metrics``)."""
    context = node.ssl_context()
    with urllib.request.urlopen(node.url + "/metrics", timeout=10, context=context) as answer:
        text = answer.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "clawsync_peer_tls_refused_total")


def test_a_node_refusing_a_dialers_certificate_says_so_once(tmp_path: Path) -> None:
    """A node that refuses a dialer's certificate (of a CA it does not trust) in the TLS
    handshake logs it, with the address and OpenSSL's reason, once for the dials that
    come again and again refused the same way (the rest at debug), and counts each."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, other_ca = make_ca(certs, "cluster-ca"), make_ca(certs, "other-ca")
    config = tmp_path / "fast-redials.toml"
    config.write_text("[sync]\nbackoff_base_s = 0.05\nbackoff_max_s = 0.1\n")
    with NodeProcess(tmp_path, name="peer", tls_ca=ca[0], extra_args=[
            *tls_args(make_cert(certs, "peer", ca), ca[0]), "--log-format", "json"]) as peer, \
            NodeProcess(tmp_path, name="dialer", tls_ca=other_ca[0], extra_args=[
                *tls_args(make_cert(certs, "dialer", other_ca), ca[0]),
                "--peer", peer.url, "--config", str(config)]):
        wait_until(lambda: tls_refused(peer) >= 3 or None, PROCESS_DEADLINE_S,
                   "the peer refused the dialer's certificate three times")
    said = [(line["level"], line["address"], line["reason"])
            for line in log_lines(peer, "peer tls refused")]
    assert said[0] == ("warning", "127.0.0.1", "unable to get local issuer certificate")
    assert [line for line in said[1:] if line[0] != "debug"] == [], said
    assert len(said) >= 3, said


def members_not_listed(node: NodeProcess) -> str | None:
    """The reason of ``node``'s first ``members not listed`` log line (JSON), if any."""
    for line in node.log_path.read_text().splitlines():
        if line.startswith("{") and (said := json.loads(line)).get("event") \
                == "members not listed":
            return str(said["reason"])
    return None


def test_a_peer_refusing_its_member_list_says_why_with_its_status(tmp_path: Path) -> None:
    """The peer links with the node as a member device, but the cluster secret the node
    gives is not its own: asked for its members with it, the peer answers 401, and the
    node says what the peer's JSON error says, not the status alone."""
    with NodeProcess(tmp_path, name="peer",
                     extra_args=["--cluster-secret", "another-cluster-secret"]) as peer, \
            NodeProcess(tmp_path, name="node",
                        extra_args=["--cluster-secret", SECRET, "--peer", peer.url,
                                    "--log-format", "json"]) as node:
        added = run_cli(peer, "devices", "add", node.get("/v1/node")["device_id"],
                        "--name", "node")
        assert added.returncode == 0, (added.stdout, added.stderr)
        said = wait_until(lambda: members_not_listed(node), PROCESS_DEADLINE_S,
                          "the node asked for members and was refused")
    assert said == (f"cannot list members of {peer.url}: it answered HTTP 401: "
                    "peer credentials missing or wrong")
