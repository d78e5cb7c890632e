// Q6_K in kvasm's cross-row "lanes" layout: weights repacked at load so that
// each 16-byte vector holds 4 weights of each of 4 consecutive rows (a quad),
// and i32 lane r of every integer sum belongs to row r of the quad.
//
// Why: the KX layout (kquant-decode.ts) removed the scale splats, but each
// (row, superblock) still paid a cross-lane reduction (reduce4i: 3.0 ns in
// JavaScriptCore, 0.9 ns in V8), the sign extension of its scales, a per-row
// -32 correction (two pmaddwd against the bsums, a shift and a subtraction) and
// per-row f32 steps. Here the activation's 4 bytes are splatted
// (v128.load32_splat) against a vector of 4 rows, and everything per row is
// done once per quad.
//
// Activations: the KX Q8_K blocks of quantize_q8_kx (shared with Q4_K's lanes
// and KX weights, so a layer mixing Q4_K and Q6_K quantizes its input once). In
// chunk c (16 bytes) of half H, "sub-block word" m holds bytes 4m..4m+3
// (relaxed) or 2m, 2m+1, 2m+8, 2m+9 (plain, whose dot16 pairs bytes i and i+8):
// elements 2c, 2c+1 of the half's 16-element groups 2m and 2m+1 (elemOf). A
// dot16 against a lanes vector so gives, in i16 lanes 2r and 2r+1, row r's
// partial sums of Q6_K scale groups 8H+2m and 8H+2m+1: one pmaddwd against the
// quad's scales as i16 pairs (one sign-extending 8-byte load, no splat) widens
// both and applies the scales.
//
// Weights are 0..63 (unsigned: the relaxed dot's i7 operand), so two dot16 add
// up in i16 (4 * 63 * 128 < 2^15) before each pmaddwd. The -32 offset is
// Σ_g sc_g * bsum_g per row: one pmaddwd per sub-block word of the quad's
// scales (shifted by 5, which fits i16) against the activation's bsum pair
// (a 32-bit splat load), subtracted from the i32 sums.
//
// Lanes block (840 bytes = 4 Q6_K blocks, the same values rearranged), per quad and superblock:
//   0    64 bytes: scales, 8 at 8s for sub-block word s = 4H + m (0..7): row r's scales of groups 2s, 2s+1
//        at 2r, 2r+1
//   64   768 bytes: for s and k (0..1), 48 bytes at 64 + 96s + 48k: A, B, C, the vectors of chunks 4k, 4k+1,
//        4k+2 (low 6 bits; row r's weight idx at lanePos(r, idx)) with chunk 4k+3's bits 4-5, 2-3 and 0-1 on
//        top of A, B and C (as KX packs a quad of chunks)
//   832  d of rows 0..3 (f16)
// (in the order the kernels read them: a stream through memory only moves forward)
// Rows from d & ~3 on (fewer than a quad) are in the KX layout (matmul_q6_kx reads them).
//
// Results: every (row, activation row) gets matmul_q6_k's exact integer
// superblock sum (Σ sc * q * a - 32 Σ sc * bsum: integer adds in any order, no
// overflow) and the same f32 operations in the same order:
//   acc += (d_w * d_a) * f32(isum)      per superblock
// so outputs are bit-identical to matmul_q6_k and matmul_q6_kx, for T = 1 and T > 1.
import { blockAdd, dot16, f16, f16quad } from "./quant-util";
import { dequantize_q6_kx, matmul_q6_kx, repack_q6_kx } from "./kquant-decode";
import { gemmChunk } from "./quant-gemm";

// @ts-ignore: decorator
@inline const WB: usize = 210; // Q6_K block
// @ts-ignore: decorator
@inline const AB: usize = 292; // Q8_K block
// @ts-ignore: decorator
@inline const LB: usize = 840; // lanes block: 4 rows x 210
// @ts-ignore: decorator
@inline const SC: usize = 0; // the quad's scales in a lanes block
// @ts-ignore: decorator
@inline const WQ: usize = 64; // its weights
// @ts-ignore: decorator
@inline const DW: usize = 832; // the quad's d

/** Byte of a lanes vector that holds row r's weight idx (0..3); the activation's byte idx sits at the same place. */
// @ts-ignore: decorator
@inline function lanePos(r: usize, idx: usize): usize {
  return RELAXED ? (r << 2) + idx : (r << 1) + (idx & 1) + ((idx >> 1) << 3);
}

