// A session: its transcript as a person reads it, built from the session's events (the
// projection leaves tool calls and state changes out), and its Automerge URL. New
// events of the session come from the live stream, whichever device wrote them.

import { Refused, sessionPath } from "./api.js";
import { soonOnce, h, localTime } from "./dom.js";

const EVENTS_PAGE = 1000;
const RETRY_MS = 2000;
// Entries drawn at first: the newest ones; "Show all" draws the rest (a long session
// would otherwise make every new event redraw thousands of entries).
const SHOWN_MAX = 500;

export function sessionView(context, { key }) {
  let root = null;
  let stopped = false;
  let loaded = false;
  let missing = false; // not on this node (yet): the session's first event loads it
  const events = new Map(); // id -> event: the stream and the pages may both bring one
  const headerSoon = soonOnce(() => loadHeader(), 300);
  let drawPending = false;
  let showAll = false;

  function draw() {
    if (drawPending) return;
    drawPending = true;
    setTimeout(() => { // once for a burst of events (not requestAnimationFrame: it waits in a hidden tab)
      drawPending = false;
      if (stopped || !loaded) return;
      let items = transcript(events);
      const hidden = showAll ? 0 : Math.max(0, items.length - SHOWN_MAX);
      root.querySelector(".earlier").replaceChildren(hidden ? h("button", { type: "button",
        onclick: () => { showAll = true; draw(); } }, `Show ${hidden} earlier entries`) : "");
      if (hidden) items = items.slice(hidden);
      root.querySelector("[data-testid=transcript]").replaceChildren(...items.map(render));
    }, 0);
  }

  // The projection's summary; "missing" on a 404, "failed" when the node could not say.
  async function loadHeader() {
    let projection;
    try {
      projection = await context.api(sessionPath(key));
    } catch (error) {
      if (stopped) return "failed";
      const missing = error instanceof Refused && error.status === 404;
      if (missing) root.querySelector(".summary").textContent = "Not on this node (yet): it shows when its first event arrives.";
      else root.querySelector(".error").textContent = `Cannot read the session: ${error.message}`;
      return missing ? "missing" : "failed";
    }
    if (stopped) return "failed";
    root.querySelector(".error").textContent = "";
    root.querySelector(".summary").replaceChildren(summary(projection));
    root.querySelector("[data-testid=automerge-url]").textContent = projection.automerge_url;
    return "found";
  }

  async function loadEvents() {
    let after = 0;
    for (;;) {
      const page = await context.api(sessionPath(key, `/events?after=${after}&limit=${EVENTS_PAGE}`));
      for (const event of page.events) events.set(event.id, event);
      after = page.next;
      if (!page.more || stopped) break;
    }
  }

  async function load() {
    const header = await loadHeader();
    missing = header === "missing"; // then the session's first event loads it
    if (header === "failed" && !stopped) setTimeout(load, RETRY_MS);
    if (header !== "found") return;
    try {
      await loadEvents();
    } catch (error) {
      if (stopped) return;
      root.querySelector(".error").textContent = `Cannot read the events: ${error.message}`;
      setTimeout(load, RETRY_MS);
      return;
    }
    loaded = true;
    draw();
  }

  return {
    mount(element) {
      root = element;
      const url = h("code", { dataset: { testid: "automerge-url" } });
      element.append(
        h("h1", {}, h("span", { class: "mono" }, key)),
        h("p", { class: "summary muted" }, "Loading…"),
        h("p", {}, "Automerge URL ", url, " ",
          h("button", { type: "button", onclick: () => copy(url) }, "Copy"),
          h("span", { class: "copied muted" })),
        h("p", { class: "earlier" }),
        h("div", { class: "transcript", dataset: { testid: "transcript" } }),
        h("p", { class: "error" }),
      );
      load();
    },
    onEvent(event) {
      if (event.session_key !== key) return;
      events.set(event.id, event);
      if (missing) {
        missing = false;
        load();
      } else {
        draw();
        headerSoon();
      }
    },
    onReconnect() {
      if (loaded) headerSoon();
    },
    unmount() {
      stopped = true;
      headerSoon.cancel();
    },
  };
}

function summary(projection) {
  return `${projection.state} · ${projection.channel} · ${projection.message_count} messages received · `
    + `${projection.event_count} events · last activity ${localTime(projection.last_activity)}`;
}

async function copy(element) {
  const note = element.parentElement.querySelector(".copied");
  try {
    await navigator.clipboard.writeText(element.textContent);
    note.textContent = " copied";
  } catch {
    // Not a secure context (plain http beyond localhost): select it for Ctrl+C instead.
    getSelection().selectAllChildren(element);
    note.textContent = " selected: press Ctrl+C";
  }
}

// Events in the session's order (timestamp, then id), as what a person reads: each tool
// call holds the first later result of the same tool. Entries are plain objects; only
// those drawn become elements (``render``).
export function transcript(events) {
  const ordered = [...events.values()].sort(byOrder);
  const open = []; // tool calls without a result yet, oldest first
  const entries = [];
  for (const event of ordered) {
    if (event.known_kind === false) continue; // a kind this node does not know
    const kind = event.kind;
    if (kind.type === "tool_result") {
      const at = open.findIndex((entry) => entry.call.tool_name === kind.tool_name);
      if (at >= 0) open.splice(at, 1)[0].result = kind;
      else entries.push({ event, direction: "tool", call: null, result: kind });
    } else if (kind.type === "tool_called") {
      const entry = { event, direction: "tool", call: kind, result: null };
      open.push(entry);
      entries.push(entry);
    } else {
      const shown = plain(kind);
      if (shown) entries.push({ event, ...shown });
    }
  }
  return entries;
}

function render(entry) {
  const body = entry.direction === "tool"
    ? toolCall((entry.call || entry.result).tool_name, entry.call, entry.result && toolResult(entry.result))
    : h("div", { class: "body" }, entry.text);
  return message(entry.event, entry.direction, body, entry.meta);
}

function byOrder(a, b) {
  return a.hlc[0] - b.hlc[0] || a.hlc[1] - b.hlc[1] || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
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
      ` · ${direction}`, meta ? ` · ${meta}` : ""),
    body);
}

// call: the tool_called event's kind, or null for a result whose call this node lacks.
function toolCall(name, call, result) {
  return h("div", { class: "tool-call", dataset: { testid: "tool-call" } },
    h("div", {}, h("strong", {}, name),
      call === null ? h("span", { class: "muted" }, " (call not recorded)") : ""),
    call === null ? "" : h("pre", { class: "params" }, JSON.stringify(call.params, null, 2)),
    result);
}

function toolResult(kind) {
  return h("div", { class: `tool-result${kind.success ? "" : " failed"}`, dataset: { testid: "tool-result" } },
    h("div", { class: "muted" }, kind.success ? "result" : "failed"),
    h("pre", {}, JSON.stringify(kind.result, null, 2)));
}
