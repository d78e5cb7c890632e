// Q8_0 in kvasm's "lanes" layout: weights repacked at load (repack_q8_0_lanes) so that i32 lane r of
// every integer dot product belongs to weight row r, and no block sum needs a cross-lane reduction.
//
// Why: the natural kernels (quant-gemm.ts) sum each (4 rows, block) dot across lanes (reduce4i: six
// two-input i32 shuffles and three adds); JavaScriptCore lowers that to about 3.0 ns a reduction against
// V8's 0.9 ns, which made Bun's Q8_0 matmul 0.68-0.78x of Deno's (docs/cpu-performance.md "Q8_0 under JavaScriptCore").
//
// Layout (lanes-q8_0-layout.ts): rows in quads, per quad and block the 4 f16 scales, then 8 vectors holding
// 4 consecutive elements of each row (row r at bytes 4r..4r+3). Rows past the last whole quad (d % 4 of them)
// stay in the natural layout, where matmul_q8_0 and dequantize_q8_0 read them. lanes-q8_0-vnni.ts keeps the
// same layout with the bytes offset to unsigned, for runtimes where the relaxed dot-add is an exact u8 x s8 dot.
//
// Relaxed: against the activation's 4 bytes splatted (load32_splat), i32 lane r of each pmaddubsw + pmaddwd is
// row r's exact partial sum (pmaddubsw pairs bytes 2i, 2i+1, pmaddwd i16 lanes 2r, 2r+1), so the block's integer
// sum builds up in place with no cross-lane step. Plain (no byte dot product): weights and activation widened to
// i16, two partials per row, paired once per block. Then per block
//   acc += (d_w * d_a) * f32(isum)
// with the same f32 operations, in the same block order, as q8_0Row: every output is bit-identical
// to matmul_q8_0's, for any T and any row range. Four quads per pass share each activation load.
import { dot16 } from "./quant-util";
import { Q8_0_BYTES, Q8_S_BYTES } from "./ggml-common";
import { matmul_q8_0 } from "./quant-matmul";
import { gemmChunk } from "./quant-gemm";
import { dequantizeQuadRow, f16quad, QB, repackQuads } from "./lanes-q8_0-layout";

/** v with the sign of the bytes whose mask m is all ones flipped (v ^ m) - m. */
// @ts-ignore: decorator
@inline function flip(v: v128, m: v128): v128 {
  return i8x16.sub(v128.xor(v, m), m);
}

/** Row r's block sum in lane r: lo holds rows 0, 1 and hi rows 2, 3, two partials each (the plain build's dots). */
// @ts-ignore: decorator
@inline function pairs(lo: v128, hi: v128): v128 {
  return i32x4.add(v128.shuffle<i32>(lo, hi, 0, 2, 4, 6), v128.shuffle<i32>(lo, hi, 1, 3, 5, 7));
}

/**
 * nq (1 or 4, constant after inlining) quads at p0..p3 (p1..p3 unused when nq is 1) against one Q8_S
 * activation row at q: each quad's 4 outputs at o0..o3.
 */
