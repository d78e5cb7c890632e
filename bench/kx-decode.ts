/**
 * Decode with and without the repack of Q6_K and Q4_K weights (both lanes now; KX before) (src/quant/kernels.ts
 * KX_KERNELS, LANES_KERNELS), in one process: the same synthetic stories110M-shaped file loaded four times, by a
 * WASM backend that keeps ggml's layout, one that repacks only Q6_K (the KX repack before Q4_K had one), one
 * that repacks Q4_K to KX (before the lanes layout) and the default one, stepped in alternation (1 thread).
 * Prints each one's best ms per token and the ratios; the logits are bit-identical (tests/kquant-kx.test.ts).
 *
 *   deno run -A bench/kx-decode.ts [--types Q4_0,Q4_K_M] [--rounds 3] [--steps 32]
 *   bun bench/kx-decode.ts
 */
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import type { Weight } from "../src/backends/backend.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { benchArgs, intFlag, listFlag, runStamp } from "./cli.ts";
import { Q4KX } from "./build-backend.ts";

const USAGE =
  `Decode ms per token, weights repacked at load (Q6_K and Q4_K lanes; Q6_K only; Q4_K KX) and in ggml's layout, same process, 1 thread.

  deno run -A bench/kx-decode.ts [options]        bun bench/kx-decode.ts [options]

  --types LIST   types of the synthetic stories110M-shaped files (default Q4_0,Q4_K_M)
  --rounds N     alternating rounds, best kept (default 3)
  --steps N      greedy decode steps per round (default 32)
  -h, --help     this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    types: { type: "string", default: "Q4_0,Q4_K_M" },
    rounds: { type: "string", default: "3" },
    steps: { type: "string", default: "32" },
    help: { type: "boolean", short: "h" },
  },
});
const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
const rounds = intFlag(USAGE, "rounds", opts.rounds), steps = intFlag(USAGE, "steps", opts.steps);

/** A WASM backend that leaves every weight in ggml's layout (the kernels before the KX repack). */
class NaturalLayout extends WasmBackend {
  override prepareWeight(_w: Weight): void {}
}

/** A WASM backend that repacks only Q6_K weights. */
class Q6Only extends WasmBackend {
  override prepareWeight(w: Weight): void {
    if (w.type === GGMLType.Q6_K) super.prepareWeight(w);
  }
}

/** ms per decode step over `steps` greedy steps after a 16-id prompt. */
async function decodeMs(model: Model): Promise<number> {
  const seq = model.newSequence();
  try {
    let logits = await model.prefill(seq, Array.from({ length: 16 }, (_, i) => 1 + i * 7));
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) {
      logits = await model.decodeOne(seq, argmax(logits));
    }
    return (performance.now() - t0) / steps;
  } finally {
    model.releaseSequence(seq);
  }
}

console.log(`kvasm decode, Q6_K and Q4_K repacked (KX; Q4_K lanes) vs ggml's layout, same process, ${runStamp()}`);
for (const type of types) {
  const file = await ensureSyntheticModel("stories110M", type);
  const kx = await loadModel(file, { backend: new WasmBackend(), threads: 1 });
  const natural = await loadModel(file, { backend: new NaturalLayout(), threads: 1 });
  const q6 = await loadModel(file, { backend: new Q6Only(), threads: 1 });
  const q4kx = await loadModel(file, { backend: new Q4KX(), threads: 1 });
  let a = Infinity, b = Infinity, c = Infinity, e = Infinity;
  for (let r = 0; r < rounds; r++) {
    b = Math.min(b, await decodeMs(natural));
    c = Math.min(c, await decodeMs(q6));
    e = Math.min(e, await decodeMs(q4kx));
    a = Math.min(a, await decodeMs(kx));
  }
  console.log(
    `${type}: ggml layout ${b.toFixed(2)} ms/token, Q6_K KX only ${c.toFixed(2)}, Q6_K+Q4_K KX ${e.toFixed(2)}, ` +
      `Q6_K KX + Q4_K lanes (default) ${a.toFixed(2)}; speed-up ${(b / a).toFixed(3)}x (Q4_K's repack alone: ${(c / a).toFixed(3)}x; ` +
      `lanes over KX: ${(e / a).toFixed(3)}x)`,
  );
  await kx.close();
  await q6.close();
  await q4kx.close();
  await natural.close();
}
