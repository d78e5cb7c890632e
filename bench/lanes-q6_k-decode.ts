/**
 * Q6_K's share of a decode step in the lanes layout (assembly/lanes-q6_k.ts) against KX, in the model: the same
 * synthetic stories110M-shaped file (Q4_0: the Q6_K classifier; Q4_K_M: the classifier and some layers) loaded
 * three times in one process (default backend: Q6_K lanes with this runtime's kernel, src/quant/kernels.ts; one
 * with the other runtime's lanes kernel, "other": matmul_q6_k_lanes in Bun, matmul_q6_k_lanes_q1 elsewhere; one
 * that repacks Q6_K to KX as before), one decode step of each in turn, each step timed by the backend's OpProfile;
 * prints the fastest and median ms of the Q6_K matmuls, of the other ops and of the whole step.
 *
 *   deno run -A bench/lanes-q6_k-decode.ts [--types Q4_0,Q4_K_M] [--steps 80]        bun bench/lanes-q6_k-decode.ts
 */
import { benchArgs, intFlag, listFlag, median, runStamp } from "./cli.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import type { Weight } from "../src/backends/backend.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { LANES_KERNELS, type MatmulKernels } from "../src/quant/kernels.ts";

/** Q6_K repacked to KX, as before the lanes layout took it. */
class Q6KX extends WasmBackend {
  override prepareWeight(w: Weight): void {
    if (w.type !== GGMLType.Q6_K || w.cols % 256 !== 0) return super.prepareWeight(w);
    this.kernels.repack_q6_kx(w.ptr, w.bytes / 210, this.matmulScratch);
    w.layout = "kx";
  }
}
/** Q6_K lanes with the other runtime's matmul kernel (same layout, same bits). */
const mine = LANES_KERNELS.get(GGMLType.Q6_K)!;
const otherKernels: MatmulKernels = {
  ...mine,
  matmul: mine.matmul === "matmul_q6_k_lanes" ? "matmul_q6_k_lanes_q1" : "matmul_q6_k_lanes",
};
class Q6KOther extends WasmBackend {
  protected override kernelsOf(w: Weight): MatmulKernels {
    return w.type === GGMLType.Q6_K && w.layout === "lanes" ? otherKernels : super.kernelsOf(w);
  }
}
const USAGE = `Q6_K matmuls of a decode step, lanes layout (this runtime's kernel and the other's) against KX, same process, 1 thread
(synthetic stories110M-shaped files).

  deno run -A bench/lanes-q6_k-decode.ts [options]        bun bench/lanes-q6_k-decode.ts [options]

  --types LIST   file types (default Q4_0,Q4_K_M)
  --steps N      decode steps of each model, in alternation (default 80)
  -h, --help     this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      types: { type: "string", default: "Q4_0,Q4_K_M" },
      steps: { type: "string", default: "80" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const steps = intFlag(USAGE, "steps", opts.steps), types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
/** ms of the Q6_K matmuls and of every other op in a profile. */
const q6 = (p: OpProfile) => {
  let s = 0, o = 0;
  for (const [k, v] of p.totals) {
    if (k.startsWith("matmul Q6_K")) s += v.ms;
    else o += v.ms;
  }
  return [s, o];
};
console.log(
  `decode, Q6_K lanes (${mine.matmul}) vs other (${otherKernels.matmul}) vs KX, ${steps} steps each, 1 thread, ${runStamp()}`,
);
type Which = "lanes" | "other" | "kx";
const order: Which[][] = [["lanes", "other", "kx"], ["kx", "lanes", "other"], ["other", "kx", "lanes"]];
for (const type of types) {
  const file = await ensureSyntheticModel("stories110M", type);
  const backends = { lanes: new WasmBackend(), other: new Q6KOther(), kx: new Q6KX() };
  const models = {
    lanes: await loadModel(file, { backend: backends.lanes, threads: 1 }),
    other: await loadModel(file, { backend: backends.other, threads: 1 }),
    kx: await loadModel(file, { backend: backends.kx, threads: 1 }),
  };
  const prompt = Array.from({ length: 16 }, (_, i) => 1 + i * 7);
  const seqs = { lanes: models.lanes.newSequence(), other: models.other.newSequence(), kx: models.kx.newSequence() };
  const logits = {
    lanes: await models.lanes.prefill(seqs.lanes, prompt),
    other: await models.other.prefill(seqs.other, prompt),
    kx: await models.kx.prefill(seqs.kx, prompt),
  };
  const res: Record<Which, number[][]> = { lanes: [], other: [], kx: [] };
  for (let step = 0; step < steps; step++) {
    for (const which of order[step % 3]) {
      const b = backends[which], p = new OpProfile();
      b.profile = p;
      const t0 = performance.now();
      logits[which] = await models[which].decodeOne(seqs[which], argmax(logits[which]));
      const t = performance.now() - t0;
      b.profile = null;
      res[which].push([...q6(p), t]);
    }
  }
  for (const w of ["lanes", "other", "kx"] as const) {
    const cols = [0, 1, 2].map((i) => res[w].map((r) => r[i]).sort((a, b) => a - b));
    console.log(
      `${type} ${w}: Q6_K matmuls per step min ${cols[0][0].toFixed(3)} median ${median(cols[0]).toFixed(3)} ms; other ops min ${
        cols[1][0].toFixed(2)
      } median ${median(cols[1]).toFixed(2)}; step min ${cols[2][0].toFixed(2)} median ${median(cols[2]).toFixed(2)}`,
    );
  }
  const best = (w: Which, i: number) => Math.min(...res[w].map((r) => r[i]));
  const med = (w: Which, i: number) => median(res[w].map((r) => r[i]));
  for (const base of ["other", "kx"] as const) {
    console.log(
      `${type} lanes / ${base}: Q6_K matmuls fastest ${(best(base, 0) / best("lanes", 0)).toFixed(2)}x, median ${
        (med(base, 0) / med("lanes", 0)).toFixed(2)
      }x; whole step fastest ${(best(base, 2) / best("lanes", 2)).toFixed(2)}x, median ${(med(base, 2) / med("lanes", 2)).toFixed(2)}x`,
    );
  }
  for (const w of ["lanes", "other", "kx"] as const) {
    models[w].releaseSequence(seqs[w]);
    await models[w].close();
  }
}
