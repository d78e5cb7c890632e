// Q6_K in kvasm's "KX" layout: weights repacked at load (repack_q6_kx) and
// activations quantized in the matching order (quantize_q8_kx), so that one
// i16x8 vector of the row's scales applies to every 16 bytes of a 128-element
// half without a splat per sub-block.
//
// Why: a Q6_K scale covers 16 consecutive elements, and a SIMD register of
// weights in ggml's order holds 16 consecutive elements, so each register's
// partial dot products need their own scale splat and their own widening
// pmaddwd (about a quarter of the natural kernel's instructions). In the KX
// order, chunk c (16 bytes) of half H of a superblock holds two elements of each
// of the half's eight 16-element groups, placed so that the i16 lane i of the
// int8 dot product (dot16) always sums elements of group i:
//   relaxed (pmaddubsw pairs bytes 2i, 2i+1):   byte 2g + e   <- element 128H + 16g + 2c + e
//   plain   (dot16 pairs bytes i, i+8):         byte g + 8e   <- element 128H + 16g + 2c + e
// Two chunks' i16 partials are added (|lane| <= 2 * 2 * 63 * 127 < 2^15) and
// widened once by pmaddwd with the half's eight scales. Each build repacks and
// quantizes in its own order, so the same build must do both (the backend does).
//
// KX block (210 bytes, like Q6_K): for half H and quad k (chunks 4k..4k+3), 48
// bytes at 96H + 48k: A, B, C (16 each); chunk 4k+j (j < 3) is the low 6 bits of
// A, B, C; chunk 4k+3 is C's top two bits | B's << 2 | A's << 4. Scales (16 i8 at
// 192) and d (f16 at 208) stay where Q6_K has them, and so does the activation's
// block (f32 d, 256 i8, 16 natural-order i16 bsums): only the int8 order differs.
//
// Results: every (weight row, activation row) pair gets the same exact integer
// superblock sum and the same f32 operations, in the same order, as
// matmul_q6_k over the natural layout (quant-matmul.ts), for T = 1 and T > 1:
//   acc += (d_w * d_a) * f32(Σ sc * q * a - 32 Σ sc * bsum)       per superblock
// so logits are bit-identical to it, alone and batched, in both builds.
import { f16, f16x4, reduce4i, dot16 } from "./quant-util";

// @ts-ignore: decorator
@inline const WB: usize = 210; // Q6_K block
// @ts-ignore: decorator
@inline const AB: usize = 292; // Q8_K block

/** Byte of chunk c (returned << 4 | byte) holding natural element e (0..127, within a half). */
// @ts-ignore: decorator
@inline function kxPosition(e: i32): i32 {
  const g = e >> 4, o = e & 15;
  return ((o >> 1) << 4) + (RELAXED ? (g << 1) + (o & 1) : g + ((o & 1) << 3));
}

/** Element e (0..255) of the KX block at p, 0..63. */
// @ts-ignore: decorator
@inline function q6kx(p: usize, e: i32): i32 {
  const H = e >> 7, pos = kxPosition(e & 127), c = pos >> 4, b = pos & 15;
  const base = p + (<usize>H * 96) + (<usize>(c >> 2) * 48) + <usize>b;
  const j = c & 3;
  if (j < 3) return <i32>load<u8>(base + (<usize>j << 4)) & 63;
  return (<i32>load<u8>(base + 32) >> 6) | ((<i32>load<u8>(base + 16) >> 6) << 2) | ((<i32>load<u8>(base) >> 6) << 4);
}

/**
 * Rewrites nb Q6_K blocks at w in place into this build's KX layout (load time, once per weight).
 * tmp: 256 bytes of scratch. Per block: the 256 values in natural order go to tmp (as q6kQuad in
 * quant-matmul.ts unpacks them), each half's eight groups are transposed in 16-bit pairs (chunk c, lane g
 * = group g's elements 2c, 2c+1: the relaxed order; the plain one moves each pair's second byte up by 8),
 * and each quad's fourth chunk is spread over the top two bits of the other three.
 */
