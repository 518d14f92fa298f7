"""The fake model server answers the way OpenClaw's openai-completions client expects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.openclaw.fake_model import INTERNAL_MARKER, FakeModel


async def stream(model: FakeModel, messages: list[dict[str, Any]]) -> list[Any]:
    """The decoded SSE chunks of one streamed request (``"[DONE]"`` kept as is)."""
    chunks: list[Any] = []
    async with aiohttp.ClientSession() as session, session.post(
            model.base_url + "/chat/completions",
            json={"model": "fake-model", "stream": True, "messages": messages,
                  "tools": [{"type": "function", "function": {"name": "exec"}}]}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async for line in response.content:
            text = line.decode().strip()
            if text.startswith("data: "):
                data = text.removeprefix("data: ")
                chunks.append(data if data == "[DONE]" else json.loads(data))
    return chunks


def joined(chunks: list[Any], field: str) -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks
                   if isinstance(c, dict) and c["choices"])


async def test_text_reply_counts_real_user_messages_and_records(tmp_path: Path) -> None:
    second = "[Thu 07:26] second\n\nRuntime: x"
    history = [{"role": "system", "content": "be brief"},
               {"role": "user", "content": "[Thu] first"},
               {"role": "assistant", "content": "reply 1: first"},
               {"role": "user", "content": [{"type": "text", "text": second}]},
               {"role": "user", "content": INTERNAL_MARKER + " ignore me"}]
    with FakeModel(tmp_path / "requests.jsonl") as model:
        chunks = await stream(model, history)
    assert chunks[-1] == "[DONE]"
    assert joined(chunks, "content") == "reply 2: second"
    assert chunks[-2]["usage"]["total_tokens"] > 0
    assert [r["messages"] for r in model.requests()] == [history]


async def test_tool_call_then_text_after_the_result(tmp_path: Path) -> None:
    asked = [{"role": "user", "content": "please use the tool"},
             {"role": "user", "content": INTERNAL_MARKER}]
    with FakeModel(tmp_path / "requests.jsonl") as model:
        first = await stream(model, asked)
        calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in first
                 if isinstance(c, dict) and c["choices"]
                 and "tool_calls" in c["choices"][0]["delta"]]
        assert calls[0]["function"]["name"] == "exec"
        arguments = "".join(c["function"]["arguments"] for c in calls)
        assert json.loads(arguments) == {"command": "echo hi"}
        assert first[-3]["choices"][0]["finish_reason"] == "tool_calls"
        answered = [
            *asked,
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": calls[0]["id"], "type": "function",
                 "function": {"name": "exec", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "hi"}]
        second = await stream(model, answered)
    assert joined(second, "content") == "the tool said: hi"
    assert len(model.requests()) == 2


async def test_named_command_and_thinking(tmp_path: Path) -> None:
    with FakeModel(tmp_path / "requests.jsonl") as model:
        chunks = await stream(model, [{"role": "user", "content": "think, then run `seq 1 3`"}])
    assert joined(chunks, "reasoning_content") == "thinking about it"
    arguments = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                        for c in chunks if isinstance(c, dict) and c["choices"]
                        and "tool_calls" in c["choices"][0]["delta"])
    assert json.loads(arguments) == {"command": "seq 1 3"}


async def test_body_that_is_not_json_is_refused_and_not_recorded(tmp_path: Path) -> None:
    with FakeModel(tmp_path / "requests.jsonl") as model:
        async with aiohttp.ClientSession() as session, session.post(
                model.base_url + "/chat/completions", data=b"{nope") as response:
            assert response.status == 400
    assert model.requests() == []


async def test_read_tool_and_a_summary_when_no_tools_are_offered(tmp_path: Path) -> None:
    with FakeModel(tmp_path / "requests.jsonl") as model:
        chunks = await stream(model, [{"role": "user", "content": "read `dot.png`"}])
        async with aiohttp.ClientSession() as session, session.post(
                model.base_url + "/chat/completions", json={"messages": [
                    {"role": "user", "content": "<conversation>run `ls`</conversation>"}]}
                ) as response:
            summary = await response.json()
    first = [c["choices"][0]["delta"]["tool_calls"][0]["function"] for c in chunks
             if isinstance(c, dict) and c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert first[0]["name"] == "read"
    assert json.loads(first[1]["arguments"]) == {"path": "dot.png"}
    message = summary["choices"][0]["message"]
    assert message["content"].startswith("## Goal") and "tool_calls" not in message
