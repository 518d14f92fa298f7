"""What a node says of a dial that fails, with real node processes: the address and
the reason, as ``/v1/peers`` shows it in ``failure`` (``node.peers.transport._why``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.certs import make_ca, make_cert
from tests.support.cluster import wait_until
from tests.support.processes import NodeProcess

#: Seconds a node gets to try its dial and say why it failed.
DEADLINE_S = 30.0


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
            said = wait_until(lambda: failure(node, address), DEADLINE_S,
                              "the dial failed and says why")
    # OpenSSL's reason code, e.g. WRONG_VERSION_NUMBER (its words differ by version).
    assert re.fullmatch(rf"cannot reach {re.escape(address)}: TLS failed \([A-Z_]+\)",
                        said), said
