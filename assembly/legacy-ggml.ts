// Q4_0, Q4_1, Q5_0 and Q5_1 weights with ggml's float arithmetic (the x86 AVX-512
// build of llama.cpp; see q8_0-ggml.ts for the pattern). ggml_vec_dot_q4_1_q8_1,
// ggml_vec_dot_q5_0_q8_0 and ggml_vec_dot_q5_1_q8_1 (arch/x86/quants.c, AVX2
// branch) keep eight f32 lanes per output: lane l holds the integer dot of
// block elements 4l..4l+3 (vpdpbusd), converted to f32 and added block after
// block with one fused multiply-add by f32(d_w * d_a); hsum_float_8 folds the
// lanes. Q4_1 and Q5_1 add the min term separately: summs = fma(m_w, s_a, summs)
// per block (GCC contracts `summs += m * s`; vfmadd231ss in the zen4 binary;
// m * s of two f16 is exact in f32 anyway), and the result is hsum_float_8(acc) + summs. Several activation rows (T >= 2)
// take the same per-output order: Q4_1 and Q5_1 have no tinyBLAS path (vec_dot
// per output), and tinyBLAS_Q0_AVX<block_q5_0> (llamafile/sgemm.cpp) forms the
// same lanes, the same fma by f32(d_w * d_a) and the same hsum. Integer dots
// are exact; lane sums stay below 2^24, so their conversion is exact too.

import { f16 } from "./quant-util";
import { fmaf, fmaLanes, hsum8 } from "./fused";
import { Q4_0, Q4_1, Q5_0, Q5_1, Q4_0_BYTES, Q4_1_BYTES, Q5_0_BYTES, Q5_1_BYTES } from "./ggml-common";

/** Bytes per weight block: Q4_0 {d, qs[16]}, Q4_1 {d, m, qs[16]}, Q5_0 {d, qh[4], qs[16]}, Q5_1 {d, m, qh[4], qs[16]}. */
// @ts-ignore: decorator
@inline function wBytes(k: i32): usize { return k == Q4_0 ? Q4_0_BYTES : k == Q4_1 ? Q4_1_BYTES : k == Q5_0 ? Q5_0_BYTES : Q5_1_BYTES; }
/** Offset of the packed nibbles. */
// @ts-ignore: decorator
@inline function wQs(k: i32): usize { return k == Q4_0 ? 2 : k == Q4_1 ? 4 : k == Q5_0 ? 6 : 8; }
/** Offset of the 32 high bits (Q5_0, Q5_1). */
// @ts-ignore: decorator
@inline function wQh(k: i32): usize { return k == Q5_0 ? 2 : 4; }
/** Q4_0 and Q5_0 are symmetric (value = unsigned - offset); Q4_1 and Q5_1 carry a min instead. */
// @ts-ignore: decorator
@inline function symmetric(k: i32): bool { return k == Q4_0 || k == Q5_0; }
/** Bytes per activation block: Q8_0 {d, qs[32]} for Q4_0/Q5_0, Q8_1 {d, s, qs[32]} otherwise. */
// @ts-ignore: decorator
@inline function aBytes(k: i32): usize { return symmetric(k) ? 34 : 36; }
// @ts-ignore: decorator
@inline function aQs(k: i32): usize { return symmetric(k) ? 2 : 4; }

/**
 * Weight bytes of half h of a block (elements 16h..16h+15: the low nibbles of
 * qs for h = 0, the high ones for h = 1, as bytes_from_nibbles_32), with the
 * fifth bit (0x10) from qh for Q5_0/Q5_1: unsigned 0..31. (Q5_0's value is this
 * minus 16: ggml ors in 0xF0 where the bit is clear.)
 */
// @ts-ignore: decorator
@inline function wHalf(k: i32, p: usize, h: i32, m4: v128, bits: v128, x10: v128): v128 {
  const q = v128.load(p + wQs(k));
  const lo = v128.and(h == 0 ? q : i16x8.shr_u(q, 4), m4);
  if (k == Q4_0 || k == Q4_1) return lo;
  const v = i32x4.splat(<i32>(load<u32>(p + wQh(k)) >> (<u32>h << 4)));
  const b = v128.and(i8x16.shuffle(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), bits);
  return v128.or(lo, v128.and(i8x16.ne(b, i8x16.splat(0)), x10));
}

/**
 * c + sums of four consecutive products w[j] * y[j] (four i32 lanes), y signed
 * int8. Relaxed: w must be 0..127 (the 7-bit operand). Plain: any int8 w
 * (products fit i16; two-product pair sums are widened before the last add).
 */
// @ts-ignore: decorator
@inline function dot4(w: v128, y: v128, c: v128): v128 {
  if (RELAXED) return i32x4.relaxed_dot_i8x16_i7x16_add_s(y, w, c);
  const lo = i32x4.extadd_pairwise_i16x8_s(i16x8.extmul_low_i8x16_s(w, y));
  const hi = i32x4.extadd_pairwise_i16x8_s(i16x8.extmul_high_i8x16_s(w, y));
  return i32x4.add(c, i32x4.add(i32x4.shuffle(lo, hi, 0, 2, 4, 6), i32x4.shuffle(lo, hi, 1, 3, 5, 7)));
}

/**
 * Lanes 4h..4h+3 of one block's integer dot (weights at p, activations y of
 * half h). Q4_0/Q5_0 relaxed: unsigned weights (value + 8 or 16) against y,
 * with c = -8 or -16 x (y's four-element sums) folded into the dot; plain: the
 * signed value (unsigned minus xoff).
 */
