"""What the client tests share: node URLs a client refuses."""

from __future__ import annotations

from tests.support.addresses import HOST_NAMES_NO_LOOKUP_TAKES

#: Node URLs no node could be reached at, and what the refusal says (never the URL).
NO_NODE_URLS = [("http://[hub:7878", "is not a URL"), ("http:///hub:7878", "names no host"),
                ("http://hub:0", "has a port that is not between 1 and 65535"),
                ("http://hub:99999", "has a port that is not between 1 and 65535"),
                ("ftp://hub:7878", "must be an http:// or https:// URL"),
                ("ws://hub:7878", "must be an http:// or https:// URL"),
                # A name no lookup takes (``node.checks.host_name_problem``, as --node).
                *HOST_NAMES_NO_LOOKUP_TAKES]
