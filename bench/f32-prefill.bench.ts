/**
 * matmul_f32 at prefill's row counts, one thread: this build's kernel against another build's (--baseline DIR, an earlier
 * tree's build/) in the same process, calls interleaved, fastest of --reps kept (load only slows a call); GFLOP/s and
 * the ratio, and a check that both builds give the same bits (every row's dot keeps one order in every tile).
 *
 *   deno run -A bench/f32-prefill.bench.ts --baseline DIR [--T 4,16,128] [--reps 12] [--plain] [--help]
 *   bun bench/f32-prefill.bench.ts ...
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { benchArgs, intFlag, intListFlag, runStamp, usageError } from "./cli.ts";

const USAGE = `matmul_f32 at prefill's row counts, one thread: this build against --baseline DIR's build, same process, fastest call.

  deno run -A bench/f32-prefill.bench.ts [options]        bun bench/f32-prefill.bench.ts [options]

  --baseline DIR   a tree whose build/ holds the earlier kernels (required)
  --T LIST         activation rows (default 4,16,128)
  --reps N         interleaved calls per build and shape, fastest kept (default 12)
  --plain          the plain-SIMD builds instead of the relaxed ones
  -h, --help       this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      baseline: { type: "string" },
      T: { type: "string", default: "4,16,128" },
      reps: { type: "string", default: "12" },
      plain: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  },
);
if (!opts.baseline) usageError("--baseline DIR is required", USAGE);
const Ts = intListFlag(USAGE, "T", opts.T, 1, 128), reps = intFlag(USAGE, "reps", opts.reps);
const file = opts.plain ? "kvasm-simd.wasm" : "kvasm-relaxed.wasm";
const root = new URL("..", import.meta.url).pathname;
const memory = new WebAssembly.Memory({ initial: 1024 }); // 64 MiB, shared by both instances
type MatmulF32 = (out: number, x: number, w: number, n: number, d: number, T: number, r0: number, r1: number) => void;
const instance = (dir: string) =>
  new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(path.join(dir, "build", file))), { env: { memory, abort() {} } })
    .exports.matmul_f32 as MatmulF32;
const builds: [string, MatmulF32][] = [["baseline", instance(opts.baseline)], ["this tree", instance(root)]];

const f = new Float32Array(memory.buffer);
const X = 1 << 20, W = 4 << 20, OUT = [48 << 20, 56 << 20]; // x: 128 x 2048 f32 (1 MiB), W up to 2048 x 2048 (16 MiB)
for (let i = 0; i < 128 * 2048; i++) f[X / 4 + i] = Math.sin(i * 0.37);
for (let i = 0; i < 2048 * 2048; i++) f[W / 4 + i] = Math.cos(i * 0.11) * 0.1;

// warm-up: JavaScriptCore runs a function in its baseline tier until it has run a while (its first calls measured
// at half speed in Bun), V8 after its first call
for (let r = 0; r < 40; r++) for (const [, mm] of builds) mm(OUT[0], X, W, 768, 768, 16, 0, 768);

console.log(`# ${"Bun" in globalThis ? "bun" : "deno"}, ${file}, fastest of ${opts.reps}, ${runStamp()}`);
console.log("| shape (d x n) | T | baseline GFLOP/s | this tree GFLOP/s | this / baseline | same bits |");
console.log("|---|---|---|---|---|---|");
for (const T of Ts) {
  for (const [d, n] of [[768, 768], [2048, 768], [768, 2048]]) {
    const best = [Infinity, Infinity];
    for (let r = 0; r < reps; r++) {
      builds.forEach(([, mm], b) => {
        const t = performance.now();
        mm(OUT[b], X, W, n, d, T, 0, d);
        best[b] = Math.min(best[b], performance.now() - t);
      });
    }
    const a = new Uint32Array(memory.buffer, OUT[0], T * d), b = new Uint32Array(memory.buffer, OUT[1], T * d);
    const same = a.every((v, i) => v === b[i]);
    const gflops = best.map((ms) => (2 * n * d * T) / (ms / 1000) / 1e9);
    console.log(`| ${d}x${n} | ${T} | ${gflops[0].toFixed(1)} | ${gflops[1].toFixed(1)} | ${(best[0] / best[1]).toFixed(3)}x | ${same} |`);
  }
}
