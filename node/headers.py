"""The names and words of the client API that a node sends and its Python clients read
(``node.client`` may not import the node's HTTP layer): two headers, a field of the
JSON error, and the words that point to the README's list of routes.

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

``HINT_FIELD`` is the field of a JSON error that holds words for a person beyond its
message, where new words in the message would mislead an older client: a node's 404 for
a path none of its routes matches keeps the message "Not Found", by which every client
tells it from a missing session's 404 (which says what is missing), and says there which
route it lacks. ``ROUTES_TOLD`` ends that hint, and a 405's message, to say where the
routes are.

>>> AUTOMERGE_URL_HEADER
'X-Clawsync-Automerge-Url'
"""

from __future__ import annotations

AUTOMERGE_URL_HEADER = "X-Clawsync-Automerge-Url"
TOKEN_UNUSED_HEADER = "X-Clawsync-Token-Unused"
HINT_FIELD = "hint"
ROUTES_TOLD = "the README's \"HTTP API\" section lists the routes"
