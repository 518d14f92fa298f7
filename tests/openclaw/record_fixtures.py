"""Record the OpenClaw fixtures in ``tests/data/openclaw/`` from a real OpenClaw run.

    tests/openclaw/install && python -m tests.openclaw.record_fixtures [scenario ...]

Each scenario runs a real OpenClaw 2026.9.6 gateway (``tests.openclaw.device``) against
the fake model server, plays its turns, stops the gateway, and writes into
``tests/data/openclaw/<scenario>/``:

- ``openclaw-agent.sqlite``: the agent store's transcript tables only (``session_nodes``,
  ``session_windows``, ``transcript_events``, ``transcript_event_identities``) with
  OpenClaw's own schema and rows, copied byte for byte (the full store is ~800 KB of
  mostly empty tables);
- ``rows.json``: the same rows as JSON (``event_zstd`` as base64, and each transcript
  row's decoded ``record``), for reading and for tests without SQLite;
- ``legacy/sessions.json`` and ``legacy/<sessionId>.jsonl``: the older layout OpenClaw's
  ``doctor --session-sqlite import`` reads, written from the rows; the recorder proves it
  by importing it into a fresh OpenClaw and comparing the records it stored.

The records are real: OpenClaw wrote them. Only the legacy layout is written here (no
OpenClaw 2026.9 command writes it), from OpenClaw's own rows, and checked by OpenClaw.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import zstandard

from tests.openclaw.device import Device, OpenClawError, require_installed
from tests.openclaw.fake_model import FakeModel
from tests.support.processes import ROOT

OUT = ROOT / "tests" / "data" / "openclaw"
#: The tables that hold sessions and transcripts, in the order they are copied.
TABLES = ("session_nodes", "session_windows", "transcript_events",
          "transcript_event_identities")


def timed(label: str, action: Callable[[], Any]) -> Any:
    start = time.monotonic()
    result = action()
    print(f"  {label}: {time.monotonic() - start:.1f} s", flush=True)
    return result


#: Seconds a gateway run started with chat.send may take to finish.
RUN_TIMEOUT_S = 120.0


# -- reading the store --------------------------------------------------------------------


def read_only(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    return connection


def decode(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    """The JSON record of a ``transcript_events`` row (plain or zstd)."""
    if row["event_json"] is not None:
        text = row["event_json"]
    else:
        text = zstandard.ZstdDecompressor().decompress(row["event_zstd"]).decode()
    record: dict[str, Any] = json.loads(text)
    return record


def dump_rows(store: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the transcript tables as JSON-ready dicts."""
    rows: dict[str, list[dict[str, Any]]] = {}
    with read_only(store) as db:
        for table in TABLES:
            order = "session_id, seq" if table.startswith("transcript") else "rowid"
            found = []
            for row in db.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                item = dict(zip(row.keys(), tuple(row), strict=True))
                if table == "transcript_events":
                    item["record"] = decode(row)
                    if item["event_zstd"] is not None:
                        item["event_zstd"] = base64.b64encode(item["event_zstd"]).decode()
                found.append(item)
            rows[table] = found
    return rows


def octet_length(value: object) -> int | None:
    """SQLite's ``octet_length``: the size in bytes of a value's text or blob."""
    if value is None:
        return None
    return len(value if isinstance(value, bytes) else str(value).encode())


def copy_tables(store: Path, target: Path) -> None:
    """A small SQLite file with OpenClaw's schema and rows for ``TABLES`` only (their
    tables and indexes; OpenClaw's triggers reach into tables left out)."""
    target.unlink(missing_ok=True)
    with read_only(store) as source:
        schema = [(name, sql) for name, sql in source.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND type IN "
            "('table', 'index') AND tbl_name IN "
            f"({','.join('?' * len(TABLES))}) ORDER BY type = 'index'", TABLES)]
    copy = sqlite3.connect(target)
    # OpenClaw's CHECK constraints call octet_length (SQLite 3.43); older builds lack it.
    copy.create_function("octet_length", 1, octet_length, deterministic=True)
    copy.execute("PRAGMA page_size = 1024")  # many near-empty indexes: small pages
    try:
        for _name, sql in schema:
            copy.execute(sql)
        copy.execute("ATTACH DATABASE ? AS src", (f"file:{store}?mode=ro",))
        for table in TABLES:
            copy.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
        copy.commit()
        copy.execute("DETACH DATABASE src")
        copy.execute("VACUUM")
    finally:
        copy.close()


