/**
 * GPT-2: LayerNorm (with bias) before attention and MLP, learned position
 * embeddings instead of RoPE, a fused `attn_qkv` of [q|k|v] rows split by
 * views, biases on every projection, GELU (tanh approximation), and an output
 * head tied to the token embedding. The weights, blocks and tensor set are
 * shared with GPT-NeoX (src/architectures/gptneox.ts) and BLOOM / MPT
 * (src/architectures/bloom-mpt.ts), which differ in their graphs. Biases are
 * optional in the bound weights: MPT's no_bias checkpoints have none.
 */
import type { Backend, KVLayout, Weight } from "../backends/backend.ts";
import type { Derived, ModelConfig } from "../model/config.ts";
import type { MetadataValue, ModelFile } from "../formats/types.ts";
import type { WeightSet } from "../model/weights.ts";
import { FormatError, UnsupportedError } from "../errors.ts";
import { architectureName, MetadataReader } from "../model/from-metadata.ts";
import type { ConfigReader, NameRule } from "../model/config-json.ts";
import { type ExpectedTensors, linear, splitRows } from "./blocks.ts";
import type { Architecture, RunState } from "./architecture.ts";

export type GPTDerivedConfig = Derived<GPTConfig>;

/** One block's weights; (rows, cols) = (out, in), llama.cpp names in comments. */
export interface GPTLayer {
  attnNorm: Weight; // blk.N.attn_norm.weight (dim)
  attnNormB?: Weight; // blk.N.attn_norm.bias (dim)
  wq: Weight; // rows [0, dim) of blk.N.attn_qkv.weight
  wk: Weight; // rows [dim, 2 dim)
  wv: Weight; // rows [2 dim, 3 dim)
  bq?: Weight; // the same ranges of blk.N.attn_qkv.bias
  bk?: Weight;
  bv?: Weight;
  wo: Weight; // blk.N.attn_output.weight (dim, dim)
  bo?: Weight; // blk.N.attn_output.bias (dim)
  ffnNorm: Weight; // blk.N.ffn_norm.weight (dim)
  ffnNormB?: Weight; // blk.N.ffn_norm.bias (dim)
  wUp: Weight; // blk.N.ffn_up.weight (hidden, dim)
  bUp?: Weight; // blk.N.ffn_up.bias (hidden)
  wDown: Weight; // blk.N.ffn_down.weight (dim, hidden)
  bDown?: Weight; // blk.N.ffn_down.bias (dim)
}

export interface GPTWeights {
  tokenEmbd: Weight; // token_embd.weight (vocab, dim)
  posEmbd?: Weight; // position_embd.weight (nPositions, dim), GPT-2 only
  tokenEmbdNorm?: Weight; // token_embd_norm.weight (dim), BLOOM's word_embeddings_layernorm
  tokenEmbdNormB?: Weight; // token_embd_norm.bias (dim)
  layers: GPTLayer[];
  outputNorm: Weight; // output_norm.weight
  outputNormB?: Weight; // output_norm.bias
  output: Weight; // output.weight, or token_embd when tied
}

/**
 * The family's tensor set. `biases`: "required" (GPT-2, GPT-NeoX, BLOOM) or "optional" (MPT, whose
 * no_bias checkpoints have none, as llama.cpp loads it); `embeddingNorm`: BLOOM's token_embd_norm.
 */
export function gptExpectedTensors(
  c: GPTDerivedConfig,
  opts: { biases?: "required" | "optional"; embeddingNorm?: boolean } = {},
): ExpectedTensors {
  const { dim, hiddenDim, vocabSize } = c;
  const required = new Map<string, number[]>([
    ["token_embd.weight", [dim, vocabSize]],
    ["output_norm.weight", [dim]],
  ]);
  const optional = new Map<string, number[]>([["output.weight", [dim, vocabSize]]]);
  const biases = opts.biases === "optional" ? optional : required;
  biases.set("output_norm.bias", [dim]);
  if (c.learnedPositions) required.set("position_embd.weight", [dim, c.contextLength]);
  if (opts.embeddingNorm) {
    required.set("token_embd_norm.weight", [dim]);
    required.set("token_embd_norm.bias", [dim]);
  }
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    for (const norm of ["attn_norm", "ffn_norm"]) {
      required.set(p + norm + ".weight", [dim]);
      biases.set(p + norm + ".bias", [dim]);
    }
    required.set(p + "attn_qkv.weight", [dim, 3 * dim]);
    biases.set(p + "attn_qkv.bias", [3 * dim]);
    required.set(p + "attn_output.weight", [dim, dim]);
    biases.set(p + "attn_output.bias", [dim]);
    required.set(p + "ffn_up.weight", [dim, hiddenDim]);
    biases.set(p + "ffn_up.bias", [hiddenDim]);
    required.set(p + "ffn_down.weight", [hiddenDim, dim]);
    biases.set(p + "ffn_down.bias", [dim]);
  }
  return { required, optional };
}

