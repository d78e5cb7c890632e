/**
 * The quantized KV caches' quality cost (Q8_0, u8_asym): the f32 cache's
 * greedy continuation is fed to each cache (teacher forcing), and at every
 * position the next-token distributions are compared: mean and max
 * KL(f32 || cache), top-1 agreement, and where free-running greedy output
 * first departs.
 *
 *   deno run -A bench/engine-kv-quality.ts [model.gguf] [tokens] [types]
 *   (default: ../shared stories260K, 400, q8_0,u8_asym)
 */
import { loadModel } from "../src/model/load.ts";
import { argmax, logSoftmax } from "../src/sampling/sampler.ts";
import type { Model } from "../src/model/model.ts";
import { KV_TYPES, type KVType } from "../src/backends/backend.ts";
import { benchArgs, intFlag, listFlag } from "./cli.ts";

const USAGE = `The quantized KV caches' quality cost: the f32 cache's greedy continuation fed to each cache; mean and max
KL(f32 || cache), top-1 agreement, and where free-running greedy output first departs.

  deno run -A bench/engine-kv-quality.ts [MODEL.gguf] [TOKENS] [TYPES]

  MODEL.gguf     default ../shared/models/stories260K/stories260K.gguf
  TOKENS         positions compared (default 400)
  TYPES          KV cache types (default q8_0,u8_asym)
  -h, --help     this text`;
const { positionals: args } = benchArgs(
  USAGE,
  { options: { help: { type: "boolean", short: "h" } }, allowPositionals: true },
);
const path = args[0] ?? new URL("../../shared/models/stories260K/stories260K.gguf", import.meta.url).pathname;
const N = intFlag(USAGE, "TOKENS", args[1] ?? "400");
const TYPES = listFlag(USAGE, "TYPES", args[2] ?? "q8_0,u8_asym", KV_TYPES);

async function greedy(m: Model, prompt: number[], n: number): Promise<number[]> {
  const seq = m.newSequence();
  let l = await m.prefill(seq, prompt);
  const out: number[] = [];
  for (let i = 0; i < n && seq.length < m.contextLength; i++) {
    const best = argmax(l);
    out.push(best);
    l = await m.decodeOne(seq, best);
  }
  m.releaseSequence(seq);
  return out;
}

async function distributions(kvCacheType: KVType, tokens: number[], promptLen: number): Promise<Float64Array[]> {
  const m = await loadModel(path, { kvCacheType });
  const seq = m.newSequence();
  const out: Float64Array[] = [logSoftmax(await m.prefill(seq, tokens.slice(0, promptLen)))];
  for (let i = promptLen; i < tokens.length - 1; i++) out.push(logSoftmax(await m.decodeOne(seq, tokens[i])));
  await m.close();
  return out;
}

const mf = await loadModel(path);
const prompt = mf.tokenizer.encode("Once upon a time");
const n = Math.min(N, mf.contextLength - prompt.length);
const ref = await greedy(mf, prompt, n);
await mf.close();
const tokens = [...prompt, ...ref];
const pf = await distributions("f32", tokens, prompt.length);
const mf2 = await loadModel(path);
const f32Page = mf2.kv.layout.pageBytes;
await mf2.close();
console.log(`${path.split("/").pop()}: ${pf.length} positions teacher-forced`);
for (const type of TYPES) {
  const mq = await loadModel(path, { kvCacheType: type });
  const q = await greedy(mq, prompt, n);
  const page = mq.kv.layout.pageBytes;
  await mq.close();
  const pq = await distributions(type, tokens, prompt.length);
  let klSum = 0, klMax = 0, agree = 0;
  for (let i = 0; i < pf.length; i++) {
    let kl = 0, af = 0, aq = 0;
    for (let j = 0; j < pf[i].length; j++) {
      kl += Math.exp(pf[i][j]) * (pf[i][j] - pq[i][j]);
      if (pf[i][j] > pf[i][af]) af = j;
      if (pq[i][j] > pq[i][aq]) aq = j;
    }
    klSum += kl;
    klMax = Math.max(klMax, kl);
    if (af === aq) agree++;
  }
  let departs = 0;
  while (departs < ref.length && ref[departs] === q[departs]) departs++;
  console.log(`${type}:`);
  console.log(`  KV bytes: ${type} / f32 = ${(page / f32Page).toFixed(3)}`);
  console.log(`  KL(f32 || ${type}) per position: mean ${(klSum / pf.length).toExponential(2)}, max ${klMax.toExponential(2)} nats`);
  console.log(`  top-1 agreement: ${((100 * agree) / pf.length).toFixed(1)}%`);
  console.log(`  free-running greedy output departs at generated token ${departs === ref.length ? `never (of ${ref.length})` : departs}`);
}
