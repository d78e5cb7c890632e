/**
 * Why Bun (JavaScriptCore) runs kvasm's Q8_0 matmul slower than Deno (V8), measured on one module:
 * bench/q8_0-jsc/kernels.ts, compiled here with asc (relaxed SIMD, or plain with --plain; a few seconds), holds
 *
 *   now        matmul_q8_0 as built (assembly/quant-gemm.ts: gemv for T = 1, 4 x 4 tiles for T > 1)
 *   noReduce   the same tile with its per-block reduce4i (six two-input shuffles + three adds) replaced by
 *              three adds: wrong sums, timed only, to show what the reduction costs each engine
 *   lanes      a repacked layout (4 rows interleaved per 4 bytes, 16 rows per pass) where lane r of every
 *              integer dot belongs to row r: no reduction at all; bit-identical to `now` (checked here)
 *
 *   deno run -A bench/q8_0-jsc.bench.ts          bun bench/q8_0-jsc.bench.ts        [--T 1,16,128] [--rounds 10]
 *
 * Prints each variant's fastest call (a loaded host only slows calls) and its ratio to `now`, per shape and T.
 * Run both engines in the same minutes to compare them.
 */

import { benchArgs, intFlag, intListFlag, runStamp } from "./cli.ts";
import { engine, openStandalone, xorshift } from "./candidates.ts";

const USAGE = `Q8_0 matmul on one module compiled here (relaxed SIMD, or plain): today's kernel, its tile without the per-block reduction
(timing only), and the lanes layout (bit-identical, checked); fastest call and ratio to today's, per shape and T.
Run it under Deno and Bun in the same minutes to compare V8 with JavaScriptCore.

  deno run -A bench/q8_0-jsc.bench.ts [options]        bun bench/q8_0-jsc.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per variant, interleaved (default 10)
  --plain           the plain-SIMD build (and its lanes order) instead of the relaxed one
  -h, --help        this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      T: { type: "string", default: "1,16,128" },
      rounds: { type: "string", default: "10" },
      plain: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const Ts = intListFlag(USAGE, "T", opts.T, 1, 128); // the f32 activations: 128 rows of 2048
const rounds = intFlag(USAGE, "rounds", opts.rounds);
const plain = opts.plain === true;

const { ex, memory, heap } = openStandalone("bench/q8_0-jsc/kernels.ts", { relaxed: !plain, mib: 64 });

// weights (natural Q8_0 and the lanes copy), Q8_S activations, output, f32 activations
const W = 65536, WL = W + 8 * 1024 * 1024, X = WL + 8 * 1024 * 1024, O = X + 8 * 1024 * 1024, XF = O + 8 * 1024 * 1024;
const rnd = xorshift();
// every f16 scale finite and normal, every weight byte in 8..123 (random sign is the activations' job)
for (let i = W; i < WL; i++) heap[i] = (rnd() & 0x73) | 0x08;
const xf = new Float32Array(memory.buffer, XF, 2048 * 128);
for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2;

/**
 * The lanes layout: per 4 rows and block, 4 f16 scales, then vector g = elements 4g..4g+3 of rows 0..3
 * (row i's at bytes 4i..4i+3; plain build: 2i, 2i + 1, 2i + 8, 2i + 9, where its dot16 pairs them).
 */
function repackLanes(n: number, d: number) {
  const nb = n / 32;
  for (let r = 0; r < d; r += 4) {
    for (let b = 0; b < nb; b++) {
      const dst = WL + (r / 4) * nb * 136 + b * 136;
      for (let i = 0; i < 4; i++) {
        const src = W + (r + i) * nb * 34 + b * 34;
        heap[dst + 2 * i] = heap[src];
        heap[dst + 2 * i + 1] = heap[src + 1];
        for (let g = 0; g < 8; g++) {
          for (let k = 0; k < 4; k++) {
            heap[dst + 8 + 16 * g + (plain ? 2 * i + (k & 1) + 8 * (k >> 1) : 4 * i + k)] = heap[src + 2 + 4 * g + k];
          }
        }
      }
    }
  }
}

const shapes: [string, number, number][] = [["2048x768", 768, 2048], ["768x2048", 2048, 768]];
const variants = ["now", "noReduce", "lanes"];
console.log(`${engine}, ${plain ? "plain" : "relaxed"} build, ${runStamp()}: fastest call in us (ratio now / variant)`);
for (const [label, n, d] of shapes) {
  repackLanes(n, d);
  for (const T of Ts) {
    ex.quantize_q8_s(X, XF, n, T);
    const outOf = (v: string) => {
      ex[v](O, X, v === "lanes" ? WL : W, n, d, T);
      return new Uint32Array(memory.buffer, O, d * T).slice();
    };
    const ref = outOf("now"), lanes = outOf("lanes");
    const same = ref.every((x, i) => x === lanes[i]);
    const reps = Math.max(1, Math.round(32 / T));
    const best: Record<string, number> = Object.fromEntries(variants.map((v) => [v, Infinity]));
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const t0 = performance.now();
        for (let i = 0; i < reps; i++) ex[v](O, X, v === "lanes" ? WL : W, n, d, T);
        best[v] = Math.min(best[v], (performance.now() - t0) / reps);
      }
    }
    console.log(
      `  ${label.padEnd(9)} T=${String(T).padEnd(4)}` +
        variants.map((v) => ` ${v} ${(best[v] * 1000).toFixed(1).padStart(7)} (${(best.now / best[v]).toFixed(2)}x)`).join("") +
        `  lanes bit-identical: ${same ? "yes" : "NO"}`,
    );
  }
}
