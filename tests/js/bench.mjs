// Benchmarks of a real automerge-repo client against a clawsync node (bench/js_client.py
// starts the node, fills it and runs this). Prints one JSON object on stdout.
//
//   node bench.mjs load NODE_HTTP_URL SESSION_KEY AUTOMERGE_URL MESSAGES RUNS
//       ms from repo.find() to the complete document, in fresh Repos, and to the arrival
//       of the node's first sync message (the rest is the client library applying it),
//       and how long automerge-repo spent in Automerge.receiveSyncMessage; the baseline
//       is GET /v1/sessions/{key}/automerge plus Automerge.load, and beside it
//       Automerge.loadIncremental of the same bytes into an empty document (what a sync
//       message carrying the whole document costs the client: load plus patches) and
//       Automerge.diff of that document from nothing (what automerge-repo's DocHandle
//       then computes for its change event): the client's floor, whatever the node sends
//   node bench.mjs latency NODE_HTTP_URL SESSION_KEY AUTOMERGE_URL APPENDS
//       ms from POSTing an event to this client seeing it in its document, one at a
//       time; the baseline is the POST's own round trip
//   node bench.mjs idle NODE_HTTP_URL URLS_FILE
//       open one Repo (one websocket) per automerge URL in the file, find each, then
//       print {"ready": n} and stay connected until stdin closes
import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import * as Automerge from "@automerge/automerge";
import fs from "node:fs";

const [mode, node, ...args] = process.argv.slice(2);
const ws = node.replace(/^http/, "ws") + "/automerge";

// When the node's largest frame so far arrived (the document, on a first find), and
// when the client last sent a request (its first message for a document it lacks).
let largest = { bytes: 0, at: 0 };
let requested = 0;
const receive = WebSocketClientAdapter.prototype.receiveMessage;
WebSocketClientAdapter.prototype.receiveMessage = function (bytes) {
  if (bytes.byteLength > largest.bytes) largest = { bytes: bytes.byteLength, at: performance.now() };
  return receive.call(this, bytes);
};
const send = WebSocketClientAdapter.prototype.send;
WebSocketClientAdapter.prototype.send = function (message) {
  if (message.type === "request") requested = performance.now();
  return send.call(this, message);
};

function newRepo() {
  return new Repo({ network: [new WebSocketClientAdapter(ws, 60_000)] });
}

async function complete(handle, messages) {
  if (Object.keys(handle.doc().messages ?? {}).length >= messages) return;
  await new Promise(resolve => {
    const check = ({ doc }) => {
      if (Object.keys(doc.messages ?? {}).length >= messages) {
        handle.off("change", check);
        resolve();
      }
    };
    handle.on("change", check);
  });
}

async function load(sessionKey, url, messages, runs) {
  const findMs = [];
  const frameMs = [];
  const baselineMs = [];
  const receiveMs = [];
  const incrementalMs = [];
  const nodeMs = [];
  const diffMs = [];
  for (let run = 0; run < runs; run++) {
    const repo = newRepo();
    largest = { bytes: 0, at: 0 };
    let receive = 0;
    repo.synchronizer.on("metrics", metric => {
      if (metric.type === "receive-sync-message") receive += metric.durationMillis;
    });
    const begin = performance.now();
    const handle = await repo.find(url);
    await complete(handle, messages);
    findMs.push(performance.now() - begin);
    frameMs.push(largest.at - begin);
    nodeMs.push(largest.at - requested);
    receiveMs.push(receive);
    await repo.shutdown();
    const start = performance.now();
    const response = await fetch(`${node}/v1/sessions/${encodeURIComponent(sessionKey)}/automerge`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const doc = Automerge.load(bytes);
    if (Object.keys(doc.messages).length < messages) throw new Error("baseline incomplete");
    baselineMs.push(performance.now() - start);
    const incremental = performance.now();
    const loaded = Automerge.loadIncremental(Automerge.init(), bytes);
    incrementalMs.push(performance.now() - incremental);
    // What automerge-repo's DocHandle does next with any new document: diff it from
    // the empty one (A.diff), for its change event.
    const diff = performance.now();
    Automerge.diff(loaded, [], Automerge.getHeads(loaded));
    diffMs.push(performance.now() - diff);
  }
  return { find_ms: findMs, frame_ms: frameMs, frame_bytes: largest.bytes, node_ms: nodeMs,
           baseline_ms: baselineMs, receive_ms: receiveMs, incremental_ms: incrementalMs,
           diff_ms: diffMs };
}

async function latency(sessionKey, url, appends) {
  const repo = newRepo();
  const handle = await repo.find(url);
  const seenMs = [];
  const postMs = [];
  for (let n = 0; n < appends; n++) {
    const have = Object.keys(handle.doc().messages).length;
    const seen = complete(handle, have + 1);
    const begin = performance.now();
    const response = await fetch(`${node}/v1/sessions/${encodeURIComponent(sessionKey)}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent_id: "bench", kind: { type: "message_received", content: `live ${n}` } }),
    });
    await response.arrayBuffer();
    postMs.push(performance.now() - begin);
    await seen;
    seenMs.push(performance.now() - begin);
  }
  await repo.shutdown();
  return { seen_ms: seenMs, post_ms: postMs };
}

async function idle(urlsFile) {
  const urls = fs.readFileSync(urlsFile, "utf8").trim().split("\n");
  // Each client finds its document once its socket has joined: the adapter calls
  // itself ready after 1 s even unconnected, and a find then reports the document
  // unavailable (200 sockets opening at once on a busy machine can take longer).
  const adapters = urls.map(() => new WebSocketClientAdapter(ws, 60_000));
  const joined = adapters.map(adapter => new Promise(resolve =>
    adapter.once("peer-candidate", resolve)));
  const repos = adapters.map(adapter => new Repo({ network: [adapter] }));
  let late;
  await Promise.race([Promise.all(joined), new Promise((_, reject) => {
    late = setTimeout(() => reject(new Error("sockets not joined within 60 s")), 60_000);
  })]);
  clearTimeout(late);
  await Promise.all(urls.map((url, i) => repos[i].find(url)));
  process.stdout.write(JSON.stringify({ ready: repos.length }) + "\n");
  await new Promise(resolve => process.stdin.on("close", resolve).resume());
  process.exit(0);
}

let result;
if (mode === "load") result = await load(args[0], args[1], Number(args[2]), Number(args[3]));
else if (mode === "latency") result = await latency(args[0], args[1], Number(args[2]));
else if (mode === "idle") await idle(args[0]);
else throw new Error(`unknown mode ${mode}`);
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0);
