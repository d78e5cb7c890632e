// Kernels of the F16 KV cache, llama.cpp's default cache type. One position's
// K (or V) for one layer is a slot of kvDim IEEE halves, half the bytes of the
// f32 cache. Attention follows ggml's CPU flash attention
// (ggml_compute_forward_flash_attn_ext_f16_one_chunk, which llama.cpp runs
// whenever flash attention resolves to enabled, as "auto" does on the CPU)
// operation for operation, so logits match llama.cpp's to the last bits:
// quantized weights quantize their activations, and a value that lands on
// the other side of a rounding step there moves every later logit.
// Pointers are byte addresses in the imported memory; outputs come first.

import { f16ToF32, f16x8Lo, f16x8Hi, roundToF16 } from "./math";

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

/**
 * e^x rounded to f32 the way the C library's expf does (correctly rounded
 * but for rare halfway cases): evaluated in f64 with about 1e-16 relative
 * error, then rounded once. ggml's flash attention calls libm's expf.
 */
// @ts-ignore: decorator
@inline export function expfLibm(x: f32): f32 {
  if (x != x) return x;
  if (x > <f32>88.72284) return Infinity;
  if (x < <f32>-103.97208) return 0;
  const xd = <f64>x;
  const k = nearest<f64>(xd * 1.4426950408889634);
  // ln2 in two parts: k * hi is exact for |k| < 2^21
  const r = (xd - k * 0.6931471803691238) - k * 1.9082149292705877e-10;
  // Taylor series to r^12: |r| <= 0.347, remainder below 2e-17
  let p = 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return <f32>(p * reinterpret<f64>(<u64>(<i64>k + 1023) << 52));
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
 * ggml_vec_dot_f16 as ggml's AVX2 build computes it: 32 lanes (four
 * accumulators of eight) over each 32 values, products exact in f32 (half
 * times half), the lanes folded (acc0+acc2, acc1+acc3, then the two, then
 * the 256-bit halves, then two horizontal adds), the leftover products added
 * in f64, and the result rounded to f32. q holds halves as f32, k raw halves.
 */
// @ts-ignore: decorator
@inline function dotF16(q: usize, k: usize, n: i32): f32 {
  const np = n & ~31;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
  for (let i = 0; i < np; i += 32) {
    const qi = q + (<usize>i << 2), ki = k + (<usize>i << 1);
    let h = v128.load(ki);
    a0 = f32x4.add(a0, f32x4.mul(v128.load(qi), f16x8Lo(h)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(qi, 16), f16x8Hi(h)));
    h = v128.load(ki, 16);
    a2 = f32x4.add(a2, f32x4.mul(v128.load(qi, 32), f16x8Lo(h)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(qi, 48), f16x8Hi(h)));
    h = v128.load(ki, 32);
    a4 = f32x4.add(a4, f32x4.mul(v128.load(qi, 64), f16x8Lo(h)));
    a5 = f32x4.add(a5, f32x4.mul(v128.load(qi, 80), f16x8Hi(h)));
    h = v128.load(ki, 48);
    a6 = f32x4.add(a6, f32x4.mul(v128.load(qi, 96), f16x8Lo(h)));
    a7 = f32x4.add(a7, f32x4.mul(v128.load(qi, 112), f16x8Hi(h)));
  }
  // (acc0 + acc2) + (acc1 + acc3), each accumulator as its low and high four lanes
  const lo = f32x4.add(f32x4.add(a0, a4), f32x4.add(a2, a6));
  const hi = f32x4.add(f32x4.add(a1, a5), f32x4.add(a3, a7));
  const t = f32x4.add(lo, hi);
  let sum = <f64>((f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1)) + (f32x4.extract_lane(t, 2) + f32x4.extract_lane(t, 3)));
  for (let i = np; i < n; i++) sum += <f64>(f32At(q, i) * f16ToF32(load<u16>(k + (<usize>i << 1))));
  return <f32>sum;
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
 * The running output lives in `out` (as f32 values that are halves).
 */
export function attention_f16(
  out: usize, q: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
): void {
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>1 / sqrt<f32>(<f32>headDim); // llama.cpp's kq_scale = 1.0f/sqrtf(float(n_embd_head))
  const slotBytes = <usize>kvDim << 1;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * headDim) << 2);
    for (let i = 0; i < headDim; i++) setF32(qh, i, roundToF16(f32At(qh, i)));
    const kvHeadOff = (<usize>(h / kvMul) * headDim) << 1;
    const oh = out + ((<usize>h * headDim) << 2);
    for (let i = 0; i < headDim; i++) setF32(oh, i, 0);
    let M: f32 = -Infinity;
    let S: f32 = 0;
    for (let p = start; p < end; p++) {
      const slot = kvBase + <usize>load<i32>(pageTable + (<usize>(p / pageSize) << 2)) * <usize>pageBytes + <usize>(p % pageSize) * slotBytes + kvHeadOff;
      const s = dotF16(qh, slot + <usize>kOff, headDim) * scale;
      let ms: f32 = 1;
      let vs: f32 = 1;
      if (s > M) {
        ms = expfLibm(M - s);
        M = s;
        for (let i = 0; i < headDim; i++) setF32(oh, i, roundToF16(f32At(oh, i) * ms));
      } else {
        vs = expfLibm(s - M);
      }
      // y = half(fma(v, vs, y)): the product of a half and an f32 is exact in f64, so one f64 add then f32 rounding is the fma
      const v = slot + <usize>vOff;
      const vs64 = <f64>vs;
      for (let i = 0; i < headDim; i++) {
        const y = <f32>(<f64>f16ToF32(load<u16>(v + (<usize>i << 1))) * vs64 + <f64>f32At(oh, i));
        setF32(oh, i, roundToF16(y));
      }
      S = S * ms + vs; // two roundings: llama.cpp's build multiplies, then adds (no contraction here)
    }
    const inv: f32 = S == 0 ? 0 : <f32>1 / S;
    for (let i = 0; i < headDim; i++) setF32(oh, i, f32At(oh, i) * inv);
  }
}
