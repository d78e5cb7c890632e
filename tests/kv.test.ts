// The paged KV cache: fork with copy-on-write, sliding-window attention and page release, the Q8_0 and u8_asym caches.
import { assert, assertClose, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";
import { ContextLengthError, ParamError } from "../src/errors.ts";
import { drain } from "./drain.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { Sampler } from "../src/sampling/sampler.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { type KVType, ROW_FIELDS, ROW_PAGE_TABLE, ROW_POS, ROW_START } from "../src/backends/backend.ts";
import { PagedKVCache, type Sequence } from "../src/kv/paged-cache.ts";
import { Engine } from "../src/engine/engine.ts";

const MODEL = sharedPath("models", "stories260K", "stories260K.gguf");

function pageBytesOf(m: Model, page: number): Uint8Array {
  const b = m.backend as WasmBackend;
  return b.arena.u8(m.kv.pageAddress(page), m.kv.layout.pageBytes).slice();
}

/** Samples `n` tokens continuing `seq` from `logits` with `sampler`, stepping `seqs` together. */
async function continueTogether(m: Model, seqs: Sequence[], logits: Float32Array[], samplers: Sampler[], n: number): Promise<number[][]> {
  const out: number[][] = seqs.map(() => []);
  let cur = logits.map((l) => l.slice());
  for (let i = 0; i < n; i++) {
    const picks = cur.map((l, k) => samplers[k].sample(l).id);
    picks.forEach((id, k) => out[k].push(id));
    cur = (await m.step(seqs.map((seq, k) => ({ seq, tokens: [picks[k]] })))).map((l) => l.slice());
  }
  return out;
}

testShared(
  "kv: runRows writes only what the KV manager reserved; a fork's shared partial page waits for reserve's copy",
  [MODEL],
  async () => {
    const m = await loadModel(MODEL, { maxSequences: 2 });
    try {
      const kv = m.sequences;
      const prompt = m.tokenizer.encode("Once upon a time, there was a little girl");
      assert(prompt.length % kv.pageSize !== 0, "the prompt ends inside a page");
      const parent = kv.create();
      await assertRejects(() => m.runRows([{ seq: parent, tokens: prompt }]), ParamError, /not reserved/);
      assertEquals(parent.length, 0, "a refused step leaves the sequence as it was");
      kv.reserve(parent, prompt.length);
      const alone = (await m.runRows([{ seq: parent, tokens: prompt }]))[0].slice();
      assertEquals(parent.length, prompt.length, "runRows advanced the sequence by its rows");
      const other = kv.create();
      assertEquals(alone, (await m.step([{ seq: other, tokens: prompt }]))[0].slice(), "step = reserve + runRows");
      kv.release(other);
      const child = kv.fork(parent);
      // the child's last page is the parent's: writing it before reserve copies it would change the parent's K/V
      await assertRejects(() => m.runRows([{ seq: child, tokens: [5] }]), ParamError, /not reserved/);
      const copied = m.kv.pagesCopied;
      kv.reserve(child, child.length + 1);
      assertEquals(m.kv.pagesCopied, copied + 1, "reserve copied the shared partial page");
      await m.runRows([{ seq: child, tokens: [5] }]);
      assertEquals([child.length, parent.length], [prompt.length + 1, prompt.length]);
      await assertRejects(() => kv.reserve(child, m.contextLength + 1), ContextLengthError);
    } finally {
      await m.close();
    }
  },
);

testShared("kv: a fork shares full pages, copies the partial page on write, and neither changes the other", [MODEL], async () => {
  const m = await loadModel(MODEL, { maxSequences: 4 });
  try {
    const prompt = m.tokenizer.encode("Once upon a time, there was a little girl named Lily. She loved to play.");
    assert(prompt.length % 16 !== 0 && prompt.length > 16, `prompt of ${prompt.length} tokens ends inside a page`);
    const parent = m.newSequence();
    const logits = (await m.prefill(parent, prompt)).slice();
    const p = parent.length;
    const child = m.kv.fork(parent);
    assertEquals(Array.from(child.pages.subarray(0, child.nPages)), Array.from(parent.pages.subarray(0, parent.nPages)));
    const [full, partial] = [parent.pages[0], parent.pages[1]];
    assertEquals(m.kv.refs[full], 2);
    const fullBytes = pageBytesOf(m, full), partialBytes = pageBytesOf(m, partial);

    const [a, b] = await continueTogether(m, [parent, child], [logits, logits], [
      new Sampler(m.vocabSize, { seed: 1 }),
      new Sampler(m.vocabSize, { seed: 2 }),
    ], 24);
    assert(JSON.stringify(a) !== JSON.stringify(b), "different seeds, different continuations");

    // page tables: the full page is still shared, the partial one now has two owners' private copies
    assertEquals(parent.pages[0], full);
    assertEquals(child.pages[0], full);
    assert(parent.pages[1] !== child.pages[1], "the partial page was copied on write");
    assert(parent.pages[1] === partial || child.pages[1] === partial, "one of them kept the original");
    assertEquals(m.kv.refs[parent.pages[1]], 1);
    assertEquals(m.kv.refs[child.pages[1]], 1);
    assertEquals(m.kv.pagesCopied, 1);
    // contents: the shared page is untouched, and both partial pages still hold the prompt's positions as they were
    assertEquals(Array.from(pageBytesOf(m, full)), Array.from(fullBytes));
    const slots = p % 16;
    const L = m.kv.layout, slot = L.kvDim * 4;
    for (const s of [parent, child]) {
      const now = pageBytesOf(m, s.pages[1]);
      for (let blk = 0; blk < L.nLayers * 2; blk++) {
        const from = blk * 16 * slot, to = from + slots * slot;
        assertEquals(Array.from(now.subarray(from, to)), Array.from(partialBytes.subarray(from, to)), `layer block ${blk}`);
      }
    }

    // outputs: each equals the same seed run on its own, with no fork
    for (const [seed, expected] of [[1, a], [2, b]] as const) {
      const s = m.newSequence();
      const l = (await m.prefill(s, prompt)).slice();
      const [alone] = await continueTogether(m, [s], [l], [new Sampler(m.vocabSize, { seed })], 24);
      assertEquals(alone, expected, `seed ${seed}`);
      m.releaseSequence(s);
    }
    const free = m.kv.freePages;
    m.releaseSequence(parent);
    m.releaseSequence(child);
    assertEquals(m.kv.freePages, m.kv.nPages);
    assert(free < m.kv.nPages);
  } finally {
    await m.close();
  }
});

/** Explicit-mask attention of one query row over f32 K/V rows: positions outside [start, end) get -Infinity. */
function referenceAttention(
  q: Float32Array,
  K: Float32Array[],
  V: Float32Array[],
  nHeads: number,
  nKv: number,
  hd: number,
  start: number,
  end: number,
): Float32Array {
  const out = new Float32Array(nHeads * hd);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / (nHeads / nKv)) * hd;
    const scores = K.map((k, p) => {
      if (p < start || p >= end) return -Infinity; // the mask
      let s = 0;
      for (let i = 0; i < hd; i++) s += q[h * hd + i] * k[kh + i];
      return s / Math.sqrt(hd);
    });
    const mx = Math.max(...scores);
    const w = scores.map((s) => Math.exp(s - mx));
    const sum = w.reduce((x, y) => x + y, 0);
    for (let p = 0; p < K.length; p++) for (let i = 0; i < hd; i++) out[h * hd + i] += (w[p] / sum) * V[p][kh + i];
  }
  return out;
}

