/**
 * Thread scaling: decode and 128-token prefill of a stories110M-shaped model
 * on 1 thread (WasmBackend) and on N threads (ThreadedWasmBackend), same file,
 * same tokens. Prints ms per token and the speed-up over one thread.
 *
 *   deno run -A bench/threads.ts [--threads 1,2] [--type F32|F16|Q8_0] [--model PATH] [--decode 32] [--prefill 128] [--reps 5] [--profile] [--help]
 *   bun bench/threads.ts ...
 *
 * --profile adds, after the timed runs, one prefill and one decode run per thread count with the
 * backend's OpProfile on, and prints µs per token by op class side by side: where a second thread
 * does not halve the time.
 *
 * --type uses bench/synthetic.ts's cached model (Q8_0: quantized from the F32
 * one with src/quant/quantize.ts on first use, cached beside it); --model runs
 * any file. Weights are random: speed does not depend on the values.
 */
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { quantizeModel } from "../src/quant/quantize.ts";
import { openModelFile } from "../src/formats/open.ts";
import { fileSink } from "../src/formats/gguf-writer.ts";
import { RESERVED } from "../src/memory/arena.ts";
import { decodeBytes, readBandwidth } from "./e2e.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import { benchArgs } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE = `Thread scaling: decode and prefill of a stories110M-shaped model on 1 and N threads, ms per token and speed-up.

  deno run -A bench/threads.ts [options]        bun bench/threads.ts [options]

  --threads LIST   thread counts (default 1,2)
  --type T         F32, F16 or Q8_0: bench/synthetic.ts's cached model (default F32)
  --model PATH     any GGUF file instead
  --decode N       decode steps (default 32)
  --prefill N      prompt ids of the prefill (default 128)
  --reps N         timed runs, median kept (default 5)
  --profile        then one run per thread count with the op profile on: µs per token by op class
  -h, --help       this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    threads: { type: "string", default: "1,2" },
    type: { type: "string", default: "F32" },
    model: { type: "string" },
    decode: { type: "string", default: "32" },
    prefill: { type: "string", default: "128" },
    reps: { type: "string", default: "5" },
    profile: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
const runtime = g.Deno ? "deno" : g.Bun ? "bun" : "node";
const threadCounts = opts.threads.split(",").map(Number);
const decodeSteps = Number(opts.decode);
const prefillTokens = Number(opts.prefill);
const reps = Number(opts.reps);
const profile = opts.profile;
const path = opts.model ?? await syntheticModel(opts.type);

async function syntheticModel(type: string): Promise<string> {
  if (type === "F32" || type === "F16") return ensureSyntheticModel("stories110M", type);
  if (type !== "Q8_0") throw new Error(`--type: F32, F16 or Q8_0, got ${type}`);
  const f32 = await ensureSyntheticModel("stories110M", "F32");
  const out = f32.replace(/-f32\.gguf$/, "-q8_0.gguf");
  const fs = await import("node:fs");
  if (!fs.existsSync(out)) {
    console.error(`writing ${out} ...`);
    const input = await openModelFile(f32);
    await quantizeModel({ input, output: await fileSink(out + ".tmp"), type: "Q8_0" });
    await input.source.close();
    fs.renameSync(out + ".tmp", out);
  }
  return out;
}

/** Deterministic token ids (the vocabulary's made-up pieces; ids do not change the work). */
function tokens(n: number, seed: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(300 + ((seed * 7919 + i * 104729) % 20000));
  return out;
}

/** One timed prefill (ms per prompt token) and one timed decode run (ms per token), each on a fresh sequence. */
async function measureOnce(model: Model, r: number): Promise<{ decodeMs: number; prefillMs: number }> {
  let seq = model.newSequence();
  let t = performance.now();
  await model.prefill(seq, tokens(prefillTokens, r));
  const prefillMs = (performance.now() - t) / prefillTokens;
  model.releaseSequence(seq);
  seq = model.newSequence();
  await model.prefill(seq, tokens(8, r + 100));
  const ids = tokens(decodeSteps, r + 200);
  t = performance.now();
  for (const id of ids) await model.decodeOne(seq, id);
  const decodeMs = (performance.now() - t) / decodeSteps;
  model.releaseSequence(seq);
  return { decodeMs, prefillMs };
}

const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];

/**
 * The machine's limit for decode: GB/s at which this model's own weights stream
 * through the read_probe kernel on `model`'s threads (split into contiguous
 * ranges, one per claimed chunk), best of 5. Decode reads every weight once per
 * token, so decode speed-up cannot exceed this ratio between thread counts.
 */
