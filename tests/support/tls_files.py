"""The node's TLS files in tests: a certificate and key installed under ``live/``, as a
renewal tool keeps them (``live_files``); a config whose files that cannot be used are
warned of at once; and the expiry gauge as a scrape collects it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry

from node.config import Config
from node.peers.tls_expiry import TlsCollector
from node.peers.tls_renewal import TlsFiles
from tests.support.certs import install


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
