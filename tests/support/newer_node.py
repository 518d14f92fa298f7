"""A build of clawsync that knows one kind more than this version: ``reaction_added``.
It stands for a newer release in the mixed-version tests: run it as the ``clawsync``
command, ``python -m tests.support.newer_node serve ...``. Importing this module
registers nothing; only running it does."""

from __future__ import annotations

from crdt.kinds import register_kind, text
from node.main import main

#: The kind this build adds, and its fields.
NEWER_KIND = "reaction_added"

if __name__ == "__main__":
    register_kind(NEWER_KIND, {"emoji": text, "message_id": text})
    main(prog_name="clawsync")
