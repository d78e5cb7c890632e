// Q8_0 in kvasm's "lanes" layout: weights repacked at load (repack_q8_0_lanes) so that i32 lane r of
// every integer dot product belongs to weight row r, and no block sum needs a cross-lane reduction.
//
// Why: the natural kernels (quant-gemm.ts) sum each (4 rows, block) dot across lanes (reduce4i: six
// two-input i32 shuffles and three adds); JavaScriptCore lowers that to about 3.0 ns a reduction against
// V8's 0.9 ns, which made Bun's Q8_0 matmul 0.68-0.78x of Deno's (README "Q8_0 under JavaScriptCore").
//
// Layout: rows are taken in quads (4 rows). Quad Q occupies exactly the bytes of its 4 natural rows
// (w + 4Q * ws, ws = nb * 34); per block b, 136 bytes at + 136b: the 4 rows' f16 scales (8 bytes),
// then 8 vectors, vector g = elements 4g..4g+3 of rows 0..3:
//   relaxed (pmaddubsw pairs bytes 2i, 2i+1; pmaddwd lanes 2r, 2r+1):  row r's element 4g+k at byte 4r + k
//   plain   (dot16 pairs bytes i, i+8):                                 at byte 2r + (k & 1) + 8 (k >> 1)
// Each build repacks in its own order, so the same build must repack and multiply (the backend does).
// Rows past the last whole quad (d % 4 of them) stay in the natural layout, where matmul_q8_0 and
// dequantize_q8_0 read them.
//
// Against the activation's 4 elements splatted (relaxed: load32_splat; plain: one shuffle), lane r of
// each dot is row r's exact partial sum, so the block's integer sum builds up in place; then per block
//   acc += (d_w * d_a) * f32(isum)
// with the same f32 operations, in the same block order, as q8_0Row: every output is bit-identical
// to matmul_q8_0's, for any T and any row range. Sixteen rows per pass share the activation's abs and sign.
import { dot16, f16 } from "./quant-util";
import { Q8_0_BYTES, Q8_S_BYTES } from "./ggml-common";
import { matmul_q8_0 } from "./quant-matmul";
import { dequantize_q8_0 } from "./quant-dequant";
import { gemmChunk } from "./quant-gemm";

/** Bytes of one quad's block: 4 f16 scales and 4 x 32 int8, the size of 4 natural blocks. */
// @ts-ignore: decorator
@inline const QB: usize = 4 * Q8_0_BYTES;

/** Position of row r's element k (0..3) of a group within its 16-byte vector, in this build's order. */
// @ts-ignore: decorator
@inline function lanePos(r: usize, k: usize): usize {
  return RELAXED ? (r << 2) + k : (r << 1) + (k & 1) + ((k >> 1) << 3);
}

/** v with the sign of the bytes whose mask m is all ones flipped (v ^ m) - m. */
// @ts-ignore: decorator
@inline function flip(v: v128, m: v128): v128 {
  return i8x16.sub(v128.xor(v, m), m);
}

/** The four f16 scales at p (one quad's block) as f32x4, as f16x4 converts them (quant-util.ts). */
// @ts-ignore: decorator
@inline function f16quad(p: usize, hmask: v128, p112: v128): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, 3), hmask), p112);
}

/**
 * nq (1 or 4, constant after inlining) quads from p0 (quad stride qs bytes) against one Q8_S activation
 * row at q: 4 * nq outputs at out.
 */
// @ts-ignore: decorator
@inline function band(out: usize, q: usize, p0: usize, nb: i32, qs: usize, z: i32, nq: i32): void {
  const ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let i0 = zero, i1 = zero, i2 = zero, i3 = zero;
    for (let g: usize = 0; g < 8; g++) {
      // relaxed: the 4 activation bytes in every i32 lane; plain: bytes 0, 1 in each i16 lane of the low half, 2, 3 of the high
      const x = RELAXED ? v128.load32_splat(q + 8 + (g << 2))
        : v128.shuffle<i8>(v128.load32_zero(q + 8 + (g << 2)), zero, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3);
      const u = i8x16.abs(x), m = i8x16.lt_s(x, zero);
      const o = p0 + 8 + (g << 4);
      i0 = i32x4.add(i0, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o), m)), ones16));
      if (nq > 1) {
        i1 = i32x4.add(i1, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o + qs), m)), ones16));
        i2 = i32x4.add(i2, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o + 2 * qs), m)), ones16));
        i3 = i32x4.add(i3, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o + 3 * qs), m)), ones16));
      }
    }
    const da = v128.load32_splat(q);
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(f16quad(p0, hmask, p112), da), f32x4.convert_i32x4_s(i0)));
    if (nq > 1) {
      a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(f16quad(p0 + qs, hmask, p112), da), f32x4.convert_i32x4_s(i1)));
      a2 = f32x4.add(a2, f32x4.mul(f32x4.mul(f16quad(p0 + 2 * qs, hmask, p112), da), f32x4.convert_i32x4_s(i2)));
      a3 = f32x4.add(a3, f32x4.mul(f32x4.mul(f16quad(p0 + 3 * qs, hmask, p112), da), f32x4.convert_i32x4_s(i3)));
    }
    p0 += QB;
    q += Q8_S_BYTES;
  }
  v128.store(out, a0);
  if (nq > 1) {
    v128.store(out + 16, a1);
    v128.store(out + 32, a2);
    v128.store(out + 48, a3);
  }
}

