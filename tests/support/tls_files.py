"""The node's TLS files in tests: a certificate and key installed under ``live/``, as a
renewal tool keeps them (``live_files``), with a CA file of their own (``served_files``);
a config whose files that cannot be used are warned of at once; one look at the files
(``look_at``) and its log lines about them (``of_files``); and the expiry gauge as a
scrape collects it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from node.config import Config
from node.peers.tls_expiry import TlsCollector
from node.peers.tls_renewal import Contexts, TlsFiles, look
from tests.support.certs import install, make_ca, make_cert


def live_files(folder: Path, cert: Path, key: Path) -> tuple[Path, Path]:
    """``cert`` and ``key`` installed as ``folder``/live/cert.pem and key.pem (the paths
    the node is given, which a test renews with ``install``)."""
    live = folder / "live"
    live.mkdir(exist_ok=True)
    install(cert, live / "cert.pem")
    install(key, live / "key.pem")
    return live / "cert.pem", live / "key.pem"


def settled_at_once(config: Config) -> Config:
    """``config`` whose files that cannot be used are warned of at the first look (the
    settle of no time a config refuses: ``tls files settling``, then the warning)."""
    return dataclasses.replace(config, limits=dataclasses.replace(
        config.limits, tls_files_settle_s=0.0))


def expiry_gauge(files: TlsFiles) -> dict[str, float]:
    """The ``clawsync_tls_certificate_expiry_timestamp_seconds`` of ``files``, as a
    scrape collects it, by certificate."""
    registry = CollectorRegistry()
    registry.register(TlsCollector(lambda: files.dates))
    [family] = registry.collect()
    return {sample.labels["certificate"]: sample.value for sample in family.samples}


def of_files(logs: list[dict[str, Any]]) -> list[str]:
    """The lines about the files (the test certificates, of two days, are warned of as
    expiring soon too: ``test_tls_expiry_warnings``)."""
    return [line["event"] for line in logs if line["event"].startswith("tls files")]


async def look_at(files: TlsFiles) -> Contexts | None:
    """One look at ``files``, as the node's (``look``), by a node whose contexts are put
    in use at once."""
    return await look(files, lambda contexts: None)


def served_files(tmp_path: Path) -> tuple[Config, tuple[Path, Path]]:
    """A config with certificate, key and CA files of its own, and that CA."""
    ca = make_ca(tmp_path, "ca")
    cert, key = live_files(tmp_path, *make_cert(tmp_path, "first", ca))
    install(ca[0], cert.with_name("ca.pem"))
    return Config(tls_cert=cert, tls_key=key, tls_ca=cert.with_name("ca.pem")), ca
