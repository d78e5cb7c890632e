// kvasm/ops (src/ops.ts): every key of ../shared/fixtures/seed-variants/variants.json (PyTorch) through the
// operators in both kernel builds; the same operators on other sizes (odd widths, two batch rows) against
// plain float64 references written out here; typed errors; and the causal AFT decoders against the dense
// causal computation.
import { assert, assertClose, assertEquals, assertRejects, readJSON, sharedPath, test, testShared } from "./harness.ts";
import * as ops from "../src/ops.ts";
import { ContextLengthError, ParamError } from "../src/errors.ts";

const FIXTURE = sharedPath("fixtures", "seed-variants", "variants.json");
type Arr = { shape: number[]; data: number[] };
// deno-lint-ignore no-explicit-any
type Case = Record<string, any>;

const BUILDS = [{ relaxed: false }, { relaxed: true }];

testShared("ops: every variants.json key within 1e-4 relative, plain and relaxed SIMD", [FIXTURE], async () => {
  const fx = readJSON<Record<string, Case>>(FIXTURE);
  const names: Record<string, keyof typeof ops> = {
    aft_full: "aftFull",
    aft_local: "aftLocal",
    aft_simple: "aftSimple",
    linformer: "linformer",
    sparse_top_k: "sparseTopK",
    sliding_window_bidirectional: "slidingWindowBidirectional",
    quantize_asym_u8: "quantizeAsymU8",
  };
  assertEquals(Object.keys(fx).sort(), Object.keys(names).sort(), "fixture keys");
  for (const opts of BUILDS) {
    for (const [key, c] of Object.entries(fx)) {
      const what = `${key} (${opts.relaxed ? "relaxed" : "simd"})`;
      if (key === "quantize_asym_u8") {
        const r = await ops.quantizeAsymU8({ x: c.x as Arr }, opts); // the fixture's expected fields are no argument
        assertClose([r.scale, r.zeroPoint], [c.scale, c.zero_point], 1e-6, what + " scale, zero point");
        assertEquals(Array.from(r.q.data), (c.q as Arr).data, what + " q");
        assertEquals(r.q.shape, (c.q as Arr).shape, what + " q shape");
        fixtureClose(r.dequant.data, (c.dequant as Arr).data, what + " dequant");
        continue;
      }
      // the case's inputs without its expected output (an operator refuses an argument name it does not take)
      const { out: _out, ...args } = c;
      // deno-lint-ignore no-explicit-any
      const r = await (ops[names[key]] as any)(args, opts) as ops.Tensor;
      assertEquals(r.shape, (c.out as Arr).shape, what + " shape");
      fixtureClose(r.data, (c.out as Arr).data, what);
    }
  }
});

/**
 * Within 1e-4 relative of the fixture, beyond its rounding: make.py writes every value rounded to 7 decimals,
 * so an output of 1.4468e-5 is stored as 1.45e-5 (a 0.2 % "error" no float32 computation can avoid).
 */
function fixtureClose(actual: ArrayLike<number>, expected: number[], what: string): void {
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= 1e-4 * Math.abs(expected[i]) + 5e-8)) throw new Error(`${what}: [${i}] ${actual[i]} vs ${expected[i]} (off by ${d})`);
  }
}

// ---------------------------------------------------------------- float64 references of the same math

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
/** Normal-ish values (sum of four uniforms), scaled. */
function randn(shape: number[], seed: number, scale = 1): Arr {
  const r = rng(seed), n = shape.reduce((a, b) => a * b, 1);
  const data = Array.from({ length: n }, () => Math.fround((r() + r() + r() + r() - 2) * 1.7 * scale));
  return { shape, data };
}
const at = (a: Arr, ...ix: number[]) => a.data[ix.reduce((o, i, d) => o * a.shape[d] + i, 0)];

