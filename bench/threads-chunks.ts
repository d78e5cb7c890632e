/**
 * What cutting a one-row (decode) matmul into chunks costs: one thread calling the kernel once, or once
 * per chunk of the pool's default cut (planChunks, 8 a thread) or of its streaming cut (1 a thread), with
 * the caches flushed before every call (48 MB of other weights streamed through), as in a decode step,
 * where each matmul's weights come from memory. Then the same matmul split over two threads both ways.
 * Each chunk call starts its own weight streams, which run cold until the prefetcher follows them.
 * (The two-thread columns start each op after the worker idled through the 1-2 ms flush; a decode step's
 * ops follow each other closely, so compare the two cuts there, not two threads with one.)
 *
 * 2026-12-04, loaded 2-core Zen VM at real-time priority, Deno: Q4_K 768x768 one call 30.5 µs, default cut
 * 42.2 µs (9 calls), halves 32.2 µs; two threads 48.5 (default) / 44.5 µs (halves); Q6_K 768x2048 two
 * threads 120.2 / 88.0 µs.
 *
 *   deno run -A bench/threads-chunks.ts [--model PATH] [--reps 200] [--help]      bun bench/threads-chunks.ts ...
 */
import { loadModel } from "../src/model/load.ts";
import type { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import type { Weight } from "../src/backends/backend.ts";
import { planChunks } from "../src/threads/control.ts";
import { weightKernelFor } from "../src/backends/weight-kernels.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { benchArgs, intFlag } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

const USAGE = `What cutting a one-row matmul into chunks costs: one call, the default cut, the streaming cut, on one and two threads.

  deno run -A bench/threads-chunks.ts [options]        bun bench/threads-chunks.ts [options]

  --model PATH   a GGUF model (default: the synthetic stories110M Q4_K_M file)
  --reps N       calls per measurement, caches flushed before each (default 200)
  -h, --help     this text`;
const { values: opts } = benchArgs(USAGE, {
  options: { model: { type: "string" }, reps: { type: "string", default: "200" }, help: { type: "boolean", short: "h" } },
});
const reps = intFlag(USAGE, "reps", opts.reps);
const path = opts.model ?? await ensureSyntheticModel("stories110M", "Q4_K_M");

const model = await loadModel(path, { contextLength: 512, threads: 2 });
try {
  const b = model.backend as ThreadedWasmBackend, k = b.kernels, pool = b.pool!;
  // deno-lint-ignore no-explicit-any
  const m = model as any, L = m.weights.layers[0];
  // scratch in the KV pages (unused here): x, its quantized rows, the output
  const base = m.kv.layout.base as number, out = base, x = base + (256 << 10), xq = base + (512 << 10);
  b.arena.f32(x, 2048).fill(0.5);
  const flushAt = m.weights.layers[4].wq.ptr as number, flushFloats = Math.min(48 << 20, model.weightBytes >> 1) >> 2;
  const flush = () => k.read_probe(flushAt, flushFloats);
  console.log(`# ${g.Deno ? "deno" : "bun"}, ${path.split("/").pop()}, one-row matmuls, caches flushed before each call, mean of ${reps}`);
  console.log(
    "| weight | 1 thread, 1 call µs | 1 thread, default cut µs (calls) | 1 thread, halves µs | 2 threads, default cut µs | 2 threads, halves µs |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const w of [L.wq, L.wGate, L.wDown] as Weight[]) {
    const wk = weightKernelFor(w.type)!, kernel = wk.matmul, fn = k[kernel];
    k[wk.quantize](xq, x, w.cols, 1);
    const cut = (perThread?: number) => {
      const bounds: number[] = [];
      return bounds.slice(0, planChunks(w.rows, 16, 2, bounds, 0, perThread) + 1);
    };
    const calls = (bounds: number[]) => () => {
      for (let i = 0; i + 1 < bounds.length; i++) fn(out, xq, w.ptr, w.cols, w.rows, 1, bounds[i], bounds[i + 1]);
    };
    const ways: Array<() => void> = [
      () => fn(out, xq, w.ptr, w.cols, w.rows, 1, 0, w.rows),
      calls(cut()),
      calls(cut(1)),
      () => pool.split(kernel, "rows", out, xq, w.ptr, w.cols, w.rows, 1, 0, w.rows),
      () => pool.splitStreaming(kernel, "rows", out, xq, w.ptr, w.cols, w.rows, 1, 0, w.rows),
    ];
    const sums = ways.map(() => 0);
    for (let r = 0; r < reps + 20; r++) {
      ways.forEach((run, i) => {
        flush();
        const t = performance.now();
        run();
        if (r >= 20) sums[i] += performance.now() - t;
      });
    }
    const us = sums.map((s) => ((1000 * s) / reps).toFixed(1));
    console.log(`| ${w.name} ${w.rows}x${w.cols} | ${us[0]} | ${us[1]} (${cut().length - 1}) | ${us[2]} | ${us[3]} | ${us[4]} |`);
  }
} finally {
  await model.close();
}