async function windowedAttention(kvType: KVType, headDim: number, tol: number): Promise<void> {
  const shape = { nLayers: 2, nHeads: 4, nKvHeads: 2, headDim };
  const kvDim = shape.nKvHeads * headDim, qDim = shape.nHeads * headDim;
  const N = 37, W = 10, pageSize = 4;
  const b = new WasmBackend();
  await b.init(1 << 22);
  const kv = new PagedKVCache(b, shape, { pageSize, nPages: 16, maxSeqs: 2, maxPositions: 64, kvType });
  const seq = kv.create();
  kv.reserve(seq, N);
  let x = 12345;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const K = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, rnd));
  const V = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, rnd));
  const q = Float32Array.from({ length: N * qDim }, () => 2 * rnd());
  const kPtr = b.alloc(N * kvDim * 4, "k"), vPtr = b.alloc(N * kvDim * 4, "v"), qPtr = b.alloc(N * qDim * 4, "q");
  const rows = b.alloc(N * ROW_FIELDS * 4, "rows"), out = b.alloc(N * qDim * 4, "out"), scratch = b.alloc(shape.nHeads * 64 * 4, "att");
  K.forEach((k, p) => b.write(kPtr + p * kvDim * 4, k));
  V.forEach((v, p) => b.write(vPtr + p * kvDim * 4, v));
  b.write(qPtr, q);
  const meta = new Int32Array(N * ROW_FIELDS);
  for (let p = 0; p < N; p++) {
    meta[p * ROW_FIELDS + ROW_PAGE_TABLE] = seq.pageTablePtr;
    meta[p * ROW_FIELDS + ROW_POS] = p;
    meta[p * ROW_FIELDS + ROW_START] = Math.max(0, p - W + 1);
  }
  b.write(rows, meta);
  for (let l = 0; l < shape.nLayers; l++) b.kvStore(kv.layout, l, kPtr, vPtr, rows, N);
  b.attention(out, qPtr, kv.layout, 1, rows, N, scratch);
  const got = new Float32Array(N * qDim);
  await b.read(out, got);
  for (const p of [0, 5, W - 1, W, 20, N - 1]) {
    const ref = referenceAttention(
      q.subarray(p * qDim, (p + 1) * qDim),
      K,
      V,
      shape.nHeads,
      shape.nKvHeads,
      headDim,
      Math.max(0, p - W + 1),
      p + 1,
    );
    assertClose(got.subarray(p * qDim, (p + 1) * qDim), ref, tol, `${kvType} position ${p}`, 0.1);
  }
  // pages wholly before the last query's window go back to the pool
  const free = kv.freePages;
  const released = kv.releaseBefore(seq, N - W + 1); // positions < 28: pages 0..6
  assertEquals(released, 7);
  assertEquals(kv.freePages, free + 7);
  kv.release(seq);
  assertEquals(kv.freePages, 16);
  await b.close();
}

