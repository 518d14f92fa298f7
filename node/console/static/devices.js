// Devices: this node, one row per peer node, and the cluster's devices (members, removed,
// linked), read from /v1/node, /v1/peers and /v1/devices every two seconds and soon
// after each new event. A device shows by its name and the first group of its id.

import {
  bytes, copyNote, counted, deviceId, h, localTime, named, patchChildren, printable, secondsAgo,
  shortId, throttled, words,
} from "./dom.js";

const REFRESH_MS = 2000;
// A part whose answer takes longer says so, and is read again at the next refresh. Until
// then it is not asked again: a node that hangs gets no pile of requests, and an answer
// cannot overtake an older one.
const READ_TIMEOUT_MS = 10000;
// Link states, best first: a peer's row shows its best link. A refused link syncs
// nothing, so one of the peer's links on standby or backing off ranks above it.
const RANK = ["up", "connecting", "backoff", "standby", "refused", "down"];
// Peers seen since the console was opened: node id -> when last heard from (ms) and its
// device. A peer the node lists no more (it restarted since, say) stays as a down row.
const seen = new Map();
// What a device that is no member is linked by (``GET /v1/devices``'s ``via``).
const VIA = { cluster_secret: "the cluster secret", certificate: "a CA certificate",
  peer_address: "a --peer address", device_key: "its key" };

export function devicesView(context) {
  let timer = null;
  let root = null;
  let stopped = false;
  // The devices as last drawn: their table is redrawn only when they change.
  let drawnDevices = "";
  // Says what a Copy button did; kept while the tables are redrawn.
  const note = copyNote();
  const soon = throttled(() => refresh(), 1000);

  // Each part is read and shown on its own, with its own error: a node that cannot
  // answer /v1/devices still shows itself and its peers. What is drawn again is patched
  // in place (`patchChildren`), so a Copy button being clicked, a tooltip and focus stay.
  function refresh() {
    const nodeAndPeers = (signal) => Promise.all([
      context.api("/v1/node", { signal }), context.api("/v1/peers", { signal })]);
    show("node", nodeAndPeers, ".node-error", "Cannot read the node", ([node, peers]) => {
      patchChildren(root.querySelector("[data-testid=this-node]"),
        [thisNode(node, peers.device || {}, note)]);
      const rows = peerRows(peers.peers || [], saidAbove(peers.device || {}), Date.now(),
        note);
      patchChildren(root.querySelector("[data-testid=peers]"), rows);
      root.querySelector(".no-peers").hidden = rows.length > 0;
    });
    const devices = (signal) => context.api("/v1/devices", { signal });
    show("devices", devices, ".devices-error", "Cannot read the devices", (view) => {
      const drawn = JSON.stringify(view);
      if (drawn === drawnDevices) return;
      patchChildren(root.querySelector("[data-testid=devices]"), deviceRows(view, note));
      drawnDevices = drawn; // only once drawn: a failed drawing is tried again
    });
  }

  // The parts being read now: one request each at a time.
  const pending = new Set();
  // Ends the requests in flight when the view is left.
  const leaving = new AbortController();

  async function show(part, read, errorAt, failure, draw) {
    if (pending.has(part)) return;
    pending.add(part);
    let error = "";
    try {
      const answer = await read(AbortSignal.any([leaving.signal,
        AbortSignal.timeout(READ_TIMEOUT_MS)]));
      if (stopped) return;
      draw(answer);
    } catch (problem) {
      error = problem.name === "TimeoutError"
        ? `${failure}: no answer within ${READ_TIMEOUT_MS / 1000} s`
        : `${failure}: ${printable(problem.message)}`; // a node's words, maybe a peer's
    } finally {
      pending.delete(part);
    }
    if (!stopped) root.querySelector(errorAt).textContent = error;
  }

  return {
    mount(element) {
      root = element;
      element.append(
        h("h1", {}, "This node"),
        h("div", { dataset: { testid: "this-node" } },
          h("div", { class: "card muted" }, "Loading…")),
        h("h2", {}, "Peers"),
        h("table", {},
          h("thead", {}, h("tr", {},
            h("th", {}, "Peer"), h("th", {}, "State"), h("th", {}, "Sync"),
            h("th", { class: "num", title: "events the peer holds and this node lacks" }, "We lack"),
            h("th", { class: "num", title: "events this node holds and the peer lacks" }, "Peer lacks"),
            h("th", {}, "Last contact"), h("th", { class: "num" }, "In"),
            h("th", { class: "num" }, "Out"), h("th", { class: "num" }, "Faults"))),
          h("tbody", { dataset: { testid: "peers" } })),
        h("p", { class: "no-peers muted", hidden: true }, "This node has no peer links."),
        h("h2", {}, "Devices"),
        h("table", {},
          h("thead", {}, h("tr", {},
            h("th", {}, "Name"), h("th", {}, "Device"), h("th", {}, "State"),
            h("th", {}, "Address"), h("th", {}, "Since"))),
          h("tbody", { dataset: { testid: "devices" } })),
        h("p", { class: "error devices-error", dataset: { testid: "devices-error" } }),
        h("p", { class: "error node-error" }),
        note,
      );
      refresh();
      timer = setInterval(refresh, REFRESH_MS);
    },
    onEvent() {
      soon();
    },
    unmount() {
      stopped = true;
      leaving.abort();
      clearInterval(timer);
      soon.cancel();
      note.cancel();
    },
  };
}

