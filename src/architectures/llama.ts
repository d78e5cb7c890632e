/**
 * Llama (and Mistral, its sliding window from the metadata): RMSNorm, RoPE,
 * grouped-query attention, a SwiGLU MLP. Qwen2 and Phi-3 reuse its graph
 * (qwen2.ts, phi3.ts). llama2.c .bin files load as "llama" too
 * (src/formats/llama2c.ts), with run.c's RoPE angles.
 */
import type { Backend, KVLayout, Weight } from "../backends/backend.ts";
import type { DerivedConfig, ModelConfig } from "../model/config.ts";
import type { WeightSet } from "../model/weights.ts";
import type { ModelFile } from "../formats/types.ts";
import type { MetadataValue } from "../formats/types.ts";
import { FormatError, UnsupportedError } from "../errors.ts";
import { architectureName, MetadataReader } from "../model/from-metadata.ts";
import { type ConfigReader, headDimOf, type NameRule, ropeDimOf } from "../model/config-json.ts";
import type { Architecture, RunState } from "./architecture.ts";
import { type ExpectedTensors, linear } from "./blocks.ts";

/** One decoder block's weights (llama.cpp names in comments). Shapes are (rows, cols) = (out, in). */
export interface LlamaLayer {
  attnNorm: Weight; // blk.N.attn_norm (dim)
  wq: Weight; // blk.N.attn_q (qDim, dim)
  wk: Weight; // blk.N.attn_k (kvDim, dim)
  wv: Weight; // blk.N.attn_v (kvDim, dim)
  wo: Weight; // blk.N.attn_output (dim, qDim)
  ffnNorm: Weight; // blk.N.ffn_norm (dim)
  wGate: Weight; // blk.N.ffn_gate (hidden, dim)
  wUp: Weight; // blk.N.ffn_up (hidden, dim)
  wDown: Weight; // blk.N.ffn_down (dim, hidden)
  // biases of Qwen2 (q, k, v) and of llama models with attention_bias (all four)
  bq?: Weight; // blk.N.attn_q.bias (qDim)
  bk?: Weight; // blk.N.attn_k.bias (kvDim)
  bv?: Weight; // blk.N.attn_v.bias (kvDim)
  bo?: Weight; // blk.N.attn_output.bias (dim)
}

export interface LlamaWeights {
  tokenEmbd: Weight; // token_embd (vocab, dim)
  layers: LlamaLayer[];
  outputNorm: Weight; // output_norm (dim)
  output: Weight; // output (vocab, dim), or token_embd when tied
}

/**
 * Every tensor of the llama graph with the ggml shape the configuration implies:
 * Q/K/V/output biases are optional (Qwen2 has the first three), output.weight too (tied).
 */
export function llamaExpectedTensors(c: DerivedConfig): ExpectedTensors {
  const { dim, hiddenDim, qDim, kvDim, vocabSize } = c;
  const required = new Map<string, number[]>([["token_embd.weight", [dim, vocabSize]], ["output_norm.weight", [dim]]]);
  const optional = new Map<string, number[]>([["output.weight", [dim, vocabSize]]]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    required.set(p + "attn_norm.weight", [dim]);
    required.set(p + "attn_q.weight", [dim, qDim]);
    required.set(p + "attn_k.weight", [dim, kvDim]);
    required.set(p + "attn_v.weight", [dim, kvDim]);
    required.set(p + "attn_output.weight", [qDim, dim]);
    required.set(p + "ffn_norm.weight", [dim]);
    required.set(p + "ffn_gate.weight", [dim, hiddenDim]);
    required.set(p + "ffn_up.weight", [dim, hiddenDim]);
    required.set(p + "ffn_down.weight", [hiddenDim, dim]);
    optional.set(p + "attn_q.bias", [qDim]);
    optional.set(p + "attn_k.bias", [kvDim]);
    optional.set(p + "attn_v.bias", [kvDim]);
    optional.set(p + "attn_output.bias", [dim]);
  }
  return { required, optional };
}

export function bindLlamaWeights(c: DerivedConfig, w: WeightSet): LlamaWeights {
  const layers: LlamaLayer[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    layers.push({
      attnNorm: w.get(p + "attn_norm.weight"),
      wq: w.get(p + "attn_q.weight"),
      wk: w.get(p + "attn_k.weight"),
      wv: w.get(p + "attn_v.weight"),
      wo: w.get(p + "attn_output.weight"),
      ffnNorm: w.get(p + "ffn_norm.weight"),
      wGate: w.get(p + "ffn_gate.weight"),
      wUp: w.get(p + "ffn_up.weight"),
      wDown: w.get(p + "ffn_down.weight"),
      bq: w.maybe(p + "attn_q.bias"),
      bk: w.maybe(p + "attn_k.bias"),
      bv: w.maybe(p + "attn_v.bias"),
      bo: w.maybe(p + "attn_output.bias"),
    });
  }
  const tokenEmbd = w.get("token_embd.weight");
  return { tokenEmbd, layers, outputNorm: w.get("output_norm.weight"), output: w.maybe("output.weight") ?? tokenEmbd };
}

