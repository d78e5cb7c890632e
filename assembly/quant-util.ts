// Helpers shared by the quantized kernels: half-precision scales, horizontal
// reductions, and the int8 dot product in its two builds (relaxed and plain).

// 2^112 and 2^-110 as f32 bit patterns.
// @ts-ignore: decorator
@inline const P112: u32 = 0x77800000;
// @ts-ignore: decorator
@inline const M110: u32 = 0x08800000;

/** f16 at p to f32 (exact for normal and subnormal values; ggml scales are never inf/NaN). */
// @ts-ignore: decorator
@inline export function f16(p: usize): f32 {
  const h = <u32>load<u16>(p);
  return reinterpret<f32>(((h & 0x8000) << 16) | ((h & 0x7fff) << 13)) * reinterpret<f32>(P112);
}

/**
 * Four f16 values (one per pointer) as f32x4; mask = splat(0x8FFFE000), p112 = splat(2^112).
 * Each f16 goes into the high half of its i32 lane, so one arithmetic shift by 3
 * puts exponent and mantissa where f32 has them (the sign is smeared into the
 * three bits below it, which the mask clears): 3 ops instead of 5, one constant fewer.
 */
// @ts-ignore: decorator
@inline export function f16x4(p0: usize, p1: usize, p2: usize, p3: usize, mask: v128, p112: v128): v128 {
  let v = i32x4.splat(0);
  v = v128.load16_lane(p0, v, 1);
  v = v128.load16_lane(p1, v, 3);
  v = v128.load16_lane(p2, v, 5);
  v = v128.load16_lane(p3, v, 7);
  return f32x4.mul(v128.and(i32x4.shr_s(v, 3), mask), p112);
}

/**
 * Four consecutive f16 at p (a quad of rows' scales in the lanes layouts) as f32x4: f16x4's conversion, so the
 * same values (each f16 widened and shifted into the high half of its lane, not interleaved with zeros: JavaScriptCore
 * lowers two-input shuffles poorly). hmask and p112 as f16x4's mask and p112.
 */
// @ts-ignore: decorator
@inline export function f16quad(p: usize, hmask: v128, p112: v128): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, 3), hmask), p112);
}

/**
 * f16quad without its two constant shifts, for JavaScriptCore (which lowers a vector shift by a constant to four
 * instructions: a mov, and, movq, then the shift by register; a multiply to one): each f16 sign-extended to i32 times
 * 2^13 (k8192) holds exponent and mantissa at bits 13..27 and the sign in bits 28..31, which hmask reduces to bit 31,
 * so the same bits as f16quad. In V8 it runs no faster (pmulld).
 */
// @ts-ignore: decorator
@inline export function f16quadMul(p: usize, hmask: v128, p112: v128, k8192: v128): v128 {
  return f32x4.mul(v128.and(i32x4.mul(i32x4.extend_low_i16x8_s(v128.load64_zero(p)), k8192), hmask), p112);
}

/**
 * One block's f32 term in the lanes kernels, lane r for row r: (dw * da) * f32(isum), in that order (ggml's
 * per-block product, d_w * d_a first), so every kernel that spells its blocks through here keeps the natural
 * kernels' bits. K-quants subtract their mins' term (dmin_w, msum) the same way.
 */
// @ts-ignore: decorator
@inline export function blockTerm(dw: v128, da: v128, isum: v128): v128 {
  return f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(isum));
}

/**
 * acc + blockTerm(dw, da, isum): the per-block f32 tail of every lanes step (Q8_0 signed, nibble and VNNI; Q4_0;
 * Q6_K). The accumulators are locals and AssemblyScript has no multi-value return, so each lane's add is one call
 * (`a0 = blockAdd(a0, ...)`) and the pointer steps stay in the loops; the f32 operations and their order are the ones
 * each kernel spelled out before.
 */
