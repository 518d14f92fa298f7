"""What ``clawsync serve --print-config`` shows, for the tests of the configuration."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from node.main import main


def print_config(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The configuration ``serve`` with ``args`` (and only the variables of ``env``)
    would run with, as it prints it; the command must succeed."""
    result = CliRunner().invoke(main, ["serve", *args, "--print-config"], env=env or {},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    printed: dict[str, Any] = json.loads(result.output)
    return printed
