"""Whether an address is one a node could dial: an ``http://`` or ``https://`` URL (the
scheme in any case, as RFC 3986 reads it: ``normal_address`` writes it in lower case) with
a host, a port (if any) between 1 and 65535, no user name or password, and no query or
fragment (``query_or_fragment``). Checks of text and of what a URL parser reads in it
(``urlsplit``; no lookup, no connection), shared by every place an address comes in: a
node's own ``--peer``, ``--advertise-url`` and ``--node`` (``node.config``,
``node.cli.options``), a device's address typed at ``POST /v1/devices``, the membership
records other nodes send (``crdt.membership``), the addresses peers give of themselves
and in their member lists (``node.peers.addresses``, for ``node.peers.transport`` and
``node.peers.learning``), and the node URL a Python caller gives ``Client``
(``node.client.transport``). No error here shows the address: it may hold a password,
or a token in its query.

Any query or fragment is refused, whatever it holds, and never shown: a node (and
``Client``) puts its paths after an address (``/peer/v1/ws``), which land in the query
(``http://h/?page=2/peer/v1/ws``: the node there answers 400) or the fragment, so such
an address reaches no node's API; and a query may carry a credential under any name
(``?sig=``, ``?X-Amz-Signature=``), which every node it is listed to would show and log.
A membership record an older node wrote with one is read as one with an address no node
could dial (``crdt.membership``): the device counts as a member on every node, its
address is withheld.

>>> address_refusal("http://hub:7878"), address_refusal("http://u:hunter2@hub")
(None, 'holds a user name or password')
>>> address_refusal("ftp://hub"), address_refusal("http://hub:0")
('must be an http:// or https:// URL', 'has a port that is not between 1 and 65535')
>>> address_refusal("HTTPS://hub"), normal_address("HTTPS://hub")
(None, 'https://hub')
>>> address_refusal("http://hub:7878/?page=2"), address_refusal("http://hub#top")
("has a query: the node's paths would land in it", 'has a fragment')
"""

from __future__ import annotations

import ipaddress
import re
from typing import NamedTuple
from urllib.parse import urlsplit  # text only: crdt does no networking


def address_refusal(url: str) -> str | None:
    """Why ``url`` is no address a node could dial (``unshown_refusal``, not
    ``http(s)://``, ``address_problem``), said without showing it; None if it is one."""
    unshown = unshown_refusal(url)
    if unshown is not None:
        return unshown.why
    if not _HTTP.match(url):
        return "must be an http:// or https:// URL"
    return address_problem(url)


def normal_address(url: str) -> str:
    """``url`` with its scheme in lower case (``HTTP://h`` is ``http://h``: schemes are
    case-insensitive), as an address is kept, listed, shown and dialed, so that one node
    typed two ways is one address. Only the scheme: the rest is left as it was given.

    >>> normal_address("HTTP://Hub:7878/Path"), normal_address("hub:7878")
    ('http://Hub:7878/Path', 'hub:7878')
    """
    scheme = _HTTP.match(url)
    return url if scheme is None else scheme.group().lower() + url[scheme.end():]


#: The scheme of an address a node could dial, in any case.
_HTTP = re.compile(r"https?://", re.IGNORECASE)


class Unshown(NamedTuple):
    """Why an address is refused without being shown (``unshown_refusal``): ``why``, and
    ``password``, whether for a user name or password (which every node it reached would
    show and log) rather than a query or a fragment (where the node's paths would land:
    it reaches no node's API), so that each caller says what to give instead."""

    why: str
    password: bool


def unshown_refusal(url: str) -> Unshown | None:
    """Why ``url`` is no address a node could dial, for what no error, log or list may
    show of it (a user name or password, a query, a fragment: ``query_or_fragment``),
    and which of them, else None: checked first wherever an address comes in, before
    any error that names it.

    >>> unshown_refusal("h:7878?token=x"), unshown_refusal("http://h:7878/cs")
    (Unshown(why="has a query: the node's paths would land in it", password=False), None)
    >>> unshown_refusal("http://u:pw@h")
    Unshown(why='holds a user name or password', password=True)
    """
    if user_or_password(url):  # first: the other checks may read a password as a host
        return Unshown("holds a user name or password", password=True)
    said = query_or_fragment(url)
    return None if said is None else Unshown(said, password=False)


def query_or_fragment(url: str) -> str | None:
    """Why ``url``, read as text, has a query or a fragment (a ``?`` before any ``#``, or a
    ``#``; empty ones too, ``http://h/?``: the paths a node appends land after it), else
    None. Read as text, not parsed, so an address no parser takes is read too.

    >>> query_or_fragment("http://h/?"), query_or_fragment("http://h/a#b?c")
    ("has a query: the node's paths would land in it", 'has a fragment')
    >>> query_or_fragment("http://h:7878/cs")
    """
    if "?" in url.split("#", 1)[0]:
        return "has a query: the node's paths would land in it"
    if "#" in url:
        return "has a fragment"
    return None