test("kv: sliding-window attention equals an explicit window mask (f32)", () => windowedAttention("f32", 8, 1e-5));
test("kv: sliding-window attention over Q8_0 pages stays close to the f32 reference", async () => {
  await windowedAttention("q8_0", 8, 5e-2);
  await windowedAttention("q8_0", 64, 5e-2);
});

test("kv: sliding-window attention over u8_asym pages stays close to the f32 reference", async () => {
  await windowedAttention("u8_asym", 8, 5e-2);
  await windowedAttention("u8_asym", 64, 5e-2);
});

test("kv: u8_asym slots are the seed's asymmetric quantization per block (scale, zero point), and constant blocks stay exact", async () => {
  const b = new WasmBackend();
  await b.init(1 << 20);
  const n = 64, qBlock = 32;
  const src = b.alloc(n * 4, "src"), slot = b.alloc(n + (n / qBlock) * 8, "slot"), back = b.alloc(n * 4, "back");
  const x = Float32Array.from({ length: n }, (_, i) => (i < 32 ? Math.sin(i * 1.7) * 3 + 0.5 : -2.25)); // block 1 constant
  b.write(src, x);
  b.kernels.kv_store_u8(slot, src, n, qBlock);
  b.kernels.kv_load_u8(back, slot, n, qBlock);
  const q = b.arena.u8(slot, n), params = new Float32Array(b.arena.u8(slot + n, 16).slice().buffer);
  // block 0 as the seed computes it: scale = (max - min) / 255, zero_point = -min / scale, q = round(x / scale + zero_point)
  const blk = x.subarray(0, 32);
  const lo = Math.min(...blk), hi = Math.max(...blk);
  const scale = Math.fround((Math.fround(hi - lo)) / 255), zp = Math.fround(-Math.fround(lo / scale));
  assertEquals([params[0], params[1]], [scale, zp]);
  const roundHalfEven = (v: number) => (Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v)); // torch.round
  for (let i = 0; i < 32; i++) {
    const want = Math.min(255, Math.max(0, roundHalfEven(Math.fround(Math.fround(blk[i] / scale) + zp))));
    assertEquals(q[i], want, `q[${i}]`);
  }
  assert(q.subarray(0, 32).includes(0) && q.subarray(0, 32).includes(255), "the block's range spans 0..255");
  const got = b.arena.f32(back, n);
  for (let i = 0; i < 32; i++) assert(Math.abs(got[i] - x[i]) <= scale / 2 + 1e-6, `value ${i}: ${got[i]} vs ${x[i]} (scale ${scale})`);
  for (let i = 32; i < 64; i++) assertEquals(got[i], x[i], `constant block value ${i}`);
  await b.close();
});

