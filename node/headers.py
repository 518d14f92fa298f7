"""Header names of the client API that a node sends and its Python clients read, and the
words of its answer to a route it does not have.

``AUTOMERGE_URL_HEADER`` is sent with ``GET /v1/sessions/{key}`` (JSON and CBOR alike),
before the body: the session's ``automerge_url``, the same as the body's. A reader that
only wants the document's id (``node.client.subscribe``) takes it and closes the answer
unread: the projection it comes with may be far longer than the client reads, and
after a forget the id is no longer the one derived from the key.

``TOKEN_UNUSED_HEADER`` is sent by a node started without ``--token`` with every
``/v1`` and ``/metrics`` answer to a request that carries an ``Authorization`` header:
the token given opens nothing there, as everything is open. The request is answered
all the same (a client still configured with the token of a node whose token was turned
off keeps working); the client says so, once (``node.client.token_unused``).

``NO_ROUTE_SAID`` begins the message of a node's 404 for a path none of its routes
matches, where a session's 404 says what is missing: a client tells the two apart by it
(older nodes said only "Not Found"). ``ROUTES_TOLD`` ends it, and a 405's, to say where
the routes are.

>>> AUTOMERGE_URL_HEADER
'X-Clawsync-Automerge-Url'
"""

from __future__ import annotations

AUTOMERGE_URL_HEADER = "X-Clawsync-Automerge-Url"
TOKEN_UNUSED_HEADER = "X-Clawsync-Token-Unused"
NO_ROUTE_SAID = "this node has no route "
ROUTES_TOLD = "the README's \"HTTP API\" section lists the routes"
