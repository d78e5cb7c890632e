/**
 * ALiBi models: BLOOM and MPT from Hugging Face safetensors (tiny random
 * models with transformers' logits and greedy ids, ../shared/fixtures/seed-variants)
 * on one and two threads and through the GGUF kvasm's converter writes; the
 * slopes for any head count against BLOOM's and MPT's own formulas; and the
 * bias inside every cache's attention kernel against an explicit reference.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { alibiSlopes } from "../src/model/alibi.ts";
import { openModelFile } from "../src/formats/open.ts";
import { BytesSink } from "../src/formats/gguf-writer.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { BytesSource } from "../src/io/source.ts";
import { withHFConfig } from "../src/model/hf-config.ts";
import { writeHFModelAsGGUF } from "../src/convert/hf-to-gguf.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { type KVType, ROW_FIELDS, ROW_PAGE_TABLE, ROW_POS, ROW_START } from "../src/backends/backend.ts";
import { PagedKVCache } from "../src/kv/paged-cache.ts";
import { UnsupportedError } from "../src/errors.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { assert, assertClose, assertEquals, assertRejects, editedFixture, readJSON, sharedPath, test, testShared } from "./harness.ts";

interface Reference {
  input_ids: number[];
  logits: number[][];
  greedy_ids: number[];
}

const FIXTURES = sharedPath("fixtures", "seed-variants");
const TOL = 1e-4; // of the row's largest |logit|
const scaleOf = (row: ArrayLike<number>) => Array.from(row).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/** Every position one token at a time (through the cache), the prompt as one batch, then the greedy continuation. */
async function checkReference(m: Model, ref: Reference, what: string): Promise<void> {
  const seq = m.newSequence();
  for (let p = 0; p < ref.input_ids.length; p++) {
    const row = await m.decodeOne(seq, ref.input_ids[p]);
    assertClose(row, ref.logits[p], TOL, `${what}: logits at position ${p}`, scaleOf(ref.logits[p]));
  }
  m.releaseSequence(seq);
  const s2 = m.newSequence();
  let logits = await m.prefill(s2, ref.input_ids);
  assertClose(logits, ref.logits.at(-1)!, TOL, `${what}: prefill logits`, scaleOf(ref.logits.at(-1)!));
  const ids: number[] = [];
  for (let i = 0; i < ref.greedy_ids.length; i++) {
    const best = argmax(logits);
    ids.push(best);
    if (i + 1 < ref.greedy_ids.length) logits = await m.decodeOne(s2, best);
  }
  m.releaseSequence(s2);
  assertEquals(ids, ref.greedy_ids, `${what}: greedy continuation`);
}

for (const [name, arch] of [["bloom-alibi", "bloom"], ["mpt-alibi", "mpt"]] as const) {
  const dir = path.join(FIXTURES, name);
  const files = [path.join(dir, "model.safetensors"), path.join(dir, "reference.json")];

  testShared(`${name}: safetensors + config.json match transformers' logits and greedy ids, on one and two threads`, files, async () => {
    const ref = readJSON<Reference>(path.join(dir, "reference.json"));
    for (const threads of [1, 2]) {
      // minWork 0: two threads split even this tiny model's attention heads and matmul rows
      const m = await loadModel(dir, threads === 1 ? { threads: 1 } : { backend: new ThreadedWasmBackend({ threads: 2, minWork: 0 }) });
      try {
        assertEquals(m.config.arch, arch);
        assertEquals(m.config.alibiMaxBias, 8);
        assert(m.kv.layout.alibiSlopes! > 0, "ALiBi slopes in the KV layout");
        if (threads === 2) assertEquals((m.backend as ThreadedWasmBackend).threads, 2);
        await checkReference(m, ref, `${name} (${threads} thread${threads > 1 ? "s" : ""})`);
      } finally {
        await m.close();
      }
    }
  });

  testShared(`${name}: the GGUF written by kvasm's converter ("${arch}", llama.cpp's names) gives the same logits`, files, async () => {
    const ref = readJSON<Reference>(path.join(dir, "reference.json"));
    const opened = await openModelFile(dir);
    const sink = new BytesSink();
    try {
      await writeHFModelAsGGUF(await withHFConfig(opened, dir), sink);
    } finally {
      await opened.source.close();
    }
    const gguf = await readGGUF(new BytesSource(sink.bytes()));
    assertEquals(gguf.metadata.get("general.architecture"), arch);
    assert(gguf.tensors.has("blk.1.attn_qkv.weight") && gguf.tensors.has("output_norm.weight"), "llama.cpp tensor names");
    assert(![...gguf.tensors.keys()].some((n) => n.startsWith("transformer.")), "no Hugging Face names left");
    if (arch === "bloom") assert(gguf.tensors.has("token_embd_norm.bias"), "BLOOM's embedding LayerNorm as token_embd_norm");
    if (arch === "mpt") {
      assertEquals(gguf.metadata.get("mpt.attention.max_alibi_bias"), 8);
      assert(!gguf.tensors.has("blk.0.attn_qkv.bias") && !gguf.tensors.has("output_norm.bias"), "MPT's no_bias: no bias tensors");
    }
    const m = await loadModel(sink.bytes(), { threads: 1 });
    try {
      await checkReference(m, ref, `${name} via GGUF`);
    } finally {
      await m.close();
    }
  });
}