// @ts-ignore: decorator
@inline function lanes(k: i32, p: usize, h: i32, y: v128, c: v128, m4: v128, bits: v128, x10: v128, xoff: v128): v128 {
  const u = wHalf(k, p, h, m4, bits, x10);
  if (symmetric(k) && !RELAXED) return dot4(i8x16.sub(u, xoff), y, c);
  return dot4(u, y, c);
}

/** -8 (Q4_0) or -16 (Q5_0) x the sums of four consecutive int8 of y (the relaxed build's offset), else zero. */
// @ts-ignore: decorator
@inline function offset(k: i32, y: v128): v128 {
  if (!symmetric(k) || !RELAXED) return i32x4.splat(0);
  return i32x4.neg(i32x4.shl(i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(y)), k == Q4_0 ? 3 : 4));
}

/**
 * The row loop. Two rows from two bands of [r0, r1) are read together (two
 * far-apart streams, and each activation block's loads shared); each output
 * is its own sum, so the result does not depend on r0/r1.
 */
// @ts-ignore: decorator
@inline function matmul(k: i32, out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5;
  const WB = wBytes(k), AB = aBytes(k);
  const wRow = <usize>nb * WB, aRow = <usize>nb * AB;
  // vector constants from an opaque zero (V8 would rematerialize v128.const at each use in the loop)
  const z = <i32>(<u32>n >> 31);
  const m4 = i8x16.splat(<i8>(15 + z)), x10 = i8x16.splat(<i8>(0x10 + z)), xoff = i8x16.splat(<i8>((k == Q4_0 ? 8 : 16) + z));
  const bits = i64x2.splat(0x8040201008040201 + <i64>z);
  const q = (r1 - r0 + 1) >> 1;
  for (let g = 0; g < q; g++) {
    const ra = r0 + g, rb = ra + q < r1 ? ra + q : ra; // odd count: the last pair is one row twice
    const wa = w + <usize>ra * wRow, wb = w + <usize>rb * wRow;
    for (let t = 0; t < T; t++) {
      const x = xq + <usize>t * aRow, o = out + ((<usize>t * d) << 2);
      let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
      let b0 = f64x2.splat(0), b1 = f64x2.splat(0), b2 = f64x2.splat(0), b3 = f64x2.splat(0);
      let ma: f32 = 0, mb: f32 = 0;
      for (let kb = 0; kb < nb; kb++) {
        const xb = x + <usize>kb * AB, pa = wa + <usize>kb * WB, pb = wb + <usize>kb * WB;
        const da = f16(xb);
        const y0 = v128.load(xb + aQs(k)), y1 = v128.load(xb + aQs(k) + 16);
        const c0 = offset(k, y0), c1 = offset(k, y1);
        let s = f64x2.splat(<f64>(f16(pa) * da));
        let lo = lanes(k, pa, 0, y0, c0, m4, bits, x10, xoff), hi = lanes(k, pa, 1, y1, c1, m4, bits, x10, xoff);
        a0 = fmaLanes(a0, s, lo); a1 = fmaLanes(a1, s, i32x4.shuffle(lo, lo, 2, 3, 2, 3));
        a2 = fmaLanes(a2, s, hi); a3 = fmaLanes(a3, s, i32x4.shuffle(hi, hi, 2, 3, 2, 3));
        s = f64x2.splat(<f64>(f16(pb) * da));
        lo = lanes(k, pb, 0, y0, c0, m4, bits, x10, xoff); hi = lanes(k, pb, 1, y1, c1, m4, bits, x10, xoff);
        b0 = fmaLanes(b0, s, lo); b1 = fmaLanes(b1, s, i32x4.shuffle(lo, lo, 2, 3, 2, 3));
        b2 = fmaLanes(b2, s, hi); b3 = fmaLanes(b3, s, i32x4.shuffle(hi, hi, 2, 3, 2, 3));
        if (!symmetric(k)) {
          const sa = f16(xb + 2);
          ma = fmaf(f16(pa + 2), sa, ma);
          mb = fmaf(f16(pb + 2), sa, mb);
        }
      }
      // Q4_0/Q5_0 have no min term (adding ma = 0 would turn an output of -0 into +0)
      store<f32>(o + (<usize>rb << 2), symmetric(k) ? hsum8(b0, b1, b2, b3) : hsum8(b0, b1, b2, b3) + mb);
      store<f32>(o + (<usize>ra << 2), symmetric(k) ? hsum8(a0, a1, a2, a3) : hsum8(a0, a1, a2, a3) + ma);
    }
  }
}

/**
 * Q4_0 weights x Q8_0 activations in ggml's order for tensors llama.cpp does not
 * repack (ggml_vec_dot_q4_0_q8_0; tinyBLAS_Q0_AVX<block_q4_0> sums the same way):
 * the fallback of matmul_q4_0_ggml (repack-ggml.ts) for rows % 8 != 0.
 */
export function matmul_q4_0_vecdot_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  matmul(Q4_0, out, xq, w, n, d, T, r0, r1);
}
/** Q4_1 weights x Q8_1 activations in ggml's order (ggml_vec_dot_q4_1_q8_1, any T). */
export function matmul_q4_1_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  matmul(Q4_1, out, xq, w, n, d, T, r0, r1);
}
/** Q5_0 weights x Q8_0 activations in ggml's order (ggml_vec_dot_q5_0_q8_0; tinyBLAS sums the same way). */
export function matmul_q5_0_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  matmul(Q5_0, out, xq, w, n, d, T, r0, r1);
}
/** Q5_1 weights x Q8_1 activations in ggml's order (ggml_vec_dot_q5_1_q8_1, any T). */
export function matmul_q5_1_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  matmul(Q5_1, out, xq, w, n, d, T, r0, r1);
}
