// Talking to the node: JSON requests and the live event stream, both with the token
// (kept in sessionStorage: it lasts as long as the tab and never goes into a URL).

const TOKEN_KEY = "clawsync.token";

export class Unauthorized extends Error {}

// The stream's position is past the node's newest one: the node's log went back (it was
// restored from an older backup, or its folder replaced), and its positions no longer
// mean what the console read.
export class Rewound extends Error {}

// The node answered with an error: ``status`` is its HTTP status.
export class Refused extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// A node started without a token says of a request that carried one that it did not
// check it (the node's headers.TOKEN_UNUSED_HEADER): the console tells whoever listens,
// true or false, at each answer (a node restarted with --token no longer says it) and at
// each new token (unknown until the node answers it). Only the newest word counts: each
// request is numbered as it is sent, and the late answer to one sent before the latest
// answered (or before the token changed) is not heard, or it would turn the notice back
// on for a node that has checked the token since.
const TOKEN_UNUSED = "X-Clawsync-Token-Unused";
let tokenUnusedListener = () => {};
let requestsSent = 0;
let newestHeard = 0; // the number of the request last heard, or of the token's change

export function onTokenUnused(listener) {
  tokenUnusedListener = listener;
}

function sending() {
  requestsSent += 1;
  return requestsSent;
}

function heard(response, number) {
  if (number < newestHeard) return;
  newestHeard = number;
  tokenUnusedListener(response.headers.get(TOKEN_UNUSED) === "true");
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  newestHeard = sending(); // what was sent with the token before says nothing of this one
  tokenUnusedListener(false);
}

function headers(extra = {}) {
  const value = token();
  return value ? { ...extra, Authorization: `Bearer ${value}` } : extra;
}

// GET a JSON answer; Unauthorized on 401, Error with the node's message otherwise.
export async function get(path, { signal } = {}) {
  const number = sending();
  const response = await fetch(path, { headers: headers({ Accept: "application/json" }), signal });
  heard(response, number);
  if (response.status === 401) throw new Unauthorized("the node refused the token");
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error.message || message; } catch { /* not JSON */ }
    throw new Refused(response.status, message);
  }
  return response.json();
}

export function sessionPath(key, rest = "") {
  return `/v1/sessions/${encodeURIComponent(key)}${rest}`;
}

// The node's live event stream (server-sent events) read with fetch, because
// EventSource cannot send an Authorization header. Whenever the connection drops it
// connects again, waiting a little longer each time, from the position of the last
// event it saw (positions are gap-free: nothing is missed, nothing comes twice). A node
// whose log went back refuses that position (400 on ``after``): the stream then stops
// and calls onRewound, since only reading everything again shows what the node holds.
export class EventStream {
  constructor({ after, onEvent, onStatus, onUnauthorized, onRewound }) {
    this.position = after;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onUnauthorized = onUnauthorized;
    this.onRewound = onRewound;
    this.stopped = false;
    this.controller = null;
  }

  start() {
    this.run();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async run() {
    let delayMs = 500;
    while (!this.stopped) {
      try {
        await this.readOnce();
        delayMs = 500; // the node ended a stream that worked: come back soon
      } catch (error) {
        if (error instanceof Unauthorized) {
          this.stopped = true;
          this.onStatus(false);
          this.onUnauthorized();
          return;
        }
        if (error instanceof Rewound) {
          this.stopped = true;
          this.onRewound();
          return;
        }
      }
      if (this.stopped) return;
      this.onStatus(false);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, 5000);
    }
  }

  async readOnce() {
    this.controller = new AbortController();
    const controller = this.controller;
    // The node sends a keepalive comment every 15 s; silence for longer means the
    // connection is gone even if the browser has not noticed.
    let silentTimer = null;
    const alive = () => {
      clearTimeout(silentTimer);
      silentTimer = setTimeout(() => controller.abort(), 40000);
    };
    try {
      const number = sending();
      const response = await fetch(`/v1/events?after=${this.position}`, {
        headers: headers({ Accept: "text/event-stream" }),
        signal: controller.signal,
        cache: "no-store",
      });
      heard(response, number); // the stream's answer, too, says whether the token went unused
      if (response.status === 401) throw new Unauthorized();
      if (response.status === 400 && await refusesPosition(response)) throw new Rewound();
      if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
      this.onStatus(true);
      alive();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        alive();
        const blocks = (buffer + value).split("\n\n");
        buffer = blocks.pop(); // the unfinished rest
        for (const block of blocks) this.dispatch(block);
      }
    } finally {
      clearTimeout(silentTimer);
    }
  }

  // One SSE message: "id: <position>", "event: event", "data: <event JSON>".
  dispatch(block) {
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("id:")) id = line.slice(3).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return; // a keepalive comment
    if (id !== null) this.position = Number(id);
    this.onEvent(JSON.parse(data.join("\n")));
  }
}

// Whether a 400 from the stream refuses its ``after`` (past the node's newest position),
// not some other parameter.
async function refusesPosition(response) {
  try {
    const { error } = await response.json();
    return error.code === "invalid_parameter" && error.field === "after";
  } catch {
    return false;
  }
}
