"""The one exception of the HTTP API client, ``ClientError``, in a module of its own: the
commands catch it, and a module that only names it must not load the client (aiohttp) to
do so, so that a command's ``--help`` stays quick (tests/node/cli/test_loading.py)."""

from __future__ import annotations

#: Characters of a node's address that an error shows (a refused ``--node``, or the
#: client's URL in "cannot reach" and the like): more than any address typed holds; a
#: longer one (a page pasted, a runaway script's 5,000 digits) is cut there, with "…"
#: and its length, so that the error stays a line to read.
NODE_SHOWN_CHARS_MAX = 200


def shown_address(text: str, *, quoted: bool = True) -> str:
    """``text``, a node's address, as an error names it (``quoted``: as a Python
    string), or its first ``NODE_SHOWN_CHARS_MAX`` characters, "…" and its length.

    >>> shown_address("h:7878"), shown_address("h:7878", quoted=False)
    ("'h:7878'", 'h:7878')
    >>> shown_address("7" * 5000)[196:]
    "77777'… (5000 characters)"
    """
    cut = text[:NODE_SHOWN_CHARS_MAX]
    said = repr(cut) if quoted else cut
    return said if cut == text else f"{said}… ({len(text)} characters)"


#: ``ClientError.code`` of a connection that failed at the node's address, refused or
#: unroutable (``node.client.failures.not_listening``): no node listens there. The
#: client's own word, not a node's: no answer came (``status`` is None).
NOT_LISTENING = "not_listening"


class ClientError(Exception):
    """The node could not be reached, or it refused or failed a request.

    ``status`` is the HTTP status (None when no answer came); ``code``, ``field`` and
    ``said`` are the node's error code, the field it blamed and its own words, when it
    said so. ``details`` holds the other fields of its error object, as it sent them
    (such as a ``timestamp_ahead`` refusal's ``bound_ms`` and ``clock_ms``): whoever reads
    one checks its type, as any node may send anything there. ``in_between``: the answer
    is probably not the node's but from something in front of it (a reverse proxy's own
    login or error page, a firewall): no JSON error where every node's answer has one.

    >>> error = ClientError("the node refused", status=400, code="invalid_field")
    >>> str(error), error.status, error.code, error.field, error.details
    ('the node refused', 400, 'invalid_field', None, {})
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None, said: str | None = None,
                 details: dict[str, object] | None = None,
                 retry_after_s: float | None = None, in_between: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.said = said
        self.details = details or {}
        #: The answer's ``Retry-After``, in seconds, if it gave one.
        self.retry_after_s = retry_after_s
        self.in_between = in_between

    def with_hint(self, hint: str) -> ClientError:
        """This error with ``hint`` after its message (where to look for the right
        name), every field kept.

        >>> error = ClientError("no such origin", status=404, code="not_found")
        >>> hinted = error.with_hint("`clawsync origins` lists them")
        >>> str(hinted), hinted.status, hinted.code
        ('no such origin; `clawsync origins` lists them', 404, 'not_found')
        """
        return ClientError(f"{self}; {hint}", status=self.status, code=self.code,
                           field=self.field, said=self.said, details=self.details,
                           retry_after_s=self.retry_after_s, in_between=self.in_between)
