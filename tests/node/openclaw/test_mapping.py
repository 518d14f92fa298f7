"""OpenClaw records -> events -> records: every record type, sizes, unknown records."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdt.clock import Hlc
from crdt.errors import InvalidInput
from crdt.events import EVENT_BYTES_MAX, Event, parse_event
from crdt.log.projection import rebuild
from crdt.log.store import EventStore
from node.openclaw import sizes
from node.openclaw.mapping import SessionRef, copy_ms_of, events_for
from node.openclaw.records import records_for, transcripts_for
from node.openclaw.session_names import session_key_for
from tests.node.openclaw import transcript

REF = SessionRef(*transcript.ref_args())


def import_all(records: list[Any], ref: SessionRef = REF) -> tuple[list[Event], list[str]]:
    events: list[Event] = []
    warnings: list[str] = []
    for record in records:
        mapped = events_for(record, ref)
        events += mapped.events
        warnings += mapped.warnings
    return events, warnings


def as_json(value: Any) -> Any:
    """What a JSON reader sees (so that 1.0 and 1 compare as JavaScript does)."""
    return json.loads(json.dumps(value))


def test_every_record_type_comes_back_equal() -> None:
    records = transcript.records()
    events, warnings = import_all(records)
    assert warnings == []
    assert records_for(events) == as_json(records)
    # In any order, and once however often an event is seen.
    shuffled = sorted(events + events[:5], key=lambda e: e.id)
    assert records_for(shuffled) == as_json(records)


def test_each_record_type_maps_onto_a_kind() -> None:
    kinds = [[e.kind for e in events_for(r, REF).events] for r in transcript.records()]
    assert kinds == [
        ["session_started"], ["state_changed"], ["state_changed"], ["state_changed"],
        ["message_received"], ["tool_called"], ["tool_result"], ["agent_response"],
        ["state_changed"], ["message_received"],
        ["agent_response", "tool_called", "tool_called"], ["tool_result"], ["tool_result"],
        ["agent_response"], ["state_changed"], ["state_changed"], ["state_changed"],
        ["state_changed"], ["state_changed"], ["state_changed"], ["session_ended"]]


def test_fields_the_kinds_lack_are_extra_fields() -> None:
    records = transcript.records()
    call, = events_for(records[5], REF).events
    assert (call.payload["tool_name"], call.payload["params"], call.payload["tool_call_id"]) \
        == ("exec", {"command": "echo hi"}, "call_1")
    extra = call.payload["openclaw"]
    assert extra["session_key"] == transcript.SESSION_KEY
    assert extra["session_id"] == transcript.SESSION_ID
    assert extra["record"]["id"] == "00000005" and extra["record"]["parentId"] == "00000004"
    message = extra["record"]["message"]
    assert message["usage"]["cost"]["total"] == 0.0125
    assert (message["provider"], message["api"], message["stopReason"]) == \
        ("fake", "openai-completions", "toolUse")
    result, = events_for(records[6], REF).events
    assert (result.payload["result"], result.payload["tool_call_id"],
            result.payload["success"]) == ("hi\n", "call_1", True)
    answer, = events_for(records[7], REF).events
    assert (answer.payload["content"], answer.payload["model"]) == ("It printed hi.", "fake-model")
    assert answer.payload["tokens"] == {"input": 12050, "output": 8, "cacheRead": 0,
                                        "cacheWrite": 0, "totalTokens": 12058}
    picture, = events_for(records[9], REF).events
    assert picture.payload["attachments"] == [{"kind": "image", "mime_type": "image/png",
                                               "size": len(base64.b64decode(transcript.PNG))}]
    response, *calls = events_for(records[10], REF).events
    assert response.payload["content"] == "Two looks:\n\nfirst the file, then the folder."
    assert [c.payload["openclaw"]["part_of"] for c in calls] == [response.id.hex()] * 2
    assert [c.timestamp.counter for c in (response, *calls)] == [0, 1, 2]
    read, = events_for(records[11], REF).events
    assert read.payload["result"] == "Read image file [image/png]"
    assert read.payload["attachments"] == picture.payload["attachments"]
    assert read.payload["openclaw"]["record"]["message"]["content"][1]["data"] == transcript.PNG
    failed, = events_for(records[12], REF).events
    assert failed.payload["success"] is False
    state = rebuild(response.session_key, import_all(records)[0]).header.state_values()
    assert state["openclaw.model"] == {"provider": "fake", "modelId": "fake-model"}
    assert state["openclaw.custom.openclaw.cache-ttl"] == {"ttlMs": 300000}
    assert state["openclaw.compaction"] == "The user ran echo and looked at a picture."


def test_the_same_record_is_the_same_event_on_every_device() -> None:
    records = transcript.records()
    first = [e.id for e in import_all(records)[0]]
    again = [e.id for e in import_all(copy.deepcopy(records))[0]]
    assert first == again
    assert first[0].hex() == events_for(records[0], REF).events[0].id.hex()
    # Through JSON, as an HTTP client posts them: the node re-hashes to the same ids.
    for event in import_all(records)[0]:
        assert parse_event(json.loads(json.dumps(event.to_json()))) == event
    other = SessionRef("main", "agent:main:explicit:s2", transcript.SESSION_ID)
    assert import_all(records, other)[0][0].id not in first


def test_session_keys() -> None:
    assert session_key_for("main", "agent:main:main") == "agent:main:main"
    assert session_key_for("work", "agent:main:main") == "agent:work:agent:main:main"
    long = "x" * 600
    key = session_key_for("main", long)
    assert key.startswith("agent:main:openclaw-") and len(key) == len("agent:main:openclaw-") + 32
    assert session_key_for("main", "a\nb") != session_key_for("main", "a b")


def test_projection_reads_as_a_conversation() -> None:
    events, _ = import_all(transcript.records())
    view = rebuild(events[0].session_key, events)
    shown = [(m.role, m.tool_name, m.content) for m in view.messages]
    assert shown[:4] == [
        ("inbound", None, "[Tue 2026-12-01 10:00 UTC] run echo hi"),
        ("tool", "exec", '"hi\\n"'),
        ("outbound", None, "It printed hi."),
        ("inbound", None, "what is in this picture?")]
    assert view.header.channel == "openclaw" and view.header.state == "ended"


def test_events_are_stored_and_read_back(tmp_path: Any) -> None:
    records = transcript.records()
    events, _ = import_all(records)
    with EventStore.open("memory:") as store:
        store.append_batch(events)
        stored = [s.event for s in store.get_events(events[0].session_key)]
        again = [Event.from_canonical(e.canonical) for e in stored]
    assert {e.id for e in again} == {e.id for e in events}
    assert records_for(again) == as_json(records)


def test_images_and_outputs_over_the_event_limit_are_summarised() -> None:
    picture = os.urandom(200 * 1024)
    output = "line of output\n" * 20_000  # 300 KB
    records = [
        transcript.records()[0],
        {"type": "message", "id": "000000a1", "parentId": None,
         "timestamp": "2026-12-01T10:01:00.000Z",
         "message": {"role": "user", "timestamp": 1796119260000, "content": [
             {"type": "text", "text": "look"},
             {"type": "image", "data": base64.b64encode(picture).decode(),
              "mimeType": "image/jpeg"}]}},
        {"type": "message", "id": "000000a2", "parentId": "000000a1",
         "timestamp": "2026-12-01T10:01:01.000Z",
         "message": {"role": "toolResult", "toolCallId": "c", "toolName": "exec",
                     "content": [{"type": "text", "text": output}], "isError": False,
                     "timestamp": 1796119261000}}]
    events, warnings = import_all(records)
    assert warnings == []
    assert all(len(e.canonical) <= EVENT_BYTES_MAX for e in events)
    user, tool = events[1], events[2]
    assert user.payload["attachments"][0]["size"] == len(picture)
    assert user.payload["openclaw"]["summarised"] == [
        {"path": ["openclaw", "record", "message", "content", 1], "mime_type": "image/jpeg",
         "bytes": len(picture), "sha256": hashlib.sha256(picture).hexdigest()}]
    back = records_for(events)
    assert back[1]["message"]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "text", "text": sizes.summary_text(picture, "image/jpeg")}]
    assert tool.payload["result"] == sizes.summary_text(output.encode(), "text/plain")
    assert back[2]["message"]["content"][0]["text"] == tool.payload["result"]
    assert back[2]["message"]["toolCallId"] == "c"
    # A record made big by many small values keeps its envelope and a summary.
    crowd = {"type": "custom", "id": "000000a3", "parentId": "000000a2",
             "timestamp": "2026-12-01T10:01:02.000Z", "customType": "x",
             "data": [f"v{i}" for i in range(40_000)]}
    mapped = events_for(crowd, REF)
    # One warning, naming what was kept in the end (not also "kept whole").
    [warning] = mapped.warnings
    assert "000000a3" in warning and "only a summary kept" in warning
    event, = mapped.events
    assert event.payload["value"] == sizes.whole_summary(crowd)
    assert event.payload["openclaw"]["record"] == {
        "type": "custom", "id": "000000a3", "parentId": "000000a2",
        "timestamp": "2026-12-01T10:01:02.000Z"}


def test_unknown_records_and_versions_are_kept_with_a_warning() -> None:
    strange = [
        {"type": "session", "version": 5, "id": "s-4", "timestamp": "2026-12-01T10:00:00Z",
         "cwd": "/", "origin": {"device": "phone"}},
        {"type": "poll", "id": "000000b1", "parentId": None,
         "timestamp": "2026-12-01T10:00:01.000Z", "question": "lunch?"},
        {"type": "message", "id": "000000b2", "parentId": "000000b1",
         "timestamp": "2026-12-01T10:00:02.000Z",
         "message": {"role": "bashExecution", "command": "ls", "output": "a"}},
        {"type": "message", "id": "000000b3", "parentId": "000000b2",
         "timestamp": "not a time", "message": "not an object"},
        {"type": "custom", "id": "000000b4", "parentId": "000000b3",
         "timestamp": "2026-12-01T10:00:04.000Z", "customType": 7},
    ]
    ref = SessionRef("main", "agent:main:main", "s-4")
    events, warnings = import_all(strange, ref)
    assert len(warnings) == 6
    for record, warning in zip(strange, [warnings[0], *warnings[1:3], warnings[4], warnings[5]],
                               strict=True):
        assert repr(record["id"]) in warning
    assert "version 5" in warnings[0] and "unknown record type 'poll'" in warnings[1]
    assert [e.kind for e in events] == ["session_started"] + ["state_changed"] * 4
    assert events[1].payload["key"] == "openclaw.unknown"
    assert events[3].timestamp.ms == 0  # no time of its own, and no fallback given
    assert records_for(events) == strange
    assert events_for([1, 2], ref).warnings  # not even an object: still no exception


json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20) \
    | st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
                           max_leaves=12)
extras = st.dictionaries(st.sampled_from(["details", "extra", "meta", "api2"]), json_values,
                         max_size=2)


@settings(max_examples=60)
@given(st.integers(0, len(transcript.records()) - 1), extras, extras, st.text(max_size=40))
def test_any_extra_content_round_trips(n: int, top: dict[str, Any],
                                       inner: dict[str, Any], text: str) -> None:
    """Whatever else a record of any type carries comes back, at the top or in its
    message, and so do the texts that move into the kinds' fields."""
    records = transcript.records()
    record = records[n]
    record.update(top)
    if "message" in record:
        record["message"].update(inner)
        content = record["message"].get("content")
        if isinstance(content, str):
            record["message"]["content"] = text
        elif content and content[-1].get("type") == "text":
            content[-1]["text"] = text
    events, warnings = import_all(records)
    assert warnings == []
    assert records_for(events) == as_json(records)
    assert [t.session_id for t in transcripts_for(events)] == [transcript.SESSION_ID]


