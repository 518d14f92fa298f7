"""The validators' quick paths (no labels, no set arithmetic for a record without extra
fields) against the validators as they were, kept here as the reference: the same
payloads taken, field order included, and the same faults named, over valid payloads
and payloads a validator refuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crdt import codec, kinds
from crdt.errors import InvalidInput
from crdt.keys import check_name, type_name
from crdt.kinds import DEFAULTS, KINDS, Validator, check_payload, json_value

# The reference: crdt.kinds as it was, every field labelled as it is checked. What did
# not change is the module's own (its labelled JSON check is also what the quick one
# falls back on); what did is kept here as it was.
text = kinds.text
boolean = kinds._boolean
reference_json = kinds._json_value
optional_string = kinds._optional_string
optional_size = kinds._optional_size


def attachments(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise InvalidInput(f"must be an array, not {type_name(value)}", field=field)
    return [record(item, f"{field}[{i}]", ATTACHMENT, {"mime_type": None, "size": None})
            for i, item in enumerate(value)]


def tokens(value: Any, field: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise InvalidInput(f"must be an object, not {type_name(value)}", field=field)
    for key, count in value.items():
        check_name(key, f"{field} key")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < 2**64:
            raise InvalidInput(f"must be {kinds.COUNT_WORDS}", field=f"{field}.{key}")
    return dict(value)


def state_key(value: Any, field: str) -> str:
    return check_name(value, field)


ATTACHMENT: dict[str, Validator] = {
    "kind": text, "mime_type": optional_string, "size": optional_size}
REFERENCE: dict[str, dict[str, Validator]] = {
    "session_started": {"channel": text, "peer_id": text},
    "message_received": {"content": text, "attachments": attachments},
    "message_sent": {"content": text, "message_id": text},
    "tool_called": {"tool_name": text, "params": reference_json},
    "tool_result": {"tool_name": text, "result": reference_json, "success": boolean},
    "agent_response": {"content": text, "model": text, "tokens": tokens},
    "session_ended": {"reason": text},
    "state_changed": {"key": state_key, "value": reference_json},
}


def record(obj: Any, where: str, spec: Mapping[str, Validator],
           defaults: Mapping[str, Any], reserved: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidInput(f"must be an object, not {type_name(obj)}", field=where)
    out = {}
    for name, check in spec.items():
        field = f"{where}.{name}"
        if name in obj:
            out[name] = check(obj[name], field)
        elif name in defaults:
            out[name] = defaults[name]
        else:
            raise InvalidInput("is required", field=field)
    for name in obj.keys() - spec.keys() - (reserved or set()):
        check_name(name, f"{where} field name")
        out[name] = reference_json(obj[name], f"{where}.{name}")
    return out


def reference_payload(kind: str, obj: Any, where: str, *, fill_defaults: bool) -> Any:
    defaults = DEFAULTS.get(kind, {}) if fill_defaults else {}
    return record(obj, where, REFERENCE.get(kind, {}), defaults, reserved={"type"})


# The inputs.


class Text(str):
    pass


_ODD_TEXT = st.sampled_from(["", "\ud800", "é", "a\x00", "\x7f", "\x9f", "a" * 257,
                             Text("t"), " "])
_TEXTS = st.text(max_size=6) | _ODD_TEXT
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**65), st.floats(), _TEXTS,
    st.sampled_from([1.0, -0.0, 2.0**53, 2.0**60, b"x", (1,), 2**64 - 1, 2**64,
                     -(2**63), -(2**63) - 1]))
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_TEXTS | st.integers(0, 2), inner, max_size=3), max_leaves=10)
_SIZES = st.none() | st.sampled_from([-1, 0, 7, 2**64 - 1, 2**64, True, 1.0])
#: Token counts: one name and count, each at or past a limit.
_COUNTS = st.builds(
    lambda key, count: {key: count},
    st.sampled_from(["input", "", "a\x00", "\x7f", "\x9f", "é", "\ud800", "a" * 256,
                     "a" * 257, Text("t"), 1]), _SIZES)
_ATTACHMENTS = st.fixed_dictionaries(
    {"kind": st.sampled_from(["image", "é", "\ud800", Text("t")]),
     "mime_type": st.none() | st.sampled_from(["image/png", "é", "\ud800", 1]),
     "size": _SIZES}) \
    | st.fixed_dictionaries(
    {"kind": st.just("image") | _VALUES},
    optional={"mime_type": st.none() | st.just("image/png") | _VALUES,
              "size": st.none() | st.integers(-1, 2**64) | _VALUES,
              "extra": _VALUES}) | _VALUES
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "attachments": st.lists(_ATTACHMENTS, max_size=3) | _VALUES,
    "tokens": st.dictionaries(_TEXTS, _SIZES | _VALUES, max_size=3) | _VALUES,
    "success": st.booleans() | _VALUES,
    "key": st.just("mood") | _VALUES,
}


@st.composite
def payloads(draw: Any) -> tuple[str, Any]:
    kind = draw(st.sampled_from(sorted(KINDS)) | st.just("unknown_kind"))
    obj: dict[Any, Any] = {}
    for name in KINDS.get(kind, {}):
        if draw(st.integers(0, 9)):
            obj[name] = draw(_FIELDS.get(name, st.just("text") | _VALUES))
    obj.update(draw(st.dictionaries(st.sampled_from(["type", "extra", "é", ""]) | _TEXTS,
                                    _VALUES, max_size=2)))
    return kind, draw(st.just(obj) | _VALUES)


def outcome(check: Any, kind: str, obj: Any, fill_defaults: bool) -> Any:
    try:
        payload = check(kind, obj, "kind", fill_defaults=fill_defaults)
    except InvalidInput as error:
        return (type(error), str(error), error.field)
    return (payload, list(payload), codec.encode_fast(payload))


def test_the_reference_is_the_seeds_kinds() -> None:
    assert {kind: list(fields) for kind, fields in KINDS.items()} == \
        {kind: list(fields) for kind, fields in REFERENCE.items()}
    assert kinds._ATTACHMENT_FIELDS.keys() == ATTACHMENT.keys()


@settings(max_examples=2000)
@given(payloads(), st.booleans())
def test_payloads_are_checked_as_the_reference_checks_them(drawn: tuple[str, Any],
                                                           fill_defaults: bool) -> None:
    kind, obj = drawn
    assert outcome(check_payload, kind, obj, fill_defaults) == \
        outcome(reference_payload, kind, obj, fill_defaults)


@settings(max_examples=1000)
@given(_VALUES, st.integers(0, codec.DEPTH_MAX + 1))
def test_json_values_are_checked_as_the_reference_checks_them(value: Any, depth: int) -> None:
    def quick(_kind: str, obj: Any, where: str, fill_defaults: bool) -> Any:
        return {"v": json_value(obj, where, depth)}

    def reference(_kind: str, obj: Any, where: str, fill_defaults: bool) -> Any:
        return {"v": reference_json(obj, where, depth)}

    assert outcome(quick, "", value, False) == outcome(reference, "", value, False)


@settings(max_examples=1000)
@given(st.lists(_ATTACHMENTS, min_size=1, max_size=3), _COUNTS | _FIELDS["tokens"],
       st.booleans())
def test_attachments_and_tokens_are_checked_as_the_reference_checks_them(
        attached: list[Any], counts: Any, fill_defaults: bool) -> None:
    for kind, obj in (("message_received", {"content": "c", "attachments": attached}),
                      ("agent_response", {"content": "c", "model": "m", "tokens": counts})):
        assert outcome(check_payload, kind, obj, fill_defaults) == \
            outcome(reference_payload, kind, obj, fill_defaults)
