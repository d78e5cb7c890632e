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
import { benchArgs, intFlag, intListFlag, listFlag } from "./cli.ts";
import {
  fastest,
  fillActivations,
  fillQ8_0Weight,
  finish,
  header,
  MiB,
  openStandalone,
  place,
  report,
  sameBits,
  snapshot,
  xorshift,
} from "./candidates.ts";
import { byteDotReadsUnsigned, dotAddIsExactU8S8 } from "../src/kernels/wasm.ts";

const USAGE = `Q8_0 prefill candidates for JavaScriptCore against the lanes kernels (signed, VNNI, nibble: Bun's), on one module compiled
here (relaxed SIMD); fastest call and ratio to the signed form, per shape and T, with a bit-for-bit check against matmul_q8_0.

  bun bench/q8_0-bun.bench.ts [options]        deno run -A bench/q8_0-bun.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per kernel, interleaved (default 10)
  --warmup MS       untimed calls of every kernel first, for this long each (default 300)
  --only LIST       of the other kernels and candidates, only these (natural and lanes always run)
  -h, --help        this text`;
const { values: opts } = benchArgs(
  USAGE,
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
const Ts = intListFlag(USAGE, "T", opts.T, 1, 128); // the f32 activations: 128 rows of 2048
const rounds = intFlag(USAGE, "rounds", opts.rounds), warmupMs = intFlag(USAGE, "warmup", opts.warmup, 0);

const { ex, memory, heap, relaxed } = openStandalone("bench/q8_0-bun/kernels.ts", { relaxed: true, mib: 192 });
// the natural weight and its two repacked copies, Q8_S activations, outputs, f32 activations, repack scratch, then the
// nibble planes (split_q8_n), the paired planes (split_q8_np) and Q8_SN (quantize_q8_sn)
const { W, WL, WV, X, O, XF, TMP, XN, XP, XS } = place(65536, {
  W: 28 * MiB,
  WL: 28 * MiB,
  WV: 28 * MiB,
  X: 8 * MiB,
  O: 8 * MiB,
  XF: 8 * MiB,
  TMP: MiB,
  XN: 8 * MiB,
  XP: 8 * MiB,
  XS: 8 * MiB,
}, 192 * MiB);
fillActivations(memory, XF, 2048 * 128, true);
const rand = xorshift();

const others = ["vnni", "nib", ...Object.keys(ex).filter((k) => k.startsWith("cand_")).map((k) => k.slice(5))];
const only = opts.only ? new Set(listFlag(USAGE, "only", opts.only, others)) : undefined;
// name, export, weights, activations: candidates cand_n* take the VNNI form's weights and nibble activations
const kernels = new Map<string, [string, number, number]>(
  ([
    ["natural", ["matmul_q8_0", W, X]],
    ["lanes", ["matmul_q8_0_lanes", WL, X]],
    ["vnni", ["matmul_q8_0_vnni", WV, X]],
    ["nib", ["matmul_q8_0_nib", WL, XS]],
    ...Object.keys(ex).filter((k) => k.startsWith("cand_")).map((k): [string, [string, number, number]] => [
      k.slice(5),
      [k, WV, /^cand_(n\d\d[pu]|t1)/.test(k) ? XP : XN],
    ]),
  ] as [string, [string, number, number]][]).filter(([name]) => name === "lanes" || name === "natural" || !only || only.has(name)),
);
const exact = dotAddIsExactU8S8(), unsigned = byteDotReadsUnsigned();
const shapes: [string, number, number][] = [["2048x768", 768, 2048], ["768x2048", 2048, 768], ["32000x768", 768, 32000]];
header(`dotAddIsExactU8S8 ${exact}, byteDotReadsUnsigned ${unsigned}: fastest call in us (ratio lanes / kernel)`, relaxed);
for (const [label, n, d] of shapes) {
  fillQ8_0Weight(heap, W, n, d, rand);
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
    const call = (v: string) => {
      const [fn, w, x] = kernels.get(v)!;
      ex[fn](O, x, w, n, d, T, 0, d);
    };
    call("natural");
    const ref = snapshot(memory, O, d * T);
    const timed = [...kernels.keys()].filter((name) => T > 1 ? !name.startsWith("t1") : !/^n\d/.test(name));
    const same = Object.fromEntries(timed.map((v) => [v, sameBits(memory, O, ref, () => call(v))]));
    const reps = Math.max(1, Math.round((T === 1 ? 64 : 8) / T * (2048 / d)));
    const best = fastest(timed, call, { rounds, reps, warmupMs });
    // the VNNI form is valid only where the dot-add is an exact u8 x s8 product, nib and the cand_n* planes (unsigned
    // bytes as the i16 dot's second operand) only where that dot reads it unsigned
    const mayDiffer = (v: string) => v === "vnni" ? !exact : v === "nib" || kernels.get(v)![0].startsWith("cand_") ? !unsigned : false;
    report(`${label.padEnd(9)} T=${String(T).padEnd(4)}`, timed, best, { base: "lanes", ops: 2 * n * d * T, same, mayDiffer });
  }
}
finish();
