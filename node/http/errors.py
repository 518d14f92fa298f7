"""Errors about HTTP itself (headers, parameters, credentials), not about the data: each
carries the status, code and field of the JSON error answer ``wire.error_response`` makes
of it.

>>> bad_parameter("limit", "must be an integer from 1 to 1000").status
400
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crdt.errors import Picklable

#: Seconds a request refused because the node is stopping (or its store closing) is told
#: to wait before it asks again (``Retry-After``): about what a restart takes. A node
#: that does not come back costs the client one more refusal, later.
STOPPING_RETRY_AFTER_S = 5


class HttpError(Picklable):
    """An error that is about HTTP itself (headers, parameters), not about the data."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        #: Fields of the error object beyond code, message and field (``error_body``).
        self.details = dict(details or {})


def invalid_encoding(message: str) -> HttpError:
    return HttpError(400, "invalid_content_encoding", message, field="Content-Encoding")


def unauthorized(
        message: str = "a valid 'Authorization: Bearer <token>' is required") -> HttpError:
    return HttpError(401, "unauthorized", message, field="Authorization",
                     headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> HttpError:
    """A valid credential that does not open what was asked (401 is for none or a wrong
    one: "check your token" would send its holder looking in the wrong place)."""
    return HttpError(403, "forbidden", message, field="Authorization")


def stopping(message: str = "the node is stopping", *,
             retry_after_s: int | None = STOPPING_RETRY_AFTER_S) -> HttpError:
    """A request come in while the node stops: the code a request that finds the store
    closing gets too (``wire.error_response`` of ``StoreClosing``), with the
    ``Retry-After`` of a restart (None: none)."""
    return HttpError(503, "unavailable", message, headers=None if retry_after_s is None
                     else {"Retry-After": str(retry_after_s)})


def bad_parameter(name: str, message: str) -> HttpError:
    return HttpError(400, "invalid_parameter", message, field=name)
