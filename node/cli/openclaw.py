"""``clawsync openclaw``: OpenClaw's state folder as a source (import, watch) and a
reader (export) of a node's sessions.

The events go to the node of ``--node`` over HTTP, or, with ``--data-dir``, straight into
a node's data folder (embedded; that node must not be running). Where each agent's
stores have been read up to is a cursor kept by that node (``/v1/cursors``), saved after
the events are stored: a restart resumes there.

This module declares the commands and imports click and nothing heavy, so that their
``--help`` is quick; what they do is ``node.cli.openclaw_run``, loaded when one runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from node.cli.common import CURSOR_CHANGED_EXIT, TOKEN_REFUSED_EXIT
from node.cli.options import client_options, session_key
from node.openclaw.pace import (
    AHEAD_PLAUSIBLE_MAX_S,
    AHEAD_RETRY_MAX_S,
    AHEAD_RETRY_MIN_S,
    POLL_S,
    days_said,
)

#: Seconds ``watch`` waits before trying an unreachable node again, at most.
RETRY_MAX_S = 30.0

#: What ``--agent`` means to import and watch; export has one agent (``EXPORT_AGENT``).
AGENTS = "Only this OpenClaw agent (repeatable). Default: every agent of the folder."
EXPORT_AGENT = ("The agent of a SESSION given without its agent:ID: prefix (default: main). "
                "A session is written for its own agent only: another is refused.")


def state_options(agent_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--state-dir``, ``--agent`` and ``--data-dir``, shared by the three commands."""
    return functools.partial(_state_options, agent_help=agent_help)


def _folder(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """``--data-dir`` in a file (``f/sub``) is refused as one that is a file (click does
    that): opened, the folder failed on "Not a directory" (exit 1)."""
    from node.checks import not_a_folder  # when run: ``--help`` loads no checks

    if value is not None and (refusal := not_a_folder(value)) is not None:
        raise click.BadParameter(refusal)
    return value


def _state_options(command: Callable[..., Any], agent_help: str) -> Callable[..., Any]:
    command = click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
        callback=_folder,
        help="Use this node data folder directly instead of a running node "
             "(--node); no node may be serving it meanwhile. A folder holding no "
             "node's data yet becomes a new node's, and the command says so (export, "
             "which only reads, refuses it).")(command)
    command = click.option(
        "--agent", "agents", multiple=True, metavar="ID", help=agent_help)(command)
    return click.option(
        "--state-dir", type=click.Path(path_type=Path), metavar="DIR",
        # OpenClaw's own rule: a variable set but empty is not set.
        default=lambda: os.environ.get("OPENCLAW_STATE_DIR") or str(Path.home() / ".openclaw"),
        show_default="$OPENCLAW_STATE_DIR, else ~/.openclaw",
        help="OpenClaw's state folder, the one holding agents/.")(command)


@click.group(name="openclaw")
def openclaw() -> None:
    """Sync OpenClaw's sessions: import or follow an OpenClaw state folder into a node,
    and export a session back for OpenClaw.

    \b
    On each device, with the node running:
      clawsync openclaw import                 # once: everything so far
      clawsync openclaw watch                  # as a service: follows new records
    To continue here a session started on another device (gateway stopped):
      clawsync openclaw export SESSION
      openclaw doctor --session-sqlite import

    OpenClaw's files are only read (never locked, never written) except by export, which
    writes the older layout that `openclaw doctor --session-sqlite import` reads.
    """


#: What import and watch do when another import saves the same cursors.
CURSOR_CHANGED_HELP = (
    "If the node refuses an agent's cursor saves again and again in one pass, each "
    "changed there meanwhile, another import of this folder saves them too: it stops, "
    f"saying so, with exit code {CURSOR_CHANGED_EXIT} (run one only).")

#: How far beyond what the node takes a record's date is said to be wrong, not waited for.
FAR_AHEAD = days_said(AHEAD_PLAUSIBLE_MAX_S)

#: What import, watch and export do when the node refuses the token.
TOKEN_REFUSED_HELP = (
    f"A token the node refuses (401, 403) stops it with exit code {TOKEN_REFUSED_EXIT}; a "
    "401 or 403 from a reverse proxy's own login in front of the node, with exit code 1.")

IMPORT_HELP = f"""Import every OpenClaw session of the state folder into the node, once.

Reads each agent's SQLite store (agents/ID/agent/openclaw-agent.sqlite) and the older
layout (agents/ID/sessions/*.jsonl) read-only, from where the last import or watch of
this folder stopped (a cursor the node keeps), so running it again imports nothing twice.
Its summary counts per read: records read again as their cursor was reset on the node
meanwhile are counted again, as already stored.
A record that cannot be read or mapped (a truncated line, a row that does not decode, a
newer transcript version) is named on stderr and skipped; the rest is imported and the
exit code is 1. A record dated further ahead of the node's clock than it takes (a fast
clock) is named and not skipped: it and the records after it in its session are left
for a later import (exit code 1), the rest is imported; one dated more than {FAR_AHEAD}
beyond that is said to be a wrong timestamp or clock, to fix. {TOKEN_REFUSED_HELP}
{CURSOR_CHANGED_HELP}

\b
Examples:
  clawsync openclaw import
  clawsync openclaw import --state-dir ~/.openclaw --agent main
  clawsync --node http://127.0.0.1:7878 --token "$TOKEN" openclaw import
  clawsync openclaw import --data-dir ~/.clawsync     # the node stopped
"""