/**
 * out[t*d + r] = W[r] . xq[t] for r in [r0, r1), t < T, W in the lanes layout (Q8_S activations, as matmul_q8_0).
 * r0 and r1 fall on quad boundaries (multiples of 4) or r1 == d; rows from d & ~3 on are natural (matmul_q8_0).
 * 16 rows per pass, then single quads. T > 1: activation rows in chunks that stay in L1 (gemmChunk, as gemm),
 * each band of rows passing over a chunk's rows while its weights are in L1.
 */
export function matmul_q8_0_lanes(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * Q8_0_BYTES, as: usize = <usize> nb * Q8_S_BYTES, od: usize = <usize> d << 2;
  const d4 = d & ~3, e = min(r1, d4);
  const chunk = T == 1 ? 1 : gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    let r = r0;
    for (; r + 16 <= e; r += 16) {
      const p = w + <usize> r * ws;
      for (let t = t0; t < t1; t++) band(out + <usize> t * od + (<usize> r << 2), xq + <usize> t * as, p, nb, ws << 2, z, 4);
    }
    for (; r + 4 <= e; r += 4) {
      const p = w + <usize> r * ws;
      for (let t = t0; t < t1; t++) band(out + <usize> t * od + (<usize> r << 2), xq + <usize> t * as, p, nb, ws << 2, z, 1);
    }
  }
  // the natural rows after the last quad
  if (r1 > d4) matmul_q8_0(out, xq, w, n, d, T, max(r0, d4), r1);
}

/**
 * Repacks the d x n Q8_0 weight at w in place into the lanes layout, quad by quad (the d % 4 last rows
 * stay natural). tmp: 4 rows of scratch (4 * n / 32 * 34 bytes).
 */
export function repack_q8_0_lanes(w: usize, n: i32, d: i32, tmp: usize): void {
  const nb = n >> 5;
  const ws: usize = <usize> nb * Q8_0_BYTES;
  for (let r = 0; r + 4 <= d; r += 4) {
    const p = w + <usize> r * ws;
    memory.copy(tmp, p, ws << 2);
    for (let b = 0; b < nb; b++) {
      const o = p + <usize> b * QB;
      for (let i: usize = 0; i < 4; i++) {
        const s = tmp + i * ws + <usize> b * Q8_0_BYTES;
        store<u16>(o + (i << 1), load<u16>(s));
        for (let g: usize = 0; g < 8; g++) {
          for (let k: usize = 0; k < 4; k++) store<u8>(o + 8 + (g << 4) + lanePos(i, k), load<u8>(s + 2 + (g << 2) + k));
        }
      }
    }
  }
}

/**
 * Row `row` of the d x n lanes-layout weight at w (the table's start, not the row's) as n f32, as
 * dequantize_q8_0 gives it from the natural layout (x = q * d, bit for bit): embedding lookups.
 */
export function dequantize_q8_0_lanes(out: usize, w: usize, n: i32, row: i32, d: i32): void {
  const nb = n >> 5;
  const ws: usize = <usize> nb * Q8_0_BYTES;
  if (row >= (d & ~3)) {
    dequantize_q8_0(out, w + <usize> row * ws, n);
    return;
  }
  const i = <usize> (row & 3);
  const quad = w + <usize> (row & ~3) * ws;
  for (let b = 0; b < nb; b++) {
    const p = quad + <usize> b * QB, s = f16(p + (i << 1));
    const o = out + (<usize> b << 7);
    for (let g: usize = 0; g < 8; g++) {
      for (let k: usize = 0; k < 4; k++) store<f32>(o + (((g << 2) + k) << 2), <f32> load<i8>(p + 8 + (g << 4) + lanePos(i, k)) * s);
    }
  }
}
