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
// Activations are Q8_S blocks (quant-act.ts): f32 d at 0, i32 sum at 4, int8 at 8.
import { dot16, f16x4, reduce4i, reduce4i16 } from "./quant-util";
import { Q4_0, Q4_0_BYTES, Q8_0, Q8_0_BYTES, Q8_S_BYTES } from "./ggml-common";

/** v with the sign of the bytes whose mask m is all ones flipped (v ^ m) - m. */
// @ts-ignore: decorator
@inline function flip(v: v128, m: v128): v128 {
  return i8x16.sub(v128.xor(v, m), m);
}

/**
 * Q4_0: four weight rows' unpacked block (l: elements 0..15, h: 16..31) against one activation block at q.
 * The unsigned nibbles' products are summed first (every partial that reduce4i16 narrows fits i16:
 * 16 * 15 * 127 < 2^15), then (q - 8) . a = q . a - 8 Σa with Σa from the block, in i32.
 */
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
  ones16: v128,
): v128 {
  const x0 = v128.load(q + 8), x1 = v128.load(q + 24);
  const s0 = i32x4.dot_i16x8_s(i16x8.add(dot16(l0, x0), dot16(h0, x1)), ones16);
  const s1 = i32x4.dot_i16x8_s(i16x8.add(dot16(l1, x0), dot16(h1, x1)), ones16);
  const s2 = i32x4.dot_i16x8_s(i16x8.add(dot16(l2, x0), dot16(h2, x1)), ones16);
  const s3 = i32x4.dot_i16x8_s(i16x8.add(dot16(l3, x0), dot16(h3, x1)), ones16);
  const isum = i32x4.sub(reduce4i16(s0, s1, s2, s3, ones16), i32x4.shl(v128.load32_splat(q + 4), 3));
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(isum));
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
  const x0 = v128.load(q + 8), x1 = v128.load(q + 24);
  const zero = i32x4.splat(0);
  const n0 = i8x16.lt_s(x0, zero), n1 = i8x16.lt_s(x1, zero);
  const u0 = i8x16.abs(x0), u1 = i8x16.abs(x1);
  // products up to 127*127: two per i16 lane fit, four do not, so each half widens on its own
  const s0 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a0, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b0, n1)), ones16));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a1, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b1, n1)), ones16));
  const s2 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a2, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b2, n1)), ones16));
  const s3 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(a3, n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(b3, n1)), ones16));
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(reduce4i(s0, s1, s2, s3)));
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
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const p0 = p, p1 = nr > 1 ? p + ws : p, p2 = nr > 2 ? p + 2 * ws : p, p3 = nr > 3 ? p + 3 * ws : p;
  const q0 = q, q1 = nt > 1 ? q + as : q, q2 = nt > 2 ? q + 2 * as : q, q3 = nt > 3 ? q + 3 * as : q;
  const WB: usize = k == Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    const wo = <usize> b * WB, ao = <usize> b * Q8_S_BYTES;
    const dw = f16x4(p0 + wo, p1 + wo, p2 + wo, p3 + wo, hmask, p112);
    if (k == Q4_0) {
      const w0 = v128.load(p0 + wo + 2), w1 = v128.load(p1 + wo + 2), w2 = v128.load(p2 + wo + 2), w3 = v128.load(p3 + wo + 2);
      const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
      const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
      const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
      const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
      c0 = f32x4.add(c0, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q0 + ao, dw, ones16));
      c1 = f32x4.add(c1, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q1 + ao, dw, ones16));
      c2 = f32x4.add(c2, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q2 + ao, dw, ones16));
      c3 = f32x4.add(c3, q4_0Row(l0, h0, l1, h1, l2, h2, l3, h3, q3 + ao, dw, ones16));
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

/**
 * One activation row (T == 1, decode) against four weight rows at p0..p3: the same
 * q4_0Row / q8_0Row per block as a tile's, so each output has the bits it has in gemm().
 * (tile() in quant-matmul.ts does the same sums, but its generic loop costs Q4_0 about
 * 10% and Q8_0 about 12% more per block.)
 */
// @ts-ignore: decorator
@inline function gemv4(k: i32, p0: usize, p1: usize, p2: usize, p3: usize, q: usize, nb: i32, z: i32): v128 {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const WB: usize = k == Q4_0 ? Q4_0_BYTES : Q8_0_BYTES;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const dw = f16x4(p0, p1, p2, p3, hmask, p112);
    if (k == Q4_0) {
      const w0 = v128.load(p0 + 2), w1 = v128.load(p1 + 2), w2 = v128.load(p2 + 2), w3 = v128.load(p3 + 2);
      acc = f32x4.add(acc, q4_0Row(
        v128.and(w0, m4), v128.and(i16x8.shr_u(w0, 4), m4), v128.and(w1, m4), v128.and(i16x8.shr_u(w1, 4), m4),
        v128.and(w2, m4), v128.and(i16x8.shr_u(w2, 4), m4), v128.and(w3, m4), v128.and(i16x8.shr_u(w3, 4), m4),
        q, dw, ones16,
      ));
    } else {
      acc = f32x4.add(acc, q8_0Row(
        v128.load(p0 + 2), v128.load(p0 + 18), v128.load(p1 + 2), v128.load(p1 + 18),
        v128.load(p2 + 2), v128.load(p2 + 18), v128.load(p3 + 2), v128.load(p3 + 18),
        q, dw, ones16,
      ));
    }
    p0 += WB;
    p1 += WB;
    p2 += WB;
    p3 += WB;
    q += Q8_S_BYTES;
  }
  return acc;
}

/**
 * out[r] = W[r] . x for r in [r0, r1), one activation row: four rows from four far-apart
 * bands of [r0, r1) per step (g, g+q, g+2q, g+3q: four independent streams through memory),
 * as the other types' one-row kernels in quant-matmul.ts.
 */
// @ts-ignore: decorator
@inline export function gemv(k: i32, out: usize, xq: usize, w: usize, n: i32, r0: i32, r1: i32, ws: usize): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const q = (r1 - r0) >> 2;
  const qs = <usize> q * ws, qo = <usize> q << 2;
  for (let g = r0; g < r0 + q; g++) {
    const p = w + <usize> g * ws;
    const v = gemv4(k, p, p + qs, p + 2 * qs, p + 3 * qs, xq, nb, z);
    const o = out + (<usize> g << 2);
    store<f32>(o, f32x4.extract_lane(v, 0));
    store<f32>(o + qo, f32x4.extract_lane(v, 1));
    store<f32>(o + 2 * qo, f32x4.extract_lane(v, 2));
    store<f32>(o + 3 * qo, f32x4.extract_lane(v, 3));
  }
  const r = r0 + 4 * q;
  if (r < r1) {
    // 1..3 leftover rows: repeat the last one
    const p = w + <usize> r * ws;
    const pb = r + 1 < r1 ? p + ws : p, pc = r + 2 < r1 ? p + 2 * ws : p;
    const v = gemv4(k, p, pb, pc, p, xq, nb, z);
    store<f32>(out + (<usize> r << 2), f32x4.extract_lane(v, 0));
    if (r + 1 < r1) store<f32>(out + (<usize> (r + 1) << 2), f32x4.extract_lane(v, 1));
    if (r + 2 < r1) store<f32>(out + (<usize> (r + 2) << 2), f32x4.extract_lane(v, 2));
  }
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
