/**
 * The F16 cache's tiled flash attention (attention_f16_tiled) against a
 * scalar model of ggml's ggml_compute_forward_flash_attn_ext_tiled, bit for
 * bit, in the plain and relaxed builds. llama.cpp's CPU backend runs that
 * function instead of the one-row kernel (attention_f16) when the ubatch has
 * at least GGML_FA_TILE_Q = 64 query rows and DV is a multiple of 16.
 *
 * The model below is a port of the whole function for one thread: Q tiles of
 * 64 rows, KV tiles of 64 cells from cell 0 up to the padded n_kv, the mask
 * (0 or -inf), tile skipping, the -inf padding of the last KV tile, the two
 * simd_gemm calls as FMA chains (C[i][j] = fma(A[i][k], B[k][j], C[i][j]) for
 * k in order: every AVX-512 ukernel lane does exactly that), the softmax of
 * ggml_vec_soft_max_f32 (ggml_v_expf, sixteen-lane blocks reduced as GCC's
 * _mm512_reduce_add_ps, the block sums in double), glibc's expf for the
 * rescale. The kernel works one query row at a time; matching the model with
 * rows grouped in Q tiles (and cells past the rows' ranges cleared, as
 * llama.cpp clears its cache) shows the grouping does not change any bit.
 */
import { assertEquals, test } from "./harness.ts";
import { f16ToF32 } from "../src/quant/half.ts";
import { expf } from "../src/model/libm.ts";
import { BUILDS, instantiateBuilds } from "./kernel-builds.ts";

const f = Math.fround;
/** x86 FMA on f32: a * b exact in a double (here an f32 times an f32 or a half), one add, then f32 (short of a double-rounding tie). */
const fma = (a: number, b: number, c: number) => f(a * b + c);
/** m * 2^e: the hex-float constants of ggml's source. */
const hexf = (m: number, e: number) => f(m * 2 ** e);

/** ggml_v_expf, AVX-512 (ggml-cpu/vec.h), on one lane: a degree-5 polynomial times 2^n by scalef; |n| > 192 gives 0 or inf. */
const E = {
  r: hexf(0x18, 19), // 0x1.8p23
  log2e: hexf(0x1715476, -24), // 0x1.715476p+0
  ln2hi: hexf(0x162e4, -17), // 0x1.62e4p-1
  ln2lo: hexf(0x17f7d1c, -44), // 0x1.7f7d1cp-20
  c5: hexf(0x10e4020, -31), // 0x1.0e4020p-7
  c4: hexf(0x1573e2e, -29), // 0x1.573e2ep-5
  c3: hexf(0x1555e66, -27), // 0x1.555e66p-3
  c2: hexf(0x1fffdb6, -26), // 0x1.fffdb6p-2
  c1: hexf(0x1ffffec, -25), // 0x1.ffffecp-1
};
function ggmlVExpf(x: number): number {
  const z = fma(x, E.log2e, E.r);
  const n = f(z - E.r);
  if (Math.abs(n) > 192) return n <= 0 ? 0 : Infinity;
  const b = fma(-n, E.ln2lo, fma(-n, E.ln2hi, x));
  const u = f(b * b);
  const j = fma(fma(fma(E.c5, b, E.c4), u, fma(E.c3, b, E.c2)), u, fma(E.c1, b, 1));
  return f(j * 2 ** n); // scalef: exact in a double, one rounding to f32
}

/** _mm512_reduce_add_ps as GCC expands it: lane i += lane i+8, then i += i+4, then i += i+2, then lane 0 + lane 1. */
function reduce16(l: ArrayLike<number>, o: number): number {
  const a = Array.from({ length: 8 }, (_, i) => f(l[o + i + 8] + l[o + i]));
  const b = Array.from({ length: 4 }, (_, i) => f(a[i + 4] + a[i]));
  return f(f(b[0] + b[2]) + f(b[1] + b[3]));
}

/** C[M x N] += A[M x K] B[K x N], simd_gemm's order: one FMA chain per output over k. */
function gemm(C: Float64Array, A: Float64Array, B: Float64Array, M: number, K: number, N: number) {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let c = C[i * N + j];
      for (let k = 0; k < K; k++) c = fma(A[i * K + k], B[k * N + j], c);
      C[i * N + j] = c;
    }
  }
}

