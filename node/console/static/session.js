// A session: its transcript as a person reads it, built from the session's events (the
// projection leaves tool calls and state changes out), and its Automerge URL. New
// events of the session come from the live stream, whichever device wrote them.

import { Refused, sessionPath } from "./api.js";
import { soonOnce, h, localTime } from "./dom.js";

const EVENTS_PAGE = 1000;
const RETRY_MS = 2000;

export function sessionView(context, { key }) {
  let root = null;
  let stopped = false;
  let loaded = false;
  let missing = false; // not on this node (yet): the session's first event loads it
  const events = new Map(); // id -> event: the stream and the pages may both bring one
  const headerSoon = soonOnce(() => loadHeader(), 300);
  let drawPending = false;

  function draw() {
    if (drawPending) return;
    drawPending = true;
    setTimeout(() => { // once for a burst of events (not requestAnimationFrame: it waits in a hidden tab)
      drawPending = false;
      if (!stopped && loaded) root.querySelector("[data-testid=transcript]").replaceChildren(...transcript(events));
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
// call holds the first later result of the same tool.
export function transcript(events) {
  const ordered = [...events.values()].sort(byOrder);
  const open = []; // tool calls without a result yet, oldest first
  const items = [];
  for (const event of ordered) {
    if (event.known_kind === false) continue; // a kind this node does not know
    const kind = event.kind;
    if (kind.type === "tool_result") {
      const at = open.findIndex((call) => call.name === kind.tool_name);
      const result = toolResult(kind);
      if (at >= 0) {
        open[at].element.append(result);
        open.splice(at, 1);
      } else {
        items.push(message(event, "tool", toolCall(kind.tool_name, null, result)));
      }
    } else if (kind.type === "tool_called") {
      const call = toolCall(kind.tool_name, kind.params);
      open.push({ name: kind.tool_name, element: call });
      items.push(message(event, "tool", call));
    } else {
      const shown = plain(kind);
      if (shown) items.push(message(event, shown.direction, h("div", { class: "body" }, shown.text), shown.meta));
    }
  }
  return items;
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

function toolCall(name, params, result = null) {
  return h("div", { class: "tool-call", dataset: { testid: "tool-call" } },
    h("div", {}, h("strong", {}, name),
      params === null ? h("span", { class: "muted" }, " (call not recorded)") : ""),
    params === null ? "" : h("pre", { class: "params" }, JSON.stringify(params, null, 2)),
    result);
}

function toolResult(kind) {
  return h("div", { class: `tool-result${kind.success ? "" : " failed"}`, dataset: { testid: "tool-result" } },
    h("div", { class: "muted" }, kind.success ? "result" : "failed"),
    h("pre", {}, JSON.stringify(kind.result, null, 2)));
}
