// Devices: this node and one row per peer node, read from /v1/node and /v1/peers every
// two seconds and soon after each new event.

import { bytes, counted, throttled, h, secondsAgo } from "./dom.js";

const REFRESH_MS = 2000;
// Link states, best first: a peer's row shows its best link.
const RANK = ["up", "connecting", "backoff", "standby", "down"];
// Peers seen since the console was opened: node id -> when last heard from (ms). A peer
// the node lists no more (it restarted since, say) stays as a down row.
const seen = new Map();

export function devicesView(context) {
  let timer = null;
  let root = null;
  let stopped = false;
  const soon = throttled(() => refresh(), 1000);

  async function refresh() {
    let node, peers;
    try {
      [node, peers] = await Promise.all([context.api("/v1/node"), context.api("/v1/peers")]);
    } catch (error) {
      if (!stopped) root.querySelector(".error").textContent = `Cannot read the node: ${error.message}`;
      return;
    }
    if (stopped) return;
    root.querySelector(".error").textContent = "";
    root.querySelector("[data-testid=this-node]").replaceWith(thisNode(node));
    const rows = peerRows(peers.peers, Date.now());
    root.querySelector("tbody").replaceChildren(...rows);
    root.querySelector(".no-peers").hidden = rows.length > 0;
  }

  return {
    mount(element) {
      root = element;
      element.append(
        h("h1", {}, "This node"),
        h("div", { dataset: { testid: "this-node" }, class: "card muted" }, "Loading…"),
        h("h2", {}, "Peers"),
        h("table", {},
          h("thead", {}, h("tr", {},
            h("th", {}, "Peer"), h("th", {}, "State"), h("th", {}, "Sync"),
            h("th", { class: "num", title: "events the peer holds and this node lacks" }, "We lack"),
            h("th", { class: "num", title: "events this node holds and the peer lacks" }, "Peer lacks"),
            h("th", {}, "Last contact"), h("th", { class: "num" }, "In"),
            h("th", { class: "num" }, "Out"), h("th", { class: "num" }, "Faults"))),
          h("tbody")),
        h("p", { class: "no-peers muted", hidden: true }, "This node has no peer links."),
        h("p", { class: "error" }),
      );
      refresh();
      timer = setInterval(refresh, REFRESH_MS);
    },
    onEvent() {
      soon();
    },
    unmount() {
      stopped = true;
      clearInterval(timer);
      soon.cancel();
    },
  };
}

function thisNode(node) {
  const fact = (name, value, attrs = {}) => [h("dt", {}, name), h("dd", attrs, value)];
  return h("div", { dataset: { testid: "this-node" }, class: "card" },
    h("dl", { class: "facts" },
      fact("Name", node.name),
      fact("Node id", node.node_id, { class: "mono", dataset: { testid: "node-id" } }),
      fact("Head", node.head, { dataset: { testid: "node-head" } }),
      fact("Events", node.events),
      fact("Sessions", sessionsFact(node), { dataset: { testid: "node-sessions" } }),
      fact("Storage", bytes(node.storage_bytes), { title: `${node.storage_bytes} bytes` }),
      fact("Software", node.software)));
}

// Every session listed, as the session list shows them, saying how many of them were
// forgotten whole (``sessions_live`` counts the others).
function sessionsFact(node) {
  const forgotten = node.sessions - (node.sessions_live ?? node.sessions);
  return forgotten > 0 ? `${node.sessions} (${forgotten} forgotten)` : node.sessions;
}

// One row per peer node (a peer both nodes dial has two links), then the gone peers.
function peerRows(links, nowMs) {
  const groups = new Map();
  links.forEach((link, index) => {
    const key = link.node_id || `link ${index}`; // not yet known: a row of its own
    groups.set(key, [...(groups.get(key) || []), link]);
  });
  const rows = [];
  for (const group of groups.values()) {
    group.sort((x, y) => RANK.indexOf(x.state) - RANK.indexOf(y.state));
    const best = group[0];
    if (best.node_id) {
      const contactS = Math.min(...group.map((link) => link.last_contact_s_ago ?? Infinity));
      seen.set(best.node_id, contactS === Infinity ? nowMs : nowMs - contactS * 1000);
    }
    // Down: a link that ended (the node keeps one that dialed it and stopped), whose
    // counts are as of its last contact.
    rows.push(best.state === "down" && best.node_id
      ? gonePeerRow(best.node_id, (nowMs - seen.get(best.node_id)) / 1000)
      : peerRow(best, group));
  }
  for (const [nodeId, lastMs] of seen) {
    if (!groups.has(nodeId)) rows.push(gonePeerRow(nodeId, (nowMs - lastMs) / 1000));
  }
  return rows;
}

function stateText(peer) {
  if (peer.state === "backoff" && peer.retry_in_s !== null) {
    return `backoff, retry in ${Math.ceil(peer.retry_in_s)} s`;
  }
  return peer.state;
}

// "in sync", or how many events the two sides are apart (the larger direction).
function syncText(peer) {
  const behind = Math.max(peer.events_we_lack || 0, peer.events_peer_lacks || 0);
  if (behind === 0) return "in sync";
  return `${counted(behind, "event")} behind`;
}

function syncTitle(peer) {
  const theirs = peer.events_peer_lacks === null ? "not known yet" : peer.events_peer_lacks;
  return `this node lacks ${peer.events_we_lack}; the peer lacks ${theirs}`;
}

function peerRow(peer, links) {
  const sync = syncText(peer);
  const where = (link) => link.url || `${link.direction} link`;
  return h("tr", { dataset: { testid: "peer-row", nodeId: peer.node_id || "", state: peer.state } },
    h("td", {},
      h("div", { class: "mono" }, peer.node_id || "(not yet known)"),
      h("div", { class: "muted" }, links.length > 1
        ? links.map((link) => `${where(link)} (${link.state})`).join(", ")
        : where(peer))),
    h("td", { class: `state-${peer.state}`, dataset: { testid: "peer-state" } }, stateText(peer)),
    h("td", { class: sync === "in sync" ? "sync-ok" : "sync-behind", title: syncTitle(peer),
      dataset: { testid: "peer-sync" } }, sync),
    h("td", { class: "num" }, peer.events_we_lack),
    h("td", { class: "num" }, peer.events_peer_lacks ?? "?"),
    h("td", {}, secondsAgo(peer.last_contact_s_ago)),
    h("td", { class: "num" }, bytes(peer.bytes_in)),
    h("td", { class: "num" }, bytes(peer.bytes_out)),
    h("td", { class: "num" }, peer.faults));
}

// A peer seen earlier that has no link any more: what this node last knew is stale.
function gonePeerRow(nodeId, secondsSince) {
  return h("tr", { dataset: { testid: "peer-row", nodeId, state: "down" } },
    h("td", {}, h("div", { class: "mono" }, nodeId), h("div", { class: "muted" }, "no link")),
    h("td", { class: "state-down", dataset: { testid: "peer-state" } },
      `down, last seen ${secondsAgo(secondsSince)}`),
    h("td", { class: "muted", dataset: { testid: "peer-sync" } }, "not known"),
    h("td", { class: "num" }, "–"), h("td", { class: "num" }, "–"),
    h("td", {}, secondsAgo(secondsSince)),
    h("td", { class: "num" }, "–"), h("td", { class: "num" }, "–"), h("td", { class: "num" }, "–"));
}
