"""Fixtures that start real node processes (see tests/support/processes.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jsclient import JsClient, require_npm_packages
from tests.support.processes import NodeProcess


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A running node without a token, on a free port, stopped after the test."""
    with NodeProcess(tmp_path) as process:
        yield process


@pytest.fixture
def token_node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A running node that requires the bearer token ``s3cret``."""
    with NodeProcess(tmp_path, token="s3cret", name="token-node") as process:
        yield process


@pytest.fixture
def js(tmp_path: Path) -> Iterator[JsClient]:
    """A Node.js process driving automerge-repo clients (``tests/js``, the pinned
    packages installed first if missing), stopped after the test."""
    require_npm_packages()
    with JsClient(tmp_path / "js.log") as client:
        yield client
