/**
 * ModelConfig from GGUF-style metadata keys (`{arch}.embedding_length`, ...),
 * which every loader produces, and a shape check of the llama tensor set
 * against it, so a bad file fails at load with a named tensor, not in forward.
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { MetadataValue, ModelFile } from "../formats/types.ts";
import type { ModelConfig } from "./config.ts";

/**
 * Architectures whose math is llama's: Mistral adds a sliding window, Qwen2
 * biases on Q/K/V, Phi-3 fuses QKV and gate/up (split by views, src/models/phi3.ts).
 */
const LLAMA_LIKE = ["llama", "mistral", "qwen2", "phi3"];

/** llama.cpp runs these with NEOX-style RoPE (rotated halves); its llama files hold Q/K rows permuted back to interleaved pairs. */
const ROPE_HALVES = ["qwen2", "phi3", "gptneox"];

export class MetadataReader {
  constructor(readonly file: ModelFile, readonly name: string, readonly arch: string) {}

  private fail(problem: string): never {
    throw new FormatError(this.name, problem);
  }

  private value(key: string): MetadataValue | undefined {
    return this.file.metadata.get(key.startsWith(".") ? this.arch + key : key);
  }

  /** A non-negative number; `key` starting with "." is relative to the architecture. */
  number(key: string, fallback?: number): number {
    const full = key.startsWith(".") ? this.arch + key : key;
    const v = this.value(key);
    if (v === undefined) {
      if (fallback === undefined) this.fail(`metadata key "${full}" is missing`);
      return fallback;
    }
    if (typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= 0n) return Number(v);
    if (typeof v !== "number" || !Number.isFinite(v)) {
      if (typeof v === "object") {
        throw new UnsupportedError(`${this.name}: metadata "${full}" is a per-layer array; kvasm needs one value for all layers`);
      }
      this.fail(`metadata "${full}" must be a number, found ${String(v)}`);
    }
    return v;
  }

  /** A string value, or undefined. */
  string(key: string): string | undefined {
    const v = this.value(key);
    return typeof v === "string" ? v : undefined;
  }

  /** A boolean value (GGUF bool, or a number), or the fallback. */
  bool(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (typeof v === "boolean") return v;
    if (typeof v === "number" || typeof v === "bigint") return Number(v) !== 0;
    this.fail(`metadata "${key.startsWith(".") ? this.arch + key : key}" must be a boolean, found ${String(v)}`);
  }

  /** A positive integer (dimensions, counts). */
  count(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v <= 0) {
      this.fail(`metadata "${key.startsWith(".") ? this.arch + key : key}" must be a positive integer, found ${v}`);
    }
    return v;
  }
}

export function llamaConfigFromMetadata(file: ModelFile, name: string = file.source.name): ModelConfig {
  const arch = file.metadata.get("general.architecture");
  if (arch === undefined) throw new FormatError(name, 'metadata key "general.architecture" is missing');
  if (typeof arch !== "string") throw new FormatError(name, `metadata "general.architecture" must be a string, found ${String(arch)}`);
  if (!LLAMA_LIKE.includes(arch)) {
    throw new UnsupportedError(`${name}: architecture "${arch}" is not supported by the llama loader (it reads ${LLAMA_LIKE.join(", ")})`);
  }
  const m = new MetadataReader(file, name, arch);
  const fail: (problem: string) => never = (problem) => {
    throw new FormatError(name, problem);
  };

  const dim = m.count(".embedding_length");
  const hiddenDim = m.count(".feed_forward_length");
  const nLayers = m.count(".block_count");
  const nHeads = m.count(".attention.head_count");
  const nKvHeads = m.count(".attention.head_count_kv", nHeads);
  const contextLength = m.count(".context_length");
  if (!file.metadata.has(`${arch}.attention.key_length`) && dim % nHeads !== 0) {
    fail(`${arch}.attention.head_count ${nHeads} does not divide ${arch}.embedding_length ${dim}`);
  }
  // Some models (e.g. with head_dim * n_heads != dim) declare the head size explicitly.
  const headDim = m.count(".attention.key_length", dim / nHeads);
  const valueLength = m.count(".attention.value_length", headDim);
  if (valueLength !== headDim) throw new UnsupportedError(`${name}: key length ${headDim} differs from value length ${valueLength}`);
  if (nHeads % nKvHeads !== 0) fail(`${arch}.attention.head_count_kv ${nKvHeads} does not divide head_count ${nHeads}`);
  const ropeDim = m.count(".rope.dimension_count", headDim);
  if (ropeDim > headDim || ropeDim % 2 !== 0) {
    fail(`${arch}.rope.dimension_count ${ropeDim} must be even and at most the head size ${headDim}`);
  }
  const ropeTheta = m.number(".rope.freq_base", 10000);
  const normEps = m.number(".attention.layer_norm_rms_epsilon", 1e-5);
  const ropeScaling = llama3RopeScaling(m, file);
  const slidingWindow = file.metadata.has(`${arch}.attention.sliding_window`) ? m.count(".attention.sliding_window") : undefined;

  let vocabSize: number;
  const tokens = file.metadata.get("tokenizer.ggml.tokens");
  const embd = file.tensors.get("token_embd.weight");
  if (file.metadata.has(`${arch}.vocab_size`)) vocabSize = m.count(".vocab_size");
  else if (Array.isArray(tokens)) vocabSize = tokens.length;
  else if (embd && embd.shape.length === 2) vocabSize = embd.shape[1];
  else fail(`vocabulary size unknown: no "${arch}.vocab_size", "tokenizer.ggml.tokens" or token_embd.weight`);

  const config: ModelConfig = {
    arch,
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    vocabSize: vocabSize!,
    contextLength,
    ropeTheta,
    ropeDim,
    // Hugging Face llama checkpoints keep Q/K rows in rotate_half order; GGUF llama files in interleaved pairs
    ropeStyle: ROPE_HALVES.includes(arch) || file.format === "safetensors" ? "halves" : "interleaved",
    normEps,
  };
  if (slidingWindow !== undefined) config.slidingWindow = slidingWindow;
  if (ropeScaling) config.ropeScaling = ropeScaling;
  return config;
}

