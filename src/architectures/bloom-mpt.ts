/**
 * BLOOM and MPT: GPT-2's blocks (LayerNorm, fused QKV, GELU MLP, sequential
 * residual, output tied to the token embedding) with no positional embedding
 * at all: position enters as ALiBi's linear bias on the attention scores,
 * which the attention kernels add from the per-head slopes the model writes
 * at load (src/model/alibi.ts). BLOOM adds a LayerNorm on the embeddings
 * (word_embeddings_layernorm) and GELU's tanh form; MPT uses the exact erf
 * GELU and may carry no biases at all (no_bias: LayerNorms without bias,
 * Linear layers without bias). Hugging Face's BLOOM stores query_key_value
 * per head ([head][q|k|v][headDim] rows, as GPT-NeoX) and the loader regroups
 * it; MPT's Wqkv is already [q|k|v].
 */
import type { Backend, KVLayout } from "../backends/backend.ts";
import type { MetadataValue } from "../formats/types.ts";
import { FormatError, UnsupportedError } from "../errors.ts";
import { ConfigReader, type HFConfig, type NameRule } from "../model/config-json.ts";
import {
  bindGPTWeights,
  gptAttention,
  type GPTConfig,
  gptConfigFromMetadata,
  type GPTDerivedConfig,
  gptExpectedTensors,
  gptLogits,
  gptMlp,
  type GPTWeights,
} from "./gpt2.ts";
import type { Architecture, RunState } from "./architecture.ts";