/** y (T, d) = x (T, n) W^T (+ b), W (d, n). */
function linear(x: number[][], w: Arr, b?: Arr): number[][] {
  const [d, n] = w.shape;
  return x.map((row) => Array.from({ length: d }, (_, o) => row.reduce((s, xi, i) => s + xi * w.data[o * n + i], b ? b.data[o] : 0)));
}
function rows(a: Arr, bi: number): number[][] {
  const [, T, D] = a.shape;
  return Array.from({ length: T }, (_, t) => a.data.slice((bi * T + t) * D, (bi * T + t + 1) * D));
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The seed's aft(): per-row bias shift, per-position (over channels) key shift; bias(t, t') = -Infinity masks. */
function aftRef(q: number[][], k: number[][], v: number[][], bias: (t: number, j: number) => number): number[][] {
  const T = q.length;
  const ek = k.map((r) => {
    const m = Math.max(...r);
    return r.map((x) => Math.exp(x - m));
  });
  return q.map((qr, t) => {
    const w = Array.from({ length: T }, (_, j) => bias(t, j));
    const mw = Math.max(...w);
    return qr.map((qd, d) => {
      let num = 0, den = 0;
      for (let j = 0; j < T; j++) {
        const e = Math.exp(w[j] - mw);
        num += e * ek[j][d] * v[j][d];
        den += e * ek[j][d];
      }
      return sigmoid(qd) * num / den;
    });
  });
}
/** AFT-simple: softmax over positions 0..last(t) per channel. */
function aftSimpleRef(q: number[][], k: number[][], v: number[][], causal: boolean): number[][] {
  const T = q.length;
  return q.map((qr, t) =>
    qr.map((qd, d) => {
      const hi = causal ? t : T - 1;
      let m = -Infinity;
      for (let j = 0; j <= hi; j++) m = Math.max(m, k[j][d]);
      let num = 0, den = 0;
      for (let j = 0; j <= hi; j++) {
        const e = Math.exp(k[j][d] - m);
        num += e * v[j][d];
        den += e;
      }
      return sigmoid(qd) * num / den;
    })
  );
}
/** softmax(q k^T / sqrt(D)) v over the keys `keep(t, j)` allows (or the top `topk` scores). */
function attentionRef(q: number[][], k: number[][], v: number[][], keep: (t: number, j: number) => boolean, topk = 0): number[][] {
  const D = q[0].length;
  return q.map((qr, t) => {
    let js = k.map((_, j) => j).filter((j) => keep(t, j));
    const sc = (j: number) => qr.reduce((s, x, i) => s + x * k[j][i], 0) / Math.sqrt(D);
    if (topk) js = js.sort((a, b) => sc(b) - sc(a)).slice(0, topk);
    const m = Math.max(...js.map(sc));
    const ws = js.map((j) => Math.exp(sc(j) - m)), sum = ws.reduce((a, b) => a + b, 0);
    return v[0].map((_, d) => js.reduce((s, j, i) => s + ws[i] / sum * v[j][d], 0));
  });
}
const flat = (bs: number[][][]) => bs.flat(2);

function aftWeights(D: number, seed: number) {
  return {
    wq: randn([D, D], seed + 1, 0.25),
    wk: randn([D, D], seed + 2, 0.25),
    wv: randn([D, D], seed + 3, 0.25),
    wo: randn([D, D], seed + 4, 0.25),
  };
}
/**
 * The f32 kernels against the f64 references: 1e-4 relative, where relative means to the element or, for
 * elements under 1 % of the largest (cancellation in the output projection), to 1 % of the largest.
 */
function near(actual: ArrayLike<number>, expected: number[], what: string, tol = 1e-4): void {
  const big = expected.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  assertClose(actual, expected, tol, what, 1e-2 * big);
}

// ---------------------------------------------------------------- beyond the fixture

const B = 2, T = 37, D = 22, M = 40;