// ``device`` is ``GET /v1/peers``'s, which says, as `clawsync status` does, whether a
// member told this device it was removed: its text names the remover and the reason a
// member wrote (shown, never obeyed).
function thisNode(node, device, note) {
  const fact = (name, value, attrs = {}) => [h("dt", {}, name), h("dd", attrs, value)];
  return h("div", { class: "card" },
    device.removed_text
      ? h("p", { class: "error", dataset: { testid: "node-removed" } },
        "Removed: this device was ", words(device.removed_text),
        "; no member links with it any more.")
      : null,
    ...deviceNotes(device),
    h("dl", { class: "facts" },
      fact("Name", named(node.name), { dataset: { testid: "node-name" } }),
      fact("Device", deviceId(node.device_id, note)),
      fact("Node id", printable(node.node_id), { class: "mono", dataset: { testid: "node-id" } }),
      fact("Head", node.head, { dataset: { testid: "node-head" } }),
      fact("Events", node.events),
      fact("Sessions", sessionsFact(node), { dataset: { testid: "node-sessions" } }),
      fact("Data folder size", bytes(node.storage_bytes),
        { title: `${node.storage_bytes} bytes`, dataset: { testid: "node-data-folder" } }),
      fact("Software", printable(node.software))));
}

// What `clawsync status` says under the device: the members this device waits to be
// added on, each with the command to run there (a member's words: shown, never obeyed),
// the ``--peer`` addresses that are this node's own, and the names members share
// (the last two absent from older nodes).
function deviceNotes(device) {
  return [
    ...(device.waiting || []).map((line) =>
      h("p", { dataset: { testid: "node-waiting" } }, words(line))),
    ...(device.own_peers || []).map((url) =>
      h("p", { dataset: { testid: "node-own-peer" } },
        "--peer ", words(url), " is this node's own address: it is not dialed")),
    sharedNames(device.shared_names || []),
  ];
}

// One line if members share names, as `clawsync status` says it: which names, how many
// members each; the devices view marks them, `clawsync devices` prints the commands.
function sharedNames(groups) {
  if (!groups.length) return null;
  const said = groups.flatMap((group, index) => [index ? ", " : "", named(group.name),
    ` (${(group.members || []).length}${index ? "" : " members"})`]);
  return h("p", { class: "state-connecting", dataset: { testid: "node-shared-names" } },
    "Members share names: ", ...said, ": people cannot tell them apart; rename all but one ",
    "(the devices below are marked; `clawsync devices` prints the commands).");
}

// Every session listed, as the session list shows them, saying how many of them were
// forgotten whole (``sessions_live`` counts the others).
function sessionsFact(node) {
  const forgotten = node.sessions - (node.sessions_live ?? node.sessions);
  return forgotten > 0 ? `${node.sessions} (${forgotten} forgotten)` : node.sessions;
}

