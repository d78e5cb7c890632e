/**
 * Batched decode throughput: aggregate decode tok/s at batch 1, 4 and 16 on
 * one thread, against the prefill tok/s of a 16-token chunk (the same
 * weight-reuse matmul), plus the KV cache's bytes per token (f32 and Q8_0).
 *
 *   deno run -A bench/engine.ts [model.gguf ...]     (default: the synthetic stories110M F32 model)
 *   bun bench/engine.ts [model.gguf ...]
 */
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import type { KVType } from "../src/backends/backend.ts";
import type { Sequence } from "../src/kv/paged-cache.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { benchArgs, intFlag } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE = `Batched decode throughput: aggregate decode tok/s at batch 1, 4 and 16 on one thread, against the prefill tok/s of a
16-token chunk, and the KV cache's bytes per token (f32, Q8_0).

  deno run -A bench/engine.ts [MODEL.gguf ...]        bun bench/engine.ts [MODEL.gguf ...]

  MODEL.gguf     models to run (default: the synthetic stories110M F32 model)
  BENCH_STEPS    (environment) decode steps per batch size (default 8)
  -h, --help     this text`;
const { positionals: args } = benchArgs(
  USAGE,
  { options: { help: { type: "boolean", short: "h" } }, allowPositionals: true },
);
const runtime = g.Deno ? "deno" : g.Bun ? "bun" : "node";
const STEPS = intFlag(USAGE, "BENCH_STEPS", g.Deno?.env.get("BENCH_STEPS") ?? g.process?.env.BENCH_STEPS ?? "8");
const models = args.length > 0 ? args : [await ensureSyntheticModel("stories110M", "F32")];

function prompt(i: number, n: number): number[] {
  return Array.from({ length: n }, (_, k) => 3 + ((i * 131 + k * 17) % 1000));
}

/** Prefill of a 16-token chunk, best of a few runs. */
async function prefillTps(m: Model): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const s = m.newSequence();
    const t = performance.now();
    await m.step([{ seq: s, tokens: prompt(r, 16) }]);
    best = Math.min(best, performance.now() - t);
    m.releaseSequence(s);
  }
  return 16 / (best / 1000);
}

/** B sequences step together for STEPS steps after a short prompt each; aggregate tokens per second. */
async function decodeTps(m: Model, B: number): Promise<number> {
  const seqs: Sequence[] = [];
  for (let i = 0; i < B; i++) seqs.push(m.newSequence());
  await m.step(seqs.map((seq, i) => ({ seq, tokens: prompt(i, 8), logits: false })));
  await m.step(seqs.map((seq, i) => ({ seq, tokens: [5 + i] }))); // warm-up step
  const t = performance.now();
  for (let k = 0; k < STEPS; k++) await m.step(seqs.map((seq, i) => ({ seq, tokens: [7 + ((i + k) % 500)] })));
  const ms = performance.now() - t;
  for (const s of seqs) m.releaseSequence(s);
  return (B * STEPS) / (ms / 1000);
}

const rows: string[] = [];
for (const path of models) {
  for (const kvCacheType of ["f32", "q8_0"] as KVType[]) {
    const m = await loadModel(path, { threads: 1, maxSequences: 16, contextLength: 256, kvCacheType });
    const name = path.split("/").pop()!;
    const kvPerToken = m.kv.layout.pageBytes / m.kv.layout.pageSize;
    const c = m.config;
    const expected = c.nLayers * 2 * c.kvDim * 4;
    const pre = await prefillTps(m);
    const d: Record<number, number> = {};
    for (const B of [1, 4, 16]) d[B] = await decodeTps(m, B);
    await m.close();
    rows.push(
      `| ${name} | ${kvCacheType} | ${pre.toFixed(1)} | ${d[1].toFixed(1)} | ${d[4].toFixed(1)} | ${d[16].toFixed(1)} | ` +
        `${(d[16] / d[1]).toFixed(2)}x | ${((100 * d[16]) / pre).toFixed(0)}% | ${kvPerToken} (f32 shape: ${expected}) |`,
    );
    console.log(rows[rows.length - 1]);
  }
}
console.log(`\n${runtime}, 1 thread, ${STEPS} decode steps per batch size\n`);
console.log(
  "| model | KV cache | prefill 16-token chunk tok/s | decode B=1 tok/s | B=4 | B=16 | B=16 / B=1 | B=16 / prefill | KV bytes per token |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
