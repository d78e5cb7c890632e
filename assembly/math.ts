// Small numeric helpers shared by the kernels. All inline, no static data:
// AssemblyScript's own Mathf.exp reads a lookup table from a data segment,
// which every instantiation (one per worker) would rewrite into the shared memory.

/** Horizontal sum of the four lanes. */
// @ts-ignore: decorator
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, i32x4.shuffle(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** a * b + c: fused in the relaxed builds, separate multiply and add otherwise. */
// @ts-ignore: decorator
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (RELAXED) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/**
 * e^x for f32, about 1 ulp: x = k ln2 + r with |r| <= ln2/2, e^r by a degree-6
 * polynomial (Taylor coefficients are within 1 ulp on that interval), times 2^k
 * built in the exponent bits. Saturates to 0 and +inf outside the f32 range.
 */
// @ts-ignore: decorator
@inline export function expf(x: f32): f32 {
  if (x < -103.0) return 0;
  if (x > 88.72) return Infinity;
  const k: f32 = nearest<f32>(x * <f32>1.442695);
  // two-part ln2 keeps r exact to f32 precision
  const r = (x - k * <f32>0.693145751953125) - k * <f32>1.428606765330187e-6;
  let p: f32 = <f32>1.3888889e-3;
  p = p * r + <f32>8.3333333e-3;
  p = p * r + <f32>4.1666667e-2;
  p = p * r + <f32>0.16666667;
  p = p * r + <f32>0.5;
  p = p * r + <f32>1.0;
  p = p * r + <f32>1.0;
  const ki = <i32>k;
  // split 2^k in two factors so k down to -149 (subnormal results) stays exact
  const k1 = ki >> 1;
  const s1 = reinterpret<f32>((k1 + 127) << 23);
  const s2 = reinterpret<f32>((ki - k1 + 127) << 23);
  return p * s1 * s2;
}

/** Four lanes of expf (same polynomial and reduction). */
// @ts-ignore: decorator
@inline export function expf4(x: v128): v128 {
  let xc = f32x4.max(x, f32x4.splat(-87.0));
  xc = f32x4.min(xc, f32x4.splat(88.5));
  const k = f32x4.nearest(f32x4.mul(xc, f32x4.splat(1.4426950408889634)));
  let r = f32x4.sub(xc, f32x4.mul(k, f32x4.splat(0.693145751953125)));
  r = f32x4.sub(r, f32x4.mul(k, f32x4.splat(1.428606765330187e-6)));
  let p = f32x4.splat(1.3888889e-3);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3333333e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1666667e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.16666667));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(0.5));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.0));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(k), i32x4.splat(127)), 23);
  const y = f32x4.mul(p, scale);
  // below -87 the true value is < 2^-125: flush to zero (softmax weights, SiLU)
  return v128.andnot(y, f32x4.lt(x, f32x4.splat(-87.0)));
}

/** IEEE half (in the low 16 bits) to f32, exact, including subnormals, inf and NaN. */
// @ts-ignore: decorator
@inline export function f16ToF32(h: u32): f32 {
  const sign = (h & 0x8000) << 16;
  const em = h & 0x7fff;
  if (em >= 0x7c00) return reinterpret<f32>(sign | 0x7f800000 | ((em & 0x3ff) << 13));
  // (em << 13) as f32 is the value scaled by 2^-112; the multiply fixes the exponent and normalises subnormals
  return reinterpret<f32>(sign | reinterpret<u32>(reinterpret<f32>(em << 13) * reinterpret<f32>(0x77800000)));
}

/** Eight halves (one v128) to two f32x4: lanes 0-3 in lo, 4-7 in hi. Finite inputs only (weights). */
// @ts-ignore: decorator
@inline export function f16x8Lo(h: v128): v128 {
  const w = i32x4.extend_low_i16x8_u(h);
  return f16x4ToF32(w);
}
// @ts-ignore: decorator
@inline export function f16x8Hi(h: v128): v128 {
  const w = i32x4.extend_high_i16x8_u(h);
  return f16x4ToF32(w);
}
// @ts-ignore: decorator
@inline function f16x4ToF32(w: v128): v128 {
  const sign = i32x4.shl(v128.and(w, i32x4.splat(0x8000)), 16);
  const em = i32x4.shl(v128.and(w, i32x4.splat(0x7fff)), 13);
  const mag = f32x4.mul(em, f32x4.splat(reinterpret<f32>(0x77800000)));
  return v128.or(mag, sign);
}

/** Round f32 to the nearest IEEE half (ties to even) and return it as f32: what F16C's vcvtps2ph then vcvtph2ps gives. */
// @ts-ignore: decorator
@inline export function roundToF16(x: f32): f32 {
  const bits = reinterpret<u32>(x);
  const sign = bits & 0x80000000;
  const a = bits & 0x7fffffff;
  if (a >= 0x7f800000) return x; // inf, nan
  if (a >= 0x477ff000) return reinterpret<f32>(sign | 0x7f800000); // rounds past 65504: inf
  if (a < 0x38800000) {
    // half subnormal range: quantum 2^-24; adding and subtracting 2^-1 * 2^... rounds in f32 hardware
    const q = reinterpret<f32>(a) + <f32>0.5; // 0.5 has ulp 2^-24 in f32
    return reinterpret<f32>(sign | reinterpret<u32>(q - <f32>0.5));
  }
  // normal: drop 13 mantissa bits with round-to-nearest-even
  const lsb = (a >> 13) & 1;
  const r = (a + 0xfff + lsb) & 0xffffe000;
  return reinterpret<f32>(sign | r);
}
