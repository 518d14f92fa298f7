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
// the whole id on hover and a button that copies it (`copyId`, saying so in `note`).
export function deviceId(id, note) {
  return h("span", { class: "device-id", dataset: { testid: "device-id", deviceId: id } },
    h("code", { title: id }, shortId(id)),
    h("button", { type: "button", title: "Copy the whole device id",
      onclick: () => copyId(id, note) }, "Copy"));
}

export function shortId(id) {
  return `${id.slice(0, 7)}…`;
}

// Puts `id` on the clipboard and says so in `note`, a line the view keeps while it
// redraws its tables. A page that may not write the clipboard (plain http beyond
// localhost) shows the whole id there instead, selected for Ctrl+C.
async function copyId(id, note) {
  const whole = h("code", {}, id);
  try {
    await navigator.clipboard.writeText(id);
    note.replaceChildren("Copied the device id ", whole);
  } catch {
    note.replaceChildren("Press Ctrl+C to copy the device id ", whole);
    getSelection().selectAllChildren(whole);
  }
}
