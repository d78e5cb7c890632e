// Q4_0, Q4_K and Q2_K weights in the float order of llama.cpp's x86 build,
// which repacks every matmul weight of these types with a row count divisible
// by 8 (ggml_repack_get_optimal_repack_type: q4_0_8x8, q4_K_8x8, q2_K_8x8) and
// then multiplies with ggml-cpu/arch/x86/repack.cpp, not with vec_dot or
// tinyBLAS. forward_mul_mat quantizes the T activation rows in groups of four
// (ggml_quantize_mat_q8_*_4x8: interleaved, same values as the plain Q8_0 /
// Q8_K rows kvasm hands in, bsums included) and runs gemm on the first
// T - T % 4 rows when T > 3, gemv on the rest. Each output keeps one f32
// accumulator (two for the K-quants: d and dmin, subtracted at the end) that
// takes one fused multiply-add per step of an exact integer sum:
//
//   Q4_0  gemv and gemm: per 32-block     acc = fma(f32(Σ (q-8) a), d_w * d_a, acc)
//   Q4_K  gemv: per superblock, gemm: per 64 elements (sub-blocks 2c, 2c+1)
//         acc = fma(f32(Σ sc_j dot_j), d_w * d_a, acc); accm = fma(f32(Σ m_j bsum_j), dmin_w * d_a, accm)
//   Q2_K  gemv: per superblock, gemm: per 128 elements (16-sub-blocks 8h..8h+7), as Q4_K
//   out = acc - accm
//
// The AVX-512 and AVX2 paths of each gemm (taken by column count) sum the
// same way, so results do not depend on llama.cpp's threads or chunks, nor on
// r0/r1 here. Integer sums are exact in every build (the i16 partials never
// overflow); fused multiply-adds are emulated in f64 (see fused.ts).
// Weights llama.cpp would not repack (d % 8 != 0) take the type's vec_dot order.

import { f16, f16x4, reduce4i, reduce4i16, dot16 } from "./quant-util";
import { fma4 } from "./fused";
import { matmul_q4_0_vecdot_ggml } from "./legacy-ggml";
import { matmul_q4_k_vecdot_ggml, matmul_q2_k_vecdot_ggml } from "./kquant-ggml";
import { Q4_0, Q2_K, Q4_K, Q2_K_BYTES, Q4_0_BYTES, Q4_K_BYTES, Q8_0_BYTES, Q8_K_BYTES } from "./ggml-common";

// @ts-ignore: decorator
@inline const Q8K: usize = Q8_K_BYTES; // f32 d, 256 int8, 16 i16 bsums
// @ts-ignore: decorator
@inline const Q8_0B: usize = Q8_0_BYTES; // f16 d, 32 int8
// @ts-ignore: decorator
@inline const Q4KB: usize = Q4_K_BYTES; // f16 d, f16 dmin, 12 bytes of scales, 128 bytes of nibbles
// @ts-ignore: decorator
@inline const Q2KB: usize = Q2_K_BYTES; // 16 bytes of scales (scale | min << 4), 64 bytes of 2-bit values, f16 d, f16 dmin
// @ts-ignore: decorator
@inline const Q4_0B: usize = Q4_0_BYTES; // f16 d, 16 bytes of nibbles

// @ts-ignore: decorator
@inline const GEMV = 0; // four weight rows, one activation row (lanes: rows)
// @ts-ignore: decorator
@inline const GEMM = 1; // one weight row, four activation rows (lanes: activation rows)

/** [a[k], b[k], c[k], e[k]]: column k (a constant) of the 4x4 matrix with rows a, b, c, e. */
// @ts-ignore: decorator
@inline function col(a: v128, b: v128, c: v128, e: v128, k: i32): v128 {
  const lo = k < 2;
  const t0 = lo ? i32x4.shuffle(a, b, 0, 4, 1, 5) : i32x4.shuffle(a, b, 2, 6, 3, 7);
  const t1 = lo ? i32x4.shuffle(c, e, 0, 4, 1, 5) : i32x4.shuffle(c, e, 2, 6, 3, 7);
  return (k & 1) == 0 ? i32x4.shuffle(t0, t1, 0, 1, 4, 5) : i32x4.shuffle(t0, t1, 2, 3, 6, 7);
}

