/**
 * Quantized matmul kernels, single thread: GOP/s (2 ops per multiply-add) and
 * GB/s of weights read, plain vs relaxed SIMD, and a whole-model decode
 * estimate for the stories110M shape (dim 768, hidden 2048, 12 layers, vocab 32000).
 *
 *   deno run -A bench/quant-kernels.bench.ts [types...]       (e.g. q4_0 q4_k; default: all)
 *   bun bench/quant-kernels.bench.ts
 *   node --experimental-wasm-relaxed-simd --no-liftoff --experimental-strip-types bench/quant-kernels.bench.ts
 *   ... --build DIR                      the builds in DIR instead of build/
 *   ... --baseline DIR [--T 1,128]     also times DIR/kvasm-relaxed.wasm (an earlier build) in the same run,
 *                                      and reports each kernel's fastest call (a loaded host only slows calls)
 * Types with a KX layout (Q6_K, Q4_K: KX_KERNELS in src/quant/kernels.ts) or a lanes layout (LANES_KERNELS: Q8_0, Q4_K) are
 * also timed as the WASM backend runs them, on a repacked copy (rows relaxed-kx, plain-kx, relaxed-lanes, plain-lanes;
 * "kx/natural", "lanes/natural": the same build's natural kernel's time over its own).
 */
import { Bench } from "tinybench";
import * as fs from "node:fs";
import { ggmlTypeName, rowBytes } from "../src/formats/ggml-types.ts";
import { KX_KERNELS, LANES_KERNELS, QUANT_WEIGHT_TYPES, weightKernel } from "../src/quant/kernels.ts";

import { checkKernelExports } from "../src/kernels/wasm.ts";
import type { Kernels } from "../src/kernels/spec.ts";
import { benchArgs, intListFlag, listFlag } from "./cli.ts";
const memory = new WebAssembly.Memory({ initial: 2560 }); // 160 MiB
const USAGE = `Quantized matmul kernels, one thread: GOP/s and GB/s of weights, plain against relaxed SIMD (and KX layouts), and a
stories110M-shaped decode estimate.

  deno run -A bench/quant-kernels.bench.ts [options] [TYPE ...]        bun bench/quant-kernels.bench.ts ...

  TYPE ...          weight types, lower case (e.g. q4_0 q4_k; default: all)
  --build DIR       the builds in DIR instead of build/
  --baseline DIR    also time DIR/kvasm-relaxed.wasm (an earlier build) in the same run, fastest call reported
  --T LIST          token rows (default 1,16,128)
  -h, --help        this text`;
