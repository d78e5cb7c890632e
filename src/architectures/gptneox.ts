/**
 * GPT-NeoX / Pythia: GPT-2's blocks (LayerNorm with bias, fused QKV with
 * bias, GELU MLP) with RoPE on a fraction of each head (`rotary_pct`, rotated
 * halves) and, in most checkpoints, the parallel residual
 * x + attn(ln1(x)) + mlp(ln2(x)). Hugging Face stores query_key_value per head
 * ([head][q|k|v][headDim] rows); the loader regroups it to [q|k|v] as it
 * streams (the `neox_qkv` rewrite of src/model/hf-config.ts), so the split is the same views as GPT-2's.
 */
import type { Backend, KVLayout } from "../backends/backend.ts";
import type { MetadataValue } from "../formats/types.ts";
import { type ConfigReader, headDimOf, type NameRule, ropeDimOf } from "../model/config-json.ts";
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

export function gptneoxForward(
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
  for (let l = 0; l < c.nLayers; l++) {
    const L = w.layers[l];
    b.layernorm(s.xb, s.x, L.attnNorm, L.attnNormB, dim, c.normEps, T);
    gptAttention(b, c, L, s, kv, l, T, s.xb2);
    if (c.parallelResidual) {
      // both branches read the same x: the MLP's LayerNorm sees x before the attention output is added
      b.layernorm(s.xb, s.x, L.ffnNorm, L.ffnNormB, dim, c.normEps, T);
      gptMlp(b, c, L, s, s.xb, T, s.xb);
      b.add(s.x, s.x, s.xb2, T * dim);
      b.add(s.x, s.x, s.xb, T * dim);
    } else {
      b.add(s.x, s.x, s.xb2, T * dim);
      b.layernorm(s.xb, s.x, L.ffnNorm, L.ffnNormB, dim, c.normEps, T);
      gptMlp(b, c, L, s, s.xb, T, s.xb2);
      b.add(s.x, s.x, s.xb2, T * dim);
    }
  }
  gptLogits(b, c, w, s, logitRows);
}

// ---------------------------------------------------------------- Hugging Face mapping

const NEOX_NAMES: NameRule[] = [
  [/^gpt_neox\.embed_in\.weight$/, "token_embd.weight"],
  [/^gpt_neox\.final_layer_norm\.(weight|bias)$/, "output_norm.$1"],
  [/^embed_out\.weight$/, "output.weight"],
  [/^gpt_neox\.layers\.(\d+)\.input_layernorm\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^gpt_neox\.layers\.(\d+)\.attention\.query_key_value\.(weight|bias)$/, "blk.$1.attn_qkv.$2", "neox_qkv"],
  [/^gpt_neox\.layers\.(\d+)\.attention\.dense\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^gpt_neox\.layers\.(\d+)\.post_attention_layernorm\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^gpt_neox\.layers\.(\d+)\.mlp\.dense_h_to_4h\.(weight|bias)$/, "blk.$1.ffn_up.$2"],
  [/^gpt_neox\.layers\.(\d+)\.mlp\.dense_4h_to_h\.(weight|bias)$/, "blk.$1.ffn_down.$2"],
];

/** config.json -> `gptneox.*` keys. */
function neoxKeys(c: ConfigReader): Record<string, MetadataValue> {
  const dim = c.count("hidden_size"), nHeads = c.count("num_attention_heads");
  return {
    "gptneox.context_length": c.count("max_position_embeddings"),
    "gptneox.embedding_length": dim,
    "gptneox.feed_forward_length": c.count("intermediate_size"),
    "gptneox.block_count": c.count("num_hidden_layers"),
    "gptneox.attention.head_count": nHeads,
    "gptneox.rope.dimension_count": ropeDimOf(c, headDimOf(c, dim, nHeads)),
    "gptneox.rope.freq_base": c.ropeTheta(),
    "gptneox.attention.layer_norm_epsilon": c.number("layer_norm_eps", 1e-5),
    "gptneox.use_parallel_residual": c.json.use_parallel_residual !== false,
    "gptneox.vocab_size": c.count("vocab_size"),
    "gptneox.hidden_act": String(c.json.hidden_act ?? "gelu"),
  };
}

export const gptneox: Architecture<GPTConfig, GPTWeights> = {
  names: ["gptneox"],
  hf: { gpt_neox: { gguf: "gptneox", names: NEOX_NAMES, metadata: neoxKeys } },
  // GELU's exact erf form (nn.GELU); RoPE on rotary_pct of each head
  config: (file) => gptConfigFromMetadata(file, gptneox.names, { defaultActivation: "gelu", partialRotary: true, parallelResidual: true }),
  tensors: (c) => gptExpectedTensors(c),
  bind: bindGPTWeights,
  forward: gptneoxForward,
};
