/**
 * Sparse top-k attention over the paged KV cache (LoadOptions.attention.topK):
 * each query row's softmax runs over its k best scores only. Checked against
 * a dense computation of the same thing (every score, the k best kept, the
 * softmax over them), on the f32, Q8_0 and u8_asym caches, batched rows, one
 * and two threads, with ALiBi; and in a model: k at least the context is
 * dense attention bit for bit, a small k changes the logits.
 */
import { loadModel } from "../src/model/load.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { type KVType, ROW_FIELDS, ROW_PAGE_TABLE, ROW_POS, ROW_START } from "../src/backends/backend.ts";
import { PagedKVCache } from "../src/kv/paged-cache.ts";
import { alibiSlopes } from "../src/model/alibi.ts";
import { ParamError, UnsupportedError } from "../src/errors.ts";
import { assert, assertClose, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";

/** Dense top-k attention of one query row (f64): all scores, the k best (ties: the earlier position), softmax over them. */
export function referenceTopK(
  q: Float32Array,
  K: Float32Array[],
  V: Float32Array[],
  nHeads: number,
  nKv: number,
  hd: number,
  start: number,
  end: number,
  k: number,
  slopes?: Float32Array,
): Float32Array {
  const out = new Float32Array(nHeads * hd);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / (nHeads / nKv)) * hd;
    const s: Array<{ p: number; s: number }> = [];
    for (let p = start; p < end; p++) {
      let d = 0;
      for (let i = 0; i < hd; i++) d += q[h * hd + i] * K[p][kh + i];
      s.push({ p, s: d / Math.sqrt(hd) + (slopes ? slopes[h] * (p - end + 1) : 0) });
    }
    const kept = [...s].sort((a, b) => b.s - a.s || a.p - b.p).slice(0, k);
    const mx = kept[0].s;
    const sum = kept.reduce((a, e) => a + Math.exp(e.s - mx), 0);
    for (const e of kept) for (let i = 0; i < hd; i++) out[h * hd + i] += (Math.exp(e.s - mx) / sum) * V[e.p][kh + i];
  }
  return out;
}

async function topKKernel(kvType: KVType, topK: number, threads: number, alibi: boolean): Promise<void> {
  const shape = { nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 32 };
  const kvDim = shape.nKvHeads * shape.headDim, qDim = shape.nHeads * shape.headDim;
  const N = 200;
  const b = threads > 1 ? new ThreadedWasmBackend({ threads, minWork: 0 }) : new WasmBackend();
  await b.init(1 << 24);
  const slopes = alibiSlopes(shape.nHeads, 8);
  const slopesPtr = b.alloc(16, "slopes");
  b.write(slopesPtr, slopes);
  const sel = b.alloc(shape.nHeads * topK * 8, "top-k selection");
  const kv = new PagedKVCache(b, shape, {
    pageSize: 16,
    nPages: 16,
    maxSeqs: 1,
    maxPositions: 256,
    kvType,
    topK,
    topKScratch: sel,
    alibiSlopes: alibi ? slopesPtr : undefined,
  });
  const seq = kv.create();
  kv.reserve(seq, N);
  let x = 4242;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const K = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, rnd));
  const V = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, rnd));
  // a few exactly repeated keys: equal scores, where the earlier position must win
  for (let p = 150; p < 160; p++) K[p] = K[40];
  const q = Float32Array.from({ length: N * qDim }, () => 2 * rnd());
  const kPtr = b.alloc(N * kvDim * 4, "k"), vPtr = b.alloc(N * kvDim * 4, "v"), qPtr = b.alloc(N * qDim * 4, "q");
  const rows = b.alloc(N * ROW_FIELDS * 4, "rows"), out = b.alloc(N * qDim * 4, "out"), att = b.alloc(shape.nHeads * 256 * 4, "att");
  K.forEach((k, p) => b.write(kPtr + p * kvDim * 4, k));
  V.forEach((v, p) => b.write(vPtr + p * kvDim * 4, v));
  b.write(qPtr, q);
  const meta = new Int32Array(N * ROW_FIELDS);
  for (let p = 0; p < N; p++) {
    [meta[p * ROW_FIELDS + ROW_PAGE_TABLE], meta[p * ROW_FIELDS + ROW_POS], meta[p * ROW_FIELDS + ROW_START]] = [seq.pageTablePtr, p, 0];
  }
  b.write(rows, meta);
  b.kvStore(kv.layout, 1, kPtr, vPtr, rows, N);
  b.attention(out, qPtr, kv.layout, 1, rows, N, att); // all N rows as one batch
  const got = new Float32Array(N * qDim);
  await b.read(out, got);
  const held = (src: Float32Array[]) =>
    kvType === "f32" ? src : src.map((r) => {
      const tmp = b.alloc(kvDim * 4, "tmp"), slot = b.alloc(kvDim * 4 + 64, "slot");
      b.write(tmp, r);
      const store = kvType === "q8_0" ? b.kernels.kv_store_q8 : b.kernels.kv_store_u8,
        load = kvType === "q8_0" ? b.kernels.kv_load_q8 : b.kernels.kv_load_u8;
      store(slot, tmp, kvDim, kv.layout.qBlock);
      load(tmp, slot, kvDim, kv.layout.qBlock);
      return b.arena.f32(tmp, kvDim).slice();
    });
  const Kh = held(K), Vh = held(V);
  for (const p of [0, topK - 1, topK, 77, 155, N - 1]) {
    const want = referenceTopK(
      q.subarray(p * qDim, (p + 1) * qDim),
      Kh,
      Vh,
      shape.nHeads,
      shape.nKvHeads,
      shape.headDim,
      0,
      p + 1,
      topK,
      alibi ? slopes : undefined,
    );
    assertClose(
      got.subarray(p * qDim, (p + 1) * qDim),
      want,
      1e-5,
      `${kvType} top-${topK}, ${threads} thread(s)${alibi ? ", ALiBi" : ""}, position ${p}`,
      1,
    );
  }
  await b.close();
}