record_types = st.sampled_from(["session", "message", "model_change", "custom", "custom_message",
                                "compaction", "label", "reset", "poll", 7, None])
blocks = st.fixed_dictionaries({"type": st.sampled_from(["text", "image", "toolCall", "thinking"])},
                               optional={"text": json_leaf, "id": json_leaf, "name": json_leaf,
                                         "arguments": json_values, "data": json_leaf})
messages = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "toolResult", "system"])},
    optional={"content": st.text(max_size=10) | st.lists(blocks, max_size=4) | json_values,
              "usage": st.dictionaries(st.text(max_size=6), json_leaf, max_size=3),
              "toolCallId": json_leaf, "toolName": json_leaf, "isError": json_leaf,
              "model": json_leaf})
records = st.fixed_dictionaries(
    {"type": record_types},
    optional={"id": json_leaf, "parentId": json_leaf, "version": json_leaf,
              "timestamp": json_leaf | st.just("2026-12-01T10:00:00.000Z"),
              "message": messages | json_values, "customType": json_leaf,
              "data": json_values, "summary": json_values, "reason": json_leaf})


@settings(max_examples=300)
@given(records)
def test_any_record_is_imported_and_comes_back(record: dict[str, Any]) -> None:
    """Whatever shape a record has, it is imported without an exception, and exported
    equal to itself."""
    mapped = events_for(record, REF)
    assert mapped.events
    assert all(len(e.canonical) <= EVENT_BYTES_MAX for e in mapped.events)
    assert records_for(mapped.events) == [as_json(record)]


