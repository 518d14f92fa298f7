"""An OpenClaw state folder (``$OPENCLAW_STATE_DIR``): its agents and their stores.

    agents/<agent id>/agent/openclaw-agent.sqlite    the current store (since 2026.8)
    agents/<agent id>/sessions/sessions.json         the older layout, and what
    agents/<agent id>/sessions/<session id>.jsonl    ``openclaw doctor`` imports
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from crdt.errors import Picklable
from node.openclaw.jsonl import AgentSessions
from node.openclaw.source import path_there
from node.openclaw.sqlite import AgentDatabase

DATABASE = Path("agent") / "openclaw-agent.sqlite"
SESSIONS = Path("sessions")
#: The lock a running gateway holds on its state folder (OpenClaw 2026.9, for the user it
#: runs as): ``<state>/tmp/openclaw-<uid>/gateway.state.lock``, JSON naming its ``pid``,
#: ``port``, ``stateDir`` and ``startTime`` (and more), removed when it stops, left behind
#: when it is killed.
GATEWAY_LOCK_FOLDERS = "openclaw-"  # the start of their names, inside <state>/tmp
GATEWAY_LOCK = "gateway.state.lock"
#: The state ``/proc/<pid>/stat`` gives a process that has exited and is not reaped yet:
#: its files are closed, it holds no lock, and no longer runs anything.
ZOMBIE = b"Z"
#: Node's options that take their value as the next argument (``--require ./x.js``):
#: skipped with it when looking for the script node runs.
NODE_VALUE_OPTIONS = frozenset({
    "-r", "--require", "--import", "--loader", "--experimental-loader", "-C", "--conditions",
    "--env-file", "--env-file-if-exists", "--inspect-port", "--debug-port", "--title",
    "--input-type", "--disable-warning", "--redirect-warnings", "--openssl-config",
    "--icu-data-dir", "--stack-trace-limit", "--watch-path", "--test-reporter",
    "--test-reporter-destination", "--experimental-config-file"})
#: Node's options after which no script follows (the code is given inline, or on stdin).
NODE_NO_SCRIPT = frozenset({"-e", "--eval", "-p", "--print", "-", "-c", "--check", "-v",
                            "--version", "-h", "--help", "--run", "--test"})

Source = AgentDatabase | AgentSessions


class StateFolderError(Picklable):
    """The state folder is missing, unreadable or not an OpenClaw state folder."""


class GatewayLockUnreadable(StateFolderError):
    """A gateway's lock (or the folder holding it) is there but cannot be read: whether a
    gateway runs on the state folder cannot be told."""


def check_state_folder(path: Path) -> Path:
    """``path`` resolved, if it looks like an OpenClaw state folder; else a clear error.

    Looked at with ``path_there``, not ``exists()`` or ``is_dir()``: a folder that cannot
    be looked into (a link to a name too long, a loop) raises ``OSError`` on Python 3.11
    to 3.13 and is "not there" from 3.14 on; both are told as what they are."""
    agents = path / "agents"
    try:
        if not path_there(path, folder=False):
            raise StateFolderError(f"{path} does not exist (give OpenClaw's state folder, "
                                   "$OPENCLAW_STATE_DIR, by default ~/.openclaw)")
        if not path_there(path, folder=True):
            raise StateFolderError(f"{path} is not a folder")
        if not os.access(path, os.R_OK | os.X_OK):
            raise StateFolderError(f"{path} cannot be read: run clawsync as the user "
                                   "OpenClaw runs as")
        if not path_there(agents, folder=True):
            raise StateFolderError(f"{path} holds no agents/ folder: is it OpenClaw's "
                                   "state folder ($OPENCLAW_STATE_DIR)?")
        if not os.access(agents, os.R_OK | os.X_OK):
            raise StateFolderError(f"{agents} cannot be read: run clawsync as the user "
                                   "OpenClaw runs as")
        return path.resolve()
    except OSError as error:
        shown = error.filename or path
        raise StateFolderError(f"{shown} cannot be read ({error.strerror or error}): give "
                               "OpenClaw's state folder, one this user can look into") from None


@dataclass(frozen=True)
class RunningGateway:
    """An OpenClaw gateway running on a state folder, as its lock names it."""

    pid: int
    port: int | None


def running_gateway(state: Path) -> RunningGateway | None:
    """The gateway running on ``state``; None if no lock there names a live gateway of
    this folder (a killed gateway's lock names a dead process, or one that took its pid
    since). ``GatewayLockUnreadable`` if a lock, or the folder of one, cannot be read:
    skipping it would say that no gateway runs when one may.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     running_gateway(Path(folder)) is None
    True
    """
    for lock in _gateway_locks(state):
        try:
            payload = json.loads(lock.read_bytes())
            pid, port = payload["pid"], payload.get("port")
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed since it was listed (that gateway stopped), or not a folder
        except OSError as error:
            raise GatewayLockUnreadable(
                f"{lock} cannot be read ({error.strerror or error}), so whether an OpenClaw "
                "gateway runs on the folder cannot be told") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # being written, or not a lock this version knows
        if type(pid) is not int or pid <= 0 or not _names_this_folder(payload, state):
            continue
        if _gateway_alive(pid, payload.get("startTime")):
            return RunningGateway(pid, port if type(port) is int else None)
    return None


def _gateway_locks(state: Path) -> list[Path]:
    """Where gateways' locks may be: one folder per user, ``<state>/tmp/openclaw-<uid>``."""
    folder = state / "tmp"
    try:
        names = sorted(entry.name for entry in folder.iterdir()
                       if entry.name.startswith(GATEWAY_LOCK_FOLDERS))
    except (FileNotFoundError, NotADirectoryError):
        return []  # no gateway has run on this folder
    except OSError as error:
        raise GatewayLockUnreadable(
            f"{folder} cannot be read ({error.strerror or error}), so whether an OpenClaw "
            "gateway runs on the folder cannot be told") from None
    return [folder / name / GATEWAY_LOCK for name in names]


