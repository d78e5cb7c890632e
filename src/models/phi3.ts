/**
 * Phi-3: the llama graph with two fused projections. `attn_qkv` holds the
 * rows of Q, then K, then V ([qDim + 2 kvDim] rows); `ffn_up` the rows of the
 * gate, then the up projection ([2 hidden] rows). Both are split by views:
 * row ranges of the fused matrix in the arena, no bytes copied.
 */
import type { DerivedConfig } from "../model/config.ts";
import type { ModelFile } from "../formats/types.ts";
import type { WeightSet } from "../model/weights.ts";
import type { Weight } from "../backends/backend.ts";
import { llamaConfigFromMetadata } from "../model/from-metadata.ts";
import { checkTensors, type ExpectedTensors, splitRows } from "./blocks.ts";
import { llamaForward, type LlamaLayer, type LlamaWeights } from "./llama.ts";
import type { Architecture } from "./registry.ts";

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

export const phi3: Architecture<LlamaWeights> = {
  names: ["phi3"],
  config: (file) => llamaConfigFromMetadata(file),
  tensors: (c: DerivedConfig, file: ModelFile) => checkTensors(file, phi3ExpectedTensors(c)),
  bind: bindPhi3Weights,
  forward: llamaForward,
};