function streamBandwidth(model: Model): number {
  const pool = (model.backend as ThreadedWasmBackend).pool;
  if (!pool) return readBandwidth(model);
  const floats = Math.floor(model.weightBytes / 4);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    pool.split("read_probe", "elements", RESERVED, floats);
    best = Math.min(best, performance.now() - t);
  }
  return (floats * 4) / (best / 1000) / 1e9;
}

// every thread count loaded at once and measured in turn, rep by rep, so a noisy
// neighbour slows all of them alike instead of skewing one
const models: Model[] = [];
for (const n of threadCounts) {
  const backend = n === 1 ? new WasmBackend() : new ThreadedWasmBackend({ threads: n });
  models.push(await loadModel(path, { backend, contextLength: 512 }));
}
try {
  const runs = models.map(() => ({ decode: [] as number[], prefill: [] as number[] }));
  for (let r = -1; r < reps; r++) {
    for (let i = 0; i < models.length; i++) {
      const m = await measureOnce(models[i], r + 1);
      if (r < 0) continue; // warm-up: page in the weights, tier up the JIT
      runs[i].decode.push(m.decodeMs);
      runs[i].prefill.push(m.prefillMs);
    }
  }
  const bw = models.map(streamBandwidth);
  console.log(`# ${runtime}, ${path.split("/").pop()}, decode ${decodeSteps} tokens, prefill ${prefillTokens} tokens, median of ${reps}`);
  console.log(
    "| threads | decode ms/token | decode speed-up | weight stream GB/s (limit) | decode GB/s (of limit) | prefill ms/token | prefill speed-up |",
  );
  console.log("|---|---|---|---|---|---|---|");
  const d0 = median(runs[0].decode), p0 = median(runs[0].prefill);
  threadCounts.forEach((n, i) => {
    const d = median(runs[i].decode), p = median(runs[i].prefill);
    const gbs = decodeBytes(models[i]) / (d / 1000) / 1e9;
    console.log(
      `| ${n} | ${d.toFixed(2)} | ${(d0 / d).toFixed(2)}x | ${bw[i].toFixed(1)} (${(bw[i] / bw[0]).toFixed(2)}x) | ${gbs.toFixed(1)} (${
        ((100 * gbs) / bw[i]).toFixed(0)
      }%) | ${p.toFixed(2)} | ${(p0 / p).toFixed(2)}x |`,
    );
  });
  if (profile) await printProfiles();
} finally {
  for (const m of models) await m.close();
}

/** One profiled prefill and decode run per thread count; µs per token by op class, and each class's speed-up over one thread. */
async function printProfiles(): Promise<void> {
  const phases = { prefill: [] as Map<string, number>[], decode: [] as Map<string, number>[] };
  for (const m of models) {
    const backend = m.backend as WasmBackend, prof = new OpProfile();
    for (const phase of ["prefill", "decode"] as const) {
      backend.profile = prof;
      prof.reset();
      let seq = m.newSequence();
      let t = performance.now(), tokensRun = prefillTokens;
      if (phase === "prefill") await m.prefill(seq, tokens(prefillTokens, 7));
      else {
        backend.profile = null;
        m.releaseSequence(seq);
        seq = m.newSequence();
        await m.prefill(seq, tokens(prefillTokens, 8));
        backend.profile = prof;
        t = performance.now();
        for (const id of tokens(decodeSteps, 9)) await m.decodeOne(seq, id);
        tokensRun = decodeSteps;
      }
      const wall = performance.now() - t;
      backend.profile = null;
      m.releaseSequence(seq);
      const row = new Map<string, number>();
      let sum = 0;
      for (const [k, e] of prof.totals) {
        row.set(k, (1000 * e.ms) / tokensRun);
        sum += e.ms;
      }
      row.set("JS between calls", (1000 * (wall - sum)) / tokensRun);
      row.set("(wall)", (1000 * wall) / tokensRun);
      phases[phase].push(row);
    }
  }
  for (const phase of ["prefill", "decode"] as const) {
    const rows = phases[phase];
    console.log(`\n${phase}: µs per token by op class (${threadCounts.join(" / ")} threads; speed-up over ${threadCounts[0]})`);
    console.log(
      `| op | ${threadCounts.map((n) => `${n}t µs`).join(" | ")} | ${threadCounts.slice(1).map((n) => `${n}t speed-up`).join(" | ")} |`,
    );
    const keys = [...new Set(rows.flatMap((r) => [...r.keys()]))];
    for (const k of keys) {
      const v = rows.map((r) => r.get(k) ?? 0);
      console.log(
        `| ${k} | ${v.map((x) => x.toFixed(1)).join(" | ")} | ${v.slice(1).map((x) => (v[0] / x).toFixed(2) + "x").join(" | ")} |`,
      );
    }
  }
}
