// The harness's own assertions: assertEquals compares values, not their JSON text.
import { assertEquals, assertRejects, test } from "./harness.ts";

const differs = (a: unknown, b: unknown) => assertRejects(() => assertEquals(a, b), Error, /expected/);

test("assertEquals: values JSON.stringify conflates are told apart", async () => {
  await differs(NaN, null);
  await differs([Infinity], [null]);
  await differs({ a: undefined }, {});
  await differs(new Map([[1, 2]]), new Map([[1, 3]]));
  await differs(new Set([1]), new Set([2]));
  await differs(Int32Array.of(1, 2), [1, 2]);
  await differs(Float32Array.of(1), Float64Array.of(1));
  await differs([1, 2], [1, 2, 3]);
  await differs({ x: { y: [1, { z: "a" }] } }, { x: { y: [1, { z: "b" }] } });
});

test("assertEquals: equal values pass, NaN equals NaN, key order does not matter", () => {
  assertEquals(NaN, NaN);
  assertEquals([NaN, 1], [NaN, 1]);
  assertEquals(0, -0);
  assertEquals({ a: 1, b: [1, 2] }, { b: [1, 2], a: 1 });
  assertEquals(new Map([["k", [1]]]), new Map([["k", [1]]]));
  assertEquals(Int32Array.of(1, 2), Int32Array.of(1, 2));
  assertEquals(null, null);
  assertEquals(undefined, undefined);
});

test("assertEquals: the message names where the values differ", async () => {
  const e = await assertRejects(() => assertEquals({ a: [1, 2] }, { a: [1, 3] }, "ids"), Error);
  assertEquals(e.message.startsWith("ids: at .a[1]:"), true, e.message);
});
