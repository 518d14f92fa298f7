"""Every command's ``--help`` ends in an example of itself: the line people copy."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from node.main import main
from tests.support.commands import commands


@pytest.mark.parametrize("path", list(commands(main)), ids=" ".join)
def test_the_help_of_every_command_shows_an_example_of_it(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="clawsync")
    assert result.exit_code == 0, result.output
    typed = " ".join(("clawsync", *path))
    examples = [line.strip() for line in result.output.splitlines()
                if line.strip().startswith(f"{typed} ") or line.strip() == typed]
    assert examples, f"`{typed} --help` shows no example of it:\n{result.output}"


#: Widest line of a ``--help``: a terminal's usual width (click wraps its prose to it, but
#: not the examples, which are printed as written).
HELP_COLUMNS_MAX = 80


@pytest.mark.parametrize("path", [(), *commands(main)], ids=lambda path: " ".join(path)
                         or "clawsync")
def test_every_help_line_fits_80_columns(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="clawsync",
                                env={"COLUMNS": str(HELP_COLUMNS_MAX)})
    assert result.exit_code == 0, result.output
    wide = [line for line in result.output.splitlines() if len(line) > HELP_COLUMNS_MAX]
    assert wide == [], "\n".join(wide)