/**
 * Llama 3 frequency scaling from `{arch}.rope.scaling.*` keys (what the Hugging Face
 * mapping writes). A llama.cpp GGUF holds the same as a `rope_freqs.weight` tensor of
 * per-frequency divisors instead, which the model applies at load: then no keys are read.
 */
function llama3RopeScaling(m: MetadataReader, file: ModelFile): ModelConfig["ropeScaling"] {
  if (m.string(".rope.scaling.type") !== "llama3" || file.tensors.has("rope_freqs.weight")) return undefined;
  return {
    factor: m.number(".rope.scaling.factor"),
    lowFreqFactor: m.number(".rope.scaling.low_freq_factor", 1),
    highFreqFactor: m.number(".rope.scaling.high_freq_factor", 4),
    originalContext: m.count(".rope.scaling.original_context_length"),
  };
}

/** The GPT-2 / GPT-NeoX / BLOOM / MPT family: LayerNorm, GELU, fused QKV (with biases, except MPT's no_bias). */
export interface GPTConfig extends ModelConfig {
  activation: "gelu_tanh" | "gelu_erf";
  /** GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x)) instead of two residual steps. */
  parallelResidual: boolean;
  /** GPT-2: a learned position embedding table (and no RoPE). */
  learnedPositions: boolean;
}

const GPT_FAMILY = ["gpt2", "gptneox", "bloom", "mpt"];

/**
 * GPTConfig from `gpt2.*`, `gptneox.*`, `bloom.*` or `mpt.*` keys (llama.cpp's names). GELU: GPT-2 and
 * BLOOM use the tanh approximation, GPT-NeoX / Pythia and MPT the exact erf form (nn.GELU, as transformers
 * runs MPT), unless `{arch}.hidden_act` (written by the Hugging Face mapping) says otherwise. BLOOM and MPT
 * position by ALiBi: BLOOM with llama.cpp's fixed maximum bias 8, MPT with `mpt.attention.max_alibi_bias`.
 */
