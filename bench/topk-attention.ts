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
 * scratch for the largest k), so all settings share one prefill.
 *
 *   deno run -A bench/topk-attention.ts [positions=1024,4096,16384] [k=64,256] [steps=32] [model.gguf]
 *
 * A model path in place of the synthetic one measures the same on real weights (within its context).
 */
import { loadModel, type Model } from "../src/model/model.ts";
import type { Sequence } from "../src/kv/paged-cache.ts";
import { ensureSyntheticModel } from "./synthetic.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const args: string[] = g.Deno?.args ?? g.process.argv.slice(2);
const POSITIONS = (args[0] ?? "1024,4096,16384").split(",").map(Number);
const KS = (args[1] ?? "64,256").split(",").map(Number);
const STEPS = Number(args[2] ?? 32);

function logSoftmax(l: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const x of l) mx = Math.max(mx, x);
  let s = 0;
  for (const x of l) s += Math.exp(x - mx);
  return Float64Array.from(l, (x) => x - mx - Math.log(s));
}

const argmax = (l: ArrayLike<number>) => {
  let b = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[b]) b = i;
  return b;
};

/** Decodes `tokens` on `seq` with the layout's topK set to k; returns each step's log-probabilities and the mean ms per step. */
async function decode(m: Model, seq: Sequence, tokens: number[], k: number): Promise<{ lp: Float64Array[]; ms: number }> {
  (m.kv.layout as { topK?: number }).topK = k;
  const lp: Float64Array[] = [];
  let ms = 0;
  for (const t of tokens) {
    const t0 = performance.now();
    const l = await m.decodeOne(seq, t);
    ms += performance.now() - t0;
    lp.push(logSoftmax(l));
  }
  return { lp, ms: ms / tokens.length };
}

const path = args[3] ?? await ensureSyntheticModel("long-context");
const runtime = g.Deno ? `Deno ${g.Deno.version.deno}` : `Bun ${g.Bun?.version}`;
console.log(`${runtime}, one thread, ${new Date().toISOString().slice(0, 10)}; ${args[3] ? path.split("/").pop() : "synthetic long-context model"}, random prompt, ${STEPS} decode steps per setting`);
console.log("| positions | k | dense decode tok/s | top-k decode tok/s | speed-up | mean KL(dense || top-k) nats | max KL | top-1 agreement |");
console.log("|---|---|---|---|---|---|---|---|");
for (const N of POSITIONS) {
  const m = await loadModel(path, { threads: 1, maxSequences: 2, contextLength: N + STEPS + 16, attention: { topK: Math.max(...KS) } });
  try {
    let x = 99991;
    const prompt = Array.from({ length: N }, () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % m.vocabSize);
    const base = m.newSequence();
    (m.kv.layout as { topK?: number }).topK = 0;
    const first = await m.prefill(base, prompt);
    // the dense run's greedy tokens, fed to every setting
    const denseSeq = m.kv.fork(base);
    const tokens = [argmax(first)];
    const dense: Float64Array[] = [];
    let denseMs = 0;
    for (let i = 0; i < STEPS; i++) {
      const t0 = performance.now();
      const l = await m.decodeOne(denseSeq, tokens[i]);
      denseMs += performance.now() - t0;
      dense.push(logSoftmax(l));
      tokens.push(argmax(l));
    }
    denseMs /= STEPS;
    m.releaseSequence(denseSeq);
    for (const k of KS) {
      const seq = m.kv.fork(base);
      const sparse = await decode(m, seq, tokens.slice(0, STEPS), k);
      m.releaseSequence(seq);
      let kl = 0, klMax = 0, agree = 0;
      for (let i = 0; i < STEPS; i++) {
        let d = 0;
        for (let j = 0; j < dense[i].length; j++) d += Math.exp(dense[i][j]) * (dense[i][j] - sparse.lp[i][j]);
        kl += d;
        klMax = Math.max(klMax, d);
        if (argmax(dense[i]) === argmax(sparse.lp[i])) agree++;
      }
      console.log(
        `| ${N} | ${k} | ${(1000 / denseMs).toFixed(1)} | ${(1000 / sparse.ms).toFixed(1)} | ${(denseMs / sparse.ms).toFixed(2)}x | ` +
          `${(kl / STEPS).toExponential(2)} | ${klMax.toExponential(2)} | ${((100 * agree) / STEPS).toFixed(1)}% |`,
      );
    }
    m.releaseSequence(base);
  } finally {
    await m.close();
  }
}
