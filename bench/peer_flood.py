"""A peer floods a node with hellos of 4,096 origins while a client appends one event at
a time: the client's append latency (p50, p99, max), and how many hellos the flooder got
sent (the node reads them as its writer budget allows), without a flood and with it, for
a few values of ``[sync] peer_writer_share``.

    python -m bench.peer_flood [--seconds 10] [--shares 0.25,0.5,1]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench import cli
from tests.support.flood import Appends, append_while, flood_and_append
from tests.support.processes import NodeProcess

SECRET = "bench-secret"
TOKEN = "bench-token"


def writer_share(text: str) -> float:
    """An argparse type: a value of ``peer_writer_share``, as the node accepts it."""
    value = cli.positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be at most 1, not {text}")
    return value


def node_for(tmp: Path, name: str, share: float) -> NodeProcess:
    config = tmp / f"{name}.toml"
    config.write_text(f"[sync]\npeer_writer_share = {share}\n")
    return NodeProcess(tmp, name=name, token=TOKEN, extra_args=[
        "--cluster-secret", SECRET, "--config", str(config), "--log-level", "info"])


async def quiet(url: str, seconds: float) -> Appends:
    appends, done = Appends(), asyncio.Event()
    client = asyncio.create_task(append_while(url, TOKEN, done, appends))
    await asyncio.sleep(seconds)
    done.set()
    await client
    return appends


def main() -> None:
    parser = cli.parser("bench.peer_flood", __doc__)
    parser.add_argument("--seconds", type=cli.positive_float, default=10.0,
                        help="seconds of appends in each run")
    parser.add_argument("--shares", type=cli.comma_list(writer_share), default="0.25,0.5,1",
                        help="values of [sync] peer_writer_share, each above 0 and at most 1, "
                             "separated by commas: one flooded run for each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with node_for(Path(tmp), "quiet", 0.5) as node:
            print(f"no flood: {asyncio.run(quiet(node.url, args.seconds)).summary()}")
        for share in args.shares:
            with node_for(Path(tmp), f"share{share}", share) as node:
                sent, appends = asyncio.run(
                    flood_and_append(node.url, SECRET, TOKEN, args.seconds))
                print(f"peer_writer_share {share:g}: {sent} hellos sent in "
                      f"{args.seconds:g} s; {appends.summary()}")


if __name__ == "__main__":
    cli.run(main)