// One row per peer node (a peer both nodes dial has two links), then the gone peers.
// ``said``: the sentences this node's card says already (`saidAbove`).
function peerRows(links, said, nowMs, note) {
  const groups = new Map();
  links.forEach((link, index) => {
    const key = link.node_id || `link ${index}`; // not yet known: a row of its own
    groups.set(key, [...(groups.get(key) || []), link]);
  });
  const rows = [];
  for (const group of groups.values()) {
    group.sort(byRank);
    const best = group[0];
    // A link that has not proved the peer's key yet may not name its device: another may.
    const device = group.find((link) => link.device_id) || best;
    if (best.node_id) {
      const contactS = Math.min(...group.map((link) => link.last_contact_s_ago ?? Infinity));
      seen.set(best.node_id, { device,
        lastMs: contactS === Infinity ? nowMs : nowMs - contactS * 1000 });
    }
    // Down: a link that ended (the node keeps one that dialed it and stopped), whose
    // counts are as of its last contact.
    rows.push(best.state === "down" && best.node_id
      ? gonePeerRow(best.node_id, seen.get(best.node_id), nowMs, note)
      : peerRow(best, group, device, said, note));
  }
  for (const [nodeId, last] of seen) {
    if (!groups.has(nodeId)) rows.push(gonePeerRow(nodeId, last, nowMs, note));
  }
  return rows;
}

// Orders a peer's links best first (`RANK`).
export function byRank(x, y) {
  return RANK.indexOf(x.state) - RANK.indexOf(y.state);
}

// The peer's device: its name (a member's) and id, if the peer proved its key.
function peerDevice(link, note) {
  if (!link.device_id) return null;
  return h("div", { dataset: { testid: "peer-device" } },
    link.device_name
      ? named(link.device_name, { dataset: { testid: "peer-name" } })
      : h("span", { class: "muted", dataset: { testid: "peer-name" } }, "not a member"),
    " ", deviceId(link.device_id, note));
}

// The state, and the seconds to the next dial of any state that has one (a refused
// link whose dials back off, too), in `clawsync status`'s words: "refused (retry in
// 2s)", rounded up (a retry still to come never reads "0s"), and none when it is due.
// A later node's state may be any text: escaped, as status escapes every cell.
function stateText(peer) {
  if (!peer.retry_in_s) return printable(peer.state);
  return `${printable(peer.state)} (retry in ${Math.ceil(peer.retry_in_s)}s)`;
}

// "in sync", or how many events the two sides are apart (the larger direction); on a
// link that is not up, as of its last contact, which the cell says. A refused link
// syncs nothing until the refusal ends: no catch-up to count.
function syncText(peer) {
  if (peer.state === "refused") return "not syncing";
  const behind = Math.max(peer.events_we_lack || 0, peer.events_peer_lacks || 0);
  const text = behind === 0 ? "in sync" : `${counted(behind, "event")} behind`;
  return peer.state === "up" ? text : `${text} as of last contact`;
}

function syncTitle(peer) {
  if (peer.state === "refused") return "the peer refuses this link: nothing syncs over it";
  const theirs = peer.events_peer_lacks === null ? "not known yet" : peer.events_peer_lacks;
  const lacks = `this node lacks ${peer.events_we_lack}; the peer lacks ${theirs}`;
  return peer.state === "up" ? lacks : `as of the last contact, ${lacks}`;
}

// What each side lacks is known only on a link that is up: on another the counts are as
// of its last contact, so "–", as `clawsync status` shows them.
function lackCell(peer, count, testid) {
  if (peer.state !== "up") {
    return h("td", { class: "num muted", title: "known only while the link is up",
      dataset: { testid } }, "–");
  }
  return h("td", { class: "num", dataset: { testid } }, count ?? "?");
}

// The sentences this node's card says already: the ``waiting`` lines and its removal,
// which its peers' refusals repeat (`whyNotUp` leaves those out).
function saidAbove(device) {
  return [...(device.waiting || []), ...(device.removed_text ? [device.removed_text] : [])];
}

// Why a link that is not up is refused (``refused``: the peer's words), or why its dials
// back off (``failure``), as `clawsync status` says under its table: a refusal that is
// one of the sentences this node's card shows already (``saidAbove``) is not said twice.
function whyNotUp(peer, said) {
  if (peer.state === "up") return null;
  const refused = said.includes(peer.refused) ? null : peer.refused;
  const why = refused || peer.failure;
  return why ? h("div", { class: "muted", dataset: { testid: "peer-why" } }, words(why)) : null;
}

