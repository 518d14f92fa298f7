"""Every command of a click group, for the tests that go through all of ``clawsync``'s."""

from __future__ import annotations

from collections.abc import Iterator

import click


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command under ``group`` (its subgroups' commands too), as the
    group lists them (``clawsync``'s are loaded when asked for)."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"{' '.join(path)} lists {name}, which does not load"
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