// @ts-ignore: decorator
@inline function quads(o0: usize, o1: usize, o2: usize, o3: usize, q: usize, p0: usize, p1: usize, p2: usize, p3: usize, nb: i32, z: i32, nq: i32): void {
  const ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let i0 = zero, i1 = zero, i2 = zero, i3 = zero;
    if (RELAXED) {
      for (let g: usize = 0; g < 8; g++) {
        // the 4 activation bytes in every i32 lane: magnitudes for pmaddubsw's unsigned side, signs onto the weights
        const x = v128.load32_splat(q + 8 + (g << 2));
        const u = i8x16.abs(x), m = i8x16.lt_s(x, zero);
        const o = 8 + (g << 4);
        i0 = i32x4.add(i0, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p0 + o), m)), ones16));
        if (nq > 1) {
          i1 = i32x4.add(i1, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p1 + o), m)), ones16));
          i2 = i32x4.add(i2, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p2 + o), m)), ones16));
          i3 = i32x4.add(i3, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p3 + o), m)), ones16));
        }
      }
    } else {
      // plain SIMD has no byte dot product: both sides widen to i16 (signed, so no sign moves), the activation's
      // 4 values twice; pmaddwd then leaves rows 0, 1 (low half) and 2, 3 (high half) two i32 partials each,
      // paired once per block (exact integers: the order of the additions cannot change the block sum)
      let h0 = zero, h1 = zero, h2 = zero, h3 = zero;
      for (let g: usize = 0; g < 8; g++) {
        const a = i16x8.extend_low_i8x16_s(v128.load32_splat(q + 8 + (g << 2)));
        const o = 8 + (g << 4);
        const w0 = v128.load(p0 + o);
        i0 = i32x4.add(i0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w0), a));
        h0 = i32x4.add(h0, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w0), a));
        if (nq > 1) {
          const w1 = v128.load(p1 + o), w2 = v128.load(p2 + o), w3 = v128.load(p3 + o);
          i1 = i32x4.add(i1, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w1), a));
          h1 = i32x4.add(h1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w1), a));
          i2 = i32x4.add(i2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w2), a));
          h2 = i32x4.add(h2, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w2), a));
          i3 = i32x4.add(i3, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w3), a));
          h3 = i32x4.add(h3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w3), a));
        }
      }
      i0 = pairs(i0, h0);
      if (nq > 1) {
        i1 = pairs(i1, h1);
        i2 = pairs(i2, h2);
        i3 = pairs(i3, h3);
      }
    }
    const da = v128.load32_splat(q);
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(f16quad(p0, hmask, p112), da), f32x4.convert_i32x4_s(i0)));
    p0 += QB;
    if (nq > 1) {
      a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(f16quad(p1, hmask, p112), da), f32x4.convert_i32x4_s(i1)));
      a2 = f32x4.add(a2, f32x4.mul(f32x4.mul(f16quad(p2, hmask, p112), da), f32x4.convert_i32x4_s(i2)));
      a3 = f32x4.add(a3, f32x4.mul(f32x4.mul(f16quad(p3, hmask, p112), da), f32x4.convert_i32x4_s(i3)));
      p1 += QB;
      p2 += QB;
      p3 += QB;
    }
    q += Q8_S_BYTES;
  }
  v128.store(o0, a0);
  if (nq > 1) {
    v128.store(o1, a1);
    v128.store(o2, a2);
    v128.store(o3, a3);
  }
}

/**
 * out[t*d + r] = W[r] . xq[t] for r in [r0, r1), t < T, W in the lanes layout (Q8_S activations, as matmul_q8_0).
 * r0 and r1 fall on quad boundaries (multiples of 4) or r1 == d; rows from d & ~3 on are natural (matmul_q8_0).
 * Four quads per pass from four far-apart bands of the range (g, g+q, g+2q, g+3q, as gemv takes rows): four long
 * streams through memory (four adjacent quads, restarting every 13 KB, read a DRAM-sized weight at a third of
 * the rate). T > 1: activation rows in chunks that stay in L1 (gemmChunk, as gemm), each pass's four quads going
 * over a chunk's rows while their weights are in L1.
 */
export function matmul_q8_0_lanes(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * Q8_0_BYTES, as: usize = <usize> nb * Q8_S_BYTES, od: usize = <usize> d << 2;
  const e = min(r1, d & ~3);
  const nq = max(0, e - r0) >> 2, q = nq >> 2;
  const bs: usize = <usize> q * (ws << 2), bo: usize = <usize> q << 4; // one band's bytes of weights and of outputs
  const chunk = T == 1 ? 1 : gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; g < q; g++) {
      const r = r0 + (g << 2);
      const p = w + <usize> r * ws;
      for (let t = t0; t < t1; t++) {
        const o = out + <usize> t * od + (<usize> r << 2);
        quads(o, o + bo, o + 2 * bo, o + 3 * bo, xq + <usize> t * as, p, p + bs, p + 2 * bs, p + 3 * bs, nb, z, 4);
      }
    }
    for (let r = r0 + (q << 4); r + 4 <= e; r += 4) {
      const p = w + <usize> r * ws;
      for (let t = t0; t < t1; t++) {
        const o = out + <usize> t * od + (<usize> r << 2);
        quads(o, o, o, o, xq + <usize> t * as, p, p, p, p, nb, z, 1);
      }
    }
  }
  // the natural rows after the last quad
  if (r1 > (d & ~3)) matmul_q8_0(out, xq, w, n, d, T, max(r0, d & ~3), r1);
}

/**
 * Repacks the d x n Q8_0 weight at w in place into the lanes layout, quad by quad (the d % 4 last rows
 * stay natural). tmp: 4 rows of scratch (4 * n / 32 * 34 bytes).
 */
export function repack_q8_0_lanes(w: usize, n: i32, d: i32, tmp: usize): void {
  repackQuads(w, n, d, tmp, 0);
}

/**
 * Row `row` of the d x n lanes-layout weight at w (the table's start, not the row's) as n f32, as
 * dequantize_q8_0 gives it from the natural layout (x = q * d, bit for bit): embedding lookups.
 */
export function dequantize_q8_0_lanes(out: usize, w: usize, n: i32, row: i32, d: i32): void {
  dequantizeQuadRow(out, w, n, row, d, 0);
}
