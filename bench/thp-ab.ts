/**
 * The WASM backend's memory on transparent huge pages against 4 KiB pages, in one process: the synthetic
 * stories110M-shaped file loaded twice on this tree's build (1 thread, the lanes kernels this runtime picks), one
 * model's memory then advised MADV_HUGEPAGE and MADV_COLLAPSE through the runtime's FFI (bun:ffi, Deno.dlopen: libc
 * on Linux; this VM's THP mode is "madvise", so neither runtime's memory gets huge pages otherwise), then decode steps
 * of the two in alternation after a 128-id prompt. Prints the step's median and fastest µs of each and their ratio,
 * and the process's AnonHugePages. The tokens must agree. An experiment (docs/cpu-performance.md, "Bun's quantized
 * decode, measured (session 10)": 0.99-1.04x), not wired into the backend.
 *
 *   deno run -A bench/thp-ab.ts [--types Q4_0,Q4_K_M] [--steps 48] [--rounds 2]      bun bench/thp-ab.ts ...
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { benchArgs, intFlag, listFlag, median, runStamp } from "./cli.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { BackendOn } from "./build-backend.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import type { GGMLTypeId } from "../src/formats/ggml-types.ts";
import { type LanesKernel, lanesKernel } from "../src/quant/kernels.ts";
import { dotAddIsExactU8S8, hasRelaxedSimd } from "../src/kernels/wasm.ts";

const USAGE = `Decode steps on transparent huge pages (madvise through the runtime's FFI) against 4 KiB pages, one process, 1 thread:
median and fastest µs a step of each, and their ratio.

  deno run -A bench/thp-ab.ts [options]        bun bench/thp-ab.ts [options]

  --types LIST   synthetic stories110M files (default Q4_0,Q4_K_M; F32, F16, Q8_0, Q4_0, Q4_K, Q4_K_M)
  --steps N      decode steps of each model per round, after a 128-id prompt (default 48)
  --rounds N     rounds, each on new sequences (default 2)
  -h, --help     this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      types: { type: "string", default: "Q4_0,Q4_K_M" },
      steps: { type: "string", default: "48" },
      rounds: { type: "string", default: "2" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
const steps = intFlag(USAGE, "steps", opts.steps), rounds = intFlag(USAGE, "rounds", opts.rounds);
const variant = hasRelaxedSimd() ? "relaxed" : "simd";
const exact = variant === "relaxed" && dotAddIsExactU8S8();
const root = new URL("..", import.meta.url).pathname;
class On extends BackendOn {
  override lanesKernelFor(type: GGMLTypeId): LanesKernel | undefined {
    return lanesKernel(type, exact);
  }
  memory(): WebAssembly.Memory {
    // deno-lint-ignore no-explicit-any
    return (this as any).arena.memory;
  }
}
// deno-lint-ignore no-explicit-any
const g = globalThis as any;
async function madvise(buf: ArrayBuffer, advice: number): Promise<number> {
  const len = buf.byteLength & ~0x1fffff;
  if (g.Bun) {
    const { dlopen, FFIType, ptr } = await import("bun:ffi");
    const lib = dlopen("libc.so.6", { madvise: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 } });
    const p = ptr(new Uint8Array(buf));
    return lib.symbols.madvise(p, len, advice);
  }
  const lib = g.Deno.dlopen("libc.so.6", { madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" } });
  const p = g.Deno.UnsafePointer.of(new Uint8Array(buf));
  return lib.symbols.madvise(p, BigInt(len), advice);
}
const huge = () => fs.readFileSync("/proc/self/smaps_rollup", "utf8").match(/AnonHugePages:\s+(\d+)/)?.[1];
const prompt = Array.from({ length: 128 }, (_, i) => 1 + ((i * 37) % 500));
console.log(`${g.Bun ? "bun" : "deno"}, ${runStamp()}`);
for (const type of types) {
  const file = await ensureSyntheticModel("stories110M", type);
  const b4k = new On(path.join(root, "build", `kvasm-${variant}.wasm`), variant);
  const bth = new On(path.join(root, "build", `kvasm-${variant}.wasm`), variant);
  const m4k = await loadModel(file, { backend: b4k, threads: 1 });
  const mth = await loadModel(file, { backend: bth, threads: 1 });
  const before = huge();
  const r1 = await madvise(bth.memory().buffer, 14); // MADV_HUGEPAGE
  const t0 = performance.now();
  const r2 = await madvise(bth.memory().buffer, 25); // MADV_COLLAPSE
  console.log(`${type}: madvise ${r1} ${r2} (${(performance.now() - t0).toFixed(0)} ms), AnonHugePages ${before} -> ${huge()} kB`);
  const times = { k4: [] as number[], th: [] as number[] };
  const models = { k4: m4k, th: mth };
  for (let r = 0; r < rounds; r++) {
    const seqs = { k4: models.k4.newSequence(), th: models.th.newSequence() };
    let tok = { k4: argmax(await models.k4.prefill(seqs.k4, prompt)), th: argmax(await models.th.prefill(seqs.th, prompt)) };
    for (let s = 0; s < steps; s++) {
      for (const w of (s & 1) ? ["th", "k4"] as const : ["k4", "th"] as const) {
        const t = performance.now();
        const l = await models[w].decodeOne(seqs[w], tok[w]);
        times[w].push(1000 * (performance.now() - t));
        tok = { ...tok, [w]: argmax(l) };
      }
      if (tok.k4 !== tok.th) throw new Error("tokens differ");
    }
    models.k4.releaseSequence(seqs.k4);
    models.th.releaseSequence(seqs.th);
  }
  const f = (w: "k4" | "th") => `median ${median(times[w]).toFixed(0)} fastest ${Math.min(...times[w]).toFixed(0)}`;
  console.log(
    `  4K ${f("k4")}  THP ${f("th")}  4K/THP median ${(median(times.k4) / median(times.th)).toFixed(3)}x fastest ${
      (Math.min(...times.k4) / Math.min(...times.th)).toFixed(3)
    }x; AnonHugePages ${huge()} kB`,
  );
  await m4k.close();
  await mth.close();
}
