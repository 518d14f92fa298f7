"""The devices that stored records remove, as the store's writer thread sees them.

A link's pushes are decided on the writer thread (``node.peers.driver``), one call at a
time. ``node.devices`` learns a removal after its commit, on the event loop, and the
link's last push follows from there; meanwhile a call the link had already asked of
the writer (the push the removal's own commit woke, say) would send the removed device
whatever it lacks. So before every call into a link's machine, on the writer thread,
``Removals.removed`` answers from the removal records committed so far: no call after
the commit that stored a removal pushes ordinary events to that device
(``sync.peer.machine.PeerSync.pushing``).

What it costs the writer: ``Removals.follow`` starts it from what ``node.devices`` read
off the writer, and from then on it reads the devices session only after a commit that
stored records of it (``EventStore.stored_listeners``, told on the writer thread before
any later call): a commit of other sessions costs a link's call nothing.

A removal counts as ``crdt.membership`` counts it: a ``device_removed`` record of an
origin bound to a device. An origin is bound by its first record, which every node
stores before the origin's later ones, so a removal is read here bound or never.
"""

from __future__ import annotations

from collections.abc import Iterable

from crdt import membership
from crdt.log.records import Appended
from crdt.log.store import EventStore
from crdt.membership import DEVICES_SESSION
from node.devices_store import READ_PAGE, records_after


def read(store: EventStore, position: int) -> tuple[set[str], int]:
    """The devices removed by the records of the devices session after ``position``,
    and the last position read; any thread."""
    removed: set[str] = set()
    while True:
        page = records_after(store, position)  # none: no membership record yet
        for stored in page:
            record = membership.read(stored.event)
            if record is not None and record[0] == membership.DEVICE_REMOVED \
                    and store.origin_device(stored.origin) is not None:
                removed.add(record[1])
        if page:
            position = page[-1].position
        if len(page) < READ_PAGE:
            return removed, position


class Removals:
    """The devices removed by the records stored so far; use it on the writer thread.

    >>> import tempfile
    >>> store = EventStore.open(tempfile.mkdtemp())
    >>> removals = Removals()
    >>> removals.follow(store, set(), 0)
    >>> removals.removed(store, "d" * 52)
    False
    >>> store.close()
    """

    def __init__(self) -> None:
        self._removed: set[str] = set()
        self._position = 0  # the last position of the devices session read
        #: ``follow`` was called: commits tell whether there is anything to read.
        self._following = False
        #: Records of the devices session may be stored that were not read.
        self._unread = True
        self._head = -1  # the store's head when last read (before ``follow``)

    def follow(self, store: EventStore, removed: Iterable[str], position: int) -> None:
        """On the writer thread, before links run: start from ``removed``, the devices
        that the records up to ``position`` remove (as ``node.devices`` read them), and
        from now on read only after a commit that stored records of the devices session.
        Until then every call after a commit reads what was stored since."""
        if not self._following:
            store.stored_listeners.append(self._stored)
            self._following = True
        self._removed.update(removed)
        self._position = max(self._position, position)
        self._unread = True  # what was stored after ``position``

    def removed(self, store: EventStore, device_id: str) -> bool:
        """Whether a record stored in ``store`` removes ``device_id``; call it on the
        writer thread (no commit lands meanwhile)."""
        if self._may_have_unread(store):
            head = store.head
            removed, self._position = read(store, self._position)
            self._removed.update(removed)
            self._unread, self._head = False, head
        return device_id in self._removed

    def _may_have_unread(self, store: EventStore) -> bool:
        """Following, only a commit that stored records of the devices session leaves
        any unread; before ``follow`` (a link accepted before gossip started), any
        commit since the last read may have."""
        return self._unread if self._following else store.head != self._head

    def _stored(self, results: list[Appended]) -> None:
        """After a commit, on the writer thread: note whether it stored records of the
        devices session (a removal this node held already is read already)."""
        if not self._unread:
            self._unread = any(appended.created
                               and appended.stored.event.session_key == DEVICES_SESSION
                               for appended in results)
