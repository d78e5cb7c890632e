/**
 * Q8_0 prefill candidates for JavaScriptCore (Bun) against today's kernels, in one process: bench/q8_0-bun/kernels.ts
 * (matmul_q8_0, matmul_q8_0_lanes, matmul_q8_0_vnni, matmul_q8_0_nib and the cand_* tiles), compiled here with asc
 * (relaxed SIMD; a few seconds), each form's weights repacked from the same natural copy, each kernel's activations in
 * its own format from the same f32 rows.
 *
 *   natural  matmul_q8_0 (ggml's layout, Q8_S)
 *   lanes    matmul_q8_0_lanes (signed bytes, Q8_S: what Bun ran before)
 *   vnni     matmul_q8_0_vnni (unsigned bytes; valid only where dotAddIsExactU8S8(): "NOT bit-identical" in Bun)
 *   nib      matmul_q8_0_nib (signed bytes against Q8_SN's nibble planes: Bun's form)
 *   n<q><r>… candidates: nibble planes in tiles of q quads x r rows (T > 1); t1n<q>: T = 1 through the planes
 *
 *   bun bench/q8_0-bun.bench.ts [--T 1,16,128] [--rounds 10] [--only nib,n22pc16]     (deno run -A ... likewise)
 *
 * Prints each kernel's fastest call and its ratio to `lanes` per shape and T, and whether its outputs are bit for
 * bit matmul_q8_0's (the weights hold -128 and 127 bytes, the activations ±127).
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { benchArgs } from "./cli.ts";
import { compileStandalone, removeStandalone } from "./standalone.ts";
import { byteDotReadsUnsigned, dotAddIsExactU8S8 } from "../src/kernels/wasm.ts";

const { values: opts } = benchArgs(
  `Q8_0 prefill candidates for JavaScriptCore against the lanes kernels (signed, VNNI, nibble: Bun's), on one module compiled
here (relaxed SIMD); fastest call and ratio to the signed form, per shape and T, with a bit-for-bit check against matmul_q8_0.

  bun bench/q8_0-bun.bench.ts [options]        deno run -A bench/q8_0-bun.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per kernel, interleaved (default 10)
  --warmup MS       untimed calls of every kernel first, for this long (default 300)
  --only LIST       of the other kernels and candidates, only these (natural and lanes always run)
  -h, --help        this text`,
  {
    options: {
      T: { type: "string", default: "1,16,128" },
      rounds: { type: "string", default: "10" },
      warmup: { type: "string", default: "300" },
      only: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const Ts = opts.T.split(",").map(Number);
const rounds = Number(opts.rounds);
const engine = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

const root = new URL("..", import.meta.url).pathname;
const wasmFile = compileStandalone(path.join(root, "bench/q8_0-bun/kernels.ts"), true, "q8-bun-");

type Matmul = (out: number, xq: number, w: number, n: number, d: number, T: number, r0: number, r1: number) => void;
type Repack = (w: number, n: number, d: number, tmp: number) => void;
const memory = new WebAssembly.Memory({ initial: 3072 }); // 192 MiB
const ex = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(wasmFile)), { env: { memory } }).exports as Record<
  string,
  Matmul & Repack & ((out: number, x: number, n: number, T: number) => void)
>;
removeStandalone(wasmFile);

// the natural weight and its two repacked copies, Q8_S activations, outputs, f32 activations, repack scratch
const MB = 1 << 20;
const W = 65536,
  WL = W + 28 * MB,
  WV = WL + 28 * MB,
  X = WV + 28 * MB,
  O = X + 8 * MB,
  XF = O + 8 * MB,
  TMP = XF + 8 * MB,
  XN = TMP + MB,
  XP = XN + 8 * MB,
  XS = XP + 8 * MB;
const heap = new Uint8Array(memory.buffer);
let s = 12345;
const rand = () => (s ^= s << 13, s ^= s >>> 17, s ^= s << 5, s >>> 0);
const xf = new Float32Array(memory.buffer, XF, 2048 * 128);
for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2 * (i % 97 === 0 ? 40 : 1); // some ±127 after quantizing

/** A d x n natural Q8_0 weight at W: f16 scales in [2^-8, 2^-6), bytes anywhere in -128..127 (a tenth at the extremes). */
function fillWeight(n: number, d: number) {
  const nb = n / 32;
  for (let r = 0; r < d; r++) {
    for (let b = 0; b < nb; b++) {
      const p = W + (r * nb + b) * 34;
      const h = 0x1c00 + (rand() & 0x7ff);
      heap[p] = h & 255, heap[p + 1] = h >> 8;
      for (let k = 0; k < 32; k++) {
        const v = rand();
        heap[p + 2 + k] = v % 10 === 0 ? (v & 32 ? 0x81 : 0x7f) : (v & 255) === 0x80 ? 0x81 : v & 255; // ggml never writes -128
      }
    }
  }
}

