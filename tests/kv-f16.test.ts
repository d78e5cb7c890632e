// The F16 KV cache: halves rounded as F16C rounds them, flash attention as ggml's CPU backend computes it
// with ggmlOrder (close to exact attention over the rounded K and V), the f32 cache's kernel on the halves
// without it; half the bytes of the f32 cache.
import { assert, assertClose, assertEquals, sharedPath, test, testShared } from "./harness.ts";
import { drain } from "./drain.ts";
import { loadModel } from "../src/model/load.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ROW_FIELDS, ROW_PAGE_TABLE, ROW_POS, ROW_START } from "../src/backends/backend.ts";
import { PagedKVCache } from "../src/kv/paged-cache.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { f32ToF16 } from "../src/quant/half.ts";

const MODEL = sharedPath("models", "stories260K", "stories260K.gguf");

test("kv f16: values round to the nearest half, ties to even, past 65504 to infinity", async () => {
  const b = new WasmBackend();
  await b.init(1 << 16);
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65519, 0x7bff],
    [65520, 0x7c00],
    [1e9, 0x7c00],
    [-Infinity, 0xfc00],
    [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02],
    [2 ** -14, 0x0400],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000],
    [3 * 2 ** -25, 0x0002],
    [2 ** -14 - 2 ** -25, 0x0400],
    [-0, 0x8000],
    [0.1, 0x2e66],
  ];
  const src = b.alloc(cases.length * 4, "src"), dst = b.alloc(cases.length * 2, "dst"), back = b.alloc(cases.length * 4, "back");
  b.write(src, Float32Array.from(cases, ([x]) => x));
  b.kernels.kv_store_f16(dst, src, cases.length);
  const bits = new Uint16Array(b.arena.memory.buffer, dst, cases.length);
  cases.forEach(([x, h], i) => assertEquals(bits[i], h, `half of ${x}`));
  b.write(src + 4, new Float32Array([NaN]));
  b.kernels.kv_store_f16(dst, src, 2);
  assert((bits[1] & 0x7c00) === 0x7c00 && (bits[1] & 0x3ff) !== 0, "NaN stays NaN");
  b.kernels.kv_load_f16(back, dst, 1);
  assertEquals(b.arena.f32(back, 1)[0], 1);
  await b.close();
});

test("kv f16: the store's eight-lane form gives the one-at-a-time form's bits for every exponent, sign, tie, subnormal, inf and NaN", async () => {
  const b = new WasmBackend();
  await b.init(1 << 22);
  // per exponent and sign: mantissas at and around the half's rounding points (bit 12 and below), and random ones
  const bits: number[] = [];
  let x = 99;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  const edges = [0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x3000, 0x5000, 0x7fe000, 0x7fefff, 0x7ff000, 0x7fffff];
  for (let e = 0; e < 256; e++) {
    for (const sign of [0, 0x80000000]) {
      for (const m of edges) bits.push((sign | (e << 23) | m) >>> 0);
      for (let i = 0; i < 40; i++) bits.push((sign | (e << 23) | (rnd() & 0x7fffff)) >>> 0);
    }
  }
  const n = bits.length, src = b.alloc(n * 4, "src"), vec = b.alloc(n * 2, "vec"), one = b.alloc(n * 2, "one");
  new Uint32Array(b.arena.memory.buffer, src, n).set(bits);
  b.kernels.kv_store_f16(vec, src, n); // eight at a time (n % 8 left to the tail)
  for (let i = 0; i < n; i++) b.kernels.kv_store_f16(one + 2 * i, src + 4 * i, 1); // the tail's form alone
  const v = new Uint16Array(b.arena.memory.buffer, vec, n), o = new Uint16Array(b.arena.memory.buffer, one, n);
  const f = new Float32Array(new Uint32Array(bits).buffer);
  for (let i = 0; i < n; i++) {
    if (v[i] !== o[i]) throw new Error(`f32 0x${bits[i].toString(16)}: eight-lane 0x${v[i].toString(16)}, one 0x${o[i].toString(16)}`);
    // and both are src/quant/half.ts's rounding (which keeps no NaN payload)
    if (!Number.isNaN(f[i]) && o[i] !== f32ToF16(f[i])) throw new Error(`f32 0x${bits[i].toString(16)}: 0x${o[i].toString(16)}`);
  }
  assert(n > 25000, `${n} values`);
  await b.close();
});

/** Exact softmax attention (f64) of one query row over rounded K/V rows [start, end). */
function reference(
  q: Float32Array,
  K: Float32Array[],
  V: Float32Array[],
  nHeads: number,
  nKvHeads: number,
  hd: number,
  start: number,
  end: number,
): Float32Array {
  const out = new Float32Array(nHeads * hd);
  for (let h = 0; h < nHeads; h++) {
    const kh = Math.floor(h / (nHeads / nKvHeads)) * hd;
    const s = [];
    for (let p = start; p < end; p++) {
      let d = 0;
      for (let i = 0; i < hd; i++) d += Math.fround(q[h * hd + i]) * K[p][kh + i];
      s.push(d / Math.sqrt(hd));
    }
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, b) => a + b, 0);
    for (let p = start; p < end; p++) for (let i = 0; i < hd; i++) out[h * hd + i] += (e[p - start] / z) * V[p][kh + i];
  }
  return out;
}