@openclaw.command(name="import", help=IMPORT_HELP,
                  short_help="Import the state folder's sessions into the node, once.")
@state_options(AGENTS)
@client_options
@click.pass_context
def import_(ctx: click.Context, state_dir: Path, agents: tuple[str, ...],
            data_dir: Path | None) -> None:
    from node.cli.openclaw_run import run_import

    run_import(ctx, state_dir, agents, data_dir)


WATCH_HELP = f"""Follow the OpenClaw state folder: import what is there, then every new
record within about a second of OpenClaw committing it. Runs until stopped; meant for a
service unit (deploy/systemd/clawsync-openclaw.service).

Looks at the stores every {POLL_S:g} s (--poll) without locking them, reading only those
that changed. Resumes after a restart from the cursor the node keeps. While the node
cannot be reached it retries (up to every {RETRY_MAX_S:g} s; a node that answers 503 with
Retry-After is given that wait, up to {RETRY_MAX_S:g} s), and each retry says so on stderr.
{TOKEN_REFUSED_HELP} The unit does not restart after
exit code {TOKEN_REFUSED_EXIT} (nor after a usage error, 2); another refusal stops it with
exit code 1 (2 if it blames what was sent). A record or file that cannot be read is
named once and skipped. A record dated further ahead of the node's clock than it takes
(a fast clock) is named once, with by how much, and never skipped:
it and the records after it in its session wait, while the rest goes on, tried again
when the node's clock should take them (from its refusal; at most every
{AHEAD_RETRY_MIN_S:g} s, at least every {AHEAD_RETRY_MAX_S:g} s) until the node does;
each summary counts those still waiting. One dated more than {FAR_AHEAD} beyond that is
said to be a wrong timestamp or clock, which waiting will not mend.
{CURSOR_CHANGED_HELP}

\b
Examples:
  clawsync openclaw watch
  CLAWSYNC_TOKEN=... clawsync --node http://127.0.0.1:7878 \\
    openclaw watch --agent main
"""


@openclaw.command(help=WATCH_HELP,
                  short_help="Follow the state folder into the node (run as a service).")
@state_options(AGENTS)
@click.option("--poll", "poll_s", type=click.FloatRange(0.01, 60), default=POLL_S,
              show_default=True, metavar="SECONDS", help="Seconds between two looks.")
@client_options
@click.pass_context
def watch(ctx: click.Context, state_dir: Path, agents: tuple[str, ...],
          data_dir: Path | None, poll_s: float) -> None:
    from node.cli.openclaw_run import run_watch

    run_watch(ctx, state_dir, agents, data_dir, poll_s, RETRY_MAX_S)


EXPORT_HELP = f"""Write SESSION, from whichever device it came, into the OpenClaw state folder
in the layout `openclaw doctor --session-sqlite import` reads, so that this device's
OpenClaw continues it.

SESSION is the clawsync session key (`clawsync sessions` lists them; OpenClaw's own key
`agent:main:...` is the same) or OpenClaw's key without its `agent:<id>:` prefix. Writes
the transcript (header first) of the OpenClaw session id with the latest records (after
/new, a reset or a rewind a key has several; sessions.json names one per key;
--session-id picks another), and its entry in sessions.json (merged with what is there).
The transcript goes into the file OpenClaw's import reads for the key's entry (its
sessionFile, if within the sessions folder) if that file is there and is this session's
(older OpenClaw's <id>-topic-<n>.jsonl, in a subfolder too, for instance), which it
continues; else to agents/AGENT/sessions/<sessionId>.jsonl, the id trimmed of spaces
around it as OpenClaw trims it. Refused, with nothing written: a transcript file
holding something else; a sessions.json entry of the key naming another session id;
another key naming the same session id, or naming the transcript's file through its
sessionFile (OpenClaw would import it as that key's session); the key's own sessionFile
naming a file there that holds another session. {TOKEN_REFUSED_HELP}

Stop the OpenClaw gateway first, and let any `openclaw agent --local` turn finish (export
refuses while the gateway's lock names a running one, or while an OpenClaw process holds
one of its locks in /tmp/openclaw-state-locks-UID, or if they cannot be read; exit 2; it
holds those locks itself while it writes, so an OpenClaw process started meanwhile waits
or gives up), then run its import:

\b
  clawsync openclaw export agent:main:explicit:s1
  openclaw doctor --session-sqlite dry-run --json  # what it would import
  openclaw doctor --session-sqlite import
"""


@openclaw.command(help=EXPORT_HELP,
                  short_help="Write a session for OpenClaw's import (gateway stopped).")
@click.argument("session", callback=session_key)
@state_options(EXPORT_AGENT)
@click.option("--session-id", metavar="ID",
              help="Only this OpenClaw session id of SESSION (after a reset a key has several).")
@client_options
@click.pass_context
def export(ctx: click.Context, session: str, state_dir: Path, agents: tuple[str, ...],
           data_dir: Path | None, session_id: str | None) -> None:
    from node.cli.openclaw_run import run_export

    run_export(ctx, session, state_dir, agents, data_dir, session_id)