export function repack_q6_kx(w: usize, nb: i32, tmp: usize): void {
  const m4 = i8x16.splat(15), m30 = i8x16.splat(0x30), mc0 = i8x16.splat(<i8>0xc0);
  for (let blk = 0; blk < nb; blk++) {
    const p = w + <usize>blk * WB;
    for (let n = 0; n < 2; n++) {
      for (let h = 0; h < 2; h++) {
        const o = (<usize>n << 6) + (<usize>h << 4);
        const a = v128.load(p + o), b = v128.load(p + o + 32), hb = v128.load(p + 128 + (<usize>n << 5) + (<usize>h << 4));
        const t = tmp + (<usize>n << 7) + (<usize>h << 4); // elements 128n + 32m + 16h + l at t + 32m
        v128.store(t, v128.or(v128.and(a, m4), v128.and(i16x8.shl(hb, 4), m30)));
        v128.store(t + 32, v128.or(v128.and(b, m4), v128.and(i16x8.shl(hb, 2), m30)));
        v128.store(t + 64, v128.or(v128.and(i16x8.shr_u(a, 4), m4), v128.and(hb, m30)));
        v128.store(t + 96, v128.or(v128.and(i16x8.shr_u(b, 4), m4), v128.and(i16x8.shr_u(hb, 2), m30)));
      }
    }
    for (let H = 0; H < 2; H++) {
      const g = tmp + (<usize>H << 7);
      const g0 = v128.load(g), g1 = v128.load(g + 16), g2 = v128.load(g + 32), g3 = v128.load(g + 48);
      const g4 = v128.load(g + 64), g5 = v128.load(g + 80), g6 = v128.load(g + 96), g7 = v128.load(g + 112);
      const a01l = v128.shuffle<i16>(g0, g1, 0, 8, 1, 9, 2, 10, 3, 11), a01h = v128.shuffle<i16>(g0, g1, 4, 12, 5, 13, 6, 14, 7, 15);
      const a23l = v128.shuffle<i16>(g2, g3, 0, 8, 1, 9, 2, 10, 3, 11), a23h = v128.shuffle<i16>(g2, g3, 4, 12, 5, 13, 6, 14, 7, 15);
      const a45l = v128.shuffle<i16>(g4, g5, 0, 8, 1, 9, 2, 10, 3, 11), a45h = v128.shuffle<i16>(g4, g5, 4, 12, 5, 13, 6, 14, 7, 15);
      const a67l = v128.shuffle<i16>(g6, g7, 0, 8, 1, 9, 2, 10, 3, 11), a67h = v128.shuffle<i16>(g6, g7, 4, 12, 5, 13, 6, 14, 7, 15);
      const b0 = v128.shuffle<i32>(a01l, a23l, 0, 4, 1, 5), b1 = v128.shuffle<i32>(a01l, a23l, 2, 6, 3, 7);
      const b2 = v128.shuffle<i32>(a01h, a23h, 0, 4, 1, 5), b3 = v128.shuffle<i32>(a01h, a23h, 2, 6, 3, 7);
      const b4 = v128.shuffle<i32>(a45l, a67l, 0, 4, 1, 5), b5 = v128.shuffle<i32>(a45l, a67l, 2, 6, 3, 7);
      const b6 = v128.shuffle<i32>(a45h, a67h, 0, 4, 1, 5), b7 = v128.shuffle<i32>(a45h, a67h, 2, 6, 3, 7);
      const q = p + <usize>H * 96;
      packQuad(q, chunk(b0, b4, 0), chunk(b0, b4, 1), chunk(b1, b5, 0), chunk(b1, b5, 1), mc0);
      packQuad(q + 48, chunk(b2, b6, 0), chunk(b2, b6, 1), chunk(b3, b7, 0), chunk(b3, b7, 1), mc0);
    }
  }
}