/** Element (0..31, within its sub-block word's 32) of weight idx of chunk c: the KX activation's byte order. */
// @ts-ignore: decorator
@inline function elemOf(c: usize, idx: usize): usize {
  return RELAXED ? ((idx >> 1) << 4) + (c << 1) + (idx & 1) : ((idx & 1) << 4) + (c << 1) + (idx >> 1);
}

/** Element e (0..255) of the natural Q6_K block at p, 0..63 (dequantize_q6_k's unpacking). */
// @ts-ignore: decorator
@inline function q6(p: usize, e: usize): u32 {
  const n = e >> 7, l = e & 31, m = (e >> 5) & 3;
  const ql = <u32>load<u8>(p + (n << 6) + l + ((m & 1) << 5));
  const qh = <u32>load<u8>(p + 128 + (n << 5) + l);
  return ((m >= 2 ? ql >> 4 : ql) & 15) | (((qh >> (<u32>m << 1)) & 3) << 4);
}

/**
 * Rewrites the d x n Q6_K weight at w in place into the lanes layout, quad by quad; the d % 4 last rows
 * go to the KX layout. tmp: 4 rows of scratch (4 * n / 256 * 210 bytes). Load time, once per weight.
 */
export function repack_q6_k_lanes(w: usize, n: i32, d: i32, tmp: usize): void {
  const nb = n >> 8;
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3;
  for (let r = 0; r < d4; r += 4) {
    const p = w + <usize>r * ws;
    memory.copy(tmp, p, ws << 2);
    for (let b = 0; b < nb; b++) {
      const o = p + <usize>b * LB, src = tmp + <usize>b * WB;
      for (let i: usize = 0; i < 4; i++) {
        const s = src + i * ws;
        store<u16>(o + DW + (i << 1), load<u16>(s + 208));
        for (let g: usize = 0; g < 16; g++) store<i8>(o + SC + ((g >> 1) << 3) + (i << 1) + (g & 1), load<i8>(s + 192 + g));
      }
      for (let sw: usize = 0; sw < 8; sw++) {
        for (let k: usize = 0; k < 2; k++) {
          const v = o + WQ + sw * 96 + k * 48;
          for (let pos: usize = 0; pos < 16; pos++) {
            const i = RELAXED ? pos >> 2 : (pos & 7) >> 1, idx = RELAXED ? pos & 3 : (pos & 1) | ((pos >> 3) << 1);
            const s = src + i * ws, e = sw << 5;
            const w0 = q6(s, e + elemOf(k << 2, idx)), w1 = q6(s, e + elemOf((k << 2) + 1, idx));
            const w2 = q6(s, e + elemOf((k << 2) + 2, idx)), w3 = q6(s, e + elemOf((k << 2) + 3, idx));
            store<u8>(v + pos, w0 | ((w3 >> 4) << 6));
            store<u8>(v + 16 + pos, w1 | (((w3 >> 2) & 3) << 6));
            store<u8>(v + 32 + pos, w2 | ((w3 & 3) << 6));
          }
        }
      }
    }
  }
  if (d4 < d) repack_q6_kx(w + <usize>d4 * ws, (d - d4) * nb, tmp);
}

/**
 * Row `row` of the d x n lanes-layout weight at w (the weight's start, not the row's) as n f32, with the
 * same float operations as dequantize_q6_k on the natural row (d * sc * (q - 32)): embedding lookups.
 */
export function dequantize_q6_k_lanes(out: usize, w: usize, n: i32, row: i32, d: i32): void {
  const nb = n >> 8;
  const ws: usize = <usize>nb * WB;
  if (row >= (d & ~3)) {
    dequantize_q6_kx(out, w + <usize>row * ws, n);
    return;
  }
  const i = <usize>(row & 3);
  const quad = w + <usize>(row & ~3) * ws;
  for (let b = 0; b < nb; b++) {
    const p = quad + <usize>b * LB, dv = f16(p + DW + (i << 1));
    for (let e: usize = 0; e < 256; e++) {
      const sw = e >> 5, u = e & 31, c = (u & 15) >> 1;
      const idx = RELAXED ? ((u >> 4) << 1) | (u & 1) : (u >> 4) | ((u & 1) << 1);
      const v = p + WQ + sw * 96 + (c >> 2) * 48 + lanePos(i, idx);
      const j = c & 3;
      let q: i32;
      if (j < 3) q = <i32>load<u8>(v + (<usize>j << 4)) & 63;
      else q = (<i32>load<u8>(v + 32) >> 6) | ((<i32>load<u8>(v + 16) >> 6) << 2) | ((<i32>load<u8>(v) >> 6) << 4);
      const sc = <f32>load<i8>(p + SC + (sw << 3) + (i << 1) + ((e >> 4) & 1)); // group e >> 4 = 2sw + bit 4 of e
      store<f32>(out + ((<usize>(b * 256) + e) << 2), dv * sc * <f32>(q - 32));
    }
  }
}

