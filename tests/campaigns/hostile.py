"""The hostile-input campaign: generated hostile input against a real node for a bounded
time, then the checks that it held.

    python -m tests.campaigns.hostile --seconds 180 --seed 7

The target node has a client token, a cluster secret and two Automerge tokens (one
read-only), all given in files so that none is on its command line; a second node
replicates with it. Workers send single cases, drawn by a seeded generator
(``tests.campaigns.hostile_cases``): HTTP bodies, headers and request lines, content
encodings, peer frames on ``/peer/v1/ws`` (with the secret) and Automerge frames. A
flood task meanwhile opens idle connections, SSE streams and large reads with stalled
readers, from other loopback addresses (127.0.0.x), one flood at a time; a sampler asks
``/healthz`` every ``HEALTHZ_EVERY_S`` from 127.0.0.1. Those three are
``tests.campaigns.hostile_attack``; this module starts the nodes, runs them and checks.

Checks (exit status 1 if any fails): no 5xx answer other than 503 (overload, counted
apart) and no websocket closed with 1011; no traceback in either node's log; no secret in
either log; no write by a refused request (the node's head grew by exactly the events
of the accepted ones); the node's peak RSS and the ``/healthz`` p99 within bounds; the
node still running; and the two nodes still replicate both ways afterwards.

A failing case is printed with its worker and number: ``--seed S --only CATEGORY``
replays the same sequence of cases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from node.limits import Limits
from tests.campaigns.common import (
    CampaignNode,
    peak_rss_mib,
    percentile,
    print_table,
    run,
    secrets_in_logs,
    traceback_samples,
    tracebacks,
    verdict,
)
from tests.campaigns.hostile_attack import Attack, Stats, floods, sample_healthz, worker
from tests.campaigns.hostile_cases import GENERATORS, Target, make_bomb
from tests.support.argtypes import at_least, positive_seconds
from tests.support.automerge import text_id
from tests.support.cluster import append, message, serve_args, wait_until

#: Seconds the two nodes get to pass a fresh event each way after the run.
REPLICATION_TIMEOUT_S = 30.0
#: Seconds the node gets to answer /healthz again after the attack.
SETTLE_TIMEOUT_S = 60.0
#: Events of about 120 kB of control characters each (escaped six-fold in JSON), read a
#: page at a time by the large-read flood.
BIG_EVENT_CHARS = 120_000
BIG_EVENTS_PER_REQUEST = 4


# -- set-up and checks ---------------------------------------------------------------------


class SecretNode(CampaignNode):
    """A node whose token comes from its config file, not its command line (the harness
    writes the command line into the log, where no secret may be)."""

    def command(self) -> list[str]:
        args = super().command()
        if "--token" in args:
            at = args.index("--token")
            del args[at:at + 2]
        return args


def start_nodes(tmp: Path, credentials: dict[str, str],
                memory_max_mib: int) -> tuple[SecretNode, CampaignNode]:
    config = tmp / "victim.toml"
    config.write_text(f'token = "{credentials["token"]}"\n'
                      f'cluster_secret = "{credentials["secret"]}"\n')
    tokens = tmp / "automerge-tokens.json"
    tokens.write_text(json.dumps({credentials["rw"]: {"sessions": ["*"]},
                                  credentials["ro"]: {"sessions": ["seed:*"],
                                                      "read_only": True}}))
    victim = SecretNode(tmp, name="victim", token=credentials["token"],
                        extra_args=["--config", str(config), "--automerge-tokens", str(tokens),
                                    "--pull-interval", "0.5"])
    victim.memory_max_mib = memory_max_mib
    victim.start()
    partner_config = tmp / "partner.toml"
    partner_config.write_text(f'cluster_secret = "{credentials["secret"]}"\n')
    partner = CampaignNode(tmp, name="partner", extra_args=[
        "--config", str(partner_config), *serve_args([victim.url], secret=None)])
    partner.start()
    return victim, partner


def seed_data(victim: SecretNode, big_events: int) -> tuple[list[str], int]:
    """Sessions for the cases to name, and the large events of the large-read flood."""
    keys = [f"seed:{n}" for n in range(4)]
    count = 0
    for key in keys:
        count += len(append(victim, key, [message(f"{key} #{n}") for n in range(5)]))
    rng = random.Random(0)
    for start in range(0, big_events, BIG_EVENTS_PER_REQUEST):
        batch = [message("".join(chr(rng.randint(1, 31)) for _ in range(BIG_EVENT_CHARS)))
                 for _ in range(min(BIG_EVENTS_PER_REQUEST, big_events - start))]
        count += len(append(victim, "big:0", batch))
    return keys, count


def sessions_of(node: CampaignNode) -> set[str]:
    keys: set[str] = set()
    after = 0
    while True:
        page = node.get(f"/v1/sessions?after={after}&limit=1000&include_cluster=1")
        keys |= {ref["session_key"] for ref in page["sessions"]}
        after = page["next"]
        if not page["more"]:
            return keys


def answers(node: CampaignNode) -> bool:
    """The node answers /healthz again once the attack stops."""
    try:
        wait_until(lambda: node.get("/healthz", timeout_s=5.0), SETTLE_TIMEOUT_S,
                   f"{node.name} answers /healthz")
    except AssertionError:
        return False
    return True


def replicates(writer: CampaignNode, reader: CampaignNode) -> bool:
    """A fresh event on ``writer`` reaches ``reader`` in time."""
    marker = f"marker {secrets.token_hex(4)}"
    stored = append(writer, "replication:check", [message(marker)])
    wanted = stored[0]["id"]

    def arrived() -> bool:
        page = reader.get("/v1/sessions/replication%3Acheck/events?limit=1000")
        return any(event["id"] == wanted for event in page["events"])

    try:
        wait_until(arrived, REPLICATION_TIMEOUT_S, f"{marker} on {reader.name}", poll_s=0.2)
    except AssertionError:
        return False
    return True


@dataclass
class Verdicts:
    rows: list[tuple[str, object, str]] = field(default_factory=list)
    ok: bool = True

    def add(self, what: str, figure: object, passed: bool | None = None) -> None:
        self.rows.append((what, figure, "" if passed is None else verdict(passed)))
        self.ok = self.ok and passed is not False


async def campaign(args: argparse.Namespace, tmp: Path) -> bool:
    credentials = {"token": secrets.token_hex(24), "secret": secrets.token_hex(24),
                   "rw": secrets.token_hex(24), "ro": secrets.token_hex(24)}
    victim, partner = await asyncio.to_thread(start_nodes, tmp, credentials,
                                              args.node_memory_max_mib)
    try:
        progress("nodes started; writing the seed data")
        keys, _ = await asyncio.to_thread(seed_data, victim, args.big_events)
        head_before = int(victim.get("/healthz")["head"])
        sessions_before = await asyncio.to_thread(sessions_of, victim)
        target = Target(host=f"127.0.0.1:{victim.port}", token=credentials["token"],
                        secret=credentials["secret"], automerge_rw=credentials["rw"],
                        automerge_ro=credentials["ro"],
                        node_id=victim.get("/v1/peers")["node_id"], head=head_before,
                        session_keys=keys, document_ids=[text_id(key) for key in keys],
                        body_bytes_max=Limits().body_bytes_max,
                        bomb=await asyncio.to_thread(make_bomb))
        stats = Stats()
        progress(f"attacking for {args.seconds:g} s")
        async with aiohttp.ClientSession() as http:
            attack = Attack(victim, target, stats, time.monotonic() + args.seconds, http)
            tasks = [worker(attack, args.seed, n, args.only) for n in range(args.workers)]
            if args.only in (None, "floods"):
                tasks.append(floods(attack, args.seed))
            await asyncio.gather(*tasks, sample_healthz(attack))
        progress("checking")
        await asyncio.sleep(1.0)  # let the last refused requests finish whatever they do
        alive = victim.running
        rss = peak_rss_mib(victim)
        alive = alive and await asyncio.to_thread(answers, victim)
        head_after = int(victim.get("/healthz")["head"]) if alive else head_before
        sessions_after = await asyncio.to_thread(sessions_of, victim) if alive else set()
        both_ways = alive and await asyncio.to_thread(replicates, victim, partner) \
            and await asyncio.to_thread(replicates, partner, victim)
        return report(args, stats, Verdicts(), {
            "alive": alive, "rss": rss, "both_ways": both_ways,
            "extra_events": head_after - head_before - stats.accepted_events,
            "extra_sessions": len(sessions_after - sessions_before - stats.accepted_keys),
            "tracebacks": tracebacks([victim, partner]),
            "secrets": secrets_in_logs([victim, partner], list(credentials.values())),
            "samples": traceback_samples([victim, partner])})
    finally:
        partner.stop()
        victim.stop()


def report(args: argparse.Namespace, stats: Stats, table: Verdicts,
           seen: dict[str, Any]) -> bool:
    table.add("seconds / seed", f"{args.seconds:g} / {args.seed}")
    for category, count in sorted(stats.requests.items()):
        table.add(f"requests: {category}", count)
    for kind, count in sorted(stats.answers.items()):
        table.add(f"answers: {kind}", count,
                  None if kind != "5xx (not 503)" else count == 0)
    if "5xx (not 503)" not in stats.answers:
        table.add("answers: 5xx (not 503)", 0, True)
    for code, count in sorted(stats.ws_closes.items()):
        table.add(f"websocket closes: {code}", count, None if code != "1011" else False)
    table.add("node running and answering afterwards", "yes" if seen["alive"] else "no",
              seen["alive"])
    table.add("tracebacks in node logs", seen["tracebacks"], seen["tracebacks"] == 0)
    table.add("secrets in node logs", seen["secrets"], seen["secrets"] == 0)
    refused = max(0, seen["extra_events"] - stats.unanswered_events_max)
    table.add("writes on refused requests (events)", refused, refused == 0)
    table.add("events of unanswered appends (at most)",
              f"{max(0, seen['extra_events'])} ({stats.unanswered_events_max})")
    table.add("writes on refused requests (sessions)", seen["extra_sessions"],
              seen["extra_sessions"] == 0)
    table.add("events written by accepted requests", stats.accepted_events)
    rss = seen["rss"]
    table.add(f"peak RSS MiB (bound {args.rss_max_mib})",
              "?" if rss is None else f"{rss:.0f}", rss is not None and rss <= args.rss_max_mib)
    p99 = percentile(stats.healthz_s, 0.99)
    table.add(f"/healthz p99 s (bound {args.healthz_p99_max_s:g})", f"{p99:.3f}",
              p99 <= args.healthz_p99_max_s)
    table.add("/healthz samples / unanswered",
              f"{len(stats.healthz_s)} / {stats.healthz_unanswered}",
              stats.healthz_unanswered == 0)
    table.add("replication both ways after the run", "yes" if seen["both_ways"] else "no",
              bool(seen["both_ways"]))
    print_table("hostile-input campaign", table.rows)
    for failure in stats.failures[:15]:
        print(f"server error: {failure}")
    for sample in seen["samples"]:
        print(f"traceback: {sample}")
    return table.ok and not stats.failures


def progress(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.campaigns.hostile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=positive_seconds, default=120.0,
                        help="how long cases are sent (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None,
                        help="of every generated case (default: a new one, printed)")
    parser.add_argument("--workers", type=at_least(1), default=4,
                        help="concurrent single cases (default: %(default)s)")
    parser.add_argument("--only", choices=[*GENERATORS, "floods"], default=None,
                        help="one category of cases (to replay a failure)")
    parser.add_argument("--big-events", type=at_least(0), default=40,
                        help="large events written first, for the large-read flood "
                             "(default: %(default)s)")
    parser.add_argument("--rss-max-mib", type=at_least(1, float), default=1024.0,
                        help="the node's peak RSS (VmHWM) that fails the run "
                             "(default: %(default)s)")
    parser.add_argument("--node-memory-max-mib", type=at_least(256), default=4096,
                        help="address space the node may use (prlimit --as), so that "
                             "a node without bounds fails alone, not the machine "
                             "(default: %(default)s)")
    parser.add_argument("--healthz-p99-max-s", type=positive_seconds, default=2.0,
                        help="the p99 of /healthz during the run that fails it "
                             "(default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    return run("hostile", "hostile-input campaign", args, campaign)


if __name__ == "__main__":
    sys.exit(main())
