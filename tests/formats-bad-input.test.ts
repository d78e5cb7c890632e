/**
 * Malformed model files must fail with a typed error that names the file and
 * the problem, never with a RangeError from deep inside a reader.
 */
import { assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";
import { FormatError, type KvasmError, UnsupportedError } from "../src/errors.ts";
import { BytesSource, FileSource } from "../src/io/source.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { BytesSink, writeGGUF } from "../src/formats/gguf-writer.ts";
import { readLlama2c } from "../src/formats/llama2c.ts";
import { openModelFile } from "../src/formats/open.ts";
import { readSafetensors } from "../src/formats/safetensors.ts";
import type { ModelFile } from "../src/formats/types.ts";
import { llama } from "../src/architectures/llama.ts";
import { checkTensors } from "../src/architectures/blocks.ts";
import { deriveConfig } from "../src/model/config.ts";

// ---------------------------------------------------------------- GGUF

/** A small valid GGUF: two metadata entries, two tensors (F32 [8, 2] and Q8_0 [32]). */
async function baseGGUF(): Promise<Uint8Array> {
  const sink = new BytesSink();
  await writeGGUF(sink, [
    { key: "general.architecture", type: { type: "string" }, value: "llama" },
    { key: "some.floats", type: { type: "array", of: "f32" }, value: new Float32Array([1, 2, 3]) },
  ], [
    { name: "tensor.aaaa", type: GGMLType.F32, shape: [8, 2], data: new Uint8Array(64) },
    { name: "tensor.bbbb", type: GGMLType.Q8_0, shape: [32], data: new Uint8Array(34) },
  ]);
  return sink.bytes();
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  throw new Error("pattern not found");
}

/** Offset of a GGUF string (u64 length + bytes) in a file. */
function stringAt(bytes: Uint8Array, s: string): number {
  const enc = new TextEncoder().encode(s);
  const needle = new Uint8Array(8 + enc.length);
  new DataView(needle.buffer).setBigUint64(0, BigInt(enc.length), true);
  needle.set(enc, 8);
  return indexOf(bytes, needle);
}

/** Field offsets of a 1- or 2-dim tensor's info record. */
function tensorInfo(bytes: Uint8Array, name: string) {
  const at = stringAt(bytes, name) + 8 + name.length;
  const nDims = new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
  return { nDims: at, dim0: at + 4, type: at + 4 + 8 * nDims, offset: at + 8 + 8 * nDims };
}

function patched(bytes: Uint8Array, edit: (dv: DataView, b: Uint8Array) => void): BytesSource {
  const copy = bytes.slice();
  edit(new DataView(copy.buffer), copy);
  return new BytesSource(copy, "bad.gguf");
}

test("GGUF: the base file is valid (so every failure below comes from its one patch)", async () => {
  const file = await readGGUF(new BytesSource(await baseGGUF(), "bad.gguf"));
  assertEquals(file.tensors.size, 2);
});

test("GGUF: bad magic and unsupported versions", async () => {
  const base = await baseGGUF();
  await assertRejects(
    () => readGGUF(patched(base, (_, b) => b.set(new TextEncoder().encode("GGML"), 0))),
    FormatError,
    /^bad\.gguf: bad magic: expected "GGUF", found "GGML" \(bytes 47 47 4d 4c\)$/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (_, b) => b.set([0x00, 0xff, 0x10, 0x01], 0))),
    FormatError,
    /bad magic.*found \(bytes 00 ff 10 01\)/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setUint32(4, 1, true))),
    FormatError,
    /unsupported GGUF version 1 .*versions 2 and 3/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setUint32(4, 3 << 24, true))),
    FormatError,
    /unsupported GGUF version 50331648 \(a big-endian GGUF/,
  );
  // v2 shares v3's layout.
  assertEquals((await readGGUF(patched(base, (dv) => dv.setUint32(4, 2, true)))).version, 2);
  await assertRejects(() => readGGUF(new BytesSource(new Uint8Array(3), "bad.gguf")), FormatError, /too short to be GGUF/);
});