const QT = 64, KT = 64;

/**
 * ggml_compute_forward_flash_attn_ext_tiled for rows [0, N) of one thread:
 * q [N][nHeads][D] (f32), cells [nKv][kvDim] of K and V (halves as numbers),
 * mask(i, c) for row i. Returns dst [N][nHeads][D].
 */
function ggmlTiled(
  q: Float64Array,
  K: Float64Array,
  V: Float64Array,
  mask: (i: number, c: number) => number,
  N: number,
  nHeads: number,
  nKvHeads: number,
  D: number,
  nKv: number,
): Float64Array {
  const scale = f(1 / f(Math.sqrt(D)));
  const kvDim = nKvHeads * D;
  const dst = new Float64Array(N * nHeads * D);
  const Qt = new Float64Array(QT * D), KQ = new Float64Array(QT * KT), m32 = new Float64Array(QT * KT);
  const VKQ = new Float64Array(QT * D), V32 = new Float64Array(KT * D), Kt = new Float64Array(D * KT);
  for (let hd = 0; hd < nHeads; hd++) {
    const kh = Math.floor(hd / (nHeads / nKvHeads)) * D;
    for (let iq1 = 0; iq1 < N; iq1 += QT) {
      const rows = Math.min(QT, N - iq1);
      const S = new Float64Array(QT), M = new Float64Array(QT).fill(-Infinity);
      VKQ.fill(0), m32.fill(0), Qt.fill(0);
      for (let t = 0; t < rows; t++) for (let d = 0; d < D; d++) Qt[t * D + d] = q[((iq1 + t) * nHeads + hd) * D + d];
      Kt.fill(0), V32.fill(0); // once per Q tile: the last KV tile keeps stale cells past kvTile
      for (let ic = 0; ic < nKv; ic += KT) {
        const kvTile = Math.min(KT, nKv - ic);
        let canSkip = true;
        for (let t = 0; t < rows; t++) {
          for (let c = 0; c < kvTile; c++) {
            m32[t * KT + c] = mask(iq1 + t, ic + c);
            if (m32[t * KT + c] !== -Infinity) canSkip = false;
          }
          for (let c = kvTile; c < KT; c++) m32[t * KT + c] = -Infinity;
        }
        if (canSkip) continue;
        for (let c = 0; c < kvTile; c++) for (let d = 0; d < D; d++) Kt[d * KT + c] = K[(ic + c) * kvDim + kh + d];
        KQ.fill(0);
        gemm(KQ, Qt, Kt, QT, D, KT);
        for (let i = 0; i < QT * KT; i++) KQ[i] = f(KQ[i] * scale); // ggml_vec_scale_f32
        for (let t = 0; t < QT; t++) for (let c = kvTile; c < KT; c++) KQ[t * KT + c] = -Infinity;
        for (let i = 0; i < rows * KT; i++) KQ[i] = f(KQ[i] + m32[i]); // ggml_vec_add_f32
        const skip = new Array<boolean>(QT).fill(false);
        for (let t = 0; t < QT; t++) {
          let tmax = -Infinity;
          for (let c = 0; c < KT; c++) tmax = tmax > KQ[t * KT + c] ? tmax : KQ[t * KT + c]; // MAX(max, x)
          if (tmax === -Infinity) {
            skip[t] = true;
            continue;
          }
          const Mold = M[t], Mnew = Math.max(Mold, tmax);
          if (Mnew > Mold) {
            const ms = expf(f(Mold - Mnew));
            for (let d = 0; d < D; d++) VKQ[t * D + d] = f(VKQ[t * D + d] * ms);
            S[t] = f(S[t] * ms);
          }
          M[t] = Mnew;
          // ggml_vec_soft_max_f32: weights in place, the sum in double over sixteen-lane blocks
          let sum = 0;
          for (let c = 0; c < KT; c++) KQ[t * KT + c] = ggmlVExpf(f(KQ[t * KT + c] - Mnew));
          for (let o = 0; o < KT; o += 16) sum += reduce16(KQ, t * KT + o);
          S[t] = f(S[t] + sum);
        }
        for (let c = 0; c < kvTile; c++) for (let d = 0; d < D; d++) V32[c * D + d] = V[(ic + c) * kvDim + kh + d];
        for (let t = 0; t < QT; t++) if (skip[t]) KQ.fill(0, t * KT, (t + 1) * KT);
        gemm(VKQ, KQ, V32, QT, KT, D);
      }
      for (let t = 0; t < rows; t++) {
        const inv = S[t] === 0 ? 0 : f(1 / S[t]);
        for (let d = 0; d < D; d++) dst[((iq1 + t) * nHeads + hd) * D + d] = f(VKQ[t * D + d] * inv);
      }
    }
  }
  return dst;
}

