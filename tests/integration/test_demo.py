"""``clawsync demo`` as a person runs it: three real nodes, a partition, the merge."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from node.cli.demo_cluster import NODES, Cluster, DemoFailed, port_refusal
from node.cli.demo_run import DURING_SPLIT, OPENING
from node.cli.group import main
from node.ports import (
    PORTS_FROM,
    ROOM_MIN,
    is_free,
    listen_refusal,
    local_ports_start,
    unprivileged_ports_start,
)
from node.ports import free_port as product_free_port
from tests.support.ports import PORT_BLOCK, free_port
from tests.support.processes import CLI_TIMEOUT_S, LineReader, child_env
from tests.support.terminal import ESCAPES, on_a_terminal
from tests.support.unavailable import unavailable

pytestmark = pytest.mark.integration

#: Contents of every message the demo writes: the opening on A and both sides' writes.
WRITTEN = [kind["content"] for kind in OPENING if "content" in kind] + \
    [kind["content"] for _node, kind in DURING_SPLIT]
URL_LINE = re.compile(r"^  [ABC] \(\w+\)\s+(http://127\.0\.0\.1:\d+)\b", re.M)


def demo_env(tmp_path: Path) -> dict[str, str]:
    """The demo's temporary folder goes under ``tmp_path``, so the test can see it go."""
    return child_env({"TMPDIR": str(tmp_path), "COLUMNS": "120"})


def ports_in_a_row(count: int = NODES) -> int:
    """The first of ``count`` free ports in a row, of this test process's claimed blocks
    (``tests.support.ports``): the demo's nodes listen on them (``--port``), where no other
    test process's nodes do."""
    row = [free_port()]
    for _ in range(PORT_BLOCK):
        if len(row) == count:
            return row[0]
        port = free_port()
        row = [*row, port] if port == row[-1] + 1 else [port]
    raise AssertionError(f"no {count} free ports in a row: {row}")


def demo_command(*args: str, port: int | None = None) -> list[str]:
    """``clawsync demo ARGS``, its nodes on ports claimed for this test process."""
    return [sys.executable, "-m", "node.main", "demo", "--port",
            str(port or ports_in_a_row()), *args]


def leave_time_wait(port: int) -> None:
    """A connection to a listener on ``port``, closed from the listener's side first: the
    port stays in TIME_WAIT after the listener is gone, as after a demo's nodes stopped
    (``--keep``: they close their peers' connections)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()
            assert client.recv(1) == b""  # the listener's side closed first


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2):
            return True
    except OSError:
        return False


def test_demo_merges_both_sides_of_a_partition(tmp_path: Path) -> None:
    # The demo runs nodes of its own: a CLAWSYNC_NODE no client command could use
    # (README, Configuration) is not looked at.
    env = {**demo_env(tmp_path), "CLAWSYNC_NODE": "http://127.0.0.1:47300/v1"}
    port = ports_in_a_row()
    # A's port was just used, as a kept demo's stopped nodes leave theirs: --port takes
    # it all the same, as the node binds it (the check refused it, as "in use").
    leave_time_wait(port)
    assert not is_free(port)
    result = subprocess.run(demo_command(port=port), capture_output=True, text=True,
                            env=env, timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    split, merged = out.split("The merged session", 1)
    # While cut off, B and C each saw their own writes and not the other's.
    seen = split.split("What each node sees now:", 1)[1]
    b_view = seen.split("B (laptop) sees", 1)[1].split("C (phone) sees", 1)[0]
    assert all(kind["content"] in b_view for node, kind in DURING_SPLIT if node == "B")
    assert not any(kind["content"] in b_view for node, kind in DURING_SPLIT if node == "C")
    # After the heal: every message, from both sides, exactly once, in a numbered list.
    listed = re.findall(r"^  \d+\. .*$", merged, re.M)
    assert len(listed) == len(WRITTEN), merged
    for content in WRITTEN:
        assert merged.count(content) == 1, (content, merged)
    assert re.search(r"from B .*Book the train", merged) and re.search(r"from C .*hotel", merged)
    summary = merged.split("Per node", 1)[1]
    # The head counts the six session events and each node's device-key record (seq 1 in
    # ``clawsync:devices``, written before that node's first event): all three wrote.
    row = r"\(\w+\)\s*[│|]\s*9\s*[│|]\s*6\s*[│|]\s*yes\b"
    assert len(re.findall(row, summary)) == 3, summary
    # Every node was stopped and the temporary folder deleted.
    urls = URL_LINE.findall(out)
    assert len(urls) == 3, out
    assert not any(answers(url) for url in urls)
    # Its nodes listened on the ports given, A on the first.
    assert [int(url.rsplit(":", 1)[1]) for url in urls] == [port, port + 1, port + 2], urls
    assert not list(tmp_path.glob("clawsync-demo-*"))


def kill_processes_in(folder: Path) -> list[int]:
    """SIGKILL every process whose working folder lies in ``folder`` (a demo's nodes run
    in its temporary folder); their pids."""
    killed = []
    for entry in Path("/proc").iterdir():
        try:
            cwd = os.readlink(entry / "cwd")
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and cwd.startswith(f"{folder}{os.sep}"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


@contextlib.contextmanager
def running_demo(tmp_path: Path, *args: str, **popen: Any
                 ) -> Iterator[tuple[subprocess.Popen[str], LineReader]]:
    """``clawsync demo ARGS`` running, and a reader of its output; killed if the test
    leaves it running, and none of its nodes may outlive it."""
    process = subprocess.Popen(demo_command(*args), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1,
                               env=demo_env(tmp_path), **popen)
    try:
        assert process.stdout is not None
        yield process, LineReader(process.stdout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        # A demo that did not stop its nodes (process groups of their own, so they did
        # not hear what ended it) must not leave them running after the test.
        orphans = kill_processes_in(tmp_path)
    assert not orphans, "nodes outlived the demo"


def ignore_ctrl_c() -> None:
    """What a job started with ``&`` by a non-interactive shell inherits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("started", "stopped", "code"), [
    pytest.param("in a terminal", signal.SIGTERM, 0, id="killed"),
    pytest.param("in the background of a script", signal.SIGTERM, 0,
                 id="killed-in-background"),
    pytest.param("in a terminal", signal.SIGHUP, 0, id="its-terminal-closed"),
    # Ctrl-C: dies by SIGINT, as every command (README, Exit codes), its nodes stopped
    # all the same.
    pytest.param("in a terminal", signal.SIGINT, -signal.SIGINT, id="ctrl-c")])