testShared("bloom-alibi: without the bias the logits move (ALiBi is what the reference needs)", [
  path.join(FIXTURES, "bloom-alibi", "reference.json"),
], async () => {
  const ref = readJSON<Reference>(path.join(FIXTURES, "bloom-alibi", "reference.json"));
  const m = await loadModel(path.join(FIXTURES, "bloom-alibi"), { threads: 1 });
  try {
    delete (m.kv.layout as { alibiSlopes?: number }).alibiSlopes;
    const last = await m.prefill(m.newSequence(), ref.input_ids);
    let diff = 0;
    for (let i = 0; i < last.length; i++) diff = Math.max(diff, Math.abs(last[i] - ref.logits.at(-1)![i]));
    assert(diff > 1e-2, `no ALiBi, max logit difference only ${diff}`);
  } finally {
    await m.close();
  }
});

/** BLOOM's build_alibi_tensor slopes, as transformers writes them. */
function bloomSlopes(n: number): number[] {
  const closest = 2 ** Math.floor(Math.log2(n));
  const base = 2 ** -(2 ** -(Math.log2(closest) - 3));
  const out = Array.from({ length: closest }, (_, i) => base ** (i + 1));
  if (closest !== n) {
    const extra = 2 ** -(2 ** -(Math.log2(2 * closest) - 3));
    for (let i = 0; i < Math.min(closest, n - closest); i++) out.push(extra ** (2 * i + 1));
  }
  return out;
}

/** MPT's build_mpt_alibi_tensor slopes for alibi_bias_max. */
function mptSlopes(n: number, maxBias: number): number[] {
  const p2 = 2 ** Math.ceil(Math.log2(n));
  const s = Array.from({ length: p2 }, (_, i) => 1 / 2 ** ((i + 1) * (maxBias / p2)));
  if (p2 === n) return s;
  return [...s.filter((_, i) => i % 2 === 1), ...s.filter((_, i) => i % 2 === 0)].slice(0, n);
}

test("alibi: slopes for any head count equal BLOOM's and MPT's formulas (the interleaved second series past a power of two)", () => {
  for (let n = 1; n <= 40; n++) {
    const got = Array.from(alibiSlopes(n, 8));
    assertClose(got, bloomSlopes(n), 1e-7, `BLOOM, ${n} heads`, 1);
    assertClose(got, mptSlopes(n, 8), 1e-7, `MPT, ${n} heads`, 1);
    for (const maxBias of [4, 12]) {
      assertClose(Array.from(alibiSlopes(n, maxBias)), mptSlopes(n, maxBias), 1e-7, `MPT max bias ${maxBias}, ${n} heads`, 1);
    }
  }
  // 12 heads: 8 of the first series, then the odd powers of 2^(-1/2)
  assertClose(Array.from(alibiSlopes(12, 8)).slice(8), [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5], 1e-7, "12 heads", 1);
});

