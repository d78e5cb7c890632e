// Register-tiled quantized matmuls for many activation rows (prefill, batched decode):
// four weight rows x four activation rows per tile, so each weight block is unpacked
// once for four activation rows and each activation block (with its Q4_0 offset sum)
// is loaded once for four weight rows.
//
// Batch invariance: every (weight row, activation row) pair gets the same exact
// integer block sum and the same f32 operations, in the same block order, as the
// one-row kernels in quant-matmul.ts (tile(), SAME_A):
//   acc += (d_w * d_a) * f32(isum)       per block, blocks in order
// so a row's result does not depend on T, on the rows beside it, or on r0/r1.
// Only the grouping of the exact integer sums differs, which cannot change them.
import { dot16, f16, f16x4, reduce4i, reduce4i16 } from "./quant-util";
import { Q4_0, Q4_0_BYTES, Q8_0, Q8_0_BYTES } from "./ggml-common";

/** v with the sign of the bytes whose mask m is all ones flipped (v ^ m) - m. */
// @ts-ignore: decorator
@inline function flip(v: v128, m: v128): v128 {
  return i8x16.sub(v128.xor(v, m), m);
}

/** Q4_0: four weight rows' unpacked block (l: elements 0..15, h: 16..31) against one activation block at q. */
// @ts-ignore: decorator
@inline function q4_0Row(
  l0: v128,
  h0: v128,
  l1: v128,
  h1: v128,
  l2: v128,
  h2: v128,
  l3: v128,
  h3: v128,
  q: usize,
  dw: v128,
  ones8: v128,
  ones16: v128,
): v128 {
  const x0 = v128.load(q + 2), x1 = v128.load(q + 18);
  // (q - 8) . a = q . a - 8 Σa, subtracted in i16 (|lane| <= 4 * 15 * 127 + 8 * 4 * 127 fits)
  const off = i16x8.shl(i16x8.add(dot16(ones8, x0), dot16(ones8, x1)), 3);
  const s0 = i32x4.dot_i16x8_s(i16x8.sub(i16x8.add(dot16(l0, x0), dot16(h0, x1)), off), ones16);
  const s1 = i32x4.dot_i16x8_s(i16x8.sub(i16x8.add(dot16(l1, x0), dot16(h1, x1)), off), ones16);
  const s2 = i32x4.dot_i16x8_s(i16x8.sub(i16x8.add(dot16(l2, x0), dot16(h2, x1)), off), ones16);
  const s3 = i32x4.dot_i16x8_s(i16x8.sub(i16x8.add(dot16(l3, x0), dot16(h3, x1)), off), ones16);
  return f32x4.mul(f32x4.mul(dw, f32x4.splat(f16(q))), f32x4.convert_i32x4_s(reduce4i16(s0, s1, s2, s3, ones16)));
}

/**
 * Q8_0: four weight rows' block (signed halves w_r0, w_r1) against one activation block at q.
 * Both sides are signed: the activation's magnitudes are dot16's unsigned operand and its
 * signs move onto the weights (abs and compare once per activation block, xor and sub per pair).
 */
// @ts-ignore: decorator
@inline function q8_0Row(
  a0: v128,
  b0: v128,
  a1: v128,
  b1: v128,
  a2: v128,
  b2: v128,
  a3: v128,
  b3: v128,
  q: usize,
  dw: v128,
  ones16: v128,
): v128 {
  const x0 = v128.load(q + 2), x1 = v128.load(q + 18);
  const zero = i32x4.splat(0);
  const n0 = i8x16.lt_s(x0, zero), n1 = i8x16.lt_s(x1, zero);
  const u0 = i8x16.abs(x0), u1 = i8x16.abs(x1);
  // products up to 127*127: two per i16 lane fit, four do not, so each half widens on its own
  const s0 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a0, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b0, n1)), ones16));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a1, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b1, n1)), ones16));
  const s2 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a2, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b2, n1)), ones16));
  const s3 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a3, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b3, n1)), ones16));
  return f32x4.mul(f32x4.mul(dw, f32x4.splat(f16(q))), f32x4.convert_i32x4_s(reduce4i(s0, s1, s2, s3)));
}

/** Stores lanes [0, nr) of v at o (nr 1..4; four lanes in one store). */
// @ts-ignore: decorator
@inline function storeRows(o: usize, v: v128, nr: i32): void {
  if (nr == 4) {
    v128.store(o, v);
    return;
  }
  store<f32>(o, f32x4.extract_lane(v, 0));
  if (nr > 1) store<f32>(o + 4, f32x4.extract_lane(v, 1));
  if (nr > 2) store<f32>(o + 8, f32x4.extract_lane(v, 2));
}