def _names_this_folder(payload: dict[str, object], state: Path) -> bool:
    """False only if the lock names another existing folder as the gateway's: the lock
    came here with a copy of that folder, made while its gateway ran (which runs there,
    not here). A folder it names that is not there (a path of another machine or mount
    namespace) tells nothing: the lock counts."""
    named = payload.get("stateDir")
    if not isinstance(named, str) or not named:
        return True
    try:
        return os.path.samefile(named, state)
    except OSError:
        return True


def _gateway_alive(pid: int, start_ticks: object) -> bool:
    """Whether ``pid`` is still the gateway that wrote the lock."""
    if not Path("/proc/self").exists():  # no /proc here (macOS): whether the pid lives
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's: taken for the gateway, which may be
        return True
    try:
        fields = stat_fields(pid)
    except FileNotFoundError:
        return False
    except OSError:  # hidden (hidepid): taken for the gateway, which may be
        return True
    if fields[:1] == [ZOMBIE]:
        return False  # exited, not yet reaped: it holds nothing any more
    if type(start_ticks) is int and len(fields) > 19 and fields[19].isdigit():
        # On Linux the gateway writes its own start time as this very field (OpenClaw's
        # getProcessStartTime reads /proc/<pid>/stat too), so the two compare as they are,
        # with no clock or boot-time conversion: a process that took the pid since, even
        # another gateway (of another state folder), started at another tick. OpenClaw
        # decides whether its lock is stale the same way.
        return int(fields[19]) == start_ticks
    return _openclaw_command(pid)


def stat_fields(pid: int) -> list[bytes]:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces
    and parentheses): the state first (``ZOMBIE``, say), the start time 20th (field 22
    of proc(5)), in clock ticks since boot. ``OSError`` if it cannot be read: no such
    process, no ``/proc``, or one that hides another user's processes (hidepid).

    >>> stat_fields(os.getpid())[0] in (b"R", b"S")
    True
    """
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rfind(b")") + 2:].split()


def _openclaw_command(pid: int) -> bool:
    """Whether ``pid`` runs OpenClaw, by its command line: for a lock without a start
    time (written elsewhere than on Linux, or by another version)."""
    try:
        argv = command_line(pid)
    except FileNotFoundError:
        return False
    except OSError:  # hidden (hidepid): taken for the gateway, which may be
        return True
    return openclaw_argv(argv)


def command_line(pid: int) -> list[str]:
    """The command line of the process ``pid``, as ``/proc`` shows it (``argv[0]`` as the
    process sets it). ``OSError`` if it cannot be read: no such process, no ``/proc``,
    or one that hides another user's processes (hidepid)."""
    return [arg.decode(errors="replace")
            for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]


