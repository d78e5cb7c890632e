/**
 * Attention inside real decode and prefill steps (the WASM backend's OpProfile, one thread or `--threads`): a synthetic
 * stories110M-shaped model (bench/models, as bench/peers.ts makes them), a prefill of 128 ids, then `--tokens`
 * decode steps whose decode row takes, token by token in turn, the decode kernel (attention_stream: each page's
 * K and V swept into cache first) and the prefill rows' kernel (`attention`) over the same cache: the same bits,
 * so the tokens are the same whichever runs, and the two kernels meet the same load. Prints each one's
 * attention µs per token (median and best of its tokens) and the whole step's, and attention's share of the
 * prefill step.
 *
 *   deno run -A bench/attention-decode.ts [--type Q4_0] [--tokens 48] [--threads 1] [--help]
 *   bun bench/attention-decode.ts ...
 */
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import type { AttentionKernel } from "../src/kernels/spec.ts";
import type { KVLayout } from "../src/backends/backend.ts";
import { benchArgs, choiceFlag, intFlag, median, runStamp, runtime } from "./cli.ts";

const USAGE = `Attention inside real decode and prefill steps: the decode kernel against the prefill rows' kernel, token by token.

  deno run -A bench/attention-decode.ts [options]        bun bench/attention-decode.ts [options]

  --type T        weight type of the synthetic stories110M model (default Q4_0; F32, Q8_0, Q4_0, Q4_K_M)
  --tokens N      decode steps after the 128-id prefill, 2-384 (default 48)
  --threads N     worker threads (default 1; the thread pool splits each attention call by heads)
  -h, --help      this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    type: { type: "string", default: "Q4_0" },
    tokens: { type: "string", default: "48" },
    threads: { type: "string", default: "1" },
    help: { type: "boolean", short: "h" },
  },
});
// tokens alternate between the two kernels (at least one each), after the 128-id prompt in a 512-position context
const N_PROMPT = 128, tokens = intFlag(USAGE, "tokens", opts.tokens, 2, 512 - N_PROMPT), threads = intFlag(USAGE, "threads", opts.threads);
const type = choiceFlag(USAGE, "type", opts.type, SYNTHETIC_TYPES);

const path = await ensureSyntheticModel("stories110M", type);
const model = await loadModel(path, { contextLength: 512, threads });
const backend = model.backend;
if (!(backend instanceof WasmBackend)) throw new Error("needs the WASM backend");

// the backend's choice, with the decode kernel swapped for the prefill rows' one on `plain` tokens
type Chooser = { attentionKernel(kv: KVLayout, T: number, pos: number, decodeRow?: boolean): AttentionKernel };
const chooser = backend as unknown as Chooser;
const choose = chooser.attentionKernel.bind(backend);
let plain = false;
chooser.attentionKernel = (kv, T, pos, decodeRow) => {
  const k = choose(kv, T, pos, decodeRow);
  if (!plain) return k;
  return k === "attention_stream" ? "attention" : k === "attention_f16_stream" ? "attention_f16_twopass" : k;
};

let s = 12345;
const ids = [1];
while (ids.length < N_PROMPT) ids.push(3 + ((s = (s * 1103515245 + 12345) >>> 0) % 31990));
// warm-up (compile tiers, touch pages)
let seq = model.newSequence();
await model.prefill(seq, ids.slice(0, 16));
for (let i = 0; i < 4; i++) await model.decodeOne(seq, 400 + i);
model.releaseSequence(seq);

const prof = new OpProfile();
backend.profile = prof;
const attentionMs = () => prof.totals.get("attention")?.ms ?? 0;
seq = model.newSequence();
let t0 = performance.now();
let logits = await model.prefill(seq, ids);
const prefillMs = performance.now() - t0, prefillAttMs = attentionMs();
const per: Record<"stream" | "plain", { att: number[]; step: number[] }> = { stream: { att: [], step: [] }, plain: { att: [], step: [] } };
let token = ids[5];
for (let i = 0; i < tokens; i++) {
  plain = i % 2 === 1;
  const a0 = attentionMs();
  t0 = performance.now();
  logits = await model.decodeOne(seq, token);
  const stepMs = performance.now() - t0;
  per[plain ? "plain" : "stream"].att.push(1000 * (attentionMs() - a0));
  per[plain ? "plain" : "stream"].step.push(1000 * stepMs);
  token = argmax(logits);
}
backend.profile = null;
model.releaseSequence(seq);
await model.close();

const best = (a: number[]) => Math.min(...a);
console.log(`attention in decode steps, ${type} stories110M, positions ${N_PROMPT}-${N_PROMPT + tokens}, ${threads} thread(s)`);
console.log(`${runtime}, ${runStamp()}`);
for (const k of ["stream", "plain"] as const) {
  const p = per[k];
  console.log(
    `  ${k === "stream" ? "decode kernel (attention_stream)" : "prefill rows' kernel (attention)"}`.padEnd(40) +
      ` attention ${median(p.att).toFixed(0)} µs median, ${best(p.att).toFixed(0)} best; step ${median(p.step).toFixed(0)} µs median, ${
        best(p.step).toFixed(0)
      } best (${p.att.length} tokens)`,
  );
}
console.log(
  `  decode kernel's speed over the prefill rows' kernel: ${(median(per.plain.att) / median(per.stream.att)).toFixed(2)}x median, ${
    (best(per.plain.att) / best(per.stream.att)).toFixed(2)
  }x best; attention's share of the step ${(100 * median(per.stream.att) / median(per.stream.step)).toFixed(1)}% (stream), ${
    (100 * median(per.plain.att) / median(per.plain.step)).toFixed(1)
  }% (plain)`,
);
console.log(
  `  prefill of ${N_PROMPT}: ${(1000 * prefillMs / N_PROMPT).toFixed(0)} µs per token, attention ${
    (1000 * prefillAttMs / N_PROMPT).toFixed(1)
  } µs (${(100 * prefillAttMs / prefillMs).toFixed(1)}% of the step)`,
);
