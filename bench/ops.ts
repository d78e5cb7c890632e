/**
 * The kvasm/ops attention variants against dense softmax attention of the same size, by sequence length:
 * each kernel's time as a ratio to the dense kernel's (attention_window over all T keys) measured in the
 * same run, and the working memory each needs beyond its inputs and output (formula and value).
 * One head of width D = 64 (queries, keys, values), one thread, the kernels the operators run (no copying
 * in and out). AFT's learned projections (4 T D^2) are left out on both sides: this is the mixing step.
 *
 *   deno run -A bench/ops.ts [--max 4096] [--help]      bun bench/ops.ts
 */
import { instantiateKernels, pickVariant } from "../src/kernels/wasm.ts";
import { RESERVED } from "../src/memory/arena.ts";
import { benchArgs, intFlag, runStamp, runtime } from "./cli.ts";

const USAGE = `The kvasm/ops attention variants against dense softmax attention of the same size, by sequence length: time
ratios measured in the same run and the working memory each needs (one head of 64, one thread).

  deno run -A bench/ops.ts [--max T]        bun bench/ops.ts [--max T]

  --max T        the longest sequence length (default 4096)
  -h, --help     this text`;
const { values: opts } = benchArgs(USAGE, { options: { max: { type: "string", default: "4096" }, help: { type: "boolean", short: "h" } } });
const maxT = intFlag(USAGE, "max", opts.max, 128); // the shortest length measured
const { cpus } = await import("node:os");

const D = 64, WDIM = 64, S = 64, LK = 128, TOPK = 32, WIN = 64;
const lengths = [128, 256, 512, 1024, 2048, 4096].filter((t) => t <= maxT);
const Tmax = lengths.at(-1)!;

