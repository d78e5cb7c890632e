/**
 * Quantized tensors from llama.cpp's own files (../shared/models/synthetic-quants):
 * dequantize_* against the F32 originals and the JS reference, and kvasm's
 * quantizer against llama.cpp's output, block for block.
 */
import { assert, assertEquals, REPO, sharedPath, tensorBytes, testShared } from "./harness.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import { type GGUFFile, readGGUF } from "../src/formats/gguf.ts";
import { BytesSource, FileSource } from "../src/io/source.ts";
import { GGMLType, type GGMLTypeId, ggmlTypeName, rowBytes } from "../src/formats/ggml-types.ts";
import { weightKernel } from "../src/quant/kernels.ts";
import { dequantizeRef } from "../src/quant/dequantize-ref.ts";
import { quantizeModel, quantizeRows } from "../src/quant/quantize.ts";
import { BytesSink } from "../src/formats/gguf-writer.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";

const SQ = (f: string) => sharedPath("models", "synthetic-quants", f);
const memory = new WebAssembly.Memory({ initial: 64 });
const wasm = checkKernelExports(
  new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(path.join(REPO, "build", "kvasm-relaxed.wasm"))), { env: { memory } })
    .exports,
  "relaxed",
);

const files = new Map<string, GGUFFile>();
async function open(p: string): Promise<GGUFFile> {
  if (!files.has(p)) files.set(p, await readGGUF(await FileSource.open(p)));
  return files.get(p)!;
}
async function tensorF32(f: GGUFFile, name: string): Promise<Float32Array> {
  return new Float32Array((await tensorBytes(f, name)).buffer);
}

/** Expected max |error| / rms(row) for one row of each type (generous: a bug gives errors of order 1). */
const ROW_TOL: Record<number, number> = {
  [GGMLType.BF16]: 0.01,
  [GGMLType.Q8_0]: 0.03,
  [GGMLType.Q6_K]: 0.1,
  [GGMLType.Q5_0]: 0.2,
  [GGMLType.Q5_1]: 0.2,
  [GGMLType.Q5_K]: 0.2,
  [GGMLType.Q4_0]: 0.4,
  [GGMLType.Q4_1]: 0.4,
  [GGMLType.Q4_K]: 0.4,
  [GGMLType.Q3_K]: 0.8,
  [GGMLType.Q2_K]: 1.5,
};

const CASES: [file: string, tensors: string[]][] = [
  ["synthq-bf16.gguf", ["token_embd.weight", "blk.0.attn_q.weight"]],
  ["synthq-q8_0.gguf", ["token_embd.weight", "blk.1.ffn_down.weight"]],
  ["synthq-q4_0.gguf", ["token_embd.weight", "output.weight", "blk.0.ffn_up.weight"]],
  ["synthq-q4_1.gguf", ["token_embd.weight", "blk.0.attn_k.weight"]],
  ["synthq-q5_0.gguf", ["token_embd.weight", "blk.1.attn_q.weight"]],
  ["synthq-q5_1.gguf", ["token_embd.weight", "blk.0.ffn_gate.weight"]],
  ["synthq-q2_k.gguf", ["token_embd.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight", "blk.0.ffn_up.weight"]],
  ["synthq-q3_k_m.gguf", ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_v.weight"]],
  ["synthq-q4_k_m.gguf", ["token_embd.weight", "blk.1.attn_v.weight", "blk.0.ffn_down.weight"]],
  ["synthq-q5_k_m.gguf", ["token_embd.weight", "blk.0.attn_q.weight"]],
  ["synthq-q6_k.gguf", ["token_embd.weight", "blk.0.attn_q.weight"]],
];

for (const [file, names] of CASES) {
  testShared(
    `quant files: dequantize_* on ${file} matches the F32 model and the JS reference`,
    [SQ(file), SQ("synthq-f32.gguf")],
    async () => {
      const q = await open(SQ(file)), f = await open(SQ("synthq-f32.gguf"));
      const seen = new Set<GGMLTypeId>();
      for (const name of names) {
        const t = q.tensors.get(name)!;
        seen.add(t.type);
        const n = t.shape[0], rows = t.shape[1], rb = rowBytes(t.type, n)!;
        const bytes = await tensorBytes(q, name), orig = await tensorF32(f, name);
        const W = 65536, O = W + bytes.length + 64;
        new Uint8Array(memory.buffer, W, bytes.length).set(bytes);
        for (const r of [0, 1, rows >> 1, rows - 1]) {
          wasm[weightKernel(t.type).dequantize](O, W + r * rb, n);
          const got = new Float32Array(memory.buffer, O, n).slice();
          assertEquals(
            Array.from(got),
            Array.from(dequantizeRef(t.type, bytes.subarray(r * rb, (r + 1) * rb), n)),
            `${name} row ${r}: wasm vs JS`,
          );
          const x = orig.subarray(r * n, (r + 1) * n);
          let rms = 0, worst = 0;
          for (let i = 0; i < n; i++) rms += x[i] * x[i];
          rms = Math.sqrt(rms / n);
          for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i] - x[i]));
          if (rms === 0) assertEquals(worst, 0, `${name} row ${r} is all zeros`); // output.weight rows 0..2
          else assert(worst / rms <= ROW_TOL[t.type], `${name} (${ggmlTypeName(t.type)}) row ${r}: max error ${worst / rms} x rms`);
        }
      }
      assert(seen.size > 0);
    },
  );
}

