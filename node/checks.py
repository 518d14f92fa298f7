"""Checks of the values a person gives a node and the client commands that no setting's
type says enough about: tokens and secrets (``check_token``), addresses (a node's own
route copied into one, a user name or password in one), loopback hosts.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

#: The first segment of each of the node's own routes: an address holding one is a page or
#: an API path copied whole, not a node's address (``api_path_base``).
API_ROOTS = ("v1", "automerge", "peer", "console", "healthz", "metrics")
#: What ``--print-config`` shows in place of a secret it hides. Refused as a token or a
#: secret (``check_token``): copied from a printout into a file, it would be a token
#: anyone can guess, one that even passes the check for a token beyond loopback.
HIDDEN = "(set)"


def api_path_base(url: str) -> str | None:
    """The node's own address in ``url`` when its path names one of the node's routes
    (an API path or a page, copied whole), else None. Any other path is kept: a reverse
    proxy's prefix.

    >>> api_path_base("http://h:7878/v1/sessions"), api_path_base("https://sync.example/cs/")
    ('http://h:7878', None)
    """
    scheme, netloc, path, _query, _fragment = urlsplit(url)
    parts = path.split("/")
    at = next((at for at, part in enumerate(parts) if part in API_ROOTS), None)
    return None if at is None else f"{scheme}://{netloc}{'/'.join(parts[:at])}"


def check_token(token: str, what: str = "the token") -> None:
    """``ValueError`` for a token (or ``what`` else a header carries: the cluster secret)
    that cannot protect anything: an empty one, which a request without the header
    matches, or one no header could carry: one with a control character (a line ending
    kept from a file: ``$(cat token.txt)`` of a file with CRLF line ends); or one that
    no request could match: one that begins or ends with white space, which a node
    takes off the token a request gives (``node.http.auth.bearer``), as HTTP takes it off
    a header's value. ``HIDDEN``, --print-config's placeholder, is refused too: it is
    no secret. No command passes an empty one: typed, in the environment or in the
    file, an empty token or secret means none (``serve`` says so when a check then
    wants a token); the refusal is for a ``Config`` made in code.

    >>> check_token("")
    Traceback (most recent call last):
    ...
    ValueError: the token is empty: a request without one would match it
    >>> check_token(" s3cret")
    Traceback (most recent call last):
    ...
    ValueError: the token begins or ends with white space, which HTTP takes off a header: ...
    """
    if not token:
        raise ValueError(f"{what} is empty: a request without one would match it")
    if token == HIDDEN:
        raise ValueError(f"{what} is {HIDDEN!r}, the placeholder --print-config shows for "
                         "a secret it hides, not a secret: give the real one")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in token):
        raise ValueError(f"{what} holds a control character (a line ending, from a file "
                         "with CRLF line ends?), which no header can carry")
    if token != token.strip():
        raise ValueError(f"{what} begins or ends with white space, which HTTP takes off "
                         "a header: no request could match it")


def holds_credentials(url: str) -> bool:
    """Whether ``url`` holds a user name or password (``http://user:pw@host``), also one
    without a scheme (``user:pw@host``) or with a mistyped one (``http:/u:pw@h``,
    ``http:///u:pw@h``, ``http//u:pw@h``), which a URL parser would read as a path, or
    as a scheme ``u`` when a "://" comes later (``u:pw@h/?next=http://x``): the errors
    about such an address would show it whole. Read as text, not parsed: whatever
    follows a scheme (a leading ``name:``, or ``http`` and a slash) and slashes, up to
    the first of ``/?#\\``, is where a user name would be; an ``@`` there is one. So is
    an ``@`` further on when that part is no host[:port]: a password with a ``/`` typed as
    it is ends it early (``http://u:p/w@h``; ``u:p/w@h``, whose ``u:`` is no scheme).

    >>> holds_credentials("http://u:pw@h:7878"), holds_credentials("http://h:7878")
    (True, False)
    >>> holds_credentials("u:pw@h:7878"), holds_credentials("h:7878")
    (True, False)
    >>> holds_credentials("http:///u:pw@h"), holds_credentials("u:pw@h#http://x")
    (True, True)
    >>> holds_credentials("http://h:7878/a@b"), holds_credentials("h:7878/?x=a@b")
    (False, False)
    >>> holds_credentials("u:p/w@h"), holds_credentials("h:7878/a@b")
    (True, False)
    """
    scheme = _SCHEME.match(url)
    rest = url[scheme.end():] if scheme else url
    places = [_authority(rest.lstrip("/\\"))]
    if scheme and not rest.startswith(("/", "\\")):  # "u:pw@h", "h:7878": maybe no scheme
        places.append(_authority(url))
    if any("@" in place for place in places):
        return True
    before_query = re.split(r"[?#]", url, maxsplit=1)[0]
    return "@" in before_query and not all(_HOST_PORT.fullmatch(place) for place in places)


#: A scheme before an address (``http:``, ``u:`` of ``u:pw@h``; a port is no scheme: it
#: begins with a digit), or ``http``/``https`` whose colon was left out (``http//h``).
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:|https?(?=[/\\])", re.IGNORECASE)
#: A host (a name, or an IP address in brackets) and maybe a port: no user name there.
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]*)(:[0-9]*)?")


def _authority(text: str) -> str:
    """Where the user name, password, host and port are in ``text``, an address without
    its scheme: all before the first of ``/?#\\``."""
    return re.split(r"[/?#\\]", text, maxsplit=1)[0]


def address_problem(url: str) -> str | None:
    """What keeps an ``http(s)://`` address (one without credentials:
    ``holds_credentials``) from being dialed, else None: no host (``http:///h``), or a
    port no connection could use.

    >>> address_problem("http://[fe80::1%25eth0]:7878"), address_problem("http:///h:7878")
    (None, 'names no host')
    >>> address_problem("http://h:99999")
    'has a port that is not between 1 and 65535'
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[x"
        return "is not a URL"
    if not parts.hostname:
        return "names no host"
    try:
        port = parts.port
    except ValueError:  # a port that is not a number, or beyond 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        return "has a port that is not between 1 and 65535"
    return None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
