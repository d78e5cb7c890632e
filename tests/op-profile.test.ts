/**
 * OpProfile (src/backends/op-profile.ts), the WASM backend's opt-in time profile by op class: time adds up under
 * each key in first-seen order, a weight's key is made once, and timerCost measures the clock reads it takes out
 * of "JS between calls" (JavaScriptCore drops a performance.now() whose value is unused, so a loop that discards
 * them measured 0.6 ns a read in Bun against the 40-300 ns a read costs in either runtime).
 */
import { assert, assertEquals, test } from "./harness.ts";
import { OpProfile } from "../src/backends/op-profile.ts";

test("OpProfile: time and calls add up per key in first-seen order; sum and reset", () => {
  let clock = 0;
  const p = new OpProfile();
  (p as { now: () => number }).now = () => clock;
  for (const [key, ms] of [["matmul", 2], ["norm", 0.5], ["matmul", 3]] as const) {
    const t0 = p.now();
    clock += ms;
    p.add(key, t0);
  }
  assertEquals([...p.totals.keys()], ["matmul", "norm"]);
  assertEquals(p.totals.get("matmul"), { ms: 5, calls: 2 });
  assertEquals(p.sum(), { ms: 5.5, calls: 3 });
  p.reset();
  assertEquals(p.sum(), { ms: 0, calls: 0 });
});

test("OpProfile.keyOf: one key per object, made on first use only", () => {
  const p = new OpProfile(), w = {};
  let made = 0;
  const make = () => `matmul ${++made}`;
  assertEquals([p.keyOf(w, make), p.keyOf(w, make), p.keyOf({}, make)], ["matmul 1", "matmul 1", "matmul 2"]);
});

test("OpProfile.timerCost: the clock reads' real cost (a pair takes more than 5 ns on any runtime's performance.now())", () => {
  const cost = new OpProfile().timerCost();
  assert(Number.isFinite(cost) && cost > 5e-6, `one now() pair measured ${(cost * 1e6).toFixed(2)} ns`);
});