test("GGUF: truncated in the header, the metadata, the tensor table and the data", async () => {
  const base = await baseGGUF();
  const a = tensorInfo(base, "tensor.aaaa");
  const cuts: [number, RegExp][] = [
    [6, /unexpected end of file at byte 6 while reading the version/],
    [20, /unexpected end of file at byte 20 while reading the metadata count/],
    [
      stringAt(base, "general.architecture") + 12,
      /tensor count 2 is more than the rest of the file \(12 bytes\) could hold: a corrupt count or a truncated file/,
    ],
    [
      stringAt(base, "some.floats") + 8 + 11 + 4 + 12 + 5,
      /array length 3 in metadata "some\.floats" is more than the rest of the file \(5 bytes\) could hold/,
    ],
    [a.dim0 + 3, /unexpected end of file at byte \d+ while reading tensor info of "tensor\.aaaa"/],
    [base.length - 40, /tensor "tensor\.bbbb" data \[\d+, \d+\) extends past the end of the file \(ends at byte \d+, file is \d+ bytes\)/],
  ];
  for (const [at, re] of cuts) {
    await assertRejects(() => readGGUF(new BytesSource(base.subarray(0, at), "cut.gguf")), FormatError, re);
  }
});

test("GGUF: tensor table errors name the tensor", async () => {
  const base = await baseGGUF();
  const a = tensorInfo(base, "tensor.aaaa"), b = tensorInfo(base, "tensor.bbbb");
  const fileSize = base.length;
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(b.offset, 1n << 20n, true))),
    FormatError,
    new RegExp(
      `tensor "tensor\\.bbbb" data \\[\\d+, \\d+\\) extends past the end of the file \\(ends at byte \\d+, file is ${fileSize} bytes\\)`,
    ),
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(b.offset, 4n, true))),
    FormatError,
    /tensor "tensor\.bbbb" data offset 4 is not a multiple of the alignment 32/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(b.offset, 32n, true))),
    FormatError,
    /tensors "tensor\.aaaa" and "tensor\.bbbb" overlap/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setUint32(a.type, 99, true))),
    FormatError,
    /tensor "tensor\.aaaa" has unknown ggml type id 99/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(b.dim0, 16n, true))),
    FormatError,
    /tensor "tensor\.bbbb" \(Q8_0\) has rows of 16 elements, not a multiple of the block size 32/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setUint32(a.nDims, 5, true))),
    FormatError,
    /tensor "tensor\.aaaa" has 5 dimensions; GGUF allows 1 to 4/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (_, bytes) => bytes.set(new TextEncoder().encode("tensor.aaaa"), stringAt(base, "tensor.bbbb") + 8))),
    FormatError,
    /duplicate tensor name "tensor\.aaaa"/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(a.dim0, 1n << 60n, true))),
    FormatError,
    /dimension 0 of tensor "tensor\.aaaa" \d+ is absurd/,
  );
});

test("GGUF: absurd counts and lengths, unknown value types", async () => {
  const base = await baseGGUF();
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(8, 1n << 40n, true))),
    FormatError,
    /tensor count 1099511627776 is more than the rest of the file \(\d+ bytes\) could hold/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(16, 1n << 32n, true))),
    FormatError,
    /metadata entry count 4294967296 is more than the rest of the file/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(8, 1n << 62n, true))),
    FormatError,
    /tensor count 4611686018427387904 is absurd \(file is \d+ bytes\)/,
  );
  const key = stringAt(base, "general.architecture");
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(key, 1n << 30n, true))),
    FormatError,
    /string length 1073741824 in the key of metadata entry 0 is more than the rest of the file \(\d+ bytes\): a corrupt length or a truncated file/,
  );
  const typeAt = key + 8 + "general.architecture".length;
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setUint32(typeAt, 13, true))),
    FormatError,
    /unknown metadata value type 13 in metadata "general\.architecture"/,
  );
  const floats = stringAt(base, "some.floats") + 8 + "some.floats".length;
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setUint32(floats + 4, 42, true))),
    FormatError,
    /unknown metadata value type 42 in metadata "some\.floats"/,
  );
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(floats + 8, 1n << 28n, true))),
    FormatError,
    /array length 268435456 in metadata "some\.floats" is more than the rest of the file \(\d+ bytes\) could hold/,
  );
  const value = key + 8 + "general.architecture".length + 4;
  await assertRejects(
    () => readGGUF(patched(base, (dv) => dv.setBigUint64(value, 1n << 20n, true))),
    FormatError,
    /string length 1048576 in metadata "general\.architecture"/,
  );
});

const STORIES = sharedPath("models/stories260K/stories260K.gguf");