/** Four Q8_K d's (f32) as f32x4. */
// @ts-ignore: decorator
@inline function da4(q0: usize, q1: usize, q2: usize, q3: usize): v128 {
  return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(q0)), 1, load<f32>(q1)), 2, load<f32>(q2)), 3, load<f32>(q3));
}

// ---------------------------------------------------------------- Q4_K

/** Q4_K's 8 six-bit scales (lo) and mins (hi) as u64s of bytes. */
// @ts-ignore: decorator
@inline function q4kScales(p: usize): u64 {
  const u0 = load<u32>(p + 4), u2 = load<u32>(p + 12);
  const s1 = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
  return <u64>(u0 & 0x3f3f3f3f) | (<u64>s1 << 32);
}
// @ts-ignore: decorator
@inline function q4kMins(p: usize): u64 {
  const u0 = load<u32>(p + 8), u2 = load<u32>(p + 12);
  const m1 = ((u2 >> 4) & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
  return <u64>(u0 & 0x3f3f3f3f) | (<u64>m1 << 32);
}

/**
 * Integer sum (as i32x4 partials) of one Q4_K row's 64 elements 64c..64c+63
 * (sub-blocks 2c, 2c+1: low and high nibbles of the same 32 bytes) against
 * activations x (the Q8_K block's int8 values at 64c): sc_2c dot + sc_2c+1 dot.
 */
// @ts-ignore: decorator
@inline function q4kChunk(lo0: v128, lo1: v128, hi0: v128, hi1: v128, x: usize, c0: v128, c1: v128): v128 {
  const pl = i16x8.add(dot16(lo0, v128.load(x)), dot16(lo1, v128.load(x, 16)));
  const ph = i16x8.add(dot16(hi0, v128.load(x, 32)), dot16(hi1, v128.load(x, 48)));
  return i32x4.add(i32x4.dot_i16x8_s(pl, c0), i32x4.dot_i16x8_s(ph, c1));
}

/** Σ_j m_j * (bsum_2j + bsum_2j+1) per pair of sub-blocks: [chunk 0, 1, 2, 3] of one (row, activation) pair. */
// @ts-ignore: decorator
@inline function q4kMinChunks(mins16: v128, q: usize): v128 {
  const b = i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(v128.load(q + 260)), i32x4.extadd_pairwise_i16x8_s(v128.load(q + 276)));
  return i32x4.dot_i16x8_s(mins16, b); // |bsum pair| <= 32 * 127: the narrowing is exact
}

/** gemm's fused step for chunk c of one weight row (p) and four activation rows. */
// @ts-ignore: decorator
@inline function q4kGemmStep(acc: v128, s: v128, p: usize, sc: u64, c: i32, q0: usize, q1: usize, q2: usize, q3: usize, m4: v128): v128 {
  const w0 = v128.load(p + 16 + (<usize>c << 5)), w1 = v128.load(p + 32 + (<usize>c << 5));
  const lo0 = v128.and(w0, m4), lo1 = v128.and(w1, m4);
  const hi0 = v128.and(i16x8.shr_u(w0, 4), m4), hi1 = v128.and(i16x8.shr_u(w1, 4), m4);
  const c0 = i16x8.splat(<i16>((sc >> (<u64>c << 4)) & 0xff)), c1 = i16x8.splat(<i16>((sc >> ((<u64>c << 4) + 8)) & 0xff));
  const xo: usize = 4 + (<usize>c << 6);
  const isum = reduce4i(
    q4kChunk(lo0, lo1, hi0, hi1, q0 + xo, c0, c1), q4kChunk(lo0, lo1, hi0, hi1, q1 + xo, c0, c1),
    q4kChunk(lo0, lo1, hi0, hi1, q2 + xo, c0, c1), q4kChunk(lo0, lo1, hi0, hi1, q3 + xo, c0, c1),
  );
  return fma4(f32x4.convert_i32x4_s(isum), s, acc);
}

