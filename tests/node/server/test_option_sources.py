"""``clawsync serve``'s errors about an option's value name where that value came from:
the command line, the environment or the ``--config`` file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from node.main import main


@pytest.mark.parametrize(("args", "env", "named"), [
    pytest.param(["--config", "{missing}"], {}, "'--config'", id="config-typed"),
    pytest.param([], {"CLAWSYNC_CONFIG": "{missing}"},
                 "CLAWSYNC_CONFIG (the environment's --config)", id="config-from-env"),
    pytest.param(["--port", "x"], {}, "'--port'", id="port-typed"),
    pytest.param([], {"CLAWSYNC_PORT": "x"}, "CLAWSYNC_PORT (the environment's --port)",
                 id="port-from-env"),
    pytest.param(["--automerge-tokens", "{tokens}"], {}, "'--automerge-tokens'",
                 id="tokens-typed"),
    pytest.param(["--config", "{config}"], {},
                 "automerge_tokens in {config} (the file's --automerge-tokens)",
                 id="tokens-from-file")])
def test_a_bad_value_is_named_where_it_came_from(tmp_path: Path, args: list[str],
                                                 env: dict[str, str], named: str) -> None:
    # A --config typed on the command line was said to be "'--config' (env var:
    # 'CLAWSYNC_CONFIG')", as if it had come from the environment.
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"short": {"sessions": ["*"]}}')  # a token under 8 characters
    config = tmp_path / "clawsync.toml"
    config.write_text(f'automerge_tokens = "{tokens}"\n')
    paths = {"missing": tmp_path / "absent.toml", "tokens": tokens, "config": config}
    env = {"CLAWSYNC_CONFIG": "", "CLAWSYNC_PORT": "", **env}  # none from the shell
    result = CliRunner().invoke(
        main, ["serve", *(arg.format(**paths) for arg in args), "--print-config"],
        env={name: value.format(**paths) or None for name, value in env.items()},
        prog_name="clawsync")
    assert result.exit_code == 2, result.output
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert error.startswith(f"Error: Invalid value for {named.format(**paths)}: "), error
    assert "env var" not in error
