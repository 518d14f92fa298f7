"""An error answer in words for people: what the node (or something else at its address)
said, as ``Transport._refuse`` raises it in a ``ClientError``. Text only, no HTTP: which
words fit an answer is decided there."""

from __future__ import annotations

import math

#: Statuses that say "no such route or method here" (not found, method not allowed, not
#: implemented): without a node's JSON error body, the address serves no clawsync API.
NO_ROUTE = frozenset({404, 405, 501})
#: Statuses a reverse proxy or load balancer answers when it cannot reach what is behind
#: it (bad gateway, unavailable, gateway time-out): without a node's JSON error body,
#: they are not the node's.
GATEWAY = frozenset({502, 503, 504})


def refused_in_between(shown_url: str, what: str, status: int, message: str) -> str:
    """A 401 or 403 with no clawsync answer: from something in between (a reverse proxy's
    own login, a firewall), not about the node's token.

    >>> print(refused_in_between("https://hub", "the request", 401, "Unauthorized"))
    https://hub refused the request (401 Unauthorized) without a clawsync answer: a \
reverse proxy or another service in between? Probably not the node's token
    """
    return (f"{shown_url} refused {what} ({status} {message}) without a clawsync answer: a "
            "reverse proxy or another service in between? Probably not the node's token")


def not_passed_on(shown_url: str, what: str, status: int, message: str,
                  wait_s: float | None) -> str:
    """A 502, 503 or 504 with no clawsync answer: from something in between that could
    not reach the node, or will not pass the request on now.

    >>> not_passed_on("https://hub", "the event", 502, "Bad Gateway", None)
    'https://hub could not pass on the event (502 Bad Gateway) without a clawsync answer: \
a reverse proxy or another service in between? Is the node behind it running?'
    """
    return (f"{shown_url} could not pass on {what} ({status} {message}{wait_words(wait_s)}) "
            "without a clawsync answer: a reverse proxy or another service in between? Is "
            "the node behind it running?")


def no_api(shown_url: str, status: int, what: str, node_said: bool,
           hint: str | None = None) -> str:
    """No route for ``what`` at ``shown_url``, and no node that says its version there:
    an address with no clawsync API, or (``node_said``: a node's JSON error came) a node
    too old to say its version; or a node's path other than its API (a wrong prefix),
    when its error's ``hint`` says which route it lacks (a node that gives one is no
    older one).

    >>> no_api("http://n/p", 404, "the sessions", True, "this node has no route GET /p")
    "http://n/p has no clawsync API (404 for the sessions): is it a node's address (a \
reverse proxy's prefix, another service)? The node there says: this node has no route GET /p"
    """
    asked = (f"{shown_url} has no clawsync API ({status} for {what}): is it a node's "
             "address (a reverse proxy's prefix, another service")
    if hint is not None:
        return f"{asked})? The node there says: {hint}"
    return asked + (", or a node too old to say its version" if node_said else "") + ")?"


def version_gap(shown_url: str, route: str, software: str, ours: str) -> str:
    """A node of clawsync ``software`` has no ``route`` this clawsync (``ours``) asked
    for: the versions of both, and which to upgrade.

    >>> version_gap("http://n", "GET /v1/x (404)", "0.2.0", "0.10.0")
    'the node at http://n runs clawsync 0.2.0, which has no GET /v1/x (404); this is \
clawsync 0.10.0: upgrade the node'
    """
    if software == ours:
        return f"the node at {shown_url} has no {route}"
    text = (f"the node at {shown_url} runs clawsync {software}, which has no {route}; this "
            f"is clawsync {ours}")
    theirs_release, our_release = _release(software), _release(ours)
    if theirs_release is None or our_release is None:
        return text
    return text + (": upgrade the node" if theirs_release < our_release
                   else ", older than the node: use a clawsync of the node's version")


def unavailable(what: str, message: str, wait_s: float | None) -> str:
    """A 503 in words: the node says it cannot take ``what`` now (its store busy or its
    disk full, its device records changing, its streams all taken, shutting down), not
    that it failed at it; the wait it asked for (``Retry-After``), in whole seconds.

    >>> unavailable("the forget", "the disk is full (/data)", 30.0)
    'the node could not handle the forget now (HTTP 503, try again in 30 s): the disk is \
full (/data)'
    >>> unavailable("the request", "the node is shutting down", None)
    'the node could not handle the request now (HTTP 503): the node is shutting down'
    """
    return f"the node could not handle {what} now (HTTP 503{wait_words(wait_s)}): {message}"


def token_unused(shown_url: str) -> str:
    """The node took a request carrying the client's token, and said it needs none: the
    node does not check it (a proxy in front of it may: this says only what the node
    said).

    >>> print(token_unused("http://hub:7878"))
    warning: the node at http://hub:7878 runs without --token: it does not check the \
token given (--token or CLAWSYNC_TOKEN); start the node with --token to require it
    """
    return (f"warning: the node at {shown_url} runs without --token: it does not check "
            "the token given (--token or CLAWSYNC_TOKEN); start the node with --token to "
            "require it")


def wait_words(wait_s: float | None) -> str:
    """The wait an answer asked for (``Retry-After``), in whole seconds, to follow its
    status; nothing if it asked for none, or for no wait (0, or a date past): "try again
    in 0 s" would read as a wait all the same.

    >>> wait_words(0.2), wait_words(None), wait_words(0.0)
    (', try again in 1 s', '', '')
    """
    return "" if not wait_s else f", try again in {math.ceil(wait_s)} s"


def _release(version: str) -> tuple[int, ...] | None:
    """A release number to compare; None for what is none (a source tree).

    >>> _release("0.3.0") < _release("0.10.0"), _release("(source tree)")
    (True, None)
    """
    parts = version.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) \
        else None