/** gemm: weight row p against activation rows q0..q3 (lanes), nb superblocks; returns acc - accm. */
// @ts-ignore: decorator
@inline function q4kGemm(p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, m4: v128): v128 {
  let acc = f32x4.splat(0), accm = acc;
  for (let b = 0; b < nb; b++) {
    const da = da4(q0, q1, q2, q3);
    const s = f32x4.mul(f32x4.splat(f16(p)), da), sm = f32x4.mul(f32x4.splat(f16(p + 2)), da);
    const sc = q4kScales(p);
    const mins16 = i16x8.extend_low_i8x16_u(i64x2.splat(q4kMins(p)));
    const n0 = q4kMinChunks(mins16, q0), n1 = q4kMinChunks(mins16, q1), n2 = q4kMinChunks(mins16, q2), n3 = q4kMinChunks(mins16, q3);
    // the four 64-element chunks, unrolled so that the transpose's shuffles are constant
    acc = q4kGemmStep(acc, s, p, sc, 0, q0, q1, q2, q3, m4);
    accm = fma4(f32x4.convert_i32x4_s(col(n0, n1, n2, n3, 0)), sm, accm);
    acc = q4kGemmStep(acc, s, p, sc, 1, q0, q1, q2, q3, m4);
    accm = fma4(f32x4.convert_i32x4_s(col(n0, n1, n2, n3, 1)), sm, accm);
    acc = q4kGemmStep(acc, s, p, sc, 2, q0, q1, q2, q3, m4);
    accm = fma4(f32x4.convert_i32x4_s(col(n0, n1, n2, n3, 2)), sm, accm);
    acc = q4kGemmStep(acc, s, p, sc, 3, q0, q1, q2, q3, m4);
    accm = fma4(f32x4.convert_i32x4_s(col(n0, n1, n2, n3, 3)), sm, accm);
    p += Q4KB; q0 += Q8K; q1 += Q8K; q2 += Q8K; q3 += Q8K;
  }
  return f32x4.sub(acc, accm);
}

/** One Q4_K row's integer sum over a whole superblock against activation block q, as i32x4 partials. */
// @ts-ignore: decorator
@inline function q4kBlock(p: usize, q: usize, m4: v128): v128 {
  const sc = q4kScales(p);
  let s = i32x4.splat(0);
  for (let c = 0; c < 4; c++) {
    const w0 = v128.load(p + 16 + (<usize>c << 5)), w1 = v128.load(p + 32 + (<usize>c << 5));
    const c0 = i16x8.splat(<i16>((sc >> (<u64>c << 4)) & 0xff)), c1 = i16x8.splat(<i16>((sc >> ((<u64>c << 4) + 8)) & 0xff));
    s = i32x4.add(s, q4kChunk(v128.and(w0, m4), v128.and(w1, m4), v128.and(i16x8.shr_u(w0, 4), m4), v128.and(i16x8.shr_u(w1, 4), m4), q + 4 + (<usize>c << 6), c0, c1));
  }
  return s;
}

/** gemv: weight rows p0..p3 (lanes) against activation row q, nb superblocks. */
// @ts-ignore: decorator
@inline function q4kGemv(p0: usize, p1: usize, p2: usize, p3: usize, q: usize, nb: i32, m4: v128, hmask: v128, p112: v128): v128 {
  let acc = f32x4.splat(0), accm = acc;
  for (let b = 0; b < nb; b++) {
    const da = f32x4.splat(load<f32>(q));
    const s = f32x4.mul(f16x4(p0, p1, p2, p3, hmask, p112), da);
    const sm = f32x4.mul(f16x4(p0 + 2, p1 + 2, p2 + 2, p3 + 2, hmask, p112), da);
    const isum = reduce4i(q4kBlock(p0, q, m4), q4kBlock(p1, q, m4), q4kBlock(p2, q, m4), q4kBlock(p3, q, m4));
    const bs = i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(v128.load(q + 260)), i32x4.extadd_pairwise_i16x8_s(v128.load(q + 276)));
    const imin = reduce4i(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(i64x2.splat(q4kMins(p0))), bs),
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(i64x2.splat(q4kMins(p1))), bs),
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(i64x2.splat(q4kMins(p2))), bs),
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(i64x2.splat(q4kMins(p3))), bs),
    );
    acc = fma4(f32x4.convert_i32x4_s(isum), s, acc);
    accm = fma4(f32x4.convert_i32x4_s(imin), sm, accm);
    p0 += Q4KB; p1 += Q4KB; p2 += Q4KB; p3 += Q4KB; q += Q8K;
  }
  return f32x4.sub(acc, accm);
}

