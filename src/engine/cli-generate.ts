/**
 * `kvasm generate`: one prompt streamed through generate() (the plain path), or, when several --prompt
 * flags or any engine-only flag are given, the engine path: continuously batched requests with the full
 * sampling toolbox, n > 1 samples, beam search, a Q8_0 KV cache, and --json output (one line per
 * finished sequence).
 */
import { generate } from "../generate.ts";
import { ParamError } from "../errors.ts";
import type { LoadOptions } from "../model/load.ts";
import { Engine } from "./engine.ts";
import { promptIds } from "./decoder.ts";
import type { RequestParams } from "./request.ts";
import type { CommandSpec, Flags } from "../cli/flags.ts";
import type { Io } from "../cli/io.ts";
import { BACKEND_FLAG, loadFromFlags, loadOptions, MODEL_FLAGS, SAMPLING_FLAGS, samplingFromFlags } from "../cli/model-flags.ts";

export const GENERATE_COMMAND: CommandSpec = {
  name: "generate",
  summary: "Continue a prompt: text to stdout as it is generated, timings to stderr.",
  usage: "kvasm generate [--model PATH|URL] --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [...]",
  flags: [
    ...MODEL_FLAGS,
    BACKEND_FLAG,
    { name: "prompt", kind: "string", multiple: true, value: "TEXT", help: "text to continue; several run together as one batch" },
    {
      name: "prompt-ids",
      kind: "string",
      value: "IDS",
      help: "token ids to continue instead, comma-separated (5,17,42): runs models without a tokenizer",
    },
    ...SAMPLING_FLAGS,
    { name: "n", kind: "int", min: 1, help: "samples per prompt (they share the prompt's KV pages)" },
    { name: "beams", kind: "int", min: 1, value: "W", help: "beam search of width W (--length-penalty, --early-stopping)" },
    { name: "length-penalty", kind: "number", value: "X", help: "beam score = logprob sum / length ** X (default 1)" },
    { name: "early-stopping", kind: "boolean", help: "beam search ends once W hypotheses have finished" },
    { name: "stop", kind: "string", multiple: true, value: "TEXT", help: "stop string, matched across token boundaries" },
    { name: "logprobs", kind: "int", min: 0, help: "report each token's logprob and the top N alternatives (with --json)" },
    { name: "json", kind: "boolean", help: "one JSON line per finished sequence: prompt, text, token ids, finish reason, logprobs" },
  ],
  notes: `Several --prompt flags, --n, --beams, --min-p, the penalties, --stop, --logprobs, --kv-cache or --json run
the batching engine; otherwise one prompt streams through generate().`,
};

/** Flags only the engine path understands; their presence (or several prompts) selects it. */
const ENGINE_FLAGS = [
  "n",
  "beams",
  "min-p",
  "repeat-penalty",
  "repeat-last-n",
  "presence-penalty",
  "frequency-penalty",
  "stop",
  "logprobs",
  "kv-cache",
  "json",
  "length-penalty",
  "early-stopping",
];

function usesEngine(f: Flags): boolean {
  return f.strings("prompt").length > 1 || ENGINE_FLAGS.some((k) => f.has(k));
}

/** `--prompt-ids 5,17,42` -> [5, 17, 42] (models without a tokenizer run on ids); undefined when absent. */
function parsePromptIds(v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  const ids = v.split(",").map((t) => t.trim()).filter((t) => t !== "").map(Number);
  if (ids.length === 0 || !ids.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new ParamError("--prompt-ids", `must be comma-separated non-negative integers, got ${JSON.stringify(v)}`);
  }
  return ids;
}

export function cmdGenerate(f: Flags, io: Io): Promise<void> {
  const load = loadOptions(f, io);
  // token ids run models that ship no tokenizer (and skip tokenization when comparing with a reference)
  const ids = parsePromptIds(f.string("prompt-ids"));
  const prompts: Array<string | number[]> = ids ? [ids] : f.strings("prompt");
  if (prompts.length === 0) throw new ParamError("--prompt", "is required (or --prompt-ids)");
  return usesEngine(f) ? engineGenerate(f, io, load, prompts) : plainGenerate(f, io, load, prompts[0]);
}