def test_demo_keep_runs_until_stopped(tmp_path: Path, started: str,
                                      stopped: signal.Signals, code: int) -> None:
    with running_demo(tmp_path, "--keep",
                      preexec_fn=ignore_ctrl_c if "background" in started else None
                      ) as (process, reader):
        reader.wait_for("Press Ctrl-C")
        urls = URL_LINE.findall("\n".join(reader.seen))
        assert len(urls) == 6, reader.seen  # at the start and again, after the demo
        assert all(answers(url) for url in urls[3:])
        [status] = [line for line in reader.seen if line.rstrip().endswith(" status")]
        shown = subprocess.run(shlex.split(status), capture_output=True, text=True,
                               env=demo_env(tmp_path), timeout=CLI_TIMEOUT_S)
        assert shown.returncode == 0, (status, shown.stderr)  # runs as printed
        process.send_signal(stopped)  # handled as Ctrl-C is
        assert process.wait(CLI_TIMEOUT_S) == code, reader.seen
        reader.wait_for("All nodes stopped")
    assert not any(answers(url) for url in urls)
    assert not list(tmp_path.glob("clawsync-demo-*"))


@pytest.mark.parametrize("stopped", [
    pytest.param(signal.SIGINT, id="ctrl-c"),
    pytest.param(signal.SIGTERM, id="killed")])
def test_demo_stopped_midway_stops_its_nodes_and_dies_of_the_signal(
        tmp_path: Path, stopped: signal.Signals) -> None:
    """Not kept, the demo is a command like any other: what stops it is how it ends (a
    script running it stops too), after its nodes and folder are gone."""
    with running_demo(tmp_path) as (process, reader):
        reader.wait_for("http://127.0.0.1")  # the nodes are up, the demo under way
        process.send_signal(stopped)
        assert process.wait(CLI_TIMEOUT_S) == -stopped, reader.seen
        reader.wait_for("All nodes stopped")
    assert not list(tmp_path.glob("clawsync-demo-*"))


def test_demo_keep_prints_a_folder_named_like_markup_as_it_is(tmp_path: Path) -> None:
    """rich reads what it prints as markup: a TMPDIR with "[/x]" in its path stopped the
    kept demo with a MarkupError where it names its folder."""
    folder = tmp_path / "a[" / "x]"  # .../a[/x]/clawsync-demo-...
    folder.mkdir(parents=True)
    with running_demo(folder, "--keep") as (process, reader):
        reader.wait_for("Press Ctrl-C")
        assert any(f"Logs and data: {folder}{os.sep}clawsync-demo-" in line
                   for line in reader.seen), reader.seen
        process.send_signal(signal.SIGTERM)
        assert process.wait(CLI_TIMEOUT_S) == 0, reader.seen
    assert not list(folder.glob("clawsync-demo-*"))


