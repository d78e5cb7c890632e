/**
 * Q6_K in the lanes layout (assembly/lanes-q6_k.ts) against the KX layout and the natural kernel, on one small
 * module compiled here with asc (bench/lanes-q6_k/kernels.ts; relaxed SIMD, or plain with --plain):
 *
 *   natural   matmul_q6_k over ggml's layout (Q8_K activations)
 *   kx        matmul_q6_kx over repack_q6_kx's layout (KX Q8_K activations, quantize_q8_kx)
 *   lanes     matmul_q6_k_lanes over repack_q6_k_lanes's layout (the same KX activations)
 *   q1        matmul_q6_k_lanes_q1 over the same layout (JavaScriptCore's form: Bun's Q6_K matmul)
 *
 *   deno run -A bench/lanes-q6_k.bench.ts          bun bench/lanes-q6_k.bench.ts        [--T 1,16,128] [--rounds 10]
 *
 * Every output of kx, lanes and q1 is checked bit for bit against natural (and each row's dequantization), then each
 * variant's fastest call (after 300 ms of calls: JavaScriptCore tiers up late) is printed with its ratio to natural,
 * lanes / kx and q1 / lanes. Run both engines in the same minutes.
 *
 *   --t1: decode only, the lanes kernel as built against Bun's and the candidate steps of bench/lanes-q6_k/t1.ts,
 *   with read_probe over the same bytes (bench/lanes-t1.ts)
 */

import process from "node:process";

import { benchArgs, intFlag, intListFlag, runStamp, shapeListFlag, usageError } from "./cli.ts";
import { engine, openStandalone, xorshift } from "./candidates.ts";
import { runT1 } from "./lanes-t1.ts";

