// The threaded backend's queue of deferred ops (src/backends/deferred-ops.ts): records keep their order through
// pushes, unshifts and the ring's growth, and a taken record drops its references.
import { assertEquals, test } from "./harness.ts";
import { DeferredOps, Op } from "../src/backends/deferred-ops.ts";

/** Takes every queued record off `q`: [op, first number, last number, refA, refB] each. */
function takeAll(q: DeferredOps): unknown[][] {
  const out: unknown[][] = [];
  while (q.size > 0) {
    const i = q.first(), at = i * DeferredOps.ARGS;
    out.push([q.ops[i], q.args[at], q.args[at + 7], q.refA[i], q.refB[i]]);
    q.shift();
    assertEquals([q.refA[i], q.refB[i]], [undefined, undefined], "a taken record keeps no references");
  }
  return out;
}

test("deferred ops: order kept through pushes, unshifts and growth past the first ring", () => {
  const q = new DeferredOps(4);
  const want: unknown[][] = [];
  const w = { name: "w" }, bytes = new Uint8Array(3);
  // wrap the ring first (head past 0), then grow it twice with the queue wrapped
  q.push(Op.add, 1, 0, 0, 0, 0, 0, 0, 1.5);
  q.push(Op.add, 2);
  takeAll(q);
  for (let k = 0; k < 10; k++) {
    q.push(Op.rmsnorm, k, 0, 0, 0, 0, 0, 0, k + 0.25, w);
    want.push([Op.rmsnorm, k, k + 0.25, w, undefined]);
  }
  q.unshift(Op.matmulSplit, -1, 0, 0, 0, 0, 0, 0, 7, w, "matmul_q8_0");
  want.unshift([Op.matmulSplit, -1, 7, w, "matmul_q8_0"]);
  q.push(Op.write, 2 ** 32 + 5, 0, 0, 0, 0, 0, 0, 0, bytes);
  want.push([Op.write, 2 ** 32 + 5, 0, bytes, undefined]);
  assertEquals(q.size, 12);
  assertEquals(takeAll(q), want);
  assertEquals(q.size, 0);
  q.push(Op.copy, 9, 8, 7);
  q.clear();
  assertEquals([q.size, takeAll(q).length], [0, 0]);
});