test("ops: AFT full, local and simple (and their causal forms) on 2 x 37 x 22 against float64 references", async () => {
  const x = randn([B, T, D], 11);
  const W = aftWeights(D, 20);
  const bo = randn([D], 30, 0.1);
  const u = randn([1, M, 6], 31, 0.5), v = randn([1, M, 6], 32, 0.5);
  const wbias = randn([1, M, M], 33, 0.5);
  const S = 5;
  const ub = (t: number, j: number) => Array.from({ length: 6 }, (_, c) => at(u, 0, t, c) * at(v, 0, j, c)).reduce((a, b) => a + b, 0);
  const local = (t: number, j: number) => (Math.abs(t - j) < S ? at(wbias, 0, t, j) : -Infinity);
  const causalOf = (f: (t: number, j: number) => number) => (t: number, j: number) => (j <= t ? f(t, j) : -Infinity);
  for (const causal of [false, true]) {
    const expect = { full: [] as number[][][], local: [] as number[][][], simple: [] as number[][][] };
    for (let bi = 0; bi < B; bi++) {
      const xr = rows(x, bi);
      const q = linear(xr, W.wq), k = linear(xr, W.wk), vv = linear(xr, W.wv);
      const out = (m: number[][]) => linear(m, W.wo, bo);
      expect.full.push(out(aftRef(q, k, vv, causal ? causalOf(ub) : ub)));
      expect.local.push(out(aftRef(q, k, vv, causal ? causalOf(local) : local)));
      expect.simple.push(out(aftSimpleRef(q, k, vv, causal)));
    }
    for (const opts of BUILDS) {
      const tag = `${causal ? "causal" : "dense"} ${opts.relaxed ? "relaxed" : "simd"}`;
      const full = await ops.aftFull({ x, ...W, bo, u, v, causal }, opts);
      assertEquals(full.shape, [B, T, D]);
      near(full.data, flat(expect.full), `aftFull ${tag}`);
      near((await ops.aftLocal({ x, ...W, bo, wbias, local_context: S, causal }, opts)).data, flat(expect.local), `aftLocal ${tag}`);
      near((await ops.aftSimple({ x, ...W, bo, causal }, opts)).data, flat(expect.simple), `aftSimple ${tag}`);
    }
  }
});

test("ops: linformer, sparse top-k, sliding window and dense attention on other sizes against float64 references", async () => {
  const q = randn([B, T, D], 41), k = randn([B, T, D], 42), v = randn([B, T, 7], 43);
  for (const opts of BUILDS) {
    const tag = opts.relaxed ? "relaxed" : "simd";
    const dense = await ops.denseAttention({ query: q, key: k, value: v }, opts);
    assertEquals(dense.shape, [B, T, 7]);
    near(dense.data, flat([0, 1].map((b) => attentionRef(rows(q, b), rows(k, b), rows(v, b), () => true))), `dense ${tag}`);
    const causal = await ops.denseAttention({ query: q, key: k, value: v, causal: true }, opts);
    near(causal.data, flat([0, 1].map((b) => attentionRef(rows(q, b), rows(k, b), rows(v, b), (t, j) => j <= t))), `causal ${tag}`);
    const sw = await ops.slidingWindowBidirectional({ query: q, key: k, value: v, window_overlap: 3 }, opts);
    near(
      sw.data,
      flat([0, 1].map((b) => attentionRef(rows(q, b), rows(k, b), rows(v, b), (t, j) => Math.abs(t - j) <= 3))),
      `sliding ${tag}`,
    );
    // 37 rows in 4 chunks of 9: the seed drops the 37th row
    const sp = await ops.sparseTopK({ query: q, key: k, value: v, k: 6, num_chunks: 4 }, opts);
    assertEquals(sp.shape, [B, 36, 7]);
    near(sp.data, flat([0, 1].map((b) => attentionRef(rows(q, b).slice(0, 36), rows(k, b), rows(v, b), () => true, 6))), `topk ${tag}`);
  }
  // Linformer: 37 positions padded to 48, projected to 9; head 6 of width 22
  const HD = 6, L = 48, K = 9;
  const x = randn([B, T, D], 50);
  const p = {
    x,
    wq: randn([HD, D], 51, 0.3),
    bq: randn([HD], 52, 0.1),
    wk: randn([HD, D], 53, 0.3),
    bk: randn([HD], 54, 0.1),
    wv: randn([HD, D], 55, 0.3),
    bv: randn([HD], 56, 0.1),
    E: randn([K, L], 57, 0.2),
    bE: randn([K], 58, 0.1),
    F: randn([K, L], 59, 0.2),
    bF: randn([K], 60, 0.1),
    max_seq_len: L,
    k: K,
  };
  const expected = [0, 1].map((b) => {
    const xr = rows(x, b);
    const qq = linear(xr, p.wq, p.bq), kk = linear(xr, p.wk, p.bk), vv = linear(xr, p.wv, p.bv);
    // nn.Linear(L, K) over the zero-padded sequence: the padded rows add nothing but the bias
    const proj = (a: number[][], E: Arr, bE: Arr) =>
      Array.from({ length: K }, (_, j) => Array.from({ length: HD }, (_, c) => a.reduce((s, r, t) => s + at(E, j, t) * r[c], bE.data[j])));
    return attentionRef(qq, proj(kk, p.E, p.bE), proj(vv, p.F, p.bF), () => true);
  });
  for (const opts of BUILDS) {
    const r = await ops.linformer(p, opts);
    assertEquals(r.shape, [B, T, HD]);
    near(r.data, flat(expected), `linformer ${opts.relaxed ? "relaxed" : "simd"}`);
  }
});

