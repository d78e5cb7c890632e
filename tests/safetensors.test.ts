import { assert, assertEquals, assertRejects, sharedPath, tensorBytes, test, testShared } from "./harness.ts";
import { FormatError } from "../src/errors.ts";
import { type ByteSource, BytesSource, FileSource } from "../src/io/source.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { openModelFile } from "../src/formats/open.ts";
import { readSafetensors, readSafetensorsIndex } from "../src/formats/safetensors.ts";

const HF_DIR = sharedPath("models/stories260K/hf");
const HF = sharedPath("models/stories260K/hf/model.safetensors");
const STORIES = sharedPath("models/stories260K/stories260K.gguf");

interface StEntry {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** A safetensors file laid out the way the reference writer does: JSON header, then data back to back. */
function makeSafetensors(entries: StEntry[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let at = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + e.data.length] };
    at += e.data.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const e of entries) {
    out.set(e.data, p);
    p += e.data.length;
  }
  return out;
}

testShared("stories260K/hf/model.safetensors: Hugging Face names, ggml-order shapes, same bytes as the GGUF", [HF, STORIES], async () => {
  const st = await readSafetensors(await FileSource.open(HF));
  const gguf = await readGGUF(await FileSource.open(STORIES));
  assertEquals(st.format, "safetensors");
  assertEquals(st.tensors.size, 2 + 5 * 9);
  assertEquals(st.metadata.get("safetensors.metadata.format"), "pt");
  const embed = st.tensors.get("model.embed_tokens.weight")!;
  assertEquals([embed.type, embed.shape, embed.byteLength], [GGMLType.F32, [64, 512], 512 * 64 * 4]);
  assertEquals(embed.offset, 8 + 4856);
  assertEquals(st.tensors.get("model.layers.0.mlp.down_proj.weight")!.shape, [172, 64]);
  assertEquals(st.tensors.get("model.layers.0.mlp.gate_proj.weight")!.shape, [64, 172]);
  assertEquals(st.tensors.get("model.layers.3.self_attn.k_proj.weight")!.shape, [64, 32]);
  assertEquals(st.tensors.get("model.norm.weight")!.shape, [64]);
  // Tensors untouched by the rotate-half permutation are the GGUF's bytes exactly.
  for (
    const [hf, gg] of [
      ["model.embed_tokens.weight", "token_embd.weight"],
      ["model.layers.2.mlp.down_proj.weight", "blk.2.ffn_down.weight"],
      ["model.layers.4.self_attn.v_proj.weight", "blk.4.attn_v.weight"],
      ["model.norm.weight", "output_norm.weight"],
    ]
  ) {
    const a = await tensorBytes(st, hf), b = await tensorBytes(gguf, gg);
    assertEquals(a.length, b.length, hf);
    assert(a.every((x, i) => x === b[i]), `${hf} differs from ${gg}`);
  }
  await st.source.close();
  await gguf.source.close();
});

testShared("openModelFile on the hf directory and on the file picks safetensors", [HF], async () => {
  for (const input of [HF_DIR, HF]) {
    const file = await openModelFile(input);
    assertEquals(file.format, "safetensors", input);
    assert(file.tensors.has("model.layers.4.mlp.up_proj.weight"), input);
    await file.source.close();
  }
});

test("readSafetensors maps F16, BF16, I32, I64, F64 and reverses shapes", async () => {
  const bytes = makeSafetensors([
    { name: "h", dtype: "F16", shape: [2, 3], data: new Uint8Array(12) },
    { name: "b", dtype: "BF16", shape: [4], data: new Uint8Array(8) },
    { name: "i", dtype: "I32", shape: [1, 2, 3], data: new Uint8Array(24) },
    { name: "l", dtype: "I64", shape: [], data: new Uint8Array(8) },
    { name: "d", dtype: "F64", shape: [0, 5], data: new Uint8Array(0) },
  ], { note: "x" });
  const file = await readSafetensors(new BytesSource(bytes, "t.safetensors"));
  const info = (n: string) => {
    const t = file.tensors.get(n)!;
    return [t.type, t.shape, t.byteLength];
  };
  assertEquals(info("h"), [GGMLType.F16, [3, 2], 12]);
  assertEquals(info("b"), [GGMLType.BF16, [4], 8]);
  assertEquals(info("i"), [GGMLType.I32, [3, 2, 1], 24]);
  assertEquals(info("l"), [GGMLType.I64, [1], 8]);
  assertEquals(info("d"), [GGMLType.F64, [5, 0], 0]);
  assertEquals(file.metadata.get("safetensors.metadata.note"), "x");
});