/** x = wte[token] (LayerNorm'd for BLOOM); x += attn(ln1(x)); x += mlp(ln2(x)); logits of ln_f(x). */
export function alibiGPTForward(
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
  if (w.tokenEmbdNorm) b.layernorm(s.x, s.x, w.tokenEmbdNorm, w.tokenEmbdNormB, dim, c.normEps, T);
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

// ---------------------------------------------------------------- Hugging Face mapping

// BLOOM: bigscience's own checkpoints have no "transformer." prefix; transformers' do. Its QKV is per head, as NeoX's.
const BLOOM_NAMES: NameRule[] = [
  [/^(?:transformer\.)?word_embeddings\.weight$/, "token_embd.weight"],
  [/^(?:transformer\.)?word_embeddings_layernorm\.(weight|bias)$/, "token_embd_norm.$1"],
  [/^(?:transformer\.)?ln_f\.(weight|bias)$/, "output_norm.$1"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^(?:transformer\.)?h\.(\d+)\.input_layernorm\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.self_attention\.query_key_value\.(weight|bias)$/, "blk.$1.attn_qkv.$2", "neox_qkv"],
  [/^(?:transformer\.)?h\.(\d+)\.self_attention\.dense\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.post_attention_layernorm\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.dense_h_to_4h\.(weight|bias)$/, "blk.$1.ffn_up.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.dense_4h_to_h\.(weight|bias)$/, "blk.$1.ffn_down.$2"],
];

// MPT: Wqkv is [q|k|v] already; with no_bias there are no bias tensors to map
const MPT_NAMES: NameRule[] = [
  [/^transformer\.wte\.weight$/, "token_embd.weight"],
  [/^transformer\.norm_f\.(weight|bias)$/, "output_norm.$1"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^transformer\.blocks\.(\d+)\.norm_1\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^transformer\.blocks\.(\d+)\.attn\.Wqkv\.(weight|bias)$/, "blk.$1.attn_qkv.$2"],
  [/^transformer\.blocks\.(\d+)\.attn\.out_proj\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^transformer\.blocks\.(\d+)\.norm_2\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^transformer\.blocks\.(\d+)\.ffn\.up_proj\.(weight|bias)$/, "blk.$1.ffn_up.$2"],
  [/^transformer\.blocks\.(\d+)\.ffn\.down_proj\.(weight|bias)$/, "blk.$1.ffn_down.$2"],
];

/**
 * BLOOM's config.json names no context length (ALiBi has no position table): `seq_length` where a
 * checkpoint gives one, else the 2048 positions BLOOM was trained on. The slopes' maximum bias is 8,
 * fixed by BLOOM (and by llama.cpp for "bloom"), so no key is written for it.
 */
function bloomKeys(c: ConfigReader): Record<string, MetadataValue> {
  const dim = c.count(["hidden_size", "n_embed"]);
  if (c.json.apply_residual_connection_post_layernorm === true) {
    throw new UnsupportedError(`${c.name}: apply_residual_connection_post_layernorm (residual taken after the LayerNorm) is not supported`);
  }
  return {
    "bloom.context_length": c.count("seq_length", 2048),
    "bloom.embedding_length": dim,
    "bloom.feed_forward_length": 4 * dim,
    "bloom.block_count": c.count(["n_layer", "num_hidden_layers"]),
    "bloom.attention.head_count": c.count(["n_head", "num_attention_heads"]),
    "bloom.attention.layer_norm_epsilon": c.number("layer_norm_epsilon", 1e-5),
    "bloom.vocab_size": c.count("vocab_size"),
    "bloom.hidden_act": "gelu_new", // bloom_gelu_forward: the tanh approximation
  };
}

/** MPT with ALiBi (attn_config.alibi); the options kvasm does not run are refused by name. */
function mptKeys(c: ConfigReader): Record<string, MetadataValue> {
  const raw = c.json.attn_config ?? {};
  if (typeof raw !== "object" || raw === null) throw new FormatError(c.name, `"attn_config" must be an object`);
  const attn = new ConfigReader(raw as HFConfig, `${c.name} (attn_config)`);
  if (attn.json.alibi !== true) throw new UnsupportedError(`${c.name}: MPT without ALiBi (learned position embeddings) is not supported`);
  // options that change the math: clipped Q/K/V, a custom softmax scale, LayerNorm on Q and K, prefix-LM masking
  for (const key of ["clip_qkv", "softmax_scale", "qk_ln", "prefix_lm"]) {
    const v = attn.json[key];
    if (v !== undefined && v !== null && v !== false) {
      throw new UnsupportedError(`${c.name}: MPT with attn_config.${key} = ${JSON.stringify(v)} is not supported`);
    }
  }
  const type = attn.json.attn_type ?? "multihead_attention";
  if (type !== "multihead_attention") {
    throw new UnsupportedError(`${c.name}: MPT attn_type "${String(type)}" is not supported (kvasm runs multihead_attention)`);
  }
  if (c.has("logit_scale")) throw new UnsupportedError(`${c.name}: MPT with logit_scale is not supported`);
  const dim = c.count("d_model");
  const ffn = c.json.ffn_config as Record<string, unknown> | undefined;
  const hidden = typeof ffn?.ffn_hidden_size === "number" ? ffn.ffn_hidden_size : c.count("expansion_ratio", 4) * dim;
  if (typeof ffn?.ffn_act_fn === "object" && ffn.ffn_act_fn !== null && (ffn.ffn_act_fn as { name?: unknown }).name !== "gelu") {
    throw new UnsupportedError(`${c.name}: MPT ffn activation ${JSON.stringify(ffn.ffn_act_fn)} is not supported (kvasm runs gelu)`);
  }
  return {
    "mpt.context_length": c.count("max_seq_len"),
    "mpt.embedding_length": dim,
    "mpt.feed_forward_length": hidden,
    "mpt.block_count": c.count("n_layers"),
    "mpt.attention.head_count": c.count("n_heads"),
    "mpt.attention.layer_norm_epsilon": c.number("layer_norm_epsilon", 1e-5),
    "mpt.attention.max_alibi_bias": attn.number("alibi_bias_max", 8),
    "mpt.vocab_size": c.count("vocab_size"),
    "mpt.hidden_act": "gelu", // nn.GELU(approximate="none")
  };
}

export const bloom: Architecture<GPTConfig, GPTWeights> = {
  names: ["bloom"],
  hf: { bloom: { gguf: "bloom", names: BLOOM_NAMES, metadata: bloomKeys } },
  // GELU's tanh form; ALiBi with llama.cpp's fixed maximum bias 8
  config: (file) => gptConfigFromMetadata(file, bloom.names, { defaultActivation: "gelu_new", alibiMaxBias: () => 8 }),
  tensors: (c) => gptExpectedTensors(c, { embeddingNorm: true }),
  bind: bindGPTWeights,
  forward: alibiGPTForward,
};

export const mpt: Architecture<GPTConfig, GPTWeights> = {
  names: ["mpt"],
  hf: { mpt: { gguf: "mpt", names: MPT_NAMES, metadata: mptKeys } },
  config: (file) => {
    if (file.metadata.has("mpt.attention.clamp_kqv")) {
      throw new UnsupportedError(`${file.source.name}: MPT with clip_qkv (mpt.attention.clamp_kqv) is not supported`);
    }
    // the exact erf GELU (nn.GELU, as transformers runs MPT); ALiBi with mpt.attention.max_alibi_bias
    return gptConfigFromMetadata(file, mpt.names, {
      defaultActivation: "gelu",
      alibiMaxBias: (m) => m.number(".attention.max_alibi_bias", 8),
    });
  },
  // no_bias checkpoints have none, as llama.cpp loads them
  tensors: (c) => gptExpectedTensors(c, { biases: "optional" }),
  bind: bindGPTWeights,
  forward: alibiGPTForward,
};