def test_the_demo_on_a_dumb_terminal_is_as_wide_as_it_is(tmp_path: Path) -> None:
    """rich takes a TERM=dumb terminal (an editor's shell) for 80 columns whatever its
    size: the demo's rules and tables were 80 columns wide on a 120-column one, as the
    other commands' tables were before (``node.cli.output.console``). Without --port,
    as most run it: its nodes listen below the kernel's range for outgoing connections'
    local ends, where no connection of the machine could take a port before its node
    listened (``node.ports``)."""
    columns = 120
    env = demo_env(tmp_path)
    env.pop("COLUMNS")
    env["TERM"] = "dumb"
    shown, _err = on_a_terminal([sys.executable, "-m", "node.main", "demo"], env, columns)
    lines = ESCAPES.sub("", shown).replace("\r", "\n").splitlines()
    rules = [line for line in lines if line.startswith("5. The merged session ─")]
    assert rules and all(cell_len(line.rstrip()) == columns for line in rules), lines
    ports = [int(url.rsplit(":", 1)[1]) for url in URL_LINE.findall("\n".join(lines))]
    assert len(ports) == NODES, lines
    assert all(port < local_ports_start() for port in ports), ports


def test_a_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    port = ports_in_a_row()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 1))
        taken.listen()
        result = subprocess.run(demo_command(port=port), capture_output=True, text=True,
                                env=demo_env(tmp_path), timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"port {port + 1} is in use (--port {port} takes {port} to {port + 2})" \
        in result.stderr, result.stderr
    assert not list(tmp_path.glob("clawsync-demo-*"))


def test_free_port_picks_below_the_kernels_range() -> None:
    """``node.ports.free_port`` (the demo's nodes without --port, and its links): below
    the kernel's range for outgoing connections' local ends."""
    if local_ports_start() - PORTS_FROM < ROOM_MIN:
        pytest.skip("no room below the kernel's range here")
    assert PORTS_FROM <= product_free_port() < local_ports_start()
    # None it is told to avoid: where all of that room is, the kernel picks.
    room = range(PORTS_FROM, local_ports_start())
    assert product_free_port(avoid=room) not in room


@pytest.mark.parametrize("given", [False, True], ids=["free ports", "--port"])
def test_no_link_takes_a_nodes_port_before_it_listens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: bool) -> None:
    """A node's port, found free, is not taken until the node listens: a link (started
    before B and C, and before A has listened) picked without avoiding it could take it,
    and the node then fails with "Address already in use". The random pick is made to
    repeat itself, as it may by chance: every later pick lands on the first node's port."""
    if local_ports_start() - PORTS_FROM < ROOM_MIN:
        pytest.skip("no room below the kernel's range here")
    port = ports_in_a_row() if given else free_port()
    monkeypatch.setattr("node.ports.random.randrange", lambda _start, _stop: port)
    cluster = Cluster(tmp_path)
    try:
        cluster.start(port if given else None)
        nodes = [each.port for each in cluster.nodes.values()]
        links = [link.port for link in cluster.links]
    finally:
        cluster.stop()
    assert nodes[0] == port
    assert len(links) == NODES - 1
    assert len(set(nodes + links)) == NODES + len(links), (nodes, links)


