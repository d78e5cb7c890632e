/**
 * Q4_0 in the lanes layout (assembly/lanes-q4_0.ts: matmul_q4_0_lanes and Bun's matmul_q4_0_lanes_q1) against today's
 * matmul_q4_0, in one build (build/kvasm-relaxed.wasm, or kvasm-simd.wasm with --plain): the kernels on the same
 * weights (the lanes copy repacked by repack_q4_0_lanes), every output checked bit for bit, fastest call of
 * interleaved rounds, per shape and T.
 *
 *   deno run -A bench/q4_0-lanes.bench.ts          bun bench/q4_0-lanes.bench.ts        [--T 1,16,128] [--rounds 10] [--plain]
 *
 * Run both engines in the same minutes to compare them.
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { benchArgs, intFlag, intListFlag, runStamp, shapeListFlag, usageError } from "./cli.ts";
import { engine, xorshift } from "./candidates.ts";

const USAGE = `Q4_0 matmul, today's kernel (matmul_q4_0) against the lanes layout's (matmul_q4_0_lanes, and matmul_q4_0_lanes_q1, whose
T = 1 step is the form JavaScriptCore runs fast), in one build; outputs checked bit for bit; fastest call after 300 ms of
warm-up calls and today / lanes time ratio, per shape and T.

  deno run -A bench/q4_0-lanes.bench.ts [options]        bun bench/q4_0-lanes.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per kernel, interleaved (default 10)
  --shapes LIST     out x in shapes (default 2048x768,768x2048,32000x768)
  --plain           the plain-SIMD build (and its lanes order) instead of the relaxed one
  --build DIR       the builds in DIR (default build/)
  -h, --help        this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      T: { type: "string", default: "1,16,128" },
      rounds: { type: "string", default: "10" },
      shapes: { type: "string", default: "2048x768,768x2048,32000x768" },
      plain: { type: "boolean" },
      build: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const Ts = intListFlag(USAGE, "T", opts.T, 1, 128); // the f32 activations: 128 rows of 2048
const rounds = intFlag(USAGE, "rounds", opts.rounds);
const shapes = shapeListFlag(USAGE, "shapes", opts.shapes);
for (const [d, n] of shapes) {
  // whole Q4_0 blocks a row, at most 2048 inputs (the activations), weights and T-row outputs within their 20 MiB
  if (n % 32 || n > 2048 || (n / 32) * 18 * d > 20 << 20 || 4 * d * Math.max(...Ts) > 20 << 20) {
    usageError(`--shapes: ${d}x${n}: IN must be a multiple of 32 up to 2048, and the weights and outputs at most 20 MiB`, USAGE);
  }
}
const plain = opts.plain === true;

const root = new URL("..", import.meta.url).pathname;
// lanes kernels: V8's (T = 1 four quads per pass) and JavaScriptCore's (T = 1 one quad per pass; Bun's)
const LANES = ["matmul_q4_0_lanes", "matmul_q4_0_lanes_q1"];
const wasmBytes = fs.readFileSync(path.join(opts.build ?? path.join(root, "build"), plain ? "kvasm-simd.wasm" : "kvasm-relaxed.wasm"));

type Fn = (...args: number[]) => void;
const memory = new WebAssembly.Memory({ initial: 4096 }); // 256 MiB
const ex = new WebAssembly.Instance(new WebAssembly.Module(wasmBytes as BufferSource), { env: { memory } }).exports as Record<string, Fn>;

// natural Q4_0 weights, the lanes copy, Q8_S activations, outputs, f32 activations, repack scratch
const MiB = 1 << 20;
const W = 64 * 1024, WL = W + 20 * MiB, X = WL + 20 * MiB, O = X + 8 * MiB, O2 = O + 20 * MiB, XF = O2 + 20 * MiB, TMP = XF + 8 * MiB;
const heap = new Uint8Array(memory.buffer);
const rnd = xorshift();
const xf = new Float32Array(memory.buffer, XF, 2048 * 128);
for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2;

function place(n: number, d: number) {
  const bytes = (n / 32) * 18 * d;
  for (let i = W; i < W + bytes; i++) heap[i] = rnd() & 0xff;
  // finite, normal f16 scales 2^-10 .. 2^-7 with random mantissas
  const v = new DataView(memory.buffer);
  for (let p = W; p < W + bytes; p += 18) v.setUint16(p, 0x1400 + (rnd() & 0x0fff), true);
  heap.copyWithin(WL, W, W + bytes);
  ex.repack_q4_0_lanes(WL, n, d, TMP);
}

console.log(`${engine}, ${plain ? "plain" : "relaxed"} build, ${runStamp()}: fastest call in us (ratio today / lanes)`);
let allSame = true;
for (const [d, n] of shapes) {
  const shape = `${d}x${n}`;
  place(n, d);
  for (const T of Ts) {
    ex.quantize_q8_s(X, XF, n, T);
    ex.matmul_q4_0(O, X, W, n, d, T, 0, d);
    const a = new Uint32Array(memory.buffer, O, d * T), b = new Uint32Array(memory.buffer, O2, d * T);
    let same = true;
    for (const k of LANES) {
      b.fill(0x7fc00001);
      ex[k](O2, X, WL, n, d, T, 0, d);
      same &&= a.every((x, i) => x === b[i]);
    }
    allSame &&= same;
    // JavaScriptCore reaches its optimizing tier late on large functions: 300 ms each first
    // (docs/cpu-performance.md "Q8_0 under JavaScriptCore")
    for (const t0 = performance.now(); performance.now() - t0 < 300;) ex.matmul_q4_0(O, X, W, n, d, T, 0, d);
    for (const k of LANES) for (const t0 = performance.now(); performance.now() - t0 < 300;) ex[k](O2, X, WL, n, d, T, 0, d);
    const reps = Math.max(1, Math.round((32 * 768 * 2048) / (T * n * d)));
    let today = Infinity;
    const lanes = LANES.map(() => Infinity);
    for (let r = 0; r < rounds; r++) {
      let t0 = performance.now();
      for (let i = 0; i < reps; i++) ex.matmul_q4_0(O, X, W, n, d, T, 0, d);
      today = Math.min(today, (performance.now() - t0) / reps);
      LANES.forEach((k, j) => {
        t0 = performance.now();
        for (let i = 0; i < reps; i++) ex[k](O2, X, WL, n, d, T, 0, d);
        lanes[j] = Math.min(lanes[j], (performance.now() - t0) / reps);
      });
    }
    const gops = (ms: number) => ((2 * n * d * T) / ms / 1e6).toFixed(1);
    console.log(
      `  ${shape.padEnd(9)} T=${String(T).padEnd(4)} today ${(today * 1000).toFixed(1).padStart(8)} (${gops(today)} GOP/s)` +
        LANES.map((k, j) =>
          `  ${k.slice(10)} ${(lanes[j] * 1000).toFixed(1).padStart(8)} (${gops(lanes[j])} GOP/s) ${(today / lanes[j]).toFixed(2)}x`
        ).join("") + `  bit-identical: ${same ? "yes" : "NO"}`,
    );
  }
}
if (!allSame) throw new Error("the lanes kernel's outputs differ from matmul_q4_0's");
