/**
 * Sparse top-k attention over the paged KV cache (LoadOptions.attention.topK)
 * against dense attention at long context, on a synthetic model (the
 * "long-context" shape of bench/synthetic.ts: 2 layers, 2 heads of 64, random
 * weights): a random prompt of N positions is prefilled once with dense
 * attention, then each setting decodes from a fork of that sequence, fed the
 * dense run's greedy tokens (teacher forcing), so every step compares the same
 * context: KL(dense || top-k) of the next-token distributions, top-1
 * agreement, and decode tok/s, dense and top-k measured in the same run.
 * The KV layout's topK is switched between steps (the load option sized its
 * scratch for the largest k), so all settings share one prefill, and the
 * steps of the settings alternate, so the machine's load falls on all alike.
 *
 *   deno run -A bench/topk-attention.ts [positions=1024,4096,16384] [k=64,256] [steps=32] [model.gguf]
 *
 * A model path in place of the synthetic one measures the same on real weights (within its context).
 */
import { loadModel } from "../src/model/load.ts";
import { argmax, logSoftmax } from "../src/sampling/sampler.ts";
import type { Model } from "../src/model/model.ts";
import type { Sequence } from "../src/kv/paged-cache.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { benchArgs, intFlag, intListFlag, runStamp } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE = `Sparse top-k attention against dense attention at long context (teacher-forced along dense's greedy tokens):
KL(dense || top-k), top-1 agreement and decode tok/s, in the same run.

  deno run -A bench/topk-attention.ts [POSITIONS] [KS] [STEPS] [MODEL.gguf]

  POSITIONS      prompt lengths (default 1024,4096,16384)
  KS             top-k settings (default 64,256)
  STEPS          decode steps per setting (default 32)
  MODEL.gguf     real weights instead of the synthetic long-context shape
  -h, --help     this text`;
const { positionals: args } = benchArgs(
  USAGE,
  { options: { help: { type: "boolean", short: "h" } }, allowPositionals: true },
);
const POSITIONS = intListFlag(USAGE, "POSITIONS", args[0] ?? "1024,4096,16384");
const KS = intListFlag(USAGE, "KS", args[1] ?? "64,256");
const STEPS = intFlag(USAGE, "STEPS", args[2] ?? "32");

/** One decode step of `seq` with the layout's topK set to k: its log-probabilities and milliseconds. */
async function step(m: Model, seq: Sequence, token: number, k: number): Promise<{ lp: Float64Array; ms: number; next: number }> {
  (m.kv.layout as { topK?: number }).topK = k;
  const t0 = performance.now();
  const l = await m.decodeOne(seq, token);
  const ms = performance.now() - t0;
  return { lp: logSoftmax(l), ms, next: argmax(l) };
}

const path = args[3] ?? await ensureSyntheticModel("long-context");
const runtime = g.Deno ? `Deno ${g.Deno.version.deno}` : `Bun ${g.Bun?.version}`;
console.log(
  `${runtime}, one thread, ${runStamp()}; ${
    args[3] ? path.split("/").pop() : "synthetic long-context model"
  }, random prompt, ${STEPS} decode steps per setting`,
);
console.log(
  "| positions | k | dense decode tok/s | top-k decode tok/s | speed-up | mean KL(dense || top-k) nats | max KL | top-1 agreement |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const N of POSITIONS) {
  const m = await loadModel(path, {
    threads: 1,
    maxSequences: 2 + KS.length,
    contextLength: N + STEPS + 16,
    attention: { topK: Math.max(...KS) },
  });
  try {
    let x = 99991;
    const prompt = Array.from({ length: N }, () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % m.vocabSize);
    const base = m.newSequence();
    (m.kv.layout as { topK?: number }).topK = 0;
    const first = await m.prefill(base, prompt);
    // step by step, dense then each k, so the machine's load falls on all settings alike; every setting is fed
    // the dense run's greedy token (teacher forcing) from its own fork of the prefilled sequence
    const seqs = [0, ...KS].map(() => m.kv.fork(base));
    const ms = seqs.map(() => 0), kl = KS.map(() => 0), klMax = KS.map(() => 0), agree = KS.map(() => 0);
    let token = argmax(first);
    // one untimed step of each setting first (the one-row kernels' first calls), then STEPS timed ones
    for (let i = -1; i < STEPS; i++) {
      if (i === 0) ms.fill(0), kl.fill(0), klMax.fill(0), agree.fill(0);
      const dense = await step(m, seqs[0], token, 0);
      ms[0] += dense.ms;
      for (let j = 0; j < KS.length; j++) {
        const sparse = await step(m, seqs[j + 1], token, KS[j]);
        ms[j + 1] += sparse.ms;
        let d = 0;
        for (let v = 0; v < dense.lp.length; v++) d += Math.exp(dense.lp[v]) * (dense.lp[v] - sparse.lp[v]);
        kl[j] += d;
        klMax[j] = Math.max(klMax[j], d);
        if (sparse.next === dense.next) agree[j]++;
      }
      token = dense.next;
    }
    for (const s of seqs) m.releaseSequence(s);
    for (let j = 0; j < KS.length; j++) {
      console.log(
        `| ${N} | ${KS[j]} | ${((1000 * STEPS) / ms[0]).toFixed(1)} | ${((1000 * STEPS) / ms[j + 1]).toFixed(1)} | ${
          (ms[0] / ms[j + 1]).toFixed(2)
        }x | ` +
          `${(kl[j] / STEPS).toExponential(2)} | ${klMax[j].toExponential(2)} | ${((100 * agree[j]) / STEPS).toFixed(1)}% |`,
      );
    }
    m.releaseSequence(base);
  } finally {
    await m.close();
  }
}
