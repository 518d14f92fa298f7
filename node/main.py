"""The ``clawsync`` command: the client commands of ``node.cli`` and ``serve`` from
``node.server``. The one place that joins the two, so that the client commands never load
the server (and start fast).

Exit codes (README, "Exit codes"): 0 success; 1 the node could not be reached, refused
the request or failed it, or could not start; 2 a usage error, or input the node refused
as malformed; Ctrl-C ends every command (``serve`` too) by SIGINT: a shell shows 130.

May import: node.cli, node.server
"""

from __future__ import annotations

# The first statement: the script that runs ``main`` imports this module before any of
# the commands, and a Ctrl-C in that second must end as any other does, not as a traceback.
try:
    from node.cli.group import main
    from node.server.command import serve
except KeyboardInterrupt:
    from node.cli import interrupted

    interrupted()

main.add_command(serve)

__all__ = ["main"]

if __name__ == "__main__":
    main(prog_name="clawsync")