/** Chunk 2i + j of a transposed half from its two 64-bit pieces (j: which), in this build's byte order. */
// @ts-ignore: decorator
@inline function chunk(lo: v128, hi: v128, j: i32): v128 {
  const c = j == 0 ? v128.shuffle<i64>(lo, hi, 0, 2) : v128.shuffle<i64>(lo, hi, 1, 3);
  return RELAXED ? c : v128.shuffle<i8>(c, c, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
}

/** Stores chunks w0..w3 (values 0..63) as A, B, C at q: w3's bits 4-5, 2-3, 0-1 go to the top of A, B, C. */
// @ts-ignore: decorator
@inline function packQuad(q: usize, w0: v128, w1: v128, w2: v128, w3: v128, mc0: v128): void {
  // (16-bit shifts: what crosses into the neighbouring byte lands below bit 6 and is masked off)
  v128.store(q, v128.or(w0, v128.and(i16x8.shl(w3, 2), mc0)));
  v128.store(q + 16, v128.or(w1, v128.and(i16x8.shl(w3, 4), mc0)));
  v128.store(q + 32, v128.or(w2, v128.and(i16x8.shl(w3, 6), mc0)));
}

/** One row of KX blocks to f32, the same float operations as dequantize_q6_k (embedding lookups of a repacked table). */
export function dequantize_q6_kx(out: usize, w: usize, n: i32): void {
  for (let blk = 0; blk < n >> 8; blk++) {
    const p = w + <usize>blk * WB, d = f16(p + 208);
    for (let e = 0; e < 256; e++) {
      const v = d * <f32>load<i8>(p + 192 + (<usize>e >> 4)) * <f32>(q6kx(p, e) - 32);
      store<f32>(out + ((<usize>(blk * 256 + e)) << 2), v);
    }
  }
}

/**
 * One quad's integer sum against four activation chunks x0..x3: A, B, C decoded
 * (w3's two-bit pieces are moved into place by 16-bit shifts: each step's
 * neighbouring-byte bits are zero, so nothing crosses between bytes), the
 * chunks' dot products added in i16 in pairs and widened by the scales S.
 */
// @ts-ignore: decorator
@inline function quad(A: v128, B: v128, C: v128, x0: v128, x1: v128, x2: v128, x3: v128, S: v128, m63: v128): v128 {
  let v = i16x8.shr_u(v128.andnot(C, m63), 2);
  v = i16x8.shr_u(v128.or(v, v128.andnot(B, m63)), 2);
  const w3 = i16x8.shr_u(v128.or(v, v128.andnot(A, m63)), 2);
  const t0 = i16x8.add(dot16(v128.and(A, m63), x0), dot16(v128.and(B, m63), x1));
  const t1 = i16x8.add(dot16(v128.and(C, m63), x2), dot16(w3, x3));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

/** Same with the weights' four chunks decoded (T > 1: decoded once for four activation rows). */
// @ts-ignore: decorator
@inline function quadW(w0: v128, w1: v128, w2: v128, w3: v128, x: usize, S: v128): v128 {
  const t0 = i16x8.add(dot16(w0, v128.load(x)), dot16(w1, v128.load(x + 16)));
  const t1 = i16x8.add(dot16(w2, v128.load(x + 32)), dot16(w3, v128.load(x + 48)));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

/** Σ_g sc_g * bsum_g (natural 16-element groups) of one superblock: the -32 offset's factor. */
// @ts-ignore: decorator
@inline function corr(p: usize, q: usize): v128 {
  const sc = v128.load(p + 192);
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(sc), v128.load(q + 260)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(sc), v128.load(q + 276)),
  );
}

/** The row's eight scales of half H as i16x8. */
// @ts-ignore: decorator
@inline function scales(p: usize, H: i32): v128 {
  const sc = v128.load(p + 192);
  return H == 0 ? i16x8.extend_low_i8x16_s(sc) : i16x8.extend_high_i8x16_s(sc);
}

/** Four weight rows p0..p3 against one activation row q (T == 1): f32x4 of the four dots. */
// @ts-ignore: decorator
@inline function rows4(p0: usize, p1: usize, p2: usize, p3: usize, q: usize, nb: i32, z: i32): v128 {
  // constants from an opaque zero (z), so that V8 keeps them in registers (see quant-matmul.ts)
  const m63 = i8x16.splat(<i8>(63 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let H = 0; H < 2; H++) {
      const S0 = scales(p0, H), S1 = scales(p1, H), S2 = scales(p2, H), S3 = scales(p3, H);
      for (let k = 0; k < 2; k++) {
        const x = q + 4 + (<usize>H << 7) + (<usize>k << 6);
        const x0 = v128.load(x), x1 = v128.load(x + 16), x2 = v128.load(x + 32), x3 = v128.load(x + 48);
        const o = <usize>H * 96 + <usize>k * 48;
        s0 = i32x4.add(s0, quad(v128.load(p0 + o), v128.load(p0 + o + 16), v128.load(p0 + o + 32), x0, x1, x2, x3, S0, m63));
        s1 = i32x4.add(s1, quad(v128.load(p1 + o), v128.load(p1 + o + 16), v128.load(p1 + o + 32), x0, x1, x2, x3, S1, m63));
        s2 = i32x4.add(s2, quad(v128.load(p2 + o), v128.load(p2 + o + 16), v128.load(p2 + o + 32), x0, x1, x2, x3, S2, m63));
        s3 = i32x4.add(s3, quad(v128.load(p3 + o), v128.load(p3 + o + 16), v128.load(p3 + o + 32), x0, x1, x2, x3, S3, m63));
      }
    }
    s0 = i32x4.sub(s0, i32x4.shl(corr(p0, q), 5));
    s1 = i32x4.sub(s1, i32x4.shl(corr(p1, q), 5));
    s2 = i32x4.sub(s2, i32x4.shl(corr(p2, q), 5));
    s3 = i32x4.sub(s3, i32x4.shl(corr(p3, q), 5));
    // as matmul_q6_k: (d_w * d_a) * f32(isum), added in superblock order
    const dw = f16x4(p0 + 208, p1 + 208, p2 + 208, p3 + 208, hmask, p112);
    const da = f32x4.splat(load<f32>(q));
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(reduce4i(s0, s1, s2, s3))));
    p0 += WB; p1 += WB; p2 += WB; p3 += WB; q += AB;
  }
  return acc;
}

