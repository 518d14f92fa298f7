"""The node's own accept loop: a silent client must not keep others out."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from node.config import Config
from node.server.run import start

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True,
                   capture_output=True)
    return cert, key


async def test_a_silent_client_does_not_block_tls_handshakes(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    node = await start(Config(data_dir=tmp_path / "data", port=0, tls_cert=cert, tls_key=key))
    try:
        port = int(node.url.rsplit(":", 1)[1])
        _, silent = await asyncio.open_connection("127.0.0.1", port)  # never says a word
        trust = ssl.create_default_context(cafile=str(cert))
        # The deadline is far below the 10 s handshake limit the silent client was given.
        async with aiohttp.ClientSession() as http, asyncio.timeout(5), http.get(
                f"https://127.0.0.1:{port}/healthz", ssl=trust) as reply:
            assert reply.status == 200
        silent.close()
    finally:
        await node.stop()
