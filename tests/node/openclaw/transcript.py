"""OpenClaw records shaped as OpenClaw 2026.9.6 writes them (pi session format v3), one of
every record type and block, until recorded transcripts cover them all."""

from __future__ import annotations

import base64
from typing import Any

SESSION_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
SESSION_KEY = "agent:main:explicit:s1"
#: A 1x1 PNG.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()


def _at(second: float) -> str:
    whole = int(second)
    return f"2026-12-01T10:00:{whole:02d}.{round((second - whole) * 1000):03d}Z"


def _usage(inp: int, out: int, cost: float) -> dict[str, Any]:
    return {"input": inp, "output": out, "cacheRead": 0, "cacheWrite": 0,
            "totalTokens": inp + out,
            "cost": {"input": cost / 2, "output": cost / 2, "cacheRead": 0,
                     "cacheWrite": 0, "total": cost}}


def records() -> list[dict[str, Any]]:
    """A session: a first turn with a tool call, every other record type, a reset."""
    out: list[dict[str, Any]] = [{"type": "session", "version": 3, "id": SESSION_ID,
                                  "timestamp": _at(0), "cwd": "/home/u/.openclaw/workspace"}]

    def add(kind: str, second: float, **fields: Any) -> dict[str, Any]:
        parent = out[-1]["id"] if len(out) > 1 else None
        record = {"type": kind, "id": f"{len(out):08x}", "parentId": parent,
                  "timestamp": _at(second), **fields}
        out.append(record)
        return record

    add("model_change", 0, provider="fake", modelId="fake-model")
    add("thinking_level_change", 0, thinkingLevel="off")
    add("custom", 0, customType="model-snapshot",
        data={"provider": "fake", "modelApi": "openai-completions", "modelId": "fake-model",
              "timestamp": 1796119200000})
    add("message", 1, message={"role": "user", "content": "[Tue 2026-12-01 10:00 UTC] run echo hi",
                               "timestamp": 1796119201000})
    add("message", 2, message={
        "role": "assistant", "api": "openai-completions", "provider": "fake",
        "model": "fake-model", "usage": _usage(12000, 20, 0.0125), "stopReason": "toolUse",
        "timestamp": 1796119202000,
        "content": [{"type": "thinking", "thinking": "The user wants a command run."},
                    {"type": "toolCall", "id": "call_1", "name": "exec",
                     "arguments": {"command": "echo hi"}}]})
    add("message", 2.5, message={
        "role": "toolResult", "toolCallId": "call_1", "toolName": "exec",
        "content": [{"type": "text", "text": "hi\n"}],
        "details": {"exitCode": 0, "durationMs": 4}, "isError": False,
        "timestamp": 1796119202500})
    add("message", 3, message={
        "role": "assistant", "api": "openai-completions", "provider": "fake",
        "model": "fake-model", "usage": _usage(12050, 8, 0.0126), "stopReason": "stop",
        "timestamp": 1796119203000, "content": [{"type": "text", "text": "It printed hi."}]})
    add("custom", 3, customType="openclaw.cache-ttl", data={"ttlMs": 300000})
    add("message", 4, message={
        "role": "user", "timestamp": 1796119204000,
        "content": [{"type": "text", "text": "what is in this picture?"},
                    {"type": "image", "data": PNG, "mimeType": "image/png"}]})
    add("message", 5, message={
        "role": "assistant", "api": "openai-completions", "provider": "fake",
        "model": "fake-model", "usage": _usage(12100, 30, 0.013), "stopReason": "toolUse",
        "timestamp": 1796119205000,
        "content": [{"type": "text", "text": "Two looks:"},
                    {"type": "text", "text": "first the file, then the folder."},
                    {"type": "toolCall", "id": "call_2", "name": "read",
                     "arguments": {"path": "a.png"}},
                    {"type": "toolCall", "id": "call_3", "name": "exec",
                     "arguments": {"command": "ls"}}]})
    add("message", 5.2, message={
        "role": "toolResult", "toolCallId": "call_2", "toolName": "read",
        "content": [{"type": "text", "text": "Read image file [image/png]"},
                    {"type": "image", "data": PNG, "mimeType": "image/png"}],
        "isError": False, "timestamp": 1796119205200})
    add("message", 5.4, message={
        "role": "toolResult", "toolCallId": "call_3", "toolName": "exec",
        "content": [{"type": "text", "text": "ls: permission denied"}],
        "isError": True, "timestamp": 1796119205400})
    add("message", 6, message={
        "role": "assistant", "api": "openai-completions", "provider": "fake",
        "model": "fake-model", "usage": _usage(0, 0, 0), "stopReason": "error",
        "errorMessage": "upstream 500", "timestamp": 1796119206000, "content": []})
    add("custom_message", 7, customType="openclaw.note", content="remember the folder",
        display=True, details={"source": "hook"})
    add("compaction", 8, summary="The user ran echo and looked at a picture.",
        firstKeptEntryId="00000009", tokensBefore=48123, details={"readFiles": ["a.png"]})
    add("branch_summary", 9, fromId="00000005", summary="Tried a different command.")
    add("label", 10, targetId="00000005", label="first tool call")
    add("session_info", 11, name="echo test")
    add("leaf", 11.5, targetId="00000005")
    add("reset", 12, reason="new")
    return out


def ref_args() -> tuple[str, str, str]:
    """OpenClaw's agent id, session key and session id of ``records``."""
    return ("main", SESSION_KEY, SESSION_ID)