const USAGE = `Q6_K matmuls on one module compiled here (relaxed SIMD, or plain): natural, KX and lanes layouts, each output
checked bit for bit against natural; fastest call per variant, ratios to natural and lanes / KX, per shape and T.

  deno run -A bench/lanes-q6_k.bench.ts [options]        bun bench/lanes-q6_k.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per variant, interleaved (default 10)
  --shapes LIST     out x in shapes (default 32000x768,2048x768,768x2048)
  --plain           the plain-SIMD build (and its lanes order) instead of the relaxed one
  --wasm FILE       use this compiled module instead of compiling (it must match --plain)
  --t1              instead: T = 1 only, matmul_q6_k_lanes as built ("today") against Bun's (q1) and the candidate steps
                    of bench/lanes-q6_k/t1.ts (whole weights, d a multiple of 16), one module compiled from that file;
                    outputs checked bit for bit; GB/s of weights as a fraction of read_probe's over the same bytes
                    (weights over 8 MiB, the classifier's 20 MiB among them, read from DRAM after a 256 MiB sweep)
  --variants LIST   with --t1: the kernels and candidates (default q1,av1,sh4)
  --cold            with --t1: every shape from DRAM
  -h, --help        this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      T: { type: "string", default: "1,16,128" },
      rounds: { type: "string", default: "10" },
      shapes: { type: "string", default: "32000x768,2048x768,768x2048" },
      t1: { type: "boolean" },
      variants: { type: "string", default: "q1,av1,sh4" },
      cold: { type: "boolean" },
      plain: { type: "boolean" },
      wasm: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const plain = opts.plain === true;
const shapes = shapeListFlag(USAGE, "shapes", opts.shapes), rounds = intFlag(USAGE, "rounds", opts.rounds);
const Ts = intListFlag(USAGE, "T", opts.T);
if (opts.t1) {
  const same = runT1({
    name: "Q6_K",
    entry: "bench/lanes-q6_k/t1.ts",
    blockBytes: 210,
    fill: fillWeights,
    repack: "repack_q6_k_lanes",
    today: "matmul_q6_k_lanes",
    kernels: { q1: "matmul_q6_k_lanes_q1" },
    candidateRange: false,
  }, {
    variants: opts.variants.split(","),
    shapes,
    rounds,
    plain,
    cold: opts.cold === true,
    wasm: opts.wasm,
  });
  if (!same) console.error("a T = 1 kernel or candidate differs from matmul_q6_k_lanes");
  process.exit(same ? 0 : 1);
}
// whole blocks of 256 a row, the weights within their 24 MB region
for (const [d, n] of shapes) {
  if (n % 256 || d * (n / 256) * 210 > 24 << 20) {
    usageError(`--shapes: ${d}x${n}: IN must be a multiple of 256 and the weights at most 24 MiB`, USAGE);
  }
}

const { ex, memory } = openStandalone("bench/lanes-q6_k/kernels.ts", { relaxed: !plain, mib: 256, wasm: opts.wasm });

const MB = 1 << 20;
// natural weights, KX copy, lanes copy, Q8_K and KX activations, outputs, f32 activations, scratch
const W = 65536, WK = W + 24 * MB, WL = WK + 24 * MB, XN = WL + 24 * MB, XK = XN + 8 * MB, O = XK + 8 * MB, O2 = O + 8 * MB;
const XF = O2 + 8 * MB, TMP = XF + 8 * MB, DQ = TMP + MB, DQ2 = DQ + MB;
const heap = new Uint8Array(memory.buffer);

/** Random Q6_K blocks at `at`: random ql, qh and scale bytes (every i8 scale), a finite normal f16 d of either sign. */
function fillWeights(heap: Uint8Array, at: number, bytes: number, next: () => number) {
  for (let b = 0; b < bytes; b += 210) {
    for (let i = 0; i < 210; i++) heap[at + b + i] = next() & 255;
    // d in [2^-14, 2^-7): exponent 1..7, any mantissa, random sign
    const dv = ((next() & 1) << 15) | ((1 + (next() % 7)) << 10) | (next() & 0x3ff);
    heap[at + b + 208] = dv & 255, heap[at + b + 209] = dv >> 8;
  }
}

const variants = ["natural", "kx", "lanes", "q1"] as const;
console.log(`${engine}, ${plain ? "plain" : "relaxed"} build, ${runStamp()}: fastest call in us (ratio natural / variant)`);
let allSame = true;
for (const [d, n] of shapes) {
  const bytes = d * (n / 256) * 210;
  fillWeights(heap, W, bytes, xorshift());
  heap.copyWithin(WK, W, W + bytes);
  heap.copyWithin(WL, W, W + bytes);
  ex.repack_q6_kx(WK, bytes / 210, TMP);
  ex.repack_q6_k_lanes(WL, n, d, TMP);
  // every row's dequantization: lanes (and KX) equal to natural
  let dqSame = true;
  for (let r = 0; r < d; r++) {
    ex.dequantize_q6_k(DQ, W + r * (bytes / d), n);
    ex.dequantize_q6_k_lanes(DQ2, WL, n, r, d);
    const a = new Uint32Array(memory.buffer, DQ, n), b = new Uint32Array(memory.buffer, DQ2, n);
    if (!a.every((x, i) => x === b[i])) dqSame = false;
  }
  const Tmax = Math.max(...Ts);
  const xf = new Float32Array(memory.buffer, XF, n * Tmax);
  for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2 + Math.cos(i * 0.011);
  for (const T of Ts) {
    ex.quantize_q8_k(XN, XF, n, T);
    ex.quantize_q8_kx(XK, XF, n, T);
    const call = (v: typeof variants[number], out: number, r0 = 0, r1 = d) => {
      if (v === "natural") ex.matmul_q6_k(out, XN, W, n, d, T, r0, r1);
      else if (v === "kx") ex.matmul_q6_kx(out, XK, WK, n, d, T, r0, r1);
      else if (v === "lanes") ex.matmul_q6_k_lanes(out, XK, WL, n, d, T, r0, r1);
      else ex.matmul_q6_k_lanes_q1(out, XK, WL, n, d, T, r0, r1);
    };
    const outOf = (v: typeof variants[number]) => {
      call(v, O);
      return new Uint32Array(memory.buffer, O, d * T).slice();
    };
    const ref = outOf("natural");
    const same = (v: typeof variants[number]) => outOf(v).every((x, i) => x === ref[i]);
    // lanes over split row ranges (quad boundaries, the last range ending at d)
    const cut = [0, 4 * Math.floor(d / 12), 4 * Math.floor(d / 5), d];
    const splitSame = (v: "lanes" | "q1") => {
      new Uint32Array(memory.buffer, O2, d * T).fill(0);
      for (let i = 0; i + 1 < cut.length; i++) call(v, O2, cut[i], cut[i + 1]);
      return new Uint32Array(memory.buffer, O2, d * T).every((x, i) => x === ref[i]);
    };
    const split = splitSame("lanes") && splitSame("q1");
    const kxSame = same("kx"), lanesSame = same("lanes") && same("q1");
    allSame &&= kxSame && lanesSame && split && dqSame;
    for (const v of variants) for (const t0 = performance.now(); performance.now() - t0 < 300;) call(v, O);
    const reps = Math.max(1, Math.round(32 / T));
    const best: Record<string, number> = Object.fromEntries(variants.map((v) => [v, Infinity]));
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const t0 = performance.now();
        for (let i = 0; i < reps; i++) call(v, O);
        best[v] = Math.min(best[v], (performance.now() - t0) / reps);
      }
    }
    const gops = (v: string) => (2 * n * d * T / best[v] / 1e6).toFixed(1);
    console.log(
      `  ${`${d}x${n}`.padEnd(9)} T=${String(T).padEnd(4)}` +
        variants.map((v) => ` ${v} ${(best[v] * 1000).toFixed(1).padStart(7)} (${(best.natural / best[v]).toFixed(2)}x, ${gops(v)} GOP/s)`)
          .join("") +
        `  lanes/kx ${(best.kx / best.lanes).toFixed(2)}x q1/lanes ${(best.lanes / best.q1).toFixed(2)}x` +
        `  bit-identical: kx ${kxSame ? "yes" : "NO"}, lanes and q1 ${lanesSame ? "yes" : "NO"}` +
        `, split ${split ? "yes" : "NO"}, dequantize ${dqSame ? "yes" : "NO"}`,
    );
  }
}
if (!allSame) {
  console.error("lanes or KX differ from the natural kernel");
  if (typeof process !== "undefined") process.exitCode = 1;
}
