// Kernels of the F16 KV cache, llama.cpp's default cache type. One position's
// K (or V) for one layer is a slot of kvDim IEEE halves, half the bytes of the
// f32 cache. Attention follows ggml's CPU flash attention
// (ggml_compute_forward_flash_attn_ext_f16_one_chunk, which llama.cpp runs
// whenever flash attention resolves to enabled, as "auto" does on the CPU)
// operation for operation, so logits match llama.cpp's to the last bits:
// quantized weights quantize their activations, and a value that lands on
// the other side of a rounding step there moves every later logit.
// Pointers are byte addresses in the imported memory; outputs come first.

import { expfGlibc, f16ToF32, f16x8Lo, f16x8Hi, roundToF16, roundToF16x4 } from "./math";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

/** f32 to IEEE half bits, round to nearest even (F16C's vcvtps2ph with rounding mode 0). */
// @ts-ignore: decorator
@inline export function f32ToF16Bits(x: f32): u32 {
  const bits = reinterpret<u32>(x);
  const sign = (bits >> 16) & 0x8000;
  const a = bits & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >> 13) & 0x3ff); // NaN stays NaN
  // roundToF16 rounds in the f32 domain (overflow to inf, subnormals on the 2^-24 grid); then re-encode exactly
  const r = reinterpret<u32>(roundToF16(reinterpret<f32>(a)));
  if (r >= 0x7f800000) return sign | 0x7c00;
  if (r < 0x38800000) return sign | <u32>(reinterpret<f32>(r) * <f32>16777216.0); // subnormal: value / 2^-24
  return sign | (((r >> 23) - 112) << 10) | ((r >> 13) & 0x3ff);
}

/** Rounds one row of n f32 (src) to IEEE halves (dst): llama.cpp's ggml_set_rows into an F16 cache. */
export function kv_store_f16(dst: usize, src: usize, n: i32): void {
  for (let i = 0; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>f32ToF16Bits(f32At(src, i)));
}

/** An F16 slot back to n f32 (tests and debugging). */
export function kv_load_f16(out: usize, src: usize, n: i32): void {
  for (let i = 0; i < n; i++) setF32(out, i, f16ToF32(load<u16>(src + (<usize>i << 1))));
}

/**
 * ggml_vec_dot_f16 as the AVX-512 build of ggml computes it (the CPU variant
 * llama.cpp loads on AVX-512 machines such as the one its references come
 * from): 64 values per step in four accumulators of sixteen f32 lanes,
 * products exact in f32 (half times half, so each FMA is a plain add), the
 * accumulators folded (acc0+acc2, acc1+acc3, then the two) and the sixteen
 * lanes reduced as GCC's _mm512_reduce_add_ps does (upper 256 bits plus
 * lower, upper 128 plus lower, lanes 2,3 onto 0,1, then lane 1 onto 0); the
 * n % 64 leftover products (all of them for head dims under 64) are added in
 * f64, and the sum is rounded to f32 once. q holds halves as f32, k raw halves.
 */
// @ts-ignore: decorator
@inline function dotF16(q: usize, k: usize, n: i32): f32 {
  const np = n & ~63;
  let sum: f64 = 0;
  if (np > 0) {
    // accumulator j, lanes 4m..4m+3: ajm
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
    let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a22 = f32x4.splat(0), a23 = f32x4.splat(0);
    let a30 = f32x4.splat(0), a31 = f32x4.splat(0), a32 = f32x4.splat(0), a33 = f32x4.splat(0);
    for (let i = 0; i < np; i += 64) {
      const qi = q + (<usize>i << 2), ki = k + (<usize>i << 1);
      let h = v128.load(ki);
      a00 = f32x4.add(a00, f32x4.mul(v128.load(qi), f16x8Lo(h)));
      a01 = f32x4.add(a01, f32x4.mul(v128.load(qi, 16), f16x8Hi(h)));
      h = v128.load(ki, 16);
      a02 = f32x4.add(a02, f32x4.mul(v128.load(qi, 32), f16x8Lo(h)));
      a03 = f32x4.add(a03, f32x4.mul(v128.load(qi, 48), f16x8Hi(h)));
      h = v128.load(ki, 32);
      a10 = f32x4.add(a10, f32x4.mul(v128.load(qi, 64), f16x8Lo(h)));
      a11 = f32x4.add(a11, f32x4.mul(v128.load(qi, 80), f16x8Hi(h)));
      h = v128.load(ki, 48);
      a12 = f32x4.add(a12, f32x4.mul(v128.load(qi, 96), f16x8Lo(h)));
      a13 = f32x4.add(a13, f32x4.mul(v128.load(qi, 112), f16x8Hi(h)));
      h = v128.load(ki, 64);
      a20 = f32x4.add(a20, f32x4.mul(v128.load(qi, 128), f16x8Lo(h)));
      a21 = f32x4.add(a21, f32x4.mul(v128.load(qi, 144), f16x8Hi(h)));
      h = v128.load(ki, 80);
      a22 = f32x4.add(a22, f32x4.mul(v128.load(qi, 160), f16x8Lo(h)));
      a23 = f32x4.add(a23, f32x4.mul(v128.load(qi, 176), f16x8Hi(h)));
      h = v128.load(ki, 96);
      a30 = f32x4.add(a30, f32x4.mul(v128.load(qi, 192), f16x8Lo(h)));
      a31 = f32x4.add(a31, f32x4.mul(v128.load(qi, 208), f16x8Hi(h)));
      h = v128.load(ki, 112);
      a32 = f32x4.add(a32, f32x4.mul(v128.load(qi, 224), f16x8Lo(h)));
      a33 = f32x4.add(a33, f32x4.mul(v128.load(qi, 240), f16x8Hi(h)));
    }
    // x0 = (acc0 + acc2) + (acc1 + acc3), per lane
    const y0 = f32x4.add(f32x4.add(a00, a20), f32x4.add(a10, a30));
    const y1 = f32x4.add(f32x4.add(a01, a21), f32x4.add(a11, a31));
    const y2 = f32x4.add(f32x4.add(a02, a22), f32x4.add(a12, a32));
    const y3 = f32x4.add(f32x4.add(a03, a23), f32x4.add(a13, a33));
    // _mm512_reduce_add_ps: lanes 8-15 onto 0-7, 4-7 onto 0-3, 2-3 onto 0-1, 1 onto 0
    const t6 = f32x4.add(f32x4.add(y3, y1), f32x4.add(y2, y0));
    const t8 = f32x4.add(t6, i32x4.shuffle(t6, t6, 2, 3, 0, 1));
    sum = <f64>(f32x4.extract_lane(t8, 0) + f32x4.extract_lane(t8, 1));
  }
  for (let i = np; i < n; i++) sum += <f64>(f32At(q, i) * f16ToF32(load<u16>(k + (<usize>i << 1))));
  return <f32>sum;
}