test("topk: sparse top-k attention over f32 pages equals the dense top-k computation, one and two threads, with and without ALiBi", async () => {
  for (const threads of [1, 2]) {
    await topKKernel("f32", 16, threads, false);
    await topKKernel("f32", 5, threads, true);
  }
});

test("topk: sparse top-k attention over Q8_0 and u8_asym pages equals the dense top-k computation on the values they hold", async () => {
  await topKKernel("q8_0", 16, 1, false);
  await topKKernel("u8_asym", 16, 1, true);
});

const MODEL = sharedPath("models", "stories260K", "stories260K.gguf");

testShared(
  "topk: in a model, k >= the positions is dense attention bit for bit; a small k changes the logits a little; two threads give the same bits",
  [MODEL],
  async () => {
    const run = async (topK: number, threads = 1) => {
      const m = await loadModel(
        MODEL,
        threads === 1
          ? { attention: { topK }, threads: 1 }
          : { attention: { topK }, backend: new ThreadedWasmBackend({ threads, minWork: 0 }) },
      );
      try {
        const seq = m.newSequence();
        const ids = m.tokenizer.encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.");
        const rows: Float32Array[] = [];
        rows.push((await m.prefill(seq, ids.slice(0, 8))).slice());
        for (const t of ids.slice(8)) rows.push((await m.decodeOne(seq, t)).slice());
        return { rows, n: ids.length };
      } finally {
        await m.close();
      }
    };
    const dense = await run(0), wide = await run(512), small = await run(4), small2 = await run(4, 2);
    assert(dense.n > 16, "a prompt longer than k");
    for (let i = 0; i < dense.rows.length; i++) assertEquals(Array.from(wide.rows[i]), Array.from(dense.rows[i]), `k = 512, row ${i}`);
    assertEquals(Array.from(small.rows[0]), Array.from(small2.rows[0]));
    assertEquals(Array.from(small.rows.at(-1)!), Array.from(small2.rows.at(-1)!), "one and two threads, same bits");
    let diff = 0;
    for (let i = 0; i < dense.rows.at(-1)!.length; i++) diff = Math.max(diff, Math.abs(dense.rows.at(-1)![i] - small.rows.at(-1)![i]));
    assert(diff > 1e-4 && diff < 5, `k = 4 moves the last logits by ${diff}`);
  },
);

testShared("topk: bad or unsupported settings are typed errors before anything is allocated", [MODEL], async () => {
  await assertRejects(() => loadModel(MODEL, { attention: { topK: -1 } }), ParamError, /attention\.topK/);
  await assertRejects(() => loadModel(MODEL, { attention: { topK: 2.5 } }), ParamError, /attention\.topK/);
  await assertRejects(() => loadModel(MODEL, { attention: { topK: 8 }, kvCacheType: "f16" }), UnsupportedError, /f16/);
  // k past the context is dense attention: its scratch is sized by the context, not by k
  const m = await loadModel(MODEL, { attention: { topK: 1e9 }, threads: 1 });
  assertEquals(m.kv.layout.topK, m.contextLength);
  await m.close();
});
