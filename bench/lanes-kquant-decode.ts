/**
 * Q4_K's share of a decode step in the lanes layout (assembly/lanes-kquant.ts) against KX, in the model: the same
 * synthetic stories110M-shaped Q4_K_M file loaded twice in one process (default backend: Q4_K lanes; one that
 * repacks Q4_K to KX as before), one decode step of each in alternation, each step timed by the backend's
 * OpProfile; prints the fastest and median ms of the Q4_K matmuls, of the other ops and of the whole step.
 *
 *   deno run -A bench/lanes-kquant-decode.ts [--steps 80]        bun bench/lanes-kquant-decode.ts
 */
import * as path from "node:path";

import { benchArgs, intFlag, median, runStamp } from "./cli.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import type { GGMLTypeId } from "../src/formats/ggml-types.ts";
import { type LanesKernel, lanesKernel } from "../src/quant/kernels.ts";
import { dotAddIsExactU8S8, hasRelaxedSimd } from "../src/kernels/wasm.ts";
import { BackendOn, Q4KX } from "./build-backend.ts";
const USAGE = `Q4_K matmuls of a decode step, lanes layout against KX (or this tree's build against an earlier one: --baseline),
same process, 1 thread (the synthetic Q4_K_M file).

  deno run -A bench/lanes-kquant-decode.ts [options]        bun bench/lanes-kquant-decode.ts [options]

  --steps N        decode steps of each model, in alternation (default 80)
  --baseline DIR   instead of KX: both models in the lanes layout, one on this tree's build/, one on DIR's (a copy of
                   an earlier build/); "lanes" is then this tree's, "kx" the earlier build's
  -h, --help       this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      steps: { type: "string", default: "80" },
      baseline: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const steps = intFlag(USAGE, "steps", opts.steps);
const file = await ensureSyntheticModel("stories110M", "Q4_K_M");
const variant = hasRelaxedSimd() ? "relaxed" : "simd";
const root = new URL("..", import.meta.url).pathname;
/** This tree's build with the lanes kernels WasmBackend.init would pick (BackendOn's own init leaves the exact dot-add's off). */
class CurrentOn extends BackendOn {
  override lanesKernelFor(type: GGMLTypeId): LanesKernel | undefined {
    return lanesKernel(type, variant === "relaxed" && dotAddIsExactU8S8());
  }
}
const bl = opts.baseline ? new CurrentOn(path.join(root, "build", `kvasm-${variant}.wasm`), variant) : new WasmBackend();
const bk = opts.baseline
  ? new BackendOn(path.join(opts.baseline, `kvasm-${variant}.wasm`), variant, {
    matmul_q4_k_lanes_q1: "matmul_q4_k_lanes",
    matmul_q4_k_lanes_u8: "matmul_q4_k_lanes",
    // (Q8_0's VNNI form: never called on the Q4_K_M file, aliased so that a build from before it loads)
    matmul_q8_0_vnni: "matmul_q8_0_lanes",
    repack_q8_0_vnni: "repack_q8_0_lanes",
    dequantize_q8_0_vnni: "dequantize_q8_0_lanes",
  })
  : new Q4KX();
const ml = await loadModel(file, { backend: bl, threads: 1 }), mk = await loadModel(file, { backend: bk, threads: 1 });
const sl = ml.newSequence(), sk = mk.newSequence();
const prompt = Array.from({ length: 16 }, (_, i) => 1 + i * 7);
let ll = await ml.prefill(sl, prompt), lk = await mk.prefill(sk, prompt);
const q4 = (p: OpProfile) => {
  let s = 0, o = 0;
  for (const [k, v] of p.totals) {
    if (k.startsWith("matmul Q4_K")) s += v.ms;
    else o += v.ms;
  }
  return [s, o];
};
const res = { lanes: [] as number[][], kx: [] as number[][] };
for (let step = 0; step < steps; step++) {
  for (const which of (step & 1) ? ["kx", "lanes"] : ["lanes", "kx"]) {
    const b = which === "lanes" ? bl : bk, p = new OpProfile();
    b.profile = p;
    const t0 = performance.now();
    if (which === "lanes") ll = await ml.decodeOne(sl, argmax(ll));
    else lk = await mk.decodeOne(sk, argmax(lk));
    const t = performance.now() - t0;
    b.profile = null;
    res[which as "lanes" | "kx"].push([...q4(p), t]);
  }
}
console.log(
  `Q4_K_M decode, Q4_K ${opts.baseline ? `lanes, this build ("lanes") vs ${opts.baseline} ("kx")` : "lanes vs KX"}, ${steps} steps each, ` +
    `${runStamp()}`,
);
for (const w of ["lanes", "kx"] as const) {
  const cols = [0, 1, 2].map((i) => res[w].map((r) => r[i]).sort((a, b) => a - b));
  console.log(
    `${w}: Q4_K matmuls per step min ${cols[0][0].toFixed(2)} median ${median(cols[0]).toFixed(2)} ms; other ops min ${
      cols[1][0].toFixed(2)
    } median ${median(cols[1]).toFixed(2)}; step min ${cols[2][0].toFixed(2)} median ${median(cols[2]).toFixed(2)}`,
  );
}
console.log(
  `lanes / KX, fastest step's Q4_K matmuls: ${
    (Math.min(...res.kx.map((r) => r[0])) / Math.min(...res.lanes.map((r) => r[0]))).toFixed(2)
  }x`,
);
ml.releaseSequence(sl);
mk.releaseSequence(sk);
await ml.close();
await mk.close();
