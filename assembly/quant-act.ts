// Activation quantizers: what llama.cpp's CPU backend does to the f32 input of
// a matmul before the integer dot products (ggml's vec_dot_type).
//   x: T rows of n f32 (row stride n floats); out: T rows of blocks.
import { absmax32, f32ToF16, roundToInt } from "./quant-util";
import { f16ToF32 } from "./math";

/**
 * roundToInt (quant-util.ts) with NaN lanes 0, as trunc_sat(nearest(v)) gives them. The quantizers' |x * id| is at most
 * 127 except where id is infinite (a block whose every |x| is below 127 / FLT_MAX): there trunc_sat's int32 extremes
 * and these values narrow to the same bytes (127 for +inf, -128 for -inf) and only the block's i32 sum differs, which
 * overflows either way and is multiplied by the block's d, 0 as an f16. magic: 0x4B400000 lanes.
 */
// @ts-ignore: decorator
@inline function nearestInt(v: v128, magic: v128): v128 {
  return v128.and(roundToInt(v, magic), f32x4.eq(v, v));
}

/** x*id rounded to nearest even, 16 floats at p -> 16 int8 at q; returns per-lane sums of the ints. */
// @ts-ignore: decorator
@inline function round16(q: usize, p: usize, id: v128, magic: v128): v128 {
  const i0 = nearestInt(f32x4.mul(v128.load(p), id), magic);
  const i1 = nearestInt(f32x4.mul(v128.load(p + 16), id), magic);
  const i2 = nearestInt(f32x4.mul(v128.load(p + 32), id), magic);
  const i3 = nearestInt(f32x4.mul(v128.load(p + 48), id), magic);
  v128.store(q, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(i0, i1), i16x8.narrow_i32x4_s(i2, i3)));
  return i32x4.add(i32x4.add(i0, i1), i32x4.add(i2, i3));
}

/**
 * Q8_0 blocks {f16 d; i8 qs[32]} as ggml's x86 quantize_row_q8_0:
 * d = amax/127, q = round_nearest_even(x * (127/amax)). n % 32 == 0.
 */
export function quantize_q8_0(out: usize, x: usize, n: i32, T: i32): void {
  const nb = n >> 5;
  // constants from an opaque zero (n >= 0): V8 keeps them in registers
  const z = <i32>(<u32>n >> 31), magic = i32x4.splat(0x4B400000 + z), abs = i32x4.splat(0x7fffffff + z);
  for (let t = 0; t < T; t++) {
    let p = x + (<usize>t * <usize>n << 2);
    let q = out + <usize>t * <usize>nb * 34;
    for (let b = 0; b < nb; b++, p += 128, q += 34) {
      const amax = absmax32(p, abs);
      store<u16>(q, <u16>f32ToF16(amax / 127.0));
      const id = f32x4.splat(amax != 0 ? <f32>127.0 / amax : 0);
      round16(q + 2, p, id, magic);
      round16(q + 18, p + 64, id, magic);
    }
  }
}

/**
 * Q8_S blocks {f32 d; i32 sum; i8 qs[32]}, kvasm's activations for Q4_0 and Q8_0 weights:
 * the same d (rounded to f16, then widened) and qs as quantize_q8_0, so every product and
 * sum the matmuls form is the same as over Q8_0 blocks. What it saves them, per block:
 * the f16 -> f32 conversion of d (one splat load instead), and for Q4_0 the activation
 * sum behind its -8 offset (one integer subtraction per four rows instead of two dot
 * products, an add and a shift). qs sits 8-byte aligned. n % 32 == 0.
 */
export function quantize_q8_s(out: usize, x: usize, n: i32, T: i32): void {
  const nb = n >> 5;
  // constants from an opaque zero (n >= 0): V8 keeps them in registers
  const z = <i32>(<u32>n >> 31), magic = i32x4.splat(0x4B400000 + z), abs = i32x4.splat(0x7fffffff + z);
  for (let t = 0; t < T; t++) {
    let p = x + (<usize>t * <usize>n << 2);
    let q = out + <usize>t * <usize>nb * 40;
    for (let b = 0; b < nb; b++, p += 128, q += 40) {
      const amax = absmax32(p, abs);
      store<u16>(q, <u16>f32ToF16(amax / 127.0)); // the f16 d, read back widened below
      // widened exactly, infinities and NaN included (f16() assumes a finite half: a block holding a NaN or an infinity
      // would get a finite d, and its zero values would hide the NaN from the matmul's output)
      store<f32>(q, f16ToF32(<u32>load<u16>(q)));
      const id = f32x4.splat(amax != 0 ? <f32>127.0 / amax : 0);
      const s = i32x4.add(round16(q + 8, p, id, magic), round16(q + 24, p + 64, id, magic));
      const t2 = i32x4.add(s, v128.shuffle<i32>(s, s, 2, 3, 0, 1));
      store<i32>(q + 4, i32x4.extract_lane(t2, 0) + i32x4.extract_lane(t2, 1));
    }
  }
}

