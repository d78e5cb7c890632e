// BF16, F16 and F32 weights with ggml's float arithmetic (the x86 AVX-512
// build of llama.cpp). Every output keeps the lanes ggml keeps and folds them
// the way ggml folds them:
//   - one activation row (T = 1), and T >= 2 when tinyBLAS declines (n not a
//     multiple of its step, or d not a multiple of 4): the type's vec_dot
//     (ggml-cpu/vec.cpp) with its accumulators, leftovers and final sum;
//   - T >= 2: llamafile's tinyBLAS (one 16-lane accumulator per output, then
//     _mm512_reduce_add_ps).
// The lanes hold f32 values; what each step rounds is noted with each type.
// _mm512_reduce_add_ps (GCC): lane i += lane i+8, i += i+4, i += i+2, 0 += 1.

import { madd, f16ToF32, f16x8Lo, f16x8Hi } from "./math";
import { reduce16 } from "./fused";

/** Four f32 values as one f32x4 from two f64x2 (each lane an f32 value). */
// @ts-ignore: decorator
@inline function f32of(lo: v128, hi: v128): v128 {
  return i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

// ------------------------------------------------------------------- BF16
// VDPBF16PS (_mm512_dpbf16_ps), per f32 lane i: acc += w[2i+1] * x[2i+1],
// then acc += w[2i] * x[2i], each a fused multiply-add rounded to nearest
// even, with denormal inputs read as zero and tiny results flushed to zero
// (Intel's pseudocode; measured the same, tininess after rounding, on the
// AMD host the references come from). The product of two bf16 is exact in f32, so
// multiply then add is the fused step, and neither denormals nor flushing
// can occur while every nonzero product is a multiple of 2^-126 (the two
// smallest nonzero magnitudes have exponent fields summing to 142 or more);
// rows outside that range take an exact scalar path.
// vec_dot_bf16: two accumulators (c1: elements 64k..64k+31, c2: the next 32),
// each reduced, summed in double with the leftover products.
// tinyBLAS<32, __m512, __m512bh>: one accumulator over steps of 32.

/** Odd bf16 of each pair (upper half of each 32-bit lane) as f32. */
// @ts-ignore: decorator
@inline function bfOdd(v: v128): v128 { return v128.and(v, i32x4.splat(-65536)); }
/** Even bf16 of each pair as f32. */
// @ts-ignore: decorator
@inline function bfEven(v: v128): v128 { return i32x4.shl(v, 16); }
/** Running minimum of 2|h| - 1 over eight bf16 (u16 wrap: zero gives 0xffff, so zeros never count). */
// @ts-ignore: decorator
@inline function magMin(m: v128, v: v128): v128 { return i16x8.min_u(m, i16x8.sub(i16x8.shl(v, 1), i16x8.splat(1))); }
// @ts-ignore: decorator
@inline function hminU16(m: v128): u32 {
  m = i16x8.min_u(m, i32x4.shuffle(m, m, 2, 3, 0, 1));
  m = i16x8.min_u(m, i32x4.shuffle(m, m, 1, 0, 3, 2));
  return min(<u32>i16x8.extract_lane_u(m, 0), <u32>i16x8.extract_lane_u(m, 1));
}
/** magMin over n bf16 at p, folded. */
function bfMag(p: usize, n: i32): u32 {
  let m = i16x8.splat(-1);
  let i = 0;
  for (; i + 8 <= n; i += 8) m = magMin(m, v128.load(p + (<usize>i << 1)));
  let r = hminU16(m);
  for (; i < n; i++) r = min(r, ((<u32>load<u16>(p + (<usize>i << 1)) << 1) - 1) & 0xffff);
  return r;
}
/** Whether the f32 steps are exact for these magnitudes (2|h|-1 minima): no denormal input, every product a multiple of 2^-126. */
// @ts-ignore: decorator
@inline function bfSafe(mw: u32, mx: u32): bool {
  if (mw == 0xffff || mx == 0xffff) return true; // one side all zeros
  if (mw < 0xff || mx < 0xff) return false; // a denormal
  return ((mw + 1) >> 8) + ((mx + 1) >> 8) >= 142;
}

/** acc + w * x per lane, odd pair then even pair (the f32 steps, exact in the safe range; fused or not alike). */
// @ts-ignore: decorator
@inline function dp4(acc: v128, wo: v128, we: v128, x: v128): v128 {
  return madd(we, bfEven(x), madd(wo, bfOdd(x), acc));
}

// @ts-ignore: decorator
@inline function bfDaz(h: u32): f64 { return (h & 0x7f80) == 0 ? 0.0 : <f64>reinterpret<f32>(h << 16); }
/**
 * One VDPBF16PS step on one lane, exactly: the product is exact in f64, and
 * the f64 sum rounds to the fused f32 result (a bf16 product has 16
 * significant bits, so the sum is exact in f64 or the smaller term lies far
 * below half an f32 ulp). Results below 2^-126 after rounding flush to a signed zero.
 */
// @ts-ignore: decorator
@inline function dpStep(acc: f32, a: u32, b: u32): f32 {
  const s = <f64>acc + bfDaz(a) * bfDaz(b);
  if (abs(s) < 1.1754942106924411e-38) return s < 0 ? -0.0 : 0.0; // 2^-126 (1 - 2^-25): rounds below 2^-126
  return <f32>s;
}
/** One lane over `steps` steps of `stride` bytes from byte offset `off` (its even element). */
function bfLaneExact(w: usize, x: usize, steps: i32, stride: usize, off: usize): f32 {
  let acc: f32 = 0;
  for (let s = 0; s < steps; s++) {
    const p = <usize>s * stride + off;
    acc = dpStep(acc, load<u16>(w + p, 2), load<u16>(x + p, 2));
    acc = dpStep(acc, load<u16>(w + p), load<u16>(x + p));
  }
  return acc;
}
/** Sixteen lanes (lane i at byte off + 4i) reduced as _mm512_reduce_add_ps. */
function bfReduceExact(w: usize, x: usize, steps: i32, stride: usize, off: usize): f32 {
  let a = f32x4.splat(bfLaneExact(w, x, steps, stride, off));
  a = f32x4.replace_lane(a, 1, bfLaneExact(w, x, steps, stride, off + 4));
  a = f32x4.replace_lane(a, 2, bfLaneExact(w, x, steps, stride, off + 8));
  a = f32x4.replace_lane(a, 3, bfLaneExact(w, x, steps, stride, off + 12));
  let b = f32x4.splat(bfLaneExact(w, x, steps, stride, off + 16));
  b = f32x4.replace_lane(b, 1, bfLaneExact(w, x, steps, stride, off + 20));
  b = f32x4.replace_lane(b, 2, bfLaneExact(w, x, steps, stride, off + 24));
  b = f32x4.replace_lane(b, 3, bfLaneExact(w, x, steps, stride, off + 28));
  let c = f32x4.splat(bfLaneExact(w, x, steps, stride, off + 32));
  c = f32x4.replace_lane(c, 1, bfLaneExact(w, x, steps, stride, off + 36));
  c = f32x4.replace_lane(c, 2, bfLaneExact(w, x, steps, stride, off + 40));
  c = f32x4.replace_lane(c, 3, bfLaneExact(w, x, steps, stride, off + 44));
  let e = f32x4.splat(bfLaneExact(w, x, steps, stride, off + 48));
  e = f32x4.replace_lane(e, 1, bfLaneExact(w, x, steps, stride, off + 52));
  e = f32x4.replace_lane(e, 2, bfLaneExact(w, x, steps, stride, off + 56));
  e = f32x4.replace_lane(e, 3, bfLaneExact(w, x, steps, stride, off + 60));
  return reduce16(a, b, c, e);
}

// @ts-ignore: decorator
@inline function bf(p: usize, i: i32): f32 { return reinterpret<f32>(<u32>load<u16>(p + (<usize>i << 1)) << 16); }

/** ggml_vec_dot_bf16 tail: sumf = (double)reduce(c1) + (double)reduce(c2), then the leftover products (f32) in double. */
// @ts-ignore: decorator
@inline function bfVecTail(w: usize, x: usize, n: i32, r1: f32, r2: f32): f32 {
  let s: f64 = 0;
  s += <f64>r1;
  s += <f64>r2;
  for (let i = n & ~63; i < n; i++) s += <f64>(bf(w, i) * bf(x, i));
  return <f32>s;
}

/** ggml_vec_dot_bf16 of one weight row and one activation row (mx: the activations' magnitude minimum). */
function bfVecDot(w: usize, x: usize, n: i32, mx: u32): f32 {
  const np = n & ~63;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
  let m = i16x8.splat(-1);
  for (let i = 0; i < np; i += 64) {
    const pw = w + (<usize>i << 1), px = x + (<usize>i << 1);
    let v = v128.load(pw); m = magMin(m, v); a0 = dp4(a0, bfOdd(v), bfEven(v), v128.load(px));
    v = v128.load(pw, 16); m = magMin(m, v); a1 = dp4(a1, bfOdd(v), bfEven(v), v128.load(px, 16));
    v = v128.load(pw, 32); m = magMin(m, v); a2 = dp4(a2, bfOdd(v), bfEven(v), v128.load(px, 32));
    v = v128.load(pw, 48); m = magMin(m, v); a3 = dp4(a3, bfOdd(v), bfEven(v), v128.load(px, 48));
    v = v128.load(pw, 64); m = magMin(m, v); b0 = dp4(b0, bfOdd(v), bfEven(v), v128.load(px, 64));
    v = v128.load(pw, 80); m = magMin(m, v); b1 = dp4(b1, bfOdd(v), bfEven(v), v128.load(px, 80));
    v = v128.load(pw, 96); m = magMin(m, v); b2 = dp4(b2, bfOdd(v), bfEven(v), v128.load(px, 96));
    v = v128.load(pw, 112); m = magMin(m, v); b3 = dp4(b3, bfOdd(v), bfEven(v), v128.load(px, 112));
  }
  if (!bfSafe(hminU16(m), mx)) {
    const k = np >> 6;
    return bfVecTail(w, x, n, bfReduceExact(w, x, k, 128, 0), bfReduceExact(w, x, k, 128, 64));
  }
  return bfVecTail(w, x, n, reduce16(a0, a1, a2, a3), reduce16(b0, b1, b2, b3));
}

/**
 * W (d rows of n bf16) . xq (T rows of n bf16, from quantize_bf16) -> out (T, d), rows [r0, r1).
 * T >= 2 with n % 32 == 0 and d % 4 == 0 is tinyBLAS (one row against two
 * activation rows at a time), anything else vec_dot_bf16.
 */
export function matmul_bf16_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>n << 1;
  const mx = bfMag(xq, n * T);
  const dBytes = <usize>d << 2;
  if (T < 2 || (n & 31) != 0 || (d & 3) != 0) {
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * rowBytes;
      for (let t = 0; t < T; t++) store<f32>(out + <usize>t * dBytes + (<usize>r << 2), bfVecDot(wr, xq + <usize>t * rowBytes, n, mx));
    }
    return;
  }
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * rowBytes;
    const o = out + (<usize>r << 2);
    if (!bfSafe(bfMag(wr, n), mx)) {
      for (let t = 0; t < T; t++) store<f32>(o + <usize>t * dBytes, bfReduceExact(wr, xq + <usize>t * rowBytes, n >> 5, 64, 0));
      continue;
    }
    let t = 0;
    for (; t + 2 <= T; t += 2) {
      const xa = xq + <usize>t * rowBytes, xb = xa + rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let p: usize = 0; p < rowBytes; p += 64) {
        let v = v128.load(wr + p); let wo = bfOdd(v), we = bfEven(v);
        a0 = dp4(a0, wo, we, v128.load(xa + p)); b0 = dp4(b0, wo, we, v128.load(xb + p));
        v = v128.load(wr + p, 16); wo = bfOdd(v); we = bfEven(v);
        a1 = dp4(a1, wo, we, v128.load(xa + p, 16)); b1 = dp4(b1, wo, we, v128.load(xb + p, 16));
        v = v128.load(wr + p, 32); wo = bfOdd(v); we = bfEven(v);
        a2 = dp4(a2, wo, we, v128.load(xa + p, 32)); b2 = dp4(b2, wo, we, v128.load(xb + p, 32));
        v = v128.load(wr + p, 48); wo = bfOdd(v); we = bfEven(v);
        a3 = dp4(a3, wo, we, v128.load(xa + p, 48)); b3 = dp4(b3, wo, we, v128.load(xb + p, 48));
      }
      store<f32>(o + <usize>t * dBytes, reduce16(a0, a1, a2, a3));
      store<f32>(o + <usize>(t + 1) * dBytes, reduce16(b0, b1, b2, b3));
    }
    if (t < T) {
      const xa = xq + <usize>t * rowBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let p: usize = 0; p < rowBytes; p += 64) {
        let v = v128.load(wr + p); a0 = dp4(a0, bfOdd(v), bfEven(v), v128.load(xa + p));
        v = v128.load(wr + p, 16); a1 = dp4(a1, bfOdd(v), bfEven(v), v128.load(xa + p, 16));
        v = v128.load(wr + p, 32); a2 = dp4(a2, bfOdd(v), bfEven(v), v128.load(xa + p, 32));
        v = v128.load(wr + p, 48); a3 = dp4(a3, bfOdd(v), bfEven(v), v128.load(xa + p, 48));
      }
      store<f32>(o + <usize>t * dBytes, reduce16(a0, a1, a2, a3));
    }
  }
}