def test_two_session_ids_of_one_key_are_one_session_and_two_transcripts() -> None:
    first = transcript.records()
    second = copy.deepcopy(first)
    second[0]["id"] = "s-2"
    for record in second:
        record["timestamp"] = record["timestamp"].replace("T10:", "T11:")
    events = import_all(first)[0]
    events += import_all(second, SessionRef("main", transcript.SESSION_KEY, "s-2"))[0]
    assert {e.session_key for e in events} == {transcript.SESSION_KEY}
    found = transcripts_for(sorted(events, key=lambda e: e.id))
    assert [(t.agent_id, t.session_key, t.session_id) for t in found] == [
        ("main", transcript.SESSION_KEY, transcript.SESSION_ID),
        ("main", transcript.SESSION_KEY, "s-2")]
    assert [t.records for t in found] == [as_json(first), as_json(second)]
    assert records_for(events, "s-2") == as_json(second)


def test_a_record_without_a_time_takes_the_callers() -> None:
    record = {"type": "label", "id": "1", "parentId": None, "targetId": "0", "label": "x"}
    mapped = events_for(record, REF, fallback_ms=1_796_000_000_000)
    assert mapped.events[0].timestamp.ms == 1_796_000_000_000
    assert "'1'" in mapped.warnings[0] and "no valid timestamp" in mapped.warnings[0]


