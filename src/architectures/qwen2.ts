/**
 * Qwen2 (and Qwen2.5): the llama graph with biases on the Q, K and V
 * projections, RoPE on rotated halves, usually a tied output head.
 */
import type { DerivedConfig, ModelConfig } from "../model/config.ts";
import type { ExpectedTensors } from "./blocks.ts";
import {
  bindLlamaWeights,
  LLAMA_NAMES,
  llamaConfigFromMetadata,
  llamaExpectedTensors,
  llamaForward,
  llamaKeys,
  type LlamaWeights,
} from "./llama.ts";
import type { Architecture } from "./architecture.ts";

function qwen2Tensors(c: DerivedConfig): ExpectedTensors {
  const expected = llamaExpectedTensors(c);
  // Qwen2 always has Q/K/V biases: a file without them is broken, not a bias-free variant
  for (let l = 0; l < c.nLayers; l++) {
    for (const t of ["attn_q.bias", "attn_k.bias", "attn_v.bias"]) {
      const name = `blk.${l}.${t}`;
      expected.required.set(name, expected.optional.get(name)!);
      expected.optional.delete(name);
    }
  }
  return expected;
}

export const qwen2: Architecture<ModelConfig, LlamaWeights> = {
  names: ["qwen2"],
  hf: { qwen2: { gguf: "qwen2", names: LLAMA_NAMES, metadata: (c) => llamaKeys(c, "qwen2") } },
  // llama.cpp runs Qwen2 with NEOX-style RoPE (rotated halves)
  config: (file) => llamaConfigFromMetadata(file, qwen2.names, true),
  tensors: qwen2Tensors,
  bind: bindLlamaWeights,
  forward: llamaForward,
};
