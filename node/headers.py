"""Header names of the client API that a node sends and its Python clients read.

``AUTOMERGE_URL_HEADER`` is sent with ``GET /v1/sessions/{key}`` (JSON and CBOR alike),
before the body: the session's ``automerge_url``, the same as the body's. A reader that
only wants the document's id (``node.client.subscribe``) takes it and closes the answer
unread: the projection it comes with may be far longer than the client reads, and
after a forget the id is no longer the one derived from the key.

>>> AUTOMERGE_URL_HEADER
'X-Clawsync-Automerge-Url'
"""

from __future__ import annotations

AUTOMERGE_URL_HEADER = "X-Clawsync-Automerge-Url"
