"""The ask for a peer's member list (``GET /peer/v1/members``, for learning members):
one bounded HTTP request, whose answer is a JSON object or a ``MembersUnlisted`` that
says whether the next ask would get the same. The fields of the list are
``node.peers.member_lists``'s to check.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable
from typing import Any

import aiohttp

from node.peers.dial_words import why
from node.peers.link_errors import LinkClosed
from node.peers.refusals import read_most, refusal_words
from sync.peer.config import SyncConfig

#: Path that lists the peers a node knows (for learning members).
MEMBERS_PATH = "/peer/v1/members"


class MembersUnlisted(LinkClosed):
    """The peer answered the ask for its member list, with no list: an error status (a
    404 from a server of another kind or an older one, a 503 of a busy node or of a
    proxy) or a body that is not one (not JSON, too long, too deep, no object).
    ``lasting``: an answer the same server gives to the next ask too
    (``MEMBERS_LASTING_STATUSES``, a body that is no list), unlike a 502, 503 or 504,
    which may pass by then, as a time-out or a reset may."""

    def __init__(self, message: str, *, lasting: bool) -> None:
        super().__init__(message)
        self.lasting = lasting


class MembersRefused(MembersUnlisted):
    """The peer refused to list its members to us (401, 403): the credential we gave
    is not one it takes, which only its configuration changes (a restart, which ends
    the link)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, lasting=True)


#: The statuses of an ask for a member list that the same server answers again at every
#: ask: a refusal (401, 403), a route or a method it does not have (404, 405, 501: a
#: server of another kind, an older node). Any other (a 500, a 502, 503 or 504 of a
#: proxy, a node's 503 when busy) may pass by the next ask (``MembersUnlisted.lasting``).
MEMBERS_LASTING_STATUSES = frozenset({401, 403, 404, 405, 501})


async def fetch_members(http: aiohttp.ClientSession, url: str, *, secret: str | None,
                        tls: ssl.SSLContext | None, config: SyncConfig,
                        hide: Iterable[str | None] = ()) -> dict[str, Any]:
    """The peer's member list, a JSON object (its fields checked by the caller:
    ``node.peers.member_lists``); ``LinkClosed`` if none was read (``MembersUnlisted``
    if the peer answered, ``MembersRefused`` if it refused). A refusal's words show
    neither ``secret`` nor the credentials ``hide``."""

    def cannot(why: str) -> str:
        return f"cannot list members of {url}: {why}"

    headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
    try:
        async with http.get(url.rstrip("/") + MEMBERS_PATH, headers=headers,
                            ssl=tls if tls is not None else True,
                            timeout=aiohttp.ClientTimeout(total=config.connect_timeout_s)) as reply:
            if reply.status >= 400:
                refusal = await refusal_words(reply, (secret, *hide))
                said = cannot(f"it answered HTTP {reply.status}"
                              + (f": {refusal}" if refusal else ""))
                if reply.status in (401, 403):
                    raise MembersRefused(said)
                raise MembersUnlisted(said, lasting=reply.status in MEMBERS_LASTING_STATUSES)
            body = await read_most(reply, config.members_bytes_max + 1)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise LinkClosed(cannot(why(exc, config.connect_timeout_s))) from None
    # A body that is no list is the same at the next ask: the server answers so.
    if len(body) > config.members_bytes_max:
        raise MembersUnlisted(cannot(f"member list over {config.members_bytes_max} bytes"),
                              lasting=True)
    try:
        listed = json.loads(body)
    except RecursionError:
        raise MembersUnlisted(cannot("member list nested too deep"), lasting=True) from None
    except ValueError:  # not UTF-8 or not JSON: no words of it are shown
        raise MembersUnlisted(cannot("member list not JSON"), lasting=True) from None
    if not isinstance(listed, dict):
        raise MembersUnlisted(cannot("its answer is no member list"), lasting=True)
    return listed