// @ts-ignore: decorator
@inline export function blockAdd(acc: v128, dw: v128, da: v128, isum: v128): v128 {
  return f32x4.add(acc, blockTerm(dw, da, isum));
}

/** f32 to f16 bits, round to nearest even (ggml's GGML_FP32_TO_FP16 without F16C, same results as F16C). */
export function f32ToF16(f: f32): u32 {
  let base = (abs<f32>(f) * reinterpret<f32>(P112)) * reinterpret<f32>(M110);
  const w = reinterpret<u32>(f);
  const shl1w = w + w;
  const sign = w & 0x80000000;
  let bias = shl1w & 0xFF000000;
  if (bias < 0x71000000) bias = 0x71000000;
  base = reinterpret<f32>((bias >> 1) + 0x07800000) + base;
  const bits = reinterpret<u32>(base);
  const nonsign = ((bits >> 13) & 0x7C00) + (bits & 0x0FFF);
  return (sign >> 16) | (shl1w > 0xFF000000 ? 0x7E00 : nonsign);
}

/** [sum(s0), sum(s1), sum(s2), sum(s3)] of four i32x4 vectors (exact integer adds). */
// @ts-ignore: decorator
@inline export function reduce4i(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t0 = i32x4.add(v128.shuffle<i32>(s0, s1, 0, 4, 1, 5), v128.shuffle<i32>(s0, s1, 2, 6, 3, 7));
  const t1 = i32x4.add(v128.shuffle<i32>(s2, s3, 0, 4, 1, 5), v128.shuffle<i32>(s2, s3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(t0, t1, 0, 1, 4, 5), v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
}

/**
 * reduce4i for vectors whose lanes, and every sum of them, fit i16 (Q4_0's
 * block sums: every lane holds the exact sum of a subset of the block's 32
 * (q - 8) * a, and 32 * 8 * 127 < 2^15): narrow to i16 (never saturates here)
 * and add neighbours with pmaddwd. Same exact sums as reduce4i, but no
 * two-input shuffles, which JavaScriptCore lowers poorly (Bun: about 25% of
 * Q4_0's decode time went to reduce4i).
 */
// @ts-ignore: decorator
@inline export function reduce4i16(s0: v128, s1: v128, s2: v128, s3: v128, ones16: v128): v128 {
  const a = i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(s0, s1), ones16); // [s0 pair sums, s1 pair sums]
  const b = i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(s2, s3), ones16);
  return i32x4.dot_i16x8_s(i16x8.narrow_i32x4_s(a, b), ones16);
}

