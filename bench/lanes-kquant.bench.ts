/**
 * Q4_K in the lanes layout (assembly/lanes-kquant.ts) against the KX layout and the natural kernel, on one small
 * module compiled here with asc (bench/lanes-kquant/kernels.ts; relaxed SIMD, or plain with --plain):
 *
 *   natural   matmul_q4_k over ggml's layout (Q8_K activations)
 *   kx        matmul_q4_kx over repack_q4_kx's layout (KX Q8_K activations, quantize_q8_kx)
 *   lanes     matmul_q4_k_lanes over repack_q4_k_lanes's layout (the same KX activations)
 *   q1        matmul_q4_k_lanes_q1 (Bun's: T = 1 one quad per pass), same weights, where the module has it
 *   u8        matmul_q4_k_lanes_u8 (V8 with VNNI's: T = 1 through the dot-add), where the module has it and the engine's
 *             dot-add is an exact u8 x s8 product (dotAddIsExactU8S8, src/kernels/wasm.ts)
 *
 *   deno run -A bench/lanes-kquant.bench.ts          bun bench/lanes-kquant.bench.ts        [--T 1,16,128] [--rounds 10]
 *   [--baseline REF]: also the lanes kernel of git REF's assembly/ (the old build), same weights, same run
 *
 * Every output of kx and lanes is checked bit for bit against natural (and each row's dequantization), then each
 * variant's fastest call is printed with its ratio to natural and lanes / kx. Run both engines in the same minutes.
 *
 *   --t1: decode only, the lanes kernel as built against Bun's and V8's T = 1 kernels and the candidate steps of
 *   bench/lanes-kquant/t1.ts, with read_probe over the same bytes (bench/lanes-t1.ts)
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import process from "node:process";

import { benchArgs, intFlag, intListFlag, shapeListFlag } from "./cli.ts";
import {
  fastest,
  finish,
  header,
  MiB,
  mismatch,
  openStandalone,
  place,
  report,
  sameBits,
  snapshot,
  type Standalone,
  xorshift,
} from "./candidates.ts";
import { runT1 } from "./lanes-t1.ts";
import { dotAddIsExactU8S8 } from "../src/kernels/wasm.ts";

const USAGE = `Q4_K matmuls on one module compiled here (relaxed SIMD, or plain): natural, KX and lanes layouts, each output
checked bit for bit against natural; fastest call per variant, ratios to natural and lanes / KX, per shape and T.

  deno run -A bench/lanes-kquant.bench.ts [options]        bun bench/lanes-kquant.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per variant, interleaved (default 10; --t1: 12)
  --warmup MS       untimed calls of every variant first, for this long each (default 300; not with --t1)
  --shapes LIST     out x in shapes (default 2048x768,768x2048; --t1: 2048x768,768x2048,12288x2048, the last one past
                    the caches)
  --plain           the plain-SIMD build (and its lanes order) instead of the relaxed one
  --wasm FILE       use this compiled module instead of compiling (it must match --plain)
  --baseline REF    also time the lanes kernel of git REF's assembly/ (e.g. main), compiled the same way: "old"
                    (or of REF itself where it is a compiled .wasm file of this module)
  --t1              instead: T = 1 only, matmul_q4_k_lanes as built ("today") against other T = 1 kernels (q1: Bun's,
                    u8: V8 with VNNI's) and the candidate steps of bench/lanes-kquant/t1.ts, on one module compiled from
                    that file; outputs checked bit for bit; GB/s of weights as a fraction of read_probe's over the same
                    bytes (weights over 8 MiB read from DRAM, after a 256 MiB sweep)
  --variants LIST   with --t1: the kernels and candidates (default u8,q1,u4)
  --cold            with --t1: every shape from DRAM
  -h, --help        this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      T: { type: "string", default: "1,16,128" },
      rounds: { type: "string" },
      warmup: { type: "string", default: "300" },
      shapes: { type: "string" },
      t1: { type: "boolean" },
      variants: { type: "string", default: "u8,q1,u4" },
      cold: { type: "boolean" },
      plain: { type: "boolean" },
      wasm: { type: "string" },
      baseline: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const plain = opts.plain === true;
const shapeList = opts.shapes === undefined ? undefined : shapeListFlag(USAGE, "shapes", opts.shapes);
const roundsFlag = opts.rounds === undefined ? undefined : intFlag(USAGE, "rounds", opts.rounds);
const Ts = intListFlag(USAGE, "T", opts.T), warmupMs = intFlag(USAGE, "warmup", opts.warmup, 0);
if (opts.t1) {
  const same = runT1({
    name: "Q4_K",
    entry: "bench/lanes-kquant/t1.ts",
    blockBytes: 144,
    fill: fillWeights,
    repack: "repack_q4_k_lanes",
    today: "matmul_q4_k_lanes",
    kernels: { q1: "matmul_q4_k_lanes_q1", u8: "matmul_q4_k_lanes_u8" },
    candidateRange: true,
    prepare: "split_q8_kxn",
  }, {
    variants: opts.variants.split(",").filter((v) => v !== "u8" || plain || dotAddIsExactU8S8()),
    shapes: shapeList ?? [[2048, 768], [768, 2048], [12288, 2048]],
    rounds: roundsFlag ?? 12,
    plain,
    cold: opts.cold === true,
    wasm: opts.wasm,
  });
  if (!same) console.error("a T = 1 kernel or candidate differs from matmul_q4_k_lanes");
  process.exit(same ? 0 : 1);
}
const rounds = roundsFlag ?? 10;

const entry = "bench/lanes-kquant/kernels.ts";
const { ex, memory, heap, relaxed } = openStandalone(entry, { relaxed: !plain, mib: 128, wasm: opts.wasm });
// the baseline module gets its own memory, a copy of this one's inputs before each T's runs
let base: Standalone | undefined;
if (opts.baseline?.endsWith(".wasm")) base = openStandalone(entry, { relaxed: !plain, mib: 128, wasm: opts.baseline });
else if (opts.baseline) {
  // the old tree's assembly/ and this module's entry, from git, into a temporary folder
  const root = new URL("..", import.meta.url).pathname;
  const tree = fs.mkdtempSync(path.join(os.tmpdir(), "lanes-k-base-"));
  const tar = spawnSync("sh", ["-c", `git -C "${root}" archive "${opts.baseline}" assembly bench/lanes-kquant | tar -x -C "${tree}"`]);
  if (tar.status !== 0) throw new Error(`git archive ${opts.baseline} failed: ${tar.stderr}`);
  base = openStandalone(entry, { relaxed: !plain, mib: 128, root: tree });
  fs.rmSync(tree, { recursive: true });
}

// natural weights, KX copy, lanes copy, Q8_K and KX activations, outputs, f32 activations, scratch, dequantized rows
const { W, WK, WL, XN, XK, O, O2, XF, TMP, DQ, DQ2 } = place(65536, {
  W: 8 * MiB,
  WK: 8 * MiB,
  WL: 8 * MiB,
  XN: 8 * MiB,
  XK: 8 * MiB,
  O: 8 * MiB,
  O2: 8 * MiB,
  XF: 8 * MiB,
  TMP: MiB,
  DQ: MiB,
  DQ2: MiB,
}, 128 * MiB);

/** Random Q4_K blocks at `at`: finite normal f16 d and dmin, random scale/min bytes and nibbles. */
function fillWeights(heap: Uint8Array, at: number, bytes: number, next: () => number) {
  for (let b = 0; b < bytes; b += 144) {
    for (let i = 0; i < 144; i++) heap[at + b + i] = next() & 255;
    // d in [2^-14, 2^-7), dmin likewise: exponent 1..7, any mantissa, random sign for d only
    const half = (sign: number) => (sign << 15) | ((1 + (next() % 7)) << 10) | (next() & 0x3ff);
    const dv = half(next() & 1), dm = half(0);
    heap[at + b] = dv & 255, heap[at + b + 1] = dv >> 8;
    heap[at + b + 2] = dm & 255, heap[at + b + 3] = dm >> 8;
  }
}

