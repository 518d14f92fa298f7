"""Checks of the values a person gives a node and the client commands that no setting's
type says enough about: tokens and secrets (``check_token``), addresses (a node's own
route copied into one), loopback hosts. Whether an address could be dialed at all (a
user name or password in it, a query or a fragment, no host, a port no connection could
use) is ``crdt.addresses``': membership records that other nodes send hold addresses too.
A folder to use or make that is a file, or lies in one, is ``not_a_folder``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

#: The first segment of each of the node's own routes: an address holding one is a page or
#: an API path copied whole, not a node's address (``api_path_base``).
API_ROOTS = ("v1", "automerge", "peer", "console", "healthz", "metrics")
#: What ``serve`` (a ``--peer``, its ``--advertise-url``) and ``devices add`` (an
#: ``--address``) call an address of 0.0.0.0 or :: (``crdt.addresses.listening_only``)
#: given to be dialed: one wording for both (``listening_warning``).
LISTENING_ONLY = "an address a node listens on, not one to dial"
#: The line of ``serve`` that names the address to give instead (``node.server.reach``).
PAIRING_LINE = "to pair a new device, run on it"


def not_a_folder(path: Path) -> str | None:
    """Why ``path``, a folder to use or make, cannot be one: it is a file, or lies in one
    (its nearest part that exists is a file); None when it can. Checked before anything
    is made: opened, it fails on "File exists" or "Not a directory", with what the command
    made before left behind. None too when a part cannot be looked at (a folder this user
    may not enter): the open that follows says so, in its words.

    >>> print(not_a_folder(Path("/dev/null/sub")))
    '/dev/null/sub' is in '/dev/null', a file, not a folder
    >>> not_a_folder(Path("/tmp/no/such/folder")) is None
    True
    """
    try:
        nearest = next((part for part in (path, *path.parents) if part.exists()), path)
        if not nearest.exists() or nearest.is_dir():
            return None
    except OSError:  # Permission denied: exists() says False only for what is not there
        return None
    what = "is a file" if nearest == path else f"is in {str(nearest)!r}, a file"
    return f"{str(path)!r} {what}, not a folder"


def give_instead(whose: str) -> str:
    """Which address to give in place of a listening-only one: ``whose`` address on its
    network, as the pairing line of its ``serve`` prints it.

    >>> give_instead("the device's")
    "the device's address on its network (serve prints it: `to pair a new device, run on it`)"
    """
    return f"{whose} address on its network (serve prints it: `{PAIRING_LINE}`)"


#: What ``--print-config`` shows in place of a secret it hides. Refused as a token or a
#: secret (``check_token``): copied from a printout into a file, it would be a token
#: anyone can guess, one that even passes the check for a token beyond loopback.
HIDDEN = "(set)"
#: Most characters of a token or the cluster secret (``check_token``): far more than a
#: made one needs (``secrets.token_urlsafe(32)`` makes 43), far within one HTTP header
#: (8 KiB); it bounds the work of hiding them in a peer's refusal (``node.peers.hiding``).
TOKEN_CHARS_MAX = 1024


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


def holds_control(token: str) -> bool:
    """Whether ``token`` holds a C0 control character or DEL, which no token of a node
    holds (``check_token``; ``node.automerge.hub.token_fault`` for a presented one).

    >>> holds_control("s3cret\\r"), holds_control("s3cret")
    (True, False)
    """
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in token)


def check_token(token: str, what: str = "the token", *, from_lines: bool = True) -> None:
    """``ValueError`` for a token (or ``what`` else a header carries: the cluster secret)
    that cannot protect anything: an empty one, which a request without the header
    matches, or one with a control character, which no token of a node holds (mostly a
    line ending kept from a file: ``$(cat token.txt)`` of a file with CRLF line ends,
    the refusal guesses, unless ``from_lines`` is false: a JSON table's string holds a
    control character only as written; a tab alone a header may carry); or one that
    no request could match: one that begins or ends with white space, which a node
    takes off the token a request gives (``node.http.auth.bearer``), as HTTP takes it off
    a header's value. ``HIDDEN``, --print-config's placeholder, is refused too: it is
    no secret; and one longer than ``TOKEN_CHARS_MAX`` characters. No command passes an
    empty one: typed, in the environment or in the file, an empty token or secret means
    none (``serve`` says so when a check then wants a token); the refusal is for a
    ``Config`` made in code.

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
    if len(token) > TOKEN_CHARS_MAX:
        raise ValueError(f"{what} is longer than {TOKEN_CHARS_MAX} characters: "
                         "make a shorter one")
    if token == HIDDEN:
        raise ValueError(f"{what} is {HIDDEN!r}, the placeholder --print-config shows for "
                         "a secret it hides, not a secret: give the real one")
    if holds_control(token):
        guess = " (a line ending, from a file with CRLF line ends?)" if from_lines else ""
        raise ValueError(f"{what} holds a control character{guess}, which no token may "
                         "hold")
    if token != token.strip():
        raise ValueError(f"{what} begins or ends with white space, which HTTP takes off "
                         "a header: no request could match it")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Most characters of a label (the part between dots) of a host name, as DNS and the