async function plainGenerate(f: Flags, io: Io, load: LoadOptions, prompt: string | number[]): Promise<void> {
  const t0 = performance.now();
  const model = await loadFromFlags(f, io, load);
  const loadMs = performance.now() - t0;
  try {
    // the plain path is taken only without the engine's flags (min-p, penalties, ...): those are undefined here
    // tokenized (and checked) before the prompt is echoed: a model without a tokenizer refuses it here, and
    // its error must not follow the prompt on stdout's line ("hikvasm: ParamError: ...")
    const ids = promptIds(model, prompt);
    const gen = generate(model, ids, { ...samplingFromFlags(f), maxTokens: f.number("max-tokens") });
    if (typeof prompt === "string") io.out(prompt);
    let r = await gen.next();
    while (!r.done) {
      io.out(r.value);
      r = await gen.next();
    }
    io.out("\n");
    const s = r.value;
    const prefillTps = s.promptTokens.length / (s.prefillMs / 1000);
    const decodeTps = s.tokens.length > 1 ? (s.tokens.length - 1) / (s.decodeMs / 1000) : 0;
    io.err(
      `${model.backend.name} | load ${loadMs.toFixed(0)} ms | prefill ${s.promptTokens.length} tokens, ${prefillTps.toFixed(1)} tok/s | ` +
        `decode ${s.tokens.length} tokens, ${decodeTps.toFixed(1)} tok/s | ${s.finishReason}\n`,
    );
  } finally {
    await model.close();
  }
}

async function engineGenerate(f: Flags, io: Io, load: LoadOptions, prompts: Array<string | number[]>): Promise<void> {
  const json = f.boolean("json");
  const beams = f.number("beams");
  const n = f.number("n") ?? (beams ?? 1);
  if (beams !== undefined && n > beams) throw new ParamError("--n", `must be at most --beams (${beams}), got ${n}`);
  const width = Math.max(n, beams ?? 0);
  const kvType = load.kvCacheType ?? "f32";
  const params: Omit<RequestParams, "prompt"> = {
    ...samplingFromFlags(f),
    maxTokens: f.number("max-tokens"),
    logprobs: f.number("logprobs"),
    stop: f.has("stop") ? f.strings("stop") : undefined,
    n,
    beams,
    lengthPenalty: f.number("length-penalty"),
    earlyStopping: f.has("early-stopping") ? true : undefined,
    // the events are read for their text only; --logprobs' figures come from the choices (logprobs keeps them)
    tokenLogprobs: false,
  };
  const t0 = performance.now();
  const model = await loadFromFlags(f, io, { ...load, maxSequences: prompts.length * width, kvCacheType: kvType });
  const loadMs = performance.now() - t0;
  const engine = new Engine(model);
  const stream = !json && prompts.length === 1 && width === 1;
  try {
    const t1 = performance.now();
    const reqs = prompts.map((prompt) => engine.submit({ ...params, prompt }));
    let completion = 0;
    await Promise.all(reqs.map(async (r, p) => {
      if (stream && typeof prompts[p] === "string") io.out(prompts[p] as string);
      for await (const ev of r) if (stream) io.out(ev.text);
      const res = await r.done;
      completion += res.usage.completionTokens;
      for (const c of res.choices) {
        if (json) {
          io.out(
            JSON.stringify({
              prompt: prompts[p],
              index: p,
              choice: c.index,
              text: c.text,
              tokens: c.tokens,
              finish_reason: c.finishReason,
              ...(c.stop !== undefined ? { stop: c.stop } : {}),
              ...(c.score !== undefined ? { score: c.score } : {}),
              ...(c.logprobs && params.logprobs !== undefined ? { logprobs: c.logprobs } : {}),
            }) + "\n",
          );
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
