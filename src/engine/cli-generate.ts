/**
 * `kvasm generate` over the engine: several --prompt flags run together as
 * one continuously batched set of requests, with the full sampling toolbox,
 * n > 1 samples, beam search, a Q8_0 KV cache, and --json output (one line
 * per finished sequence).
 */
import { loadModel, type LoadOptions } from "../model/model.ts";
import { loadProgress } from "../io/load-progress.ts";
import { ParamError } from "../errors.ts";
import type { KVType } from "../backends/backend.ts";
import { Engine } from "./engine.ts";
import type { RequestParams } from "./request.ts";

type Flags = Map<string, string[]>;

interface Io {
  out(s: string): void;
  err(s: string): void;
  errIsTTY?: boolean;
}

export const ENGINE_GENERATE_USAGE = `  --prompt TEXT       (repeatable) several prompts run together as one batch
  --n N               samples per prompt (they share the prompt's KV pages)
  --beams W           beam search of width W (--length-penalty, --early-stopping)
  --min-p P           keep tokens with p >= P * p_max (0 = off)
  --repeat-penalty R  llama.cpp repetition penalty over the last --repeat-last-n tokens (1 = off)
  --presence-penalty, --frequency-penalty   OpenAI-style penalties (0 = off)
  --stop TEXT         (repeatable) stop string, matched across token boundaries
  --logprobs N        report each token's logprob and the top N alternatives (with --json)
  --kv-cache TYPE     f32 (default), f16, q8_0 or u8_asym
  --json              one JSON line per finished sequence: prompt, text, token ids, finish reason, logprobs`;

/** Flags only the engine path understands; their presence (or several prompts) selects it. */
const ENGINE_FLAGS = ["n", "beams", "min-p", "repeat-penalty", "repeat-last-n", "presence-penalty", "frequency-penalty", "stop", "logprobs", "kv-cache", "json", "length-penalty", "early-stopping"];

const KV_TYPES: KVType[] = ["f32", "f16", "q8_0", "u8_asym"];

/** The --kv-cache flag's value (dflt when absent), or a ParamError naming the choices. */
export function kvCacheFlag(value: string | undefined, dflt: KVType): KVType {
  const kv = (value ?? dflt) as KVType;
  if (!KV_TYPES.includes(kv)) throw new ParamError("--kv-cache", `must be one of ${KV_TYPES.join(", ")}, got ${JSON.stringify(kv)}`);
  return kv;
}

export function usesEngine(f: Flags): boolean {
  return (f.get("prompt")?.length ?? 0) > 1 || ENGINE_FLAGS.some((k) => f.has(k));
}

function last(f: Flags, key: string): string | undefined {
  const v = f.get(key);
  return v?.[v.length - 1];
}

function num(f: Flags, key: string): number | undefined {
  const v = last(f, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ParamError(`--${key}`, `must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** `--prompt-ids 5,17,42` -> [5, 17, 42] (models without a tokenizer run on ids); undefined when absent. */
export function parsePromptIds(v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const ids = v.split(",").map((t) => t.trim()).filter((t) => t !== "").map(Number);
  if (ids.length === 0 || !ids.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new ParamError("--prompt-ids", `must be comma-separated non-negative integers, got ${JSON.stringify(v)}`);
  }
  return ids;
}

export async function engineGenerate(f: Flags, io: Io, load: LoadOptions): Promise<void> {
  const modelPath = last(f, "model"); // none: the model bundled with kvasm
  const ids = parsePromptIds(last(f, "prompt-ids"));
  const prompts: Array<string | number[]> = ids ? [ids] : f.get("prompt") ?? [];
  if (prompts.length === 0) throw new ParamError("--prompt", "is required");
  const json = f.has("json");
  const beams = num(f, "beams");
  const n = num(f, "n") ?? (beams ?? 1);
  const width = Math.max(n, beams ?? 0);
  const kvType = kvCacheFlag(last(f, "kv-cache"), load.kvCacheType ?? "f32");
  const params: Omit<RequestParams, "prompt"> = {
    maxTokens: num(f, "max-tokens"),
    temperature: num(f, "temperature"),
    topK: num(f, "top-k"),
    topP: num(f, "top-p"),
    minP: num(f, "min-p"),
    repeatPenalty: num(f, "repeat-penalty"),
    repeatLastN: num(f, "repeat-last-n"),
    presencePenalty: num(f, "presence-penalty"),
    frequencyPenalty: num(f, "frequency-penalty"),
    seed: num(f, "seed"),
    logprobs: num(f, "logprobs"),
    stop: f.get("stop"),
    n,
    beams,
    lengthPenalty: num(f, "length-penalty"),
    earlyStopping: f.has("early-stopping") ? last(f, "early-stopping") !== "false" : undefined,
  };
  const t0 = performance.now();
  const model = await loadModel(modelPath, {
    ...load,
    maxSequences: prompts.length * width,
    kvCacheType: kvType,
    onProgress: loadProgress(modelPath, io.err, io.errIsTTY ?? false),
  });
  const loadMs = performance.now() - t0;
  const engine = new Engine(model);
  const stream = !json && prompts.length === 1 && width === 1;
  try {
    const t1 = performance.now();
    const reqs = prompts.map((prompt) => engine.submit({ ...params, prompt }));
    let completion = 0;
    await Promise.all(reqs.map(async (r, p) => {
      if (stream && typeof prompts[p] === "string") io.out(prompts[p] as string);
      const texts: string[] = [];
      for await (const ev of r) {
        texts[ev.choice] = (texts[ev.choice] ?? "") + ev.text;
        if (stream) io.out(ev.text);
      }
      const res = await r.done;
      completion += res.usage.completionTokens;
      for (const c of res.choices) {
        if (json) {
          io.out(JSON.stringify({
            prompt: prompts[p],
            index: p,
            choice: c.index,
            text: c.text,
            tokens: c.tokens,
            finish_reason: c.finishReason,
            ...(c.stop !== undefined ? { stop: c.stop } : {}),
            ...(c.score !== undefined ? { score: c.score } : {}),
            ...(c.logprobs && params.logprobs !== undefined ? { logprobs: c.logprobs } : {}),
          }) + "\n");
        } else if (!stream) {
          io.out(`--- prompt ${p}${res.choices.length > 1 ? `, choice ${c.index}` : ""} (${c.finishReason}) ---\n${prompts[p]}${c.text}\n`);
        }
      }
      if (stream) io.out("\n");
    }));
    const s = (performance.now() - t1) / 1000;
    io.err(
      `load ${loadMs.toFixed(0)} ms | ${prompts.length} prompt(s), ${completion} tokens in ${s.toFixed(2)} s, ` +
        `${(completion / s).toFixed(1)} tok/s aggregate | ${engine.steps} steps | kv ${kvType}\n`,
    );
  } finally {
    await engine.close();
    await model.close();
  }
}