/**
 * The llama forward pass over a batch of T token rows (one prompt's chunk,
 * or one token of each of several sequences): llama2.c's forward(), with
 * every row's position and page table given in `state.rows`.
 * Writes logits for the rows listed in `logitRows` to state.logits.
 */
export function llamaForward(
  b: Backend,
  c: DerivedConfig,
  w: LlamaWeights,
  s: RunState,
  kv: KVLayout,
  T: number,
  logitRows: ArrayLike<number>,
): void {
  const { dim, hiddenDim, headDim, ropeDim, normEps } = c;
  const halves = c.ropeStyle === "halves";
  // logitRows is strictly increasing (row i of the output comes from row logitRows[i] >= i)
  const nOut = logitRows.length;
  let rows = T;

  // token embeddings
  b.embed(s.x, w.tokenEmbd, s.tokens, T);

  for (let l = 0; l < c.nLayers; l++) {
    const L = w.layers[l];

    // attention rmsnorm
    b.rmsnorm(s.xb, s.x, L.attnNorm, dim, normEps, T);

    // q, k, v projections for these rows (xb quantized once for the three where their types agree)
    linear(b, s.q, s.xb, L.wq, L.bq, T);
    linear(b, s.k, s.xb, L.wk, L.bk, T, true);
    linear(b, s.v, s.xb, L.wv, L.bv, T, true);

    // rotary position embedding of q and k
    b.rope(s.q, s.ropeTable, s.positions, T, c.nHeads, headDim, ropeDim, halves);
    b.rope(s.k, s.ropeTable, s.positions, T, c.nKvHeads, headDim, ropeDim, halves);

    // KVCache.update: k and v go to their slots in the sequences' pages
    b.kvStore(kv, l, s.k, s.v, s.rows, T);

    // grouped-query attention over each row's cache
    b.attention(s.xb, s.q, kv, l, s.rows, T, s.attScratch);

    // output projection and residual connection back into x
    linear(b, s.xb2, s.xb, L.wo, L.bo, T);
    // past the last layer's attention only the rows whose logits are wanted matter (the cache is written):
    // as llama.cpp does, move them to the front and finish with those alone
    if (l === c.nLayers - 1 && rows > nOut) {
      for (let i = 0; i < nOut; i++) {
        b.copy(s.x + i * dim * 4, s.x + logitRows[i] * dim * 4, dim * 4);
        b.copy(s.xb2 + i * dim * 4, s.xb2 + logitRows[i] * dim * 4, dim * 4);
      }
      rows = nOut;
      if (rows === 0) return;
    }
    b.add(s.x, s.x, s.xb2, rows * dim);

    // feed-forward rmsnorm
    b.rmsnorm(s.xb, s.x, L.ffnNorm, dim, normEps, rows);

    // SwiGLU: w2(silu(w1(x)) * w3(x))
    b.matmul(s.hb, s.xb, L.wGate, rows);
    b.matmul(s.hb2, s.xb, L.wUp, rows, true);
    b.swiglu(s.hb, s.hb, s.hb2, hiddenDim, rows);
    b.matmul(s.xb2, s.hb, L.wDown, rows);

    // residual connection
    b.add(s.x, s.x, s.xb2, rows * dim);
  }

  // final rmsnorm and classifier, for the rows whose next token is wanted (now x's first nOut rows)
  b.rmsnorm(s.xLast, s.x, w.outputNorm, dim, normEps, nOut);
  b.matmul(s.logits, s.xLast, w.output, nOut);
}

// ---------------------------------------------------------------- hyper-parameters and Hugging Face mapping

/**
 * The llama family's hyper-parameters from `{arch}.*` keys, for the architectures in `names` (llama's, Qwen2's,
 * Phi-3's). `ropeHalves`: llama.cpp runs the architecture with NEOX-style RoPE (rotated halves); its llama files
 * hold Q/K rows permuted back to interleaved pairs, Hugging Face llama checkpoints keep rotate_half order.
 */