const shapes = shapeList ?? [[2048, 768], [768, 2048]];
type Variant = "natural" | "kx" | "old" | "lanes" | "q1" | "u8";
const variants: Variant[] = [
  "natural",
  "kx",
  ...(base ? ["old" as const] : []),
  "lanes",
  ...(ex.matmul_q4_k_lanes_q1 ? ["q1" as const] : []),
  ...(ex.matmul_q4_k_lanes_u8 && (plain || dotAddIsExactU8S8()) ? ["u8" as const] : []),
];
header("fastest call in us (ratio natural / variant)", relaxed);
for (const [d, n] of shapes) {
  const bytes = d * (n / 256) * 144;
  fillWeights(heap, W, bytes, xorshift());
  heap.copyWithin(WK, W, W + bytes);
  heap.copyWithin(WL, W, W + bytes);
  ex.repack_q4_kx(WK, bytes / 144, TMP);
  ex.repack_q4_k_lanes(WL, n, d, TMP);
  // every row's dequantization: lanes (and KX) equal to natural
  let dqSame = true;
  for (let r = 0; r < d; r++) {
    ex.dequantize_q4_k(DQ, W + r * (bytes / d), n);
    ex.dequantize_q4_k_lanes(DQ2, WL, n, r, d);
    const a = new Uint32Array(memory.buffer, DQ, n), b = new Uint32Array(memory.buffer, DQ2, n);
    if (!a.every((x, i) => x === b[i])) dqSame = false;
  }
  if (!dqSame) mismatch(`${d}x${n} dequantize_q4_k_lanes`);
  const Tmax = Math.max(...Ts);
  const xf = new Float32Array(memory.buffer, XF, n * Tmax);
  for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37) * 2 + Math.cos(i * 0.011);
  for (const T of Ts) {
    ex.quantize_q8_k(XN, XF, n, T);
    ex.quantize_q8_kx(XK, XF, n, T);
    if (base) {
      // inputs only (from W on: each module keeps its own static data below), the lanes copy repacked by the old code
      base.heap.set(new Uint8Array(memory.buffer, W, TMP - W), W);
      base.heap.copyWithin(WL, W, W + bytes);
      base.ex.repack_q4_k_lanes(WL, n, d, TMP);
    }
    const call = (v: string, out = O, r0 = 0, r1 = d) => {
      if (v === "natural") ex.matmul_q4_k(out, XN, W, n, d, T, r0, r1);
      else if (v === "kx") ex.matmul_q4_kx(out, XK, WK, n, d, T, r0, r1);
      else if (v === "old") base!.ex.matmul_q4_k_lanes(out, XK, WL, n, d, T, r0, r1);
      else if (v === "q1") ex.matmul_q4_k_lanes_q1(out, XK, WL, n, d, T, r0, r1);
      else if (v === "u8") ex.matmul_q4_k_lanes_u8(out, XK, WL, n, d, T, r0, r1);
      else ex.matmul_q4_k_lanes(out, XK, WL, n, d, T, r0, r1);
    };
    call("natural");
    const ref = snapshot(memory, O, d * T);
    const same = Object.fromEntries(variants.map((v) => [v, sameBits(v === "old" ? base!.memory : memory, O, ref, () => call(v))]));
    // lanes over split row ranges (quad boundaries, the last range ending at d)
    const cut = [0, 4 * Math.floor(d / 12), 4 * Math.floor(d / 5), d];
    const split = sameBits(memory, O2, ref, () => {
      for (let i = 0; i + 1 < cut.length; i++) call("lanes", O2, cut[i], cut[i + 1]);
    });
    if (!split) mismatch(`${d}x${n} T=${T} lanes over split row ranges`);
    const best = fastest(variants, (v) => call(v), { rounds, reps: Math.max(1, Math.round(32 / T)), warmupMs });
    report(`${`${d}x${n}`.padEnd(9)} T=${String(T).padEnd(4)}`, variants, best, {
      base: "natural",
      ops: 2 * n * d * T,
      same,
      extra: `  lanes/kx ${(best.kx / best.lanes).toFixed(2)}x` + (base ? `  lanes/old ${(best.old / best.lanes).toFixed(2)}x` : "") +
        (variants.includes("q1") ? `  q1/old ${((base ? best.old : best.lanes) / best.q1).toFixed(2)}x` : "") +
        (variants.includes("u8") ? `  u8/old ${((base ? best.old : best.lanes) / best.u8).toFixed(2)}x` : "") +
        `  split ${split ? "same" : "DIFFERS"}, dequantize ${dqSame ? "same" : "DIFFERS"}`,
    });
  }
}
finish();