// -------------------------------------------------------------------- F16
// Both operands are halves (the activations rounded by round_f16 and held as
// f32), so each product is exact in f32 (22 significant bits, far from
// underflow) and the fused multiply-add of ggml is multiply then add.
// vec_dot_f16 (GGML_F16 macros, no AVX512-FP16: F32Cx16): four 16-lane
// accumulators, sum[j] over elements 64k + 16j + i; folded sum0 += sum2,
// sum1 += sum3, sum0 += sum1, reduced; leftovers in double.
// tinyBLAS<16, __m512, __m512, ggml_fp16_t>: one accumulator over steps of 16.

/** ggml_vec_dot_f16 of one f16 weight row and one activation row (f32 values of halves). */
function f16VecDot(w: usize, x: usize, n: i32): f32 {
  const np = n & ~63;
  // sum[0] (a) and sum[2] (c), then sum[1] and sum[3] from 16 elements on
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let j = 0; j < 2; j++) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
    const w0 = w + (<usize>j << 5), x0 = x + (<usize>j << 6);
    for (let i = 0; i < np; i += 64) {
      const pw = w0 + (<usize>i << 1), px = x0 + (<usize>i << 2);
      let h = v128.load(pw);
      a0 = madd(f16x8Lo(h), v128.load(px), a0); a1 = madd(f16x8Hi(h), v128.load(px, 16), a1);
      h = v128.load(pw, 16);
      a2 = madd(f16x8Lo(h), v128.load(px, 32), a2); a3 = madd(f16x8Hi(h), v128.load(px, 48), a3);
      h = v128.load(pw, 64);
      c0 = madd(f16x8Lo(h), v128.load(px, 128), c0); c1 = madd(f16x8Hi(h), v128.load(px, 144), c1);
      h = v128.load(pw, 80);
      c2 = madd(f16x8Lo(h), v128.load(px, 160), c2); c3 = madd(f16x8Hi(h), v128.load(px, 176), c3);
    }
    a0 = f32x4.add(a0, c0); a1 = f32x4.add(a1, c1); a2 = f32x4.add(a2, c2); a3 = f32x4.add(a3, c3);
    if (j == 0) { s0 = a0; s1 = a1; s2 = a2; s3 = a3; } else {
      s0 = f32x4.add(s0, a0); s1 = f32x4.add(s1, a1); s2 = f32x4.add(s2, a2); s3 = f32x4.add(s3, a3);
    }
  }
  let s: f64 = <f64>reduce16(s0, s1, s2, s3);
  for (let i = np; i < n; i++) s += <f64>(f16ToF32(load<u16>(w + (<usize>i << 1))) * load<f32>(x + (<usize>i << 2)));
  return <f32>s;
}

