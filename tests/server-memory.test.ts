/**
 * The Bun adapter's resident-memory collector (src/server/bun-collector.ts):
 * when it reads memory, when it collects, and that `kvasm serve`'s Bun
 * server runs it (bench/serve-load.ts measures what it is for).
 */
import { assert, assertEquals, runtime, test } from "./harness.ts";
import { ResidentCollector } from "../src/server/bun-collector.ts";
import { serve } from "../src/server/serve.ts";

const MiB = 2 ** 20;

/** A collector over a scripted resident size; a collection brings it down to `after`. */
function scripted(slackBytes: number, after: number) {
  const s = { rss: 100 * MiB, readings: 0, collections: 0 };
  const c = new ResidentCollector(() => (s.readings++, s.rss), () => (s.collections++, s.rss = after), { slackBytes, intervalMs: 250 });
  return { s, c };
}

test("collector: collects only past the floor plus the slack, and the floor becomes what is resident after", () => {
  const { s, c } = scripted(16 * MiB, 104 * MiB);
  s.rss = 116 * MiB; // exactly floor + slack: not past it
  c.check(1000);
  assertEquals(s.collections, 0);
  s.rss = 116 * MiB + 1;
  c.check(2000);
  assertEquals([s.collections, c.collections], [1, 1]);
  // the new floor is 104 MiB: 119 MiB is within its slack, 121 MiB is past it
  s.rss = 119 * MiB;
  c.check(3000);
  assertEquals(s.collections, 1);
  s.rss = 121 * MiB;
  c.check(4000);
  assertEquals(s.collections, 2);
  assert(c.collectMs >= 0);
});

test("collector: reads resident memory at most once per interval, and a slack of 0 turns it off", () => {
  const { s, c } = scripted(16 * MiB, 100 * MiB);
  const before = s.readings; // the floor's reading at construction
  c.check(1000);
  c.check(1100);
  c.check(1249);
  assertEquals(s.readings - before, 1);
  s.rss = 500 * MiB;
  c.check(1200);
  assertEquals(s.collections, 0); // not due: the growth is seen at the next reading
  c.check(1250);
  assertEquals(s.collections, 1);
  const off = scripted(0, 100 * MiB);
  off.s.rss = 10_000 * MiB;
  for (let t = 0; t < 5000; t += 300) off.c.check(t);
  assertEquals(off.s.collections, 0);
});

test("serve: Bun's server runs the collector (a 1-byte slack collects as requests arrive); other runtimes have none", async () => {
  const body = new Uint8Array(1 << 20);
  const server = await serve(() => new Response(body.slice()), { port: 0, gcSlackBytes: 1 });
  try {
    // Resident memory must grow between readings for a collection to be due; freed response bodies may be
    // reused by the allocator and leave it flat, so the test holds (and touches) 4 MiB more before each request.
    const held: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      held.push(new Uint8Array(4 << 20).fill(i + 1));
      await (await fetch(`${server.url}/`)).arrayBuffer();
      await new Promise((r) => setTimeout(r, 260)); // past the reading interval
    }
    if (runtime === "bun") {
      assert(server.collector !== undefined, "Bun's server reports its collector");
      assert(server.collector!.collections >= 1, `collections: ${server.collector!.collections}`);
    } else assertEquals(server.collector, undefined);
    assertEquals(held.length, 4);
  } finally {
    await server.close();
  }
});
