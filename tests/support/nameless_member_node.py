"""A build of clawsync standing for an older member, whose refusal of a device waiting
to be added gives no name of its own (signed detail without ``name``), so the waiting
device names it by its id alone. Run it as the ``clawsync`` command, ``python -m
tests.support.nameless_member_node serve ...``; importing it changes nothing."""

from __future__ import annotations

from typing import Any

if __name__ == "__main__":
    from node.main import main
    from node.peers.admission import Admission
    from node.peers.transport import NOT_MEMBER

    admit = Admission.admit

    def nameless(self: Admission, *args: Any, **kwargs: Any) -> Any:
        said = admit(self, *args, **kwargs)
        if said is None or said[0] != NOT_MEMBER:
            return said
        code, detail, text = said
        return code, {key: value for key, value in detail.items() if key != "name"}, text

    setattr(Admission, "admit", nameless)  # noqa: B010 (what the site asks)
    main()
