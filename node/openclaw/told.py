"""What the bridge said of each store (problems, warnings), so that each is said once.

A text is said once while the reads of its store meet it: a file still being written is
seen again at every look. What a whole read of the store no longer meets (passed by the
cursor, mended) is forgotten, and so is a store gone: what is held stays as small as
what the stores hold now, though ``watch`` runs for months and the texts name byte
offsets, which keep changing as a file grows.

>>> told = Told()
>>> reading = told.reading("store")
>>> reading.first("line at byte 10: still being written"), reading.first(
...     "line at byte 10: still being written")
(True, False)
>>> reading.end(whole=True)
>>> again = told.reading("store")
>>> again.first("line at byte 10: still being written")  # met again: not said again
False
>>> again.end(whole=True)
>>> told.reading("store").end(whole=True)  # a read that no longer met it
>>> told.reading("store").first("line at byte 10: still being written")
True
"""

from __future__ import annotations

from collections.abc import Container, Hashable


class Told:
    """Store -> the texts said of it that its last whole read met."""

    def __init__(self) -> None:
        self._said: dict[Hashable, set[str]] = {}

    def __len__(self) -> int:
        """How many texts are held, of all the stores."""
        return sum(map(len, self._said.values()))

    def reading(self, store: Hashable) -> Reading:
        return Reading(self._said, store)

    def keep(self, stores: Container[Hashable]) -> None:
        """Forget what was said of the stores not in ``stores`` (gone)."""
        self._said = {store: said for store, said in self._said.items() if store in stores}


class Reading:
    """One read of a store: what it met of what is said."""

    def __init__(self, said: dict[Hashable, set[str]], store: Hashable) -> None:
        self._said, self._store = said, store
        self._met: set[str] = set()

    def first(self, text: str) -> bool:
        """Whether ``text`` is to be said: neither this read nor the last met it."""
        first = text not in self._met and text not in self._said.get(self._store, ())
        self._met.add(text)
        return first

    def end(self, whole: bool) -> None:
        """Remember what this read met; one cut short (the node down, the cursor full)
        may not have met all the last one did, which is kept too till a whole read."""
        self._said[self._store] = self._met if whole else \
            self._said.get(self._store, set()) | self._met
