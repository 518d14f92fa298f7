// A real @automerge/automerge-repo client, driven line by line from a Python test.
//
// Each line on stdin is one JSON command; each line on stdout is one JSON report.
// Commands (every one answers {"ok": id} when done, or {"error": ..., "id": id}):
//
//   {"id", "op": "connect", "repo": name, "ws": "ws://host:port/automerge?token=..."}
//       a Repo (no storage) with one websocket adapter; again with another "ws" adds a
//       second adapter to the same Repo (its documents stay)
//   {"id", "op": "disconnect", "repo", "ws"}     remove that adapter
//   {"id", "op": "find", "repo", "url"}          await repo.find(url); answers the doc
//   {"id", "op": "watch", "repo", "url"}         report {"change": url, "doc"} on changes
//   {"id", "op": "ready", "repo", "url"}         wait until the handle (perhaps
//                                                unavailable before) is ready
//   {"id", "op": "change", "repo", "url", "set": {"custom_state.k": v, "state": v, ...}}
//   {"id", "op": "counter", "repo", "url", "key"} put a Counter into custom_state
//   {"id", "op": "doc", "repo", "url"}           the current doc
//   {"id", "op": "syncs", "repo"}                the sync messages it received so far,
//                                                in order: [{"hex": the message, or
//                                                null past 1 MB, "bytes"}]
//   {"id", "op": "unavailable", "repo"}         the documentIds of the doc-unavailable
//                                                messages it received so far, in order
//   {"id", "op": "broadcast", "repo", "url", "message"}  handle.broadcast(message): an
//                                                ephemeral message (presence, cursors)
//   {"id", "op": "heard", "repo", "url"}         the ephemeral messages its handle got so
//                                                far, in order: [{"sender", "message"}]
//   {"id", "op": "quit"}
//
// Reports carry timestamps ("at", ms since this process started) so a test can time.
import { Repo, Counter } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import readline from "node:readline";

const started = performance.now();
const repos = new Map(); // name -> {repo, adapters: Map(ws -> adapter)}
const handles = new Map(); // repo + url -> handle
const heard = new Map(); // repo + url -> ephemeral messages its handle got

function report(value) {
  process.stdout.write(JSON.stringify({ ...value, at: performance.now() - started }) + "\n");
}

function plain(doc) {
  return JSON.parse(JSON.stringify(doc));
}

function repoFor(name) {
  const entry = repos.get(name);
  if (!entry) throw new Error(`no repo ${name}`);
  return entry.repo;
}

async function handleFor(cmd) {
  const key = `${cmd.repo} ${cmd.url}`;
  if (!handles.has(key)) {
    const handle = await repoFor(cmd.repo).find(cmd.url);
    heard.set(key, []);
    handle.on("ephemeral-message", ({ senderId, message }) =>
      heard.get(key).push({ sender: senderId, message }));
    handles.set(key, handle);
  }
  return handles.get(key);
}

function setPath(doc, path, value) {
  const parts = path.split(".");
  let target = doc;
  for (const part of parts.slice(0, -1)) target = target[part];
  const last = parts[parts.length - 1];
  if (value === null && last.startsWith("-")) delete target[last.slice(1)];
  else target[last] = value;
}

const commands = {
  connect(cmd) {
    let entry = repos.get(cmd.repo);
    const adapter = new WebSocketClientAdapter(cmd.ws, cmd.retry_ms ?? 500);
    if (!entry) {
      entry = { repo: new Repo({ network: [adapter] }), adapters: new Map(), syncs: [],
                unavailable: [] };
      entry.repo.networkSubsystem.on("message", message => {
        if (message.type === "doc-unavailable") entry.unavailable.push(message.documentId);
        if (message.type === "sync" || message.type === "request")
          entry.syncs.push({ bytes: message.data.byteLength, hex: message.data.byteLength
            > 1 << 20 ? null : Buffer.from(message.data).toString("hex") });
      });
      repos.set(cmd.repo, entry);
    } else {
      entry.repo.networkSubsystem.addNetworkAdapter(adapter);
    }
    entry.adapters.set(cmd.ws, adapter);
    return {};
  },
  disconnect(cmd) {
    const entry = repos.get(cmd.repo);
    const adapter = entry.adapters.get(cmd.ws);
    entry.repo.networkSubsystem.removeNetworkAdapter(adapter);
    entry.adapters.delete(cmd.ws);
    return {};
  },
  async find(cmd) {
    const begin = performance.now();
    try {
      const handle = await handleFor(cmd);
      return { doc: plain(handle.doc()), ms: performance.now() - begin };
    } catch (error) {
      return { unavailable: String(error.message ?? error), ms: performance.now() - begin };
    }
  },
  async watch(cmd) {
    const handle = await handleFor(cmd);
    handle.on("change", ({ doc }) => report({ change: cmd.url, repo: cmd.repo, doc: plain(doc) }));
    return {};
  },
  async ready(cmd) {
    const handle = repoFor(cmd.repo).findWithProgress(cmd.url).handle;
    await handle.whenReady(["ready"]);
    handles.set(`${cmd.repo} ${cmd.url}`, handle);
    return { doc: plain(handle.doc()) };
  },
  async change(cmd) {
    const handle = await handleFor(cmd);
    handle.change(doc => {
      for (const [path, value] of Object.entries(cmd.set)) setPath(doc, path, value);
    });
    return { doc: plain(handle.doc()) };
  },
  async counter(cmd) {
    const handle = await handleFor(cmd);
    handle.change(doc => { doc.custom_state[cmd.key] = new Counter(1); });
    return {};
  },
  async doc(cmd) {
    return { doc: plain((await handleFor(cmd)).doc()) };
  },
  async broadcast(cmd) {
    (await handleFor(cmd)).broadcast(cmd.message);
    return {};
  },
  async heard(cmd) {
    await handleFor(cmd);
    return { heard: heard.get(`${cmd.repo} ${cmd.url}`) ?? [] };
  },
  syncs(cmd) {
    return { syncs: repos.get(cmd.repo).syncs };
  },
  unavailable(cmd) {
    return { unavailable: repos.get(cmd.repo).unavailable };
  },
  quit(cmd) {
    process.stdout.write(JSON.stringify({ ok: cmd.id, bye: true }) + "\n", () => process.exit(0));
    return new Promise(() => {}); // never answers twice
  },
};

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", async line => {
  let cmd;
  try {
    cmd = JSON.parse(line);
    const result = await commands[cmd.op](cmd);
    report({ ok: cmd.id, ...result });
  } catch (error) {
    report({ error: String(error?.stack ?? error), id: cmd?.id });
  }
});
lines.on("close", () => process.exit(0));
process.on("unhandledRejection", error => report({ error: String(error?.stack ?? error) }));
report({ hello: true });
