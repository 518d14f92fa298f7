import { Repo } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
const [url, port] = process.argv.slice(2);
let largest = { bytes: 0, at: 0, first: 0 };
const receive = WebSocketClientAdapter.prototype.receiveMessage;
WebSocketClientAdapter.prototype.receiveMessage = function (bytes) {
  if (bytes.byteLength > largest.bytes) largest = { bytes: bytes.byteLength, at: performance.now(), first: bytes[bytes.length - 1] };
  return receive.call(this, bytes);
};
for (let r = 0; r < 3; r++) {
  const repo = new Repo({ network: [new WebSocketClientAdapter(`ws://127.0.0.1:${port}/automerge`, 60000)] });
  const begin = performance.now();
  largest = { bytes: 0, at: 0 };
  repo.synchronizer.on?.("metrics", m => console.log("metrics", m.type, m.durationMillis?.toFixed(0), (performance.now()-begin).toFixed(0)));
  const handle = await repo.find(url);
  console.log("found", (performance.now() - begin).toFixed(0), Object.keys(handle.doc().messages).length, "frame at", (largest.at - begin).toFixed(0), largest.bytes);
  await repo.shutdown();
}
process.exit(0);
