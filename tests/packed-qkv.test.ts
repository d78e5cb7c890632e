/**
 * Fused QKV layouts, element by element: the fused weight holds the values
 * 0..n-1 (each element says where it came from), goes through the loader's
 * Hugging Face mapping into the arena, is split by the architecture's views,
 * and every element of Q, K and V (and of their biases) is checked against
 * the position the Hugging Face layout gives it:
 * - GPT-2 c_attn (Conv1D [in, 3 dim], transposed on read), [q|k|v] columns;
 * - GPT-NeoX query_key_value ([head][q|k|v][headDim] rows, regrouped on read);
 * - Phi-3 qkv_proj ([q | k | v] rows, GQA) and gate_up_proj ([gate | up] rows).
 */
import type { Weight } from "../src/backends/backend.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { readSafetensors } from "../src/formats/safetensors.ts";
import { BytesSource } from "../src/io/source.ts";
import { deriveConfig } from "../src/model/config.ts";
import { ArenaPlan } from "../src/memory/arena.ts";
import { hfModelFile } from "../src/model/hf-config.ts";
import { WeightSet } from "../src/model/weights.ts";
import { splitGPTQKV } from "../src/architectures/gpt2.ts";
import { phi3, splitPhi3 } from "../src/architectures/phi3.ts";
import { assert, assertEquals, test } from "./harness.ts";

/** A safetensors file of F32 tensors filled with 0, 1, 2, ... */
function patternSafetensors(tensors: Record<string, number[]>): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: "F32", shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(new TextEncoder().encode(json), 8);
  const data = new Float32Array(out.buffer, 8 + json.length);
  let at = 0;
  for (const shape of Object.values(tensors)) {
    const n = shape.reduce((a, b) => a * b, 1);
    for (let i = 0; i < n; i++) data[at + i] = i;
    at += n;
  }
  return out;
}

async function upload(config: Record<string, unknown>, tensors: Record<string, number[]>) {
  const file = hfModelFile(await readSafetensors(new BytesSource(patternSafetensors(tensors))), config, "config.json");
  const backend = new WasmBackend();
  const infos = [...file.tensors.values()];
  const plan = new ArenaPlan();
  const regions = infos.map((t) => plan.add(`weight ${t.name}`, t.byteLength));
  const at = await plan.place(backend);
  const set = await WeightSet.upload(backend, file, infos.map((t, i) => ({ t, ptr: at(regions[i]) })));
  const read = (w: Weight) => Array.from(backend.arena.f32(w.ptr, w.rows * w.cols));
  return { file, set, read, backend };
}

/** The values a view must hold: element (r, c) = src(r, c). */
function expect(rows: number, cols: number, src: (r: number, c: number) => number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out.push(src(r, c));
  return out;
}

const D = 8, HEADS = 2, HD = 4;

test("GPT-2 c_attn: Conv1D [in, 3 dim] columns become Q, K, V rows", async () => {
  const config = { model_type: "gpt2", n_embd: D, n_head: HEADS, n_layer: 1, n_positions: 16, vocab_size: 4 };
  const { set, read, backend } = await upload(config, { "h.0.attn.c_attn.weight": [D, 3 * D], "h.0.attn.c_attn.bias": [3 * D] });
  const v = splitGPTQKV(set.get("blk.0.attn_qkv.weight"), set.get("blk.0.attn_qkv.bias"), D, "blk.0.");
  // y[o] = sum_i x[i] W[i][o]: output o of part k is column k*D + o, element (i, o) at i * 3D + o
  for (const [part, w, b] of [[0, v.wq, v.bq], [1, v.wk, v.bk], [2, v.wv, v.bv]] as const) {
    assertEquals([w.rows, w.cols], [D, D]);
    assertEquals(read(w), expect(D, D, (o, i) => i * 3 * D + part * D + o), `weight part ${part}`);
    assert(b !== undefined, `bias part ${part} is split out`);
    assertEquals(read(b), expect(1, D, (_, o) => part * D + o), `bias part ${part}`);
  }
  await backend.close();
});

test("GPT-NeoX query_key_value: per-head [q|k|v] rows are regrouped so each head lands in Q, K, V", async () => {
  const config = {
    model_type: "gpt_neox",
    hidden_size: D,
    num_attention_heads: HEADS,
    num_hidden_layers: 1,
    intermediate_size: 16,
    max_position_embeddings: 16,
    vocab_size: 4,
    rotary_pct: 0.5,
  };
  const { set, read, backend } = await upload(config, {
    "gpt_neox.layers.0.attention.query_key_value.weight": [3 * D, D],
    "gpt_neox.layers.0.attention.query_key_value.bias": [3 * D],
  });
  const v = splitGPTQKV(set.get("blk.0.attn_qkv.weight"), set.get("blk.0.attn_qkv.bias"), D, "blk.0.");
  // HF row of head h, part k, dim j: (h * 3 + k) * HD + j
  const hfRow = (part: number, r: number) => (Math.floor(r / HD) * 3 + part) * HD + (r % HD);
  for (const [part, w, b] of [[0, v.wq, v.bq], [1, v.wk, v.bk], [2, v.wv, v.bv]] as const) {
    assertEquals(read(w), expect(D, D, (r, i) => hfRow(part, r) * D + i), `weight part ${part}`);
    assert(b !== undefined, `bias part ${part} is split out`);
    assertEquals(read(b), expect(1, D, (_, r) => hfRow(part, r)), `bias part ${part}`);
  }
  await backend.close();
});

test("Phi-3 qkv_proj ([q|k|v] rows, GQA) and gate_up_proj ([gate|up] rows) split by views", async () => {
  const hidden = 12, kvHeads = 1;
  const config = {
    model_type: "phi3",
    hidden_size: D,
    num_attention_heads: HEADS,
    num_key_value_heads: kvHeads,
    num_hidden_layers: 1,
    intermediate_size: hidden,
    max_position_embeddings: 16,
    vocab_size: 4,
  };
  const qkvRows = D + 2 * kvHeads * HD;
  const { file, set, read, backend } = await upload(config, {
    "model.layers.0.self_attn.qkv_proj.weight": [qkvRows, D],
    "model.layers.0.mlp.gate_up_proj.weight": [2 * hidden, D],
  });
  const c = deriveConfig(phi3.config(file));
  const v = splitPhi3(set.get("blk.0.attn_qkv.weight"), set.get("blk.0.ffn_up.weight"), c, "blk.0.");
  const kv = kvHeads * HD;
  assertEquals(read(v.wq), expect(D, D, (r, i) => r * D + i), "Q rows");
  assertEquals(read(v.wk), expect(kv, D, (r, i) => (D + r) * D + i), "K rows");
  assertEquals(read(v.wv), expect(kv, D, (r, i) => (D + kv + r) * D + i), "V rows");
  assertEquals(read(v.wGate), expect(hidden, D, (r, i) => r * D + i), "gate rows");
  assertEquals(read(v.wUp), expect(hidden, D, (r, i) => (hidden + r) * D + i), "up rows");
  // the views point into the fused tensor: no copy was made
  const fused = set.get("blk.0.attn_qkv.weight");
  assertEquals([v.wq.ptr, v.wk.ptr, v.wv.ptr], [fused.ptr, fused.ptr + D * D * 4, fused.ptr + (D + kv) * D * 4]);
  await backend.close();
});