testShared("GGUF: stories260K.gguf cut at many points always fails with a FormatError", [STORIES], async () => {
  const src = await FileSource.open(STORIES);
  const bytes = new Uint8Array(src.size);
  await src.read(0, bytes);
  await src.close();
  const cuts: [number, RegExp][] = [
    [0, /too short to be GGUF/],
    [16, /unexpected end of file at byte 16 while reading the metadata count/],
    [100, /tensor count 48 is more than the rest of the file \(76 bytes\) could hold/],
    [3000, /array length 512 in metadata "tokenizer\.ggml\.tokens" is more than the rest of the file \(2931 bytes\)/],
    [4500, /unexpected end of file at byte 4500 while reading metadata "tokenizer\.ggml\.tokens" \(needed bytes up to \d+\)/],
    [8000, /array length 512 in metadata "tokenizer\.ggml\.scores" is more than the rest of the file \(1485 bytes\)/],
    [14000, /string length 21 in the name of tensor 45 is more than the rest of the file \(13 bytes\)/],
    [14010, /unexpected end of file at byte 14010 while reading tensor info of "blk\.4\.ffn_down\.weight" \(needed bytes up to 14012\)/],
    [
      bytes.length - 1,
      /tensor "blk\.4\.ffn_norm\.weight" data .* extends past the end of the file \(ends at byte 1185376, file is 1185375 bytes\)/,
    ],
  ];
  for (const [at, re] of cuts) {
    await assertRejects(() => readGGUF(new BytesSource(bytes.subarray(0, at), "stories-cut.gguf")), FormatError, re);
  }
  for (let at = 1; at < 14176; at += 997) {
    await assertRejects(() => openModelFile(bytes.subarray(0, at)), FormatError, /^<bytes>: /);
  }
});

// ---------------------------------------------------------------- llama2.c

const STORIES_BIN = sharedPath("models/stories260K/stories260K.bin");

testShared("llama2.c: a truncated checkpoint names the expected and actual sizes", [STORIES_BIN], async () => {
  const src = await FileSource.open(STORIES_BIN);
  const bytes = new Uint8Array(src.size);
  await src.read(0, bytes);
  await src.close();
  await assertRejects(
    () => readLlama2c(new BytesSource(bytes.subarray(0, 500000), "stories-cut.bin")),
    FormatError,
    /^stories-cut\.bin: truncated llama2\.c checkpoint: expected 1056540 bytes for this header, file is 500000 bytes$/,
  );
  await assertRejects(
    () => openModelFile(bytes.subarray(0, 500000)),
    FormatError,
    /not GGUF.*not safetensors.*truncated llama2\.c checkpoint/,
  );
});

