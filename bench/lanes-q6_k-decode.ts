/**
 * Q6_K's share of a decode step in the lanes layout (assembly/lanes-q6_k.ts) against KX, in the model: the same
 * synthetic stories110M-shaped file (Q4_0: the Q6_K classifier; Q4_K_M: the classifier and some layers) loaded
 * twice in one process (default backend: Q6_K lanes; one that repacks Q6_K to KX as before), one decode step of
 * each in alternation, each step timed by the backend's OpProfile; prints the fastest and median ms of the Q6_K
 * matmuls, of the other ops and of the whole step.
 *
 *   deno run -A bench/lanes-q6_k-decode.ts [--types Q4_0,Q4_K_M] [--steps 80]        bun bench/lanes-q6_k-decode.ts
 */
import { benchArgs } from "./cli.ts";
import { ensureSyntheticModel, type SyntheticType } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import type { Weight } from "../src/backends/backend.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";

/** Q6_K repacked to KX, as before the lanes layout took it. */
class Q6KX extends WasmBackend {
  override prepareWeight(w: Weight): void {
    if (w.type !== GGMLType.Q6_K || w.cols % 256 !== 0) return super.prepareWeight(w);
    this.kernels.repack_q6_kx(w.ptr, w.bytes / 210, this.matmulScratch);
    w.layout = "kx";
  }
}
const { values: opts } = benchArgs(
  `Q6_K matmuls of a decode step, lanes layout against KX, same process, 1 thread (synthetic stories110M-shaped files).

  deno run -A bench/lanes-q6_k-decode.ts [options]        bun bench/lanes-q6_k-decode.ts [options]

  --types LIST   file types (default Q4_0,Q4_K_M)
  --steps N      decode steps of each model, in alternation (default 80)
  -h, --help     this text`,
  {
    options: {
      types: { type: "string", default: "Q4_0,Q4_K_M" },
      steps: { type: "string", default: "80" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const steps = Number(opts.steps), mid = steps >> 1;
const argmax = (l: Float32Array) => {
  let b = 0;
  for (let j = 1; j < l.length; j++) if (l[j] > l[b]) b = j;
  return b;
};
/** ms of the Q6_K matmuls and of every other op in a profile. */
const q6 = (p: OpProfile) => {
  let s = 0, o = 0;
  for (const [k, v] of p.totals) {
    if (k.startsWith("matmul Q6_K")) s += v.ms;
    else o += v.ms;
  }
  return [s, o];
};
console.log(`decode, Q6_K lanes vs KX, ${steps} steps each, 1 thread, ${new Date().toISOString()}`);
for (const type of opts.types.split(",") as SyntheticType[]) {
  const file = await ensureSyntheticModel("stories110M", type);
  const bl = new WasmBackend(), bk = new Q6KX();
  const ml = await loadModel(file, { backend: bl, threads: 1 }), mk = await loadModel(file, { backend: bk, threads: 1 });
  const sl = ml.newSequence(), sk = mk.newSequence();
  const prompt = Array.from({ length: 16 }, (_, i) => 1 + i * 7);
  let ll = await ml.prefill(sl, prompt), lk = await mk.prefill(sk, prompt);
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
      res[which as "lanes" | "kx"].push([...q6(p), t]);
    }
  }
  for (const w of ["lanes", "kx"] as const) {
    const cols = [0, 1, 2].map((i) => res[w].map((r) => r[i]).sort((a, b) => a - b));
    console.log(
      `${type} ${w}: Q6_K matmuls per step min ${cols[0][0].toFixed(3)} median ${cols[0][mid].toFixed(3)} ms; other ops min ${
        cols[1][0].toFixed(2)
      } median ${cols[1][mid].toFixed(2)}; step min ${cols[2][0].toFixed(2)} median ${cols[2][mid].toFixed(2)}`,
    );
  }
  const best = (w: "lanes" | "kx", i: number) => Math.min(...res[w].map((r) => r[i]));
  const med = (w: "lanes" | "kx", i: number) => res[w].map((r) => r[i]).sort((a, b) => a - b)[mid];
  console.log(
    `${type} lanes / KX: Q6_K matmuls fastest ${(best("kx", 0) / best("lanes", 0)).toFixed(2)}x, median ${
      (med("kx", 0) / med("lanes", 0)).toFixed(2)
    }x; whole step fastest ${(best("kx", 2) / best("lanes", 2)).toFixed(2)}x, median ${(med("kx", 2) / med("lanes", 2)).toFixed(2)}x`,
  );
  ml.releaseSequence(sl);
  mk.releaseSequence(sk);
  await ml.close();
  await mk.close();
}
