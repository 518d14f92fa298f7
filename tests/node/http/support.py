"""What the HTTP tests share: a log that cannot be written."""

from __future__ import annotations

from typing import Any


class CannotWarn:
    """In place of a module's ``log``: one whose warnings and debug lines cannot be
    written while ``failing`` (a full disk, say); its errors can, so that what is said
    of the failure is seen."""

    def __init__(self, log: Any) -> None:
        self.log, self.error, self.failing = log, log.error, True

    def warning(self, *args: Any, **kwargs: Any) -> None:
        self._write("warning", args, kwargs)

    def debug(self, *args: Any, **kwargs: Any) -> None:
        self._write("debug", args, kwargs)

    def _write(self, level: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.failing:
            raise OSError("the log cannot be written")
        getattr(self.log, level)(*args, **kwargs)