test("ops: quantizeAsymU8 on 1000 values (two rows of 500) against the seed's float32 arithmetic", async () => {
  const x = randn([2, 500], 70, 5);
  const f = Math.fround;
  let lo = Infinity, hi = -Infinity;
  for (const a of x.data) [lo, hi] = [Math.min(lo, a), Math.max(hi, a)];
  const scale = f(f(hi - lo) / 255), zp = f(0 - f(lo / scale));
  // round half to even, as torch.round
  const rne = (a: number) => (Math.abs(a % 1) === 0.5 ? 2 * Math.round(a / 2) : Math.round(a));
  const q = x.data.map((a) => Math.min(255, Math.max(0, rne(f(f(a / scale) + zp)))));
  for (const opts of BUILDS) {
    const r = await ops.quantizeAsymU8({ x }, opts);
    assertEquals([r.scale, r.zeroPoint], [scale, zp]);
    assertEquals(Array.from(r.q.data), q);
    assertEquals(Array.from(r.dequant.data), q.map((qi) => f(scale * f(qi - zp))));
    // the round trip is within half a step of x everywhere
    assert(x.data.every((a, i) => Math.abs(r.dequant.data[i] - a) <= scale * 0.5001), "dequant within scale / 2 of x");
  }
});

test("ops: limiting cases agree with each other (top-k of all keys, a window past both ends, one position, width 1)", async () => {
  for (const [T, D] of [[9, 1], [1, 5], [16, 8]]) {
    const q = randn([1, T, D], 100 + T), k = randn([1, T, D], 200 + T), v = randn([1, T, D], 300 + T);
    const dense = await ops.denseAttention({ query: q, key: k, value: v });
    const all = await ops.sparseTopK({ query: q, key: k, value: v, k: T, num_chunks: 1 });
    const wide = await ops.slidingWindowBidirectional({ query: q, key: k, value: v, window_overlap: T });
    near(all.data, Array.from(dense.data), `top-${T} of ${T} keys = dense (D ${D})`, 1e-5);
    near(wide.data, Array.from(dense.data), `window ${T} = dense (D ${D})`, 1e-5);
    // AFT-local with a window past both ends is AFT with the whole wbias: AFT-full's form with w = wbias
    const x = randn([1, T, D], 400 + T), W = aftWeights(D, 500 + T), wbias = randn([1, T, T], 600 + T, 0.5);
    const local = await ops.aftLocal({ x, ...W, wbias, local_context: T + 3 });
    const xr = rows(x, 0), qq = linear(xr, W.wq), kk = linear(xr, W.wk), vv = linear(xr, W.wv);
    near(local.data, linear(aftRef(qq, kk, vv, (t, j) => at(wbias, 0, t, j)), W.wo).flat(), `aftLocal s > T (D ${D})`);
    // one position: every AFT form mixes only itself, so the output is (sigmoid(q) * v) W_o^T
    if (T === 1) {
      const self = linear([qq[0].map((qd, d) => sigmoid(qd) * vv[0][d])], W.wo)[0];
      const u = randn([1, 1, 3], 7), uv = randn([1, 1, 3], 8);
      near((await ops.aftSimple({ x, ...W })).data, self, "aftSimple T=1");
      near((await ops.aftFull({ x, ...W, u, v: uv })).data, self, "aftFull T=1");
      near(local.data, self, "aftLocal T=1");
    }
  }
});

