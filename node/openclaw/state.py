"""An OpenClaw state folder (``$OPENCLAW_STATE_DIR``): its agents and their stores.

    agents/<agent id>/agent/openclaw-agent.sqlite    the current store (since 2026.8)
    agents/<agent id>/sessions/sessions.json         the older layout, and what
    agents/<agent id>/sessions/<session id>.jsonl    ``openclaw doctor`` imports
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from node.openclaw.jsonl import AgentSessions
from node.openclaw.sqlite import AgentDatabase

DATABASE = Path("agent") / "openclaw-agent.sqlite"
SESSIONS = Path("sessions")
#: The lock a running gateway holds on its state folder (OpenClaw 2026.9, for the user it
#: runs as): JSON naming its ``pid`` and ``port``, removed when it stops, left behind when
#: it is killed.
GATEWAY_LOCKS = "tmp/openclaw-*/gateway.state.lock"

Source = AgentDatabase | AgentSessions


class StateFolderError(Exception):
    """The state folder is missing, unreadable or not an OpenClaw state folder."""


def check_state_folder(path: Path) -> Path:
    """``path`` resolved, if it looks like an OpenClaw state folder; else a clear error."""
    if not path.exists():
        raise StateFolderError(f"{path} does not exist (give OpenClaw's state folder, "
                               "$OPENCLAW_STATE_DIR, by default ~/.openclaw)")
    if not path.is_dir():
        raise StateFolderError(f"{path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise StateFolderError(f"{path} cannot be read: run clawsync as the user OpenClaw "
                               "runs as")
    agents = path / "agents"
    if not agents.is_dir():
        raise StateFolderError(f"{path} holds no agents/ folder: is it OpenClaw's state "
                               "folder ($OPENCLAW_STATE_DIR)?")
    if not os.access(agents, os.R_OK | os.X_OK):
        raise StateFolderError(f"{agents} cannot be read: run clawsync as the user OpenClaw "
                               "runs as")
    return path.resolve()


@dataclass(frozen=True)
class RunningGateway:
    """An OpenClaw gateway running on a state folder, as its lock names it."""

    pid: int
    port: int | None


def running_gateway(state: Path) -> RunningGateway | None:
    """The gateway running on ``state``; None if no lock there names a live OpenClaw
    process (a killed gateway's lock names a dead one, or one that took its pid since)."""
    for lock in sorted(state.glob(GATEWAY_LOCKS)):
        try:
            payload = json.loads(lock.read_bytes())
            pid, port = payload["pid"], payload.get("port")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # being written, or not a lock this version knows
        if type(pid) is int and pid > 0 and _openclaw_alive(pid):
            return RunningGateway(pid, port if type(port) is int else None)
    return None


def _openclaw_alive(pid: int) -> bool:
    if not Path("/proc/self").exists():  # no /proc here (macOS): whether the pid lives
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's: taken for the gateway, which may be
        return True
    try:
        program = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]
    except FileNotFoundError:
        return False
    except OSError:  # hidden (hidepid): taken for the gateway, which may be
        return True
    # The gateway names itself "openclaw-gateway" (or runs as "node openclaw.mjs"); a
    # process that took a dead gateway's pid does not, nor one that only names OpenClaw
    # in its arguments (clawsync openclaw watch).
    return any(os.path.basename(arg).startswith(b"openclaw") for arg in program)


def cursor_name(state: Path, agent_id: str) -> str:
    """The node-kept cursor of one agent of one state folder: ``openclaw:<folder
    digest>:<agent digest>`` (digests, as paths and ids may hold any character)."""
    folder = hashlib.sha256(str(state).encode()).hexdigest()[:16]
    agent = hashlib.sha256(agent_id.encode()).hexdigest()[:16]
    return f"openclaw:{folder}:{agent}"


@dataclass
class StateFolder:
    """The agents of a state folder and a reader per store, kept open while watching."""

    path: Path
    agents: list[str] | None = None  # only these; None: every agent found
    _sources: dict[tuple[str, str], Source] = field(default_factory=dict)

    def sources(self) -> list[tuple[str, Source]]:
        """(agent id, reader) for every store now present; new agents are picked up."""
        found: list[tuple[str, Source]] = []
        try:
            folders = sorted(entry for entry in (self.path / "agents").iterdir()
                             if entry.is_dir())
        except OSError:
            folders = []
        for folder in folders:
            agent_id = folder.name
            if self.agents is not None and agent_id not in self.agents:
                continue
            shown = f"{self.path}/agents/{agent_id}"
            if (folder / DATABASE).exists():
                key = (agent_id, "db")
                if key not in self._sources:
                    self._sources[key] = AgentDatabase(folder / DATABASE, agent_id,
                                                       f"{shown}/{DATABASE}")
                found.append((agent_id, self._sources[key]))
            if (folder / SESSIONS).is_dir():
                key = (agent_id, "jsonl")
                if key not in self._sources:
                    self._sources[key] = AgentSessions(folder / SESSIONS, agent_id,
                                                       f"{shown}/{SESSIONS}")
                found.append((agent_id, self._sources[key]))
        return found

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()
