"""The devices that stored records remove, as the store's writer thread sees them.

A link's pushes are decided on the writer thread (``node.peers.driver``), one call at a
time. ``node.devices`` learns a removal after its commit, on the event loop, and the
link's last push follows from there; meanwhile a call the link had already asked of
the writer (the push the removal's own commit woke, say) would send the removed device
whatever it lacks. So before every call into a link's machine, on the writer thread,
``Removals.removed`` reads the removal records committed since it last looked: no call
after the commit that stored a removal pushes ordinary events to that device
(``sync.peer.machine.PeerSync.stop_pushing``).

A removal counts as ``crdt.membership`` counts it: a ``device_removed`` record of an
origin bound to a device. An origin is bound by its first record, which every node
stores before the origin's later ones, so a removal is read here bound or never.
"""

from __future__ import annotations

from crdt import membership
from crdt.errors import NotFound
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION

#: Records read per page while catching up.
READ_PAGE = 1000


class Removals:
    """The devices removed by the records stored so far; use it on the writer thread.

    >>> import tempfile
    >>> store = EventStore.open(tempfile.mkdtemp())
    >>> removals = Removals()
    >>> removals.removed(store, "d" * 52)
    False
    >>> store.close()
    """

    def __init__(self) -> None:
        self._removed: set[str] = set()
        self._position = 0  # the last position of the devices session read
        self._head = -1  # the store's head when last read: a read only after a commit

    def removed(self, store: EventStore, device_id: str) -> bool:
        """Whether a record stored in ``store`` removes ``device_id``; call it on the
        writer thread (the head it reads does not move meanwhile)."""
        if store.head != self._head:
            self._catch_up(store)
        return device_id in self._removed

    def _catch_up(self, store: EventStore) -> None:
        head = store.head
        while True:
            try:
                page = store.get_events_since(DEVICES_SESSION, self._position, READ_PAGE)
            except NotFound:  # no membership record yet
                page = []
            for stored in page:
                record = membership.read(stored.event)
                if record is not None and record[0] == membership.DEVICE_REMOVED \
                        and store.origin_device(stored.origin) is not None:
                    self._removed.add(record[1])
            if page:
                self._position = page[-1].position
            if len(page) < READ_PAGE:
                break
        self._head = head