// ---------------------------------------------------------------- causal decoders

test("ops: aftSimpleDecoder and aftLocalDecoder step for step equal the dense causal AFT over the sequence", async () => {
  const x = randn([1, T, D], 80, 2);
  const W = aftWeights(D, 90);
  const wbias = randn([1, M, M], 95, 0.5);
  const S = 4;
  const xr = rows(x, 0);
  const q = linear(xr, W.wq), k = linear(xr, W.wk), v = linear(xr, W.wv);
  const denseSimple = aftSimpleRef(q, k, v, true);
  const denseLocal = aftRef(q, k, v, (t, j) => (j <= t && t - j < S ? at(wbias, 0, t, j) : -Infinity));
  // the operators' causal forms, before W_o (identity output projection)
  const eye = { shape: [D, D], data: Array.from({ length: D * D }, (_, i) => (i % (D + 1) === 0 ? 1 : 0)) };
  const opSimple = await ops.aftSimple({ x, ...W, wo: eye, causal: true });
  const opLocal = await ops.aftLocal({ x, ...W, wo: eye, wbias, local_context: S, causal: true });
  near(opSimple.data, denseSimple.flat(), "aftSimple causal op vs dense");
  near(opLocal.data, denseLocal.flat(), "aftLocal causal op vs dense");
  for (const opts of BUILDS) {
    const simple = await ops.aftSimpleDecoder({ dim: D }, opts);
    const localDec = await ops.aftLocalDecoder({ dim: D, wbias, local_context: S }, opts);
    assertEquals([simple.stateBytes, localDec.stateBytes], [3 * D * 4, 2 * S * D * 4]);
    for (let round = 0; round < 2; round++) {
      for (let t = 0; t < T; t++) {
        const qt = new Float32Array(q[t]), kt = new Float32Array(k[t]), vt = new Float32Array(v[t]);
        near(simple.step(qt, kt, vt), denseSimple[t], `aftSimpleDecoder step ${t}`);
        near(localDec.step(qt, kt, vt), denseLocal[t], `aftLocalDecoder step ${t}`);
      }
      assertEquals(simple.position, T);
      simple.reset();
      localDec.reset();
    }
    // with identity projections (q = k = v = x) the operators' causal forms see the decoders' exact inputs:
    // the steps run the same arithmetic, so they agree bit for bit
    const same = { x, wq: eye, wk: eye, wv: eye, wo: eye, causal: true };
    const exactSimple = await ops.aftSimple(same, opts);
    const exactLocal = await ops.aftLocal({ ...same, wbias, local_context: S }, opts);
    for (let t = 0; t < T; t++) {
      const xt = new Float32Array(xr[t]);
      assertEquals(Array.from(simple.step(xt, xt, xt)), Array.from(exactSimple.data.subarray(t * D, (t + 1) * D)), `simple step ${t}`);
      assertEquals(Array.from(localDec.step(xt, xt, xt)), Array.from(exactLocal.data.subarray(t * D, (t + 1) * D)), `local step ${t}`);
    }
    localDec.reset();
    // the local decoder's bias runs out at wbias's max_seq_len
    for (let t = 0; t < M; t++) localDec.step(q[0], k[0], v[0]);
    await assertRejects(() => localDec.step(q[0], k[0], v[0]), ContextLengthError, /max_seq_len/);
    await assertRejects(() => simple.step(q[0].slice(1), k[0], v[0]), ParamError, /^q: must hold dim = 22/);
  }
});

// ---------------------------------------------------------------- typed errors

