// A session's transcript as a person reads it: received and sent messages, each tool
// call with its result, state changes, in the session's order (timestamp, then id).
// Entries are plain objects; only those drawn become elements (``render``).

import { h, localTime, printable, printableLines } from "./dom.js";

export function byOrder(a, b) {
  return a.hlc[0] - b.hlc[0] || a.hlc[1] - b.hlc[1] || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export class Transcript {
  constructor() {
    this.entries = [];
    this.open = []; // tool call entries without a result yet, oldest first
    this.last = null; // the newest event folded in
  }

  static of(events) {
    const transcript = new Transcript();
    for (const event of [...events].sort(byOrder)) transcript.add(event);
    return transcript;
  }

  // True when add() may take the event: it sorts after every event folded in so far.
  takes(event) {
    return this.last === null || byOrder(event, this.last) > 0;
  }

  // Fold in an event (see takes): { entry, added: true } for a new entry,
  // { entry, added: false } when a result completed an earlier call, null for nothing.
  add(event) {
    this.last = event;
    if (event.known_kind === false) return null; // a kind this node does not know
    if (event.forgotten_by) return null; // forgotten: only its skeleton is left
    const kind = event.kind;
    if (kind.type === "tool_result") {
      const at = this.open.findIndex((entry) => answers(kind, entry.call));
      if (at >= 0) {
        const [entry] = this.open.splice(at, 1);
        entry.result = kind;
        return { entry, added: false };
      }
      return this.push({ event, direction: "tool", call: null, result: kind });
    }
    if (kind.type === "tool_called") {
      const step = this.push({ event, direction: "tool", call: kind, result: null });
      this.open.push(step.entry);
      return step;
    }
    const shown = plain(kind);
    return shown ? this.push({ event, ...shown }) : null;
  }

  push(entry) {
    this.entries.push(entry);
    return { entry, added: true };
  }
}

// A result answers the open call with its tool-call id when both carry one (a source
// such as OpenClaw runs several calls of one tool at once), else the oldest open call of
// its tool.
function answers(result, call) {
  if (typeof result.tool_call_id === "string" && typeof call.tool_call_id === "string") {
    return result.tool_call_id === call.tool_call_id;
  }
  return result.tool_name === call.tool_name;
}

function plain(kind) {
  switch (kind.type) {
    case "message_received": {
      const files = (kind.attachments || []).length;
      return { direction: "inbound", text: kind.content, meta: files ? `${files} attachments` : "" };
    }
    case "message_sent":
      return { direction: "outbound", text: kind.content, meta: "sent" };
    case "agent_response":
      return { direction: "outbound", text: kind.content, meta: kind.model };
    case "session_started":
      return { direction: "state", text: `Session started on ${kind.channel} with ${kind.peer_id}` };
    case "session_ended":
      return { direction: "state", text: `Session ended: ${kind.reason}` };
    case "state_changed":
      return { direction: "state", text: `${kind.key} = ${JSON.stringify(kind.value)}` };
    default:
      return null;
  }
}

function message(event, direction, body, meta = "") {
  return h("div", { class: "message", dataset: { testid: "message", direction, id: event.id } },
    h("div", { class: "meta" },
      h("time", { datetime: event.timestamp }, localTime(event.timestamp)),
      ` · ${direction}`, meta ? ` · ${printable(meta)}` : ""),
    body);
}

// call: the tool_called event's kind, or null for a result whose call this node lacks.
function toolCall(name, call, result) {
  return h("div", { class: "tool-call", dataset: { testid: "tool-call" } },
    h("div", {}, h("strong", {}, printable(name)),
      call === null ? h("span", { class: "muted" }, " (call not recorded)") : ""),
    call === null ? ""
      : h("pre", { class: "params" }, printableLines(JSON.stringify(call.params, null, 2))),
    result);
}

function toolResult(kind) {
  return h("div", { class: `tool-result${kind.success ? "" : " failed"}`, dataset: { testid: "tool-result" } },
    h("div", { class: "muted" }, kind.success ? "result" : "failed"),
    // A text (an OpenClaw result's text blocks) as it reads, not in JSON's quotes.
    h("pre", {}, printableLines(typeof kind.result === "string" ? kind.result
      : JSON.stringify(kind.result, null, 2))));
}

export function render(entry) {
  const body = entry.direction === "tool"
    ? toolCall((entry.call || entry.result).tool_name, entry.call, entry.result && toolResult(entry.result))
    : h("div", { class: "body" }, printableLines(entry.text));
  return message(entry.event, entry.direction, body, entry.meta);
}