const { values: opts, positionals: args } = benchArgs(
  USAGE,
  {
    options: {
      build: { type: "string" },
      baseline: { type: "string" },
      T: { type: "string", default: "1,16,128" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  },
);
const baseline = opts.baseline;
const buildDir = opts.build;
const Ts = intListFlag(USAGE, "T", opts.T, 1, 128); // the f32 activations: 128 rows of 2048
// a type this bench has no kernels for was skipped without a word
const typeNames = QUANT_WEIGHT_TYPES.map((t) => ggmlTypeName(t).toLowerCase());
if (args.length) listFlag(USAGE, "TYPE", args.join(","), typeNames);

const builds: Record<string, Kernels> = {};
const buildFiles: Record<string, string | URL> = {
  simd: buildDir ? `${buildDir}/kvasm-simd.wasm` : new URL("../build/kvasm-simd.wasm", import.meta.url),
  relaxed: buildDir ? `${buildDir}/kvasm-relaxed.wasm` : new URL("../build/kvasm-relaxed.wasm", import.meta.url),
};
if (baseline) buildFiles.base = `${baseline}/kvasm-relaxed.wasm`;
for (const [b, file] of Object.entries(buildFiles)) {
  const bytes = fs.readFileSync(file);
  const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
  // a baseline from an earlier tree may export kernels this tree's spec no longer lists; only its matmuls are called
  builds[b] = b === "base" ? exports as unknown as Kernels : checkKernelExports(exports, b);
}
const wanted = args.length ? QUANT_WEIGHT_TYPES.filter((t) => args.includes(ggmlTypeName(t).toLowerCase())) : QUANT_WEIGHT_TYPES;

// Random bytes are fine for speed, once no f16 scale is NaN, inf or subnormal.
const W = 65536, X = W + 70 * 1024 * 1024, O = X + 8 * 1024 * 1024, XF = O + 24 * 1024 * 1024;
// KX or lanes copies of the weights (each build its own order), their activations, the repack's scratch (a lanes row group)
const WKX = XF + 1024 * 1024, XKX = WKX + 28 * 1024 * 1024, TMP = XKX + 2 * 1024 * 1024; // 28 MiB: the Q8_0 classifier
const heap = new Uint8Array(memory.buffer);
let s = 12345;
for (let i = W; i < X; i++) {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  // every f16 field finite and normal (exponent bits never all ones, never zero: subnormal
  // scales take a slow path in the CPU's float unit and would halve Q4_0 / Q8_0 here), Q8_0 bytes > -128
  heap[i] = (s & 0x73) | 0x08;
}
const xf = new Float32Array(memory.buffer, XF, 2048 * 128);
for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2;

const shapes: [string, number, number][] = [["2048x768", 768, 2048], ["768x2048", 2048, 768], ["32000x768", 768, 32000]];

interface Row {
  type: string;
  shape: string;
  T: number;
  build: string;
  ms: number;
  gops: number;
  gbs: number;
}
const rows: Row[] = [];
for (const type of wanted) {
  const k = weightKernel(type);
  for (const [label, n, d] of shapes) {
    for (const T of Ts) {
      if (d === 32000 && T > 1) continue;
      const bench = new Bench({ time: 300, warmupTime: 50 });
      for (const [i, b] of Object.keys(builds).entries()) {
        // each build its own activations (1 MiB apart): a baseline from an earlier tree may pair the type with
        // another format (Q4_0/Q8_0 took Q8_0 blocks before Q8_S), which its own quantizer then writes
        const xq = X + i * 1024 * 1024;
        const quantize = b === "base" && !(k.quantize in builds[b]) ? "quantize_q8_0" : k.quantize;
        builds[b][quantize](xq, XF, n, T);
        bench.add(b, () => builds[b][k.matmul](O, xq, W, n, d, T, 0, d));
      }
      const kx = KX_KERNELS.get(type);
      for (const b of kx ? ["simd", "relaxed"] : []) {
        const wb = rowBytes(type, n)! * d;
        bench.add(`${b === "simd" ? "plain" : b}-kx`, () => builds[b][kx!.matmul](O, XKX, WKX, n, d, T, 0, d), {
          beforeAll: () => {
            heap.copyWithin(WKX, W, W + wb);
            builds[b][kx!.repack](WKX, wb / rowBytes(type, 256)!, TMP);
            builds[b][kx!.quantize](XKX, XF, n, T);
          },
        });
      }
      const lanes = LANES_KERNELS.get(type);
      for (const b of lanes ? ["simd", "relaxed"] : []) {
        const wb = rowBytes(type, n)! * d;
        bench.add(`${b === "simd" ? "plain" : b}-lanes`, () => builds[b][lanes!.matmul](O, XKX, WKX, n, d, T, 0, d), {
          beforeAll: () => {
            heap.copyWithin(WKX, W, W + wb);
            builds[b][lanes!.repack](WKX, n, d, TMP);
            builds[b][lanes!.quantize](XKX, XF, n, T);
          },
        });
      }
      await bench.run();
      for (const task of bench.tasks) {
        const latency = (task.result as unknown as { latency: { mean: number; min: number } }).latency;
        const ms = baseline ? latency.min : latency.mean;
        const ops = 2 * n * d * T;
        rows.push({
          type: ggmlTypeName(type),
          shape: label,
          T,
          build: task.name,
          ms,
          gops: ops / ms / 1e6,
          gbs: rowBytes(type, n)! * d / ms / 1e6,
        });
      }
    }
  }
}

console.log(`type  shape      T    build     ms       GOP/s   GB/s(weights)  relaxed/plain${baseline ? "  relaxed/base" : ""}`);
for (const r of rows) {
  const plain = rows.find((p) => p.type === r.type && p.shape === r.shape && p.T === r.T && p.build === "simd")!;
  const natural = (r: Row) =>
    rows.find((p) =>
      p.type === r.type && p.shape === r.shape && p.T === r.T && p.build === (r.build.startsWith("plain-") ? "simd" : "relaxed")
    )!;
  const base = (r: Row) => rows.find((p) => p.type === r.type && p.shape === r.shape && p.T === r.T && p.build === "base")!;
  console.log(
    `${r.type.padEnd(5)} ${r.shape.padEnd(10)} ${String(r.T).padEnd(4)} ${r.build.padEnd(8)} ${r.ms.toFixed(3).padStart(8)} ${
      r.gops.toFixed(1).padStart(7)
    } ${r.gbs.toFixed(1).padStart(8)}` +
      (r.build === "relaxed" ? `        ${(plain.ms / r.ms).toFixed(2)}x` : "") +
      (r.build === "relaxed" && baseline ? `         ${(base(r).ms / r.ms).toFixed(2)}x` : "") +
      (r.build.endsWith("-kx") ? `        kx/natural ${(natural(r).ms / r.ms).toFixed(2)}x` : "") +
      (r.build.endsWith("-lanes") ? `        lanes/natural ${(natural(r).ms / r.ms).toFixed(2)}x` : ""),
  );
}

// Decode estimate for stories110M: per token 12 x (4 x 768x768 + 3 x {768x2048 or 2048x768}) + 32000x768 classifier.
if (Ts.includes(1) && Ts.includes(128)) console.log("\nstories110M matmul-only decode estimate (T=1, relaxed), tokens/s:");
for (const type of Ts.includes(1) && Ts.includes(128) ? wanted : []) {
  const t = (shape: string) =>
    rows.find((r) => r.type === ggmlTypeName(type) && r.shape === shape && r.T === 1 && r.build === "relaxed")!.ms;
  const perLayer = (4 * 768 * 768 / (768 * 2048)) * t("2048x768") + 2 * t("2048x768") + t("768x2048");
  const ms = 12 * perLayer + t("32000x768");
  const pre = (shape: string) =>
    rows.find((r) => r.type === ggmlTypeName(type) && r.shape === shape && r.T === 128 && r.build === "relaxed")!.ms;
  const preMs = 12 * ((4 * 768 / 2048) * pre("2048x768") + 2 * pre("2048x768") + pre("768x2048")) / 128;
  console.log(
    `  ${ggmlTypeName(type).padEnd(5)} decode ${(1000 / ms).toFixed(0)} tok/s; prefill (T=128, layers only) ${
      (1000 / preMs).toFixed(0)
    } tok/s`,
  );
}