function peerRow(peer, links, device, said, note) {
  const sync = syncText(peer);
  const syncClass = sync.startsWith("in sync") ? "sync-ok"
    : peer.state === "refused" ? "state-refused" : "sync-behind";
  const where = (link) => link.url || `${link.direction} link`;
  return h("tr", { dataset: { testid: "peer-row", nodeId: peer.node_id || "", state: peer.state } },
    h("td", {},
      peerDevice(device, note),
      h("div", { class: "mono", title: "node id" },
        peer.node_id ? printable(peer.node_id) : "(not yet known)"),
      h("div", { class: "muted" }, links.length > 1
        ? links.flatMap((link, index) => [index ? ", " : null, words(where(link)),
          ` (${printable(link.state)})`])
        : words(where(peer)))),
    h("td", {},
      h("div", { class: `state-${peer.state}`, dataset: { testid: "peer-state" } },
        stateText(peer)),
      whyNotUp(peer, said)),
    h("td", { class: syncClass, title: syncTitle(peer), dataset: { testid: "peer-sync" } }, sync),
    lackCell(peer, peer.events_we_lack, "peer-we-lack"),
    lackCell(peer, peer.events_peer_lacks, "peer-lacks"),
    h("td", {}, secondsAgo(peer.last_contact_s_ago)),
    h("td", { class: "num" }, bytes(peer.bytes_in)),
    h("td", { class: "num" }, bytes(peer.bytes_out)),
    h("td", { class: "num" }, peer.faults));
}

// A peer seen earlier that has no link any more: what this node last knew is stale.
function gonePeerRow(nodeId, last, nowMs, note) {
  const secondsSince = (nowMs - last.lastMs) / 1000;
  return h("tr", { dataset: { testid: "peer-row", nodeId, state: "down" } },
    h("td", {}, peerDevice(last.device, note),
      h("div", { class: "mono", title: "node id" }, printable(nodeId)),
      h("div", { class: "muted" }, "no link")),
    h("td", { class: "state-down", dataset: { testid: "peer-state" } },
      `down, last seen ${secondsAgo(secondsSince)}`),
    h("td", { class: "muted", dataset: { testid: "peer-sync" } }, "not known"),
    h("td", { class: "num" }, "–"), h("td", { class: "num" }, "–"),
    h("td", {}, secondsAgo(secondsSince)),
    h("td", { class: "num" }, "–"), h("td", { class: "num" }, "–"), h("td", { class: "num" }, "–"));
}

// The cluster's devices as `clawsync devices` lists them: the members, the devices
// removed for good, and those linked now that are no members. Times are local dates,
// not "N min ago": the table is redrawn only when the devices change.
function deviceRows(view, note) {
  const own = view.device_id;
  const [members, removed, linked] = [view.members || [], view.removed || [], view.linked || []];
  const names = new Map([...members, ...removed]
    .filter((device) => device.name).map((device) => [device.device_id, device.name]));
  const who = (id) => (id === own ? "this device" : named(names.get(id) || shortId(id)));
  const row = (device, state, ...cells) => h("tr",
    { dataset: { testid: "device-row", deviceId: device.device_id, state } },
    h("td", { dataset: { testid: "device-name" } }, device.name ? named(device.name) : "–",
      device.device_id === own ? h("span", { class: "muted" }, " (this device)") : null,
      // Absent from older nodes; people cannot tell such members apart by name.
      (device.name_shared_with || []).length
        ? h("span", { class: "state-connecting", dataset: { testid: "name-shared" } },
          " (name shared)") : null),
    h("td", {}, deviceId(device.device_id, note)), ...cells);
  return [
    ...members.map((device) => row(device, "member",
      h("td", {}, "member"), h("td", {}, device.address ? printable(device.address) : "–"),
      h("td", {}, device.added_at
        ? ["added by ", who(device.added_by), `, ${localTime(device.added_at)}`] : "–"))),
    ...removed.map((device) => row(device, "removed",
      h("td", { class: "state-down" }, "removed"), h("td", {}, "–"),
      h("td", {}, "removed by ", who(device.removed_by), `, ${localTime(device.removed_at)}`,
        device.reason ? [": ", words(device.reason)] : null))),
    ...linked.map((device) => row(device, "linked",
      h("td", { class: "state-connecting" }, "linked, not a member"),
      h("td", {}, device.address ? printable(device.address) : "–"),
      h("td", {}, `by ${VIA[device.via] || printable(device.via)}`))),
  ];
}
