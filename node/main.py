"""The ``clawsync`` command: the client commands of ``node.cli`` and ``serve`` from
``node.server``. The one place that joins the two, so that the client commands never load
the server (and start fast).

Exit codes: 0 success, 1 the node could not be reached, refused the request or could not
start, 2 a usage error found before any request was sent, 130 interrupted by Ctrl-C.

May import: node.cli, node.server
"""

from __future__ import annotations

from node.cli import interrupted

try:
    from node.cli.group import main
    from node.server.command import serve
except KeyboardInterrupt:  # Ctrl-C while the commands load (about a second): no traceback
    interrupted()

main.add_command(serve)

__all__ = ["main"]

if __name__ == "__main__":
    main(prog_name="clawsync")