/** One weight row p against four activation rows q0..q3 (T > 1): f32x4 of the four dots. */
// @ts-ignore: decorator
@inline function cols4(p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, z: i32): v128 {
  const m63 = i8x16.splat(<i8>(63 + z));
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let H = 0; H < 2; H++) {
      const S = scales(p, H);
      for (let k = 0; k < 2; k++) {
        const o = <usize>H * 96 + <usize>k * 48;
        const A = v128.load(p + o), B = v128.load(p + o + 16), C = v128.load(p + o + 32);
        let v = i16x8.shr_u(v128.andnot(C, m63), 2);
        v = i16x8.shr_u(v128.or(v, v128.andnot(B, m63)), 2);
        const w3 = i16x8.shr_u(v128.or(v, v128.andnot(A, m63)), 2);
        const w0 = v128.and(A, m63), w1 = v128.and(B, m63), w2 = v128.and(C, m63);
        const x: usize = 4 + (<usize>H << 7) + (<usize>k << 6);
        s0 = i32x4.add(s0, quadW(w0, w1, w2, w3, q0 + x, S)); s1 = i32x4.add(s1, quadW(w0, w1, w2, w3, q1 + x, S));
        s2 = i32x4.add(s2, quadW(w0, w1, w2, w3, q2 + x, S)); s3 = i32x4.add(s3, quadW(w0, w1, w2, w3, q3 + x, S));
      }
    }
    s0 = i32x4.sub(s0, i32x4.shl(corr(p, q0), 5));
    s1 = i32x4.sub(s1, i32x4.shl(corr(p, q1), 5));
    s2 = i32x4.sub(s2, i32x4.shl(corr(p, q2), 5));
    s3 = i32x4.sub(s3, i32x4.shl(corr(p, q3), 5));
    const dw = f32x4.splat(f16(p + 208));
    const da = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(q0)), 1, load<f32>(q1)), 2, load<f32>(q2)), 3, load<f32>(q3));
    acc = f32x4.add(acc, f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(reduce4i(s0, s1, s2, s3))));
    p += WB; q0 += AB; q1 += AB; q2 += AB; q3 += AB;
  }
  return acc;
}

/** KX Q6_K weights (repack_q6_kx) x KX Q8_K activations (quantize_q8_kx): out[t*d + r] = W[r] . x[t], r in [r0, r1). */
export function matmul_q6_kx(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  kxMatmul(false, out, xq, w, n, d, T, r0, r1);
}

/** KX Q4_K weights (repack_q4_kx) x KX Q8_K activations (quantize_q8_kx): out[t*d + r] = W[r] . x[t], r in [r0, r1). */
export function matmul_q4_kx(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  kxMatmul(true, out, xq, w, n, d, T, r0, r1);
}