/** Softmax attention of one query row with ALiBi over explicit K/V rows (f64). */
function referenceAlibi(
  q: Float32Array,
  K: Float32Array[],
  V: Float32Array[],
  slopes: Float32Array,
  nKv: number,
  hd: number,
  start: number,
  end: number,
): Float32Array {
  const nHeads = slopes.length;
  const out = new Float32Array(nHeads * hd);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / (nHeads / nKv)) * hd;
    const s: number[] = [];
    for (let p = start; p < end; p++) {
      let d = 0;
      for (let i = 0; i < hd; i++) d += q[h * hd + i] * K[p][kh + i];
      s.push(d / Math.sqrt(hd) + slopes[h] * (p - (end - 1)));
    }
    const mx = Math.max(...s);
    const w = s.map((x) => Math.exp(x - mx));
    const sum = w.reduce((a, b) => a + b, 0);
    for (let j = 0; j < w.length; j++) for (let i = 0; i < hd; i++) out[h * hd + i] += (w[j] / sum) * V[start + j][kh + i];
  }
  return out;
}

/** Attention with ALiBi (6 heads: past a power of two) over the pages of each cache type, batched rows, against the reference on the values the cache holds. */
async function alibiKernel(kvType: KVType, tol: number, threads: number, ggmlOrder = false): Promise<void> {
  const shape = { nLayers: 1, nHeads: 6, nKvHeads: 3, headDim: 32 };
  const kvDim = shape.nKvHeads * shape.headDim, qDim = shape.nHeads * shape.headDim;
  const N = 300; // past 256 one-row F16 attention takes llama.cpp's split-KV path; 64+ rows the tiled one
  const b = threads > 1 ? new ThreadedWasmBackend({ threads, minWork: 0, ggmlOrder }) : new WasmBackend({ ggmlOrder });
  await b.init(1 << 24);
  const slopesPtr = b.alloc(shape.nHeads * 4, "slopes");
  const slopes = alibiSlopes(shape.nHeads, 8);
  b.write(slopesPtr, slopes);
  const kv = new PagedKVCache(b, shape, { pageSize: 16, nPages: 32, maxSeqs: 1, maxPositions: 512, kvType, alibiSlopes: slopesPtr });
  const seq = kv.create();
  kv.reserve(seq, N);
  let x = 777;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const K = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, rnd));
  const V = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, rnd));
  const q = Float32Array.from({ length: N * qDim }, () => 3 * rnd());
  const kPtr = b.alloc(N * kvDim * 4, "k"), vPtr = b.alloc(N * kvDim * 4, "v"), qPtr = b.alloc(N * qDim * 4, "q");
  const rows = b.alloc(N * ROW_FIELDS * 4, "rows"), out = b.alloc(N * qDim * 4, "out"), att = b.alloc(shape.nHeads * 512 * 4, "att");
  K.forEach((k, p) => b.write(kPtr + p * kvDim * 4, k));
  V.forEach((v, p) => b.write(vPtr + p * kvDim * 4, v));
  const meta = new Int32Array(N * ROW_FIELDS);
  for (let p = 0; p < N; p++) {
    [meta[p * ROW_FIELDS + ROW_PAGE_TABLE], meta[p * ROW_FIELDS + ROW_POS], meta[p * ROW_FIELDS + ROW_START]] = [seq.pageTablePtr, p, 0];
  }
  b.write(rows, meta);
  b.kvStore(kv.layout, 0, kPtr, vPtr, rows, N);
  // what the cache holds: K and V read back through the kernels' own dequantizers
  const held = (src: Float32Array[]) =>
    src.map((r) => {
      if (kvType === "f32") return r;
      const tmp = b.alloc(kvDim * 4, "tmp"), slot = b.alloc(kvDim * 4 + 64, "slot"), o = new Float32Array(kvDim);
      b.write(tmp, r);
      const k = b.kernels;
      if (kvType === "f16") (k.kv_store_f16(slot, tmp, kvDim), k.kv_load_f16(tmp, slot, kvDim));
      if (kvType === "q8_0") (k.kv_store_q8(slot, tmp, kvDim, kv.layout.qBlock), k.kv_load_q8(tmp, slot, kvDim, kv.layout.qBlock));
      if (kvType === "u8_asym") (k.kv_store_u8(slot, tmp, kvDim, kv.layout.qBlock), k.kv_load_u8(tmp, slot, kvDim, kv.layout.qBlock));
      o.set(b.arena.f32(tmp, kvDim));
      return o;
    });
  const Kh = held(K), Vh = held(V);
  for (const [T, p0] of [[1, 5], [1, N - 1], [4, 100], [80, 200]]) {
    b.write(qPtr, q.subarray(p0 * qDim, (p0 + T) * qDim));
    b.attention(out, qPtr, kv.layout, 0, rows + p0 * ROW_FIELDS * 4, T, att);
    const got = new Float32Array(T * qDim);
    await b.read(out, got);
    for (let t = 0; t < T; t += Math.max(1, T >> 2)) {
      const p = p0 + t;
      const want = referenceAlibi(q.subarray(p * qDim, (p + 1) * qDim), Kh, Vh, slopes, shape.nKvHeads, shape.headDim, 0, p + 1);
      assertClose(got.subarray(t * qDim, (t + 1) * qDim), want, tol, `${kvType}, ${threads} thread(s), ${T} rows, position ${p}`, 1);
    }
  }
  await b.close();
}

