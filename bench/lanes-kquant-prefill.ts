/**
 * Q4_K's share of a 128-token prefill, this tree's kernel build against an earlier one (--baseline DIR, e.g. a copy
 * of build/ made before a kernel change), in the model: the same synthetic stories110M-shaped Q4_K_M file loaded
 * twice in one process, one on each build, prefills of each in alternation, each timed by the backend's OpProfile;
 * prints the fastest and median ms of the Q4_K matmuls, of the other ops and of the whole prefill, and the logits'
 * agreement (the kernels are bit-identical, so the two must be equal bit for bit).
 *
 *   deno run -A bench/lanes-kquant-prefill.ts --baseline DIR [--tokens 128] [--rounds 6]
 *   bun bench/lanes-kquant-prefill.ts --baseline DIR
 */
import * as path from "node:path";

import { benchArgs, intFlag, median, runStamp, usageError } from "./cli.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import { hasRelaxedSimd } from "../src/kernels/wasm.ts";
import { BackendOn } from "./build-backend.ts";

const USAGE = `Q4_K matmuls of a prefill, this tree's kernels against an earlier build's, same process, 1 thread (synthetic Q4_K_M).

  deno run -A bench/lanes-kquant-prefill.ts --baseline DIR [options]        bun bench/lanes-kquant-prefill.ts ...

  --baseline DIR   the earlier build: DIR/kvasm-relaxed.wasm (or DIR/kvasm-simd.wasm with --plain)
  --tokens N       prompt length (default 128)
  --rounds N       prefills of each model, in alternation (default 6)
  --plain          both models on the plain-SIMD build
  -h, --help       this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      baseline: { type: "string" },
      tokens: { type: "string", default: "128" },
      rounds: { type: "string", default: "6" },
      plain: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  },
);
if (!opts.baseline) usageError("--baseline DIR is needed (a copy of an earlier build/)", USAGE);
const tokens = intFlag(USAGE, "tokens", opts.tokens), rounds = intFlag(USAGE, "rounds", opts.rounds);
const relaxed = !opts.plain && hasRelaxedSimd();
const variant = relaxed ? "relaxed" : "simd";

const root = new URL("..", import.meta.url).pathname;
const file = await ensureSyntheticModel("stories110M", "Q4_K_M");
const builds = { new: path.join(root, "build", `kvasm-${variant}.wasm`), old: path.join(opts.baseline, `kvasm-${variant}.wasm`) };
const models = {
  new: await loadModel(file, { backend: new BackendOn(builds.new, variant), threads: 1 }),
  old: await loadModel(file, { backend: new BackendOn(builds.old, variant, { matmul_q4_k_lanes_q1: "matmul_q4_k_lanes" }), threads: 1 }),
};
const prompt = Array.from({ length: tokens }, (_, i) => 1 + ((i * 7919) % 30000));
const split = (p: OpProfile) => {
  let q4k = 0, other = 0;
  for (const [k, v] of p.totals) {
    if (k.startsWith("matmul Q4_K")) q4k += v.ms;
    else other += v.ms;
  }
  return [q4k, other];
};
const res = { new: [] as number[][], old: [] as number[][] };
let lastNew: OpProfile | undefined;
const logits: Record<string, Float32Array> = {};
for (let r = 0; r < rounds; r++) {
  for (const which of (r & 1) ? ["old", "new"] as const : ["new", "old"] as const) {
    const m = models[which], b = m.backend as BackendOn, seq = m.newSequence(), p = new OpProfile();
    b.profile = p;
    const t0 = performance.now();
    logits[which] = (await m.prefill(seq, prompt)).slice();
    const t = performance.now() - t0;
    b.profile = null;
    m.releaseSequence(seq);
    res[which].push([...split(p), t]);
    if (which === "new") lastNew = p;
  }
}
const same = logits.new.every((x, i) => Object.is(x, logits.old[i]));
console.log(
  `Q4_K_M prefill of ${tokens} tokens, ${variant} build, this tree / ${opts.baseline}, ${rounds} rounds, ${runStamp()}`,
);
for (const w of ["new", "old"] as const) {
  const cols = [0, 1, 2].map((i) => res[w].map((r) => r[i]).sort((a, b) => a - b));
  console.log(
    `${w}: Q4_K matmuls min ${cols[0][0].toFixed(1)} median ${median(cols[0]).toFixed(1)} ms; other ops min ${
      cols[1][0].toFixed(1)
    } median ${median(cols[1]).toFixed(1)}; prefill min ${cols[2][0].toFixed(1)} median ${median(cols[2]).toFixed(1)} ms (${
      (tokens / cols[2][0] * 1000).toFixed(0)
    } tok/s)`,
  );
}
console.log(
  "new, last prefill by op class (ms): " +
    [...lastNew!.totals].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => `${k} ${v.ms.toFixed(1)}`).join(", "),
);
const best = (w: "new" | "old", i: number) => Math.min(...res[w].map((r) => r[i]));
console.log(
  `new / old, fastest: Q4_K matmuls ${(best("old", 0) / best("new", 0)).toFixed(2)}x, prefill ${
    (best("old", 2) / best("new", 2)).toFixed(2)
  }x; ` +
    `logits bit-identical: ${same ? "yes" : "NO"}`,
);
await models.new.close();
await models.old.close();
if (!same) {
  console.error("the two builds' logits differ");
  if (typeof process !== "undefined") process.exitCode = 1;
}