// ---------------------------------------------------------------- Q2_K

/**
 * One Q2_K row's integer sum over the 128-element half h (16-element
 * sub-blocks 8h..8h+7) against activation block q, as i32x4 partials. Byte l
 * of the 32 at 16 + 32h holds elements 128h + 32s + l at bits 2s.
 */
// @ts-ignore: decorator
@inline function q2kHalf(p: usize, h: i32, q: usize, m3: v128): v128 {
  const b0 = v128.load(p + 16 + (<usize>h << 5)), b1 = v128.load(p + 32 + (<usize>h << 5));
  const x = q + 4 + (<usize>h << 7);
  const sc = p + (<usize>h << 3);
  let s = i32x4.dot_i16x8_s(dot16(v128.and(b0, m3), v128.load(x)), i16x8.splat(<i16>(load<u8>(sc) & 15)));
  s = i32x4.add(s, i32x4.dot_i16x8_s(dot16(v128.and(b1, m3), v128.load(x, 16)), i16x8.splat(<i16>(load<u8>(sc, 1) & 15))));
  s = i32x4.add(s, i32x4.dot_i16x8_s(dot16(v128.and(i16x8.shr_u(b0, 2), m3), v128.load(x, 32)), i16x8.splat(<i16>(load<u8>(sc, 2) & 15))));
  s = i32x4.add(s, i32x4.dot_i16x8_s(dot16(v128.and(i16x8.shr_u(b1, 2), m3), v128.load(x, 48)), i16x8.splat(<i16>(load<u8>(sc, 3) & 15))));
  s = i32x4.add(s, i32x4.dot_i16x8_s(dot16(v128.and(i16x8.shr_u(b0, 4), m3), v128.load(x, 64)), i16x8.splat(<i16>(load<u8>(sc, 4) & 15))));
  s = i32x4.add(s, i32x4.dot_i16x8_s(dot16(v128.and(i16x8.shr_u(b1, 4), m3), v128.load(x, 80)), i16x8.splat(<i16>(load<u8>(sc, 5) & 15))));
  s = i32x4.add(s, i32x4.dot_i16x8_s(dot16(v128.and(i16x8.shr_u(b0, 6), m3), v128.load(x, 96)), i16x8.splat(<i16>(load<u8>(sc, 6) & 15))));
  s = i32x4.add(s, i32x4.dot_i16x8_s(dot16(v128.and(i16x8.shr_u(b1, 6), m3), v128.load(x, 112)), i16x8.splat(<i16>(load<u8>(sc, 7) & 15))));
  return s;
}

/** Σ m_j bsum_j over half h's eight sub-blocks, as i32x4 partials. */
// @ts-ignore: decorator
@inline function q2kMinHalf(p: usize, h: i32, q: usize, m4: v128): v128 {
  const m = i16x8.extend_low_i8x16_u(v128.and(i16x8.shr_u(v128.load64_zero(p + (<usize>h << 3)), 4), m4));
  return i32x4.dot_i16x8_s(m, v128.load(q + 260 + (<usize>h << 4)));
}

