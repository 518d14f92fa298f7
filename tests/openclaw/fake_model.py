"""A fake OpenAI-compatible model server on loopback, for running a real OpenClaw offline.

``POST /v1/chat/completions`` answers in SSE chunks then ``data: [DONE]`` (or one JSON
body without ``stream``), deterministically, from the last real user message (OpenClaw
adds a user message starting ``<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>`` after it; that one
is skipped):

- it names a command in backticks after ``run`` (``run `seq 1 9` ``), or asks for ``the
  tool``: one ``exec`` tool call (``{"command": "echo hi"}`` by default); a path after
  ``read`` (``read `dot.png` ``): one ``read`` tool call;
- the request offers no tools (OpenClaw's compaction asks for a summary): a summary in
  the sections OpenClaw asks for;
- the tool result came back: a text answer quoting it;
- it contains ``think``: a reasoning delta (a thinking block) before the text;
- otherwise: ``reply <n>: <text>`` where n counts the real user messages the request
  carried, so a reply shows how much history the model received (``<text>`` is the
  first line of the message, without OpenClaw's ``[timestamp]`` prefix).

Every request body is appended to a JSON lines file, so a test can check what the model
received. Runs in a thread of the test process (``FakeModel``) or alone:
``python -m tests.openclaw.fake_model --port 25001 --record requests.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

#: The marker of the extra user message OpenClaw sends after the user's own text.
INTERNAL_MARKER = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"
#: The command run when a message asks for "the tool" without naming one.
DEFAULT_COMMAND = "echo hi"
#: Characters of text per SSE chunk (several chunks, as real servers stream).
CHUNK_CHARS = 16
MODEL_ID = "fake-model"
#: Seconds the thread waits for the server to start listening.
START_TIMEOUT_S = 10.0

_RUN = re.compile(r"\brun `([^`]+)`")
_READ = re.compile(r"\bread `([^`]+)`")
_STAMP = re.compile(r"^\[[^\]]*\] ")


def text_of(content: Any) -> str:
    """The text of an OpenAI message content: a string, or the text of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def real_user_messages(messages: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(index, text) of each user message that is not OpenClaw's internal context."""
    found = []
    for index, message in enumerate(messages):
        if message.get("role") == "user":
            text = text_of(message.get("content"))
            if not text.lstrip().startswith(INTERNAL_MARKER):
                found.append((index, text))
    return found


def plan_answer(body: dict[str, Any]) -> dict[str, Any]:
    """What to answer: ``{"text": str, "thinking": str | None, "tool": str | None,
    "arguments": dict | None}``."""
    messages = list(body.get("messages") or [])
    users = real_user_messages(messages)
    if not body.get("tools"):
        return text_answer(f"## Goal\nContinue the conversation ({len(users)} request(s)).\n\n"
                           "## Next Steps\n1. Answer the next message.")
    if not users:
        return text_answer("reply 0: (no user message)")
    last_index, last_text = users[-1]
    results = [m for m in messages[last_index + 1:] if m.get("role") == "tool"]
    thinking = "thinking about it" if "think" in last_text else None
    if results:
        output = text_of(results[-1].get("content")).strip()
        return text_answer(f"the tool said: {output[:200]}")
    command = _RUN.search(last_text)
    if command or "the tool" in last_text:
        arguments = {"command": command.group(1) if command else DEFAULT_COMMAND}
        return {"text": "", "thinking": thinking, "tool": "exec", "arguments": arguments}
    path = _READ.search(last_text)
    if path:
        return {"text": "", "thinking": thinking, "tool": "read",
                "arguments": {"path": path.group(1)}}
    return text_answer(f"reply {len(users)}: {said(last_text)[:120]}", thinking)


def text_answer(text: str, thinking: str | None = None) -> dict[str, Any]:
    return {"text": text, "thinking": thinking, "tool": None, "arguments": None}


def said(text: str) -> str:
    """What the person typed: the first line without OpenClaw's ``[timestamp]`` prefix
    (OpenClaw appends a ``Runtime:`` paragraph to a session's first message)."""
    first = text.strip().split("\n", 1)[0]
    return _STAMP.sub("", first, count=1)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": MODEL_ID,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _usage(body: dict[str, Any], answer: dict[str, Any]) -> dict[str, int]:
    prompt = len(json.dumps(body.get("messages", []))) // 4
    completion = max(1, len(answer["text"]) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def sse_chunks(body: dict[str, Any], answer: dict[str, Any], call_id: str
               ) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed answer, in order (the caller adds ``[DONE]``)."""
    yield _chunk({"role": "assistant", "content": ""})
    if answer["thinking"]:
        yield _chunk({"reasoning_content": answer["thinking"]})
    if answer["tool"] is not None:
        arguments = json.dumps(answer["arguments"])
        yield _chunk({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                      "function": {"name": answer["tool"], "arguments": ""}}]})
        yield _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]})
        yield _chunk({}, "tool_calls")
    else:
        text = answer["text"]
        for start in range(0, len(text), CHUNK_CHARS):
            yield _chunk({"content": text[start:start + CHUNK_CHARS]})
        yield _chunk({}, "stop")
    usage = _chunk({})
    usage["choices"] = []
    usage["usage"] = _usage(body, answer)
    yield usage


def whole_answer(body: dict[str, Any], answer: dict[str, Any], call_id: str
                 ) -> dict[str, Any]:
    """The same answer as one ``chat.completion`` body (requests without ``stream``)."""
    message: dict[str, Any] = {"role": "assistant", "content": answer["text"] or None}
    finish = "stop"
    if answer["tool"] is not None:
        message["tool_calls"] = [{"id": call_id, "type": "function", "function": {
            "name": answer["tool"], "arguments": json.dumps(answer["arguments"])}}]
        finish = "tool_calls"
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": MODEL_ID, "usage": _usage(body, answer),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]}


class FakeModel:
    """The server, in a background thread with its own event loop; a context manager."""

    def __init__(self, record_path: Path, port: int = 0) -> None:
        self.record_path = Path(record_path)
        self.port = port
        self._lock = threading.Lock()
        self._calls = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> list[dict[str, Any]]:
        """Every request body received so far, oldest first."""
        if not self.record_path.exists():
            return []
        lines = self.record_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line]

    def _record(self, body: dict[str, Any]) -> str:
        with self._lock:
            self._calls += 1
            with self.record_path.open("a") as out:
                out.write(json.dumps(body) + "\n")
            return f"call_fake_{self._calls}"

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return web.json_response({"error": {"message": "no messages"}}, status=400)
        call_id = self._record(body)
        answer = plan_answer(body)
        if not body.get("stream"):
            return web.json_response(whole_answer(body, answer, call_id))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        for chunk in sse_chunks(body, answer, call_id):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": MODEL_ID, "object": "model", "owned_by": "fake"}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server  # the bound port when 0 was asked for
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start())
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        if self._runner is not None:
            loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def start(self) -> FakeModel:
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._serve, name="fake-model", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError("fake model server did not start")
        if self._error is not None:
            raise RuntimeError(f"fake model server failed to start: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT_S)

    def __enter__(self) -> FakeModel:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path, default=Path("fake-model-requests.jsonl"))
    args = parser.parse_args()
    with FakeModel(args.record, args.port) as model:
        print(f"fake model on {model.base_url}, recording to {args.record}", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