/** The rows and tiles of both KX matmuls (q4: Q4_K, else Q6_K; a constant, folded after inlining). */
// @ts-ignore: decorator
@inline function kxMatmul(q4: bool, out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * (q4 ? WB4 : WB), as: usize = <usize>nb * AB;
  if (T == 1) {
    // four rows from four far-apart bands of [r0, r1), as matmul_q6_k: four streams through memory
    const qn = (r1 - r0) >> 2;
    const qs = <usize>qn * ws, qo = <usize>qn << 2;
    for (let g = r0; g < r0 + qn; g++) {
      const p = w + <usize>g * ws;
      const v = q4 ? rows4q4(p, p + qs, p + 2 * qs, p + 3 * qs, xq, nb, z) : rows4(p, p + qs, p + 2 * qs, p + 3 * qs, xq, nb, z);
      const o = out + (<usize>g << 2);
      store<f32>(o, f32x4.extract_lane(v, 0));
      store<f32>(o + qo, f32x4.extract_lane(v, 1));
      store<f32>(o + 2 * qo, f32x4.extract_lane(v, 2));
      store<f32>(o + 3 * qo, f32x4.extract_lane(v, 3));
    }
    const r = r0 + 4 * qn;
    if (r < r1) {
      // 1..3 leftover rows: repeat the last one
      const p = w + <usize>r * ws;
      const pb = r + 1 < r1 ? p + ws : p, pc = r + 2 < r1 ? p + 2 * ws : p;
      const v = q4 ? rows4q4(p, pb, pc, p, xq, nb, z) : rows4(p, pb, pc, p, xq, nb, z);
      store<f32>(out + (<usize>r << 2), f32x4.extract_lane(v, 0));
      if (r + 1 < r1) store<f32>(out + (<usize>(r + 1) << 2), f32x4.extract_lane(v, 1));
      if (r + 2 < r1) store<f32>(out + (<usize>(r + 2) << 2), f32x4.extract_lane(v, 2));
    }
    return;
  }
  // activation rows in chunks that stay in L1 (16 KiB) while every weight row passes over them
  let chunk = <i32>(16384 / <u32>as) & ~3;
  if (chunk < 4) chunk = 4;
  const od: usize = <usize>d << 2;
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const T1 = min(T, t0 + chunk);
    for (let r = r0; r < r1; r++) {
      const p = w + <usize>r * ws;
      const o = out + (<usize>r << 2);
      for (let t = t0; t < T1; t += 4) {
        const q = xq + <usize>t * as;
        const qb = t + 1 < T1 ? q + as : q, qc = t + 2 < T1 ? q + 2 * as : q, qd = t + 3 < T1 ? q + 3 * as : q;
        const v = q4 ? cols4q4(p, q, qb, qc, qd, nb, z) : cols4(p, q, qb, qc, qd, nb, z);
        const ot = o + <usize>t * od;
        store<f32>(ot, f32x4.extract_lane(v, 0));
        if (t + 1 < T1) store<f32>(ot + od, f32x4.extract_lane(v, 1));
        if (t + 2 < T1) store<f32>(ot + 2 * od, f32x4.extract_lane(v, 2));
        if (t + 3 < T1) store<f32>(ot + 3 * od, f32x4.extract_lane(v, 3));
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Q4_K in the KX layout. The activations are the same KX Q8_K blocks as Q6_K's
// (quantize_q8_kx): i16 lane g of a chunk's dot16 sums elements of 16-element
// group g of its half, that is of sub-block 4H + (g >> 1). A Q4_K weight is 0..15,
// so the eight chunks of a half add up in i16 (|lane| <= 8 * 2 * 15 * 128 < 2^15)
// and are widened once per half by pmaddwd with the half's four scales, each
// repeated over its two lanes: two widenings and no splats per superblock (the
// natural kernel: eight scale splats and eight widenings).
//
// KX Q4_K block (144 bytes, like Q4_K): d, dmin and the 12 packed scale/min bytes
// stay where Q4_K has them; the 64 bytes at 16 + 64H hold half H's eight chunks,
// byte vector k (16 + 64H + 16k) with chunk 2k in its low nibbles and chunk 2k + 1
// in its high ones, each chunk in the build's byte order (kxPosition).
//
// Results: the same exact integer superblock sums (Σ sc * q * a and Σ m * bsum)
// and the same f32 operations, in the same order, as matmul_q4_k's:
//   acc += (d_w * d_a) * f32(isum) - (dmin_w * d_a) * f32(msum)      per superblock

// @ts-ignore: decorator
@inline const WB4: usize = 144; // Q4_K block

/** The 8 six-bit scales of a Q4_K block at p as bytes of a u64 (quant-matmul.ts kPackLo). */
// @ts-ignore: decorator
@inline function q4kScales(p: usize): u64 {
  const u0 = load<u32>(p + 4), u2 = load<u32>(p + 12);
  const s1 = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
  return <u64>(u0 & 0x3f3f3f3f) | (<u64>s1 << 32);
}

/** The 8 six-bit mins as bytes of a u64 (quant-matmul.ts kPackHi). */
// @ts-ignore: decorator
@inline function q4kMins(p: usize): u64 {
  const u1 = load<u32>(p + 8), u2 = load<u32>(p + 12);
  const m1 = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4);
  return <u64>(u1 & 0x3f3f3f3f) | (<u64>m1 << 32);
}

/** Σ_j min_j * (bsum_2j + bsum_2j+1) lane partials, as quant-matmul.ts kCorr for Q4_K; b: the paired bsums (pairs()). */
// @ts-ignore: decorator
@inline function minCorr(p: usize, b: v128): v128 {
  return i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(i64x2.splat(q4kMins(p))), b);
}

/** The bsums of the Q8_K block at q added in pairs (one per 32 elements; |pair| <= 32 * 128 fits i16). */
// @ts-ignore: decorator
@inline function pairs(q: usize): v128 {
  return i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(v128.load(q + 260)), i32x4.extadd_pairwise_i16x8_s(v128.load(q + 276)));
}