testShared("sharded checkpoint: model.safetensors.index.json merges the shards, each tensor knows its shard", [HF], async () => {
  const whole = await readSafetensors(await FileSource.open(HF));
  const names = [...whole.tensors.keys()];
  const toEntry = async (name: string): Promise<StEntry> => {
    const t = whole.tensors.get(name)!;
    return { name, dtype: "F32", shape: [...t.shape].reverse(), data: await tensorBytes(whole, name) };
  };
  const half = Math.floor(names.length / 2);
  const files = new Map<string, Uint8Array>([
    ["dir/model-00001-of-00002.safetensors", makeSafetensors(await Promise.all(names.slice(0, half).map(toEntry)))],
    ["dir/model-00002-of-00002.safetensors", makeSafetensors(await Promise.all(names.slice(half).map(toEntry)))],
  ]);
  const weightMap = Object.fromEntries(names.map((n, i) => [n, `model-0000${i < half ? 1 : 2}-of-00002.safetensors`]));
  files.set(
    "dir/model.safetensors.index.json",
    new TextEncoder().encode(JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap })),
  );
  const opened: string[] = [];
  const open = (p: string): Promise<ByteSource> => {
    opened.push(p);
    const b = files.get(p);
    return b ? Promise.resolve(new BytesSource(b, p)) : Promise.reject(new Error(`no ${p}`));
  };

  const sharded = await readSafetensorsIndex("dir", open);
  assertEquals(opened, [
    "dir/model.safetensors.index.json",
    "dir/model-00001-of-00002.safetensors",
    "dir/model-00002-of-00002.safetensors",
  ]);
  assertEquals(sharded.shards.length, 2);
  assertEquals(sharded.tensors.size, names.length);
  assertEquals(sharded.metadata.get("safetensors.index.total_size"), 1);
  for (const name of names) {
    const t = sharded.tensors.get(name)!;
    assertEquals(t.shape, whole.tensors.get(name)!.shape, name);
    assertEquals(t.source.name, weightMap[name].replace(/^/, "dir/"), name);
    const a = await tensorBytes(sharded, name, t.source), b = await tensorBytes(whole, name);
    assert(a.every((x, i) => x === b[i]), `${name} bytes differ`);
  }
  // Closing the model's source closes every shard.
  const closed: string[] = [];
  const tracking = (p: string): Promise<ByteSource> =>
    open(p).then((src) => ({
      name: src.name,
      size: src.size,
      read: (o: number, d: Uint8Array) => src.read(o, d),
      close: () => Promise.resolve(void closed.push(p)),
    }));
  await (await readSafetensorsIndex("dir", tracking)).source.close();
  assertEquals(closed.sort(), [
    "dir/model-00001-of-00002.safetensors",
    "dir/model-00002-of-00002.safetensors",
    "dir/model.safetensors.index.json",
  ]);
  // Naming the index file directly works the same.
  assertEquals((await readSafetensorsIndex("dir/model.safetensors.index.json", open)).tensors.size, names.length);

  // An index that points a tensor at a shard that does not hold it.
  files.set(
    "bad/model.safetensors.index.json",
    new TextEncoder().encode(JSON.stringify({ weight_map: { "missing.weight": "s.safetensors" } })),
  );
  files.set("bad/s.safetensors", makeSafetensors([{ name: "other", dtype: "F32", shape: [1], data: new Uint8Array(4) }]));
  await assertRejects(
    () => readSafetensorsIndex("bad", open),
    FormatError,
    /weight_map puts tensor "missing\.weight" in s\.safetensors, which does not hold it/,
  );
  files.set("bad2/model.safetensors.index.json", new TextEncoder().encode("{ not json"));
  await assertRejects(
    () => readSafetensorsIndex("bad2", open),
    FormatError,
    /bad2\/model\.safetensors\.index\.json: safetensors index is not valid JSON/,
  );
  files.set("bad3/model.safetensors.index.json", new TextEncoder().encode(JSON.stringify({ weight_map: { w: "../x.safetensors" } })));
  await assertRejects(() => readSafetensorsIndex("bad3", open), FormatError, /not a file beside the index/);
  await whole.source.close();
});

