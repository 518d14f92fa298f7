// The console's entry point: the token, the live stream, and which view shows.
//   #/devices              this node and its peer links (the default)
//   #/sessions             the session list
//   #/session/<key>        one session's transcript (the key percent-encoded)

import { EventStream, Refused, Unauthorized, get, onTokenUnused, setToken, token } from "./api.js";
import { devicesView } from "./devices.js";
import { printable } from "./dom.js";
import { sessionView } from "./session.js";
import { sessionsView } from "./sessions.js";

const viewRoot = document.getElementById("view");
const login = document.getElementById("login");
const form = login.querySelector("form");
const tokenError = login.querySelector("[data-testid=token-error]");
const liveStatus = document.querySelector("[data-testid=live-status]");
const tokenUnused = document.querySelector("[data-testid=token-unused]");

tokenUnused.textContent = "This node runs without --token: it does not check the token "
  + "this tab sends, and anyone who reaches it can read it. Start the node with --token "
  + "to require one.";
onTokenUnused((unused) => { tokenUnused.hidden = !unused; });

let stream = null;
let view = null;
// Counts boot() calls: only the answer to the latest may act (an earlier token's late 401
// must not wipe the token given since).
let attempt = 0;

// What every view gets: a GET that sends the token and shows the form on a 401.
const context = {
  async api(path, options) {
    const sent = token();
    try {
      return await get(path, options);
    } catch (error) {
      // A refusal of a token given before the current one says nothing about it.
      if (error instanceof Unauthorized && token() === sent) refused();
      throw error;
    }
  },
};

function setLive(live) {
  // Back after a drop: nothing was missed (the stream resumed from its last position),
  // but what a view read while the node was away may have failed.
  if (live && liveStatus.textContent !== "live" && view && view.onReconnect) view.onReconnect();
  liveStatus.textContent = live ? "live" : "reconnecting…";
  liveStatus.classList.toggle("live", live);
}

function showLogin(message) {
  if (stream) stream.stop();
  stream = null;
  if (view) view.unmount();
  view = null;
  viewRoot.replaceChildren();
  setLive(false);
  liveStatus.textContent = "token needed"; // the node answers: it is not out of reach
  tokenError.textContent = message;
  login.hidden = false;
  form.elements.token.value = "";
  form.elements.token.focus();
}

// The node refused the token a view or the stream sent (it was changed, or is wrong).
function refused() {
  if (!login.hidden) return;
  const hadToken = token() !== null;
  setToken(null);
  showLogin(hadToken ? "The node refused the token: give it again." : "");
}

// The node's log went back (restored from an older backup): what the views show may no
// longer be there, and the stream's position means nothing now. Read it all again.
function rewound() {
  stream = null;
  setLive(false);
  boot();
}

// Start (or start again after a token): ask who the node is, then stream and route.
async function boot() {
  const mine = ++attempt;
  let node;
  try {
    node = await get("/v1/node");
  } catch (error) {
    if (mine !== attempt) return;
    if (error instanceof Unauthorized) {
      const tried = token() !== null;
      setToken(null);
      showLogin(tried ? "That token is wrong: the node refused it." : "");
    } else if (error instanceof Refused && error.status === 403) {
      // A token the node knows that does not open the console (an app's): asking
      // again with it would be refused again, for good.
      setToken(null);
      showLogin(`The node refused this token here: ${printable(error.message)}`);
    } else {
      viewRoot.replaceChildren(`Cannot reach the node (${printable(error.message)}); trying again…`);
      setTimeout(boot, 2000);
    }
    return;
  }
  if (mine !== attempt) return;
  login.hidden = true;
  tokenError.textContent = "";
  // The stream starts at the head read here, before any view loads: what a view reads
  // holds everything up to it, the stream everything after (an old log is not sent again).
  stream = new EventStream({
    after: node.head,
    onEvent: (event) => view && view.onEvent(event),
    onStatus: setLive,
    onUnauthorized: refused,
    onRewound: rewound,
  });
  stream.start();
  route();
}

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  if (hash === "sessions") return { name: "sessions" };
  if (hash.startsWith("session/")) {
    try {
      const key = decodeURIComponent(hash.slice("session/".length));
      if (key) return { name: "session", key };
      history.replaceState(null, "", "#/sessions"); // no key: the list to pick one from
      return { name: "sessions" };
    } catch { /* a malformed escape: fall back to the default view */ }
  }
  if (hash !== "devices") history.replaceState(null, "", "#/devices");
  return { name: "devices" };
}

function route() {
  if (!login.hidden) return;
  const where = parseHash();
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    const active = link.dataset.view === where.name
      || (where.name === "session" && link.dataset.view === "sessions");
    link.classList.toggle("active", active);
  }
  if (view) view.unmount();
  const make = { devices: devicesView, sessions: sessionsView, session: sessionView }[where.name];
  view = make(context, where);
  viewRoot.replaceChildren();
  view.mount(viewRoot);
}

form.addEventListener("submit", (submitted) => {
  submitted.preventDefault();
  setToken(form.elements.token.value.trim());
  tokenError.textContent = "";
  boot();
});
window.addEventListener("hashchange", route);
boot();
