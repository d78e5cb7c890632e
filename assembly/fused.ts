// x86 arithmetic as ggml's AVX-512 build computes it, for kernels that reproduce
// ggml's results bit for bit: fused multiply-add, ggml_v_expf, and the lane
// reductions GCC emits (hsum_float_8, _mm512_reduce_add_ps). WebAssembly has no fused f32 op (relaxed_madd may or
// may not fuse: V8 does on x86, JavaScriptCore does not), so a*b + c is formed
// in f64: the product of two f32 is exact there, the sum rounds once to f64
// and then to f32, which differs from one rounding only when the f64 sum lands
// exactly on an f32 halfway point (the 29 extra bits make that vanishingly rare).

import { hsum } from "./math";

/** fma(a, b, c) on four f32 lanes. */
// @ts-ignore: decorator
@inline export function fma4(a: v128, b: v128, c: v128): v128 {
  const lo = f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(a), f64x2.promote_low_f32x4(b)), f64x2.promote_low_f32x4(c));
  const ah = i32x4.shuffle(a, a, 2, 3, 2, 3), bh = i32x4.shuffle(b, b, 2, 3, 2, 3), ch = i32x4.shuffle(c, c, 2, 3, 2, 3);
  const hi = f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(ah), f64x2.promote_low_f32x4(bh)), f64x2.promote_low_f32x4(ch));
  return i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/** fma(a, b, c) for one f32. */
// @ts-ignore: decorator
@inline export function fmaf(a: f32, b: f32, c: f32): f32 {
  return <f32>(<f64>a * <f64>b + <f64>c);
}

/**
 * ggml_v_expf of ggml's AVX-512 build, four lanes: e^x = 2^n * j(b) with
 * n = round(x / ln 2) by the 1.5 * 2^23 shift, b = x - n ln 2 in two fused
 * steps, j a degree-5 polynomial in fused Estrin form, then scalef (one
 * rounding, subnormal results included); |n| > 192 gives 0 or +inf.
 */
// @ts-ignore: decorator
@inline export function ggmlExpf4(x: v128): v128 {
  const r = f32x4.splat(12582912.0); // 0x1.8p23
  const z = fma4(x, f32x4.splat(reinterpret<f32>(0x3fb8aa3b)), r); // 0x1.715476p+0
  const n = f32x4.sub(z, r);
  const negN = f32x4.neg(n);
  const b = fma4(negN, f32x4.splat(reinterpret<f32>(0x35bfbe8e)), fma4(negN, f32x4.splat(reinterpret<f32>(0x3f317200)), x)); // 0x1.7f7d1cp-20, 0x1.62e4p-1
  const u = f32x4.mul(b, b);
  const j = fma4(
    fma4(fma4(f32x4.splat(reinterpret<f32>(0x3c072010)), b, f32x4.splat(reinterpret<f32>(0x3d2b9f17))), u, fma4(f32x4.splat(reinterpret<f32>(0x3e2aaf33)), b, f32x4.splat(reinterpret<f32>(0x3efffedb)))),
    u,
    fma4(f32x4.splat(reinterpret<f32>(0x3f7ffff6)), b, f32x4.splat(1.0)),
  );
  // scalef(j, n) = j * 2^n rounded once: 2^n is exact in f64 for |n| <= 192 (n is an integer here)
  const nI = i32x4.trunc_sat_f32x4_s(n);
  const e = i32x4.add(nI, i32x4.splat(1023));
  const p2lo = i64x2.shl(i64x2.extend_low_i32x4_s(e), 52), p2hi = i64x2.shl(i64x2.extend_high_i32x4_s(e), 52);
  const jh = i32x4.shuffle(j, j, 2, 3, 2, 3);
  const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(j), p2lo));
  const hi = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(jh), p2hi));
  const res = i32x4.shuffle(lo, hi, 0, 1, 4, 5);
  const big = f32x4.gt(f32x4.abs(n), f32x4.splat(192));
  const alt = v128.andnot(f32x4.splat(Infinity), f32x4.le(n, f32x4.splat(0)));
  return v128.bitselect(alt, res, big);
}

/**
 * Two of an output's eight f32 lanes after one more block, the lanes kept in
 * f64 between blocks (each value stays an f32): acc = f32(d * q + acc), the
 * fused multiply-add, since d (an f32) times the block's integer dot q (at
 * most 24 bits here) is exact in f64.
 */
// @ts-ignore: decorator
@inline export function fmaLanes(acc: v128, d: v128, q: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(f64x2.add(f64x2.mul(d, f64x2.convert_low_i32x4_s(q)), acc)));
}

/** hsum_float_8 of lanes a (0,1), b (2,3), c (4,5), e (6,7): the upper four onto the lower, lanes 2,3 onto 0,1, lane 1 onto 0. */
// @ts-ignore: decorator
@inline export function hsum8(a: v128, b: v128, c: v128, e: v128): f32 {
  const r0 = <f32>f64x2.extract_lane(c, 0) + <f32>f64x2.extract_lane(a, 0);
  const r1 = <f32>f64x2.extract_lane(c, 1) + <f32>f64x2.extract_lane(a, 1);
  const r2 = <f32>f64x2.extract_lane(e, 0) + <f32>f64x2.extract_lane(b, 0);
  const r3 = <f32>f64x2.extract_lane(e, 1) + <f32>f64x2.extract_lane(b, 1);
  return (r0 + r2) + (r1 + r3);
}

/**
 * GCC's _mm512_reduce_add_ps of sixteen f32 lanes a (0-3), b (4-7), c (8-11),
 * e (12-15): lanes 8-15 onto 0-7, 4-7 onto 0-3, then 2,3 onto 0,1 and 1 onto 0.
 */
// @ts-ignore: decorator
@inline export function reduce16(a: v128, b: v128, c: v128, e: v128): f32 {
  return hsum(f32x4.add(f32x4.add(e, b), f32x4.add(c, a)));
}