/** gemm: weight row p against activation rows q0..q3 (lanes), nb superblocks. */
// @ts-ignore: decorator
@inline function q2kGemm(p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, m3: v128, m4: v128): v128 {
  let acc = f32x4.splat(0), accm = acc;
  for (let b = 0; b < nb; b++) {
    const da = da4(q0, q1, q2, q3);
    const s = f32x4.mul(f32x4.splat(f16(p + 80)), da), sm = f32x4.mul(f32x4.splat(f16(p + 82)), da);
    for (let h = 0; h < 2; h++) {
      const isum = reduce4i(q2kHalf(p, h, q0, m3), q2kHalf(p, h, q1, m3), q2kHalf(p, h, q2, m3), q2kHalf(p, h, q3, m3));
      const imin = reduce4i(q2kMinHalf(p, h, q0, m4), q2kMinHalf(p, h, q1, m4), q2kMinHalf(p, h, q2, m4), q2kMinHalf(p, h, q3, m4));
      acc = fma4(f32x4.convert_i32x4_s(isum), s, acc);
      accm = fma4(f32x4.convert_i32x4_s(imin), sm, accm);
    }
    p += Q2KB; q0 += Q8K; q1 += Q8K; q2 += Q8K; q3 += Q8K;
  }
  return f32x4.sub(acc, accm);
}

/** gemv: weight rows p0..p3 (lanes) against activation row q, nb superblocks. */
// @ts-ignore: decorator
@inline function q2kGemv(p0: usize, p1: usize, p2: usize, p3: usize, q: usize, nb: i32, m3: v128, m4: v128, hmask: v128, p112: v128): v128 {
  let acc = f32x4.splat(0), accm = acc;
  for (let b = 0; b < nb; b++) {
    const da = f32x4.splat(load<f32>(q));
    const s = f32x4.mul(f16x4(p0 + 80, p1 + 80, p2 + 80, p3 + 80, hmask, p112), da);
    const sm = f32x4.mul(f16x4(p0 + 82, p1 + 82, p2 + 82, p3 + 82, hmask, p112), da);
    const isum = reduce4i(
      i32x4.add(q2kHalf(p0, 0, q, m3), q2kHalf(p0, 1, q, m3)), i32x4.add(q2kHalf(p1, 0, q, m3), q2kHalf(p1, 1, q, m3)),
      i32x4.add(q2kHalf(p2, 0, q, m3), q2kHalf(p2, 1, q, m3)), i32x4.add(q2kHalf(p3, 0, q, m3), q2kHalf(p3, 1, q, m3)),
    );
    const imin = reduce4i(
      i32x4.add(q2kMinHalf(p0, 0, q, m4), q2kMinHalf(p0, 1, q, m4)), i32x4.add(q2kMinHalf(p1, 0, q, m4), q2kMinHalf(p1, 1, q, m4)),
      i32x4.add(q2kMinHalf(p2, 0, q, m4), q2kMinHalf(p2, 1, q, m4)), i32x4.add(q2kMinHalf(p3, 0, q, m4), q2kMinHalf(p3, 1, q, m4)),
    );
    acc = fma4(f32x4.convert_i32x4_s(isum), s, acc);
    accm = fma4(f32x4.convert_i32x4_s(imin), sm, accm);
    p0 += Q2KB; p1 += Q2KB; p2 += Q2KB; p3 += Q2KB; q += Q8K;
  }
  return f32x4.sub(acc, accm);
}

// ---------------------------------------------------------------- Q4_0

/** Σ (q - 8) a of one Q4_0 block (nibbles at p + 2) against one Q8_0 block (int8 at x + 2), as i32x4 partials (|sum| < 2^15). */
// @ts-ignore: decorator
@inline function q40Block(lo: v128, hi: v128, x: usize, ones8: v128, ones16: v128): v128 {
  const x0 = v128.load(x + 2), x1 = v128.load(x + 18);
  const p = i16x8.add(dot16(lo, x0), dot16(hi, x1));
  const off = i16x8.shl(i16x8.add(dot16(ones8, x0), dot16(ones8, x1)), 3);
  return i32x4.dot_i16x8_s(i16x8.sub(p, off), ones16);
}