for (
  const [file, types] of [
    ["synthq-q8_0.gguf", [GGMLType.Q8_0]],
    ["synthq-q4_0.gguf", [GGMLType.Q4_0, GGMLType.Q6_K]],
    ["synthq-q4_1.gguf", [GGMLType.Q4_1]],
    ["synthq-q5_0.gguf", [GGMLType.Q5_0]],
    ["synthq-q5_1.gguf", [GGMLType.Q5_1]],
    ["synthq-q4_k_m.gguf", [GGMLType.Q4_K, GGMLType.Q6_K]],
  ] as [string, GGMLTypeId[]][]
) {
  testShared(`quant files: quantizeRows reproduces llama.cpp's ${file} block for block`, [SQ(file), SQ("synthq-f32.gguf")], async () => {
    const q = await open(SQ(file)), f = await open(SQ("synthq-f32.gguf"));
    let checked = 0;
    for (const t of q.tensors.values()) {
      if (t.shape.length < 2 || !types.includes(t.type)) continue;
      const mine = quantizeRows(t.type, await tensorF32(f, t.name), t.shape[0]);
      const theirs = await tensorBytes(q, t.name);
      const bs = rowBytes(t.type, t.type === GGMLType.Q4_K || t.type === GGMLType.Q6_K ? 256 : 32)!;
      let differ = 0;
      for (let b = 0; b < mine.length / bs; b++) {
        for (let j = 0; j < bs; j++) {
          if (mine[b * bs + j] !== theirs[b * bs + j]) {
            differ++;
            break;
          }
        }
      }
      assertEquals(differ, 0, `${t.name} (${ggmlTypeName(t.type)}): blocks that differ`);
      checked++;
    }
    assert(checked >= 1, "no tensors checked");
  });
}

testShared("quant files: quantizeModel Q4_K_M writes llama.cpp's synthq-q4_k_m.gguf tensors exactly", [
  SQ("synthq-q4_k_m.gguf"),
  SQ("synthq-f32.gguf"),
], async () => {
  const f = await open(SQ("synthq-f32.gguf")), ref = await open(SQ("synthq-q4_k_m.gguf"));
  const sink = new BytesSink();
  await quantizeModel({ input: f, output: sink, type: "Q4_K_M" });
  const out = await readGGUF(new BytesSource(sink.bytes(), "q4_k_m.gguf"));
  assertEquals([...out.tensors.keys()], [...ref.tensors.keys()], "tensor order");
  for (const t of ref.tensors.values()) {
    const o = out.tensors.get(t.name)!;
    assertEquals([ggmlTypeName(o.type), o.shape], [ggmlTypeName(t.type), t.shape], t.name);
    const a = await tensorBytes(out, t.name), b = await tensorBytes(ref, t.name);
    assert(a.length === b.length && a.every((v, i) => v === b[i]), `${t.name}: data differs`);
  }
  assertEquals(out.metadata.get("general.file_type"), 15);
  assertEquals(out.metadata.get("general.quantization_version"), 2);
  assertEquals(out.metadata.get("tokenizer.ggml.tokens"), ref.metadata.get("tokenizer.ggml.tokens"));
});

testShared("quant files: quantizeModel Q4_0 / Q8_0 on stories260K match llama.cpp's tensor types and data", [
  sharedPath("models", "stories260K", "stories260K.gguf"),
  sharedPath("models", "stories260K", "stories260K-q4_0.gguf"),
], async () => {
  const f = await open(sharedPath("models", "stories260K", "stories260K.gguf"));
  for (const [type, refName, ftype] of [["Q4_0", "stories260K-q4_0.gguf", 2], ["Q8_0", "stories260K-q8_0.gguf", 7]] as const) {
    const ref = await open(sharedPath("models", "stories260K", refName));
    const sink = new BytesSink();
    await quantizeModel({ input: f, output: sink, type });
    const out = await readGGUF(new BytesSource(sink.bytes(), `${type}.gguf`));
    assertEquals(out.metadata.get("general.file_type"), ftype);
    for (const t of ref.tensors.values()) {
      const o = out.tensors.get(t.name)!;
      assertEquals(ggmlTypeName(o.type), ggmlTypeName(t.type), `${type} ${t.name}`);
      const a = await tensorBytes(out, t.name), b = await tensorBytes(ref, t.name);
      assert(a.length === b.length && a.every((v, i) => v === b[i]), `${type} ${t.name}: data differs`);
    }
  }
});