/** f32(v * s + y) on four lanes through f64: v (a half) times s (an f32) is exact there, so this is the fma. */
// @ts-ignore: decorator
@inline function fmaHalf(v: v128, s: v128, y: v128): v128 {
  const lo = f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(v), s), f64x2.promote_low_f32x4(y));
  const hi = f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3)), s), f64x2.promote_low_f32x4(i32x4.shuffle(y, y, 2, 3, 2, 3)));
  return i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/**
 * Flash attention over F16 pages: heads [h0, h1) of one query row attend
 * positions [start, end) through the page table (layout as in `attention`,
 * slots of kvDim halves). As ggml does it: q is rounded to half (in place:
 * the forward pass does not read q again); each score is the half dot
 * product times 1/sqrt(headDim); the softmax is online, one position at a
 * time in order, with the running output kept in half precision (scaled by
 * expf(Mold - M) on a new maximum, then y = half(fma(v, expf(s - M), y)))
 * and the running sum in f32; the output is that half vector times 1/sum.
 * The running output lives in `out` (as f32 values that are halves). The
 * arguments are `attention`'s, so the thread pool splits both alike; the
 * score scratch (_att) goes unused: scores are consumed as they come.
 */
export function attention_f16(
  out: usize, q: usize, _att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
): void {
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>1 / sqrt<f32>(<f32>headDim); // llama.cpp's kq_scale = 1.0f/sqrtf(float(n_embd_head))
  const slotBytes = <usize>kvDim << 1;
  const dv = headDim & ~7; // eight halves per load in the SIMD loops, the rest one by one
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * headDim) << 2);
    for (let i = 0; i < dv; i += 4) v128.store(qh + (<usize>i << 2), roundToF16x4(v128.load(qh + (<usize>i << 2))));
    for (let i = dv; i < headDim; i++) setF32(qh, i, roundToF16(f32At(qh, i)));
    const kvHeadOff = (<usize>(h / kvMul) * headDim) << 1;
    const oh = out + ((<usize>h * headDim) << 2);
    memory.fill(oh, 0, <usize>headDim << 2);
    let M: f32 = -Infinity;
    let S: f32 = 0;
    for (let p = start; p < end; p++) {
      const slot = kvBase + <usize>load<i32>(pageTable + (<usize>(p / pageSize) << 2)) * <usize>pageBytes + <usize>(p % pageSize) * slotBytes + kvHeadOff;
      const s = dotF16(qh, slot + <usize>kOff, headDim) * scale;
      let ms: f32 = 1;
      let vs: f32 = 1;
      if (s > M) {
        ms = expfGlibc(M - s);
        M = s;
        const ms4 = f32x4.splat(ms);
        for (let i = 0; i < dv; i += 4) v128.store(oh + (<usize>i << 2), roundToF16x4(f32x4.mul(v128.load(oh + (<usize>i << 2)), ms4)));
        for (let i = dv; i < headDim; i++) setF32(oh, i, roundToF16(f32At(oh, i) * ms));
      } else {
        vs = expfGlibc(s - M);
      }
      // y = half(fma(v, vs, y)): the product of a half and an f32 is exact in f64, so one f64 add then f32 rounding is the fma
      const v = slot + <usize>vOff;
      const vs64 = <f64>vs;
      const vs2 = f64x2.splat(vs64);
      for (let i = 0; i < dv; i += 8) {
        const h8 = v128.load(v + (<usize>i << 1));
        const o = oh + (<usize>i << 2);
        v128.store(o, roundToF16x4(fmaHalf(f16x8Lo(h8), vs2, v128.load(o))));
        v128.store(o, roundToF16x4(fmaHalf(f16x8Hi(h8), vs2, v128.load(o, 16))), 16);
      }
      for (let i = dv; i < headDim; i++) {
        const y = <f32>(<f64>f16ToF32(load<u16>(v + (<usize>i << 1))) * vs64 + <f64>f32At(oh, i));
        setF32(oh, i, roundToF16(y));
      }
      S = S * ms + vs; // two roundings: llama.cpp's build multiplies, then adds (no contraction here)
    }
    const inv: f32 = S == 0 ? 0 : <f32>1 / S;
    for (let i = 0; i < headDim; i++) setF32(oh, i, f32At(oh, i) * inv);
  }
}
