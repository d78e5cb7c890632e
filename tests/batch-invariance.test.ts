// Batch invariance of the default (non-ggmlOrder) WASM kernels: a sequence's logits do not depend on which
// other rows share its step, so a seeded request returns the same tokens alone and under load. Small
// synthetic llama models (random weights, every matrix of one type) are built in memory with kvasm's writer
// and quantizer. (ggmlOrder is exempt: it follows llama.cpp, whose one-row and many-row orders differ.)
import { assertBitIdentical, assertEquals, test } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { Engine } from "../src/engine/engine.ts";
import { BytesSink, type GGUFMetadataEntry, type GGUFTensorToWrite, writeGGUF } from "../src/formats/gguf-writer.ts";
import { GGMLType, type GGMLTypeId } from "../src/formats/ggml-types.ts";
import { quantizeRows } from "../src/quant/quantize.ts";

const DIM = 256, HIDDEN = 512, LAYERS = 2, HEADS = 4, KV_HEADS = 2, VOCAB = 512, CONTEXT = 128;

function random(n: number, seed: number, std: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  const scale = (std * Math.sqrt(3)) / 0x80000000;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s | 0) * scale;
  }
  return out;
}

/** A llama GGUF with every matrix (embedding and classifier included) in `type`. */
async function syntheticModel(type: GGMLTypeId): Promise<Uint8Array> {
  const tokens = ["<unk>", "<s>", "</s>"];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  while (tokens.length < VOCAB) tokens.push("▁w" + tokens.length);
  const types = new Int32Array(VOCAB).fill(1);
  types[0] = 2;
  types[1] = types[2] = 3;
  for (let b = 0; b < 256; b++) types[3 + b] = 6;
  const md = (key: string, t: string, value: unknown): GGUFMetadataEntry => ({
    key,
    type: { type: t } as GGUFMetadataEntry["type"],
    value,
  });
  const metadata: GGUFMetadataEntry[] = [
    md("general.architecture", "string", "llama"),
    md("llama.context_length", "u32", CONTEXT),
    md("llama.embedding_length", "u32", DIM),
    md("llama.feed_forward_length", "u32", HIDDEN),
    md("llama.block_count", "u32", LAYERS),
    md("llama.attention.head_count", "u32", HEADS),
    md("llama.attention.head_count_kv", "u32", KV_HEADS),
    md("llama.rope.dimension_count", "u32", DIM / HEADS),
    md("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
    md("tokenizer.ggml.model", "string", "llama"),
    { key: "tokenizer.ggml.tokens", type: { type: "array", of: "string" }, value: tokens },
    { key: "tokenizer.ggml.scores", type: { type: "array", of: "f32" }, value: new Float32Array(VOCAB).map((_, i) => -i) },
    { key: "tokenizer.ggml.token_type", type: { type: "array", of: "i32" }, value: types },
    md("tokenizer.ggml.bos_token_id", "u32", 1),
    md("tokenizer.ggml.eos_token_id", "u32", 2),
  ];
  let seed = 1;
  const matrix = (name: string, cols: number, rows: number, std = 0.08): GGUFTensorToWrite => {
    const data = quantizeRows(type, random(cols * rows, 2654435761 * seed++, std), cols);
    return { name, type, shape: [cols, rows], data };
  };
  const norm = (name: string): GGUFTensorToWrite => ({
    name,
    type: GGMLType.F32,
    shape: [DIM],
    data: new Uint8Array(new Float32Array(DIM).map((_, i) => 0.8 + (i % 7) * 0.05).buffer),
  });
  const kvDim = (DIM / HEADS) * KV_HEADS;
  const tensors: GGUFTensorToWrite[] = [matrix("token_embd.weight", DIM, VOCAB, 1)];
  for (let l = 0; l < LAYERS; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      norm(p + "attn_norm.weight"),
      matrix(p + "attn_q.weight", DIM, DIM),
      matrix(p + "attn_k.weight", DIM, kvDim),
      matrix(p + "attn_v.weight", DIM, kvDim),
      matrix(p + "attn_output.weight", DIM, DIM),
      norm(p + "ffn_norm.weight"),
      matrix(p + "ffn_gate.weight", DIM, HIDDEN),
      matrix(p + "ffn_up.weight", DIM, HIDDEN),
      matrix(p + "ffn_down.weight", HIDDEN, DIM),
    );
  }
  tensors.push(norm("output_norm.weight"), matrix("output.weight", DIM, VOCAB));
  const sink = new BytesSink();
  await writeGGUF(sink, metadata, tensors);
  return sink.bytes();
}

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((seed * 131 + i * 37) % (VOCAB - 3)));