/** Half H's scales for pmaddwd: i16 lanes 2i, 2i + 1 = scale of sub-block 4H + i (sc: the u64 of q4kScales). */
// @ts-ignore: decorator
@inline function scales4(sc: u64, H: i32): v128 {
  const v = i16x8.extend_low_i8x16_u(i64x2.splat(sc));
  const e = H == 0 ? i32x4.extend_low_i16x8_u(v) : i32x4.extend_high_i16x8_u(v);
  return v128.or(e, i32x4.shl(e, 16));
}

/** Two byte vectors' four chunks (V0: chunks 4k, 4k+1; V1: 4k+2, 4k+3) against activation chunks x0..x3, in i16. */
// @ts-ignore: decorator
@inline function nib4(V0: v128, V1: v128, x0: v128, x1: v128, x2: v128, x3: v128, m4: v128): v128 {
  return i16x8.add(
    i16x8.add(dot16(v128.and(V0, m4), x0), dot16(v128.and(i16x8.shr_u(V0, 4), m4), x1)),
    i16x8.add(dot16(v128.and(V1, m4), x2), dot16(v128.and(i16x8.shr_u(V1, 4), m4), x3)),
  );
}

/** Four KX Q4_K weight rows p0..p3 against one activation row q (T == 1): f32x4 of the four dots. */
// @ts-ignore: decorator
@inline function rows4q4(p0: usize, p1: usize, p2: usize, p3: usize, q: usize, nb: i32, z: i32): v128 {
  const m4 = i8x16.splat(<i8>(15 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    const c0 = q4kScales(p0), c1 = q4kScales(p1), c2 = q4kScales(p2), c3 = q4kScales(p3);
    for (let H = 0; H < 2; H++) {
      let t0 = i16x8.splat(0), t1 = t0, t2 = t0, t3 = t0;
      for (let k = 0; k < 2; k++) {
        const x = q + 4 + (<usize>H << 7) + (<usize>k << 6);
        const x0 = v128.load(x), x1 = v128.load(x + 16), x2 = v128.load(x + 32), x3 = v128.load(x + 48);
        const o: usize = 16 + (<usize>H << 6) + (<usize>k << 5);
        t0 = i16x8.add(t0, nib4(v128.load(p0 + o), v128.load(p0 + o + 16), x0, x1, x2, x3, m4));
        t1 = i16x8.add(t1, nib4(v128.load(p1 + o), v128.load(p1 + o + 16), x0, x1, x2, x3, m4));
        t2 = i16x8.add(t2, nib4(v128.load(p2 + o), v128.load(p2 + o + 16), x0, x1, x2, x3, m4));
        t3 = i16x8.add(t3, nib4(v128.load(p3 + o), v128.load(p3 + o + 16), x0, x1, x2, x3, m4));
      }
      s0 = i32x4.add(s0, i32x4.dot_i16x8_s(t0, scales4(c0, H))); s1 = i32x4.add(s1, i32x4.dot_i16x8_s(t1, scales4(c1, H)));
      s2 = i32x4.add(s2, i32x4.dot_i16x8_s(t2, scales4(c2, H))); s3 = i32x4.add(s3, i32x4.dot_i16x8_s(t3, scales4(c3, H)));
    }
    // as matmul_q4_k: (d_w * d_a) * f32(isum) - (dmin_w * d_a) * f32(msum), added in superblock order
    const dw = f16x4(p0, p1, p2, p3, hmask, p112);
    const da = f32x4.splat(load<f32>(q));
    let f = f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(reduce4i(s0, s1, s2, s3)));
    const bp = pairs(q);
    const dm = f16x4(p0 + 2, p1 + 2, p2 + 2, p3 + 2, hmask, p112);
    const ms = reduce4i(minCorr(p0, bp), minCorr(p1, bp), minCorr(p2, bp), minCorr(p3, bp));
    f = f32x4.sub(f, f32x4.mul(f32x4.mul(dm, da), f32x4.convert_i32x4_s(ms)));
    acc = f32x4.add(acc, f);
    p0 += WB4; p1 += WB4; p2 += WB4; p3 += WB4; q += AB;
  }
  return acc;
}