/**
 * W (d rows of n halves) . x (T rows of n f32 holding halves, from round_f16) -> out (T, d), rows [r0, r1).
 * T >= 2 with n % 16 == 0 and d % 4 == 0 is tinyBLAS, anything else vec_dot_f16.
 */
export function matmul_f16_ggml(out: usize, x: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const wBytes = <usize>n << 1, xBytes = <usize>n << 2;
  const dBytes = <usize>d << 2;
  if (T < 2 || (n & 15) != 0 || (d & 3) != 0) {
    for (let r = r0; r < r1; r++) {
      const wr = w + <usize>r * wBytes;
      for (let t = 0; t < T; t++) store<f32>(out + <usize>t * dBytes + (<usize>r << 2), f16VecDot(wr, x + <usize>t * xBytes, n));
    }
    return;
  }
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * wBytes;
    const o = out + (<usize>r << 2);
    let t = 0;
    for (; t + 2 <= T; t += 2) {
      const xa = x + <usize>t * xBytes, xb = xa + xBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let i = 0; i < n; i += 16) {
        const pw = wr + (<usize>i << 1), pa = xa + (<usize>i << 2), pb = xb + (<usize>i << 2);
        let h = v128.load(pw);
        let lo = f16x8Lo(h), hi = f16x8Hi(h);
        a0 = madd(lo, v128.load(pa), a0); a1 = madd(hi, v128.load(pa, 16), a1);
        b0 = madd(lo, v128.load(pb), b0); b1 = madd(hi, v128.load(pb, 16), b1);
        h = v128.load(pw, 16);
        lo = f16x8Lo(h); hi = f16x8Hi(h);
        a2 = madd(lo, v128.load(pa, 32), a2); a3 = madd(hi, v128.load(pa, 48), a3);
        b2 = madd(lo, v128.load(pb, 32), b2); b3 = madd(hi, v128.load(pb, 48), b3);
      }
      store<f32>(o + <usize>t * dBytes, reduce16(a0, a1, a2, a3));
      store<f32>(o + <usize>(t + 1) * dBytes, reduce16(b0, b1, b2, b3));
    }
    if (t < T) {
      const xa = x + <usize>t * xBytes;
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let i = 0; i < n; i += 16) {
        const pw = wr + (<usize>i << 1), pa = xa + (<usize>i << 2);
        let h = v128.load(pw);
        a0 = madd(f16x8Lo(h), v128.load(pa), a0); a1 = madd(f16x8Hi(h), v128.load(pa, 16), a1);
        h = v128.load(pw, 16);
        a2 = madd(f16x8Lo(h), v128.load(pa, 32), a2); a3 = madd(f16x8Hi(h), v128.load(pa, 48), a3);
      }
      store<f32>(o + <usize>t * dBytes, reduce16(a0, a1, a2, a3));
    }
  }
}