/**
 * The probe sequence (a 9-token prompt, then one more token) stepped alone, then the same in a step of
 * `rows` rows: beside other sequences' decode rows and a prompt chunk, at a place that is not the first.
 */
async function probeInBatch(m: Model, rows: number): Promise<[Float32Array, Float32Array]> {
  const prompt = ids(9, 1), next = 77;
  const a = m.newSequence();
  await m.prefill(a, prompt);
  const alone = (await m.step([{ seq: a, tokens: [next] }]))[0].slice();
  m.releaseSequence(a);

  const others = [];
  for (let i = 0; i < Math.min(rows - 1, 3); i++) {
    const s = m.newSequence();
    await m.prefill(s, ids(5 + 3 * i, 10 + i));
    others.push({ seq: s, tokens: [100 + i] });
  }
  // the rest of the rows: one prompt chunk of a fresh sequence
  const chunkLen = rows - 1 - others.length;
  const fresh = m.newSequence();
  if (chunkLen > 0) others.push({ seq: fresh, tokens: ids(chunkLen, 42) });
  const b = m.newSequence();
  await m.prefill(b, prompt);
  const inputs = [...others];
  inputs.splice(Math.min(1, inputs.length), 0, { seq: b, tokens: [next] });
  assertEquals(inputs.reduce((n, x) => n + x.tokens.length, 0), rows, "rows in the step");
  const out = await m.step(inputs);
  const batched = out[inputs.findIndex((x) => x.seq === b)].slice();
  for (const x of inputs) m.releaseSequence(x.seq);
  m.releaseSequence(fresh);
  return [alone, batched];
}

const TYPES: Array<[string, GGMLTypeId]> = [
  ["F32", GGMLType.F32],
  ["F16", GGMLType.F16],
  ["Q8_0", GGMLType.Q8_0],
  ["Q4_0", GGMLType.Q4_0],
  ["Q4_K", GGMLType.Q4_K],
  ["Q6_K", GGMLType.Q6_K],
];

for (const [name, type] of TYPES) {
  test(`${name} weights: model.step logits of a row are bit-identical alone and in steps of 2, 5 and 16 rows`, async () => {
    const m = await loadModel(await syntheticModel(type), { threads: 1, maxSequences: 8 });
    try {
      for (const rows of [2, 5, 16]) {
        const [alone, batched] = await probeInBatch(m, rows);
        assertBitIdentical(batched, alone, `${name}, ${rows} rows`);
      }
    } finally {
      await m.close();
    }
  });
}

test("F16 KV cache (default mode): a row's logits are the same alone and in steps of 5 and 70 rows (no tiled path)", async () => {
  const m = await loadModel(await syntheticModel(GGMLType.Q8_0), { threads: 1, maxSequences: 8, kvCacheType: "f16" });
  try {
    for (const rows of [5, 70]) {
      const [alone, batched] = await probeInBatch(m, rows);
      assertBitIdentical(batched, alone, `f16 cache, ${rows} rows`);
    }
  } finally {
    await m.close();
  }
});

test("engine: a seeded temperature-0.8 request gives the same ids and logprobs alone and beside 7 others (10 seeds)", async () => {
  const bytes = await syntheticModel(GGMLType.F32);
  const m = await loadModel(bytes, { threads: 1, maxSequences: 8 });
  const engine = new Engine(m, { prefixCachePages: 0 });
  try {
    const params = (seed: number, prompt: number[]) => ({ prompt, maxTokens: 12, temperature: 0.8, seed, logprobs: 2 });
    for (let seed = 1; seed <= 10; seed++) {
      const prompt = ids(6 + seed, seed);
      const alone = await engine.submit(params(seed, prompt)).done;
      const crowd = [engine.submit(params(seed, prompt))];
      for (let k = 1; k < 8; k++) crowd.push(engine.submit(params(1000 * seed + k, ids(3 + 2 * k, 50 + seed * 8 + k))));
      const results = await Promise.all(crowd.map((r) => r.done));
      assertEquals(results[0].choices[0].tokens, alone.choices[0].tokens, `seed ${seed}: ids`);
      assertEquals(results[0].choices[0].logprobs, alone.choices[0].logprobs, `seed ${seed}: logprobs`);
    }
  } finally {
    await engine.close();
    await m.close();
  }
});
