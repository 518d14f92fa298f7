"""``clawsync demo``: three nodes on this machine, a network partition, and the merge.

The command only: what it does is ``node.cli.demo_run``, loaded when it runs, so that
its ``--help`` loads neither rich nor the HTTP client.
"""

from __future__ import annotations

import click

from node.whole_numbers import WholeRange


@click.command()
@click.option("--keep", is_flag=True,
              help="Keep the nodes (and their links) running after the demo, print their "
                   "URLs, and stop them on Ctrl-C.")
@click.option("--port", type=WholeRange(1, 65535 - 2), metavar="PORT",
              help="A listens on PORT, B and C on the two ports after it (the links "
                   "between them, on free ports). Default: free ports, below the "
                   "system's range for outgoing connections.")
def demo(keep: bool, port: int | None) -> None:
    """See replication heal a partition, on this machine, in seconds.

    Starts three nodes (A, the hub; B and C dial it), cuts B and C off, writes to one
    session on both, heals the links and shows the merged session and each node's
    state. The nodes' data goes to a temporary folder, deleted at the end.

    B and C each dial A through a link: a small proxy in this process, which the demo
    cuts to make the partition. The links listen on free loopback ports, chosen as the
    demo starts and never PORT or the two after it, even with --port.

    \b
    Examples:
      clawsync demo
      clawsync demo --keep
      clawsync demo --keep --port 7901
    """
    from node.cli.demo_run import run_demo

    run_demo(keep, port)