/** Q, K, V weights and biases as views of the fused [q|k|v] `attn_qkv` rows (d = dim rows each). */
export function splitGPTQKV(
  qkv: Weight,
  bias: Weight | undefined,
  d: number,
  p: string,
): { wq: Weight; wk: Weight; wv: Weight; bq?: Weight; bk?: Weight; bv?: Weight } {
  const [wq, wk, wv] = splitRows(qkv, [d, d, d], [p + "q", p + "k", p + "v"]);
  if (!bias) return { wq, wk, wv };
  const [bq, bk, bv] = splitRows(bias, [d, d, d], [p + "q.bias", p + "k.bias", p + "v.bias"]);
  return { wq, wk, wv, bq, bk, bv };
}

export function bindGPTWeights(c: GPTDerivedConfig, w: WeightSet): GPTWeights {
  const layers: GPTLayer[] = [];
  const d = c.dim;
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    // [q|k|v] rows: llama.cpp's layout for both families (the NeoX per-head layout is regrouped on read)
    // biases by `maybe`: which ones must exist was settled by the tensor check (gptExpectedTensors)
    layers.push({
      attnNorm: w.get(p + "attn_norm.weight"),
      attnNormB: w.maybe(p + "attn_norm.bias"),
      ...splitGPTQKV(w.get(p + "attn_qkv.weight"), w.maybe(p + "attn_qkv.bias"), d, p),
      wo: w.get(p + "attn_output.weight"),
      bo: w.maybe(p + "attn_output.bias"),
      ffnNorm: w.get(p + "ffn_norm.weight"),
      ffnNormB: w.maybe(p + "ffn_norm.bias"),
      wUp: w.get(p + "ffn_up.weight"),
      bUp: w.maybe(p + "ffn_up.bias"),
      wDown: w.get(p + "ffn_down.weight"),
      bDown: w.maybe(p + "ffn_down.bias"),
    });
  }
  const tokenEmbd = w.get("token_embd.weight");
  return {
    tokenEmbd,
    posEmbd: c.learnedPositions ? w.get("position_embd.weight") : undefined,
    tokenEmbdNorm: w.maybe("token_embd_norm.weight"),
    tokenEmbdNormB: w.maybe("token_embd_norm.bias"),
    layers,
    outputNorm: w.get("output_norm.weight"),
    outputNormB: w.maybe("output_norm.bias"),
    output: w.maybe("output.weight") ?? tokenEmbd,
  };
}

/**
 * Self-attention of the normed rows in s.xb; the projected output lands in
 * `out` (T, dim). RoPE (partial, on rotated halves) unless positions are learned
 * or come from ALiBi (inside the attention kernel, through the KV layout's slopes).
 */
export function gptAttention(
  b: Backend,
  c: GPTDerivedConfig,
  L: GPTLayer,
  s: RunState,
  kv: KVLayout,
  layer: number,
  T: number,
  out: number,
): void {
  linear(b, s.q, s.xb, L.wq, L.bq, T);
  linear(b, s.k, s.xb, L.wk, L.bk, T);
  linear(b, s.v, s.xb, L.wv, L.bv, T);
  if (!c.learnedPositions && c.alibiMaxBias === undefined) {
    b.rope(s.q, s.ropeTable, s.positions, T, c.nHeads, c.headDim, c.ropeDim, true);
    b.rope(s.k, s.ropeTable, s.positions, T, c.nKvHeads, c.headDim, c.ropeDim, true);
  }
  b.kvStore(kv, layer, s.k, s.v, s.rows, T);
  b.attention(s.xb, s.q, kv, layer, s.rows, T, s.attScratch);
  linear(b, out, s.xb, L.wo, L.bo, T);
}

