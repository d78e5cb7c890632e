/**
 * Phi-3: the llama graph with two fused projections. `attn_qkv` holds the
 * rows of Q, then K, then V ([qDim + 2 kvDim] rows); `ffn_up` the rows of the
 * gate, then the up projection ([2 hidden] rows). Both are split by views:
 * row ranges of the fused matrix in the arena, no bytes copied.
 */
import type { DerivedConfig, ModelConfig } from "../model/config.ts";
import type { WeightSet } from "../model/weights.ts";
import type { Weight } from "../backends/backend.ts";
import type { NameRule } from "../model/config-json.ts";
import { type ExpectedTensors, splitRows } from "./blocks.ts";
import { LLAMA_NAMES, llamaConfigFromMetadata, llamaForward, llamaKeys, type LlamaLayer, type LlamaWeights } from "./llama.ts";
import type { Architecture } from "./architecture.ts";

/** Hugging Face names: llama's, plus the fused qkv_proj and gate_up_proj. */
const PHI3_NAMES: NameRule[] = [
  ...LLAMA_NAMES,
  [/^model\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)$/, "blk.$1.attn_qkv.$2"],
  [/^model\.layers\.(\d+)\.mlp\.gate_up_proj\.weight$/, "blk.$1.ffn_up.weight"],
];

export function phi3ExpectedTensors(c: DerivedConfig): ExpectedTensors {
  const { dim, hiddenDim, qDim, kvDim, vocabSize } = c;
  const required = new Map<string, number[]>([["token_embd.weight", [dim, vocabSize]], ["output_norm.weight", [dim]]]);
  const optional = new Map<string, number[]>([["output.weight", [dim, vocabSize]]]);
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    required.set(p + "attn_norm.weight", [dim]);
    required.set(p + "attn_qkv.weight", [dim, qDim + 2 * kvDim]);
    required.set(p + "attn_output.weight", [qDim, dim]);
    required.set(p + "ffn_norm.weight", [dim]);
    required.set(p + "ffn_up.weight", [dim, 2 * hiddenDim]);
    required.set(p + "ffn_down.weight", [hiddenDim, dim]);
  }
  return { required, optional };
}

/** Q, K, V and gate, up as views of the fused `attn_qkv` ([qDim | kvDim | kvDim] rows) and `ffn_up` ([hidden | hidden]). */
export function splitPhi3(
  qkv: Weight,
  gateUp: Weight,
  c: DerivedConfig,
  p: string,
): Pick<LlamaLayer, "wq" | "wk" | "wv" | "wGate" | "wUp"> {
  const [wq, wk, wv] = splitRows(qkv, [c.qDim, c.kvDim, c.kvDim], [p + "q", p + "k", p + "v"]);
  const [wGate, wUp] = splitRows(gateUp, [c.hiddenDim, c.hiddenDim], [p + "gate", p + "up"]);
  return { wq, wk, wv, wGate, wUp };
}

export function bindPhi3Weights(c: DerivedConfig, w: WeightSet): LlamaWeights {
  const layers: LlamaLayer[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    const { wq, wk, wv, wGate, wUp } = splitPhi3(w.get(p + "attn_qkv.weight"), w.get(p + "ffn_up.weight"), c, p);
    layers.push({
      attnNorm: w.get(p + "attn_norm.weight"),
      wq,
      wk,
      wv,
      wo: w.get(p + "attn_output.weight"),
      ffnNorm: w.get(p + "ffn_norm.weight"),
      wGate,
      wUp,
      wDown: w.get(p + "ffn_down.weight"),
    });
  }
  const tokenEmbd = w.get("token_embd.weight");
  return { tokenEmbd, layers, outputNorm: w.get("output_norm.weight"), output: w.maybe("output.weight") ?? tokenEmbd };
}

export const phi3: Architecture<ModelConfig, LlamaWeights> = {
  names: ["phi3"],
  hf: { phi3: { gguf: "phi3", names: PHI3_NAMES, metadata: (c) => llamaKeys(c, "phi3") } },
  // llama.cpp runs Phi-3 with NEOX-style RoPE (rotated halves)
  config: (file) => llamaConfigFromMetadata(file, phi3.names, true),
  tensors: phi3ExpectedTensors,
  bind: bindPhi3Weights,
  forward: llamaForward,
};