/** Q8_1 blocks {f16 d; f16 s = d * sum(qs); i8 qs[32]} as ggml's x86 quantize_row_q8_1. */
export function quantize_q8_1(out: usize, x: usize, n: i32, T: i32): void {
  const nb = n >> 5;
  // constants from an opaque zero (n >= 0): V8 keeps them in registers
  const z = <i32>(<u32>n >> 31), magic = i32x4.splat(0x4B400000 + z), abs = i32x4.splat(0x7fffffff + z);
  for (let t = 0; t < T; t++) {
    let p = x + (<usize>t * <usize>n << 2);
    let q = out + <usize>t * <usize>nb * 36;
    for (let b = 0; b < nb; b++, p += 128, q += 36) {
      const amax = absmax32(p, abs);
      const d: f32 = amax / 127.0;
      store<u16>(q, <u16>f32ToF16(d));
      const id = f32x4.splat(amax != 0 ? <f32>127.0 / amax : 0);
      const s = i32x4.add(round16(q + 4, p, id, magic), round16(q + 20, p + 64, id, magic));
      const t2 = i32x4.add(s, v128.shuffle<i32>(s, s, 2, 3, 0, 1));
      const sum = i32x4.extract_lane(t2, 0) + i32x4.extract_lane(t2, 1);
      store<u16>(q + 2, <u16>f32ToF16(d * <f32>sum));
    }
  }
}

/**
 * One Q8_K block {f32 d; i8 qs[256]; i16 bsums[16]} at q from 256 floats at p, as ggml's
 * quantize_row_q8_K_ref: the signed value of largest magnitude maps to -127,
 * q = min(127, nearest_int(x * -127/max)). Returns the scale x -> q (0 for an all-zero
 * block, which gets d = 0, qs = 0 and bsums = 0).
 */
// @ts-ignore: decorator
@inline function q8kBlock(q: usize, p: usize, magic: v128): f32 {
  // amax over the block four lanes at a time (pmax keeps the running value where a lane is NaN, as `a > amax` does),
  // then mx, the first element of that magnitude: ggml's scalar search's result without its 256 compares and branches
  let m4 = f32x4.splat(0);
  for (let j: usize = 0; j < 1024; j += 16) m4 = f32x4.pmax(m4, f32x4.abs(v128.load(p + j)));
  const amax = max<f32>(max<f32>(f32x4.extract_lane(m4, 0), f32x4.extract_lane(m4, 1)), max<f32>(f32x4.extract_lane(m4, 2), f32x4.extract_lane(m4, 3)));
  if (amax == 0) {
    memory.fill(q, 0, 292);
    return 0;
  }
  const a4 = f32x4.splat(amax);
  let at = p;
  while (!v128.any_true(f32x4.eq(f32x4.abs(v128.load(at)), a4))) at += 16;
  while (abs<f32>(load<f32>(at)) != amax) at += 4;
  const mx = load<f32>(at);
  const iscale: f32 = <f32>-127.0 / mx;
  const vs = f32x4.splat(iscale);
  const top = i32x4.splat(127);
  for (let j: usize = 0; j < 16; j++) {
    const pp = p + (j << 6);
    const i0 = i32x4.min_s(nearestInt(f32x4.mul(v128.load(pp), vs), magic), top);
    const i1 = i32x4.min_s(nearestInt(f32x4.mul(v128.load(pp + 16), vs), magic), top);
    const i2 = i32x4.min_s(nearestInt(f32x4.mul(v128.load(pp + 32), vs), magic), top);
    const i3 = i32x4.min_s(nearestInt(f32x4.mul(v128.load(pp + 48), vs), magic), top);
    v128.store(q + 4 + (j << 4), i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(i0, i1), i16x8.narrow_i32x4_s(i2, i3)));
    const s = i32x4.add(i32x4.add(i0, i1), i32x4.add(i2, i3));
    const s2 = i32x4.add(s, v128.shuffle<i32>(s, s, 2, 3, 0, 1));
    store<i16>(q + 260 + (j << 1), <i16>(i32x4.extract_lane(s2, 0) + i32x4.extract_lane(s2, 1)));
  }
  store<f32>(q, <f32>1.0 / iscale);
  return iscale;
}

/** Q8_K blocks as ggml's quantize_row_q8_K_ref (q8kBlock). n % 256 == 0. */
export function quantize_q8_k(out: usize, x: usize, n: i32, T: i32): void {
  const nb = n >> 8;
  const magic = i32x4.splat(0x4B400000 + <i32>(<u32>n >> 31)); // from an opaque zero: V8 keeps it in a register
  for (let t = 0; t < T; t++) {
    let p = x + (<usize>t * <usize>n << 2);
    let q = out + <usize>t * <usize>nb * 292;
    for (let b = 0; b < nb; b++, p += 1024, q += 292) q8kBlock(q, p, magic);
  }
}

