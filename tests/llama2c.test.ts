import { assert, assertEquals, assertRejects, sharedPath, tensorBytes, test, testShared } from "./harness.ts";
import { FormatError, UnsupportedError } from "../src/errors.ts";
import { BytesSource, FileSource } from "../src/io/source.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { LLAMA2C_MAGIC, readLlama2c } from "../src/formats/llama2c.ts";
import { openModelFile } from "../src/formats/open.ts";
import type { ModelFile } from "../src/formats/types.ts";
import { llama } from "../src/architectures/llama.ts";
import { checkTensors } from "../src/architectures/blocks.ts";
import { deriveConfig } from "../src/model/config.ts";

const STORIES_BIN = sharedPath("models/stories260K/stories260K.bin");
const AIDREAMS_BIN = sharedPath("models/aidreams260K/aidreams260K.bin");

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

testShared("stories260K.bin: legacy header, per-layer tensors, GGUF metadata keys", [STORIES_BIN], async () => {
  const file = await readLlama2c(await FileSource.open(STORIES_BIN));
  assertEquals(file.format, "llama2c");
  const c = llama.config(file);
  assertEquals(
    [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.headDim, c.vocabSize, c.contextLength, c.ropeTheta, c.ropeDim],
    [64, 172, 5, 8, 4, 8, 512, 512, 10000, 8],
  );
  assertEquals(c.ropeStyle, "interleaved");
  assertEquals(c.ropeAngles, "llama2c"); // run.c's RoPE angles, which the loader hands to the Model
  assertEquals(file.metadata.get("general.name"), "stories260K");
  checkTensors(file, llama.tensors(deriveConfig(c)));
  // Shared classifier: no output.weight; 1 embedding + 1 final norm + 9 per layer.
  assertEquals(file.tensors.has("output.weight"), false);
  assertEquals(file.tensors.size, 2 + 5 * 9);
  const q0 = file.tensors.get("blk.0.attn_q.weight")!, q1 = file.tensors.get("blk.1.attn_q.weight")!;
  assertEquals([q0.type, q0.shape, q0.byteLength], [GGMLType.F32, [64, 64], 64 * 64 * 4]);
  // Layout: header 28 B, embedding 512*64 floats, 5 attn norms of 64, then wq stacked by layer.
  assertEquals(file.tensors.get("token_embd.weight")!.offset, 28);
  assertEquals(q0.offset, 28 + (512 * 64 + 5 * 64) * 4);
  assertEquals(q1.offset - q0.offset, 64 * 64 * 4);
  assertEquals(file.tensors.get("blk.2.ffn_down.weight")!.shape, [172, 64]);
  assertEquals(file.tensors.get("blk.2.ffn_gate.weight")!.shape, [64, 172]);
  const norm = new Float32Array((await tensorBytes(file, "output_norm.weight")).buffer);
  assert(norm.every((x) => Number.isFinite(x) && x !== 0), "final norm weights are real numbers");
  // The last tensor (before the skipped freq_cis tables) ends where freq_cis begins.
  const fin = file.tensors.get("output_norm.weight")!;
  assertEquals(fin.offset + fin.byteLength + 2 * 512 * 4 * 4, file.source.size);
  await file.source.close();
});

testShared("aidreams260K.bin: 4 layers, 4 heads, plain multi-head attention, context 128", [AIDREAMS_BIN], async () => {
  const file = await openModelFile(AIDREAMS_BIN);
  assertEquals(file.format, "llama2c");
  const c = llama.config(file);
  assertEquals([c.dim, c.nLayers, c.nHeads, c.nKvHeads, c.headDim, c.vocabSize, c.contextLength], [64, 4, 4, 4, 16, 512, 128]);
  checkTensors(file, llama.tensors(deriveConfig(c)));
  assertEquals(file.tensors.get("blk.3.attn_k.weight")!.shape, [64, 64]);
  assertEquals(file.tensors.has("blk.4.attn_k.weight"), false);
  await file.source.close();
});

testShared("export.py v1 checkpoint built from stories260K.bin reads back the same tensors", [STORIES_BIN], async () => {
  const v0 = await readLlama2c(await FileSource.open(STORIES_BIN));
  const header = new Uint8Array(256);
  const dv = new DataView(header.buffer);
  dv.setUint32(0, LLAMA2C_MAGIC, true);
  dv.setInt32(4, 1, true);
  [64, 172, 5, 8, 4, 512, 512].forEach((v, i) => dv.setInt32(8 + 4 * i, v, true));
  dv.setUint8(36, 1); // shared classifier
  const layers = (key: string) => Array.from({ length: 5 }, (_, l) => `blk.${l}.${key}.weight`);
  // version1_export order: attention norms, ffn norms, final norm, embedding, wq, wk, wv, wo, w1, w2, w3.
  const order = [
    ...layers("attn_norm"),
    ...layers("ffn_norm"),
    "output_norm.weight",
    "token_embd.weight",
    ...["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up"].flatMap(layers),
  ];
  const bytes = concat([header, ...(await Promise.all(order.map((n) => tensorBytes(v0, n))))]);
  const v1 = await readLlama2c(new BytesSource(bytes, "stories260K-v1.bin"));
  assertEquals(v1.metadata.get("llama2c.version"), 1);
  assertEquals([...v1.tensors.keys()].sort(), [...v0.tensors.keys()].sort());
  for (const name of v0.tensors.keys()) {
    assertEquals(v1.tensors.get(name)!.shape, v0.tensors.get(name)!.shape, name);
    const a = await tensorBytes(v0, name), b = await tensorBytes(v1, name);
    assert(a.every((x, i) => x === b[i]), `${name} differs between v0 and v1`);
  }
  // openModelFile sniffs the magic as llama2.c too.
  assertEquals((await openModelFile(bytes)).format, "llama2c");
  await v0.source.close();
});