/** Same for f32x4. */
// @ts-ignore: decorator
@inline export function reduce4f(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t0 = f32x4.add(v128.shuffle<f32>(s0, s1, 0, 4, 1, 5), v128.shuffle<f32>(s0, s1, 2, 6, 3, 7));
  const t1 = f32x4.add(v128.shuffle<f32>(s2, s3, 0, 4, 1, 5), v128.shuffle<f32>(s2, s3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(t0, t1, 0, 1, 4, 5), v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
}

/**
 * Partial sums of u[i]*a[i] over 16 bytes as i16x8: u unsigned 0..127, a signed
 * int8 (-127..127), two products per lane, so |lane| <= 2*127*127 fits i16.
 * Relaxed: one pmaddubsw (the i32 variant adds a pmaddwd with a ones vector
 * that V8 rebuilds at every use); callers widen once per block with
 * i32x4.dot_i16x8_s, which also applies an integer scale for free.
 * The lanes pair different elements in the two builds (2i,2i+1 vs i,i+8),
 * but only the total over all lanes is ever used, so the integers agree.
 */
// @ts-ignore: decorator
@inline export function dot16(u: v128, a: v128): v128 {
  if (RELAXED) return i16x8.relaxed_dot_i8x16_i7x16_s(a, u);
  return i16x8.add(
    i16x8.mul(i16x8.extend_low_i8x16_u(u), i16x8.extend_low_i8x16_s(a)),
    i16x8.mul(i16x8.extend_high_i8x16_u(u), i16x8.extend_high_i8x16_s(a)),
  );
}

/** Horizontal sum of an i32x4. */
// @ts-ignore: decorator
@inline export function hsumi(v: v128): i32 {
  const t = i32x4.add(v, v128.shuffle<i32>(v, v, 2, 3, 0, 1));
  return i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1);
}

// Q3_K's 16 six-bit scales from 12 bytes (ggml's kmask trick); byte s of the result is scale s + 32.
// @ts-ignore: decorator
@inline export function q3kScalesLo(p: usize): u64 {
  const a0 = load<u32>(p), a1 = load<u32>(p + 4), tmp = load<u32>(p + 8);
  const r0 = (a0 & 0x0f0f0f0f) | (((tmp >> 0) & 0x03030303) << 4);
  const r1 = (a1 & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
  return <u64>r0 | (<u64>r1 << 32);
}
// @ts-ignore: decorator
@inline export function q3kScalesHi(p: usize): u64 {
  const a0 = load<u32>(p), a1 = load<u32>(p + 4), tmp = load<u32>(p + 8);
  const r2 = ((a0 >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
  const r3 = ((a1 >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
  return <u64>r2 | (<u64>r3 << 32);
}

/**
 * The largest |x| of 32 floats at p, for the activation quantizers (quant-act.ts, lanes-q8_0-nib.ts): the integer
 * maximum of their bits with the sign cleared. For non-negative floats the integer order is the float order, and a
 * NaN's bits exceed +inf's, so a block holding a NaN gives a NaN (its q all 0, its d the f16 NaN 0x7E00; f32x4.max
 * gave V8's negative NaN there, so d's sign differed between V8 and JavaScriptCore: now the same in both). f32x4.max
 * costs both engines several instructions for its NaN and -0 rules (the old form: 14.7 against 2.4 ns a block in Deno,
 * 22.7 against 1.6 in Bun, 2026-12-05 21:25 UTC). abs: splat(0x7fffffff), from the caller's opaque zero.
 */
// @ts-ignore: decorator
@inline export function absmax32(p: usize, abs: v128): f32 {
  let m0 = v128.and(v128.load(p), abs), m1 = v128.and(v128.load(p + 16), abs);
  m0 = i32x4.max_u(m0, v128.and(v128.load(p + 32), abs));
  m1 = i32x4.max_u(m1, v128.and(v128.load(p + 48), abs));
  m0 = i32x4.max_u(m0, v128.and(v128.load(p + 64), abs));
  m1 = i32x4.max_u(m1, v128.and(v128.load(p + 80), abs));
  m0 = i32x4.max_u(m0, v128.and(v128.load(p + 96), abs));
  m1 = i32x4.max_u(m1, v128.and(v128.load(p + 112), abs));
  let m = i32x4.max_u(m0, m1);
  m = i32x4.max_u(m, v128.shuffle<i32>(m, m, 2, 3, 0, 1));
  m = i32x4.max_u(m, v128.shuffle<i32>(m, m, 1, 0, 3, 2));
  return f32x4.extract_lane(m, 0);
}

/**
 * v rounded to the nearest integer (ties to even, as f32x4.nearest), as i32 lanes, for |v| < 2^22: v + 1.5 * 2^23 holds
 * that integer in the sum's low mantissa bits, and subtracting the constant's bits leaves it. One add and one subtract
 * where trunc_sat(nearest(v)) costs about eight instructions in V8 on x86 (trunc_sat's NaN and overflow fix-ups). NaN
 * lanes are left to the caller (quant-act.ts nearestInt masks them). magic: 0x4B400000 lanes (12582912.0 as f32).
 */
// @ts-ignore: decorator
@inline export function roundToInt(v: v128, magic: v128): v128 {
  return i32x4.sub(f32x4.add(v, magic), magic);
}