test("llama2.c: random bytes are not mistaken for a checkpoint", async () => {
  const noise = new Uint8Array(4096);
  let s = 12345;
  for (let i = 0; i < noise.length; i++) noise[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  await assertRejects(
    () => openModelFile(noise),
    FormatError,
    /<bytes>: not GGUF \(no "GGUF" magic\), not safetensors, and as a llama2\.c checkpoint: not a valid llama2\.c checkpoint: dim = -?\d+ is out of range/,
  );
});

// ---------------------------------------------------------------- safetensors

function safetensorsWithHeader(header: unknown, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

test("safetensors: bad headers, offsets and sizes", async () => {
  const read = (header: unknown, data = 16) => readSafetensors(new BytesSource(safetensorsWithHeader(header, data), "bad.safetensors"));
  await assertRejects(() => read('{"w": {"dtype": "F32", '), FormatError, /^bad\.safetensors: safetensors header is not valid UTF-8 JSON/);
  await assertRejects(() => read("[1, 2]"), FormatError, /header is not a JSON object/);
  await assertRejects(
    () => read({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] }, v: { dtype: "F32", shape: [4], data_offsets: [16, 32] } }),
    FormatError,
    /tensor "v": data_offsets \[16, 32\] extend past the end of the file \(data section is 16 bytes/,
  );
  await assertRejects(
    () => read({ w: { dtype: "F32", shape: [3], data_offsets: [0, 16] } }),
    FormatError,
    /tensor "w": F32 \[3\] needs 12 bytes but data_offsets span 16/,
  );
  await assertRejects(
    () => read({ w: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }),
    FormatError,
    /tensor "w": data_offsets \[8, 0\] begin after they end/,
  );
  await assertRejects(
    () => read({ w: { dtype: "F32", shape: [3], data_offsets: [0, 12] }, v: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }),
    FormatError,
    /tensors "w" \[0, 12\) and "v" \[8, 16\) overlap/,
  );
  await assertRejects(() => read({ w: { dtype: "Q9", shape: [1], data_offsets: [0, 1] } }), FormatError, /tensor "w": unknown dtype "Q9"/);
  await assertRejects(
    () => read({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }),
    FormatError,
    /tensor "w": shape \[-1\] is not a list of non-negative integers/,
  );
  await assertRejects(() => read({ w: { dtype: "F32", shape: [1] } }), FormatError, /tensor "w": data_offsets undefined is not a pair/);
  await assertRejects(
    () => read({ w: { dtype: "U8", shape: [4], data_offsets: [0, 4] } }),
    UnsupportedError,
    /bad\.safetensors: tensor "w" has dtype U8, which kvasm cannot hold/,
  );
  await assertRejects(() => read({ __metadata__: { n: 3 } }), FormatError, /__metadata__ entry "n" is not a string/);

  const hugeLen = new Uint8Array(64);
  new DataView(hugeLen.buffer).setBigUint64(0, 1000n, true);
  await assertRejects(
    () => readSafetensors(new BytesSource(hugeLen, "bad.safetensors")),
    FormatError,
    /header length 1000 is larger than the file \(64 bytes\) allows/,
  );
  await assertRejects(() => readSafetensors(new BytesSource(new Uint8Array(5), "bad.safetensors")), FormatError, /too short/);
});

// ---------------------------------------------------------------- opening and metadata

test("openModelFile: a missing path is a FormatError naming it, not a raw ENOENT", async () => {
  const e = await assertRejects(
    () => openModelFile("/nonexistent/kvasm/model.gguf"),
    FormatError,
    /^\/nonexistent\/kvasm\/model\.gguf: no such file or directory$/,
  );
  assertEquals((e as KvasmError).code, "format");
});

testShared("openModelFile: a directory without a model is a FormatError", [sharedPath("models/gguf-fixtures")], async () => {
  await assertRejects(
    () => openModelFile(sharedPath("models/gguf-fixtures")),
    FormatError,
    /directory holds neither model\.safetensors nor model\.safetensors\.index\.json \(a Hugging Face model directory\); give a GGUF or llama2\.c \.bin file by its path; \.gguf and \.bin files here: ratchet-dummy-alltypes\.gguf, ratchet-test-f16\.gguf$/,
  );
});

testShared("llama.config and llama.tensors (the loader's check) name the bad key, the architecture, the tensor", [STORIES], async () => {
  const file = await readGGUF(await FileSource.open(STORIES));
  const withMeta = (edit: (m: Map<string, unknown>) => void): ModelFile => {
    const metadata = new Map(file.metadata);
    edit(metadata as Map<string, unknown>);
    return { ...file, metadata };
  };
  await assertRejects(
    () => llama.config(withMeta((m) => m.delete("llama.block_count"))),
    FormatError,
    /metadata key "llama\.block_count" is missing/,
  );
  await assertRejects(
    () => llama.config(withMeta((m) => m.delete("general.architecture"))),
    FormatError,
    /"general\.architecture" is missing/,
  );
  await assertRejects(
    () => llama.config(withMeta((m) => m.set("general.architecture", "gpt2"))),
    UnsupportedError,
    /architecture "gpt2" is not supported/,
  );
  await assertRejects(
    () => llama.config(withMeta((m) => m.set("llama.attention.head_count_kv", 3))),
    FormatError,
    /head_count_kv 3 does not divide head_count 8/,
  );
  await assertRejects(
    () => llama.config(withMeta((m) => m.set("llama.embedding_length", "64"))),
    FormatError,
    /"llama\.embedding_length" must be a number/,
  );
  const mistral = llama.config(withMeta((m) => {
    for (const [k, v] of [...m]) if (k.startsWith("llama.")) m.set(k.replace(/^llama\./, "mistral."), v);
    m.set("general.architecture", "mistral");
    m.set("mistral.attention.sliding_window", 4096);
  }));
  assertEquals([mistral.arch, mistral.slidingWindow, mistral.nKvHeads], ["mistral", 4096, 4]);

  const config = llama.config(file);
  const withTensors = (edit: (t: typeof file.tensors) => void): ModelFile => {
    const tensors = new Map(file.tensors);
    edit(tensors);
    return { ...file, tensors };
  };
  const k = file.tensors.get("blk.0.attn_k.weight")!;
  checkTensors(withTensors((t) => t.delete("output.weight")), llama.tensors(deriveConfig(config))); // tied classifier is fine
  await assertRejects(
    () => checkTensors(withTensors((t) => t.set(k.name, { ...k, shape: [64, 64] })), llama.tensors(deriveConfig(config))),
    FormatError,
    /tensor "blk\.0\.attn_k\.weight" has shape \[64, 64\], but the metadata implies \[64, 32\]/,
  );
  await assertRejects(
    () => checkTensors(withTensors((t) => t.delete("blk.3.ffn_up.weight")), llama.tensors(deriveConfig(config))),
    FormatError,
    /tensor "blk\.3\.ffn_up\.weight" is missing \(expected shape \[64, 172\]\)/,
  );
  await file.source.close();
});
