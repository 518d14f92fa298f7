"""The floor for ``bench.http_append``: a bare aiohttp server that parses each append
body as JSON and answers 201, storing nothing.

It takes the command line of ``clawsync serve`` that ``tests.support.processes.NodeProcess``
passes (only ``--host`` and ``--port`` matter) and answers ``/healthz``, so the benchmark
starts it as a real process exactly like a node.

    python -m bench.bare_server serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web


async def post_events(request: web.Request) -> web.Response:
    value = json.loads(await request.read())
    events = value if isinstance(value, list) else [value]
    return web.json_response({"created": len(events)}, status=201)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir")  # what NodeProcess passes; nothing is stored
    parser.add_argument("--log-level")
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/sessions/{key}/events", post_events)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