def write_legacy(rows: dict[str, list[dict[str, Any]]], folder: Path,
                 session_file_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """``sessions.json`` and one ``<sessionId>.jsonl`` per current session of a key, as
    ``doctor --session-sqlite import`` reads them. ``sessionFile`` paths point into
    ``session_file_dir`` (a test copying the folder rewrites them). Returns the records
    written per session id."""
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {}
    written: dict[str, list[dict[str, Any]]] = {}
    for node in rows["session_nodes"]:
        session_id = node["current_session_id"]
        records = [r["record"] for r in rows["transcript_events"]
                   if r["session_id"] == session_id]
        if not records:
            continue
        name = f"{session_id}.jsonl"
        (folder / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n"
                                           for r in records))
        index[node["session_key"]] = {"sessionId": session_id,
                                      "updatedAt": node["updated_at"],
                                      "sessionFile": str(session_file_dir / name)}
        written[session_id] = records
    (folder / "sessions.json").write_text(json.dumps(index, indent=2) + "\n")
    return written


def check_legacy_imports(legacy: Path, model_url: str, work: Path,
                         expected: dict[str, list[dict[str, Any]]]) -> Device:
    """Import the legacy layout into a fresh OpenClaw; it must store the same records."""
    device = Device(work / "import-check", model_url).setup()
    device.sessions_dir.mkdir(parents=True, exist_ok=True)
    for item in legacy.iterdir():
        shutil.copy(item, device.sessions_dir / item.name)
    index = json.loads((device.sessions_dir / "sessions.json").read_text())
    for entry in index.values():
        entry["sessionFile"] = str(device.sessions_dir / Path(entry["sessionFile"]).name)
    (device.sessions_dir / "sessions.json").write_text(json.dumps(index))
    device.run("doctor", "--session-sqlite", "import")
    imported = dump_rows(device.store_path)
    for session_id, records in expected.items():
        got = [r["record"] for r in imported["transcript_events"]
               if r["session_id"] == session_id]
        if got != records:
            raise OpenClawError(f"OpenClaw imported {len(got)} records of {session_id}, "
                                f"not the {len(records)} written (or not equal)")
    print(f"  legacy layout: OpenClaw imported {sum(map(len, expected.values()))} records "
          "equal to the source", flush=True)
    return device


# -- scenarios ----------------------------------------------------------------------------


def basic(device: Device) -> None:
    """Two turns in one session: plain text, then an ``exec`` tool call and its result."""
    timed("turn 1 (text)", lambda: device.turn("s1", "hello there"))
    timed("turn 2 (tool call)", lambda: device.turn("s1", "please use the tool"))


def one_pixel_png() -> bytes:
    """A valid 1x1 red PNG (a real image, small enough for a fixture)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def wait_for_run(device: Device, run_id: str) -> None:
    """Until OpenClaw has written the end of run ``run_id`` (its bootstrap-context record)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        for row in dump_rows(device.store_path)["transcript_events"]:
            data = row["record"].get("data")
            if isinstance(data, dict) and data.get("runId") == run_id:
                return
        time.sleep(0.5)
    raise OpenClawError(f"run {run_id} did not finish within {RUN_TIMEOUT_S} s")


def user_entry_ids(device: Device, session_id: str) -> list[str]:
    return [r["record"]["id"] for r in dump_rows(device.store_path)["transcript_events"]
            if r["session_id"] == session_id and r["record"]["type"] == "message"
            and r["record"]["message"]["role"] == "user"]


def rich(device: Device) -> None:
    """Every record type OpenClaw 2026.9.6 writes from its CLI and gateway methods."""
    key = "agent:main:explicit:r1"
    timed("thinking block", lambda: device.turn("r1", "think about the weather"))
    timed("large tool output (zstd)", lambda: device.turn("r1", "run `seq 1 4000`"))
    (device.state_dir / "workspace" / "dot.png").write_bytes(one_pixel_png())
    timed("image in a tool result", lambda: device.turn("r1", "read `dot.png`"))
    image = base64.b64encode(one_pixel_png()).decode()
    timed("image attached to a user message", lambda: (device.call("chat.send", {
        "sessionKey": key, "message": "what is in this picture?", "idempotencyKey": "img-1",
        "attachments": [{"type": "image", "mimeType": "image/png", "fileName": "dot.png",
                         "content": image}]}), wait_for_run(device, "img-1")))
    timed("compaction", lambda: device.call("sessions.compact", {"key": key}))
    timed("turn after compaction", lambda: device.turn("r1", "after the compaction"))
    last_user = user_entry_ids(device, "r1")[-1]
    timed("rewind (leaf)", lambda: device.call("sessions.rewind",
                                               {"sessionKey": key, "entryId": last_user}))
    timed("turn on the new branch", lambda: device.turn("r1", "a different path"))
    timed("reset", lambda: device.call("sessions.reset", {"key": key, "reason": "new"}))
    timed("turn after reset", lambda: device.turn("r1", "a fresh start"))
    timed("/new (a new session id)", lambda: device.turn("r2", "/new"))
    timed("turn in the new session", lambda: device.turn("r2", "hello again"))


