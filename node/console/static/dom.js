// Building the page without innerHTML: every text the node sends is set as text, so a
// message that looks like HTML shows as what it is.

// h("a", {href: "#/x", dataset: {testid: "row"}}, "text", child, ...)
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// Makes `target`'s children look like `fresh` (nodes not in the page yet), changing only
// what differs. A child with a key (`data-node-id`, `data-device-id`) is matched with the
// old child of that key wherever it stood, the others in their order: a row added or
// removed above another leaves it where it is. An element kept keeps its focus, its
// tooltip, a click in progress and its listeners, and gets the rest (text, attributes,
// `data-state`) patched. Its listeners are those of the element first drawn, so whatever
// a listener acts on must be in a key (deviceId's button copies its `data-device-id`):
// an element of another key, or another tag, is a new one, swapped whole.
export function patchChildren(target, fresh) {
  const old = [...target.childNodes];
  const byKey = new Map();
  const unkeyed = [];
  for (const node of old) {
    const key = keyOf(node);
    if (key === null) unkeyed.push(node);
    else byKey.set(key, [...(byKey.get(key) || []), node]);
  }
  const kept = new Set();
  const wanted = fresh.map((node) => {
    const key = keyOf(node);
    const match = key === null ? unkeyed.shift() : byKey.get(key)?.shift();
    if (match === undefined || !patch(match, node)) return node;
    kept.add(match);
    return match;
  });
  for (const node of old) if (!kept.has(node)) node.remove();
  // The old children left are the kept ones, in their order: new ones go in between,
  // and a kept one moves only if the order changed (moveBefore keeps its focus).
  wanted.forEach((node, index) => {
    const at = target.childNodes[index] ?? null;
    if (node === at) return;
    if (kept.has(node) && target.moveBefore) target.moveBefore(node, at);
    else target.insertBefore(node, at);
  });
}

function keyOf(node) {
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const { nodeId, deviceId } = node.dataset;
  if (nodeId) return `node ${nodeId}`;
  return deviceId ? `device ${deviceId}` : null;
}

// Patches `old` to look like `fresh`, if it can be: false when they are different
// elements (another tag, or a text and an element).
function patch(old, fresh) {
  if (old.nodeType === Node.TEXT_NODE && fresh.nodeType === Node.TEXT_NODE) {
    if (old.data !== fresh.data) old.data = fresh.data;
    return true;
  }
  if (old.nodeName !== fresh.nodeName || old.nodeType !== Node.ELEMENT_NODE) return false;
  for (const { name, value } of [...fresh.attributes]) {
    if (old.getAttribute(name) !== value) old.setAttribute(name, value);
  }
  for (const { name } of [...old.attributes]) {
    if (!fresh.hasAttribute(name)) old.removeAttribute(name);
  }
  patchChildren(old, [...fresh.childNodes]);
  return true;
}

