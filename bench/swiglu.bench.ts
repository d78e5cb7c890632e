/**
 * SwiGLU as built (assembly/f32.ts swiglu: ggml's expf on pairs of lanes kept in f64) against bench/swiglu/reference.ts
 * (the same through fused.ts's ggmlExpf4, as built before), on one module compiled here (bench/swiglu/kernels.ts, a few
 * seconds): every output checked bit for bit over random gates of every magnitude, the special values and random bit
 * patterns; then the fastest call of interleaved rounds at prefill's and decode's row counts.
 *
 *   deno run -A bench/swiglu.bench.ts [--rows 1,128] [--rounds 20] [--relaxed]        bun bench/swiglu.bench.ts ...
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { benchArgs, intFlag, intListFlag, runStamp } from "./cli.ts";
import { compileStandalone, removeStandalone } from "./standalone.ts";

const USAGE = `SwiGLU as built against bench/swiglu/reference.ts (through ggmlExpf4): bits compared, fastest call of interleaved rounds.

  deno run -A bench/swiglu.bench.ts [options]        bun bench/swiglu.bench.ts [options]

  --rows LIST   rows of 2048, at most 128 (default 1,128)
  --rounds N    timed rounds per variant, interleaved (default 20)
  --relaxed     compile with relaxed SIMD (the kernels here use none; the build flag as the relaxed builds have it)
  -h, --help    this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      rows: { type: "string", default: "1,128" },
      rounds: { type: "string", default: "20" },
      relaxed: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  },
);
const maxRows = 128;
const rowsList = intListFlag(USAGE, "rows", opts.rows, 1, maxRows), rounds = intFlag(USAGE, "rounds", opts.rounds);
const root = new URL("..", import.meta.url).pathname;
const wasmFile = compileStandalone(path.join(root, "bench/swiglu/kernels.ts"), opts.relaxed === true, "swiglu-");
type Fn = (out: number, gate: number, up: number, n: number, T: number) => void;
const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
const ex = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(wasmFile)), { env: { memory, abort() {} } }).exports as Record<
  string,
  Fn
>;
removeStandalone(wasmFile);

const n = 2048, MiB = 1 << 20;
const G = 64 * 1024, U = G + 2 * MiB, O1 = U + 2 * MiB, O2 = O1 + 2 * MiB;
const f = new Float32Array(memory.buffer), u32 = new Uint32Array(memory.buffer);
let s = 12345;
const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
// gates of every magnitude (2^-30 .. 2^10, either sign), the special values, and random bit patterns (NaN, inf, subnormals)
const specials = [
  0,
  -0,
  1,
  -1,
  87,
  -87,
  88.5,
  -88.5,
  89,
  -89,
  103,
  -104,
  192,
  -192,
  200,
  -200,
  1e30,
  -1e30,
  Infinity,
  -Infinity,
  1e-40,
  -1e-40,
];
for (let i = 0; i < maxRows * n; i++) {
  const k = i % 7;
  if (i < specials.length) f[G / 4 + i] = specials[i];
  else if (k === 6) u32[G / 4 + i] = (rnd() * 2 ** 32) >>> 0;
  else f[G / 4 + i] = (rnd() < 0.5 ? -1 : 1) * 2 ** (rnd() * 40 - 30) * (1 + rnd());
  f[U / 4 + i] = rnd() * 4 - 2;
}
const engine = "Bun" in globalThis ? "bun" : "deno";
ex.swiglu(O1, G, U, n, maxRows);
ex.swiglu_ref(O2, G, U, n, maxRows);
let diff = 0, nan = 0;
for (let i = 0; i < maxRows * n; i++) {
  const a = u32[O1 / 4 + i], b = u32[O2 / 4 + i];
  if (a !== b) {
    if (Number.isNaN(f[O1 / 4 + i]) && Number.isNaN(f[O2 / 4 + i])) nan++;
    else if (diff++ < 5) console.log(`differs at ${i}: gate ${f[G / 4 + i]}: ${f[O1 / 4 + i]} vs ${f[O2 / 4 + i]}`);
  }
}
console.log(
  `# ${engine}, ${opts.relaxed ? "relaxed" : "plain"} SIMD, ${runStamp()}: ${maxRows * n} outputs, ${diff} differ` +
    (nan ? ` (and ${nan} NaNs of other payloads)` : "") + ` (${specials.length} special gates, a seventh random bit patterns)`,
);
for (let r = 0; r < 30; r++) ex.swiglu(O1, G, U, n, 16), ex.swiglu_ref(O2, G, U, n, 16); // both tiered up
console.log("| rows of 2048 | reference µs | as built µs | reference / as built |");
console.log("|---|---|---|---|");
for (const T of rowsList) {
  const best = [Infinity, Infinity];
  for (let r = 0; r < rounds; r++) {
    [ex.swiglu_ref, ex.swiglu].forEach((fn, k) => {
      const t = performance.now();
      fn(k ? O2 : O1, G, U, n, T);
      best[k] = Math.min(best[k], performance.now() - t);
    });
  }
  console.log(`| ${T} | ${(1000 * best[0]).toFixed(1)} | ${(1000 * best[1]).toFixed(1)} | ${(best[0] / best[1]).toFixed(2)}x |`);
}