def test_a_tool_call_too_big_for_an_event_keeps_all_but_its_big_argument() -> None:
    body = "x = 1\n" * 40_000  # a file the model writes: 240 KB
    record = {"type": "message", "id": "000000e1", "parentId": None,
              "timestamp": "2026-12-01T10:02:00.000Z", "message": {
                  "role": "assistant", "model": "fake-model", "stopReason": "toolUse",
                  "content": [{"type": "toolCall", "id": "w1", "name": "write",
                               "arguments": {"path": "a.py", "content": body}}]}}
    mapped = events_for(record, REF)
    assert mapped.warnings == []
    call, = mapped.events
    assert len(call.canonical) <= EVENT_BYTES_MAX
    summary = sizes.summary_text(body.encode(), "text/plain")
    assert call.payload["params"] == {"path": "a.py", "content": summary}
    assert call.payload["openclaw"]["summarised"][0]["path"] == ["params", "content"]
    back, = records_for(mapped.events)
    assert back["message"]["content"][0]["arguments"] == {"path": "a.py", "content": summary}
    assert back["message"]["content"][0]["id"] == "w1"


def test_a_record_no_event_can_hold_still_leaves_its_place() -> None:
    """A lone surrogate (possible in JSON, refused in events) in a record's id."""
    record = {"type": "label", "id": "\ud800", "parentId": "p", "timestamp": 5,
              "usage": "x", "label": "\ud800"}
    mapped = events_for(record, REF)
    event, = mapped.events
    assert event.payload["openclaw"]["record"] == {"type": "label", "parentId": "p"}
    [warning] = mapped.warnings
    assert "only a summary kept" in warning


def test_a_record_nested_deeper_than_events_allow_keeps_its_place() -> None:
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"d": deep}
    record = {"type": "custom", "id": "000000f1", "parentId": None,
              "timestamp": "2026-12-01T10:03:00.000Z", "customType": "deep", "data": deep}
    mapped = events_for(record, REF)
    [warning] = mapped.warnings
    assert "only a summary kept" in warning and "nesting" in warning
    event, = mapped.events
    assert event.payload["key"] == "openclaw.unreadable"
    assert records_for(mapped.events) == [{k: record[k] for k in
                                           ("type", "id", "parentId", "timestamp")}]


def test_media_openclaw_keeps_as_files_are_listed_as_attachments() -> None:
    """An image sent with a message is a file in OpenClaw's workspace, named in the
    message (as OpenClaw 2026.9.6 recorded it)."""
    media = {"url": "media://inbound/3213.png", "contentType": "image/png", "kind": "image",
             "sizeBytes": 69}
    record = {"type": "message", "id": "595f164a", "parentId": None,
              "timestamp": "2026-12-01T10:04:00.000Z", "message": {
                  "role": "user", "content": "what is in this picture?",
                  "__openclaw": {"media": [media, {"url": "media://inbound/x"}]}}}
    event, = events_for(record, REF).events
    assert event.payload["attachments"] == [
        {"kind": "image", "mime_type": "image/png", "size": 69},
        {"kind": "file", "mime_type": None, "size": None}]
    assert records_for([event]) == [record]


def test_a_record_with_a_bad_time_takes_its_messages() -> None:
    record = {"type": "message", "id": "1", "parentId": None, "timestamp": "07:31:02101Z",
              "message": {"role": "user", "content": "hi", "timestamp": 1_796_000_000_123}}
    mapped = events_for(record, REF, fallback_ms=5)
    assert mapped.events[0].timestamp.ms == 1_796_000_000_123 and mapped.warnings == []