/** Random K, V and q rows (deterministic) for N positions: kvDim and qDim wide. */
function randomRows(N: number, kvDim: number, qDim: number) {
  let x = 4321;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const K = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, () => 3 * rnd()));
  const V = Array.from({ length: N }, () => Float32Array.from({ length: kvDim }, rnd));
  const q = Float32Array.from({ length: N * qDim }, () => 2 * rnd());
  return { K, V, q };
}

/**
 * Every one of N rows (row p at position p, window W: 0 for none) attends through a `kvType` cache of
 * pages of 4 holding K and V, on a WASM backend with or without ggmlOrder; returns the N output rows and
 * a function that rounds floats to halves as the F16 cache stores them.
 */
async function attendAll(
  kvType: "f32" | "f16",
  ggmlOrder: boolean,
  shape: { nLayers: number; nHeads: number; nKvHeads: number; headDim: number },
  rows: { K: Float32Array[]; V: Float32Array[]; q: Float32Array },
  W: number,
  opts: { slopes?: Float32Array } = {},
) {
  const N = rows.K.length, kvDim = shape.nKvHeads * shape.headDim, qDim = shape.nHeads * shape.headDim;
  const b = new WasmBackend({ ggmlOrder });
  await b.init(1 << 22);
  const kv = new PagedKVCache(b, shape, { pageSize: 4, nPages: 16, maxSeqs: 1, maxPositions: 64, kvType });
  if (kvType === "f16") assertEquals(kv.layout.pageBytes, PagedKVCache.pageBytes(shape, 4, "f32") / 2);
  if (opts.slopes) {
    kv.layout.alibiSlopes = b.alloc(shape.nHeads * 4, "slopes");
    b.write(kv.layout.alibiSlopes, opts.slopes);
  }
  const seq = kv.create();
  kv.reserve(seq, N);
  const kPtr = b.alloc(N * kvDim * 4, "k"), vPtr = b.alloc(N * kvDim * 4, "v"), qPtr = b.alloc(N * qDim * 4, "q");
  const rowsPtr = b.alloc(N * ROW_FIELDS * 4, "rows"), out = b.alloc(N * qDim * 4, "out"), att = b.alloc(shape.nHeads * N * 4, "scores");
  rows.K.forEach((k, p) => b.write(kPtr + p * kvDim * 4, k));
  rows.V.forEach((v, p) => b.write(vPtr + p * kvDim * 4, v));
  b.write(qPtr, rows.q);
  const meta = new Int32Array(N * ROW_FIELDS);
  for (let p = 0; p < N; p++) {
    meta[p * ROW_FIELDS + ROW_PAGE_TABLE] = seq.pageTablePtr;
    meta[p * ROW_FIELDS + ROW_POS] = p;
    meta[p * ROW_FIELDS + ROW_START] = W > 0 ? Math.max(0, p - W + 1) : 0;
  }
  b.write(rowsPtr, meta);
  for (let l = 0; l < shape.nLayers; l++) b.kvStore(kv.layout, l, kPtr, vPtr, rowsPtr, N);
  b.attention(out, qPtr, kv.layout, 1, rowsPtr, N, att);
  const got = new Float32Array(N * qDim);
  await b.read(out, got);
  const half = (a: Float32Array) => {
    const t = b.alloc(a.length * 2, "t"), r = b.alloc(a.length * 4, "r");
    b.write(r, a);
    b.kernels.kv_store_f16(t, r, a.length);
    b.kernels.kv_load_f16(r, t, a.length);
    return b.arena.f32(r, a.length).slice();
  };
  return { got, half, close: () => b.close() };
}

test("kv f16: attention over F16 pages (pages of 4, a sliding window, grouped heads) matches exact attention, with and without ggmlOrder", async () => {
  for (const ggmlOrder of [true, false]) {
    for (const headDim of [8, 32, 40]) {
      const shape = { nLayers: 2, nHeads: 4, nKvHeads: 2, headDim };
      const qDim = shape.nHeads * headDim;
      const N = 37, W = 10;
      const rows = randomRows(N, shape.nKvHeads * headDim, qDim);
      const { got, half, close } = await attendAll("f16", ggmlOrder, shape, rows, W);
      // the reference sees K and V as the cache holds them (and q rounded to half, as ggml's path rounds it)
      const Kh = rows.K.map(half), Vh = rows.V.map(half), qh = ggmlOrder ? half(rows.q) : rows.q;
      for (const p of [0, 5, W - 1, W, 20, N - 1]) {
        const ref = reference(
          qh.subarray(p * qDim, (p + 1) * qDim),
          Kh,
          Vh,
          shape.nHeads,
          shape.nKvHeads,
          headDim,
          Math.max(0, p - W + 1),
          p + 1,
        );
        // ggmlOrder: the running output is a half vector, a few half ulps of error; without it f32 throughout
        const tol = ggmlOrder ? 4e-3 : 2e-5;
        assertClose(got.subarray(p * qDim, (p + 1) * qDim), ref, tol, `ggmlOrder ${ggmlOrder}, headDim ${headDim}, position ${p}`, 1);
      }
      await close();
    }
  }
});

