"""The chain the node's certificate dates are judged on (``node.peers.tls_expiry``): of
several copies of one issuer (same name and key) in ``--tls-cert`` or ``--tls-ca``, the
one peers take, as OpenSSL does: the first valid now, not one lasting longer that is not
valid yet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from node.config import Config
from node.peers.tls_renewal import TlsFiles, look
from tests.support.certs import (
    bundle,
    expires,
    expiry_gauge,
    install,
    make_ca_expiring,
    make_cert_expiring,
    sign_again,
)


async def test_a_renewal_with_a_copy_of_its_intermediate_not_valid_yet_is_taken(
        tmp_path: Path) -> None:
    """The renewed fullchain holds the intermediate issued again by the root, lasting
    longer but valid only in two days, before the copy valid now: peers build the chain
    with the one valid now, so the renewal is taken, and that one is sampled."""
    root = make_ca_expiring(tmp_path, "root", days=3000)
    middle = make_ca_expiring(tmp_path, "middle", days=200, signer=root)
    later = sign_again(tmp_path, "middle-later", middle, root, days=2000, begins_days=2.0)
    first, second = (make_cert_expiring(tmp_path, name, middle, days=90)
                     for name in ("first", "second"))
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "cert.pem", live / "key.pem"
    install(bundle(tmp_path / "chain1.pem", first[0], middle[0]), cert)
    install(first[1], key)
    files = TlsFiles(Config(tls_cert=cert, tls_key=key, tls_ca=root[0]))
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