/**
 * The activation bytes that pair with a lanes vector: sub-block word m's four bytes of the KX chunk at x, in
 * every row's place. Relaxed: one 32-bit splat load; plain: a byte swizzle by bm (bcastMask(m)).
 */
// @ts-ignore: decorator
@inline function act(x: usize, m: usize, bm: v128): v128 {
  return RELAXED ? v128.load32_splat(x + (m << 2)) : i8x16.swizzle(v128.load(x), bm);
}

/** Plain build: the swizzle that copies bytes 2m, 2m + 1 to every 2r, 2r + 1 and 2m + 8, 2m + 9 to every 2r + 8, 2r + 9. */
// @ts-ignore: decorator
@inline function bcastMask(m: usize): v128 {
  return i8x16.add(i16x8.splat(0x0100), i8x16.add(i64x2.replace_lane(i64x2.splat(0), 1, 0x0808080808080808), i8x16.splat(<i8>(m << 1))));
}

/**
 * The fourth chunk of a packed quad (two-bit pieces on top of A, B, C) as bytes 0..63. SHIFT: three 16-bit
 * shifts (each step's neighbouring-byte bits are zero), as kquant-decode.ts quad(). Otherwise six byte averages
 * (avgr_u(x, 0) = x / 2 for an even byte x, avgr_u(x, y) = (x + y) / 2 when x + y is even; every step here is
 * even): w3 = ((C_hi / 4 + B_hi) / 4 + A_hi) / 4. JavaScriptCore lowers each i16x8.shr_u by a constant to four
 * instructions (the count moved through a general register into a vector register), pavgb to one; V8 runs the
 * shifts faster (docs/cpu-performance.md "Q6_K decode under JavaScriptCore").
 */
// @ts-ignore: decorator
@inline function fourth(A: v128, B: v128, C: v128, m63: v128, zero: v128, SHIFT: bool): v128 {
  if (SHIFT) {
    let t = i16x8.shr_u(v128.andnot(C, m63), 2);
    t = i16x8.shr_u(v128.or(t, v128.andnot(B, m63)), 2);
    return i16x8.shr_u(v128.or(t, v128.andnot(A, m63)), 2);
  }
  let u = i8x16.avgr_u(i8x16.avgr_u(v128.andnot(C, m63), zero), zero); // C_hi / 4
  u = i8x16.avgr_u(i8x16.avgr_u(u, v128.andnot(B, m63)), zero); // (C_hi / 4 + B_hi) / 4
  return i8x16.avgr_u(i8x16.avgr_u(u, v128.andnot(A, m63)), zero); // (... + A_hi) / 4
}

/**
 * 32 x the sub-block scales S (i16 lanes, |sc| <= 128: exact either way). SHIFT: one shift (V8); otherwise a
 * multiply by k32 (32): JavaScriptCore lowers a shift by a constant to four instructions (see fourth()), pmullw
 * is one; V8 runs the shift as fast.
 */
// @ts-ignore: decorator
@inline function times32(S: v128, k32: v128, SHIFT: bool): v128 {
  return SHIFT ? i16x8.shl(S, 5) : i16x8.mul(S, k32);
}

/**
 * One packed quad of chunks (A, B, C at v: chunks 4k..4k+3 of a sub-block word) against the four activation
 * vectors x0..x3: Σ sc * q * a in i32 lanes (row r in lane r).
 */
