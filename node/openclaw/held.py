"""Each agent's cursors (its main one and its keys') as the node holds them, as ``watch``
last read or saved them.

They are read from the node again at a pass that reads the agent for a change (one of
its stores changed, a record waiting in it is tried again, or its last pass failed), not
at every look: a record that waits for the node's clock, or a line still being written,
keeps its store looked at every ``POLL_S``, and two full cursor GETs (up to
``CURSOR_BYTES_MAX`` each) at each look would cost the node and this process for as
long as the wait lasts. One changed there since is read on from, and said.

What is about to be saved is noted first: a save whose answer was lost (the node took it,
then the connection broke) is found on the node at the next read, and taken as this
bridge's own, not as a change made there (which would end the agent's waits and forget
what its keys hold here).

A save is refused (412) when the cursor was changed on the node since this bridge read or
saved it (the sink saves with its tag, ``node.cli.openclaw_sink.HttpSink``):
``CursorChangedOnNode`` has the bridge read the agent's cursors again and go on from the
node's, as at a pass that finds them changed. What was sent stays noted: a tag names a
value, so a save is refused too when another bridge saved that very value first; the
read then finds it, and it is taken as this bridge's own (nothing is said, and the waits
are kept), as for a save whose answer was lost."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Protocol

from crdt.errors import Picklable
from node.client.errors import ClientError
from node.openclaw.session_keys import SessionKeys, keys_name, refused_keys_hint
from node.openclaw.tally import Tally

#: Saves of one agent's cursors the node may refuse in one pass, each for a change made
#: there meanwhile (``CursorChangedOnNode``), before the pass gives up
#: (``CursorChangedTooOften``): so many are no person's reset but another bridge saving
#: them too, each read again from the other's save.
CURSOR_CHANGED_MAX = 10


class CursorChangedOnNode(Picklable):
    """The node refused a save of cursor ``name``: it was changed there since it was
    read. Nothing was saved; the agent's cursors are to be read again."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the cursor {name} was changed on the node")
        self.name = name
        #: What the refused step did (its ``Tally``: what it stored, skipped and left
        #: waiting), which the pass counts: the read again from the node's cursor may not
        #: meet it (saved ahead by another bridge), nor say again what it said.
        self.read = Tally()


class CursorChangedTooOften(Picklable):
    """A pass gave up on an agent whose cursor ``name`` the node refused to save
    ``times`` times (``CURSOR_CHANGED_MAX``), each changed there meanwhile: another
    import saves it too. ``tally``: what the pass did before it gave up."""

    def __init__(self, state: Path, name: str, times: int, tally: Tally) -> None:
        super().__init__(
            f"{state}: the cursor {name} was changed on the node {times} times while one "
            "pass read its agent, each change made between this import's read of it and "
            "its save: another `clawsync openclaw` is importing this state folder into the "
            "node; run one only")
        self.name, self.times, self.tally = name, times, tally


class CursorStore(Protocol):
    """Where cursors are kept: a node over HTTP, or an embedded store."""

    async def cursor(self, name: str) -> dict[str, int] | None: ...

    async def save_cursor(self, name: str, cursor: dict[str, int]) -> None: ...

    def keep(self, names: Collection[str]) -> None:
        """Forget what is held of the cursors not in ``names`` (their agents are gone):
        each is read again before it is saved, should its agent come back."""


class HeldCursors:
    """The cursors of the agents read, by cursor name (``state.cursor_name``)."""

    def __init__(self, sink: CursorStore, path: Path, tell: Callable[[str], None]) -> None:
        self.sink, self.path, self.tell = sink, path, tell
        # Cursor name -> the agent's cursor as the node holds it.
        self.main: dict[str, dict[str, int]] = {}
        # Cursor name -> the keys its agent's files were read under (``session_keys``).
        self.keys: dict[str, SessionKeys] = {}
        # Cursor name (main or keys) -> what was sent to the node, its answer not come.
        self._sending: dict[str, dict[str, int]] = {}
        # Agents whose pass began but did not end: a request failed, and what the node
        # holds is not known here; read again at the next pass that reads them.
        self._unsure: set[str] = set()

    async def load(self, name: str, changed: bool) -> bool:
        """Read agent ``name``'s cursors from the node if its stores ``changed`` (or it
        is not held, or its last pass failed); True if its main cursor was changed on the
        node since this bridge last read or saved it (its waits end: a record the node
        refuses for its time, read again, waits anew)."""
        if not changed and name in self.main and name in self.keys and name not in self._unsure:
            return False
        self._unsure.add(name)  # till the pass ends
        cursor = dict(await self.sink.cursor(name) or {})
        changed_there = name in self.main and cursor not in (self.main[name],
                                                             self._sending.get(name))
        if changed_there:
            self._changed_on_node(name)
        self.main[name] = cursor
        self._sending.pop(name, None)
        keys, held = await self.sink.cursor(keys_name(name)), self.keys.get(name)
        if held is None or (held.on_node or {}) != (keys or {}):
            if held is not None and keys is not None and keys == self._sending.get(
                    keys_name(name)):
                held.stored(keys)  # this bridge's own save: what the keys hold stays
            else:
                if held is not None:
                    self._changed_on_node(keys_name(name))
                self.keys[name] = SessionKeys(keys)
        self._sending.pop(keys_name(name), None)
        return changed_there

    def done(self, name: str) -> None:
        """Agent ``name``'s pass ended: what the node holds of its cursors is known here."""
        self._unsure.discard(name)

    async def save(self, name: str, cursor: dict[str, int]) -> None:
        """Save agent ``name``'s main cursor; held once the node took it."""
        await self._send(name, cursor)
        self.main[name] = cursor

    async def save_keys(self, name: str) -> None:
        """Save agent ``name``'s keys, if the node does not hold them already."""
        keys = self.keys[name]
        saved = keys.saved()
        if saved != keys.on_node:
            try:
                await self._send(keys_name(name), saved)
            except ClientError as error:
                if error.status not in (400, 413):  # refused what was sent, or not
                    raise
                raise error.with_hint(refused_keys_hint(keys_name(name))) from None
        keys.stored(saved)

    async def _send(self, name: str, cursor: dict[str, int]) -> None:
        self._sending[name] = cursor  # noted first: the answer may be lost
        try:
            await self.sink.save_cursor(name, cursor)
        except ClientError as error:
            if error.status != 412:
                raise
            # Refused, but what was sent stays noted: another bridge may have saved that
            # very value first (``load`` takes it as this bridge's own).
            raise CursorChangedOnNode(name) from None
        del self._sending[name]

    def keep(self, names: Iterable[str]) -> None:
        """Forget the agents not in ``names`` (none of their stores is left): their
        cursors stay on the node, read again if they come back."""
        kept = set(names)
        self.main = {name: cursor for name, cursor in self.main.items() if name in kept}
        self.keys = {name: keys for name, keys in self.keys.items() if name in kept}
        kept |= {keys_name(name) for name in kept}
        self._sending = {name: cursor for name, cursor in self._sending.items()
                         if name in kept}
        self._unsure &= kept
        self.sink.keep(kept)

    def _changed_on_node(self, name: str) -> None:
        self.tell(f"{self.path}: the cursor {name} was changed on the node since this "
                  "import last read or saved it; read on from what the node holds now")
