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
  return f16x4ToF32(i32x4.extend_low_i16x8_s(h));
}
// @ts-ignore: decorator
@inline export function f16x8Hi(h: v128): v128 {
  return f16x4ToF32(i32x4.extend_high_i16x8_s(h));
}

/**
 * Four halves, each sign-extended to an i32 lane (w), to f32. Times 2^13 puts exponent and mantissa at bits 13..27 (as
 * f32 bits: the value scaled by 2^-112) and smears the sign over bits 28..31, which the mask reduces to bit 31; the
 * multiply by 2^112 fixes the exponent and normalises subnormals, and is sign-symmetric, so the result has the bits
 * of (em << 13) x 2^112 with the sign or'd in (the two constant shifts this took before) for all 65536 halves, inf and
 * NaN patterns included (checked exhaustively, 2026-12-05). A multiply rather than shifts: JavaScriptCore lowers each
 * vector shift by a constant to four instructions (docs/cpu-performance.md, "Bun's quantized decode, measured").
 */
// @ts-ignore: decorator
@inline function f16x4ToF32(w: v128): v128 {
  return f32x4.mul(f16x4Scaled(w), f32x4.splat(reinterpret<f32>(0x77800000)));
}

/**
 * f16x4ToF32 without its last multiply: each half's value times 2^-112, exactly (bits (em << 13) with the sign:
 * a half subnormal lands on an f32 subnormal, nothing is rounded). Where the other factor of a product can take
 * the 2^112 exactly (attn-paged.ts: a softmax weight, or q below 2^16), the product is the same real number
 * and every rounding after it keeps its bits.
 */
// @ts-ignore: decorator
@inline export function f16x4Scaled(w: v128): v128 {
  return f16x4ScaledBy(w, i32x4.splat(8192), i32x4.splat(0x8FFFE000));
}