SCENARIOS: dict[str, Callable[[Device], None]] = {"basic": basic, "rich": rich}


def handwritten_records(real: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record types no OpenClaw 2026.9.6 command writes (only its interactive tree
    view and extensions do), shaped as its SessionManager writes them
    (``appendSessionInfo``, ``appendLabelChange``, ``appendCustomMessageEntry``,
    ``branchWithSummary``), appended to a real transcript."""
    user = next(r for r in real if r["type"] == "message"
                and r["message"]["role"] == "user")
    first_reply = next(r for r in real if r["type"] == "message"
                       and r["message"]["role"] == "assistant")
    last = datetime.fromisoformat(real[-1]["timestamp"].replace("Z", "+00:00"))

    def stamp(after_ms: int) -> str:
        """ISO time ``after_ms`` after the last real record, as OpenClaw writes it."""
        at = last + timedelta(milliseconds=after_ms)
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"

    parent = real[-1]["id"]
    added = []
    for number, (kind, fields) in enumerate([
            ("session_info", {"name": "weather chat"}),
            ("label", {"targetId": user["id"], "label": "the start"}),
            ("custom_message", {"customType": "note", "content": "a note shown to the model",
                                "display": True, "details": {"from": "an extension"}}),
            ("label", {"targetId": user["id"], "label": None})], 1):
        record = {"type": kind, "id": f"00000000-0000-4000-8000-00000000000{number}",
                  "parentId": parent, "timestamp": stamp(number), **fields}
        added.append(record)
        parent = record["id"]
    added.append({"type": "branch_summary", "id": "00000000-0000-4000-8000-000000000005",
                  "parentId": first_reply["id"], "timestamp": stamp(5),
                  "fromId": first_reply["id"],
                  "summary": "The user tried a tool on another branch; it printed hi.",
                  "details": {"readFiles": [], "modifiedFiles": []}, "fromHook": False})
    return added


def record_handwritten(work: Path) -> None:
    """``basic``'s real transcript plus ``handwritten_records``, imported by OpenClaw's
    own ``doctor --session-sqlite import``: the store rows are what OpenClaw wrote."""
    print("== handwritten", flush=True)
    source = OUT / "basic" / "legacy"
    real = [json.loads(line) for line in (source / "s1.jsonl").read_text().splitlines()]
    out = OUT / "handwritten"
    shutil.rmtree(out, ignore_errors=True)
    (out / "legacy").mkdir(parents=True)
    records = real + handwritten_records(real)
    (out / "legacy" / "s1.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    shutil.copy(source / "sessions.json", out / "legacy" / "sessions.json")
    with FakeModel(work / "handwritten-requests.jsonl") as model:
        device = check_legacy_imports(out / "legacy", model.base_url, work / "handwritten",
                                      {"s1": records})
        rows = dump_rows(device.store_path)
        (out / "rows.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False)
                                       + "\n")
        copy_tables(device.store_path, out / "openclaw-agent.sqlite")
    print(f"  wrote {out.relative_to(ROOT)}: {len(records)} records, "
          f"{len(records) - len(real)} of them written here", flush=True)


def record(name: str, work: Path) -> None:
    print(f"== {name}", flush=True)
    scenario = SCENARIOS[name]
    with FakeModel(work / name / "model-requests.jsonl") as model:
        device = Device(work / name / "device", model.base_url)
        timed("setup", device.setup)
        with device.gateway():
            scenario(device)
        out = OUT / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        rows = dump_rows(device.store_path)
        (out / "rows.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
        copy_tables(device.store_path, out / "openclaw-agent.sqlite")
        written = write_legacy(rows, out / "legacy", Path("/state/agents/main/sessions"))
        check_legacy_imports(out / "legacy", model.base_url, work / name, written)
    kinds: dict[str, int] = {}
    for row in rows["transcript_events"]:
        record_type = row["record"]["type"]
        if record_type == "message":
            record_type += "/" + row["record"]["message"]["role"]
        kinds[record_type] = kinds.get(record_type, 0) + 1
    zstd = sum(1 for r in rows["transcript_events"] if r["event_zstd"] is not None)
    print(f"  wrote {out.relative_to(ROOT)}: {len(rows['transcript_events'])} records "
          f"({zstd} zstd), {kinds}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Record tests/data/openclaw/ from a real "
                                                 "OpenClaw run.")
    parser.add_argument("scenarios", nargs="*", default=[*SCENARIOS, "handwritten"],
                        choices=[*SCENARIOS, "handwritten"])
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    require_installed()
    work = Path(tempfile.mkdtemp(prefix="openclaw-fixtures-"))
    try:
        for name in args.scenarios:
            if name == "handwritten":  # after basic: it builds on basic's transcript
                record_handwritten(work)
            else:
                record(name, work)
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
