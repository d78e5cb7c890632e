/**
 * The one-core ceiling of WebAssembly's 128-bit multiply-adds here: ten independent f32x4 chains of relaxed_madd
 * (bench/fma-peak/kernels.ts, compiled in seconds), the fastest of --rounds calls, in GFLOP/s (a multiply-add of
 * four lanes counts 8). The F32 matmuls' GFLOP/s (`bench/peers.ts --profile`: prefill µs per token by shape) read
 * against it; llama.cpp's AVX-512 build issues 16-lane FMAs, which SIMD128 cannot ask for. Until 2026-12-05 20:40
 * UTC V8 ran this loop at a quarter of JavaScriptCore's rate (13-14 against 54-58 GFLOP/s): its two operands were
 * vector constants, which V8 rematerializes at each use inside a loop; the kernels build theirs from an opaque zero,
 * and so does this loop now.
 *
 *   deno run -A bench/fma-peak.ts [--steps 20000000] [--rounds 7]        bun bench/fma-peak.ts ...
 */
import { benchArgs, intFlag, runStamp } from "./cli.ts";
import { engine, openStandalone } from "./candidates.ts";

const USAGE = `The one-core peak of 128-bit multiply-adds (ten independent relaxed_madd chains), GFLOP/s.

  deno run -A bench/fma-peak.ts [options]        bun bench/fma-peak.ts [options]

  --steps N    steps of the ten chains per call (default 20000000: 1.6 GFLOP)
  --rounds N   timed calls; the fastest is reported (default 7)
  -h, --help   this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      steps: { type: "string", default: "20000000" },
      rounds: { type: "string", default: "7" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const steps = intFlag(USAGE, "steps", opts.steps, 1, 2 ** 31 - 1), rounds = intFlag(USAGE, "rounds", opts.rounds);

// the relaxed build only: in the plain one madd is a multiply of two constants, which the compiler folds away
const fmaChains = openStandalone("bench/fma-peak/kernels.ts", { relaxed: true, mib: 1 }).ex.fma_chains;
console.log(`${engine}, ${runStamp()}: ten f32x4 multiply-add chains, ${steps} steps a call, fastest of ${rounds}`);
// warm-up: many short calls, so that the optimizing tier takes over (V8 swaps tiers between calls, not inside a loop)
for (let i = 0; i < 400; i++) fmaChains(20000, 0);
let best = Infinity;
for (let r = 0; r < rounds; r++) {
  const t0 = performance.now();
  const v = fmaChains(steps, 0);
  best = Math.min(best, performance.now() - t0);
  if (!Number.isFinite(v)) throw new Error(`relaxed: the chains left their range (${v})`);
}
console.log(`  relaxed  ${((steps * 80) / (best / 1000) / 1e9).toFixed(1)} GFLOP/s (${best.toFixed(0)} ms a call)`);