const memory = new WebAssembly.Memory({ initial: 256 });
const kernels = instantiateBuilds(memory);
const builds = BUILDS.map((b) => [b, kernels[b]] as const);

let seed = 97531;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
/** A random f32 with exponent in [lo, hi]. */
function randF32(lo: number, hi: number): number {
  const e = lo + Math.floor(rnd() * (hi - lo + 1));
  return f((rnd() < 0.5 ? -1 : 1) * (1 + rnd()) * 2 ** e);
}
/** A random finite half with exponent in [lo, hi] (halves bits), subnormals now and then. */
function randHalf(lo: number, hi: number): number {
  const bits = rnd() < 0.02 ? Math.floor(rnd() * 1024) : ((lo + Math.floor(rnd() * (hi - lo + 1))) << 10) | Math.floor(rnd() * 1024);
  return (rnd() < 0.5 ? 0x8000 : 0) | bits;
}

interface Case {
  nHeads: number;
  nKvHeads: number;
  D: number;
  /** query rows of the ubatch, at positions p0 .. p0 + N - 1 */
  N: number;
  p0: number;
  /** attention window (0: none): row at pos attends [max(0, pos - win + 1), pos] */
  win: number;
  /** q exponent range: wide scores make weights underflow to 0 and maxima jump */
  qe: [number, number];
}

