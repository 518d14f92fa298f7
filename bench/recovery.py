"""Two recoveries people wait for, with real node processes on loopback:

- catch-up of a node restored from a backup older than its peer's checkpoint of it,
  beside the catch-up of the same node restarted with its data intact (the default
  acknowledgement timeout applies: a restore must not wait for it);
- a graceful stop (SIGTERM) while a peer is unresponsive (SIGSTOP: its connections stay
  open and answer nothing, as behind a blackholed link).

    python -m bench.recovery [--events 200] [--rounds 3]
"""

from __future__ import annotations

import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

from bench import cli
from bench.cli import Cluster
from tests.support.cluster import append, message, wait_converged


def catch_up_s(tmp: Path, events: int, restore: bool) -> float:
    """Seconds from starting b (restored, or restarted as it was) to holding a's events."""
    tmp.mkdir(parents=True, exist_ok=True)
    with Cluster(tmp) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        ids = {e["id"] for e in append(a, "s", [message(f"m{n}") for n in range(events)])}
        wait_converged([a, b], must_hold=ids)
        b.kill(signal.SIGTERM)
        backup = tmp / "b-backup"
        shutil.copytree(b.data_dir, backup)
        b.start()
        ids |= {e["id"] for e in append(a, "s", [message(f"n{n}") for n in range(events)])}
        wait_converged([a, b], must_hold=ids)
        b.kill(signal.SIGTERM)
        a.kill(signal.SIGTERM)  # a saves its checkpoint of b: everything so far
        a.start()
        ids |= {e["id"] for e in append(a, "s", [message(f"o{n}") for n in range(events)])}
        if restore:
            shutil.rmtree(b.data_dir)
            shutil.copytree(backup, b.data_dir)
        started = time.perf_counter()
        b.start()
        wait_converged([a, b], must_hold=ids, timeout_s=120)
        return time.perf_counter() - started


def stop_s(tmp: Path) -> float:
    """Seconds a SIGTERM stop of a takes while its peer b is paused."""
    tmp.mkdir(parents=True, exist_ok=True)
    with Cluster(tmp) as cluster:
        a = cluster.node("a")
        b = cluster.node("b", peers=[a.url])
        ids = {e["id"] for e in append(a, "s", [message(f"m{n}") for n in range(20)])}
        wait_converged([a, b], must_hold=ids)
        assert b.process is not None
        b.process.send_signal(signal.SIGSTOP)
        append(a, "s", [message("while b is paused")])
        started = time.perf_counter()
        a.kill(signal.SIGTERM, timeout_s=60)
        took = time.perf_counter() - started
        b.process.send_signal(signal.SIGCONT)
        return took


def main() -> None:
    parser = cli.parser("bench.recovery", __doc__)
    parser.add_argument("--events", type=cli.positive_int, default=200,
                        help="events a writes in each of three phases")
    parser.add_argument("--rounds", type=cli.positive_int, default=3,
                        help="rounds of the three figures (medians are printed)")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"restored": [], "restarted": [], "stop": []}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            figures["restored"].append(catch_up_s(Path(tmp) / "r", args.events, True))
            figures["restarted"].append(catch_up_s(Path(tmp) / "k", args.events, False))
            figures["stop"].append(stop_s(Path(tmp) / "s"))
        print(f"round {round_ + 1}: " + ", ".join(
            f"{name} {values[-1]:.2f} s" for name, values in figures.items()))
    print(f"catch-up of a restored node (median of {args.rounds}): "
          f"{statistics.median(figures['restored']):.2f} s; restarted with its data: "
          f"{statistics.median(figures['restarted']):.2f} s")
    print(f"SIGTERM stop with a paused peer: median "
          f"{statistics.median(figures['stop']):.2f} s, max {max(figures['stop']):.2f} s")


if __name__ == "__main__":
    cli.run(main)
