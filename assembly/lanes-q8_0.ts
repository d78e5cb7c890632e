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
import { Q8_0_BYTES, Q8_S_BYTES } from "./ggml-common";
import { matmul_q8_0 } from "./quant-matmul";
import { gemmChunk } from "./quant-gemm";
import { dequantizeQuadRow, repackQuads } from "./lanes-q8_0-layout";
import { quads } from "./lanes-q8_0-steps";

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
  repackQuads(w, n, d, tmp, 0, false);
}

/**
 * Row `row` of the d x n lanes-layout weight at w (the table's start, not the row's) as n f32, as
 * dequantize_q8_0 gives it from the natural layout (x = q * d, bit for bit): embedding lookups.
 */
export function dequantize_q8_0_lanes(out: usize, w: usize, n: i32, row: i32, d: i32): void {
  dequantizeQuadRow(out, w, n, row, d, 0);
}