test("attention_f16_tiled: ggml's tiled flash attention bit for bit, plain and relaxed builds", () => {
  const cases: Case[] = [
    { nHeads: 8, nKvHeads: 2, D: 32, N: 64, p0: 0, win: 0, qe: [-3, 0] },
    { nHeads: 8, nKvHeads: 2, D: 32, N: 65, p0: 0, win: 0, qe: [-3, 0] },
    { nHeads: 4, nKvHeads: 4, D: 16, N: 130, p0: 0, win: 0, qe: [-2, 3] },
    { nHeads: 4, nKvHeads: 1, D: 64, N: 200, p0: 0, win: 0, qe: [-4, 1] },
    { nHeads: 2, nKvHeads: 2, D: 48, N: 70, p0: 83, win: 0, qe: [-1, 4] }, // a second ubatch after 83 cells
    { nHeads: 4, nKvHeads: 2, D: 32, N: 96, p0: 40, win: 50, qe: [-3, 1] }, // a window: rows start mid-tile
  ];
  for (const c of cases) {
    const { nHeads, nKvHeads, D, N, p0, win } = c;
    const kvDim = nKvHeads * D, qDim = nHeads * D, nPos = p0 + N;
    const nKv = Math.ceil(nPos / 256) * 256; // llama.cpp's n_kv: used cells padded to 256
    const pageSize = 16, nPages = Math.ceil(nPos / pageSize);
    const slotBytes = 2 * kvDim, pageBytes = 2 * pageSize * slotBytes, kOff = 0, vOff = pageSize * slotBytes;
    // the cache: cells at positions, K and V halves; cells past nPos cleared (zero)
    const kBits = Uint16Array.from({ length: nPos * kvDim }, () => randHalf(12, 17)); // |k| in [2^-3, 4)
    const vBits = Uint16Array.from({ length: nPos * kvDim }, () => randHalf(10, 16));
    const K = new Float64Array(nKv * kvDim), V = new Float64Array(nKv * kvDim);
    kBits.forEach((b, i) => (K[i] = f16ToF32(b)));
    vBits.forEach((b, i) => (V[i] = f16ToF32(b)));
    const q = Float64Array.from({ length: N * qDim }, () => randF32(c.qe[0], c.qe[1]));
    const startOf = (pos: number) => (win ? Math.max(0, pos - win + 1) : 0);
    const mask = (i: number, cell: number) => (cell >= startOf(p0 + i) && cell <= p0 + i ? 0 : -Infinity);
    const want = ggmlTiled(q, K, V, mask, N, nHeads, nKvHeads, D, nKv);

    // kvasm's paged layout: pages in shuffled order, each holding pageSize K slots then pageSize V slots
    const order = Array.from({ length: nPages }, (_, i) => i).sort(() => rnd() - 0.5);
    const PT = 1024, KVB = 4096, Q = KVB + nPages * pageBytes + 64;
    const OUT = Q + N * qDim * 4 + 64, ATT = OUT + N * qDim * 4 + 64;
    new Int32Array(memory.buffer, PT, nPages).set(order);
    const heap16 = new Uint16Array(memory.buffer);
    for (let p = 0; p < nPos; p++) {
      const at = KVB + order[Math.floor(p / pageSize)] * pageBytes + (p % pageSize) * slotBytes;
      heap16.set(kBits.subarray(p * kvDim, (p + 1) * kvDim), (at + kOff) >> 1);
      heap16.set(vBits.subarray(p * kvDim, (p + 1) * kvDim), (at + vOff) >> 1);
    }
    for (const [build, k] of builds) {
      new Float32Array(memory.buffer, Q, N * qDim).set(q);
      const out = new Float32Array(memory.buffer, OUT, N * qDim);
      out.fill(NaN);
      for (let t = 0; t < N; t++) {
        const start = startOf(p0 + t), end = p0 + t + 1, len = end - start;
        // scratch: the heads' bands of len floats, then a guard the kernel must leave alone
        const att = new Float32Array(memory.buffer, ATT, nHeads * len + 16);
        att.fill(12345);
        // heads in two calls, as the thread pool splits them
        const hs = nHeads > 1 ? [0, nHeads >> 1, nHeads] : [0, 1];
        for (let i = 0; i + 1 < hs.length; i++) {
          k.attention_f16_tiled(
            OUT + t * qDim * 4,
            Q + t * qDim * 4,
            ATT,
            KVB,
            PT,
            pageSize,
            pageBytes,
            kOff,
            vOff,
            kvDim,
            nHeads,
            nKvHeads,
            D,
            start,
            end,
            hs[i],
            hs[i + 1],
            0,
            0,
            0,
          );
        }
        for (let i = nHeads * len; i < att.length; i++) assertEquals(att[i], 12345, `${build}: scratch guard, row ${t}`);
      }
      let bad = 0, first = "";
      for (let i = 0; i < N * qDim; i++) {
        if (!Object.is(out[i], f(want[i]))) {
          if (!bad) first = `row ${Math.floor(i / qDim)} head ${Math.floor((i % qDim) / D)} dim ${i % D}: ${out[i]} vs ${want[i]}`;
          bad++;
        }
      }
      assertEquals(bad, 0, `${build} ${JSON.stringify(c)}: first ${first}`);
      // q is read, not rounded in place (the one-row kernel rounds it to half)
      const qa = new Float32Array(memory.buffer, Q, N * qDim);
      for (let i = 0; i < N * qDim; i++) if (qa[i] !== q[i]) throw new Error(`${build}: q changed at ${i}`);
    }
  }
});

test("the F16 attention kernel is picked as llama.cpp's CPU backend picks its path", async () => {
  const { f16AttentionKernel } = await import("../src/backends/wasm.ts");
  // tiled: 64+ rows in the batch and a head dim that is a multiple of 16
  assertEquals(f16AttentionKernel(63, 32, 100), "attention_f16");
  assertEquals(f16AttentionKernel(64, 32, 100), "attention_f16_tiled");
  assertEquals(f16AttentionKernel(512, 64, 900), "attention_f16_tiled");
  assertEquals(f16AttentionKernel(128, 8, 200), "attention_f16");
  assertEquals(f16AttentionKernel(128, 40, 200), "attention_f16");
  // split-KV: one query row once llama.cpp's padded K view reaches 512 cells (position 256)
  assertEquals(f16AttentionKernel(1, 64, 255), "attention_f16");
  assertEquals(f16AttentionKernel(1, 64, 256), "attention_f16_split");
  assertEquals(f16AttentionKernel(2, 64, 300), "attention_f16");
  // without ggmlOrder one kernel for every row, batch and position (batch invariance)
  for (const [T, pos] of [[1, 10], [1, 300], [128, 200]]) assertEquals(f16AttentionKernel(T, 64, pos, false), "attention_f16_twopass");
});