/** gemm: weight row p against activation rows q0..q3 (lanes), nb blocks. */
// @ts-ignore: decorator
@inline function q40Gemm(p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, m4: v128, ones8: v128, ones16: v128, hmask: v128, p112: v128): v128 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const s = f32x4.mul(f32x4.splat(f16(p)), f16x4(q0, q1, q2, q3, hmask, p112));
    const w = v128.load(p + 2);
    const lo = v128.and(w, m4), hi = v128.and(i16x8.shr_u(w, 4), m4);
    const isum = reduce4i16(q40Block(lo, hi, q0, ones8, ones16), q40Block(lo, hi, q1, ones8, ones16),
      q40Block(lo, hi, q2, ones8, ones16), q40Block(lo, hi, q3, ones8, ones16), ones16);
    acc = fma4(f32x4.convert_i32x4_s(isum), s, acc);
    p += Q4_0B; q0 += Q8_0B; q1 += Q8_0B; q2 += Q8_0B; q3 += Q8_0B;
  }
  return acc;
}

// @ts-ignore: decorator
@inline function q40Row(p: usize, q: usize, m4: v128, ones8: v128, ones16: v128): v128 {
  const w = v128.load(p + 2);
  return q40Block(v128.and(w, m4), v128.and(i16x8.shr_u(w, 4), m4), q, ones8, ones16);
}

/** gemv: weight rows p0..p3 (lanes) against activation row q, nb blocks. */
// @ts-ignore: decorator
@inline function q40Gemv(p0: usize, p1: usize, p2: usize, p3: usize, q: usize, nb: i32, m4: v128, ones8: v128, ones16: v128, hmask: v128, p112: v128): v128 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const s = f32x4.mul(f16x4(p0, p1, p2, p3, hmask, p112), f32x4.splat(f16(q)));
    const isum = reduce4i16(q40Row(p0, q, m4, ones8, ones16), q40Row(p1, q, m4, ones8, ones16),
      q40Row(p2, q, m4, ones8, ones16), q40Row(p3, q, m4, ones8, ones16), ones16);
    acc = fma4(f32x4.convert_i32x4_s(isum), s, acc);
    p0 += Q4_0B; p1 += Q4_0B; p2 += Q4_0B; p3 += Q4_0B; q += Q8_0B;
  }
  return acc;
}

// ---------------------------------------------------------------- driver

// Kinds are ggml type ids (ggml-common.ts).