test("a dtype naming an Object.prototype key is a FormatError (unknown dtype), not a TypeError", async () => {
  for (const dtype of ["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"]) {
    const bytes = makeSafetensors([{ name: "w", dtype, shape: [1], data: new Uint8Array(4) }]);
    await assertRejects(
      () => readSafetensors(new BytesSource(bytes, "m.safetensors")),
      FormatError,
      new RegExp(`^m\.safetensors: tensor "w": unknown dtype "${dtype}"$`),
    );
  }
});

test("a header longer than the entry limit allows is refused before it is read or parsed", async () => {
  // the reviewer's file: a 90 MiB header of 8M entries took 1.4 GiB and 10 s to parse before its entry count was checked
  const headerLen = 90 << 20;
  const reads: number[] = [];
  const source: ByteSource = {
    name: "big.safetensors",
    size: 8 + headerLen,
    read(offset, dest) {
      reads.push(dest.length);
      if (offset === 0) new DataView(dest.buffer, dest.byteOffset).setBigUint64(0, BigInt(headerLen), true);
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  await assertRejects(
    () => readSafetensors(source),
    FormatError,
    /^big\.safetensors: safetensors header length 94371840 is over the limit of 16777216 bytes \(256 a header entry: LoadOptions\.limits\.maxMetadataEntries\)/,
  );
  assertEquals(reads, [8], "only the length was read");
  // the bound follows the limit, with a floor of 1 MiB for small limits
  const limits = { maxMetadataEntries: 1 << 18, maxArrayLength: 1 << 24, maxStringBytes: 64 << 20 };
  await assertRejects(() => readSafetensors(source, limits), FormatError, /over the limit of 67108864 bytes/);
  const few = { ...limits, maxMetadataEntries: 10 };
  await assertRejects(() => readSafetensors(source, few), FormatError, /over the limit of 1048576 bytes/);
});

test("entry and key counts are checked before the header is parsed", async () => {
  const file = (header: string) => {
    const json = new TextEncoder().encode(header);
    const bytes = new Uint8Array(8 + json.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
    bytes.set(json, 8);
    return new BytesSource(bytes, "m.safetensors");
  };
  const limits = { maxMetadataEntries: 100, maxArrayLength: 1 << 24, maxStringBytes: 64 << 20 };
  // each entry is too small to be a tensor: counted, not parsed (a parse of millions of these takes seconds)
  const tiny = (n: number) => Array.from({ length: n }, (_, i) => `"t${i}":{}`).join(",");
  await assertRejects(
    () => readSafetensors(file(`{${tiny(101)}}`), limits),
    FormatError,
    /header entry count 101 is over the limit of 100/,
  );
  await assertRejects(
    () => readSafetensors(file(`{"__metadata__":{${tiny(501).replaceAll("{}", '"v"')}}}`), limits),
    FormatError,
    /header key count 502 is over the limit of 500/,
  );
  // colons and braces inside strings are not counted
  const meta = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, '":{"a":1,"b":[2]}\\"']));
  const quoted = await readSafetensors(file(JSON.stringify({ __metadata__: meta })), limits);
  assertEquals(quoted.metadata.size, 100);
});
