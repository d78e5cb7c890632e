/**
 * Q4_0 lanes-layout tiles for T > 1, on one module compiled here (bench/q4_0-tile/kernels.ts, relaxed SIMD, a few
 * seconds): today's matmul_q4_0 (ggml's layout) and matmul_q4_0_lanes against candidate tiles on the same repacked
 * weights; every output checked bit for bit against matmul_q4_0; fastest call of interleaved rounds.
 *
 *   deno run -A bench/q4_0-tile.bench.ts          bun bench/q4_0-tile.bench.ts        [--T 1,16,128] [--rounds 8]
 */
import { benchArgs, intFlag, intListFlag, shapeListFlag, usageError } from "./cli.ts";
import {
  fastest,
  fillActivations,
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

const USAGE = `Q4_0 T > 1 tiles in the lanes layout on one module compiled here (relaxed SIMD): matmul_q4_0 (ggml's layout),
matmul_q4_0_lanes and the candidates in bench/q4_0-tile/kernels.ts; outputs checked bit for bit; fastest call and
ratio to matmul_q4_0_lanes, per shape and T.

  deno run -A bench/q4_0-tile.bench.ts [options]        bun bench/q4_0-tile.bench.ts [options]

  --T LIST          token rows (default 1,16,128)
  --rounds N        timed rounds per variant, interleaved (default 8)
  --warmup MS       untimed calls of every variant first, for this long each (default 300)
  --variants LIST   candidates (default g1,bo,t2,t6,t8: g* at T = 1, the tiles at T > 1; r* only where T % 4 = 0).
                    2026-12-05: gd1, gd1c, gd4, d1, d2, d2c, d4, d4c (i32 dot-add), gz1, z2, z4 (shift counts
                    from n), go1, o2, o4 (offsets in the loads), gs1, s2, s4 (splats by shuffles), r4 (four
                    activation rows interleaved, interleave_q8_s4, rotated weights); decode session: gx1, gx4
                    (pre-splatted activations, splat_q8_x), gm1, gm2 (g1 with multiplies for the scales' and Σa's
                    constant shifts: gm2 is Bun's T = 1 step now), gm3 (and the nibble shift count from n), gm4
                    (V8's four-quad step with gm2's multiplies), gq1 (high nibbles by q15mulr_sat_s),
                    gm2b (gm2 over two far-apart bands), gm5 (high nibbles by i8x16.shr_u); session 10: gr1
                    (gq1 with the relaxed q15mulr: one pmulhrsw)
  --shapes LIST     out x in shapes (default 2048x768,768x2048)
  -h, --help        this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      T: { type: "string", default: "1,16,128" },
      rounds: { type: "string", default: "8" },
      warmup: { type: "string", default: "300" },
      variants: { type: "string", default: "g1,bo,t2,t6,t8" },
      shapes: { type: "string", default: "2048x768,768x2048" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const Ts = intListFlag(USAGE, "T", opts.T, 1, 128); // the f32 activations: 128 rows of 2048
const rounds = intFlag(USAGE, "rounds", opts.rounds), warmupMs = intFlag(USAGE, "warmup", opts.warmup, 0);
const shapes = shapeListFlag(USAGE, "shapes", opts.shapes);
for (const [d, n] of shapes) {
  // whole Q4_0 blocks a row, at most 2048 inputs (the activations), weights within 16 MiB and T-row outputs within 8
  if (n % 32 || n > 2048 || (n / 32) * 18 * d > 16 << 20 || 4 * d * Math.max(...Ts) > 8 << 20) {
    usageError(`--shapes: ${d}x${n}: IN must be a multiple of 32 up to 2048, the weights at most 16 MiB, the outputs 8`, USAGE);
  }
}

const { ex, memory, heap, relaxed } = openStandalone("bench/q4_0-tile/kernels.ts", { relaxed: true, mib: 128 });
// natural and repacked weights, Q8_S activations, outputs, f32 activations, repack scratch; four activation rows
// interleaved (interleave_q8_s4) for the r* variants, pre-splatted activations (splat_q8_x) for the gx* variants
const { W, WL, X, O, XF, TMP, X4, XX } = place(64 * 1024, {
  W: 16 * MiB,
  WL: 16 * MiB,
  X: 8 * MiB,
  O: 8 * MiB,
  XF: 8 * MiB,
  TMP: MiB,
  X4: 8 * MiB,
  XX: 32 * MiB,
}, 128 * MiB);
const rnd = xorshift();
fillActivations(memory, XF, 2048 * 128);

const candidates = opts.variants.split(",");
for (const v of candidates) {
  if (typeof ex[v] !== "function") usageError(`--variants: no candidate ${v} in bench/q4_0-tile/kernels.ts`, USAGE);
}
const call = (v: string, n: number, d: number, T: number) => {
  if (v === "ggml") ex.matmul_q4_0(O, X, W, n, d, T, 0, d);
  else if (v === "lanes") ex.matmul_q4_0_lanes(O, X, WL, n, d, T, 0, d);
  else if (v.startsWith("r")) ex[v](O, X4, WL, n, d, T);
  else if (v.startsWith("gx")) ex[v](O, XX, WL, n, d, T);
  else ex[v](O, X, WL, n, d, T);
};
header("fastest call in us (ratio lanes / variant)", relaxed);
for (const [d, n] of shapes) {
  const shape = `${d}x${n}`;
  const bytes = (n / 32) * 18 * d;
  for (let i = W; i < W + bytes; i++) heap[i] = rnd() & 0xff;
  const dv = new DataView(memory.buffer);
  for (let p = W; p < W + bytes; p += 18) dv.setUint16(p, 0x1400 + (rnd() & 0x0fff), true);
  heap.copyWithin(WL, W, W + bytes);
  ex.repack_q4_0_lanes(WL, n, d, TMP);
  for (const T of Ts) {
    // g*: one-row steps (T = 1 only); the others: tiles (T > 1 only)
    const variants = ["ggml", "lanes", ...candidates.filter((v) => v.startsWith("g") === (T === 1) && (!v.startsWith("r") || T % 4 === 0))];
    ex.quantize_q8_s(X, XF, n, T);
    if (T % 4 === 0) ex.interleave_q8_s4(X4, X, n, T);
    ex.splat_q8_x(XX, X, n, T);
    call("ggml", n, d, T);
    const ref = snapshot(memory, O, d * T);
    const same = Object.fromEntries(variants.map((v) => [v, sameBits(memory, O, ref, () => call(v, n, d, T))]));
    const best = fastest(variants, (v) => call(v, n, d, T), {
      rounds,
      reps: Math.max(1, Math.round(64 / T)),
      warmupMs,
    });
    report(`${shape.padEnd(9)} T=${String(T).padEnd(4)}`, variants, best, { base: "lanes", ops: 2 * n * d * T, same });
  }
}
finish();