// -------------------------------------------------------------------- F32
// Fused multiply-adds of two f32: the product is exact in f64, so f64 mul,
// add, then demote is the fused result (x86 FMA) except where the f64 sum
// lands on an f32 halfway point (vanishingly rare). Accumulators are kept in
// f64 lanes, each holding an f32 value.
// vec_dot_f32 (GGML_F32 macros, AVX-512): four 16-lane accumulators as in
// vec_dot_f16, folded the same way into a float; leftovers in float, as GCC
// compiled them: the first (L & ~7) as multiply then add, the last L & 7 fused.
// tinyBLAS<16, __m512, __m512, float>: one accumulator over steps of 16.

/** acc = fma(w, x, acc) on two lanes (f64 lanes holding f32 values). */
// @ts-ignore: decorator
@inline function fma2(acc: v128, w: v128, x: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(w, x), acc)));
}
// @ts-ignore: decorator
@inline function lo2(v: v128): v128 { return f64x2.promote_low_f32x4(v); }
// @ts-ignore: decorator
@inline function hi2(v: v128): v128 { return f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3)); }

/**
 * Eight f64x2 accumulators a0..a7 (sixteen f32 lanes) after one more step:
 * lane l += w[l] * x[l] fused, for the 64 bytes at pw and px.
 */
