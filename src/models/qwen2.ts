/**
 * Qwen2 (and Qwen2.5): the llama graph with biases on the Q, K and V
 * projections, RoPE on rotated halves, usually a tied output head.
 */
import type { DerivedConfig } from "../model/config.ts";
import type { ModelFile } from "../formats/types.ts";
import { llamaConfigFromMetadata } from "../model/from-metadata.ts";
import { checkTensors } from "./blocks.ts";
import { bindLlamaWeights, llamaExpectedTensors, llamaForward, type LlamaWeights } from "./llama.ts";
import type { Architecture } from "./registry.ts";

function qwen2Tensors(c: DerivedConfig, file: ModelFile): { required: string[]; optional: string[] } {
  const expected = llamaExpectedTensors(c);
  // Qwen2 always has Q/K/V biases: a file without them is broken, not a bias-free variant
  for (let l = 0; l < c.nLayers; l++) {
    for (const t of ["attn_q.bias", "attn_k.bias", "attn_v.bias"]) {
      const name = `blk.${l}.${t}`;
      expected.required.set(name, expected.optional.get(name)!);
      expected.optional.delete(name);
    }
  }
  return checkTensors(file, expected);
}

export const qwen2: Architecture<LlamaWeights> = {
  names: ["qwen2"],
  config: (file) => llamaConfigFromMetadata(file),
  tensors: qwen2Tensors,
  bind: bindLlamaWeights,
  forward: llamaForward,
};