// @ts-ignore: decorator
@inline function quadSum(v: usize, x0: v128, x1: v128, x2: v128, x3: v128, S: v128, m63: v128, zero: v128, SHIFT: bool): v128 {
  const A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
  const w3 = fourth(A, B, C, m63, zero, SHIFT);
  const t0 = i16x8.add(dot16(v128.and(A, m63), x0), dot16(v128.and(B, m63), x1));
  const t1 = i16x8.add(dot16(v128.and(C, m63), x2), dot16(w3, x3));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

/**
 * QN quads (QN = 4 or 1; qs: bytes between quads) against one activation row q (T = 1): 4 * QN outputs, quad k's
 * at out + k * oqs.
 */
// @ts-ignore: decorator
@inline function band(out: usize, oqs: usize, q: usize, p: usize, nb: i32, qs: usize, z: i32, QN: i32, SHIFT: bool): void {
  // constants from an opaque zero (z), so that V8 keeps them in registers (see quant-matmul.ts)
  const m63 = i8x16.splat(<i8>(63 + z)), z8 = i8x16.splat(<i8>z), k32 = i16x8.splat(<i16>(32 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    for (let sw: usize = 0; sw < 8; sw++) {
      const m = sw & 3, bm = bcastMask(m);
      const x = q + 4 + ((sw >> 2) << 7);
      const o = p + WQ + sw * 96, so = p + SC + (sw << 3);
      const S0 = v128.load8x8_s(so);
      for (let k: usize = 0; k < 2; k++) {
        const xk = x + (k << 6), ok = o + k * 48;
        const x0 = act(xk, m, bm), x1 = act(xk + 16, m, bm), x2 = act(xk + 32, m, bm), x3 = act(xk + 48, m, bm);
        s0 = i32x4.add(s0, quadSum(ok, x0, x1, x2, x3, S0, m63, z8, SHIFT));
        if (QN > 1) {
          s1 = i32x4.add(s1, quadSum(ok + qs, x0, x1, x2, x3, v128.load8x8_s(so + qs), m63, z8, SHIFT));
          s2 = i32x4.add(s2, quadSum(ok + 2 * qs, x0, x1, x2, x3, v128.load8x8_s(so + 2 * qs), m63, z8, SHIFT));
          s3 = i32x4.add(s3, quadSum(ok + 3 * qs, x0, x1, x2, x3, v128.load8x8_s(so + 3 * qs), m63, z8, SHIFT));
        }
      }
      // the -32 offset: 32 Σ sc * bsum over groups 2sw, 2sw + 1
      const B = v128.load32_splat(q + 260 + (sw << 2));
      s0 = i32x4.sub(s0, i32x4.dot_i16x8_s(times32(S0, k32, SHIFT), B));
      if (QN > 1) {
        s1 = i32x4.sub(s1, i32x4.dot_i16x8_s(times32(v128.load8x8_s(so + qs), k32, SHIFT), B));
        s2 = i32x4.sub(s2, i32x4.dot_i16x8_s(times32(v128.load8x8_s(so + 2 * qs), k32, SHIFT), B));
        s3 = i32x4.sub(s3, i32x4.dot_i16x8_s(times32(v128.load8x8_s(so + 3 * qs), k32, SHIFT), B));
      }
    }
    // as matmul_q6_k: (d_w * d_a) * f32(isum), added in superblock order
    const da = v128.load32_splat(q);
    a0 = blockAdd(a0, f16quad(p + DW, hmask, p112), da, s0);
    if (QN > 1) {
      a1 = blockAdd(a1, f16quad(p + qs + DW, hmask, p112), da, s1);
      a2 = blockAdd(a2, f16quad(p + 2 * qs + DW, hmask, p112), da, s2);
      a3 = blockAdd(a3, f16quad(p + 3 * qs + DW, hmask, p112), da, s3);
    }
    p += LB;
    q += AB;
  }
  v128.store(out, a0);
  if (QN > 1) {
    v128.store(out + oqs, a1);
    v128.store(out + 2 * oqs, a2);
    v128.store(out + 3 * oqs, a3);
  }
}

/** The i32 sums of decoded chunks w0..w3 against the activation at x (chunks x, x + 16, x + 32, x + 48; sub-block word m). */
// @ts-ignore: decorator
@inline function quadW(w0: v128, w1: v128, w2: v128, w3: v128, x: usize, m: usize, bm: v128, S: v128): v128 {
  const t0 = i16x8.add(dot16(w0, act(x, m, bm)), dot16(w1, act(x + 16, m, bm)));
  const t1 = i16x8.add(dot16(w2, act(x + 32, m, bm)), dot16(w3, act(x + 48, m, bm)));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

/**
 * One quad p against four activation rows q0..q3 (T > 1; the same row repeated where fewer): each weight
 * vector is unpacked once for four rows, each quad's scales loaded once per sub-block word.
 * Results: four f32x4 (rows of the quad) stored at o0..o3 (equal pointers where rows repeat: same values).
 * The two chunk quads of a sub-block word are written out and every address is a pointer moved along
 * (weights, scales, bsums) or a fixed distance from the first activation row: with the offsets computed
 * from the loop counters instead, V8 ran this tile at 0.93-0.95x of KX's, now 1.08-1.11x (same run).
 * SHIFT: the fourth chunk by shifts (V8) or byte averages (JavaScriptCore), as fourth().
 */
// @ts-ignore: decorator
@inline function tile(o0: usize, o1: usize, o2: usize, o3: usize, p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, z: i32, SHIFT: bool): void {
  const m63 = i8x16.splat(<i8>(63 + z)), k32 = i16x8.splat(<i16>(32 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  const d1 = q1 - q0, d2 = q2 - q0, d3 = q3 - q0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    let v = p + WQ, sp = p + SC, x = q0 + 4, bq = q0 + 260;
    for (let sw = 0; sw < 8; sw++) {
      const m: usize = <usize>(sw & 3), bm = bcastMask(m);
      const S = v128.load8x8_s(sp);
      // sub-block word m's bytes: relaxed, the splat's address; plain, the swizzle bm picks them
      const xm = x + (RELAXED ? (m << 2) : 0);
      {
        const A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
        const w3 = fourth(A, B, C, m63, zero, SHIFT);
        const w0 = v128.and(A, m63), w1 = v128.and(B, m63), w2 = v128.and(C, m63);
        s0 = i32x4.add(s0, quadW(w0, w1, w2, w3, xm, 0, bm, S));
        s1 = i32x4.add(s1, quadW(w0, w1, w2, w3, xm + d1, 0, bm, S));
        s2 = i32x4.add(s2, quadW(w0, w1, w2, w3, xm + d2, 0, bm, S));
        s3 = i32x4.add(s3, quadW(w0, w1, w2, w3, xm + d3, 0, bm, S));
      }
      {
        const A = v128.load(v + 48), B = v128.load(v + 64), C = v128.load(v + 80);
        const w3 = fourth(A, B, C, m63, zero, SHIFT);
        const w0 = v128.and(A, m63), w1 = v128.and(B, m63), w2 = v128.and(C, m63);
        const xk = xm + 64;
        s0 = i32x4.add(s0, quadW(w0, w1, w2, w3, xk, 0, bm, S));
        s1 = i32x4.add(s1, quadW(w0, w1, w2, w3, xk + d1, 0, bm, S));
        s2 = i32x4.add(s2, quadW(w0, w1, w2, w3, xk + d2, 0, bm, S));
        s3 = i32x4.add(s3, quadW(w0, w1, w2, w3, xk + d3, 0, bm, S));
      }
      const S32 = times32(S, k32, SHIFT);
      s0 = i32x4.sub(s0, i32x4.dot_i16x8_s(S32, v128.load32_splat(bq)));
      s1 = i32x4.sub(s1, i32x4.dot_i16x8_s(S32, v128.load32_splat(bq + d1)));
      s2 = i32x4.sub(s2, i32x4.dot_i16x8_s(S32, v128.load32_splat(bq + d2)));
      s3 = i32x4.sub(s3, i32x4.dot_i16x8_s(S32, v128.load32_splat(bq + d3)));
      v += 96; sp += 8; bq += 4;
      if (sw == 3) x += 128; // half 1's chunks
    }
    const dw = f16quad(p + DW, hmask, p112);
    a0 = blockAdd(a0, dw, v128.load32_splat(q0), s0);
    a1 = blockAdd(a1, dw, v128.load32_splat(q0 + d1), s1);
    a2 = blockAdd(a2, dw, v128.load32_splat(q0 + d2), s2);
    a3 = blockAdd(a3, dw, v128.load32_splat(q0 + d3), s3);
    p += LB;
    q0 += AB;
  }
  v128.store(o3, a3);
  v128.store(o2, a2);
  v128.store(o1, a1);
  v128.store(o0, a0);
}

/** T > 1: activation rows in chunks that stay in L1 (gemmChunk), each quad passing over a chunk four rows at a time. */
// @ts-ignore: decorator
@inline function tiles(out: usize, xq: usize, w: usize, nb: i32, d: i32, T: i32, r0: i32, e: i32, z: i32, SHIFT: bool): void {
  const ws: usize = <usize>nb * WB, as: usize = <usize>nb * AB, od: usize = <usize>d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let r = r0; r + 4 <= e; r += 4) {
      const p = w + <usize>r * ws, o = out + (<usize>r << 2);
      for (let t = t0; t < t1; t += 4) {
        const q = xq + <usize>t * as, ot = o + <usize>t * od;
        const tb = t + 1 < t1 ? 1 : 0, tc = t + 2 < t1 ? 2 : tb, td = t + 3 < t1 ? 3 : tc;
        tile(ot, ot + <usize>tb * od, ot + <usize>tc * od, ot + <usize>td * od, p, q, q + <usize>tb * as, q + <usize>tc * as, q + <usize>td * as, nb, z, SHIFT);
      }
    }
  }
}

/**
 * out[t*d + r] = W[r] . xq[t] for r in [r0, r1), t < T: W in the lanes layout (repack_q6_k_lanes), xq KX
 * Q8_K activations (quantize_q8_kx), as matmul_q6_kx. r0 and r1 fall on quad boundaries (multiples of 4) or
 * r1 == d; rows from d & ~3 on are KX (matmul_q6_kx). T = 1: 16 rows per pass (four quads from four bands),
 * then single quads. T > 1: activation rows in chunks that stay in L1 (gemmChunk), each quad passing over a
 * chunk four rows at a time (tile: each weight vector unpacked once for four rows).
 */
export function matmul_q6_k_lanes(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3, e = min(r1, d4);
  if (T == 1) {
    // four quads from four far-apart bands of the range, as matmul_q6_kx takes rows: four sequential streams
    // through memory (lanes-kquant.ts: adjacent quads read in turn ran slower with the weights coming from DRAM)
    const qn = (e - r0) >> 4, qo: usize = <usize>qn << 4;
    for (let g = 0; g < qn; g++) {
      const r = r0 + 4 * g;
      band(out + (<usize>r << 2), qo, xq, w + <usize>r * ws, nb, (qo >> 2) * ws, z, 4, true);
    }
    for (let r = r0 + 16 * qn; r + 4 <= e; r += 4) band(out + (<usize>r << 2), 16, xq, w + <usize>r * ws, nb, ws << 2, z, 1, true);
  } else tiles(out, xq, w, nb, d, T, r0, e, z, true);
  // the KX rows after the last quad
  if (r1 > d4) matmul_q6_kx(out, xq, w, n, d, T, max(r0, d4), r1);
}

/**
 * matmul_q6_k_lanes in the form JavaScriptCore runs fast (Bun's Q6_K matmul, src/quant/kernels.ts): the same steps
 * with the fourth chunk of each packed quad by byte averages instead of shifts (fourth()). Forms with fewer live
 * vectors (one quad per pass, each splat loaded where used) ran 1.10-1.18x in the kernel bench but 0.72-0.73x on
 * the model's classifier in Bun (docs/cpu-performance.md "Q6_K decode under JavaScriptCore"), so T = 1 keeps band()'s four bands. The same
 * integer sums and f32 steps, so the same bits for every T, row range and thread count.
 */
export function matmul_q6_k_lanes_q1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3, e = min(r1, d4);
  if (T == 1) {
    const qn = (e - r0) >> 4, qo: usize = <usize>qn << 4;
    for (let g = 0; g < qn; g++) {
      const r = r0 + 4 * g;
      band(out + (<usize>r << 2), qo, xq, w + <usize>r * ws, nb, (qo >> 2) * ws, z, 4, false);
    }
    for (let r = r0 + 16 * qn; r + 4 <= e; r += 4) band(out + (<usize>r << 2), 16, xq, w + <usize>r * ws, nb, ws << 2, z, 1, false);
  } else tiles(out, xq, w, nb, d, T, r0, e, z, false);
  if (r1 > d4) matmul_q6_kx(out, xq, w, n, d, T, max(r0, d4), r1);
}
