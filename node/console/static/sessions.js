// Sessions: the session list a page at a time, filtered by key prefix on the node, read
// again soon after each new event (a new session, or one that changed).

import { throttled, h, localTime, printable, since } from "./dom.js";

const PAGE_SIZE = 50;
// Requests one page may take when a filter leaves the node's reads short of a page.
const READS_PER_PAGE_MAX = 10;

export function sessionsView(context) {
  let root = null;
  let stopped = false;
  let filter = "";
  let starts = [0]; // the cursor each page shown so far began at: "Previous" pops one
  let next = 0;
  let more = false;
  let latest = 0; // only the newest load may show its rows (an older one may end later)
  const soon = throttled(() => load(), 500);
  const filterSoon = throttled(() => {
    starts = [0];
    load();
  }, 250);

  async function load() {
    const mine = ++latest;
    const rows = [];
    let cursor = starts[starts.length - 1];
    more = false;
    try {
      for (let reads = 0; reads < READS_PER_PAGE_MAX && rows.length < PAGE_SIZE; reads += 1) {
        const query = new URLSearchParams({ after: cursor, limit: PAGE_SIZE - rows.length, detail: 1 });
        if (filter) query.set("prefix", filter);
        const page = await context.api(`/v1/sessions?${query}`);
        rows.push(...page.sessions);
        cursor = page.next;
        more = page.more;
        if (!more) break;
      }
    } catch (error) {
      if (!stopped && mine === latest) root.querySelector(".error").textContent = `Cannot read sessions: ${printable(error.message)}`;
      return;
    }
    if (stopped || mine !== latest) return;
    next = cursor;
    root.querySelector(".error").textContent = "";
    root.querySelector(".rows").replaceChildren(...rows.map(sessionRow));
    root.querySelector(".empty").hidden = rows.length > 0;
    root.querySelector("button.previous").disabled = starts.length < 2;
    root.querySelector("button.next").disabled = !more;
  }

  return {
    mount(element) {
      root = element;
      element.append(
        h("h1", {}, "Sessions"),
        h("div", { class: "toolbar" },
          h("input", { type: "search", placeholder: "Filter by key prefix", "aria-label": "Filter by key prefix",
            dataset: { testid: "session-filter" },
            oninput: (typed) => { filter = typed.target.value; filterSoon(); } }),
          h("button", { class: "previous", disabled: true,
            onclick: () => { starts.pop(); load(); } }, "Previous"),
          h("button", { class: "next", disabled: true,
            onclick: () => { starts.push(next); load(); } }, "Next")),
        h("div", { class: "session-list" },
          h("div", { class: "session-head" },
            h("span", {}, "Session"), h("span", {}, "State"), h("span", { class: "num" }, "Messages"),
            h("span", { class: "num" }, "Events"), h("span", {}, "Last activity")),
          h("div", { class: "rows" })),
        h("p", { class: "empty muted", hidden: true }, "No sessions."),
        h("p", { class: "error" }),
      );
      load();
    },
    onEvent() {
      soon();
    },
    onReconnect() {
      soon();
    },
    unmount() {
      stopped = true;
      soon.cancel();
      filterSoon.cancel();
    },
  };
}

// `data-key` holds the key itself (set as an attribute, never parsed as markup, never
// shown); every text shown is `printable`.
function sessionRow(session) {
  return h("a", { class: "session-row", href: `#/session/${encodeURIComponent(session.session_key)}`,
    dataset: { testid: "session-row", key: session.session_key } },
    h("span", { class: "mono key" }, printable(session.session_key)),
    // Every event forgotten: its header says nothing left ("active", no counts).
    // The state is the node's word ("active", "ended"), a later version's maybe: shown
    // as `clawsync sessions` shows it, a control in it escaped.
    h("span", { class: session.forgotten ? "muted" : "", dataset: { testid: "session-state" } },
      session.forgotten ? "forgotten" : printable(session.state)),
    h("span", { class: "num" }, session.message_count),
    h("span", { class: "num" }, session.event_count),
    h("span", { title: localTime(session.last_activity) }, since(session.last_activity)));
}