#: IDNA encoding of a lookup allow.
HOST_LABEL_CHARS_MAX = 63


def host_name_problem(url: str) -> str | None:
    """What keeps the host name of ``url`` from being looked up, in words to follow the
    address: a label over ``HOST_LABEL_CHARS_MAX`` characters (as the lookup encodes
    it: a Unicode label longer once encoded) or an empty one (a dot at the start, two in
    a row, two at the end), or an A-label ("xn--") that is not punycode. Judged on the
    ASCII form yarl gives the lookup (IDNA 2008 with UTS 46, as aiohttp dials; IDNA 2003
    only where that fails, as yarl does), never on Python's IDNA 2003 codec alone, which
    refuses names a lookup takes (a right-to-left label ending in a digit). yarl takes
    such a name (or fails on it, with a ``UnicodeError``), and the lookup fails with an
    error that is no connection's. None if it can be, or ``url`` has no host or is no
    URL (said elsewhere). The one check of every address a node, its ``--peer``,
    ``--node``, the client's node URL and ``devices add --address`` take; it shows no
    part of the address (the label's length instead), so that what quotes the address
    quotes it once.

    >>> host_name_problem("http://phone.local:7878") is None, host_name_problem("http://a..b")
    (True, 'has an empty label in its host name (two dots in a row)')
    >>> host_name_problem("http://.a.example"), host_name_problem("http://a.example..")
    ('has a host name that starts with a dot', 'has a host name that ends in two dots')
    >>> host_name_problem("http://" + "p" * 64 + ".example")
    'has a host name label over 63 characters (64), which no name holds'
    >>> host_name_problem("http://" + "\u00fc" * 60 + ".example")
    'has a host name label over 63 characters (66 once encoded), which no name holds'
    >>> host_name_problem("http://xn--zz.example")
    'has a host name that cannot be looked up'
    >>> host_name_problem("http://xn--1-ymcl5hc.example") is None
    True
    """
    from yarl import URL

    try:
        parsed = URL(url)
        raw = parsed.raw_host
    except UnicodeError:  # yarl encodes the name: a label too long, or empty
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        return (_labels_problem(host) if host else None) or _NO_LOOKUP
    except ValueError:
        return None
    if not raw or ":" in raw:  # no host, or an IPv6 address
        return None
    problem = _labels_problem(raw)
    if problem is not None:
        return problem
    try:
        _ = parsed.host  # yarl decodes each A-label: one that is not punycode fails
    except UnicodeError:
        return _NO_LOOKUP
    return None


def dial_problem(url: str) -> str | None:
    """Why no node could dial the http(s) URL ``url`` (``crdt.addresses.address_problem``:
    no host, a port out of range; ``host_name_problem``: a host name no lookup takes),
    in words to follow the address; None if one could. The one check a ``--peer``, a
    device's address, a member's record and a peer's list each pass (crdt knows no URL
    parser's lookup)."""
    from crdt.addresses import address_problem

    return address_problem(url) or host_name_problem(url)


_NO_LOOKUP = "has a host name that cannot be looked up"


def _labels_problem(host: str) -> str | None:
    """What is wrong with the labels of ``host`` (an empty one, or one too long once
    encoded), or None."""
    labels = host.split(".")
    if labels[0] == "" and len(labels) > 1:
        return "has a host name that starts with a dot"
    if labels[-2:] == ["", ""] and len(labels) > 2:
        return "has a host name that ends in two dots"
    for label in labels[:-1] if labels[-1] == "" else labels:
        if not label:
            return "has an empty label in its host name (two dots in a row)"
        length = _encoded_length(label)
        if length > HOST_LABEL_CHARS_MAX:
            encoded = "" if label.isascii() else " once encoded"
            return (f"has a host name label over {HOST_LABEL_CHARS_MAX} characters "
                    f"({length}{encoded}), which no name holds")
    return None


def _encoded_length(label: str) -> int:
    """How many characters ``label`` takes as a lookup sends it: itself if ASCII, else
    "xn--" and its punycode (0 if it has none: said as "cannot be looked up")."""
    if label.isascii():
        return len(label)
    try:
        return len("xn--") + len(label.encode("punycode"))
    except UnicodeError:
        return 0
