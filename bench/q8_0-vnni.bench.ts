/**
 * Q8_0's lanes kernels in both forms, new against old in one process: bench/q8_0-vnni/kernels.ts (the kernels of
 * assembly/lanes-q8_0.ts and assembly/lanes-q8_0-vnni.ts with matmul_q8_0), compiled here with asc (relaxed SIMD,
 * or plain with --plain; a few seconds), each form's weights repacked from the same natural copy.
 *
 *   natural  matmul_q8_0 (ggml's layout)
 *   lanes    matmul_q8_0_lanes (signed bytes: what Bun and runtimes without an exact dot-add run)
 *   vnni     matmul_q8_0_vnni (unsigned bytes, the relaxed dot-add; only valid where dotAddIsExactU8S8() holds)
 *   rows     candidate: every T through the T = 1 pass, one activation row after another (T > 1 only)
 *   s12      candidate for JavaScriptCore: the signed form in tiles of one quad x two activation rows (T > 1 only)
 *
 *   deno run -A bench/q8_0-vnni.bench.ts          bun bench/q8_0-vnni.bench.ts        [--T 1,16,128] [--rounds 10]
 *
 * Prints each kernel's fastest call and its ratio to `lanes` per shape and T, and whether its outputs are bit for
 * bit matmul_q8_0's (the weights hold -128 and 127 bytes, the activations ±127).
 */
import { benchArgs, intFlag, intListFlag } from "./cli.ts";
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
import { dotAddIsExactU8S8 } from "../src/kernels/wasm.ts";

const USAGE = `Q8_0 lanes kernels, signed (matmul_q8_0_lanes) and VNNI (matmul_q8_0_vnni) forms, on one module compiled here;
fastest call and ratio to the signed form, per shape and T, with a bit-for-bit check against matmul_q8_0.

  deno run -A bench/q8_0-vnni.bench.ts [options]        bun bench/q8_0-vnni.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per kernel, interleaved (default 10)
  --warmup MS       untimed calls of every kernel first, for this long each (default 300)
  --plain           the plain-SIMD build instead of the relaxed one
  -h, --help        this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      T: { type: "string", default: "1,16,128" },
      rounds: { type: "string", default: "10" },
      warmup: { type: "string", default: "300" },
      plain: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const Ts = intListFlag(USAGE, "T", opts.T, 1, 128); // the f32 activations: 128 rows of 2048
const rounds = intFlag(USAGE, "rounds", opts.rounds), warmupMs = intFlag(USAGE, "warmup", opts.warmup, 0);

const { ex, memory, heap, relaxed } = openStandalone("bench/q8_0-vnni/kernels.ts", { relaxed: opts.plain !== true, mib: 128 });
// the natural weight and its two repacked copies, Q8_S activations, outputs, f32 activations, repack scratch
const { W, WL, WV, X, O, XF, TMP } = place(65536, {
  W: 28 * MiB,
  WL: 28 * MiB,
  WV: 28 * MiB,
  X: 8 * MiB,
  O: 8 * MiB,
  XF: 8 * MiB,
  TMP: MiB,
}, 128 * MiB);
fillActivations(memory, XF, 2048 * 128, true);
const rand = xorshift();

// name, export, weights: candidates cand_s* take the signed form's weights, the others the VNNI form's
const kernels = new Map<string, [string, number]>([
  ["natural", ["matmul_q8_0", W]],
  ["lanes", ["matmul_q8_0_lanes", WL]],
  ["vnni", ["matmul_q8_0_vnni", WV]],
  ...Object.keys(ex).filter((k) => k.startsWith("cand_")).map((
    k,
  ): [string, [string, number]] => [k.slice(5), [k, k.startsWith("cand_s") ? WL : WV]]),
]);
const exact = dotAddIsExactU8S8();
const shapes: [string, number, number][] = [["2048x768", 768, 2048], ["768x2048", 2048, 768], ["32000x768", 768, 32000]];
header(`dotAddIsExactU8S8 ${exact}: fastest call in us (ratio lanes / kernel)`, relaxed);
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
    const call = (v: string) => {
      const [fn, w] = kernels.get(v)!;
      ex[fn](O, X, w, n, d, T, 0, d);
    };
    call("natural");
    const ref = snapshot(memory, O, d * T);
    const timed = [...kernels.keys()].filter((name) => T > 1 || !name.startsWith("rows") && !name.startsWith("s1"));
    const same = Object.fromEntries(timed.map((v) => [v, sameBits(memory, O, ref, () => call(v))]));
    const reps = Math.max(1, Math.round((T === 1 ? 64 : 8) / T * (2048 / d)));
    const best = fastest(timed, call, { rounds, reps, warmupMs });
    // the VNNI form is valid only where the dot-add is an exact u8 x s8 product (its outputs differ in Bun)
    const mayDiffer = (v: string) => !exact && relaxed && kernels.get(v)![1] === WV;
    report(`${label.padEnd(9)} T=${String(T).padEnd(4)}`, timed, best, { base: "lanes", ops: 2 * n * d * T, same, mayDiffer });
  }
}
finish();
