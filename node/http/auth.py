"""Credentials on requests: the one check behind every secret a node takes.

The client token (/v1, /metrics), the cluster secret (/peer/v1) and the Automerge tokens
(/automerge) are all compared here. Header values arrive as whatever bytes a client sent;
aiohttp decodes those that are not UTF-8 to lone surrogates (``b"\\xff"`` becomes
``"\\udcff"``), which a plain ``str.encode()`` refuses with ``UnicodeEncodeError``. Such a
credential is simply a wrong one: ``surrogatepass`` turns every string, lone surrogates
included, into bytes, and does so one-to-one, so two strings give equal bytes exactly
when they are equal.

>>> matches("\\udcff", "secret"), matches("secret", "secret")
(False, True)
"""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web


def bearer(request: web.BaseRequest) -> str:
    """The token of ``Authorization: Bearer <token>``; empty when there is none."""
    scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else ""


def matches(given: str, expected: str) -> bool:
    """True when ``given`` is ``expected``, for any string a client can send; never for
    an empty ``expected``, which a request without the header would match (the settings
    refuse one: ``node.checks.check_token``).

    ``hmac.compare_digest``: the time taken must not reveal how much of a guess matched.

    >>> matches("", ""), matches("s3cret", "s3cret")
    (False, True)
    """
    return bool(expected) and hmac.compare_digest(_octets(given), _octets(expected))


def _octets(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