// @ts-ignore: decorator
@inline function lane(acc: v128, pw: usize, px: usize, at: usize, high: bool): v128 {
  const u = v128.load(pw + at), v = v128.load(px + at);
  return high ? fma2(acc, hi2(u), hi2(v)) : fma2(acc, lo2(u), lo2(v));
}

/**
 * tinyBLAS<16, __m512> for one output: sixteen lanes, each a chain of fused
 * multiply-adds over the row in steps of sixteen, then _mm512_reduce_add_ps.
 */
function f32Tiny(w: usize, x: usize, n: i32): f32 {
  let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
  let a4 = f64x2.splat(0), a5 = f64x2.splat(0), a6 = f64x2.splat(0), a7 = f64x2.splat(0);
  for (let i = 0; i < n; i += 16) {
    const pw = w + (<usize>i << 2), px = x + (<usize>i << 2);
    a0 = lane(a0, pw, px, 0, false); a1 = lane(a1, pw, px, 0, true);
    a2 = lane(a2, pw, px, 16, false); a3 = lane(a3, pw, px, 16, true);
    a4 = lane(a4, pw, px, 32, false); a5 = lane(a5, pw, px, 32, true);
    a6 = lane(a6, pw, px, 48, false); a7 = lane(a7, pw, px, 48, true);
  }
  return reduce16(f32of(a0, a1), f32of(a2, a3), f32of(a4, a5), f32of(a6, a7));
}