test("alibi: the bias inside the f32 cache's attention kernel, one and two threads", async () => {
  await alibiKernel("f32", 1e-5, 1);
  await alibiKernel("f32", 1e-5, 2);
});
test("alibi: the bias inside the Q8_0 and u8_asym caches' attention kernels", async () => {
  await alibiKernel("q8_0", 1e-5, 1);
  await alibiKernel("u8_asym", 1e-5, 1);
});
test("alibi: the bias inside the F16 cache's flash-attention paths (one chunk, split-KV, tiled; ggmlOrder), one and two threads", async () => {
  // the F16 kernels round q to half and keep a half-precision running output: a looser match
  await alibiKernel("f16", 5e-3, 1, true);
  await alibiKernel("f16", 5e-3, 2, true);
});
test("alibi: the bias inside the F16 cache's default-mode kernel (attention_f16_twopass), one and two threads", async () => {
  await alibiKernel("f16", 1e-5, 1);
  await alibiKernel("f16", 1e-5, 2);
});

testShared("alibi: bloom-alibi and mpt-alibi on the F16 (ggmlOrder), Q8_0 and u8_asym caches stay near transformers' logits", [
  path.join(FIXTURES, "bloom-alibi", "reference.json"),
  path.join(FIXTURES, "mpt-alibi", "reference.json"),
], async () => {
  for (const name of ["bloom-alibi", "mpt-alibi"]) {
    const ref = readJSON<Reference>(path.join(FIXTURES, name, "reference.json"));
    // half-precision K/V: about 1e-3 of the largest logit here; 8-bit K/V about 1e-2
    for (
      const [opts, tol] of [[{ kvCacheType: "f16", ggmlOrder: true }, 3e-3], [{ kvCacheType: "q8_0" }, 3e-2], [
        { kvCacheType: "u8_asym" },
        3e-2,
      ]] as const
    ) {
      const m = await loadModel(path.join(FIXTURES, name), { threads: 1, ...opts });
      try {
        const last = await m.prefill(m.newSequence(), ref.input_ids);
        assertClose(last, ref.logits.at(-1)!, tol, `${name}, ${opts.kvCacheType} cache`, scaleOf(ref.logits.at(-1)!));
      } finally {
        await m.close();
      }
    }
  }
});

testShared("alibi: MPT and BLOOM options kvasm does not run are UnsupportedErrors naming them", [
  path.join(FIXTURES, "mpt-alibi", "model.safetensors"),
], async () => {
  // deno-lint-ignore no-explicit-any
  const cases: Array<[string, (c: Record<string, any>) => void, RegExp]> = [
    ["mpt-alibi", (c) => (c.attn_config.clip_qkv = 6), /attn_config\.clip_qkv/],
    ["mpt-alibi", (c) => (c.attn_config.qk_ln = true), /attn_config\.qk_ln/],
    ["mpt-alibi", (c) => (c.attn_config.alibi = false), /without ALiBi/],
    ["mpt-alibi", (c) => (c.attn_config.attn_type = "grouped_query_attention"), /attn_type "grouped_query_attention"/],
    ["bloom-alibi", (c) => (c.apply_residual_connection_post_layernorm = true), /apply_residual_connection_post_layernorm/],
  ];
  for (const [name, edit, re] of cases) {
    const dir = editedFixture(path.join(FIXTURES, name), edit);
    try {
      await assertRejects(() => loadModel(dir, { threads: 1 }), UnsupportedError, re);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  }
});