def test_no_free_port_is_the_demos_own_clear_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``free_port``'s OSError, none found, ended the demo in a traceback: ``run_demo``
    says a ``DemoFailed`` plainly. Nothing is started."""
    monkeypatch.setattr("node.ports.PORT_TRIES", 0)
    cluster = Cluster(tmp_path)
    try:
        with pytest.raises(DemoFailed, match="no free loopback port for the demo"):
            cluster.start()
    finally:
        cluster.stop()
    assert all(each.process is None for each in cluster.nodes.values())


#: A port below the first one a user without privileges may listen on (Linux: 1024).
PRIVILEGED = 80


@pytest.mark.skipif(unprivileged_ports_start() <= PRIVILEGED,
                    reason="any user may listen on every port here")
def test_a_privileged_port_is_not_told_as_in_use() -> None:
    """``demo --port 80`` as a user without privileges: the bind fails with EACCES, which
    was reported as "port 80 is in use". Root checks as ``nobody`` (a child process)."""
    if os.geteuid() != 0:
        told = port_refusal(PRIVILEGED)
    else:
        reading, writing = os.pipe()
        child = os.fork()
        if child == 0:  # the child only: as nobody, tell what the check says, and end
            try:
                os.setgid(65534)
                os.setuid(65534)
                os.write(writing, str(port_refusal(PRIVILEGED)).encode())
            finally:
                os._exit(0)
        os.close(writing)
        with os.fdopen(reading, "rb") as pipe:
            told = pipe.read().decode()
        os.waitpid(child, 0)
    assert told == (f"port {PRIVILEGED} needs privileges: only root (or "
                    f"CAP_NET_BIND_SERVICE) listens below port {unprivileged_ports_start()} "
                    f"(--port {PRIVILEGED} takes {PRIVILEGED} to {PRIVILEGED + 2})"), told


def test_an_error_without_text_is_said_by_its_kinds_words() -> None:
    """A bare ``OSError()`` (no errno, no text) read "o s error": a run of capitals is
    one word."""
    assert listen_refusal(7901, OSError()) == \
        "port 7901 cannot be listened on at 127.0.0.1: os error"
    assert listen_refusal(7901, ConnectionResetError()) == \
        "port 7901 cannot be listened on at 127.0.0.1: connection reset error"


def running_in(folder: Path) -> list[str]:
    """The processes whose working folder is ``folder`` or under it (a demo's nodes)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                found.append((proc / "cmdline").read_text().replace("\0", " "))
    return found


def test_a_links_port_taken_is_the_demos_clear_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link's port, found free, taken before the link listens (by anything of the
    machine): the demo ended in a traceback. It says which link and port, once, and stops
    what it started (A, B and B's link), keeping its folder as other failures do. C's
    link is given a port held here, as it would be by chance."""
    port = ports_in_a_row()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        held = taken.getsockname()[1]
        picks = iter([free_port(), held])  # B's link, then C's
        monkeypatch.setattr("node.cli.demo_cluster.free_port", lambda _avoid: next(picks))
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        result = CliRunner().invoke(main, ["demo", "--port", str(port)])
    assert result.exit_code == 1, (result.output, result.exception)
    [folder] = tmp_path.glob("clawsync-demo-*")  # with A's and B's logs
    assert result.stderr == (f"Error: the link from C (phone) to A cannot listen: port "
                             f"{held} is in use\n(node logs are in {folder})\n")
    assert running_in(folder) == []
    assert not [thread.name for thread in threading.enumerate()
                if thread.name.startswith("link-proxy-")]


#: A network of its own whose loopback is up without 127.0.0.1 (a container's odd
#: network): binding there fails with EADDRNOTAVAIL, neither in use nor privileged.
WITHOUT_LOOPBACK_ADDRESS = ["unshare", "--map-root-user", "--net", "sh", "-ec",
                            'ip link set lo up; ip addr del 127.0.0.1/8 dev lo; exec "$@"',
                            "sh"]


def test_in_ci_a_machine_without_network_namespaces_fails_the_test_above(
        tmp_path: Path) -> None:
    """Where no network namespace can be made (here: no ``unshare`` on the PATH), the
    test that needs one is skipped on a developer's machine, but fails in CI, which must
    run it: it was skipped there too, in silence."""
    test = (f"{Path(__file__)}::"
            "test_a_port_refused_for_another_reason_is_named_with_the_systems_words")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "no:randomly", "-n", "0", test],
                            capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False,
                            env={**child_env(), "CI": "true", "PATH": str(tmp_path)})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "no network namespace of its own can be made here: this test must run in CI" \
        in result.stdout, result.stdout


def test_a_port_refused_for_another_reason_is_named_with_the_systems_words(
        tmp_path: Path) -> None:
    """``port_refusal``'s last branch, for an errno it has no words of its own for: the
    port, the address, the errno's name and the system's text, before anything starts."""
    if shutil.which("unshare") is None or shutil.which("ip") is None or subprocess.run(
            [*WITHOUT_LOOPBACK_ADDRESS, "true"], capture_output=True, check=False
    ).returncode != 0:
        unavailable("no network namespace of its own can be made here")
    port = ports_in_a_row()
    result = subprocess.run([*WITHOUT_LOOPBACK_ADDRESS, *demo_command(port=port)],
                            capture_output=True, text=True, env=demo_env(tmp_path),
                            timeout=CLI_TIMEOUT_S, check=False)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr == (f"Error: port {port} cannot be listened on at 127.0.0.1: "
                             "EADDRNOTAVAIL, cannot assign requested address "
                             f"(--port {port} takes {port} to {port + 2})\n"), result.stderr
    assert not list(tmp_path.glob("clawsync-demo-*"))
