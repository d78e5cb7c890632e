/**
 * What one split op costs: the round trip to a spinning worker (an op with
 * nothing to do), and single- vs two-thread time of T=1 f32 matmuls of
 * growing size, to place the calling-thread-only threshold (DEFAULT_MIN_WORK).
 *
 *   deno run -A bench/threads-dispatch.ts      bun bench/threads-dispatch.ts
 */
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadPool } from "../src/threads/pool.ts";
import { coreCount, threadSupport } from "../src/threads/spawn.ts";
import { kernelModule, pickVariant } from "../src/kernels/wasm.ts";
import { benchArgs } from "./cli.ts";

benchArgs(
  `What one split op costs: the round trip to a spinning worker, and one- against two-thread T=1 f32 matmuls of growing
size, to place the calling-thread-only threshold (DEFAULT_MIN_WORK). No options.

  deno run -A bench/threads-dispatch.ts        bun bench/threads-dispatch.ts`,
  { options: { help: { type: "boolean", short: "h" } } },
);

const backend = new WasmBackend({ shared: true });
await backend.init(64 << 20);
const k = backend.kernels;
const module = await kernelModule(pickVariant({ shared: true }));
const pool = await ThreadPool.start({
  threads: 2,
  kind: threadSupport()!,
  cores: await coreCount(),
  module,
  memory: backend.arena.memory,
  exports: k,
});

function time(fn: () => void, minMs = 200): number {
  for (let i = 0; i < 50; i++) fn();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    for (let i = 0; i < 20; i++) fn();
    n += 20;
  }
  return ((performance.now() - t0) / n) * 1000; // µs
}

const a = backend.alloc(1 << 16, "a");
console.log(`empty op round trip: ${time(() => pool.split("add", "elements", a, a, a, 0)).toFixed(2)} µs`);
console.log(
  `64-element add split: ${time(() => pool.split("add", "elements", a, a, a, 64)).toFixed(2)} µs, direct ${
    time(() => k.add(a, a, a, 64)).toFixed(2)
  } µs`,
);

const n = 768, maxD = 8192;
const w = backend.alloc(n * maxD * 4, "w"), x = backend.alloc(n * 4, "x"), out = backend.alloc(maxD * 4, "out");
backend.arena.f32(w, n * maxD).fill(0.001);
backend.arena.f32(x, n).fill(1);
console.log("| multiply-adds (T=1, n=768) | 1 thread µs | 2 threads µs |");
console.log("|---|---|---|");
for (const d of [16, 32, 64, 128, 256, 1024, 4096]) {
  const one = time(() => k.matmul_f32(out, x, w, n, d, 1, 0, d));
  const two = time(() => pool.split("matmul_f32", "rows", out, x, w, n, d, 1, 0, d));
  console.log(`| ${n * d} | ${one.toFixed(2)} | ${two.toFixed(2)} |`);
}
pool.close();
await backend.close();