// @ts-ignore: decorator
@inline function tile(k: i32, mode: i32, p0: usize, p1: usize, p2: usize, p3: usize, q0: usize, q1: usize, q2: usize, q3: usize, n: i32, z: i32): v128 {
  // constants from an opaque zero (z), so that V8 does not rematerialize them in the loops
  const m3 = i8x16.splat(<i8>(3 + z)), m4 = i8x16.splat(<i8>(15 + z)), ones8 = i8x16.splat(<i8>(1 + z)), ones16 = i16x8.splat(<i16>(1 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  if (k == Q4_K) return mode == GEMM ? q4kGemm(p0, q0, q1, q2, q3, n >> 8, m4) : q4kGemv(p0, p1, p2, p3, q0, n >> 8, m4, hmask, p112);
  if (k == Q2_K) return mode == GEMM ? q2kGemm(p0, q0, q1, q2, q3, n >> 8, m3, m4) : q2kGemv(p0, p1, p2, p3, q0, n >> 8, m3, m4, hmask, p112);
  return mode == GEMM ? q40Gemm(p0, q0, q1, q2, q3, n >> 5, m4, ones8, ones16, hmask, p112) : q40Gemv(p0, p1, p2, p3, q0, n >> 5, m4, ones8, ones16, hmask, p112);
}

/**
 * forward_mul_mat's split: activation rows [0, T - T % 4) through gemm (for
 * T > 3), the rest through gemv. gemm: for each weight row, four activation
 * rows at a time; gemv: four weight rows (from four bands of the range, as
 * matmul_q8_0_ggml) against one activation row.
 */
// @ts-ignore: decorator
@inline function repacked(k: i32, out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const ws: usize = k == Q4_0 ? <usize>(n >> 5) * Q4_0B : <usize>(n >> 8) * (k == Q4_K ? Q4KB : Q2KB);
  const as: usize = k == Q4_0 ? <usize>(n >> 5) * Q8_0B : <usize>(n >> 8) * Q8K;
  const od: usize = <usize>d << 2;
  const z = <i32>(<u32>n >> 31);
  const T4 = T & ~3;
  for (let t = 0; t < T4; t += 4) {
    const q = xq + <usize>t * as;
    const o = out + <usize>t * od;
    for (let r = r0; r < r1; r++) {
      const v = tile(k, GEMM, w + <usize>r * ws, 0, 0, 0, q, q + as, q + 2 * as, q + 3 * as, n, z);
      const or = o + (<usize>r << 2);
      store<f32>(or, f32x4.extract_lane(v, 0));
      store<f32>(or + od, f32x4.extract_lane(v, 1));
      store<f32>(or + 2 * od, f32x4.extract_lane(v, 2));
      store<f32>(or + 3 * od, f32x4.extract_lane(v, 3));
    }
  }
  const qn = (r1 - r0) >> 2;
  const qs = <usize>qn * ws, qo = <usize>qn << 2;
  for (let t = T4; t < T; t++) {
    const q = xq + <usize>t * as;
    const o = out + <usize>t * od;
    for (let g = r0; g < r0 + qn; g++) {
      const p = w + <usize>g * ws;
      const v = tile(k, GEMV, p, p + qs, p + 2 * qs, p + 3 * qs, q, q, q, q, n, z);
      const og = o + (<usize>g << 2);
      store<f32>(og, f32x4.extract_lane(v, 0));
      store<f32>(og + qo, f32x4.extract_lane(v, 1));
      store<f32>(og + 2 * qo, f32x4.extract_lane(v, 2));
      store<f32>(og + 3 * qo, f32x4.extract_lane(v, 3));
    }
    const r = r0 + 4 * qn;
    if (r < r1) {
      // 1..3 leftover rows: repeat the last one
      const p = w + <usize>r * ws;
      const pb = r + 1 < r1 ? p + ws : p, pc = r + 2 < r1 ? p + 2 * ws : p;
      const v = tile(k, GEMV, p, pb, pc, p, q, q, q, q, n, z);
      store<f32>(o + (<usize>r << 2), f32x4.extract_lane(v, 0));
      if (r + 1 < r1) store<f32>(o + (<usize>(r + 1) << 2), f32x4.extract_lane(v, 1));
      if (r + 2 < r1) store<f32>(o + (<usize>(r + 2) << 2), f32x4.extract_lane(v, 2));
    }
  }
}

/**
 * Q4_K weights x Q8_K activations in the order of llama.cpp's q4_K_8x8 gemv /
 * gemm (weights with d % 8 != 0 are not repacked there: vec_dot's order).
 */
export function matmul_q4_k_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  if (d & 7) { matmul_q4_k_vecdot_ggml(out, xq, w, n, d, T, r0, r1); return; }
  repacked(Q4_K, out, xq, w, n, d, T, r0, r1);
}

/** Q2_K weights x Q8_K activations in the order of llama.cpp's q2_K_8x8 gemv / gemm (d % 8 != 0: vec_dot's order). */
export function matmul_q2_k_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  if (d & 7) { matmul_q2_k_vecdot_ggml(out, xq, w, n, d, T, r0, r1); return; }
  repacked(Q2_K, out, xq, w, n, d, T, r0, r1);
}

/** Q4_0 weights x Q8_0 activations in the order of llama.cpp's q4_0_8x8 gemv / gemm (d % 8 != 0: vec_dot's order). */
export function matmul_q4_0_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  if (d & 7) { matmul_q4_0_vecdot_ggml(out, xq, w, n, d, T, r0, r1); return; }
  repacked(Q4_0, out, xq, w, n, d, T, r0, r1);
}