/** f16x4Scaled with its two constants given (i32x4 splats of 8192 and 0x8FFFE000), for loops that keep them in registers. */
// @ts-ignore: decorator
@inline export function f16x4ScaledBy(w: v128, k8192: v128, mask: v128): v128 {
  return v128.and(i32x4.mul(w, k8192), mask);
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

/** roundToF16 on four lanes, branch-free: the same three cases chosen by masks. */
// @ts-ignore: decorator
@inline export function roundToF16x4(x: v128): v128 {
  const sign = v128.and(x, i32x4.splat(0x80000000));
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const lsb = v128.and(i32x4.shr_u(a, 13), i32x4.splat(1));
  const normal = v128.and(i32x4.add(i32x4.add(a, i32x4.splat(0xfff)), lsb), i32x4.splat(0xffffe000));
  const half = f32x4.splat(0.5);
  const sub = f32x4.sub(f32x4.add(a, half), half);
  let r = v128.bitselect(sub, normal, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  r = v128.bitselect(i32x4.splat(0x7f800000), r, i32x4.ge_s(a, i32x4.splat(0x477ff000)));
  r = v128.bitselect(a, r, i32x4.ge_s(a, i32x4.splat(0x7f800000)));
  return v128.or(r, sign);
}

/**
 * glibc's __exp2f_data.tab[i] = bits(2^(i/32)) - (i << 47), i in 0..31, as f64 bit
 * patterns: adding k << 47 (k = 32 e + i) gives the bits of 2^(k/32). Five levels of
 * select on the index bits keep the table in code (no data segment) and branch-free:
 * a switch's br_table jump mispredicts on the random indices of a softmax (about 3x
 * slower there in V8).
 */
// @ts-ignore: decorator
@inline function exp2fTab(i: i32): u64 {
  const b0 = (i & 1) != 0;
  const b1 = (i & 2) != 0;
  const b2 = (i & 4) != 0;
  const b3 = (i & 8) != 0;
  const b4 = (i & 16) != 0;
  const t0_1 = select<f64>(reinterpret<f64>(0x3fefd9b0d3158574), reinterpret<f64>(0x3ff0000000000000), b0);
  const t2_3 = select<f64>(reinterpret<f64>(0x3fef9301d0125b51), reinterpret<f64>(0x3fefb5586cf9890f), b0);
  const t4_5 = select<f64>(reinterpret<f64>(0x3fef54873168b9aa), reinterpret<f64>(0x3fef72b83c7d517b), b0);
  const t6_7 = select<f64>(reinterpret<f64>(0x3fef1e9df51fdee1), reinterpret<f64>(0x3fef387a6e756238), b0);
  const t8_9 = select<f64>(reinterpret<f64>(0x3feef1a7373aa9cb), reinterpret<f64>(0x3fef06fe0a31b715), b0);
  const t10_11 = select<f64>(reinterpret<f64>(0x3feece086061892d), reinterpret<f64>(0x3feedea64c123422), b0);
  const t12_13 = select<f64>(reinterpret<f64>(0x3feeb42b569d4f82), reinterpret<f64>(0x3feebfdad5362a27), b0);
  const t14_15 = select<f64>(reinterpret<f64>(0x3feea47eb03a5585), reinterpret<f64>(0x3feeab07dd485429), b0);
  const t16_17 = select<f64>(reinterpret<f64>(0x3fee9f75e8ec5f74), reinterpret<f64>(0x3feea09e667f3bcd), b0);
  const t18_19 = select<f64>(reinterpret<f64>(0x3feea589994cce13), reinterpret<f64>(0x3feea11473eb0187), b0);
  const t20_21 = select<f64>(reinterpret<f64>(0x3feeb737b0cdc5e5), reinterpret<f64>(0x3feeace5422aa0db), b0);
  const t22_23 = select<f64>(reinterpret<f64>(0x3feed503b23e255d), reinterpret<f64>(0x3feec49182a3f090), b0);
  const t24_25 = select<f64>(reinterpret<f64>(0x3feeff76f2fb5e47), reinterpret<f64>(0x3feee89f995ad3ad), b0);
  const t26_27 = select<f64>(reinterpret<f64>(0x3fef3720dcef9069), reinterpret<f64>(0x3fef199bdd85529c), b0);
  const t28_29 = select<f64>(reinterpret<f64>(0x3fef7c97337b9b5f), reinterpret<f64>(0x3fef5818dcfba487), b0);
  const t30_31 = select<f64>(reinterpret<f64>(0x3fefd0765b6e4540), reinterpret<f64>(0x3fefa4afa2a490da), b0);
  const t0_3 = select<f64>(t2_3, t0_1, b1);
  const t4_7 = select<f64>(t6_7, t4_5, b1);
  const t8_11 = select<f64>(t10_11, t8_9, b1);
  const t12_15 = select<f64>(t14_15, t12_13, b1);
  const t16_19 = select<f64>(t18_19, t16_17, b1);
  const t20_23 = select<f64>(t22_23, t20_21, b1);
  const t24_27 = select<f64>(t26_27, t24_25, b1);
  const t28_31 = select<f64>(t30_31, t28_29, b1);
  const t0_7 = select<f64>(t4_7, t0_3, b2);
  const t8_15 = select<f64>(t12_15, t8_11, b2);
  const t16_23 = select<f64>(t20_23, t16_19, b2);
  const t24_31 = select<f64>(t28_31, t24_27, b2);
  const t0_15 = select<f64>(t8_15, t0_7, b3);
  const t16_31 = select<f64>(t24_31, t16_23, b3);
  return reinterpret<u64>(select<f64>(t16_31, t0_15, b4));
}

/**
 * The C library's expf as llama.cpp gets it on x86-64: glibc 2.36 e_expf.c in its
 * FMA build (__expf_fma), bit for bit, special cases included (NaN -> NaN,
 * -inf -> 0, x > 88.72 -> +inf, x < -103.97 -> 0, x in [-103.97, -103.28) -> 2^-149).
 *
 * x * 32/ln2 = k + r with integer k and |r| <= 1/2; e^x = 2^(k/32) * 2^(r/32), the
 * first factor from the table and the exponent bits, the second a cubic in r, all
 * in f64. The FMA build rounds k from the exact product x * 32/ln2 and gets r from
 * it with one rounding; here 32/ln2 is split (29 + 24 significant bits) so both
 * halves times the 24-bit x are exact, which reproduces those two steps exactly.
 * glibc's other fused steps (in the cubic) are plain here: they move the f64
 * result by about an ulp, which changes no f32 result: this function matches the
 * system's glibc 2.36 expf on all 2^32 inputs. (Taking k and r from the rounded
 * product, unfused, differs on 2 inputs.)
 */
// @ts-ignore: decorator
@inline export function expfGlibc(x: f32): f32 {
  const ix = reinterpret<u32>(x);
  const abstop = (ix >> 20) & 0x7ff;
  if (abstop >= 0x42b) {
    // |x| >= 88, inf or nan
    if (ix == 0xff800000) return 0;
    if (abstop >= 0x7f8) return x + x;
    if (x > reinterpret<f32>(0x42b17217)) return Infinity; // 88.72283: past ln(FLT_MAX)
    if (x < reinterpret<f32>(0xc2cff1b4)) return 0; // -103.97208: below ln(2^-150)
    if (x < reinterpret<f32>(0xc2ce8ecf)) return reinterpret<f32>(1); // -103.27892: glibc's may-underflow answer, 2^-149
  }
  const xd = <f64>x;
  // 32/ln2 = 0x1.71547652b82fep+5 = hi (29 bits) + lo (24 bits)
  const p1 = xd * reinterpret<f64>(0x4047154765000000);
  const p2 = xd * reinterpret<f64>(0x3e55c17f00000000);
  const zh = p1 + p2;
  const zl = p2 - (zh - p1); // exact error of zh: zh + zl = x * 32/ln2
  const shift = reinterpret<f64>(0x4338000000000000); // 1.5 * 2^52: adding it rounds to an integer, ties to even
  let kd = zh + shift - shift;
  // the exact product is never a half-integer, but zh can be: let zl break the tie
  const d = zh - kd;
  if (d == 0.5) {
    if (zl > 0) kd += 1;
  } else if (d == -0.5) {
    if (zl < 0) kd -= 1;
  }
  const r = zh - kd + zl; // zh - kd is exact: one rounding, as in the fused form
  const k = <i64><i32>kd;
  const s = reinterpret<f64>(exp2fTab(<i32>k & 31) + (<u64>k << 47));
  // 2^(r/32) ~ 1 + c2 r + c1 r^2 + c0 r^3 (poly_scaled)
  const z = reinterpret<f64>(0x3ebc6af84b912394) * r + reinterpret<f64>(0x3f2ebfce50fac4f3);
  const r2 = r * r;
  let y = reinterpret<f64>(0x3f962e42ff0c52d6) * r + 1.0;
  y = z * r2 + y;
  return <f32>(y * s);
}
