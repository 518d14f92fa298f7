"""Peers over mutual TLS, with real node processes: with no secret, nodes whose
certificates the cluster CA signed replicate over HTTPS; a node with a certificate from
another CA gets nothing. A node with a CA counts a link as resting on a certificate only
where the peer showed one the CA verified: at a plain http:// address none is asked for,
so a device there that is no member links only at a ``--peer`` address, and is said to.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from crdt.device import device_id, private_key_from_seed, public_bytes
from tests.support.certs import make_ca, make_cert
from tests.support.cluster import (
    Cluster,
    append,
    assert_same_state,
    message,
    peer_rows,
    request,
    serve_args,
    wait_converged,
    wait_until,
)
from tests.support.peer_attack import MEMBERS, ids_of
from tests.support.processes import NodeProcess, run_cli

pytestmark = pytest.mark.integration

# -- mutual TLS ----------------------------------------------------------------------------


def tls_node(tmp_path: Path, name: str, cert: tuple[Path, Path], ca: Path,
             peers: Sequence[str] = (), issuer: Path | None = None) -> NodeProcess:
    """A node serving HTTPS with ``cert`` (signed by ``issuer``, by default ``ca``) that
    trusts ``ca`` for its peers, and no cluster secret."""
    node = NodeProcess(tmp_path, name=name, tls_ca=issuer or ca)
    node.extra_args = [*serve_args(peers, secret=None), "--tls-cert", str(cert[0]),
                       "--tls-key", str(cert[1]), "--tls-ca", str(ca)]
    return node


async def mtls_peer_status(node: NodeProcess, ca: Path,
                           client_cert: tuple[Path, Path] | None) -> int | str:
    """The members status a client gets with ``client_cert`` (or the TLS failure)."""
    context = ssl.create_default_context(cafile=str(ca))
    if client_cert is not None:
        context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(node.url + MEMBERS, ssl=context) as reply:
                return reply.status
        except aiohttp.ClientError as error:
            return type(error).__name__


def test_mutual_tls_without_a_secret(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "cluster-ca")
    rogue_ca = make_ca(certs, "rogue-ca")
    with Cluster(tmp_path) as cluster:
        a = cluster.add(tls_node(tmp_path, "a", make_cert(certs, "a", ca), ca[0]))
        assert a.url.startswith("https://")
        # The rogue trusts the cluster CA (so it can reach a) but holds another CA's cert.
        rogue = cluster.add(tls_node(tmp_path, "rogue", make_cert(certs, "rogue", rogue_ca),
                                     ca[0], peers=[a.url], issuer=rogue_ca[0]))
        b = cluster.add(tls_node(tmp_path, "b", make_cert(certs, "b", ca), ca[0],
                                 peers=[a.url]))
        from_a = {e["id"] for e in append(a, "tls", [message(f"a{n}") for n in range(30)])}
        from_b = {e["id"] for e in append(b, "tls", [message(f"b{n}") for n in range(30)])}
        from_rogue = {e["id"] for e in append(rogue, "tls", [message("from the rogue")])}
        ids = wait_converged([a, b], must_hold=from_a | from_b)
        assert ids == from_a | from_b
        assert_same_state([a, b], ids)

        # The cluster's certificate opens the peer API; none, or the rogue's, does not.
        assert asyncio.run(mtls_peer_status(a, ca[0], (certs / "b.pem", certs / "b.key"))) \
            == 200
        assert asyncio.run(mtls_peer_status(a, ca[0], None)) == 401
        assert asyncio.run(mtls_peer_status(
            a, ca[0], (certs / "rogue.pem", certs / "rogue.key"))) != 200
        # Each failed dial: the first at info, the next (the same failure) at debug.
        wait_until(lambda: rogue.log_path.read_text().count("peer dial failed") >= 2, 30,
                   "the rogue was refused twice")
        assert ids_of(rogue) == from_rogue
        assert all(row["state"] != "up" for row in peer_rows(rogue))
        assert ids_of(a) == ids


# -- a CA node and devices that are no members ---------------------------------------------

#: A member device that never runs: its record gives another node's address.
PHONE = device_id(public_bytes(private_key_from_seed(bytes([9]) * 32)))


def own_id(node: NodeProcess) -> str:
    found: str = node.get("/v1/node")["device_id"]
    return found


def linked_not_members(node: NodeProcess) -> dict[str, dict[str, Any]]:
    """``GET /v1/devices``' ``linked``, by device id."""
    view = json.loads(request(node, "GET", "/v1/devices"))
    return {row["device_id"]: row for row in view["linked"]}


