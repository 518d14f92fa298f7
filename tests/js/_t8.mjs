import * as A from "@automerge/automerge";
import fs from "node:fs";
const msg = new Uint8Array(fs.readFileSync("/tmp/amopen/exp/msg.bin"));
for (let r = 0; r < 2; r++) {
  let t = performance.now();
  let [d] = A.receiveSyncMessage(A.init(), A.initSyncState(), msg);
  console.log("standalone receive", (performance.now() - t).toFixed(0));
  t = performance.now();
  const p = A.diff(d, [], A.getHeads(d));
  console.log("A.diff", (performance.now() - t).toFixed(0), p.length);
}