testShared("kv: a sliding window gives back pages while decoding; a window as long as the context changes nothing", [MODEL], async () => {
  const run = async (slidingWindow: number) => {
    const m = await loadModel(MODEL, { maxSequences: 1, slidingWindow });
    const e = new Engine(m, { prefixCachePages: 0 });
    let minUsed = Infinity, maxUsed = 0;
    const r = e.submit({ prompt: "Once upon a time", temperature: 0, maxTokens: 120 });
    for await (const ev of r) {
      if (ev.type !== "token") continue;
      const used = m.kv.nPages - m.kv.freePages;
      minUsed = Math.min(minUsed, used);
      maxUsed = Math.max(maxUsed, used);
    }
    const res = await r.done;
    await e.close();
    await m.close();
    return { tokens: res.choices[0].tokens, maxUsed };
  };
  const full = await run(0);
  const wide = await run(512);
  const narrow = await run(32);
  assertEquals(wide.tokens, full.tokens);
  assertEquals(full.maxUsed, Math.ceil((5 + 120) / 16));
  // 32 positions span at most 3 pages of 16 (plus the one being written)
  assert(narrow.maxUsed <= 4, `window of 32 held ${narrow.maxUsed} pages`);
  assertEquals(narrow.tokens.slice(0, 20), full.tokens.slice(0, 20), "identical while the text fits in the window");
});

/** 100 greedy ids of "Once upon a time" with the given cache type, and that cache's page size in bytes. */
async function greedyWithCache(kvCacheType: KVType): Promise<{ out: number[]; bytes: number }> {
  const m = await loadModel(MODEL, { kvCacheType });
  const bytes = m.kv.layout.pageBytes;
  const out: number[] = [];
  const g = m.generate("Once upon a time", { temperature: 0, maxTokens: 100, onToken: (t) => out.push(t.id) });
  await drain(g);
  await m.close();
  return { out, bytes };
}

testShared("kv: the Q8_0 cache holds a quarter to a third of the bytes and keeps greedy output close", [MODEL], async () => {
  const f = await greedyWithCache("f32"), q = await greedyWithCache("q8_0");
  // stories260K: headDim 8, so one f32 scale per 8 values: 1.5 bytes a value instead of 4
  assertEquals(q.bytes / f.bytes, 0.375);
  let same = 0;
  while (same < f.out.length && f.out[same] === q.out[same]) same++;
  assert(same >= 50, `Q8_0 cache departs from f32 at token ${same}`);
});

testShared("kv: the u8_asym cache holds a third to a half of the bytes and keeps greedy output close", [MODEL], async () => {
  const f = await greedyWithCache("f32"), u = await greedyWithCache("u8_asym");
  // headDim 8: one f32 scale and one f32 zero point per 8 values, 2 bytes a value instead of 4
  assertEquals(u.bytes / f.bytes, 0.5);
  let same = 0;
  while (same < f.out.length && f.out[same] === u.out[same]) same++;
  assert(same >= 50, `u8_asym cache departs from f32 at token ${same}`);
});