/** MLP of the normed rows in `x`: out = down(gelu(up(x))); s.hb is its scratch. `out` may be `x`. */
export function gptMlp(b: Backend, c: GPTDerivedConfig, L: GPTLayer, s: RunState, x: number, T: number, out: number): void {
  linear(b, s.hb, x, L.wUp, L.bUp, T);
  if (c.activation === "gelu_tanh") b.gelu(s.hb, s.hb, T * c.hiddenDim);
  else b.geluErf(s.hb, s.hb, T * c.hiddenDim);
  linear(b, out, s.hb, L.wDown, L.bDown, T);
}

/** Final LayerNorm and classifier, only for the rows whose next token is wanted. */
export function gptLogits(b: Backend, c: GPTDerivedConfig, w: GPTWeights, s: RunState, logitRows: ArrayLike<number>): void {
  const dim = c.dim, nL = logitRows.length;
  for (let i = 0; i < nL; i++) b.copy(s.xLast + i * dim * 4, s.x + logitRows[i] * dim * 4, dim * 4);
  b.layernorm(s.xLast, s.xLast, w.outputNorm, w.outputNormB, dim, c.normEps, nL);
  b.matmul(s.logits, s.xLast, w.output, nL);
}

/** GPT-2's forward pass over T rows: x = wte[token] + wpe[pos]; x += attn(ln1(x)); x += mlp(ln2(x)). */
export function gpt2Forward(
  b: Backend,
  c: GPTDerivedConfig,
  w: GPTWeights,
  s: RunState,
  kv: KVLayout,
  T: number,
  logitRows: ArrayLike<number>,
): void {
  const dim = c.dim;
  b.embed(s.x, w.tokenEmbd, s.tokens, T);
  b.embed(s.xb2, w.posEmbd!, s.positions, T);
  b.add(s.x, s.x, s.xb2, T * dim);
  for (let l = 0; l < c.nLayers; l++) {
    const L = w.layers[l];
    b.layernorm(s.xb, s.x, L.attnNorm, L.attnNormB, dim, c.normEps, T);
    gptAttention(b, c, L, s, kv, l, T, s.xb2);
    b.add(s.x, s.x, s.xb2, T * dim);
    b.layernorm(s.xb, s.x, L.ffnNorm, L.ffnNormB, dim, c.normEps, T);
    gptMlp(b, c, L, s, s.xb, T, s.xb2);
    b.add(s.x, s.x, s.xb2, T * dim);
  }
  gptLogits(b, c, w, s, logitRows);
}

// ---------------------------------------------------------------- the family's hyper-parameters; GPT-2's Hugging Face mapping

/** The GPT-2 / GPT-NeoX / BLOOM / MPT family: LayerNorm, GELU, fused QKV (with biases, except MPT's no_bias). */
export interface GPTConfig extends ModelConfig {
  activation: "gelu_tanh" | "gelu_erf";
  /** GPT-NeoX: x + attn(ln1(x)) + mlp(ln2(x)) instead of two residual steps. */
  parallelResidual: boolean;
  /** GPT-2: a learned position embedding table (and no RoPE). */
  learnedPositions: boolean;
}

/** What sets one member of the GPT family apart, declared by its architecture file. */
export interface GPTVariant {
  /** The activation when `{arch}.hidden_act` is absent: "gelu_new" (tanh approximation) or "gelu" (exact erf). */
  defaultActivation: "gelu_new" | "gelu";
  /**
   * RoPE on `{arch}.rope.dimension_count` dimensions of each head (GPT-NeoX); otherwise RoPE on all of it, unless
   * positions are learned or ALiBi.
   */
  partialRotary?: boolean;
  /** Reads `{arch}.use_parallel_residual` (default true; GPT-NeoX). */
  parallelResidual?: boolean;
  /** A learned position table (GPT-2). */
  learnedPositions?: boolean;
  /** ALiBi's maximum bias (BLOOM, MPT): positions enter as per-head slopes on the scores. */
  alibiMaxBias?: (m: MetadataReader) => number;
}