export function gptConfigFromMetadata(file: ModelFile, name: string = file.source.name): GPTConfig {
  const arch = file.metadata.get("general.architecture");
  if (typeof arch !== "string" || !GPT_FAMILY.includes(arch)) {
    throw new UnsupportedError(`${name}: architecture "${String(arch)}" is not one of ${GPT_FAMILY.join(", ")}`);
  }
  const m = new MetadataReader(file, name, arch);
  if (arch === "mpt" && file.metadata.has("mpt.attention.clamp_kqv")) {
    throw new UnsupportedError(`${name}: MPT with clip_qkv (mpt.attention.clamp_kqv) is not supported`);
  }
  const dim = m.count(".embedding_length");
  const nHeads = m.count(".attention.head_count");
  if (dim % nHeads !== 0) {
    throw new FormatError(name, `${arch}.attention.head_count ${nHeads} does not divide ${arch}.embedding_length ${dim}`);
  }
  const headDim = dim / nHeads;
  const ropeDim = arch === "gptneox" ? m.count(".rope.dimension_count", headDim) : headDim;
  if (ropeDim > headDim || ropeDim % 2 !== 0) {
    throw new FormatError(name, `${arch}.rope.dimension_count ${ropeDim} must be even and at most the head size ${headDim}`);
  }
  const act = m.string(".hidden_act") ?? (arch === "gpt2" || arch === "bloom" ? "gelu_new" : "gelu");
  const TANH = ["gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_tanh"];
  if (!TANH.includes(act) && act !== "gelu") {
    throw new UnsupportedError(`${name}: activation "${act}" is not supported (kvasm runs gelu, ${TANH.join(", ")})`);
  }
  const embd = file.tensors.get("token_embd.weight");
  const vocabSize = file.metadata.has(`${arch}.vocab_size`)
    ? m.count(".vocab_size")
    : embd?.shape.length === 2
    ? embd.shape[1]
    : Array.isArray(file.metadata.get("tokenizer.ggml.tokens"))
    ? (file.metadata.get("tokenizer.ggml.tokens") as unknown[]).length
    : m.count(".vocab_size");
  const alibiMaxBias = arch === "bloom" ? 8 : arch === "mpt" ? m.number(".attention.max_alibi_bias", 8) : undefined;
  const config: GPTConfig = {
    arch,
    dim,
    hiddenDim: m.count(".feed_forward_length"),
    nLayers: m.count(".block_count"),
    nHeads,
    nKvHeads: nHeads,
    headDim,
    vocabSize,
    contextLength: m.count(".context_length"),
    ropeTheta: m.number(".rope.freq_base", 10000),
    ropeDim,
    ropeStyle: "halves",
    normEps: m.number(".attention.layer_norm_epsilon", 1e-5),
    activation: TANH.includes(act) ? "gelu_tanh" : "gelu_erf",
    parallelResidual: arch === "gptneox" && m.bool(".use_parallel_residual", true),
    learnedPositions: arch === "gpt2",
  };
  if (alibiMaxBias !== undefined) {
    if (!(alibiMaxBias > 0)) throw new FormatError(name, `${arch}.attention.max_alibi_bias must be positive, found ${alibiMaxBias}`);
    config.alibiMaxBias = alibiMaxBias;
  }
  return config;
}

/** The llama tensor set and each tensor's ggml shape (`output.weight` is absent when tied to the embedding). */
export function llamaTensorShapes(config: ModelConfig): Map<string, number[]> {
  const { dim, hiddenDim, vocabSize } = config;
  const qDim = config.nHeads * config.headDim, kvDim = config.nKvHeads * config.headDim;
  const shapes = new Map<string, number[]>([
    ["token_embd.weight", [dim, vocabSize]],
    ["output_norm.weight", [dim]],
  ]);
  for (let l = 0; l < config.nLayers; l++) {
    const p = `blk.${l}.`;
    shapes.set(p + "attn_norm.weight", [dim]);
    shapes.set(p + "attn_q.weight", [dim, qDim]);
    shapes.set(p + "attn_k.weight", [dim, kvDim]);
    shapes.set(p + "attn_v.weight", [dim, kvDim]);
    shapes.set(p + "attn_output.weight", [qDim, dim]);
    shapes.set(p + "ffn_norm.weight", [dim]);
    shapes.set(p + "ffn_gate.weight", [dim, hiddenDim]);
    shapes.set(p + "ffn_up.weight", [dim, hiddenDim]);
    shapes.set(p + "ffn_down.weight", [hiddenDim, dim]);
  }
  return shapes;
}

/** Asserts every llama tensor is present with the shape `config` implies; output.weight may be missing (tied). */
export function checkTensorShapes(file: ModelFile, config: ModelConfig, name: string = file.source.name): void {
  const expected = llamaTensorShapes(config);
  const output = file.tensors.get("output.weight");
  if (output) expected.set("output.weight", [config.dim, config.vocabSize]);
  for (const [tensor, shape] of expected) {
    const info = file.tensors.get(tensor);
    if (!info) throw new FormatError(name, `tensor "${tensor}" is missing (expected shape [${shape.join(", ")}])`);
    if (!sameShape(info.shape, shape)) {
      throw new FormatError(name, `tensor "${tensor}" has shape [${info.shape.join(", ")}], expected [${shape.join(", ")}]`);
    }
  }
}

/** Equal up to trailing 1s (a [n] vector and an [n, 1] matrix hold the same bytes). */
function sameShape(a: number[], b: number[]): boolean {
  const trim = (s: number[]) => {
    const t = [...s];
    while (t.length > 1 && t[t.length - 1] === 1) t.pop();
    return t;
  };
  const x = trim(a), y = trim(b);
  return x.length === y.length && x.every((n, i) => n === y[i]);
}
