import type { Backend, KVLayout, Weight } from "../backends/backend.ts";
import type { DerivedConfig } from "../model/config.ts";
import type { WeightSet } from "../model/weights.ts";
import type { Architecture } from "./registry.ts";
import { llamaConfigFromMetadata } from "../model/from-metadata.ts";
import type { ModelFile } from "../formats/types.ts";
import { checkTensors, type ExpectedTensors, linear } from "./blocks.ts";

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

/** The GGUF names a llama model needs; output.weight is optional (tied embeddings). */
export function llamaTensorNames(c: DerivedConfig): { required: string[]; optional: string[] } {
  const required = ["token_embd.weight", "output_norm.weight"];
  for (let l = 0; l < c.nLayers; l++) {
    for (const t of ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]) {
      required.push(`blk.${l}.${t}.weight`);
    }
  }
  return { required, optional: ["output.weight"] };
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

export function llamaTensors(c: DerivedConfig, file: ModelFile): { required: string[]; optional: string[] } {
  return checkTensors(file, llamaExpectedTensors(c));
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
 * Scratch for one forward pass of up to maxRows token rows, allocated once at
 * load (llama2.c's RunState). Addresses are in the backend's memory.
 */
export interface RunState {
  maxRows: number;
  maxLogitRows: number;
  x: number; // (T, dim) residual stream
  xb: number; // (T, max(dim, qDim)) normed input / attention output
  xb2: number; // (T, dim) projection output before the residual add
  q: number; // (T, qDim)
  k: number; // (T, kvDim)
  v: number; // (T, kvDim)
  hb: number; // (T, hidden) gate, then silu(gate) * up
  hb2: number; // (T, hidden) up
  xLast: number; // (L, dim) rows whose logits are wanted
  logits: number; // (L, vocab)
  tokens: number; // i32 (T)
  positions: number; // i32 (T)
  rows: number; // i32 (T, ROW_FIELDS) per-row KV metadata
  attScratch: number; // attention scores
  mmScratch: number; // quantized / rounded activations
  ropeTable: number; // (maxPos, ropeDim/2, 2) cos, sin
  /** Architecture-specific buffers (Architecture.extraScratch). */
  [extra: string]: number;
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
    linear(b, s.q, s.xb, L.wq, L.bq, T, s.mmScratch);
    linear(b, s.k, s.xb, L.wk, L.bk, T, s.mmScratch, true);
    linear(b, s.v, s.xb, L.wv, L.bv, T, s.mmScratch, true);

    // rotary position embedding of q and k
    b.rope(s.q, s.ropeTable, s.positions, T, c.nHeads, headDim, ropeDim, halves);
    b.rope(s.k, s.ropeTable, s.positions, T, c.nKvHeads, headDim, ropeDim, halves);

    // KVCache.update: k and v go to their slots in the sequences' pages
    b.kvStore(kv, l, s.k, s.v, s.rows, T);

    // grouped-query attention over each row's cache
    b.attention(s.xb, s.q, kv, l, s.rows, T, s.attScratch);

    // output projection and residual connection back into x
    linear(b, s.xb2, s.xb, L.wo, L.bo, T, s.mmScratch);
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
    b.matmul(s.hb, s.xb, L.wGate, rows, s.mmScratch);
    b.matmul(s.hb2, s.xb, L.wUp, rows, s.mmScratch, true);
    b.swiglu(s.hb, s.hb, s.hb2, hiddenDim, rows);
    b.matmul(s.xb2, s.hb, L.wDown, rows, s.mmScratch);

    // residual connection
    b.add(s.x, s.x, s.xb2, rows * dim);
  }

  // final rmsnorm and classifier, for the rows whose next token is wanted (now x's first nOut rows)
  b.rmsnorm(s.xLast, s.x, w.outputNorm, dim, normEps, nOut);
  b.matmul(s.logits, s.xLast, w.output, nOut, s.mmScratch);
}

export const llama: Architecture<LlamaWeights> = {
  names: ["llama", "mistral"],
  config: (file) => llamaConfigFromMetadata(file),
  tensors: llamaTensors,
  bind: bindLlamaWeights,
  forward: llamaForward,
};