const floats = 6 * Tmax * D + 2 * Tmax * WDIM + Tmax * Tmax + 2 * LK * Tmax + 4 * LK * D + 4 * Tmax + 1024;
const pages = Math.ceil((RESERVED + floats * 4 + 64 * 16) / 65536);
const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
const relaxed = pickVariant({ shared: false }).startsWith("relaxed");
const k = await instantiateKernels(mem, pickVariant({ shared: false }));
let top = RESERVED;
const alloc = (n: number) => {
  const p = top;
  top = Math.ceil((top + n * 4) / 64) * 64;
  return p;
};
const fill = (p: number, n: number, seed: number, scale = 1) => {
  const a = new Float32Array(mem.buffer, p, n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
};
const q = alloc(Tmax * D), kk = alloc(Tmax * D), v = alloc(Tmax * D), out = alloc(Tmax * D);
const ek = alloc(Tmax * D), ekv = alloc(Tmax * D);
const u = alloc(Tmax * WDIM), ub = alloc(Tmax * WDIM), wbias = alloc(Tmax * Tmax);
const E = alloc(LK * Tmax), F = alloc(LK * Tmax), bE = alloc(LK), bF = alloc(LK), kp = alloc(LK * D), vp = alloc(LK * D);
const sc = alloc(Tmax), den = alloc(D), wrow = alloc(Tmax), state = alloc(3 * D), sel = alloc(2 * TOPK);
fill(q, Tmax * D, 1);
fill(kk, Tmax * D, 2);
fill(v, Tmax * D, 3);
fill(u, Tmax * WDIM, 4, 0.3);
fill(ub, Tmax * WDIM, 5, 0.3);
fill(wbias, Tmax * Tmax, 6, 0.5);
fill(E, LK * Tmax, 7, 0.05);
fill(F, LK * Tmax, 8, 0.05);

/**
 * Rounds in which every operator runs once, in turn, at least 3 rounds or 1.5 s; each operator's fastest
 * round counts. Interleaving keeps a burst of other load on the host from landing on one operator only.
 */
function timeAll(fns: Array<() => void>): number[] {
  const best = fns.map(() => Infinity);
  const start = performance.now();
  for (let round = 0; round < 3 || performance.now() - start < 1500; round++) {
    fns.forEach((fn, i) => {
      const t0 = performance.now();
      fn();
      best[i] = Math.min(best[i], performance.now() - t0);
    });
    if (performance.now() - start > 20_000) break;
  }
  return best;
}

type Op = { name: string; run: (T: number) => void; memory: string; mem: (T: number) => number; timeCost: string };
const operators: Op[] = [
  {
    name: "dense softmax",
    run: (T) => k.attention_window(out, q, kk, v, T, T, D, D, -1, 0, sc),
    timeCost: "T^2 2D",
    memory: "T (one score row; T^2 if materialized)",
    mem: (T) => T,
  },
  {
    name: "AFT-full",
    run: (T) => {
      k.aft_keys(ek, ekv, kk, v, T, D);
      k.aft_mix(out, q, ek, ekv, T, D, 0, 0, u, ub, WDIM, 0, 0, wrow, den);
    },
    timeCost: `T^2 (2D + w_dim=${WDIM})`,
    memory: "2TD + T + D (bias rows on the fly)",
    mem: (T) => 2 * T * D + T + D,
  },
  {
    name: `AFT-local s=${S}`,
    run: (T) => {
      k.aft_keys(ek, ekv, kk, v, T, D);
      k.aft_mix(out, q, ek, ekv, T, D, wbias, T, 0, 0, 0, S, 0, wrow, den);
    },
    timeCost: "T (2s-1) 2D",
    memory: "2TD + D",
    mem: (T) => 2 * T * D + D,
  },
  {
    name: "AFT-simple",
    run: (T) => k.aft_simple(out, q, kk, v, T, D, state),
    timeCost: "3 T D",
    memory: "3D",
    mem: () => 3 * D,
  },
  {
    name: `Linformer k=${LK}`,
    run: (T) => {
      k.linformer_project(kp, E, bE, kk, T, LK, D, T);
      k.linformer_project(vp, F, bF, v, T, LK, D, T);
      k.attention_window(out, q, kp, vp, T, LK, D, D, -1, 0, sc);
    },
    timeCost: "2kTD + Tk 2D",
    memory: "2kD + k",
    mem: () => 2 * LK * D + LK,
  },
  {
    name: `sparse top-k k=${TOPK}`,
    run: (T) => k.sparse_topk_attention(out, q, kk, v, T, T, D, D, TOPK, sel),
    timeCost: "T^2 D + Tk D",
    memory: "2k per row",
    mem: () => 2 * TOPK,
  },
  {
    name: `sliding window w=${WIN}`,
    run: (T) => k.attention_window(out, q, kk, v, T, T, D, D, WIN, 0, sc),
    timeCost: "T (2w+1) 2D",
    memory: "2w+1 (of a T-float row)",
    mem: (T) => Math.min(T, 2 * WIN + 1),
  },
];

const ms: number[][] = operators.map(() => []);
for (const T of lengths) timeAll(operators.map((op) => () => op.run(T))).forEach((t, i) => ms[i].push(t));

const pad = (s: string, n: number) => s.padEnd(n);
const lines: string[] = [];
lines.push(`# kvasm/ops vs dense softmax attention, D=${D}, one thread, ${relaxed ? "relaxed SIMD" : "SIMD"}, ${runtime}`);
lines.push(
  `# ${runStamp()}, ${cpus()[0]?.model ?? "?"} x${cpus().length}; fastest of >= 3 interleaved rounds`,
);
lines.push(`${pad("operator", 22)}${lengths.map((T) => pad(`T=${T}`, 18)).join("")}${pad("time", 22)}memory (floats)`);
operators.forEach((op, i) => {
  const cells = lengths.map((_T, j) => {
    const r = ms[i][j] / ms[0][j];
    return pad(i === 0 ? `${ms[i][j].toFixed(2)} ms` : `${r >= 0.1 ? r.toFixed(2) : r.toFixed(3)}x`, 18);
  });
  lines.push(`${pad(op.name, 22)}${cells.join("")}${pad(op.timeCost, 22)}${op.memory}, ${op.mem(Tmax)} at T=${Tmax}`);
});

// Decode: one new token at position T. Dense attention reads the T cached keys and values (its KV cache grows as
// 2TD floats); the AFT decoders' steps do not depend on T (state 3D, and 2sD for the local ring).
new Float32Array(mem.buffer, state, D).fill(-Infinity);
const REPS = 64;
const decoders: Array<{ name: string; run: (T: number) => void; memory: string }> = [
  { name: "dense, KV cache", run: (T) => k.attention_window(out, q, kk, v, 1, T, D, D, -1, 0, sc), memory: "2TD (the KV cache)" },
  { name: "aftSimpleDecoder", run: () => k.aft_simple_step(out, q, kk, v, 1, D, state), memory: "3D" },
  {
    name: `aftLocalDecoder s=${S}`,
    run: (T) => k.aft_local_step(out, q, kk, v, ek, ekv, wbias, T - 1, S, D, wrow, den),
    memory: "2sD",
  },
];
const us: number[][] = decoders.map(() => []);
for (const T of lengths) {
  timeAll(decoders.map((d) => () => {
    for (let r = 0; r < REPS; r++) d.run(T);
  })).forEach((t, i) => us[i].push((t / REPS) * 1000));
}
lines.push("");
lines.push(`${pad("decode one token at T", 22)}${lengths.map((T) => pad(`T=${T}`, 20)).join("")}${pad("", 4)}state (floats)`);
decoders.forEach((d, i) => {
  const cells = lengths.map((_, j) => pad(`${us[i][j].toFixed(2)} us${i ? ` (${(us[i][j] / us[0][j]).toFixed(3)}x)` : ""}`, 20));
  lines.push(`${pad(d.name, 22)}${cells.join("")}${pad("", 4)}${d.memory}`);
});
console.log(lines.join("\n"));