/** One KX Q4_K weight row p against four activation rows q0..q3 (T > 1): f32x4 of the four dots. */
// @ts-ignore: decorator
@inline function cols4q4(p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, z: i32): v128 {
  const m4 = i8x16.splat(<i8>(15 + z));
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    // the row's scale and min vectors once per superblock, not once per activation row
    const c = q4kScales(p), mv = i16x8.extend_low_i8x16_u(i64x2.splat(q4kMins(p)));
    for (let H = 0; H < 2; H++) {
      let t0 = i16x8.splat(0), t1 = t0, t2 = t0, t3 = t0;
      for (let k = 0; k < 4; k++) {
        const V = v128.load(p + 16 + (<usize>H << 6) + (<usize>k << 4));
        const lo = v128.and(V, m4), hi = v128.and(i16x8.shr_u(V, 4), m4);
        const x: usize = 4 + (<usize>H << 7) + (<usize>k << 5);
        t0 = i16x8.add(t0, i16x8.add(dot16(lo, v128.load(q0 + x)), dot16(hi, v128.load(q0 + x + 16))));
        t1 = i16x8.add(t1, i16x8.add(dot16(lo, v128.load(q1 + x)), dot16(hi, v128.load(q1 + x + 16))));
        t2 = i16x8.add(t2, i16x8.add(dot16(lo, v128.load(q2 + x)), dot16(hi, v128.load(q2 + x + 16))));
        t3 = i16x8.add(t3, i16x8.add(dot16(lo, v128.load(q3 + x)), dot16(hi, v128.load(q3 + x + 16))));
      }
      const S = scales4(c, H);
      s0 = i32x4.add(s0, i32x4.dot_i16x8_s(t0, S)); s1 = i32x4.add(s1, i32x4.dot_i16x8_s(t1, S));
      s2 = i32x4.add(s2, i32x4.dot_i16x8_s(t2, S)); s3 = i32x4.add(s3, i32x4.dot_i16x8_s(t3, S));
    }
    const dw = f32x4.splat(f16(p));
    const da = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(q0)), 1, load<f32>(q1)), 2, load<f32>(q2)), 3, load<f32>(q3));
    let f = f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(reduce4i(s0, s1, s2, s3)));
    const dm = f32x4.splat(f16(p + 2));
    const ms = reduce4i(
      i32x4.dot_i16x8_s(mv, pairs(q0)), i32x4.dot_i16x8_s(mv, pairs(q1)), i32x4.dot_i16x8_s(mv, pairs(q2)), i32x4.dot_i16x8_s(mv, pairs(q3)),
    );
    f = f32x4.sub(f, f32x4.mul(f32x4.mul(dm, da), f32x4.convert_i32x4_s(ms)));
    acc = f32x4.add(acc, f);
    p += WB4; q0 += AB; q1 += AB; q2 += AB; q3 += AB;
  }
  return acc;
}