def members(node: NodeProcess) -> set[str]:
    view = json.loads(request(node, "GET", "/v1/devices"))
    return {row["device_id"] for row in view["members"]}


def add(member: NodeProcess, device: str, name: str, *options: str) -> None:
    done = run_cli(member, "devices", "add", device, "--name", name, *options)
    assert done.returncode == 0, done.stderr


def secret_pair(cluster: Cluster) -> tuple[NodeProcess, NodeProcess]:
    """Two plain-HTTP nodes of a cluster secret, ``b`` dialing ``c``: a record ``c``
    writes reaches ``b``, which takes a device ``c`` adds (and, not a member itself,
    stays one no record names on a third node)."""
    c = cluster.node("c", advertise=True)
    b = cluster.node("b", peers=[c.url])
    return b, c


def test_a_ca_node_says_a_certificate_links_a_device_only_where_one_was_verified(
        tmp_path: Path) -> None:
    """A node with a CA and no secret dials two devices that are no members: ``d`` over
    HTTPS, whose certificate its CA verified, and ``b`` at an http:// address, which
    lets it in as a member (a record of ``c`` adds it) but showed no certificate.
    ``clawsync devices`` says ``d`` links by a certificate and ``b`` by the ``--peer``
    address it was given, not by a certificate no one checked; ``d`` says ``a`` links
    by its certificate."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "cluster-ca")
    with Cluster(tmp_path) as cluster:
        b, c = secret_pair(cluster)
        d = cluster.add(tls_node(tmp_path, "d", make_cert(certs, "d", ca), ca[0]))
        a = cluster.add(tls_node(tmp_path, "a", make_cert(certs, "a", ca), ca[0],
                                 peers=[b.url, d.url]))
        # Before c's records reach d through a (they add a, a member on d from then on).
        wait_until(lambda: own_id(a) in linked_not_members(d)
                   and own_id(d) in linked_not_members(a), 60, "a and d list each other")
        assert linked_not_members(d)[own_id(a)]["via"] == "certificate"
        add(c, own_id(a), "a")
        wait_until(lambda: own_id(b) in linked_not_members(a), 60, "a lists b as linked")
        linked = linked_not_members(a)
        assert (linked[own_id(b)]["via"], linked[own_id(b)]["address"]) \
            == ("peer_address", b.url)
        assert (linked[own_id(d)]["via"], linked[own_id(d)]["address"]) \
            == ("certificate", d.url)
        assert own_id(a) in members(b) and own_id(a) not in linked_not_members(b)


def test_a_ca_node_keeps_no_device_that_is_no_member_at_a_learned_plain_address(
        tmp_path: Path) -> None:
    """A member's record gives the http:// address of ``b``, a device that is no member
    and lets the CA node ``a`` in (a record adds ``a``). ``a`` dials it as learned: no
    certificate was verified there, nor the secret given, so ``a`` closes the link as
    ``not_member``, as a node with no CA does, and never lists ``b`` as linked."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca = make_ca(certs, "cluster-ca")
    with Cluster(tmp_path) as cluster:
        b, c = secret_pair(cluster)
        a = tls_node(tmp_path, "a", make_cert(certs, "a", ca), ca[0], peers=[c.url])
        a.extra_args += ["--log-format", "json"]
        cluster.add(a)
        add(c, own_id(a), "a")
        add(c, PHONE, "phone", "--address", b.url)  # the phone's address: b answers there
        wait_until(lambda: own_id(a) in members(b), 60, "b takes a as a member")

        def refused_b() -> list[dict[str, Any]]:
            lines = [json.loads(line) for line in a.log_path.read_text().splitlines()
                     if line.startswith("{")]
            return [line for line in lines if line.get("event") == "dialed device refused"
                    and line.get("peer") == b.url]

        wait_until(lambda: refused_b() or own_id(b) in linked_not_members(a), 60,
                   "a dials b at the phone's address")
        assert own_id(b) not in linked_not_members(a)
        [line, *_] = refused_b()
        assert (line["device_id"], line["code"]) == (own_id(b), "not_member")
        assert all(row["state"] != "up" for row in peer_rows(a) if row["url"] == b.url)