/**
 * Q8_K blocks whose 256 int8 are in this build's KX order (assembly/kquant-decode.ts, for
 * matmul_q6_kx): the same values, d and natural-order bsums as quantize_q8_k. Byte b of
 * chunk c (16 bytes) of half H holds element 128H + 16g + 2c + e, where (g, e) is
 * (b >> 1, b & 1) in the relaxed build and (b & 7, b >> 3) in the plain one.
 */
export function quantize_q8_kx(out: usize, x: usize, n: i32, T: i32): void {
  const nb = n >> 8;
  const magic = i32x4.splat(0x4B400000 + <i32>(<u32>n >> 31)); // from an opaque zero: V8 keeps it in a register
  for (let t = 0; t < T; t++) {
    let p = x + (<usize>t * <usize>n << 2);
    let q = out + <usize>t * <usize>nb * 292;
    for (let b = 0; b < nb; b++, p += 1024, q += 292) {
      const iscale = q8kBlock(q, p, magic);
      if (iscale == 0) continue;
      // the same rounding of the same floats, gathered in KX order
      const vs = f32x4.splat(iscale);
      const top = i32x4.splat(127);
      for (let c: usize = 0; c < 16; c++) {
        const h = p + ((c >> 3) << 9) + ((c & 7) << 3); // half c >> 3, elements 2c, 2c+1 of group 0
        let v0: v128, v1: v128, v2: v128, v3: v128;
        if (RELAXED) {
          // bytes 4i..4i+3: groups 2i, 2i+1, two elements each
          v0 = v128.load64_lane(h + 64, v128.load64_zero(h), 1);
          v1 = v128.load64_lane(h + 192, v128.load64_zero(h + 128), 1);
          v2 = v128.load64_lane(h + 320, v128.load64_zero(h + 256), 1);
          v3 = v128.load64_lane(h + 448, v128.load64_zero(h + 384), 1);
        } else {
          // bytes 0..7: groups 0..7, element 2c; bytes 8..15: element 2c + 1
          v0 = gather4(h, 0); v1 = gather4(h + 256, 0); v2 = gather4(h, 4); v3 = gather4(h + 256, 4);
        }
        const i0 = i32x4.min_s(nearestInt(f32x4.mul(v0, vs), magic), top);
        const i1 = i32x4.min_s(nearestInt(f32x4.mul(v1, vs), magic), top);
        const i2 = i32x4.min_s(nearestInt(f32x4.mul(v2, vs), magic), top);
        const i3 = i32x4.min_s(nearestInt(f32x4.mul(v3, vs), magic), top);
        v128.store(q + 4 + (c << 4), i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(i0, i1), i16x8.narrow_i32x4_s(i2, i3)));
      }
    }
  }
}

/** The floats at p + o, p + 64 + o, p + 128 + o, p + 192 + o (one element of four consecutive 16-element groups). */
// @ts-ignore: decorator
@inline function gather4(p: usize, o: usize): v128 {
  return f32x4.replace_lane(
    f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(p + o)), 1, load<f32>(p + 64 + o)), 2, load<f32>(p + 128 + o)),
    3,
    load<f32>(p + 192 + o),
  );
}

/** BF16, round to nearest even (NaN stays a quiet NaN), as ggml's GGML_FP32_TO_BF16. */
export function quantize_bf16(out: usize, x: usize, n: i32, T: i32): void {
  const total = <usize>n * <usize>T;
  let i: usize = 0;
  const one = i32x4.splat(1), bias = i32x4.splat(0x7fff), inf = i32x4.splat(0x7f800000), abs_ = i32x4.splat(0x7fffffff);
  for (; i + 8 <= total; i += 8) {
    const u0 = v128.load(x + (i << 2)), u1 = v128.load(x + (i << 2) + 16);
    const r0 = i32x4.shr_u(i32x4.add(u0, i32x4.add(bias, v128.and(i32x4.shr_u(u0, 16), one))), 16);
    const r1 = i32x4.shr_u(i32x4.add(u1, i32x4.add(bias, v128.and(i32x4.shr_u(u1, 16), one))), 16);
    const n0 = v128.or(i32x4.shr_u(u0, 16), i32x4.splat(64)), n1 = v128.or(i32x4.shr_u(u1, 16), i32x4.splat(64));
    const m0 = i32x4.gt_s(v128.and(u0, abs_), inf), m1 = i32x4.gt_s(v128.and(u1, abs_), inf);
    v128.store(out + (i << 1), i16x8.narrow_i32x4_u(v128.bitselect(n0, r0, m0), v128.bitselect(n1, r1, m1)));
  }
  for (; i < total; i++) {
    const u = load<u32>(x + (i << 2));
    const r = (u & 0x7fffffff) > 0x7f800000 ? (u >> 16) | 64 : (u + (0x7fff + ((u >> 16) & 1))) >> 16;
    store<u16>(out + (i << 1), <u16>r);
  }
}
