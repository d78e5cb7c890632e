/**
 * Decode and prefill with and without the lanes repack (src/quant/kernels.ts LANES_KERNELS), in one process: the same
 * synthetic stories110M-shaped file loaded by a WASM backend that repacks as it does by default and by one that keeps
 * ggml's layout for the weight types with a lanes layout (other layouts, such as KX, stay as by default), stepped in
 * alternation on 1 thread. Prints each one's best ms per decode step and per 128-id prefill, and the ratios; the
 * logits are bit-identical (tests/lanes.test.ts).
 *
 *   deno run -A bench/lanes-decode.ts [--types Q8_0] [--rounds 3] [--steps 32]
 *   bun bench/lanes-decode.ts
 */
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import type { Weight } from "../src/backends/backend.ts";
import { LANES_KERNELS } from "../src/quant/kernels.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { benchArgs, intFlag, listFlag, runStamp } from "./cli.ts";

const USAGE = `Decode ms per token and prefill ms per 128 ids, lanes layouts repacked at load and not, same process, 1 thread.

  deno run -A bench/lanes-decode.ts [options]        bun bench/lanes-decode.ts [options]

  --types LIST   types of the synthetic stories110M-shaped files (default Q8_0)
  --rounds N     alternating rounds, best kept (default 3)
  --steps N      greedy decode steps per round (default 32)
  -h, --help     this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    types: { type: "string", default: "Q8_0" },
    rounds: { type: "string", default: "3" },
    steps: { type: "string", default: "32" },
    help: { type: "boolean", short: "h" },
  },
});
const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
const rounds = intFlag(USAGE, "rounds", opts.rounds), steps = intFlag(USAGE, "steps", opts.steps);

/** A WASM backend that keeps ggml's layout for every type with a lanes layout (and repacks the others as usual). */
class NoLanes extends WasmBackend {
  override prepareWeight(w: Weight): void {
    if (!LANES_KERNELS.has(w.type)) super.prepareWeight(w);
  }
}

const PROMPT = Array.from({ length: 128 }, (_, i) => 3 + ((i * 7919) % 31990));

/** [ms per 128-id prefill, ms per decode step over `steps` greedy steps after it]. */
async function timeRun(model: Model): Promise<[number, number]> {
  const seq = model.newSequence();
  try {
    let t0 = performance.now();
    let logits = await model.prefill(seq, PROMPT);
    const prefill = performance.now() - t0;
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
console.log(`kvasm (${engine}) decode and prefill, lanes repack vs ggml's layout, same process, ${runStamp()}`);
for (const type of types) {
  const file = await ensureSyntheticModel("stories110M", type);
  const lanes = await loadModel(file, { backend: new WasmBackend(), threads: 1 });
  const natural = await loadModel(file, { backend: new NoLanes(), threads: 1 });
  const best = { lanes: [Infinity, Infinity], natural: [Infinity, Infinity] };
  for (let r = 0; r < rounds; r++) {
    for (const [name, m] of [["natural", natural], ["lanes", lanes]] as const) {
      const [p, d] = await timeRun(m);
      best[name][0] = Math.min(best[name][0], p);
      best[name][1] = Math.min(best[name][1], d);
    }
  }
  console.log(
    `${type}: decode ggml layout ${best.natural[1].toFixed(2)} ms/token, lanes ${best.lanes[1].toFixed(2)} (${
      (best.natural[1] / best.lanes[1]).toFixed(3)
    }x); prefill(128) ggml layout ${best.natural[0].toFixed(1)} ms, lanes ${best.lanes[0].toFixed(1)} (${
      (best.natural[0] / best.lanes[0]).toFixed(3)
    }x)`,
  );
  await lanes.close();
  await natural.close();
}