/** Overwrites the 128 bytes at g (a half's eight 16-element groups, natural order) with its chunks 0..7 in this build's order. */
// @ts-ignore: decorator
@inline function transposeHalf(g: usize): void {
  // as repack_q6_kx: groups transposed in 16-bit pairs
  const g0 = v128.load(g), g1 = v128.load(g + 16), g2 = v128.load(g + 32), g3 = v128.load(g + 48);
  const g4 = v128.load(g + 64), g5 = v128.load(g + 80), g6 = v128.load(g + 96), g7 = v128.load(g + 112);
  const a01l = v128.shuffle<i16>(g0, g1, 0, 8, 1, 9, 2, 10, 3, 11), a01h = v128.shuffle<i16>(g0, g1, 4, 12, 5, 13, 6, 14, 7, 15);
  const a23l = v128.shuffle<i16>(g2, g3, 0, 8, 1, 9, 2, 10, 3, 11), a23h = v128.shuffle<i16>(g2, g3, 4, 12, 5, 13, 6, 14, 7, 15);
  const a45l = v128.shuffle<i16>(g4, g5, 0, 8, 1, 9, 2, 10, 3, 11), a45h = v128.shuffle<i16>(g4, g5, 4, 12, 5, 13, 6, 14, 7, 15);
  const a67l = v128.shuffle<i16>(g6, g7, 0, 8, 1, 9, 2, 10, 3, 11), a67h = v128.shuffle<i16>(g6, g7, 4, 12, 5, 13, 6, 14, 7, 15);
  const b0 = v128.shuffle<i32>(a01l, a23l, 0, 4, 1, 5), b1 = v128.shuffle<i32>(a01l, a23l, 2, 6, 3, 7);
  const b2 = v128.shuffle<i32>(a01h, a23h, 0, 4, 1, 5), b3 = v128.shuffle<i32>(a01h, a23h, 2, 6, 3, 7);
  const b4 = v128.shuffle<i32>(a45l, a67l, 0, 4, 1, 5), b5 = v128.shuffle<i32>(a45l, a67l, 2, 6, 3, 7);
  const b6 = v128.shuffle<i32>(a45h, a67h, 0, 4, 1, 5), b7 = v128.shuffle<i32>(a45h, a67h, 2, 6, 3, 7);
  v128.store(g, chunk(b0, b4, 0)); v128.store(g + 16, chunk(b0, b4, 1));
  v128.store(g + 32, chunk(b1, b5, 0)); v128.store(g + 48, chunk(b1, b5, 1));
  v128.store(g + 64, chunk(b2, b6, 0)); v128.store(g + 80, chunk(b2, b6, 1));
  v128.store(g + 96, chunk(b3, b7, 0)); v128.store(g + 112, chunk(b3, b7, 1));
}

/**
 * Rewrites nb Q4_K blocks at w in place into this build's KX layout (load time, once per weight).
 * tmp: 256 bytes of scratch. Per block: the 256 nibbles in natural order go to tmp as bytes, each half
 * is transposed into its chunks (transposeHalf), and chunk pairs are packed back into nibbles.
 */
export function repack_q4_kx(w: usize, nb: i32, tmp: usize): void {
  const m4 = i8x16.splat(15);
  for (let blk = 0; blk < nb; blk++) {
    const p = w + <usize>blk * WB4;
    for (let i: usize = 0; i < 4; i++) {
      // sub-blocks 2i, 2i + 1: the low and high nibbles of the 32 bytes at 16 + 32i
      const a = v128.load(p + 16 + (i << 5)), b = v128.load(p + 32 + (i << 5));
      const t = tmp + (i << 6);
      v128.store(t, v128.and(a, m4));
      v128.store(t + 16, v128.and(b, m4));
      v128.store(t + 32, v128.and(i16x8.shr_u(a, 4), m4));
      v128.store(t + 48, v128.and(i16x8.shr_u(b, 4), m4));
    }
    transposeHalf(tmp);
    transposeHalf(tmp + 128);
    for (let k: usize = 0; k < 8; k++) {
      // (16-bit shift: values are 0..15, nothing crosses into the neighbouring byte)
      const lo = v128.load(tmp + (k << 5)), hi = v128.load(tmp + (k << 5) + 16);
      v128.store(p + 16 + (k << 4), v128.or(lo, i16x8.shl(hi, 4)));
    }
  }
}

/** One row of KX Q4_K blocks to f32, the same float operations as dequantize_q4_k (embedding lookups of a repacked table). */
export function dequantize_q4_kx(out: usize, w: usize, n: i32): void {
  for (let blk = 0; blk < n >> 8; blk++) {
    const p = w + <usize>blk * WB4, d = f16(p), mn = f16(p + 2);
    const sc = q4kScales(p), mi = q4kMins(p);
    for (let e = 0; e < 256; e++) {
      const j = <u64>(e >> 5);
      const d1 = d * <f32>(<i32>(sc >> (j << 3)) & 0xff), m1 = mn * <f32>(<i32>(mi >> (j << 3)) & 0xff);
      const H = e >> 7, pos = kxPosition(e & 127), c = pos >> 4;
      const byte = <i32>load<u8>(p + 16 + (<usize>H << 6) + (<usize>(c >> 1) << 4) + <usize>(pos & 15));
      store<f32>(out + ((<usize>(blk * 256 + e)) << 2), d1 * <f32>((byte >> ((c & 1) << 2)) & 15) - m1);
    }
  }
}