/** A tiny legacy checkpoint whose every float is its own index, so offsets can be checked by value. */
function tinyLegacy(vocabField: number): Uint8Array {
  const dims = { dim: 8, hidden: 16, layers: 1, heads: 2, kv: 1, vocab: Math.abs(vocabField), seq: 4 };
  const headDim = dims.dim / dims.heads, kvDim = dims.kv * headDim;
  let floats = dims.vocab * dims.dim + dims.dim + dims.dim * dims.dim + 2 * dims.dim * kvDim + dims.dim * dims.dim + dims.dim +
    3 * dims.dim * dims.hidden + dims.dim + dims.seq * headDim;
  if (vocabField < 0) floats += dims.vocab * dims.dim;
  const out = new Uint8Array(28 + floats * 4);
  const dv = new DataView(out.buffer);
  [dims.dim, dims.hidden, dims.layers, dims.heads, dims.kv, vocabField, dims.seq].forEach((v, i) => dv.setInt32(4 * i, v, true));
  for (let i = 0; i < floats; i++) dv.setFloat32(28 + 4 * i, i, true);
  return out;
}

async function firstFloat(file: ModelFile, name: string): Promise<number> {
  return new Float32Array((await tensorBytes(file, name)).buffer)[0];
}

test("legacy checkpoint with a negative vocab_size has an unshared classifier after freq_cis", async () => {
  const file = await readLlama2c(new BytesSource(tinyLegacy(-10), "tiny.bin"));
  assertEquals(file.metadata.get("llama.vocab_size"), 10);
  assertEquals(file.tensors.get("output.weight")!.shape, [8, 10]);
  // embedding 80 | attn_norm 8 | wq 64 | wk 32 | wv 32 | wo 64 | ffn_norm 8 | w1 128 | w2 128 | w3 128 | norm 8 | freq 8+8 | wcls 80
  assertEquals(await firstFloat(file, "token_embd.weight"), 0);
  assertEquals(await firstFloat(file, "blk.0.attn_q.weight"), 88);
  assertEquals(await firstFloat(file, "blk.0.attn_k.weight"), 152);
  assertEquals(await firstFloat(file, "blk.0.ffn_norm.weight"), 280);
  assertEquals(await firstFloat(file, "blk.0.ffn_gate.weight"), 288);
  assertEquals(await firstFloat(file, "blk.0.ffn_down.weight"), 416);
  assertEquals(await firstFloat(file, "blk.0.ffn_up.weight"), 544);
  assertEquals(await firstFloat(file, "output_norm.weight"), 672);
  assertEquals(await firstFloat(file, "output.weight"), 696);
  checkTensors(file, llama.tensors(deriveConfig(llama.config(file))));

  const shared = await readLlama2c(new BytesSource(tinyLegacy(10), "tiny-shared.bin"));
  assertEquals(shared.tensors.has("output.weight"), false);
});

test("llama2.c version 2 (int8) is refused as unsupported; bad headers and sizes as format errors", async () => {
  const v2 = new Uint8Array(256);
  new DataView(v2.buffer).setUint32(0, LLAMA2C_MAGIC, true);
  new DataView(v2.buffer).setInt32(4, 2, true);
  await assertRejects(() => readLlama2c(new BytesSource(v2, "q80.bin")), UnsupportedError, /q80\.bin: llama2\.c version 2/);

  const good = tinyLegacy(10);
  await assertRejects(
    () => readLlama2c(new BytesSource(good.subarray(0, good.length - 4), "cut.bin")),
    FormatError,
    new RegExp(`cut\\.bin: truncated llama2\\.c checkpoint: expected ${good.length} bytes.*file is ${good.length - 4} bytes`),
  );
  await assertRejects(
    () => readLlama2c(new BytesSource(concat([good, new Uint8Array(8)]), "long.bin")),
    FormatError,
    new RegExp(`long\\.bin: llama2\\.c checkpoint is ${good.length + 8} bytes, expected exactly ${good.length}`),
  );
  const badHeads = good.slice();
  new DataView(badHeads.buffer).setInt32(12, 3, true); // n_heads 3 does not divide dim 8
  await assertRejects(() => readLlama2c(new BytesSource(badHeads, "heads.bin")), FormatError, /n_heads 3 does not divide dim 8/);
  const badKv = good.slice();
  new DataView(badKv.buffer).setInt32(16, 0, true);
  await assertRejects(() => readLlama2c(new BytesSource(badKv, "kv.bin")), FormatError, /n_kv_heads = 0 is out of range/);
  await assertRejects(() => readLlama2c(new BytesSource(new Uint8Array(10), "tiny.bin")), FormatError, /too short for a llama2\.c header/);
});