test("kv f16: without ggmlOrder the F16 cache's attention is the f32 cache's on the halves it holds, bit for bit (ALiBi, windows, grouped heads, q past 2^16, subnormals)", async () => {
  for (
    const [headDim, nHeads, nKvHeads, W, extreme] of [[64, 4, 4, 0, 0], [32, 6, 2, 9, 0], [40, 4, 1, 0, 0], [6, 2, 2, 5, 0], [
      64,
      4,
      2,
      0,
      1,
    ]]
  ) {
    const shape = { nLayers: 2, nHeads, nKvHeads, headDim };
    const N = 45;
    const rows = randomRows(N, nKvHeads * headDim, nHeads * headDim);
    if (extreme) {
      // the halves' kernels take q times 2^112 unless some |q| of the call reaches 2^16: every third row's head 1
      // there, the others below it; f32-subnormal q, and K and V on half subnormals, in every row
      const qDim = nHeads * headDim;
      for (let p = 0; p < N; p++) {
        for (let i = 0; i < qDim; i++) {
          if (p % 3 === 0 && i >= headDim && i < 2 * headDim) rows.q[p * qDim + i] *= 2 ** 17;
          else if (i % 7 === 0) rows.q[p * qDim + i] *= 1e-39;
        }
      }
      for (const k of rows.K) for (let i = 0; i < k.length; i += 5) k[i] *= 1e-5;
      for (const v of rows.V) for (let i = 0; i < v.length; i += 3) v[i] *= 1e-5;
    }
    const slopes = W === 0 && nHeads === 4 ? new Float32Array([0.5, 0.25, 0.125, 0.0625]) : undefined;
    const h = await attendAll("f16", false, shape, rows, W, { slopes });
    // the f32 cache holding exactly the halves' values
    const halved = { K: rows.K.map(h.half), V: rows.V.map(h.half), q: rows.q };
    const f = await attendAll("f32", false, shape, halved, W, { slopes });
    const a = new Uint32Array(h.got.buffer), e = new Uint32Array(f.got.buffer);
    for (let i = 0; i < a.length; i++) {
      if (a[i] !== e[i]) throw new Error(`headDim ${headDim} heads ${nHeads}/${nKvHeads}: output ${i}: ${h.got[i]} != ${f.got[i]}`);
    }
    await h.close();
    await f.close();
  }
});

testShared("kv f16: stories260K greedy output with the F16 cache follows the f32 cache's", [MODEL], async () => {
  const ids = async (kvCacheType: "f32" | "f16") => {
    const m = await loadModel(MODEL, { kvCacheType, threads: 2 });
    const out: number[] = [];
    const g = m.generate("Once upon a time", { temperature: 0, maxTokens: 100, onToken: (t) => out.push(t.id) });
    await drain(g);
    await m.close();
    return out;
  };
  const f = await ids("f32"), h = await ids("f16");
  let same = 0;
  while (same < f.length && f[same] === h[same]) same++;
  assert(same >= 50, `F16 cache departs from f32 at token ${same}`);
});

testShared(
  "kv f16: default mode's logits are bit-identical on 1 and 2 threads (heads split in every attention call)",
  [MODEL],
  async () => {
    const { ThreadedWasmBackend } = await import("../src/backends/wasm-threads.ts");
    const { threadSupport } = await import("../src/threads/spawn.ts");
    if (!threadSupport()) return; // no Workers in this runtime: one thread is the whole story
    const run = async (backend: WasmBackend) => {
      const m = await loadModel(MODEL, { backend, kvCacheType: "f16" });
      try {
        const seq = m.newSequence();
        const all: Float32Array[] = [];
        let logits = await m.prefill(seq, [1, 403, 407, 261, 378, 432, 383]);
        for (let i = 0; i < 24; i++) {
          all.push(logits.slice());
          const best = argmax(logits);
          logits = await m.decodeOne(seq, best);
        }
        return all;
      } finally {
        await m.close();
      }
    };
    const one = await run(new WasmBackend()), two = await run(new ThreadedWasmBackend({ threads: 2, minWork: 0 }));
    for (let i = 0; i < one.length; i++) {
      const a = new Uint32Array(one[i].buffer), b = new Uint32Array(two[i].buffer);
      for (let j = 0; j < a.length; j++) if (a[j] !== b[j]) throw new Error(`step ${i} logit ${j}: ${one[i][j]} vs ${two[i][j]}`);
    }
  },
);