// "1 event", "2 events".
export function counted(count, noun) {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

export function bytes(count) {
  if (count === null || count === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function secondsAgo(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 1) return "just now";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

export function since(timestamp) {
  if (!timestamp) return "–";
  return secondsAgo(Math.max(0, (Date.now() - Date.parse(timestamp)) / 1000));
}

export function localTime(timestamp) {
  return timestamp ? new Date(timestamp).toLocaleString() : "";
}

// fn, run at most once every waitMs: a call after a quiet spell runs it at once (on the
// next turn of the event loop), calls during a burst run it once when the period ends.
// (A debounce would wait for the burst to end, and a steady flow never ends.)
export function throttled(fn, waitMs) {
  let timer = null;
  let lastRunMs = -Infinity;
  const call = () => {
    if (timer !== null) return;
    const waitNowMs = Math.max(0, lastRunMs + waitMs - performance.now());
    timer = setTimeout(() => {
      timer = null;
      lastRunMs = performance.now();
      fn();
    }, waitNowMs);
  };
  call.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return call;
}

// A device id as people read it: its first group, as `clawsync status` shows one, with
// the whole id on hover and a button that copies it (`note.copy`, which says so).
export function deviceId(id, note) {
  return h("span", { class: "device-id", dataset: { testid: "device-id", deviceId: id } },
    h("code", { title: id }, shortId(id)),
    h("button", { type: "button", title: "Copy the whole device id",
      onclick: () => note.copy(id) }, "Copy"));
}

// A name a device or a person chose, isolated from the text around it (right-to-left
// letters in it cannot reorder the id, the button or the words beside it), and
// `printable`: a bidi control in it is shown, not obeyed. shownName first: it tells the
// name's own backslashes from the escapes printable writes.
export function named(name, attrs = {}) {
  return h("bdi", attrs, printable(shownName(name)));
}

// Words a node or a member wrote (a sentence, an address), shown as `named` shows a name
// but for its backslashes: they may begin escapes the node wrote (printable's `\x1b`).
export function words(text, attrs = {}) {
  return h("bdi", attrs, printable(text).replace(HIDDEN, hiddenEscape));
}

// `name` with each character of HIDDEN as its escape, as crdt.device.shown_name writes
// it: `\u3164`, or `\U0001d173` beyond the first plane; and a run of backslashes the
// name holds doubled where it would read as an escape (before u, U or x, a character of
// HIDDEN or a control character), so a name typed `\u3164` shows apart from U+3164.
export function shownName(name) {
  return String(name).replace(SHOWN, (found) => (found.startsWith("\\") ? found + found
    : hiddenEscape(found)));
}

// A character of HIDDEN as its escape.
function hiddenEscape(char) {
  const code = char.codePointAt(0);
  return code <= 0xffff ? `\\u${code.toString(16).padStart(4, "0")}`
    : `\\U${code.toString(16).padStart(8, "0")}`;
}

// The characters crdt.device.shown_name escapes in a name, as `clawsync devices` shows
// it: those that hide text, show as a blank or as nothing; not those that spell words
// (the joiners, variation selectors, a flag's tags). Two names that read as one show
// which holds such a character.
const HIDDEN = /[\u00ad\u034f\u061c\u115f-\u1160\u17b4-\u17b5\u180e\u200b\u200e-\u200f\u2028-\u202e\u2060-\u206f\u2800\u3164\ufeff\uffa0\ufff0-\ufffb\u{1bca0}-\u{1bca3}\u{1d173}-\u{1d17a}\u{e0000}-\u{e001f}\u{e0080}-\u{e00ff}\u{e01f0}-\u{e0fff}]/gu;
// A run of backslashes that would read as an escape, or a character of HIDDEN.
const SHOWN = new RegExp(
  String.raw`\\+(?=[uUx\x00-\x1f\x7f-\x9f]|${HIDDEN.source})|${HIDDEN.source}`, "gu");

// The characters node.text.printable escapes (node.text.BIDI_CONTROLS after the C0 and
// C1 controls and DEL): a <bdi> keeps a name's override from reordering what is beside
// it, not what follows it inside a sentence a peer wrote ("removed by mallory\u202e
// (id) at ... (reason)" would read backwards from the name on).
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

// `text` with each of those shown as an escape, as `clawsync status` shows it: `\x1b`,
// or `\u202e` for a bidi control. For every text a peer or a device gave (names,
// reasons, refusals, addresses, a node's error words, session keys, a transcript's text).
export function printable(text) {
  return String(text).replace(CONTROLS, (found) => {
    const code = found.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

// `printable`, keeping a text's line breaks and tabs: a message's content, or a tool's
// JSON, is laid out by them (its box keeps white space), and they hide or reorder
// nothing. Every other character printable escapes is shown escaped.
export function printableLines(text) {
  return String(text).replace(/[^\n\t]+/g, (part) => printable(part));
}

export function shortId(id) {
  return `${id.slice(0, 7)}…`;
}

// How long "Copied the device id …" stays: the clipboard holds it, nothing is left to do.
const COPIED_NOTE_MS = 4000;

// The line that says what a Copy button did: fixed at the bottom of the window, so it
// moves nothing on the page, and kept while the view redraws its tables. `note.copy(id)`
// puts `id` on the clipboard; a page that may not write the clipboard (plain http beyond
// localhost) shows the whole id instead, selected for Ctrl+C, until it is copied or
// dismissed. `note.cancel()` (the view unmounted) drops its timer.
export function copyNote() {
  let timer = null;
  const text = h("span", { dataset: { testid: "copy-note" } });
  const note = h("p", { class: "copy-note", role: "status", hidden: true }, text,
    h("button", { type: "button", title: "Dismiss", onclick: () => clear() }, "×"));
  const clear = () => {
    clearTimeout(timer);
    timer = null;
    note.hidden = true;
    text.replaceChildren();
  };
  const say = (...parts) => {
    clearTimeout(timer);
    timer = null;
    text.replaceChildren(...parts);
    note.hidden = false;
  };
  // Ctrl+C of the shown id (or any copy while it shows): nothing left to do. Cleared
  // after the copy, which takes the selection once this returns.
  const copied = () => {
    if (!note.hidden && timer === null) setTimeout(clear);
  };
  document.addEventListener("copy", copied);
  note.copy = async (id) => {
    const whole = h("code", {}, id);
    try {
      await navigator.clipboard.writeText(id);
      say("Copied the device id ", whole);
      timer = setTimeout(clear, COPIED_NOTE_MS);
    } catch {
      say("Press Ctrl+C to copy the device id ", whole);
      getSelection().selectAllChildren(whole);
    }
  };
  note.cancel = () => {
    clear();
    document.removeEventListener("copy", copied);
  };
  return note;
}
