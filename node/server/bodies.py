"""Request bodies that are one JSON (or CBOR) object of known fields: the checks that
``/v1/devices``, ``/v1/tokens`` and forget share.

>>> fields({"name": "x"}, allowed={"name", "read_only"}, shape='{"name": ...}')
{'name': 'x'}
>>> fields([1], allowed={"name"}, shape='{"name": ...}')
Traceback (most recent call last):
...
crdt.errors.InvalidInput: must be an object: {"name": ...}
>>> fields({"nme": "x"}, allowed={"name"}, shape='{"name": ...}')
Traceback (most recent call last):
...
crdt.errors.InvalidInput: nme: unknown field 'nme'
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Any

from aiohttp import web

from crdt.errors import InvalidInput
from node.http.wire import body_format, decode_body, read_body


def fields(value: Any, *, allowed: Set[str], shape: str,
           required: Iterable[str] = ()) -> dict[str, Any]:
    """``value`` if it is an object of ``allowed`` fields holding each of ``required``;
    else ``InvalidInput`` naming the first field at fault (``shape`` shows the form)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"must be an object: {shape}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", field=unknown[0])
    for name in required:
        if name not in value:
            raise InvalidInput("is required", field=name)
    return value


async def read_fields(request: web.Request, *, bytes_max: int, timeout_s: float,
                      allowed: Set[str], shape: str,
                      required: Iterable[str] = ()) -> dict[str, Any]:
    """The request's body, read within the limits, decoded and checked by ``fields``."""
    body_type = body_format(request)  # before reading: a 415 needs no body
    body = await read_body(request, bytes_max=bytes_max, timeout_s=timeout_s)
    return fields(decode_body(body, body_type), allowed=allowed, shape=shape,
                  required=required)
