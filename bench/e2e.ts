/**
 * End-to-end throughput on a synthetic stories110M-shaped model (random
 * weights, real shapes), single thread: decode tok/s, 128-token prefill tok/s,
 * and the effective GB/s of weights read per decoded token, next to the
 * machine's read bandwidth measured by the same kernels in the same run.
 *
 *   deno run -A bench/e2e.ts [--shape stories110M] [--types F32,Q8_0] [--decode 48] [--json] [--ggml-order] [--help]
 *   bun bench/e2e.ts ...
 *
 * --ggml-order also measures each type loaded for llama.cpp's arithmetic bit for bit
 * ({ ggmlOrder: true, kvCacheType: "f16" }) and prints its speed as a share of the default's.
 */
import { ensureSyntheticModel, SHAPES, SYNTHETIC_TYPES } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import type { WasmBackend } from "../src/backends/wasm.ts";
import { RESERVED } from "../src/memory/arena.ts";
import { benchArgs, choiceFlag, intFlag, listFlag } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Deno ? `deno ${g.Deno.version.deno}` : g.Bun ? `bun ${g.Bun.version}` : `node ${g.process.version}`;

/**
 * Single-core read bandwidth of WebAssembly over the model's own weights (the
 * same pages the matmuls stream), best of a few passes of the read_probe kernel.
 */
export function readBandwidth(model: Model): number {
  const k = (model.backend as WasmBackend).kernels;
  const floats = Math.floor(model.weightBytes / 4);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    k.read_probe(RESERVED, floats);
    best = Math.min(best, performance.now() - t);
  }
  return (floats * 4) / (best / 1000) / 1e9;
}

/**
 * Bytes a decode step reads: every weight once, except the embedding table (one
 * row of it), unless the classifier is tied to it.
 */
export function decodeBytes(model: Model): number {
  const embd = model.file.tensors.get("token_embd.weight");
  const tied = !model.file.tensors.has("output.weight");
  return model.weightBytes - (embd && !tied ? embd.byteLength : 0);
}

export interface E2EResult {
  type: string;
  /** "default", or "ggml" for { ggmlOrder: true, kvCacheType: "f16" } */
  mode?: "default" | "ggml";
  weightBytes: number;
  decodeTps: number;
  prefillTps: number;
  decodeGBs: number;
}

export async function measure(model: Model, type: string, decodeTokens: number): Promise<E2EResult> {
  const vocab = model.vocabSize;
  const prompt = Array.from({ length: 128 }, (_, i) => 300 + ((i * 7919) % (vocab - 300)));
  // warm-up: compile tiers, touch pages
  let seq = model.newSequence();
  await model.prefill(seq, prompt.slice(0, 16));
  for (let i = 0; i < 4; i++) await model.decodeOne(seq, 400 + i);
  model.releaseSequence(seq);

  let bestPrefill = Infinity;
  for (let rep = 0; rep < 2; rep++) {
    seq = model.newSequence();
    const t0 = performance.now();
    await model.prefill(seq, prompt);
    bestPrefill = Math.min(bestPrefill, performance.now() - t0);
    model.releaseSequence(seq);
  }
  seq = model.newSequence();
  await model.prefill(seq, prompt.slice(0, 8));
  const t1 = performance.now();
  for (let i = 0; i < decodeTokens; i++) await model.decodeOne(seq, 300 + ((i * 31) % (vocab - 300)));
  const decodeMs = performance.now() - t1;
  model.releaseSequence(seq);

  const weightBytes = decodeBytes(model);
  const decodeTps = decodeTokens / (decodeMs / 1000);
  return { type, weightBytes, decodeTps, prefillTps: prompt.length / (bestPrefill / 1000), decodeGBs: (weightBytes * decodeTps) / 1e9 };
}

const USAGE = `End-to-end throughput on a synthetic model, 1 thread: decode and 128-token prefill tok/s, and the weights' GB/s per
decoded token next to the machine's read bandwidth, measured in the same run.

  deno run -A bench/e2e.ts [options]        bun bench/e2e.ts [options]        npm run bench -- [options]

  --shape NAME     bench/synthetic.ts shape (default stories110M)
  --types LIST     weight types (default F32,Q8_0,Q4_0,Q4_K_M)
  --decode N       decode steps timed (default 48)
  --ggml-order     also each type with { ggmlOrder: true, kvCacheType: "f16" }, as a share of the default's speed
  --json           one JSON line instead of the table
  -h, --help       this text`;

if (import.meta.main) {
  const { values: opts } = benchArgs(USAGE, {
    options: {
      shape: { type: "string", default: "stories110M" },
      types: { type: "string", default: "F32,Q8_0,Q4_0,Q4_K_M" },
      decode: { type: "string", default: "48" },
      "ggml-order": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  });
  const shape = choiceFlag(USAGE, "shape", opts.shape, Object.keys(SHAPES));
  const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
  const decodeTokens = intFlag(USAGE, "decode", opts.decode);
  const modes = opts["ggml-order"] ? ["default", "ggml"] as const : ["default"] as const;
  const results: E2EResult[] = [];
  let bw = 0;
  for (const type of types) {
    const path = await ensureSyntheticModel(shape, type);
    for (const mode of modes) {
      const exact = mode === "ggml" ? { ggmlOrder: true, kvCacheType: "f16" as const } : {};
      const model = await loadModel(path, { contextLength: 512, threads: 1, ...exact });
      try {
        results.push({ ...await measure(model, type, decodeTokens), mode });
        bw = Math.max(bw, readBandwidth(model));
      } finally {
        await model.close();
      }
    }
  }
  if (opts.json) {
    console.log(JSON.stringify({ runtime, shape, readGBs: bw, results }));
  } else {
    console.log(`${runtime}, ${shape}, 1 thread; read bandwidth (read_probe kernel over the weights): ${bw.toFixed(1)} GB/s`);
    for (const r of results) {
      const base = results.find((d) => d.type === r.type && d.mode === "default")!;
      const share = r.mode === "ggml"
        ? `  [ggml order: ${((100 * r.decodeTps) / base.decodeTps).toFixed(0)}% of default decode, ${
          ((100 * r.prefillTps) / base.prefillTps).toFixed(0)
        }% prefill]`
        : "";
      console.log(
        `${(r.type + (r.mode === "ggml" ? "*" : "")).padEnd(7)} decode ${r.decodeTps.toFixed(1).padStart(6)} tok/s  ${
          r.decodeGBs.toFixed(1)
        } GB/s of weights ` +
          `(${((100 * r.decodeGBs) / bw).toFixed(0)}% of read bandwidth)  prefill(128) ${
            r.prefillTps.toFixed(1).padStart(6)
          } tok/s${share}`,
      );
    }
    if (modes.length > 1) console.log(`* loaded with { ggmlOrder: true, kvCacheType: "f16" }: llama.cpp's CPU arithmetic bit for bit`);
  }
}