export function llamaConfigFromMetadata(
  file: ModelFile,
  names: readonly string[] = llama.names,
  ropeHalves = false,
  name: string = file.source.name,
): ModelConfig {
  const arch = architectureName(file, names, name);
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
    ropeStyle: ropeHalves || file.format === "safetensors" ? "halves" : "interleaved",
    normEps,
  };
  // llama2.c files were trained with run.c's RoPE angles (src/model/rope.ts)
  if (file.format === "llama2c") config.ropeAngles = "llama2c";
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

/** Hugging Face names of the llama graph (Qwen2 and Phi-3 extend them). */
export const LLAMA_NAMES: NameRule[] = [
  [/^model\.embed_tokens\.weight$/, "token_embd.weight"],
  [/^model\.norm\.weight$/, "output_norm.weight"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, "blk.$1.attn_norm.weight"],
  [/^model\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)$/, "blk.$1.attn_$2.$3"],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, "blk.$1.ffn_norm.weight"],
  [/^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$/, "blk.$1.ffn_gate.weight"],
  [/^model\.layers\.(\d+)\.mlp\.up_proj\.weight$/, "blk.$1.ffn_up.weight"],
  [/^model\.layers\.(\d+)\.mlp\.down_proj\.weight$/, "blk.$1.ffn_down.weight"],
];

/** config.json -> the `{a}.*` GGUF keys of the llama family (`a`: llama, qwen2, phi3). */
export function llamaKeys(c: ConfigReader, a: string): Record<string, MetadataValue> {
  const dim = c.count("hidden_size"), nHeads = c.count("num_attention_heads");
  const headDim = headDimOf(c, dim, nHeads);
  const act = c.json.hidden_act ?? "silu";
  if (act !== "silu") throw new UnsupportedError(`${c.name}: hidden_act "${String(act)}" is not supported for ${a} (kvasm runs silu)`);
  if (c.json.use_sliding_window === true) {
    throw new UnsupportedError(
      `${c.name}: use_sliding_window with max_window_layers (windowed attention in some layers only) is not supported`,
    );
  }
  const keys: Record<string, MetadataValue> = {
    [`${a}.context_length`]: c.count("max_position_embeddings"),
    [`${a}.embedding_length`]: dim,
    [`${a}.feed_forward_length`]: c.count("intermediate_size"),
    [`${a}.block_count`]: c.count("num_hidden_layers"),
    [`${a}.attention.head_count`]: nHeads,
    [`${a}.attention.head_count_kv`]: c.count("num_key_value_heads", nHeads),
    [`${a}.attention.key_length`]: headDim,
    [`${a}.attention.value_length`]: headDim,
    [`${a}.rope.dimension_count`]: ropeDimOf(c, headDim),
    [`${a}.rope.freq_base`]: c.ropeTheta(),
    [`${a}.attention.layer_norm_rms_epsilon`]: c.number("rms_norm_eps", 1e-6),
    [`${a}.vocab_size`]: c.count("vocab_size"),
  };
  const window = c.json.sliding_window;
  if (typeof window === "number" && window > 0 && c.json.use_sliding_window !== false) keys[`${a}.attention.sliding_window`] = window;
  const rope = c.rope();
  const type = rope.rope_type ?? rope.type;
  if (type === "llama3") {
    const num = (k: string) => {
      const v = rope[k];
      if (typeof v !== "number") throw new FormatError(c.name, `llama3 rope scaling needs a number "${k}", found ${JSON.stringify(v)}`);
      return v;
    };
    keys[`${a}.rope.scaling.type`] = "llama3";
    keys[`${a}.rope.scaling.factor`] = num("factor");
    keys[`${a}.rope.scaling.low_freq_factor`] = num("low_freq_factor");
    keys[`${a}.rope.scaling.high_freq_factor`] = num("high_freq_factor");
    keys[`${a}.rope.scaling.original_context_length`] = num("original_max_position_embeddings");
  } else if (type !== undefined && type !== "default") {
    throw new UnsupportedError(`${c.name}: rope scaling "${String(type)}" is not supported (kvasm runs default and llama3)`);
  }
  return keys;
}

export const llama: Architecture<ModelConfig, LlamaWeights> = {
  names: ["llama", "mistral"],
  hf: {
    llama: { gguf: "llama", names: LLAMA_NAMES, metadata: (c) => llamaKeys(c, "llama") },
    // llama.cpp converts Mistral to "llama"; the window rides along as llama.attention.sliding_window
    mistral: { gguf: "llama", names: LLAMA_NAMES, metadata: (c) => llamaKeys(c, "llama") },
  },
  config: (file) => llamaConfigFromMetadata(file),
  tensors: llamaExpectedTensors,
  bind: bindLlamaWeights,
  forward: llamaForward,
};
