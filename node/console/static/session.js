// A session: its transcript as a person reads it, built from the session's events (the
// projection leaves tool calls and state changes out), and its Automerge URL. New
// events of the session come from the live stream, whichever device wrote them.

import { Refused, sessionPath } from "./api.js";
import { counted, h, localTime, printable, throttled } from "./dom.js";
import { Transcript, byOrder, render } from "./transcript.js";

const EVENTS_PAGE = 1000;
const RETRY_MS = 2000;
// Entries drawn: the newest ones; a button draws the rest.
const SHOWN_MAX = 500;
// New events are drawn together, at most this often (a busy session sends hundreds a second).
const DRAW_MS = 50;
const HEADER_MS = 2000;
// An event came while the node answered 404: the session exists now, ask again soon,
// a few times (a proxy that rewrites the key's URL would answer 404 for good).
const AGAIN_MS = 250;
const AGAIN_MAX = 4;

// A browser folds a path segment "." or "..", escaped or not, into the path around it:
// a session of that name cannot be asked for by its URL, only read elsewhere.
function foldedAway(key) {
  return key === "." || key === "..";
}

export function sessionView(context, { key }) {
  let root = null;
  let stopped = false;
  let loaded = false;
  let missing = false; // not on this node (yet): the session's first event loads it
  let again = 0; // loads since a 404 that came with events
  const events = new Map(); // id -> event: the stream and the pages may both bring one
  // The summary comes with the whole projection: read again at most every 2 s.
  const headerSoon = throttled(() => loadHeader(), HEADER_MS);
  let showAll = false;
  let transcript = null; // what is drawn
  const drawn = new Map(); // entry -> its element, in the order shown
  let news = []; // events from the stream not drawn yet
  const drawSoon = throttled(() => drawNews(), DRAW_MS);
  // Forget records seen: each one erases content on the node, so the events read before
  // it are dropped and read again (a load begun earlier gives way to the newer one).
  let forgets = 0;

  function list() {
    return root.querySelector("[data-testid=transcript]");
  }

  function element(entry) {
    const made = render(entry);
    drawn.set(entry, made);
    return made;
  }

  function redraw() {
    news = []; // every event known is in what is drawn now
    transcript = Transcript.of(events.values());
    const first = showAll ? 0 : Math.max(0, transcript.entries.length - SHOWN_MAX);
    drawn.clear();
    list().replaceChildren(...transcript.entries.slice(first).map(element));
    showEarlier();
  }

  // New events usually come after all others: their entries are added at the end. One
  // that sorts earlier (a device that was offline) redraws the transcript.
  function drawNews() {
    if (stopped || !transcript) return;
    const fresh = news.sort(byOrder);
    news = [];
    if (fresh.some((event) => !transcript.takes(event))) return redraw();
    for (const event of fresh) {
      const step = transcript.add(event);
      if (step && step.added) list().append(element(step.entry));
      else if (step && drawn.has(step.entry)) drawn.get(step.entry).replaceWith(element(step.entry));
    }
    while (!showAll && drawn.size > SHOWN_MAX) {
      const [entry, oldest] = drawn.entries().next().value;
      oldest.remove();
      drawn.delete(entry);
    }
    showEarlier();
  }

  function showEarlier() {
    const hidden = transcript.entries.length - drawn.size;
    root.querySelector(".earlier").replaceChildren(hidden > 0 ? h("button", {
      type: "button", onclick: () => { showAll = true; redraw(); } }, `Show ${hidden} earlier entries`) : "");
  }

  // The projection's summary; "missing" on a 404, "failed" when the node could not say.
  async function loadHeader() {
    let projection;
    try {
      projection = await context.api(sessionPath(key));
    } catch (error) {
      if (stopped) return "failed";
      const missing = error instanceof Refused && error.status === 404;
      if (missing) {
        root.querySelector(".summary").textContent = "Not on this node (yet): it shows when its first event arrives.";
        showUrl(null);
      }
      else root.querySelector(".error").textContent = `Cannot read the session: ${printable(error.message)}`;
      return missing ? "missing" : "failed";
    }
    if (stopped) return "failed";
    root.querySelector(".error").textContent = "";
    root.querySelector(".summary").replaceChildren(printable(summary(projection)));
    showUrl(projection.automerge_url);
    return "found";
  }

  // The session's Automerge URL with its Copy button; none (null) for a session this
  // node does not have: said, not an empty URL to copy.
  function showUrl(automergeUrl) {
    const line = root.querySelector(".automerge");
    if (!automergeUrl) {
      line.replaceChildren(h("span", { class: "muted", dataset: { testid: "automerge-none" } },
        "No Automerge URL: the session is not on this node."));
      return;
    }
    // The same URL read again (every few seconds while events come) is left as it is:
    // a copy selected in it stays selected.
    if (line.querySelector("[data-testid=automerge-url]")?.textContent === automergeUrl) return;
    const url = h("code", { dataset: { testid: "automerge-url" } }, automergeUrl);
    line.replaceChildren("Automerge URL ", url, " ",
      h("button", { type: "button", onclick: () => copy(url) }, "Copy"),
      h("span", { class: "copied muted" }));
  }

  // False when a forget came in meanwhile: what was read may hold erased content.
  async function loadEvents(generation) {
    let after = 0;
    for (;;) {
      const page = await context.api(sessionPath(key, `/events?after=${after}&limit=${EVENTS_PAGE}`));
      if (generation !== forgets) return false;
      for (const event of page.events) events.set(event.id, event);
      after = page.next;
      if (!page.more || stopped) return true;
    }
  }

  async function load() {
    const header = await loadHeader();
    if (stopped) return;
    // Missing: the session's first event loads it, unless it came during the request.
    if (header === "missing" && events.size > 0 && again < AGAIN_MAX) {
      again += 1;
      setTimeout(load, AGAIN_MS);
      return;
    }
    again = 0;
    missing = header === "missing";
    if (header === "failed") setTimeout(load, RETRY_MS);
    if (header !== "found") return;
    const generation = forgets;
    try {
      if (!(await loadEvents(generation))) return;
    } catch (error) {
      if (generation !== forgets) return;
      if (stopped) return;
      root.querySelector(".error").textContent = `Cannot read the events: ${printable(error.message)}`;
      setTimeout(load, RETRY_MS);
      return;
    }
    loaded = true;
    redraw();
  }

  return {
    mount(element) {
      root = element;
      element.append(
        h("h1", {}, h("span", { class: "mono" }, printable(key))),
        h("p", { class: "summary muted" }, "Loading…"),
        h("p", { class: "automerge" }), // once the node says (showUrl)
        h("p", { class: "earlier" }),
        h("div", { class: "transcript", dataset: { testid: "transcript" } }),
        h("p", { class: "error" }),
      );
      if (foldedAway(key)) {
        stopped = true;
        element.querySelector(".summary").textContent = `A browser cannot ask for a `
          + `session named "${key}": URLs fold the name away. Read it with `
          + `clawsync events ${key} or curl --path-as-is.`;
        return;
      }
      load();
    },
    onEvent(event) {
      if (stopped || event.session_key !== key || events.has(event.id)) return;
      if (event.kind.type === "forget") {
        forgets += 1;
        events.clear(); // the record comes back with the others, read again
        loaded = false;
        load();
        return;
      }
      events.set(event.id, event);
      if (missing) {
        missing = false;
        load();
        return;
      }
      if (loaded) { // else the load under way draws it
        news.push(event);
        drawSoon();
      }
      headerSoon();
    },
    onReconnect() {
      if (loaded) headerSoon();
    },
    unmount() {
      stopped = true;
      headerSoon.cancel();
      drawSoon.cancel();
    },
  };
}

// A session forgotten whole reads "active" with no counts (its header is that of no
// event): it says "forgotten", as the list and `clawsync projection` do. A session with no
// activity (forgotten, or the cluster's own, whose records are none) says "–", as the list.
function summary(projection) {
  const state = projection.forgotten ? "forgotten" : projection.state;
  return `${state} · ${projection.channel} · `
    + `${counted(projection.message_count, "message")} received · `
    + `${counted(projection.event_count, "event")} · `
    + `last activity ${localTime(projection.last_activity) || "–"}`;
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