def openclaw_argv(argv: list[str]) -> bool:
    """Whether a command line runs OpenClaw: the gateway names itself "openclaw-gateway";
    else it is node running OpenClaw's script (``openclaw.mjs``, the ``openclaw``
    launcher), found after node's options. A command that only names OpenClaw among its
    arguments is not OpenClaw, nor is node running another script with OpenClaw's as an
    argument.

    >>> openclaw_argv(["openclaw-gateway", ""])
    True
    >>> openclaw_argv(["/usr/bin/node", "--max-old-space-size=4096", "--require",
    ...                "./preload.js", "/srv/openclaw/openclaw.mjs", "gateway", "run"])
    True
    >>> openclaw_argv(["/usr/bin/python3", "/usr/bin/clawsync", "openclaw", "watch",
    ...                "--state-dir", "/home/me/.openclaw"])
    False
    >>> openclaw_argv(["node", "tool.js", "/srv/openclaw/openclaw.mjs"])
    False
    """
    if not argv:
        return False
    if _openclaw_name(argv[0]):
        return True
    if not re.fullmatch(r"node(js)?[0-9.]*(\.exe)?", os.path.basename(argv[0])):
        return False
    args = iter(argv[1:])
    for arg in args:
        if arg in NODE_NO_SCRIPT:
            return False
        if arg == "--":
            return _openclaw_name(next(args, ""))
        if arg in NODE_VALUE_OPTIONS:
            next(args, None)
        elif arg.startswith("-") or arg.isdigit():
            # An option, or the value of one not listed above (--stack-size 2000): a
            # script is not named by digits alone.
            continue
        else:
            return _openclaw_name(arg)  # the script: whatever follows is its arguments
    return False


def _openclaw_name(arg: str) -> bool:
    # openclaw-gateway, openclaw.mjs, the openclaw launcher, the package's own entry
    # points; not ".openclaw" (a folder)
    path = arg.replace("\\", "/")
    return (os.path.basename(path).startswith("openclaw")
            or path.endswith(("openclaw/dist/index.js", "openclaw/dist/entry.js")))


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
    #: The agents whose folder the last ``sources`` could not look into (another user's,
    #: say), each with its shown path and why: skipped, their stores neither read nor
    #: known gone, while the others are read.
    unreadable: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: The agents the last ``sources`` found a folder of (or an entry that may be one),
    #: whether they hold stores, could be read or not.
    listed: set[str] = field(default_factory=set)
    _sources: dict[tuple[str, str], Source] = field(default_factory=dict)

    def sources(self) -> list[tuple[str, Source]] | None:
        """(agent id, reader) for every store now present; new agents are picked up.
        None if the ``agents`` folder is there but could not be listed (a passing error,
        say): what is present is then unknown, which is not the same as nothing."""
        found: list[tuple[str, Source]] = []
        try:
            folders = sorted((self.path / "agents").iterdir())
        except FileNotFoundError:
            folders = []
        except OSError:
            return None
        self.unreadable, self.listed = {}, set()
        present: set[tuple[str, str]] = set()
        for folder in folders:
            agent_id = folder.name
            if self.agents is not None and agent_id not in self.agents:
                continue
            self.listed.add(agent_id)
            shown = f"{self.path}/agents/{agent_id}"
            # Looked at with stat(), not exists() or is_dir(), which say False for a
            # folder that cannot be looked into (PermissionError) from Python 3.14 on:
            # such an agent is named and skipped, not taken for one without stores (its
            # waiting sessions told gone), and not every agent with it.
            try:
                if not path_there(folder, folder=True):
                    continue
                database = path_there(folder / DATABASE, folder=False)
                sessions = path_there(folder / SESSIONS, folder=True)
            except OSError as error:
                self.unreadable[agent_id] = (shown, error.strerror or str(error))
                continue
            if database:
                key = (agent_id, "db")
                present.add(key)
                if key not in self._sources:
                    self._sources[key] = AgentDatabase(folder / DATABASE, agent_id,
                                                       f"{shown}/{DATABASE}")
                found.append((agent_id, self._sources[key]))
            if sessions:
                key = (agent_id, "jsonl")
                present.add(key)
                if key not in self._sources:
                    self._sources[key] = AgentSessions(folder / SESSIONS, agent_id,
                                                       f"{shown}/{SESSIONS}")
                found.append((agent_id, self._sources[key]))
        self._drop_gone(present)
        return found

    def held(self) -> set[Source]:
        """The readers kept open: those of the stores the last ``sources`` found, and of
        the agents it could not look into (not known gone)."""
        return set(self._sources.values())

    def _drop_gone(self, present: set[tuple[str, str]]) -> None:
        """Close and forget the reader of each store no longer there (its agent's folder
        or the store deleted): a SQLite connection left open on a deleted file keeps its
        disk space taken while ``watch`` runs. One of an agent that could not be looked
        into is kept: it is not known gone."""
        for key in [key for key in self._sources
                    if key not in present and key[0] not in self.unreadable]:
            self._sources.pop(key).close()

    def close(self) -> None:
        for source in self._sources.values():
            source.close()
        self._sources.clear()