def user_or_password(url: str) -> bool:
    """Whether ``url`` holds a user name or password (``http://user:pw@host``), also one
    without a scheme (``user:pw@host``) or with a mistyped one (``http:/u:pw@h``,
    ``http:///u:pw@h``, ``http//u:pw@h``), which a URL parser would read as a path, or
    as a scheme ``u`` when a "://" comes later (``u:pw@h/?next=http://x``): the errors
    about such an address would show it whole. Read as text first: whatever
    follows a scheme (a leading ``name:``, or ``http`` and a slash) and slashes, up to
    the first of ``/?#\\``, is where a user name would be (the authority: yarl, urllib,
    curl and browsers end it at the first of ``/?#``); an ``@`` there is one. So is an
    ``@`` further on when that part is no host[:port]: a password with a ``/``, ``?`` or
    ``#`` typed as it is ends it early (``http://u:p/w@h``, ``http://u:p?w@h``;
    ``u:p/w@h``, whose ``u:`` is no scheme), and what is left is no address either (its
    port is no number); or when a ``\\`` follows that part at once (``http://u:1\\w@h``:
    urllib and curl read the backslash as part of the password). An ``@`` after a
    host[:port] and a ``/``, ``?`` or ``#`` is in a path, query or fragment
    (``http://h/a@b``, ``http://h:7878?x=a@b``, ``http://h#a@b``), where no parser reads
    a user name: it is none. (So a password of digits cut short by a ``?`` or ``#``,
    ``http://u:1?w@h``, reads as host ``u``, port 1 and a query, to every parser as
    here; it is refused all the same, unshown, as an address with a query:
    ``unshown_refusal``.) Then parsed, as a backstop: whatever
    the text checks missed, one a parser reads with a user name or password
    (``urlsplit``, also with ``http://`` put before one without a scheme, as ``--node``
    does) holds them.

    >>> user_or_password("http://u:pw@h:7878"), user_or_password("http://h:7878")
    (True, False)
    >>> user_or_password("u:pw@h:7878"), user_or_password("h:7878")
    (True, False)
    >>> user_or_password("http:///u:pw@h"), user_or_password("u:pw@h#http://x")
    (True, True)
    >>> user_or_password("http://h:7878/a@b"), user_or_password("h:7878/?x=a@b")
    (False, False)
    >>> user_or_password("u:p/w@h"), user_or_password("h:7878/a@b")
    (True, False)
    >>> user_or_password("http://u:p?w@h/"), user_or_password("http://u:p#w@h")
    (True, True)
    >>> user_or_password("http://h:7878?x=a@b"), user_or_password("http://h#a@b")
    (False, False)
    >>> user_or_password("http://u:1\\\\w@h:7878"), user_or_password("u:1\\\\w@h")
    (True, True)
    """
    scheme = _SCHEME.match(url)
    rest = url[scheme.end():] if scheme else url
    texts = [rest.lstrip("/\\")]
    if scheme and not rest.startswith(("/", "\\")):  # "u:pw@h", "h:7878": maybe no scheme
        texts.append(url)
    for text in texts:
        place = _authority(text)
        after = text[len(place):]
        if "@" in place:
            return True
        if "@" in after and (not _HOST_PORT.fullmatch(place) or after.startswith("\\")):
            return True
    return _parsed_user_or_password(url)


def _parsed_user_or_password(url: str) -> bool:
    """Whether a URL parser reads a user name or password in ``url`` (or in
    ``http://url`` when it has no ``://``): the backstop of ``user_or_password``."""
    for text in (url, f"http://{url}") if "://" not in url else (url,):
        try:
            parts = urlsplit(text)
        except ValueError:  # "http://[x": no URL, so no user name in one either
            continue
        if parts.username is not None or parts.password is not None:
            return True
    return False


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
    """What keeps an ``http(s)://`` address (one without a user name or password:
    ``user_or_password``) from being dialed, else None: no host (``http:///h``), or a
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


def listening_only(url: str) -> bool:
    """Whether ``url``'s host is ``0.0.0.0`` or ``::``, which a node listens on (every
    address of its machine: ``serve --host 0.0.0.0``) but which names no machine to dial:
    another machine dialing it dials itself, and a member told of it as a peer's address
    (a waiting device's ``--peer``, shown in a ``--node`` command) reaches the wrong node.

    Also in the forms a lookup reads as ``0.0.0.0`` (``inet_aton``'s: ``0``, ``0.0``,
    ``0x0``) and with a name's trailing dot (``0.0.0.0.``).

    >>> [listening_only(url) for url in ("http://0.0.0.0:7878", "http://[::]:7878",
    ...                                  "http://10.0.0.5:7878", "http://hub:7878")]
    [True, True, False, False]
    >>> [listening_only(url) for url in ("http://0:7878", "http://0.0.0.0.:7878",
    ...                                  "http://0x0.0:7878", "http://0.1:7878")]
    [True, True, True, False]
    >>> listening_only("http://0x:7878")  # no digits: no lookup reads it as 0.0.0.0
    False
    """
    try:
        host = urlsplit(url).hostname
    except ValueError:  # no URL: another check's concern
        return False
    if host is None:
        return False
    host = host.removesuffix(".")
    if _ZERO_HOST.fullmatch(host):
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:  # a host that is a name
        return False


#: A host that a lookup reads as 0.0.0.0 (``inet_aton`` takes one to four parts, each
#: decimal, octal or hex): zeros only, such as ``0``, ``0.0`` or ``0x0``; ``0x`` alone,
#: with no digit, is refused by ``inet_aton``.
_ZERO_HOST = re.compile(r"(?:0x0+|0+)(?:\.(?:0x0+|0+)){0,3}", re.IGNORECASE)
