/**
 * GPT-NeoX / Pythia: GPT-2's blocks (LayerNorm with bias, fused QKV with
 * bias, GELU MLP) with RoPE on a fraction of each head (`rotary_pct`, rotated
 * halves) and, in most checkpoints, the parallel residual
 * x + attn(ln1(x)) + mlp(ln2(x)). Hugging Face stores query_key_value per head
 * ([head][q|k|v][headDim] rows); the loader regroups it to [q|k|v] as it
 * streams (src/model/hf-config.ts), so the split is the same views as GPT-2's.
 */
import type { Backend, KVLayout } from "../backends/backend.ts";
import type { DerivedConfig } from "../model/config.ts";
import type { ModelFile } from "../formats/types.ts";
import { gptConfigFromMetadata } from "../model/from-metadata.ts";
import { checkTensors } from "./blocks.ts";
import { bindGPTWeights, gptAttention, type GPTDerivedConfig, gptExpectedTensors, gptLogits, gptMlp, type GPTWeights } from "./gpt2.ts";
import type { RunState } from "./llama.ts";
import type { Architecture } from "./registry.ts";

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

export const gptneox: Architecture<GPTWeights> = {
  names: ["gptneox"],
  config: (file) => gptConfigFromMetadata(file),
  tensors: (c: DerivedConfig, file: ModelFile) => checkTensors(file, gptExpectedTensors(c as GPTDerivedConfig)),
  bind: (c, w) => bindGPTWeights(c as GPTDerivedConfig, w),
  forward: (b, c, w, s, kv, T, rows) => gptneoxForward(b, c as GPTDerivedConfig, w, s, kv, T, rows),
};