/**
 * GPTConfig from `{arch}.*` keys (llama.cpp's names) for the architectures in `names`, as `variant` reads them.
 * `{arch}.hidden_act` (written by the Hugging Face mapping) overrides the variant's default GELU.
 */
export function gptConfigFromMetadata(
  file: ModelFile,
  names: readonly string[],
  variant: GPTVariant,
  name: string = file.source.name,
): GPTConfig {
  const arch = architectureName(file, names, name);
  const m = new MetadataReader(file, name, arch);
  const dim = m.count(".embedding_length");
  const nHeads = m.count(".attention.head_count");
  if (dim % nHeads !== 0) {
    throw new FormatError(name, `${arch}.attention.head_count ${nHeads} does not divide ${arch}.embedding_length ${dim}`);
  }
  const headDim = dim / nHeads;
  const ropeDim = variant.partialRotary ? m.count(".rope.dimension_count", headDim) : headDim;
  if (ropeDim > headDim || ropeDim % 2 !== 0) {
    throw new FormatError(name, `${arch}.rope.dimension_count ${ropeDim} must be even and at most the head size ${headDim}`);
  }
  const act = m.string(".hidden_act") ?? variant.defaultActivation;
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
  const alibiMaxBias = variant.alibiMaxBias?.(m);
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
    parallelResidual: variant.parallelResidual === true && m.bool(".use_parallel_residual", true),
    learnedPositions: variant.learnedPositions === true,
  };
  if (alibiMaxBias !== undefined) {
    if (!(alibiMaxBias > 0)) throw new FormatError(name, `${arch}.attention.max_alibi_bias must be positive, found ${alibiMaxBias}`);
    config.alibiMaxBias = alibiMaxBias;
  }
  return config;
}

// OpenAI's own gpt2 checkpoints have no "transformer." prefix; transformers' do
const GPT2_NAMES: NameRule[] = [
  [/^(?:transformer\.)?wte\.weight$/, "token_embd.weight"],
  [/^(?:transformer\.)?wpe\.weight$/, "position_embd.weight"],
  [/^(?:transformer\.)?ln_f\.(weight|bias)$/, "output_norm.$1"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^(?:transformer\.)?h\.(\d+)\.ln_1\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_attn\.weight$/, "blk.$1.attn_qkv.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_attn\.bias$/, "blk.$1.attn_qkv.bias"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_proj\.weight$/, "blk.$1.attn_output.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_proj\.bias$/, "blk.$1.attn_output.bias"],
  [/^(?:transformer\.)?h\.(\d+)\.ln_2\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_fc\.weight$/, "blk.$1.ffn_up.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_fc\.bias$/, "blk.$1.ffn_up.bias"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_proj\.weight$/, "blk.$1.ffn_down.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_proj\.bias$/, "blk.$1.ffn_down.bias"],
];

/** config.json -> `gpt2.*` keys. */
function gpt2Keys(c: ConfigReader): Record<string, MetadataValue> {
  const dim = c.count(["n_embd", "hidden_size"]);
  return {
    "gpt2.context_length": c.count(["n_positions", "max_position_embeddings"]),
    "gpt2.embedding_length": dim,
    "gpt2.feed_forward_length": c.count("n_inner", 4 * dim),
    "gpt2.block_count": c.count(["n_layer", "num_hidden_layers"]),
    "gpt2.attention.head_count": c.count(["n_head", "num_attention_heads"]),
    "gpt2.attention.layer_norm_epsilon": c.number("layer_norm_epsilon", 1e-5),
    "gpt2.vocab_size": c.count("vocab_size"),
    "gpt2.hidden_act": String(c.json.activation_function ?? "gelu_new"),
  };
}

export const gpt2: Architecture<GPTConfig, GPTWeights> = {
  names: ["gpt2"],
  hf: { gpt2: { gguf: "gpt2", names: GPT2_NAMES, metadata: gpt2Keys } },
  config: (file) => gptConfigFromMetadata(file, gpt2.names, { defaultActivation: "gelu_new", learnedPositions: true }),
  tensors: (c) => gptExpectedTensors(c),
  bind: bindGPTWeights,
  forward: gpt2Forward,
};
