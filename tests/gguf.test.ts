import { assert, assertClose, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";
import { FormatError, ParamError } from "../src/errors.ts";
import { BytesSource, FileSource } from "../src/io/source.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { type GGUFFile, type GGUFValueType, readGGUF } from "../src/formats/gguf.ts";
import { BytesSink, fileSink, type GGUFMetadataEntry, inferValueType, metadataEntries, writeGGUF } from "../src/formats/gguf-writer.ts";
import { readLlama2c } from "../src/formats/llama2c.ts";
import { field, withField } from "../scripts/fuzz/gguf-fields.ts";
import { openModelFile } from "../src/formats/open.ts";
import { llama } from "../src/architectures/llama.ts";
import { checkTensors } from "../src/architectures/blocks.ts";
import { deriveConfig } from "../src/model/config.ts";

async function tensorBytes(
  file: { source: { read(o: number, d: Uint8Array): Promise<void> } },
  info: { offset: number; byteLength: number },
) {
  const out = new Uint8Array(info.byteLength);
  await file.source.read(info.offset, out);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** JSON-able form of a metadata value (typed arrays and bigints included) for comparisons. */
function plain(v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (ArrayBuffer.isView(v)) return [v.constructor.name, ...Array.from(v as unknown as ArrayLike<number | bigint>, plain)];
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

const EVERY_TYPE: GGUFMetadataEntry[] = [
  { key: "general.architecture", type: { type: "string" }, value: "llama" },
  { key: "t.u8", type: { type: "u8" }, value: 255 },
  { key: "t.i8", type: { type: "i8" }, value: -128 },
  { key: "t.u16", type: { type: "u16" }, value: 65535 },
  { key: "t.i16", type: { type: "i16" }, value: -32768 },
  { key: "t.u32", type: { type: "u32" }, value: 4294967295 },
  { key: "t.i32", type: { type: "i32" }, value: -2147483648 },
  { key: "t.f32", type: { type: "f32" }, value: 0.5 },
  { key: "t.bool", type: { type: "bool" }, value: false },
  { key: "t.string", type: { type: "string" }, value: "héllo ▁wörld 🦙" },
  { key: "t.u64.small", type: { type: "u64" }, value: 2 ** 53 - 1 },
  { key: "t.u64.big", type: { type: "u64" }, value: 18446744073709551615n },
  { key: "t.i64", type: { type: "i64" }, value: -9223372036854775808n },
  { key: "t.f64", type: { type: "f64" }, value: Math.PI },
  { key: "a.u8", type: { type: "array", of: "u8" }, value: new Uint8Array([0, 1, 255]) },
  { key: "a.i8", type: { type: "array", of: "i8" }, value: new Int8Array([-1, 2]) },
  { key: "a.u16", type: { type: "array", of: "u16" }, value: new Uint16Array([7, 65535]) },
  { key: "a.i16", type: { type: "array", of: "i16" }, value: new Int16Array([-7, 300]) },
  { key: "a.u32", type: { type: "array", of: "u32" }, value: new Uint32Array([1, 4000000000]) },
  { key: "a.i32", type: { type: "array", of: "i32" }, value: new Int32Array([-5, 6, 7]) },
  { key: "a.f32", type: { type: "array", of: "f32" }, value: new Float32Array([1.5, -2.25, 0]) },
  { key: "a.f64", type: { type: "array", of: "f64" }, value: new Float64Array([Math.E]) },
  { key: "a.bool", type: { type: "array", of: "bool" }, value: [true, false, true] },
  { key: "a.string", type: { type: "array", of: "string" }, value: ["a", "", "<0x0A>", "▁the"] },
  { key: "a.u64", type: { type: "array", of: "u64" }, value: [1, 18446744073709551615n] },
  { key: "a.i64", type: { type: "array", of: "i64" }, value: [-1, -9223372036854775808n] },
  { key: "a.empty", type: { type: "array", of: "f32" }, value: new Float32Array(0) },
  {
    key: "a.nested",
    type: { type: "array", of: "array", inner: [{ type: "array", of: "i32" }, { type: "array", of: "string" }] },
    value: [new Int32Array([1, 2]), ["x", "y"]],
  },
];

function q8Blocks(nBlocks: number): Uint8Array {
  const out = new Uint8Array(nBlocks * 34);
  for (let i = 0; i < out.length; i++) out[i] = (i * 37 + 11) & 0xff;
  return out;
}

test("writeGGUF -> readGGUF round-trips every metadata type and F32/F16/Q8_0 tensors", async () => {
  const f32 = f32Bytes([1, 2, 3, 4, 5, 6]);
  const f16 = new Uint8Array(new Uint16Array([0x3c00, 0x4000, 0xc000, 0x0000, 0x7bff, 0x0001, 0x3555, 0x8000]).buffer);
  const q8 = q8Blocks(4);
  const sink = new BytesSink();
  await writeGGUF(sink, EVERY_TYPE, [
    { name: "a.f32", type: GGMLType.F32, shape: [3, 2], data: f32 },
    { name: "b.f16", type: GGMLType.F16, shape: [8], data: () => f16 },
    { name: "c.q8_0", type: GGMLType.Q8_0, shape: [64, 2], data: () => Promise.resolve(q8) },
  ]);
  const bytes = sink.bytes();
  const file = await readGGUF(new BytesSource(bytes, "roundtrip.gguf"));
  assertEquals(file.version, 3);
  assertEquals(file.alignment, 32);
  assertEquals(file.dataOffset % 32, 0);
  assertEquals([...file.metadata.keys()], EVERY_TYPE.map((e) => e.key));
  for (const e of EVERY_TYPE) {
    assertEquals(file.metadataTypes.get(e.key), e.type, e.key);
    assertEquals(plain(file.metadata.get(e.key)), plain(e.value), e.key);
  }
  // Numeric arrays come back as the matching typed arrays.
  assert(file.metadata.get("a.f32") instanceof Float32Array);
  assert(file.metadata.get("a.i32") instanceof Int32Array);
  assert(file.metadata.get("a.u8") instanceof Uint8Array);
  assertEquals(typeof file.metadata.get("t.u64.small"), "number");
  assertEquals(typeof file.metadata.get("t.u64.big"), "bigint");

  const t = [...file.tensors.values()];
  assertEquals(t.map((x) => [x.name, x.type, x.shape, x.byteLength]), [
    ["a.f32", GGMLType.F32, [3, 2], 24],
    ["b.f16", GGMLType.F16, [8], 16],
    ["c.q8_0", GGMLType.Q8_0, [64, 2], 136],
  ]);
  assertEquals(t[0].offset, file.dataOffset);
  for (const x of t) assertEquals((x.offset - file.dataOffset) % 32, 0, x.name);
  assertEquals(Array.from(await tensorBytes(file, t[0])), Array.from(f32));
  assertEquals(Array.from(await tensorBytes(file, t[1])), Array.from(f16));
  assertEquals(Array.from(await tensorBytes(file, t[2])), Array.from(q8));
  // Each tensor is padded, the last one too.
  assertEquals(bytes.length, t[2].offset + 160);
});

test("writeGGUF with alignment 64 records general.alignment and aligns every tensor", async () => {
  const sink = new BytesSink();
  await writeGGUF(sink, [{ key: "general.architecture", type: { type: "string" }, value: "llama" }], [
    { name: "x", type: GGMLType.F32, shape: [5], data: f32Bytes([1, 2, 3, 4, 5]) },
    { name: "y", type: GGMLType.F32, shape: [3], data: f32Bytes([6, 7, 8]) },
  ], 64);
  const file = await readGGUF(new BytesSource(sink.bytes()));
  assertEquals(file.alignment, 64);
  assertEquals(file.metadata.get("general.alignment"), 64);
  assertEquals(file.dataOffset % 64, 0);
  assertEquals(file.tensors.get("y")!.offset - file.tensors.get("x")!.offset, 64);
  const y = new Float32Array((await tensorBytes(file, file.tensors.get("y")!)).buffer);
  assertEquals(Array.from(y), [6, 7, 8]);
});

test("general.alignment: a power of two up to 2^30, checked in 64 bits (2^32 + 2^31 passed a 32-bit test)", async () => {
  const sink = new BytesSink();
  await writeGGUF(sink, [
    { key: "general.architecture", type: { type: "string" }, value: "llama" },
    { key: "general.alignment", type: { type: "u64" }, value: 64 },
  ], [{ name: "x", type: GGMLType.F32, shape: [2], data: f32Bytes([1, 2]) }]);
  const bytes = sink.bytes();
  assertEquals((await readGGUF(new BytesSource(bytes))).alignment, 64);
  const at = field(bytes, "metadata general.alignment");
  for (const bad of [2n ** 32n + 2n ** 31n, 2n ** 31n, 2n ** 32n, 3n * 2n ** 31n, 2n ** 40n, 0n, 48n]) {
    await assertRejects(
      () => readGGUF(new BytesSource(withField(bytes, at, bad), "a.gguf")),
      FormatError,
      /^a\.gguf: general\.alignment must be a power of two from 1 to 1073741824, found /,
    );
  }
  // the writer takes the same range
  for (const bad of [2 ** 32 + 2 ** 31, 2 ** 31, 0, 48]) {
    await assertRejects(
      () => writeGGUF(new BytesSink(), [], [], bad),
      ParamError,
      /alignment: must be a power of two from 1 to 1073741824/,
    );
  }
});

test("writeGGUF checks tensor data sizes, shapes and values against types", async () => {
  await assertRejects(
    () => writeGGUF(new BytesSink(), [], [{ name: "w", type: GGMLType.F32, shape: [4, 2], data: () => new Uint8Array(31) }]),
    ParamError,
    /tensor "w".*must be 32 bytes.*got 31 bytes/,
  );
  await assertRejects(
    () => writeGGUF(new BytesSink(), [], [{ name: "q", type: GGMLType.Q4_0, shape: [33], data: new Uint8Array(0) }]),
    ParamError,
    /tensor "q".*33 elements cannot be stored as Q4_0/,
  );
  await assertRejects(() => writeGGUF(new BytesSink(), [{ key: "k", type: { type: "u8" }, value: 256 }], []), ParamError, /"k".*256.*u8/);
  await assertRejects(() => writeGGUF(new BytesSink(), [{ key: "k", type: { type: "string" }, value: 3 }], []), ParamError, /"k"/);
  await assertRejects(() => writeGGUF(new BytesSink(), [], [], 48), ParamError, /power of two/);
});

test("inferValueType picks GGUF types from JS values", () => {
  const cases: [unknown, GGUFValueType][] = [
    ["s", { type: "string" }],
    [7, { type: "u32" }],
    [-7, { type: "i32" }],
    [2 ** 40, { type: "u64" }],
    [0.25, { type: "f32" }],
    [true, { type: "bool" }],
    [5n, { type: "u64" }],
    [["a", "b"], { type: "array", of: "string" }],
    [new Float32Array(2), { type: "array", of: "f32" }],
    [new Int32Array(2), { type: "array", of: "i32" }],
    [new Uint8Array(2), { type: "array", of: "u8" }],
    [[1, 2, 3], { type: "array", of: "u32" }],
    [[1, -2], { type: "array", of: "i32" }],
    [[1, 2.5], { type: "array", of: "f32" }],
    [[false], { type: "array", of: "bool" }],
    [[["a"], new Int32Array(1)], { type: "array", of: "array", inner: [{ type: "array", of: "string" }, { type: "array", of: "i32" }] }],
  ];
  for (const [v, t] of cases) assertEquals(inferValueType(v), t, String(v));
});

const ALLTYPES = sharedPath("models/gguf-fixtures/ratchet-dummy-alltypes.gguf");
const TEST_F16 = sharedPath("models/gguf-fixtures/ratchet-test-f16.gguf");

testShared("ratchet-dummy-alltypes.gguf: every scalar type and the tensor table", [ALLTYPES], async () => {
  const file = await readGGUF(await FileSource.open(ALLTYPES));
  const m = file.metadata;
  assertEquals(file.version, 3);
  assertEquals(m.get("some.parameter.uint8"), 0x12);
  assertEquals(m.get("some.parameter.int8"), -0x13);
  assertEquals(m.get("some.parameter.uint16"), 0x1234);
  assertEquals(m.get("some.parameter.int16"), -0x1235);
  assertEquals(m.get("some.parameter.uint32"), 0x12345678);
  assertEquals(m.get("some.parameter.int32"), -0x12345679);
  assertClose([m.get("some.parameter.float32") as number], [0.123456789], 1e-7);
  assertEquals(plain(m.get("some.parameter.uint64")), "1311768467463790320n");
  assertEquals(plain(m.get("some.parameter.int64")), "-1311768467463790321n");
  assertEquals(m.get("some.parameter.float64"), 0.123456789012345678);
  assertEquals(m.get("some.parameter.bool"), true);
  assertEquals(m.get("some.parameter.string"), "hello world");
  assertEquals(plain(m.get("some.parameter.arr.i16")), ["Int16Array", 1, 2, 3, 4]);
  assertClose(m.get("some.parameter.arr.f32") as Float32Array, [3.145, 2.718, 1.414], 1e-7);
  assertEquals(m.get("some.parameter.arr.str"), ["hello", "world", "!"]);
  assertEquals(file.metadataTypes.get("some.parameter.uint64"), { type: "u64" });
  assertEquals(file.tensors.size, 10);
  assertEquals(file.dataOffset, 1184);
  const t8 = file.tensors.get("tensor_8")!;
  assertEquals([t8.type, t8.shape, t8.offset, t8.byteLength], [GGMLType.F32, [9, 7, 6, 8], 4544, 9 * 7 * 6 * 8 * 4]);
  assertEquals(file.tensors.get("tensor_9")!.offset + 96, file.source.size);
  await file.source.close();
});

testShared("ratchet-dummy-alltypes.gguf re-written through metadataEntries keeps metadata and tensors", [ALLTYPES], async () => {
  const file = await readGGUF(await FileSource.open(ALLTYPES));
  const sink = new BytesSink();
  await writeGGUF(
    sink,
    metadataEntries(file),
    [...file.tensors.values()].map((t) => ({ name: t.name, type: t.type, shape: t.shape, data: () => tensorBytes(file, t) })),
  );
  const again = await readGGUF(new BytesSource(sink.bytes(), "rewritten.gguf"));
  assertEquals([...again.metadata.keys()], [...file.metadata.keys()]);
  for (const [k, v] of file.metadata) {
    assertEquals(plain(again.metadata.get(k)), plain(v), k);
    assertEquals(again.metadataTypes.get(k), file.metadataTypes.get(k), k);
  }
  for (const t of file.tensors.values()) {
    const u = again.tensors.get(t.name)!;
    assertEquals([u.type, u.shape, u.byteLength], [t.type, t.shape, t.byteLength], t.name);
    assertEquals(Array.from(await tensorBytes(again, u)), Array.from(await tensorBytes(file, t)), t.name);
  }
  // The original was written by another writer with the same layout rules: byte-identical.
  const original = await tensorBytes(file, { offset: 0, byteLength: file.source.size });
  const rewritten = sink.bytes();
  assertEquals(rewritten.length, original.length);
  assert(rewritten.every((b, i) => b === original[i]), "re-written file differs from the original");
  await file.source.close();
});

testShared("ratchet-test-f16.gguf: one F16 tensor", [TEST_F16], async () => {
  const file = await readGGUF(await FileSource.open(TEST_F16));
  assertEquals(file.metadata.get("general.architecture"), "llama");
  assertEquals(file.metadata.get("general.file_type"), 1);
  assertEquals(file.metadata.get("general.quantization_version"), 12);
  const t = file.tensors.get("tensor1")!;
  assertEquals([t.type, t.shape, t.offset, t.byteLength], [GGMLType.F16, [1, 256], 224, 512]);
  const halves = new Uint16Array((await tensorBytes(file, t)).buffer);
  assertEquals([halves[0], halves[1]], [0x3865, 0x3b24]);
  await file.source.close();
});

const STORIES = sharedPath("models/stories260K/stories260K.gguf");
const STORIES_BIN = sharedPath("models/stories260K/stories260K.bin");

testShared("stories260K.gguf: config, shapes, and tensors bit-identical to stories260K.bin", [STORIES, STORIES_BIN], async () => {
  const gguf = await readGGUF(await FileSource.open(STORIES));
  const bin = await readLlama2c(await FileSource.open(STORIES_BIN));
  const config = llama.config(gguf);
  assertEquals(
    [config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads, config.headDim, config.vocabSize, config.ropeDim],
    [64, 172, 5, 8, 4, 8, 512, 8],
  );
  assertEquals(config.ropeTheta, 10000);
  assertEquals(config.ropeStyle, "interleaved");
  assertEquals(config.ropeAngles, undefined); // llama.cpp's angles
  assertClose([config.normEps], [1e-5], 1e-6);
  checkTensors(gguf, llama.tensors(deriveConfig(config)));
  assertEquals(gguf.tensors.size, 3 + 5 * 9);
  assertEquals(gguf.tensors.get("blk.4.ffn_down.weight")!.shape, [172, 64]);
  assertEquals(gguf.tensors.get("blk.0.attn_k.weight")!.shape, [64, 32]);
  for (const t of gguf.tensors.values()) assertEquals(t.type, GGMLType.F32, t.name);

  const firstFloats = async (f: typeof gguf | typeof bin, name: string) =>
    Array.from(new Float32Array((await tensorBytes(f, f.tensors.get(name)!)).buffer).slice(0, 8));
  const embd = await firstFloats(gguf, "token_embd.weight");
  assert(embd.some((x) => x !== 0), "embedding is not all zeros");
  assertEquals(embd, await firstFloats(bin, "token_embd.weight"));
  // Every tensor of the llama2.c file, at its computed offset, holds the GGUF file's bytes.
  for (const t of bin.tensors.values()) {
    const g = gguf.tensors.get(t.name)!;
    assertEquals([g.shape, g.byteLength], [t.shape, t.byteLength], t.name);
    const a = await tensorBytes(bin, t), b = await tensorBytes(gguf, g);
    assert(a.every((x, i) => x === b[i]), `${t.name} differs between .bin and .gguf`);
  }
  // The GGUF's explicit output.weight is the .bin's shared embedding.
  const out = await tensorBytes(gguf, gguf.tensors.get("output.weight")!);
  const emb = await tensorBytes(bin, bin.tensors.get("token_embd.weight")!);
  assert(out.every((x, i) => x === emb[i]), "output.weight != token_embd.weight");
  await gguf.source.close();
  await bin.source.close();
});

for (
  const [variant, expected] of [
    ["f16", { attn_q: GGMLType.F16, ffn_down: GGMLType.F16, norm: GGMLType.F32, output: GGMLType.F16, embd: GGMLType.F16 }],
    ["q8_0", { attn_q: GGMLType.Q8_0, ffn_down: GGMLType.F16, norm: GGMLType.F32, output: GGMLType.Q8_0, embd: GGMLType.Q8_0 }],
    ["q4_0", { attn_q: GGMLType.Q4_0, ffn_down: GGMLType.F16, norm: GGMLType.F32, output: GGMLType.Q8_0, embd: GGMLType.Q4_0 }],
  ] as const
) {
  const path = sharedPath(`models/stories260K/stories260K-${variant}.gguf`);
  testShared(`stories260K-${variant}.gguf: tensor types as llama.cpp's quantizer left them`, [path], async () => {
    const file = await openModelFile(path) as GGUFFile;
    assertEquals(file.format, "gguf");
    const type = (n: string) => file.tensors.get(n)!.type;
    for (let l = 0; l < 5; l++) {
      assertEquals(type(`blk.${l}.attn_q.weight`), expected.attn_q, `${variant} attn_q`);
      assertEquals(type(`blk.${l}.ffn_down.weight`), expected.ffn_down, `${variant} ffn_down`);
      assertEquals(type(`blk.${l}.attn_norm.weight`), expected.norm, `${variant} attn_norm`);
    }
    assertEquals(type("output.weight"), expected.output, `${variant} output`);
    assertEquals(type("token_embd.weight"), expected.embd, `${variant} token_embd`);
    checkTensors(file, llama.tensors(deriveConfig(llama.config(file))));
    // Quantized tensors end inside the file and are laid out back to back (with padding).
    const last = [...file.tensors.values()].reduce((a, b) => (a.offset > b.offset ? a : b));
    assert(last.offset + last.byteLength <= file.source.size);
    await file.source.close();
  });
}

const SYNTH = [
  "f32",
  "f16",
  "bf16",
  "q8_0",
  "q4_0",
  "q4_1",
  "q5_0",
  "q5_1",
  "q2_k",
  "q3_k_m",
  "q4_k_m",
  "q5_k_m",
  "q6_k",
  "iq4_nl",
  "iq4_xs",
];
const SYNTH_TYPE: Record<string, number> = {
  f32: GGMLType.F32,
  f16: GGMLType.F16,
  bf16: GGMLType.BF16,
  q8_0: GGMLType.Q8_0,
  q4_0: GGMLType.Q4_0,
  q4_1: GGMLType.Q4_1,
  q5_0: GGMLType.Q5_0,
  q5_1: GGMLType.Q5_1,
  q2_k: GGMLType.Q2_K,
  q3_k_m: GGMLType.Q3_K,
  q4_k_m: GGMLType.Q4_K,
  q5_k_m: GGMLType.Q5_K,
  q6_k: GGMLType.Q6_K,
  iq4_nl: GGMLType.IQ4_NL,
  iq4_xs: GGMLType.IQ4_XS,
};
const synthPaths = SYNTH.map((s) => sharedPath(`models/synthetic-quants/synthq-${s}.gguf`));

testShared("synthetic-quants: every file parses with the documented types", synthPaths, async () => {
  for (let i = 0; i < SYNTH.length; i++) {
    const file = await readGGUF(await FileSource.open(synthPaths[i]));
    const c = llama.config(file);
    assertEquals(
      [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.contextLength],
      [256, 512, 2, 8, 2, 512, 256],
      SYNTH[i],
    );
    checkTensors(file, llama.tensors(deriveConfig(c)));
    assertEquals(file.tensors.size, 3 + 2 * 9, SYNTH[i]);
    assertEquals(file.tensors.get("token_embd.weight")!.type, SYNTH_TYPE[SYNTH[i]], `${SYNTH[i]} token_embd`);
    assertEquals(file.tensors.get("blk.0.ffn_gate.weight")!.type, SYNTH_TYPE[SYNTH[i]], `${SYNTH[i]} ffn_gate`);
    assertEquals(file.tensors.get("output_norm.weight")!.type, GGMLType.F32, `${SYNTH[i]} norm`);
    const last = [...file.tensors.values()].reduce((a, b) => (a.offset > b.offset ? a : b));
    assertEquals(file.source.size, last.offset + last.byteLength + ((32 - (last.byteLength % 32)) % 32), `${SYNTH[i]} size`);
    await file.source.close();
  }
  const qkm = await readGGUF(await FileSource.open(sharedPath("models/synthetic-quants/synthq-q4_k_m.gguf")));
  assertEquals(qkm.tensors.get("blk.0.attn_v.weight")!.type, GGMLType.Q4_K);
  assertEquals(qkm.tensors.get("blk.1.attn_v.weight")!.type, GGMLType.Q6_K);
  assertEquals(qkm.tensors.get("output.weight")!.type, GGMLType.Q6_K);
  assertEquals(qkm.metadata.get("general.file_type"), 15);
  await qkm.source.close();
});

const SPM = sharedPath("models/tokenizers/ggml-vocab-llama-spm.gguf");
const GPT2 = sharedPath("models/tokenizers/ggml-vocab-gpt-2.gguf");

testShared("vocab-only GGUFs: tokens, scores, merges, no tensors", [SPM, GPT2], async () => {
  const spm = await readGGUF(await FileSource.open(SPM));
  assertEquals(spm.tensors.size, 0);
  const tokens = spm.metadata.get("tokenizer.ggml.tokens") as string[];
  assertEquals(tokens.length, 32000);
  assertEquals(tokens.slice(0, 4), ["<unk>", "<s>", "</s>", "<0x00>"]);
  assert(tokens.includes("▁the"), "SentencePiece tokens keep U+2581");
  assert(spm.metadata.get("tokenizer.ggml.scores") instanceof Float32Array);
  assertEquals((spm.metadata.get("tokenizer.ggml.token_type") as Int32Array)[0], 2);
  assertEquals(spm.metadata.get("tokenizer.ggml.add_bos_token"), true);
  assertEquals(llama.config(spm).vocabSize, 32000);
  await spm.source.close();

  const gpt2 = await readGGUF(await FileSource.open(GPT2));
  assertEquals((gpt2.metadata.get("tokenizer.ggml.tokens") as string[]).length, 50257);
  const merges = gpt2.metadata.get("tokenizer.ggml.merges") as string[];
  assertEquals(merges.length, 50000);
  assertEquals(merges[0], "Ġ t");
  assertEquals(gpt2.metadata.get("tokenizer.ggml.bos_token_id"), 50256);
  await gpt2.source.close();
});

test("fileSink streams a GGUF to disk that FileSource reads back", async () => {
  const fs = await import("node:fs");
  const os = await import("node:os");
  const path = await import("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-gguf-"));
  const file = path.join(dir, "streamed.gguf");
  try {
    let produced = 0;
    // Eight 64 KiB rows, each produced only when the writer asks for it.
    const tensors = Array.from({ length: 8 }, (_, i) => ({
      name: `t.${i}`,
      type: GGMLType.F32,
      shape: [16384],
      data: () => {
        produced++;
        return new Uint8Array(new Float32Array(16384).fill(i).buffer);
      },
    }));
    await writeGGUF(await fileSink(file), [{ key: "general.architecture", type: inferValueType("llama"), value: "llama" }], tensors);
    assertEquals(produced, 8);
    const read = await readGGUF(await FileSource.open(file));
    assertEquals(read.source.size, read.dataOffset + 8 * 65536);
    const t5 = new Float32Array((await tensorBytes(read, read.tensors.get("t.5")!)).buffer);
    assertEquals([t5[0], t5[16383]], [5, 5]);
    await read.source.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
