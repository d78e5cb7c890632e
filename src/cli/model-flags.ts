/**
 * The flags every model-running command shares (which model, how to load it, how to sample) and the one
 * place that turns them into loadModel's options, with the progress line for slow loads.
 */
import { MAX_THREADS } from "../threads/spawn.ts";
import { loadModel, type LoadOptions } from "../model/load.ts";
import type { Model } from "../model/model.ts";
import { KV_TYPES, type KVType } from "../backends/backend.ts";
import type { BackendName } from "../backends/select.ts";
// the CLI runs on WebGPU when asked: importing its selector registers the "webgpu" and "auto" backends
import "../backends/webgpu/select.ts";
import type { SamplingParams } from "../sampling/params.ts";
import { ParamError } from "../errors.ts";
import { parseByteSize } from "../memory/budget.ts";
import { loadProgress } from "../io/load-progress.ts";
import type { Flags, FlagSpec } from "./flags.ts";
import type { Io } from "./io.ts";

export const MODEL_FLAGS: FlagSpec[] = [
  {
    name: "model",
    kind: "string",
    value: "PATH|URL",
    help: "GGUF, llama2.c .bin, or safetensors model: a path or an http(s) URL (default: stories260K, bundled with kvasm)",
  },
  {
    name: "tokenizer",
    kind: "string",
    value: "PATH",
    help: "tokenizer for models without one (llama2.c tokenizer.bin, .model, tokenizer.json)",
  },
  { name: "context", kind: "int", min: 1, help: "positions per sequence (default: the model's)" },
  { name: "threads", kind: "int", min: 1, max: MAX_THREADS, help: "threads, the calling one included (default: one per core)" },
  { name: "kv-cache", kind: "string", value: "TYPE", help: "KV cache type: f32 (default), f16, q8_0 or u8_asym" },
  {
    name: "memory-limit",
    kind: "string",
    value: "SIZE",
    help: "most memory the model may take, e.g. 6G or 512M (default: the machine's); checked before loading",
  },
  { name: "ggml-order", kind: "boolean", help: "llama.cpp's CPU arithmetic bit for bit (F16 KV cache, matmuls in ggml's order; slower)" },
  {
    name: "attention-top-k",
    kind: "int",
    min: 0,
    value: "K",
    help: "sparse top-k attention: each row's softmax over its K best scores (long contexts; 0 = dense)",
  },
];

export const BACKEND_FLAG: FlagSpec = {
  name: "backend",
  kind: "string",
  value: "B",
  help: "wasm (default), webgpu, or auto (WebGPU when there is an adapter the model fits)",
};

export const SAMPLING_FLAGS: FlagSpec[] = [
  { name: "max-tokens", kind: "int", min: 0, help: "tokens to generate at most (default 256)" },
  { name: "temperature", kind: "number", min: 0, value: "T", help: "0 = greedy (default 1.0)" },
  { name: "top-k", kind: "int", min: 0, value: "K", help: "keep the K most likely tokens (0 = off)" },
  { name: "top-p", kind: "number", min: 0, minExclusive: true, max: 1, value: "P", help: "nucleus sampling threshold (1 = off)" },
  { name: "min-p", kind: "number", min: 0, max: 1, value: "P", help: "keep tokens with p >= P * p_max (0 = off)" },
  {
    name: "repeat-penalty",
    kind: "number",
    min: 0,
    minExclusive: true,
    value: "R",
    help: "llama.cpp repetition penalty over the last --repeat-last-n tokens (1 = off)",
  },
  { name: "repeat-last-n", kind: "int", min: -1, help: "tokens the repeat penalty looks back over (-1 = all)" },
  { name: "presence-penalty", kind: "number", value: "X", help: "OpenAI presence penalty (0 = off)" },
  { name: "frequency-penalty", kind: "number", value: "X", help: "OpenAI frequency penalty (0 = off)" },
  { name: "seed", kind: "int", min: 0, max: 0xffffffff, value: "S", help: "random seed (same seed, same tokens in every runtime)" },
];

/** The --kv-cache flag's value (dflt when absent), or a ParamError naming the choices. */
function kvCacheFlag(value: string | undefined, dflt: KVType): KVType {
  const kv = (value ?? dflt) as KVType;
  if (!KV_TYPES.includes(kv)) throw new ParamError("--kv-cache", `must be one of ${KV_TYPES.join(", ")}, got ${JSON.stringify(kv)}`);
  return kv;
}

const BACKENDS: BackendName[] = ["wasm", "webgpu", "auto"];

/** The sampling flags (SAMPLING_FLAGS but --max-tokens) as SamplingParams: the one mapping every command uses. */
export function samplingFromFlags(f: Flags): SamplingParams {
  return {
    temperature: f.number("temperature"),
    topK: f.number("top-k"),
    topP: f.number("top-p"),
    minP: f.number("min-p"),
    repeatPenalty: f.number("repeat-penalty"),
    repeatLastN: f.number("repeat-last-n"),
    presencePenalty: f.number("presence-penalty"),
    frequencyPenalty: f.number("frequency-penalty"),
    seed: f.number("seed"),
  };
}

/** loadModel's options from the model flags; everything is checked here, before a byte is read. */
export function loadOptions(f: Flags, io: Io): LoadOptions {
  const ggml = f.boolean("ggml-order");
  const backend = f.accepts("backend") ? f.string("backend") as BackendName : undefined;
  if (backend !== undefined && !BACKENDS.includes(backend)) {
    throw new ParamError("--backend", `must be one of ${BACKENDS.join(", ")}, got ${JSON.stringify(backend)}`);
  }
  const limit = f.string("memory-limit");
  const memoryLimit = limit === undefined ? undefined : parseByteSize(limit);
  if (limit !== undefined && memoryLimit === undefined) {
    throw new ParamError("--memory-limit", `must be a size such as 6G, 512M or a byte count, got ${JSON.stringify(limit)}`);
  }
  return {
    memoryLimit,
    // --ggml-order: the F16 cache (flash attention as ggml computes it) and matmuls summed in ggml's order
    ggmlOrder: ggml || undefined,
    kvCacheType: f.has("kv-cache") || ggml ? kvCacheFlag(f.string("kv-cache"), ggml ? "f16" : "f32") : undefined,
    tokenizer: f.string("tokenizer"),
    contextLength: f.number("context"),
    threads: f.number("threads"),
    backend,
    attention: f.has("attention-top-k") ? { topK: f.number("attention-top-k") } : undefined,
    onNotice: (m) => io.err(`${m}\n`),
  };
}

/**
 * Loads the model --model names (a path or an http(s) URL), with the progress line on stderr. Without --model
 * this is `loadModel()` with no input: the small story model bundled with kvasm.
 */
export function loadFromFlags(f: Flags, io: Io, opts: LoadOptions): Promise<Model> {
  const model = f.string("model");
  return loadModel(model, { ...opts, onProgress: loadProgress(model, io.err, io.errIsTTY) });
}