const only = opts.only ? new Set(opts.only.split(",")) : undefined;
const kernels: [string, string, number, number][] = ([
  ["natural", "matmul_q8_0", W, X],
  ["lanes", "matmul_q8_0_lanes", WL, X],
  ["vnni", "matmul_q8_0_vnni", WV, X],
  ["nib", "matmul_q8_0_nib", WL, XS],
  // candidates: cand_n* take the VNNI form's weights and nibble activations (split_q8_n)
  ...Object.keys(ex).filter((k) => k.startsWith("cand_")).map((
    k,
  ): [string, string, number, number] => [k.slice(5), k, WV, /^cand_(n\d\d[pu]|t1)/.test(k) ? XP : XN]),
] as [string, string, number, number][]).filter(([name]) => name === "lanes" || name === "natural" || !only || only.has(name));
const exact = dotAddIsExactU8S8();
const shapes: [string, number, number][] = [["2048x768", 768, 2048], ["768x2048", 2048, 768], ["32000x768", 768, 32000]];
console.log(
  `${engine}, relaxed build, dotAddIsExactU8S8 ${exact}, byteDotReadsUnsigned ${byteDotReadsUnsigned()}, ${new Date().toISOString()}: ` +
    `fastest call in us (ratio lanes / kernel)`,
);
for (const [label, n, d] of shapes) {
  fillWeight(n, d);
  const bytes = d * (n / 32) * 34;
  heap.copyWithin(WL, W, W + bytes);
  heap.copyWithin(WV, W, W + bytes);
  ex.repack_q8_0_lanes(WL, n, d, TMP);
  ex.repack_q8_0_vnni(WV, n, d, TMP);
  for (const T of Ts) {
    if (label === "32000x768" && T > 16) continue; // the classifier runs on the last prompt row only
    ex.quantize_q8_s(X, XF, n, T);
    ex.split_q8_n(XN, X, n, T);
    ex.split_q8_np(XP, X, n, T);
    ex.quantize_q8_sn(XS, XF, n, T);
    const outOf = (fn: string, w: number, x: number) => {
      ex[fn](O, x, w, n, d, T, 0, d);
      return new Uint32Array(memory.buffer, O, d * T).slice();
    };
    const ref = outOf("matmul_q8_0", W, X);
    const timed = kernels.filter(([name]) => T > 1 ? !name.startsWith("t1") : !/^n\d/.test(name));
    const same = Object.fromEntries(timed.map(([name, fn, w, x]) => [name, outOf(fn, w, x).every((v, i) => v === ref[i])]));
    const reps = Math.max(1, Math.round((T === 1 ? 64 : 8) / T * (2048 / d)));
    const best: Record<string, number> = Object.fromEntries(timed.map(([name]) => [name, Infinity]));
    const until = performance.now() + Number(opts.warmup);
    while (performance.now() < until) for (const [, fn, w, x] of timed) ex[fn](O, x, w, n, d, T, 0, d);
    for (let r = 0; r < rounds; r++) {
      for (const [name, fn, w, x] of timed) {
        const t0 = performance.now();
        for (let i = 0; i < reps; i++) ex[fn](O, x, w, n, d, T, 0, d);
        best[name] = Math.min(best[name], (performance.now() - t0) / reps);
      }
    }
    const gops = (name: string) => (2 * n * d * T / best[name] / 1e6).toFixed(0);
    console.log(
      `  ${label.padEnd(9)} T=${String(T).padEnd(4)}` +
        timed.map(([name]) =>
          ` ${name} ${(best[name] * 1000).toFixed(1).padStart(7)} (${(best.lanes / best[name]).toFixed(2)}x, ${gops(name)} GOP/s${
            same[name] ? "" : ", NOT bit-identical"
          })`
        ).join(""),
    );
  }
}
