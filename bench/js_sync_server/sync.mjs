// The catch-up baseline of bench/catchup.py: automerge-repo 2.5.6 run as its sync server
// runs it (a Repo with the websocket server adapter and file-system storage, sharing
// nothing unasked), and a fresh client replicating every document from it.
//
//   node sync.mjs fill DIR DOCS CHANGES URLS_FILE
//       preload the server's storage: DOCS documents, each made of CHANGES changes (one
//       message pushed per change), written by a Repo on DIR; their URLs go to URLS_FILE
//   node sync.mjs serve DIR PORT
//       the sync server on DIR; prints {"listening": PORT} once it accepts connections
//   node sync.mjs replicate WS_URL URLS_FILE CHANGES DIR
//       a fresh client with file-system storage on DIR (empty) finds every document and
//       waits until each holds its CHANGES messages and its storage is flushed; prints
//       {"ms": ..., "docs": ...}
import { Repo } from "@automerge/automerge-repo";
import {
  NodeWSServerAdapter,
  WebSocketClientAdapter,
} from "@automerge/automerge-repo-network-websocket";
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs";
import { WebSocketServer } from "ws";
import fs from "node:fs";

// The server's keep-alive: its default (5 s) drops a client whose event loop is busy
// longer than that, which a client replicating 1,000 documents on a busy 2-core machine
// is; the documents it asked for then come back unavailable. A minute, like clawsync's
// own peer heartbeat order of magnitude, keeps the link while the client works.
const KEEP_ALIVE_MS = 60_000;
const [mode, ...args] = process.argv.slice(2);

async function fill(dir, docs, changes, urlsFile) {
  const repo = new Repo({ storage: new NodeFSStorageAdapter(dir) });
  const urls = [];
  for (let s = 0; s < docs; s++) {
    const handle = repo.create({ messages: [] });
    for (let n = 0; n < changes; n++) {
      handle.change(d => {
        d.messages.push({ agent_id: "main", type: "message_received",
                          content: `message ${n} of session ${s}` });
      });
    }
    urls.push(handle.url);
  }
  await repo.flush();
  await repo.shutdown();
  fs.writeFileSync(urlsFile, JSON.stringify(urls));
}

function serve(dir, port) {
  // As automerge-repo-sync-server does: a websocket server, NodeFS storage, and a share
  // policy that announces nothing (clients ask for what they want).
  const wss = new WebSocketServer({ port });
  new Repo({
    network: [new NodeWSServerAdapter(wss, KEEP_ALIVE_MS)],
    storage: new NodeFSStorageAdapter(dir),
    peerId: "storage-server-bench",
    sharePolicy: async () => false,
  });
  wss.on("listening", () => process.stdout.write(JSON.stringify({ listening: port }) + "\n"));
}

async function complete(handle, changes) {
  if ((handle.doc().messages ?? []).length >= changes) return;
  await new Promise(resolve => {
    const check = ({ doc }) => {
      if ((doc.messages ?? []).length >= changes) {
        handle.off("change", check);
        resolve();
      }
    };
    handle.on("change", check);
  });
}

async function replicate(ws, urlsFile, changes, dir) {
  const urls = JSON.parse(fs.readFileSync(urlsFile, "utf8"));
  const began = performance.now();
  const repo = new Repo({
    network: [new WebSocketClientAdapter(ws, 60_000)],
    storage: new NodeFSStorageAdapter(dir),
  });
  await Promise.all(urls.map(async url => complete(await repo.find(url), changes)));
  await repo.flush();
  const ms = performance.now() - began;
  process.stdout.write(JSON.stringify({ ms, docs: urls.length }) + "\n");
  await repo.shutdown();
  process.exit(0);
}

if (mode === "fill") await fill(args[0], +args[1], +args[2], args[3]);
else if (mode === "serve") serve(args[0], +args[1]);
else if (mode === "replicate") await replicate(args[0], args[1], +args[2], args[3]);
else throw new Error(`unknown mode ${mode}`);