/**
 * ggml_vec_dot_f32 of one weight row and one activation row: four sixteen-lane
 * accumulators sum[j] (elements 64i + 16j + l), each lane a chain of fused
 * multiply-adds; (sum[0] + sum[2]) + (sum[1] + sum[3]) lane by lane, then
 * _mm512_reduce_add_ps; the leftovers as GCC compiled them (the first
 * (n % 64) & ~7 multiply then add, the last n % 8 fused).
 */
function f32VecDot(w: usize, x: usize, n: i32): f32 {
  const np = n & ~63;
  // pass 1: sum[0] (a) and sum[2] (b); pass 2: sum[1] and sum[3], into the same accumulators
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
  for (let pass = 0; pass < 2; pass++) {
    const off: usize = pass == 0 ? 0 : 64; // byte offset of sum[0] / sum[1] in a 256-byte step
    let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
    let a4 = f64x2.splat(0), a5 = f64x2.splat(0), a6 = f64x2.splat(0), a7 = f64x2.splat(0);
    let b0 = f64x2.splat(0), b1 = f64x2.splat(0), b2 = f64x2.splat(0), b3 = f64x2.splat(0);
    let b4 = f64x2.splat(0), b5 = f64x2.splat(0), b6 = f64x2.splat(0), b7 = f64x2.splat(0);
    for (let i = 0; i < np; i += 64) {
      const pw = w + (<usize>i << 2) + off, px = x + (<usize>i << 2) + off;
      a0 = lane(a0, pw, px, 0, false); a1 = lane(a1, pw, px, 0, true);
      a2 = lane(a2, pw, px, 16, false); a3 = lane(a3, pw, px, 16, true);
      a4 = lane(a4, pw, px, 32, false); a5 = lane(a5, pw, px, 32, true);
      a6 = lane(a6, pw, px, 48, false); a7 = lane(a7, pw, px, 48, true);
      b0 = lane(b0, pw, px, 128, false); b1 = lane(b1, pw, px, 128, true);
      b2 = lane(b2, pw, px, 144, false); b3 = lane(b3, pw, px, 144, true);
      b4 = lane(b4, pw, px, 160, false); b5 = lane(b5, pw, px, 160, true);
      b6 = lane(b6, pw, px, 176, false); b7 = lane(b7, pw, px, 176, true);
    }
    // sum[j] + sum[j + 2], lane by lane
    const t0 = f32x4.add(f32of(a0, a1), f32of(b0, b1)), t1 = f32x4.add(f32of(a2, a3), f32of(b2, b3));
    const t2 = f32x4.add(f32of(a4, a5), f32of(b4, b5)), t3 = f32x4.add(f32of(a6, a7), f32of(b6, b7));
    if (pass == 0) { s0 = t0; s1 = t1; s2 = t2; s3 = t3; }
    else { s0 = f32x4.add(s0, t0); s1 = f32x4.add(s1, t1); s2 = f32x4.add(s2, t2); s3 = f32x4.add(s3, t3); }
  }
  let s = reduce16(s0, s1, s2, s3);
  const fusedFrom = np + ((n - np) & ~7);
  let i = np;
  for (; i < fusedFrom; i++) s += load<f32>(w + (<usize>i << 2)) * load<f32>(x + (<usize>i << 2));
  for (; i < n; i++) s = <f32>(<f64>load<f32>(w + (<usize>i << 2)) * <f64>load<f32>(x + (<usize>i << 2)) + <f64>s);
  return s;
}

/**
 * W (d rows of n f32) . x (T rows of n f32) -> out (T, d), rows [r0, r1).
 * T >= 2 with n % 16 == 0 and d % 4 == 0 is tinyBLAS, anything else vec_dot_f32.
 */
export function matmul_f32_ggml(out: usize, x: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>n << 2;
  const dBytes = <usize>d << 2;
  const gemm = T >= 2 && (n & 15) == 0 && (d & 3) == 0;
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * rowBytes;
    for (let t = 0; t < T; t++) {
      const xt = x + <usize>t * rowBytes;
      let s: f32;
      if (gemm) s = f32Tiny(wr, xt, n);
      else s = f32VecDot(wr, xt, n);
      store<f32>(out + <usize>t * dBytes + (<usize>r << 2), s);
    }
  }
}