/**
 * One 4 x 4 tile of a 32-element-block type (Q4_0, Q8_0): weight rows at p, p + ws, ...
 * (nr of them valid; the others repeat the first), activation rows at q, q + as, ...
 * (nt valid); out rows r..r+nr of activation rows t..t+nt at o (row stride od bytes).
 */
// @ts-ignore: decorator
@inline function tile32(k: i32, o: usize, od: usize, p: usize, ws: usize, nr: i32, q: usize, as: usize, nt: i32, nb: i32, z: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones8 = i8x16.splat(<i8> (1 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const p0 = p, p1 = nr > 1 ? p + ws : p, p2 = nr > 2 ? p + 2 * ws : p, p3 = nr > 3 ? p + 3 * ws : p;
  const q0 = q, q1 = nt > 1 ? q + as : q, q2 = nt > 2 ? q + 2 * as : q, q3 = nt > 3 ? q + 3 * as : q;
  const WB: usize = k == Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    const wo = <usize> b * WB, ao = <usize> b * Q8_0_BYTES; // activations: Q8_0 blocks
    const dw = f16x4(p0 + wo, p1 + wo, p2 + wo, p3 + wo, hmask, p112);
    if (k == Q4_0) {
      const w0 = v128.load(p0 + wo + 2), w1 = v128.load(p1 + wo + 2), w2 = v128.load(p2 + wo + 2), w3 = v128.load(p3 + wo + 2);
      const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
      const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
      const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
      const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
      c0 = f32x4.add(c0, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q0 + ao, dw, ones8, ones16));
      c1 = f32x4.add(c1, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q1 + ao, dw, ones8, ones16));
      c2 = f32x4.add(c2, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q2 + ao, dw, ones8, ones16));
      c3 = f32x4.add(c3, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q3 + ao, dw, ones8, ones16));
    } else {
      const a0 = v128.load(p0 + wo + 2), b0 = v128.load(p0 + wo + 18), a1 = v128.load(p1 + wo + 2), b1 = v128.load(p1 + wo + 18);
      const a2 = v128.load(p2 + wo + 2), b2 = v128.load(p2 + wo + 18), a3 = v128.load(p3 + wo + 2), b3 = v128.load(p3 + wo + 18);
      c0 = f32x4.add(c0, q8_0Row(a0, b0, a1, b1, a2, b2, a3, b3, q0 + ao, dw, ones16));
      c1 = f32x4.add(c1, q8_0Row(a0, b0, a1, b1, a2, b2, a3, b3, q1 + ao, dw, ones16));
      c2 = f32x4.add(c2, q8_0Row(a0, b0, a1, b1, a2, b2, a3, b3, q2 + ao, dw, ones16));
      c3 = f32x4.add(c3, q8_0Row(a0, b0, a1, b1, a2, b2, a3, b3, q3 + ao, dw, ones16));
    }
  }
  storeRows(o, c0, nr);
  if (nt > 1) storeRows(o + od, c1, nr);
  if (nt > 2) storeRows(o + 2 * od, c2, nr);
  if (nt > 3) storeRows(o + 3 * od, c3, nr);
}

/** Does gemm() have a tiled kernel for ggml type k? */
// @ts-ignore: decorator
@inline export function hasGemm(k: i32): bool {
  return k == Q4_0 || k == Q8_0;
}

/**
 * How many activation rows (a multiple of 4) of `as` bytes each stay in L1 (16 KiB of it)
 * while every weight row passes over them: each weight row is then read T / chunk times,
 * from L2 or memory, and each activation byte from L1.
 */
// @ts-ignore: decorator
@inline export function gemmChunk(as: usize): i32 {
  const chunk = <i32>(16384 / as) & ~3;
  return chunk < 4 ? 4 : chunk;
}

/**
 * out[t*d + r] = W[r] . x[t] for r in [r0, r1), t < T, in 4 x 4 tiles, activation rows in
 * chunks that stay in L1 (gemmChunk).
 */
// @ts-ignore: decorator
@inline export function gemm(k: i32, out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32, ws: usize, as: usize): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const od: usize = <usize> d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let r = r0; r < r1; r += 4) {
      const nr = min(4, r1 - r);
      const p = w + <usize> r * ws;
      for (let t = t0; t < t1; t += 4) {
        tile32(k, out + <usize> t * od + (<usize> r << 2), od, p, ws, nr, xq + <usize> t * as, as, min(4, t1 - t), nb, z);
      }
    }
  }
}
