"""The command line's tests run real node processes (``tests.support.processes``): ``node``
is one, started for the test (a module that starts its own once for all its tests
defines its own ``node``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import NodeProcess


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A node process in the test's folder (``NodeProcess``), stopped at teardown."""
    with NodeProcess(tmp_path) as running:
        yield running
