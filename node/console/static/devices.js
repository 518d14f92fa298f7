// Devices: this node and every peer link, read from /v1/node and /v1/peers every two
// seconds and soon after each new event.

import { bytes, throttled, h, secondsAgo } from "./dom.js";

const REFRESH_MS = 2000;

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
    root.querySelector("tbody").replaceChildren(...peers.peers.map(peerRow));
    root.querySelector(".no-peers").hidden = peers.peers.length > 0;
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
      fact("Sessions", node.sessions),
      fact("Storage", bytes(node.storage_bytes), { title: `${node.storage_bytes} bytes` }),
      fact("Software", node.software)));
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
  return behind === 0 ? "in sync" : `${behind} events behind`;
}

function syncTitle(peer) {
  const theirs = peer.events_peer_lacks === null ? "not known yet" : peer.events_peer_lacks;
  return `this node lacks ${peer.events_we_lack}; the peer lacks ${theirs}`;
}

function peerRow(peer) {
  const sync = syncText(peer);
  return h("tr", { dataset: { testid: "peer-row", nodeId: peer.node_id || "", state: peer.state } },
    h("td", {},
      h("div", { class: "mono" }, peer.node_id || "(not yet known)"),
      h("div", { class: "muted" }, peer.url || `${peer.direction} link`)),
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