test("ops: wrong shapes and parameters are ParamErrors that name the field", async () => {
  const x = randn([1, 12, 16], 1), W = aftWeights(16, 2);
  const qkv = { query: x, key: x, value: x };
  const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
    ["missing wo", () => ops.aftSimple({ x, wq: W.wq, wk: W.wk, wv: W.wv } as never), /^wo: is required/],
    ["2-d x", () => ops.aftSimple({ ...W, x: { shape: [12, 16], data: x.data } }), /^x: must have 3 dimensions/],
    [
      "data length",
      () => ops.aftSimple({ ...W, x: { shape: [1, 12, 16], data: x.data.slice(1) } }),
      /^x: shape \[1,12,16\] holds 192 values but data has 191/,
    ],
    ["wq shape", () => ops.aftSimple({ ...W, x, wq: randn([8, 16], 3) }), /^wq: must have shape \[16,16\]/],
    ["bad shape", () => ops.aftSimple({ ...W, x: { shape: [1, 0, 16], data: [] } }), /^x: needs a shape/],
    [
      "T past u",
      () => ops.aftFull({ ...W, x, u: randn([1, 8, 4], 4), v: randn([1, 8, 4], 5) }),
      /^x: has 12 positions but u and v cover max_seq_len 8/,
    ],
    ["local_context 0", () => ops.aftLocal({ ...W, x, wbias: randn([1, 16, 16], 6), local_context: 0 }), /^local_context: must be in \[1/],
    [
      "wbias not square",
      () => ops.aftLocal({ ...W, x, wbias: randn([1, 16, 12], 6), local_context: 2 }),
      /^wbias: must have shape \[1,16,16\]/,
    ],
    ["k > T", () => ops.sparseTopK({ ...qkv, k: 13, num_chunks: 3 }), /^k: must be in \[1, 12\]/],
    ["chunks", () => ops.sparseTopK({ ...qkv, k: 4, num_chunks: 2.5 }), /^num_chunks: must be an integer/],
    ["window", () => ops.slidingWindowBidirectional({ ...qkv, window_overlap: -1 }), /^window_overlap: must be in \[0/],
    [
      "key width",
      () => ops.slidingWindowBidirectional({ ...qkv, key: randn([1, 12, 8], 7), window_overlap: 2 }),
      /^key: must have shape \[1,12,16\]/,
    ],
    ["causal flag", () => ops.denseAttention({ ...qkv, causal: "yes" as never }), /^causal: must be a boolean/],
    ["relaxed option", () => ops.denseAttention(qkv, { relaxed: "false" as never }), /^relaxed: must be a boolean, got "false"/],
    ["constant x", () => ops.quantizeAsymU8({ x: { shape: [4], data: [2, 2, 2, 2] } }), /^x: needs finite values with max > min/],
    ["NaN x", () => ops.quantizeAsymU8({ x: { shape: [2], data: [0, NaN] } }), /^x: needs finite values/],
    ["linformer T > max_seq_len", () =>
      ops.linformer({
        x: randn([1, 20, 16], 8),
        wq: randn([8, 16], 9),
        bq: randn([8], 9),
        wk: randn([8, 16], 9),
        bk: randn([8], 9),
        wv: randn([8, 16], 9),
        bv: randn([8], 9),
        E: randn([4, 16], 9),
        bE: randn([4], 9),
        F: randn([4, 16], 9),
        bF: randn([4], 9),
        max_seq_len: 16,
        k: 4,
      }), /^x: has 20 positions but max_seq_len is 16/],
    ["decoder dim", () => ops.aftSimpleDecoder({ dim: 0 }), /^dim: must be in \[1/],
    ["no args", () => ops.sparseTopK(undefined as never), /^args: must be an object/],
    ["no args (decoder)", () => ops.aftSimpleDecoder(null as never), /^args: must be an object/],
  ];
  for (const [what, fn, re] of cases) {
    const e = await assertRejects(fn, ParamError, re).catch((err) => {
      throw new Error(`${what}: ${err.message}`);
    });
    assertEquals((e as ParamError).code, "params", what);
  }
  // errors arrive as rejections, never as synchronous throws
  const pending = ops.sparseTopK(undefined as never);
  assert(pending instanceof Promise, "sparseTopK returns a promise even for bad input");
  await pending.catch(() => {});
  // a Float32Array carrying its shape is accepted as well as { shape, data }
  const xf = Object.assign(new Float32Array(x.data), { shape: [1, 12, 16] });
  const a = await ops.aftSimple({ ...W, x: xf }), b = await ops.aftSimple({ ...W, x });
  assertEquals(Array.from(a.data), Array.from(b.data));
});