def test_only_a_ref_no_event_can_name_is_refused() -> None:
    for ref in (SessionRef("", "k", "s"), SessionRef("a\nb", "k", "s"),
                SessionRef("main", "k", "\ud800")):
        with pytest.raises(InvalidInput):
            events_for({"type": "reset"}, ref)


def test_a_rewinds_copy_adds_nothing_to_the_projection_and_comes_back_equal() -> None:
    """As ``sessions.rewind`` writes it: a new header, every record of the session (ids
    and times kept), a leaf. Each copied record is one ``openclaw.copy`` event."""
    first = transcript.records()
    header = {**first[0], "id": "s-2", "timestamp": "2026-12-01T11:00:00.000Z"}
    leaf = {"type": "leaf", "id": "0000abcd", "parentId": first[-1]["id"],
            "timestamp": "2026-12-01T11:00:00.001Z", "targetId": first[4]["id"]}
    second = [header, *first[1:], leaf]
    copy_ms = copy_ms_of(header, second[1])
    assert copy_ms == Hlc.parse_rfc3339(header["timestamp"]).ms
    assert copy_ms_of(first[0], first[1]) is None
    ref = SessionRef("main", transcript.SESSION_KEY, "s-2")
    copied = [events_for(r, ref, copy_ms=copy_ms).events for r in second]
    assert all(len(events) == 1 and events[0].payload["key"] == "openclaw.copy"
               for events in copied[:-1])
    assert copied[-1][0].payload["key"] == "openclaw.leaf"
    events = import_all(first)[0] + [e for events in copied for e in events]
    view = rebuild(transcript.SESSION_KEY, events)
    only_first = rebuild(transcript.SESSION_KEY, import_all(first)[0])
    assert view.messages == only_first.messages
    assert view.header.peer_id == only_first.header.peer_id == transcript.SESSION_ID
    assert records_for(events, "s-2") == as_json(second)
    assert records_for(events, transcript.SESSION_ID) == as_json(first)
    again = [e.id for r in second for e in events_for(r, ref, copy_ms=copy_ms).events]
    assert again == [e.id for events in copied for e in events]


def test_events_whose_record_was_forgotten_are_counted_as_left_out() -> None:
    """A forget of a record's main event takes the record with it: its other events
    (each tool call of an assistant turn) can make no record, and the transcript counts
    them for the export to say so."""
    events, _ = import_all(transcript.records())
    whole = transcripts_for(events)[0]
    assert whole.left_out == 0
    parts = [e for e in events if "part_of" in e.payload["openclaw"]]
    base = next(e for e in events if e.id.hex() == parts[0].payload["openclaw"]["part_of"])
    orphaned = [e for e in parts if e.payload["openclaw"]["part_of"] == base.id.hex()]
    [rest] = transcripts_for([e for e in events if e is not base], reattach=True)
    assert rest.left_out == len(orphaned) > 0
    assert len(rest.records) == len(whole.records) - 1
    # Its children follow the record before it: the chain back from the last record
    # still reaches the first, as OpenClaw reads a conversation.
    assert rest.reattached == sum(r.get("parentId") == base.payload["openclaw"]["record"]["id"]
                                  for r in whole.records) > 0
    by_id = {r["id"]: r for r in rest.records if r["type"] != "session"}
    chain = [rest.records[-1]]
    while chain[-1].get("parentId") is not None:
        chain.append(by_id[chain[-1]["parentId"]])
    assert chain[-1] is next(r for r in rest.records if r["type"] != "session")
    assert whole.reattached == 0


def test_children_of_a_forgotten_record_stay_siblings() -> None:
    """B answered twice (a rewind): C and D are branches. With B forgotten, both follow
    A; chained one after the other, D's branch would hold C, a reply abandoned."""
    def record(n: int, parent: str | None) -> dict[str, Any]:
        return {"type": "message", "id": f"0000000{n}", "parentId": parent,
                "timestamp": f"2026-12-01T10:00:0{n}.000Z",
                "message": {"role": "user", "content": f"message {n}"}}

    a, b, c, d = record(1, None), record(2, "00000001"), record(3, "00000002"), \
        record(4, "00000002")
    events, _ = import_all([a, b, c, d])
    forgotten = {e.id for e in import_all([b])[0]}
    [rest] = transcripts_for([e for e in events if e.id not in forgotten], reattach=True)
    parents = {r["id"]: r["parentId"] for r in rest.records}
    assert parents == {"00000001": None, "00000003": "00000001", "00000004": "00000001"}
    assert rest.reattached == 2
