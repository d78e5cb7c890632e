/**
 * Q8_0's lanes forms in the model, in one process: the synthetic stories110M-shaped Q8_0 file loaded by a WASM
 * backend as it is (the form this runtime takes: the VNNI form, matmul_q8_0_vnni, where dotAddIsExactU8S8() holds;
 * in Bun the nibble activations, matmul_q8_0_nib) and by one held to the signed form (matmul_q8_0_lanes), stepped in
 * alternation on 1 thread. Prints each one's best ms per decode step and per 128-id prefill and the ratios, and with
 * --profile the last prefill's µs per token by op class for both (the matmul keys name their kernel). The logits are
 * bit-identical (tests/lanes-q8_0.test.ts).
 *
 *   deno run -A bench/q8_0-vnni-model.ts [--rounds 3] [--steps 32] [--profile]
 *   bun bench/q8_0-vnni-model.ts [--rounds 3] [--steps 32] [--profile]
 */
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import { GGMLType, type GGMLTypeId } from "../src/formats/ggml-types.ts";
import { LANES_KERNELS, type LanesKernel } from "../src/quant/kernels.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { benchArgs, intFlag, runStamp } from "./cli.ts";

const USAGE = `Q8_0 decode ms per token and prefill ms per 128 ids, the lanes form this runtime takes (VNNI; Bun: nibble activations)
vs the signed one, same process, 1 thread.

  deno run -A bench/q8_0-vnni-model.ts [options]        bun bench/q8_0-vnni-model.ts [options]

  --rounds N     alternating rounds, best kept (default 3)
  --steps N      greedy decode steps per round (default 32)
  --profile      also the last round's prefill µs per token by op class, for both forms
  -h, --help     this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    rounds: { type: "string", default: "3" },
    steps: { type: "string", default: "32" },
    profile: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
const rounds = intFlag(USAGE, "rounds", opts.rounds), steps = intFlag(USAGE, "steps", opts.steps);

/** A WASM backend held to LANES_KERNELS' signed Q8_0 form whatever the probe says (main's kernels). */
class SignedForm extends WasmBackend {
  override lanesKernelFor(type: GGMLTypeId): LanesKernel | undefined {
    return LANES_KERNELS.get(type);
  }
}

const PROMPT = Array.from({ length: 128 }, (_, i) => 3 + ((i * 7919) % 31990));

/** [ms per 128-id prefill, ms per decode step over `steps` greedy steps after it]; the prefill profiled into prof. */
async function timeRun(model: Model, prof: OpProfile | null): Promise<[number, number]> {
  const seq = model.newSequence(), backend = model.backend as WasmBackend;
  try {
    prof?.reset();
    backend.profile = prof;
    let t0 = performance.now();
    let logits = await model.prefill(seq, PROMPT);
    const prefill = performance.now() - t0;
    backend.profile = null;
    t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      logits = await model.decodeOne(seq, argmax(logits));
    }
    return [prefill, (performance.now() - t0) / steps];
  } finally {
    model.releaseSequence(seq);
  }
}

const engine = "Bun" in globalThis ? "Bun" : "Deno" in globalThis ? "Deno" : "Node";
const file = await ensureSyntheticModel("stories110M", "Q8_0");
const chosenBackend = new WasmBackend(), signedBackend = new SignedForm();
const models = {
  chosen: await loadModel(file, { backend: chosenBackend, threads: 1 }),
  signed: await loadModel(file, { backend: signedBackend, threads: 1 }),
};
const Q8_0 = GGMLType.Q8_0;
console.log(
  `kvasm (${engine}) Q8_0, ${chosenBackend.lanesKernelFor(Q8_0)?.matmul} vs ${signedBackend.lanesKernelFor(Q8_0)?.matmul}, ` +
    `same process, ${runStamp()}`,
);
const best = { chosen: [Infinity, Infinity], signed: [Infinity, Infinity] };
const profiles = { chosen: new OpProfile(), signed: new OpProfile() };
for (let r = 0; r < rounds; r++) {
  for (const name of ["signed", "chosen"] as const) {
    const [p, d] = await timeRun(models[name], opts.profile && r === rounds - 1 ? profiles[name] : null);
    best[name][0] = Math.min(best[name][0], p);
    best[name][1] = Math.min(best[name][1], d);
  }
}
console.log(
  `decode signed ${best.signed[1].toFixed(2)} ms/token, chosen ${best.chosen[1].toFixed(2)} (${
    (best.signed[1] / best.chosen[1]).toFixed(3)
  }x); ` +
    `prefill(128) signed ${best.signed[0].toFixed(1)} ms (${(128000 / best.signed[0]).toFixed(0)} tok/s), chosen ${
      best.chosen[0].toFixed(1)
    } ms (${(128000 / best.chosen[0]).toFixed(0)} tok/s) (${(best.signed[0] / best.chosen[0]).toFixed(3)}x)`,
);
if (opts.profile) {
  for (const name of ["signed", "chosen"] as const) {
    const p = profiles[name], total = p.sum().ms;
    console.log(`prefill profile, ${name} form: ${(1000 * total / 128).toFixed(0)} µs/token in kernels`);
    const rows = [...p.totals].sort((a, b) => b[1].ms - a[1].ms).slice(0, 10);
    for (const [k, v] of rows) {
      console.log(
        `  ${k.padEnd(48)} ${(1000 * v.ms / 128).toFixed(1).padStart(8)} µs/token ${(100 * v.ms / total).toFixed(1).padStart(5)}%`,
      );
    }
  }
}
await models.chosen.close();
await models.signed.close();
