// Q8_0 in the lanes layout with unsigned weight bytes (w + 128, stored as w ^ 0x80): the "VNNI form".
//
// Why: SIMD128's byte dot takes one unsigned operand. With signed weights (lanes-q8_0.ts) every 16 weight
// bytes cost xor + sub (the activation's signs moved onto them), pmaddubsw, pmaddwd and an add. With the
// weights unsigned, i32x4.relaxed_dot_i8x16_i7x16_add_s(activation, weight, acc) is the whole step: V8 emits
// one vpdpbusd for it on CPUs with AVX-VNNI, an exact u8 x s8 4-way dot added into i32. Elsewhere the op may
// saturate (pmaddubsw's i16 pairs: JavaScriptCore, V8 without AVX-VNNI) or read the second operand signed
// (vpdpbssd), so the backend picks this form only where a run-time probe (src/kernels/wasm.ts,
// dotAddIsExactU8S8) finds exact u8 x s8 sums in the same runtime; the plain build's matmul here is exact
// everywhere (bytes back to signed, widened to i16) but slower, and never chosen.
//
// Per (row, block) the chain sums a_k (w_k + 128) = isum + 128 Σa, so it starts from -128 Σa (Q8_S carries
// Σa at byte 4): the exact integer block sum of matmul_q8_0, then the same f32 steps in the same block order,
//   acc += (d_w * d_a) * f32(isum),
// so every output is bit-identical to matmul_q8_0's (and matmul_q8_0_lanes') for any T and row range, for weight
// bytes in -127..127 (all that ggml's and kvasm's quantizers write). A -128 byte gets its exact product here, as in
// the plain build and llama.cpp; the relaxed signed kernels, which move the activation's sign onto the weight
// (-(-128) wraps to -128), give -128 |a| for it.
// Layout: lanes-q8_0-layout.ts (row r of a quad at bytes 4r..4r+3 of each vector; d % 4 last rows natural,
// as matmul_q8_0 reads them, signed).
import { Q8_0_BYTES, Q8_S_BYTES } from "./ggml-common";
import { matmul_q8_0 } from "./quant-matmul";
import { dequantizeQuadRow, repackQuads } from "./lanes-q8_0-layout";
import { quads, TILE_ROWS, tileRows } from "./lanes-q8_0-vnni-steps";

/**
 * out[t*d + r] = W[r] . xq[t] for r in [r0, r1), t < T, W in the VNNI form of the lanes layout (Q8_S
 * activations, as matmul_q8_0). r0 and r1 fall on quad boundaries or r1 == d; rows from d & ~3 on are natural.
 * T = 1: four quads per pass from four far-apart bands of the range (as matmul_q8_0_lanes: four long streams).
 * T > 1: pairs of adjacent quads, each pair going over all T activation rows in tiles of TILE_ROWS while its
 * 8 rows of weights (6.5 KB at n = 768) stay in L1; the activation rows (123 KB at T = 128) stream from L2.
 */
export function matmul_q8_0_vnni(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * Q8_0_BYTES, as: usize = <usize> nb * Q8_S_BYTES, od: usize = <usize> d << 2;
  const e = min(r1, d & ~3);
  if (T == 1) {
    const nq = max(0, e - r0) >> 2, q = nq >> 2;
    const bs: usize = <usize> q * (ws << 2), bo: usize = <usize> q << 4; // one band's bytes of weights and of outputs
    for (let g = 0; g < q; g++) {
      const r = r0 + (g << 2);
      const p = w + <usize> r * ws, o = out + (<usize> r << 2);
      quads(o, o + bo, o + 2 * bo, o + 3 * bo, xq, p, p + bs, p + 2 * bs, p + 3 * bs, nb, z, 4);
    }
    for (let r = r0 + (q << 4); r + 4 <= e; r += 4) {
      const p = w + <usize> r * ws, o = out + (<usize> r << 2);
      quads(o, o, o, o, xq, p, p, p, p, nb, z, 1);
    }
  } else {
    const qs: usize = ws << 2;
    let r = r0;
    for (; r + 8 <= e; r += 8) {
      const p = w + <usize> r * ws;
      for (let t = 0; t < T; t += TILE_ROWS) {
        tileRows(out + <usize> t * od + (<usize> r << 2), od, p, qs, xq + <usize> t * as, as, nb, z, 2, min(TILE_ROWS, T - t));
      }
    }
    for (; r + 4 <= e; r += 4) {
      const p = w + <usize> r * ws;
      for (let t = 0; t < T; t += TILE_ROWS) {
        tileRows(out + <usize> t * od + (<usize> r << 2), od, p, qs, xq + <usize> t * as, as, nb, z, 1, min(TILE_ROWS, T - t));
      }
    }
  }
  // the natural rows after the last quad
  if (r1 > (d & ~3)) matmul_q8_0(out, xq, w, n, d, T, max(r0, d & ~3), r1);
}

/**
 * Repacks the d x n Q8_0 weight at w in place into the VNNI form of the lanes layout: as repack_q8_0_lanes, each
 * weight byte offset to unsigned (w ^ 0x80 = w + 128); the d % 4 last rows stay natural. tmp: 4 rows of scratch.
 */
export function repack_q8_0_vnni(w: usize, n: i32, d: i32, tmp: usize): void {
  repackQuads(w, n, d, tmp, 0x80, false);
}

/**
 * Row `row` of the d x n weight at w (the table's start) in the VNNI form as n f32, as dequantize_q8_0 gives it
 * from the natural layout (x = q * d, bit for bit): embedding lookups.
 */
export function dequantize_q8_0_vnni(out: usize, w: usize, n: i32, row: i32, d: i32): void {
  dequantizeQuadRow(out, w, n, row, d, 0x80);
}
