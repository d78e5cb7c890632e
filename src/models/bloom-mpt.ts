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
import type { DerivedConfig } from "../model/config.ts";
import type { ModelFile } from "../formats/types.ts";
import { gptConfigFromMetadata } from "../model/from-metadata.ts";
import { checkTensors } from "./blocks.ts";
import { bindGPTWeights, gptAttention, type GPTDerivedConfig, gptExpectedTensors, gptLogits, gptMlp, type GPTWeights } from "./gpt2.ts";
import type { RunState } from "./llama.ts";
import type { Architecture } from "./registry.ts";

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

export const bloom: Architecture<GPTWeights> = {
  names: ["bloom"],
  config: (file) => gptConfigFromMetadata(file),
  tensors: (c: DerivedConfig, file: ModelFile) => checkTensors(file, gptExpectedTensors(c as GPTDerivedConfig, { embeddingNorm: true })),
  bind: (c, w) => bindGPTWeights(c as GPTDerivedConfig, w),
  forward: (b, c, w, s, kv, T, rows) => alibiGPTForward(b, c as GPTDerivedConfig, w, s, kv, T, rows),
};

export const mpt: Architecture<GPTWeights> = {
  names: ["mpt"],
  config: (file) => gptConfigFromMetadata(file),
  tensors: (c: DerivedConfig, file: ModelFile) => checkTensors(file, gptExpectedTensors(c as GPTDerivedConfig, { biases: "optional" })),
  bind: (c, w) => bindGPTWeights(c as GPTDerivedConfig, w),
  forward: (b, c, w, s, kv, T, rows) => alibiGPTForward(b, c as GPTDerivedConfig, w, s, kv, T, rows),
};
