/** src/quant/quantize.ts: round trips, edge blocks, llama.cpp's type choices. */
import { assert, assertEquals, assertRejects, test } from "./harness.ts";
import { GGMLType, ggmlTypeName } from "../src/formats/ggml-types.ts";
import { chooseTensorType, quantizeModel, quantizeRows, useMoreBits } from "../src/quant/quantize.ts";
import { dequantizeRef } from "../src/quant/dequantize-ref.ts";
import { BytesSink } from "../src/formats/gguf-writer.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { BytesSource } from "../src/io/source.ts";
import type { MetadataValue, ModelFile } from "../src/formats/types.ts";
import { ParamError, UnsupportedError } from "../src/errors.ts";

function data(n: number, seed: number): Float32Array {
  let s = seed;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    x[i] = ((s >>> 8) / 2 ** 24 - 0.5) * (i % 64 === 7 ? 8 : 1);
  }
  return x;
}

const RMS_TOL: Record<number, number> = {
  [GGMLType.F16]: 1e-3,
  [GGMLType.Q8_0]: 0.01,
  [GGMLType.Q6_K]: 0.04,
  [GGMLType.Q5_0]: 0.1,
  [GGMLType.Q5_1]: 0.1,
  [GGMLType.Q4_0]: 0.2,
  [GGMLType.Q4_1]: 0.2,
  [GGMLType.Q4_K]: 0.2,
};

for (const type of Object.keys(RMS_TOL).map(Number)) {
  test(`quantize: ${ggmlTypeName(type)} round trip stays within its quantization error`, () => {
    const n = 512, x = data(n * 3, 7 + type);
    x.fill(0, 256, 512); // an all-zero block
    const q = quantizeRows(type, x, n);
    const y = dequantizeRef(type, q, x.length);
    let err = 0, pow = 0;
    for (let i = 0; i < x.length; i++) {
      err += (y[i] - x[i]) ** 2;
      pow += x[i] ** 2;
    }
    assert(Math.sqrt(err / pow) <= RMS_TOL[type], `relative rms error ${Math.sqrt(err / pow)}`);
    for (let i = 256; i < 512; i++) assertEquals(y[i], 0, `zero block element ${i}`);
    assert(Math.sqrt(err / pow) > 0 || type === GGMLType.F16, "quantization should lose something");
  });
}

test("quantize: bad arguments are ParamError / UnsupportedError", async () => {
  await assertRejects(() => quantizeRows(GGMLType.Q4_K, new Float32Array(96), 96), ParamError, /96/);
  await assertRejects(() => quantizeRows(GGMLType.Q8_0, new Float32Array(40), 32), ParamError);
  await assertRejects(() => quantizeRows(GGMLType.IQ4_XS, new Float32Array(256), 256), UnsupportedError, /IQ4_XS/);
});

test("quantize: llama.cpp's tensor type choices (use_more_bits, output, fallbacks)", () => {
  // 12 layers: 0, 1 (< 12/8 = 1? no: 0 only), the last eighth (>= 10), and every third in between
  assertEquals([...Array(12).keys()].filter((i) => useMoreBits(i, 12)), [0, 3, 6, 9, 10, 11]);
  const ctx = { hasOutput: true, iAttnV: 0, nAttnV: 12, iFfnDown: 5, nFfnDown: 12 };
  const t = (name: string, shape: number[], target: "Q8_0" | "Q4_0" | "Q4_K" | "Q4_K_M", c = ctx) =>
    ggmlTypeName(chooseTensorType(target, { name, shape }, c));
  assertEquals(t("output.weight", [768, 32000], "Q4_K_M"), "Q6_K");
  assertEquals(t("output.weight", [768, 32000], "Q8_0"), "Q8_0");
  assertEquals(t("output.weight", [64, 512], "Q4_0"), "Q8_0"); // stories260K: 64 % 256 != 0
  assertEquals(t("output.weight", [768, 32000], "Q4_K"), "Q4_K"); // pure
  assertEquals(t("token_embd.weight", [768, 32000], "Q4_K_M", { ...ctx, hasOutput: false }), "Q6_K"); // tied classifier
  assertEquals(t("token_embd.weight", [768, 32000], "Q4_K_M"), "Q4_K");
  assertEquals(t("blk.0.attn_v.weight", [768, 768], "Q4_K_M"), "Q6_K");
  assertEquals(t("blk.5.ffn_down.weight", [2048, 768], "Q4_K_M"), "Q4_K");
  assertEquals(t("blk.5.ffn_down.weight", [2048, 768], "Q4_K_M", { ...ctx, iFfnDown: 6 }), "Q6_K");
  assertEquals(t("blk.0.ffn_down.weight", [172, 64], "Q4_0"), "F16");
  assertEquals(t("blk.0.attn_q.weight", [64, 64], "Q4_K_M"), "Q5_0"); // Q4_K fallback
  assertEquals(t("blk.0.attn_norm.weight", [64], "Q4_K_M"), "F32");
});

test("quantize: quantizeModel Q4_K (pure) on a small in-memory model", async () => {
  const n = 256, rows = 4;
  const w = data(n * rows, 3), norm = data(n, 4);
  const bytes = new Uint8Array(w.byteLength + norm.byteLength);
  bytes.set(new Uint8Array(w.buffer), 0);
  bytes.set(new Uint8Array(norm.buffer), w.byteLength);
  const input: ModelFile = {
    format: "llama2c",
    source: new BytesSource(bytes),
    metadata: new Map<string, MetadataValue>([["general.architecture", "llama"], ["llama.block_count", 1]]),
    tensors: new Map([
      ["blk.0.attn_q.weight", { name: "blk.0.attn_q.weight", type: GGMLType.F32, shape: [n, rows], offset: 0, byteLength: w.byteLength }],
      ["output_norm.weight", {
        name: "output_norm.weight",
        type: GGMLType.F32,
        shape: [n],
        offset: w.byteLength,
        byteLength: norm.byteLength,
      }],
    ]),
  };
  const sink = new BytesSink();
  await quantizeModel({
    input,
    output: sink,
    type: "Q4_K",
    tokenizerMetadata: [{ key: "tokenizer.ggml.model", type: { type: "string" }, value: "llama" }],
  });
  const out = await readGGUF(new BytesSource(sink.bytes()));
  assertEquals(out.metadata.get("general.file_type"), 14);
  assertEquals(out.metadata.get("general.quantization_version"), 2);
  assertEquals(out.metadata.get("tokenizer.ggml.model"), "llama");
  assertEquals([...out.tensors.values()].map((t) => [t.name, ggmlTypeName(t.type)]), [["output_norm.weight", "F32"], [
    "blk.0.attn_q.weight",
    "Q4_K",
  ]]);
  const q = out.tensors.get("blk.0.attn_q.weight")!;
  const qb = new Uint8Array(q.byteLength);
  await out.source.read(q.offset, qb);
  assertEquals(Array.from(qb), Array.from(quantizeRows(GGMLType.Q4_K, w, n)));
});
