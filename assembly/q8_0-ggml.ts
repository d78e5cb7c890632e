// Q8_0 weights x Q8_0 activations with ggml's float arithmetic: the x86 build
// of llama.cpp (ggml_vec_dot_q8_0_q8_0 for one activation row, tinyBLAS_Q0_AVX
// for several; both sum the same way) keeps eight f32 lanes per output, lane l
// holding the integer dot of elements 4l..4l+3 of each block, and adds
// block after block with one fused multiply-add by d_w * d_a; the eight lanes
// are then folded as hsum_float_8 does. A single accumulator with the block's
// whole integer sum rounds differently, and re-quantized activations turn an
// ulp into whole quantization steps downstream, so the order is part of the
// result. Integer dots are exact either way.

import { f16 } from "./quant-util";
import { fmaLanes, hsum8 } from "./fused";
import { Q8_0_BYTES } from "./ggml-common";

// @ts-ignore: decorator
@inline const BLOCK: usize = Q8_0_BYTES; // f16 scale + 32 int8

/**
 * Sums of four consecutive products of two signed int8 vectors (16 values
 * each: four i32 lanes). Q8_0 values are never -128 (the quantizer rounds
 * into -127..127), so |w| fits the relaxed dot's 7-bit operand once w's sign
 * is moved onto the other side.
 */
// @ts-ignore: decorator
@inline function dot4(w: v128, x: v128): v128 {
  if (RELAXED) {
    const neg = i8x16.lt_s(w, i8x16.splat(0));
    return i32x4.relaxed_dot_i8x16_i7x16_add_s(i8x16.sub(v128.xor(x, neg), neg), i8x16.abs(w), i32x4.splat(0));
  }
  const lo = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w), i16x8.extend_low_i8x16_s(x));
  const hi = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w), i16x8.extend_high_i8x16_s(x));
  return i32x4.add(i32x4.shuffle(lo, hi, 0, 2, 4, 6), i32x4.shuffle(lo, hi, 1, 3, 5, 7));
}

/** One weight row against one activation row, nb blocks. */
// @ts-ignore: decorator
@inline function dotRow(w: usize, x: usize, nb: i32): f32 {
  let a = f64x2.splat(0), b = f64x2.splat(0), c = f64x2.splat(0), e = f64x2.splat(0);
  for (let k = 0; k < nb; k++) {
    const wb = w + <usize>k * BLOCK, xb = x + <usize>k * BLOCK;
    const d = f64x2.splat(<f64>(f16(wb) * f16(xb)));
    const lo = dot4(v128.load(wb, 2), v128.load(xb, 2)), hi = dot4(v128.load(wb, 18), v128.load(xb, 18));
    a = fmaLanes(a, d, lo); b = fmaLanes(b, d, i32x4.shuffle(lo, lo, 2, 3, 2, 3));
    c = fmaLanes(c, d, hi); e = fmaLanes(e, d, i32x4.shuffle(hi, hi, 2, 3, 2, 3));
  }
  return hsum8(a, b, c, e);
}

/**
 * W (d rows of n/32 blocks) . xq (T rows of n/32 blocks) -> out (T, d), rows [r0, r1).
 * Two rows from two bands of the range are read together (far-apart streams
 * keep more memory reads in flight); each output is its own sum.
 */
export function matmul_q8_0_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5;
  const rowBytes = <usize>nb * BLOCK;
  const q = (r1 - r0) >> 1;
  for (let g = 0; g < q; g++) {
    const ra = r0 + g, rb = ra + q;
    const wa = w + <usize>ra * rowBytes, wb = w + <usize>rb * rowBytes;
    for (let t = 0; t < T; t++) {
      const x = xq + <usize>t * rowBytes, o = out + ((<usize>t * d) << 2);
      let a0 = f64x2.splat(0), a1 = f64x2.splat(0), a2 = f64x2.splat(0), a3 = f64x2.splat(0);
      let b0 = f64x2.splat(0), b1 = f64x2.splat(0), b2 = f64x2.splat(0), b3 = f64x2.splat(0);
      for (let k = 0; k < nb; k++) {
        const off = <usize>k * BLOCK;
        const xb = x + off;
        const da = f16(xb);
        const x0 = v128.load(xb, 2), x1 = v128.load(xb, 18);
        let s = f64x2.splat(<f64>(f16(wa + off) * da));
        let lo = dot4(v128.load(wa + off, 2), x0), hi = dot4(v128.load(wa + off, 18), x1);
        a0 = fmaLanes(a0, s, lo); a1 = fmaLanes(a1, s, i32x4.shuffle(lo, lo, 2, 3, 2, 3));
        a2 = fmaLanes(a2, s, hi); a3 = fmaLanes(a3, s, i32x4.shuffle(hi, hi, 2, 3, 2, 3));
        s = f64x2.splat(<f64>(f16(wb + off) * da));
        lo = dot4(v128.load(wb + off, 2), x0); hi = dot4(v128.load(wb + off, 18), x1);
        b0 = fmaLanes(b0, s, lo); b1 = fmaLanes(b1, s, i32x4.shuffle(lo, lo, 2, 3, 2, 3));
        b2 = fmaLanes(b2, s, hi); b3 = fmaLanes(b3, s, i32x4.shuffle(hi, hi, 2, 3, 2, 3));
      }
      store<f32>(o + (<usize>ra << 2), hsum8(a0, a1, a2, a3));
      store<f32>(o + (<usize>rb << 2), hsum8(b0, b1, b2, b3));
    }
  }
  for (let r = r0 + 2 * q; r < r1; r++) {
    const wr = w + <usize>r * rowBytes;
    for (let t = 0; t < T; t++) store<f32>(out + ((<usize>t * d + r) << 2), dotRow(wr, xq + <usize>t * rowBytes, nb));
  }
}
