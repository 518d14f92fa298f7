"""The ``clawsync`` command: the client commands of ``node.cli`` and ``serve`` from
``node.server``. The one place that joins the two, so that the client commands never load
the server (and start fast): the group loads ``serve``'s module, as each command's, only
when it is asked for.

Exit codes (README, "Exit codes"): 0 success; 1 the node could not be reached, refused
the request or failed it, or could not start; 2 a usage error, or input the node refused
as malformed; Ctrl-C ends every command (``serve`` too) by SIGINT: a shell shows 130.

May import: node.cli, node.server
"""

from __future__ import annotations

# The first statement: the script that runs ``main`` imports this module before any of
# the commands, and a Ctrl-C in that moment must end as any other does, not as a
# traceback. (A Ctrl-C while a command's module loads comes in the group's
# ``get_command``.)
try:
    from node.cli.group import main
except KeyboardInterrupt:
    from node.cli import interrupted

    interrupted()

main.add_lazy_command("serve", "node.server.command:serve",
                      "Run a node: keep the event log in --data-dir DIR and serve the HTTP API "
                      "until stopped (SIGTERM, or SIGHUP when its terminal closes: exit 0; Ctrl-C: "
                      "dies by SIGINT, a shell shows 130; started with SIGHUP ignored, as by "
                      "nohup, it keeps running).")

__all__ = ["main"]

if __name__ == "__main__":
    main(prog_name="clawsync")
