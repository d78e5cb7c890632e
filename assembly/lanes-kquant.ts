// Q4_K in kvasm's cross-row "lanes" layout: weights repacked at load so that
// each 16-byte vector holds 4 weights of each of 4 consecutive rows (a quad),
// and i32 lane r of every integer dot product belongs to row r of the quad.
//
// Why: the KX layout (kquant-decode.ts) removed the scale splats, but each
// (row, superblock) still paid two cross-lane reductions (reduce4i: 3.0 ns in
// JavaScriptCore, 0.9 ns in V8; docs/cpu-performance.md "Q8_0 under JavaScriptCore"), the
// unpacking of its 6-bit scales and mins, and per-row f32 conversions. Here the
// activation's 4 bytes are splatted (v128.load32_splat) against a vector of 4
// rows, so each sub-block's exact integer sums of 4 rows build up in 4 lanes;
// the scales, mins, d and dmin of 4 rows are decoded and applied once per quad.
//
// Activations: the KX Q8_K blocks of quantize_q8_kx (the ones Q6_K's KX kernel
// takes, so a layer mixing Q4_K and Q6_K weights quantizes its input once). In
// that order, the 4 bytes that one dot product pairs with a row's 4 bytes are
// elements of one Q4_K sub-block: in chunk c (16 bytes) of half H, sub-block
// 4H + m's bytes are 4m..4m+3 (relaxed) or 2m, 2m+1, 2m+8, 2m+9 (plain, whose
// dot16 pairs bytes i and i+8): elements 2c, 2c+1 of its 16-element groups 2m
// and 2m+1 (elemOf).
//
// Lanes block (576 bytes = 4 Q4_K blocks, the same bytes rearranged), per quad and superblock:
//   0   d of rows 0..3 (f16)            8   dmin of rows 0..3 (f16)
//   16  32 bytes: scale j of row r (6 bits) | min j's top two bits << 6, at 16(j >> 2) + scalePos(j, r)
//   48  16 bytes: min j's low four bits at scalePos(j, r) (low nibble: j < 4, high: j >= 4)
//   64  32 vectors, sub-block j's four at 64 + 16(4j + c2): the low nibbles are chunk 2c2's
//       weights, the high nibbles chunk 2c2 + 1's; row r's weight idx at lanePos(r, idx).
// scalePos(j, r) = 8((j >> 1) & 1) + 2r + (j & 1), so that one zero extension gives, for a pair of
// sub-blocks, the i16 pairs (min 2k, min 2k + 1) of rows 0..3 that pmaddwd takes against the
// activation's bsum pairs.
// Rows from d & ~3 on (fewer than a quad) are in the KX layout (matmul_q4_kx reads them).
//
// Results: every (row, activation row) gets the exact integer sums of matmul_q4_k
// (Σ sc * q * a and Σ m * bsum: integer adds in any order, no overflow) and the same
// f32 operations in the same order:
//   acc += (d_w * d_a) * f32(isum) - (dmin_w * d_a) * f32(msum)      per superblock
// so outputs are bit-identical to matmul_q4_k and matmul_q4_kx, for T = 1 and T > 1.
import { blockTerm, dot16, f16, f16quad } from "./quant-util";
import { dequantize_q4_kx, matmul_q4_kx, repack_q4_kx } from "./kquant-decode";
import { gemmChunk } from "./quant-gemm";

// @ts-ignore: decorator
@inline const WB: usize = 144; // Q4_K block
// @ts-ignore: decorator
@inline const AB: usize = 292; // Q8_K block
// @ts-ignore: decorator
@inline const LB: usize = 576; // lanes block: 4 rows x 144

/** Byte of a lanes vector that holds row r's weight idx (0..3); the activation's byte idx sits at the same place. */
// @ts-ignore: decorator
@inline function lanePos(r: usize, idx: usize): usize {
  return RELAXED ? (r << 2) + idx : (r << 1) + (idx & 1) + ((idx >> 1) << 3);
}

/** Element (0..31, within its sub-block) of weight idx of chunk c: the KX activation's byte order (quantize_q8_kx). */
// @ts-ignore: decorator
@inline function elemOf(c: usize, idx: usize): usize {
  return RELAXED ? ((idx >> 1) << 4) + (c << 1) + (idx & 1) : ((idx & 1) << 4) + (c << 1) + (idx >> 1);
}

/** Position of sub-block j's scale (and min) of row r within its 16 bytes (see the block above). */
// @ts-ignore: decorator
@inline function scalePos(j: usize, r: usize): usize {
  return (((j >> 1) & 1) << 3) + (r << 1) + (j & 1);
}

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

/**
 * Rewrites the d x n Q4_K weight at w in place into the lanes layout, quad by quad; the d % 4 last rows
 * go to the KX layout. tmp: 4 rows of scratch (4 * n / 256 * 144 bytes). Load time, once per weight.
 */
export function repack_q4_k_lanes(w: usize, n: i32, d: i32, tmp: usize): void {
  const nb = n >> 8;
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3;
  for (let r = 0; r < d4; r += 4) {
    const p = w + <usize>r * ws;
    memory.copy(tmp, p, ws << 2);
    for (let b = 0; b < nb; b++) {
      const o = p + <usize>b * LB;
      v128.store(o + 48, i32x4.splat(0));
      for (let i: usize = 0; i < 4; i++) {
        const s = tmp + i * ws + <usize>b * WB;
        store<u16>(o + (i << 1), load<u16>(s));
        store<u16>(o + 8 + (i << 1), load<u16>(s + 2));
        const sc = q4kScales(s), mn = q4kMins(s);
        for (let j: usize = 0; j < 8; j++) {
          const sj = <u32>(sc >> (<u64>j << 3)) & 63, mj = <u32>(mn >> (<u64>j << 3)) & 63;
          const pos = scalePos(j, i);
          store<u8>(o + 16 + ((j >> 2) << 4) + pos, sj | ((mj >> 4) << 6));
          store<u8>(o + 48 + pos, load<u8>(o + 48 + pos) | ((mj & 15) << (<u32>(j >> 2) << 2)));
        }
      }
      for (let j: usize = 0; j < 8; j++) {
        const sh = <u32>(j & 1) << 2; // sub-block j: nibble j & 1 of the 32 bytes at 16 + 32(j >> 1)
        for (let c2: usize = 0; c2 < 4; c2++) {
          const v = o + 64 + (((j << 2) + c2) << 4);
          for (let i: usize = 0; i < 4; i++) {
            // elements 4c2 + {0, 1, 16, 17} (chunk 2c2, low nibbles) and 4c2 + {2, 3, 18, 19} (chunk 2c2 + 1, high)
            const s = tmp + i * ws + <usize>b * WB + 16 + ((j >> 1) << 5) + (c2 << 2);
            const lo = (<u32>load<u16>(s) | (<u32>load<u16>(s + 16) << 16)) >> sh;
            const hi = (<u32>load<u16>(s + 2) | (<u32>load<u16>(s + 18) << 16)) >> sh;
            const x = (lo & 0x0f0f0f0f) | ((hi & 0x0f0f0f0f) << 4); // bytes: weights idx 0..3 in the relaxed order
            if (RELAXED) store<u32>(v + (i << 2), x);
            else {
              // plain (lanePos, elemOf): elements 2c, 2c + 1, 16 + 2c, 17 + 2c (bytes 0..3 of x) at 2i, 2i + 8, 2i + 1, 2i + 9
              store<u16>(v + (i << 1), (x & 0xff) | ((x >> 8) & 0xff00));
              store<u16>(v + (i << 1) + 8, ((x >> 8) & 0xff) | ((x >> 16) & 0xff00));
            }
          }
        }
      }
    }
  }
  if (d4 < d) repack_q4_kx(w + <usize>d4 * ws, (d - d4) * nb, tmp);
}

/**
 * Row `row` of the d x n lanes-layout weight at w (the weight's start, not the row's) as n f32, with the
 * same float operations as dequantize_q4_k on the natural row (x = d * sc * q - dmin * m): embedding lookups.
 */
export function dequantize_q4_k_lanes(out: usize, w: usize, n: i32, row: i32, d: i32): void {
  const nb = n >> 8;
  const ws: usize = <usize>nb * WB;
  if (row >= (d & ~3)) {
    dequantize_q4_kx(out, w + <usize>row * ws, n);
    return;
  }
  const i = <usize>(row & 3);
  const quad = w + <usize>(row & ~3) * ws;
  for (let b = 0; b < nb; b++) {
    const p = quad + <usize>b * LB, dv = f16(p + (i << 1)), mv = f16(p + 8 + (i << 1));
    for (let j: usize = 0; j < 8; j++) {
      const pos = scalePos(j, i);
      const sb = <u32>load<u8>(p + 16 + ((j >> 2) << 4) + pos);
      const mj = ((sb >> 6) << 4) | ((<u32>load<u8>(p + 48 + pos) >> (<u32>(j >> 2) << 2)) & 15);
      const d1 = dv * <f32>(sb & 63), m1 = mv * <f32>mj;
      const o = out + ((<usize>b << 10) + (j << 7));
      for (let c: usize = 0; c < 8; c++) {
        const v = p + 64 + (((j << 2) + (c >> 1)) << 4);
        const sh = <u32>(c & 1) << 2;
        for (let idx: usize = 0; idx < 4; idx++) {
          const q = (<u32>load<u8>(v + lanePos(i, idx)) >> sh) & 15;
          store<f32>(o + (elemOf(c, idx) << 2), d1 * <f32>q - m1);
        }
      }
    }
  }
}

/**
 * The activation bytes that pair with a lanes vector: sub-block m's four bytes of the KX chunk at x, in
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
 * Sub-block j's scales of the quad at p as pmaddwd factors: i16 lanes 2r, 2r + 1 = scale of row r.
 * sm: swizzle mask (scaleMask(j)) picking byte scalePos(j, r) into lanes 2r, 2r + 1 and zeros above.
 */
// @ts-ignore: decorator
@inline function scales(p: usize, j: usize, sm: v128, m63: v128): v128 {
  // (relaxed: pshufb alone; the mask's indices are < 16 or have the top bit set, where both swizzles give 0)
  const v = v128.and(v128.load(p + 16 + ((j >> 2) << 4)), m63);
  return RELAXED ? i8x16.relaxed_swizzle(v, sm) : i8x16.swizzle(v, sm);
}

// @ts-ignore: decorator
@inline function scaleMask(j: usize): v128 {
  // bytes 4r, 4r + 2 <- scalePos(j, r); 4r + 1, 4r + 3 <- 0x80 (zero)
  const base = i32x4.splat(0x80008000);
  const pos = i32x4.add(i32x4.splat(<i32>((((j >> 1) & 1) << 3) + (j & 1)) * 0x00010001), i32x4(0, 0x00020002, 0x00040004, 0x00060006));
  return v128.or(base, pos);
}

/** Mins 0..3 of the quad at p as bytes at scalePos (low nibbles at 48, top bits in the scale bytes at 16). */
// @ts-ignore: decorator
@inline function minsLo(p: usize, m4: v128, m30: v128): v128 {
  return v128.or(v128.and(v128.load(p + 48), m4), v128.and(i16x8.shr_u(v128.load(p + 16), 2), m30));
}

/** Mins 4..7 likewise (high nibbles at 48, top bits in the scale bytes at 32). */
// @ts-ignore: decorator
@inline function minsHi(p: usize, m4: v128, m30: v128): v128 {
  return v128.or(v128.and(i16x8.shr_u(v128.load(p + 48), 4), m4), v128.and(i16x8.shr_u(v128.load(p + 32), 2), m30));
}

/**
 * The quad's superblock result for one activation row q (f32x4, rows 0..3): its integer sums s (Σ sc * q * a),
 * the min term Σ m * bsum pair (lo, hi: minsLo, minsHi; P: pairs(q)), and matmul_q4_k's f32 steps (dw, dm: the
 * quad's d and dmin).
 */
// @ts-ignore: decorator
@inline function finish(s: v128, q: usize, P: v128, lo: v128, hi: v128, dw: v128, dm: v128): v128 {
  const ms = i32x4.add(
    i32x4.add(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), v128.shuffle<i32>(P, P, 0, 0, 0, 0)),
      i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), v128.shuffle<i32>(P, P, 1, 1, 1, 1)),
    ),
    i32x4.add(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), v128.shuffle<i32>(P, P, 2, 2, 2, 2)),
      i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), v128.shuffle<i32>(P, P, 3, 3, 3, 3)),
    ),
  );
  // as matmul_q4_k: (d_w * d_a) * f32(isum) - (dmin_w * d_a) * f32(msum)
  const da = v128.load32_splat(q);
  const f = blockTerm(dw, da, s);
  return f32x4.sub(f, blockTerm(dm, da, ms));
}

/** finish() for the quad at p, its mins and scales read here. */
// @ts-ignore: decorator
@inline function finishAt(p: usize, s: v128, q: usize, P: v128, m4: v128, m30: v128, hmask: v128, p112: v128): v128 {
  return finish(s, q, P, minsLo(p, m4, m30), minsHi(p, m4, m30), f16quad(p, hmask, p112), f16quad(p + 8, hmask, p112));
}

/** The bsums of the Q8_K block at q added in pairs, one per sub-block (|pair| <= 32 * 128 fits i16), as i16x8. */
// @ts-ignore: decorator
@inline function pairs(q: usize): v128 {
  return i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(v128.load(q + 260)), i32x4.extadd_pairwise_i16x8_s(v128.load(q + 276)));
}

/**
 * Sub-block j's i16 sums of the quad whose four vectors of j are at o, against the activation chunks at x (sub-block
 * word m): 8 dot products, 16 products a lane (16 * 15 * 128 < 2^15). The chunk pairs are written out and the first
 * starts the sum (with pairs 1..3 in a loop, JavaScriptCore ran the one-quad step at 0.71-0.74x, V8 the four-quad
 * one at 0.90x and the plain build's at 0.85x).
 */
// @ts-ignore: decorator
@inline function sub(o: usize, x: usize, m: usize, bm: v128, m4: v128): v128 {
  let V = v128.load(o);
  let t = i16x8.add(dot16(v128.and(V, m4), act(x, m, bm)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 16, m, bm)));
  V = v128.load(o + 16);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 32, m, bm)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 48, m, bm))));
  V = v128.load(o + 32);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 64, m, bm)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 80, m, bm))));
  V = v128.load(o + 48);
  return i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 96, m, bm)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 112, m, bm))));
}

/**
 * The scale bytes of sub-blocks 2k and 2k + 1 of the quad at p, zero-extended to i16 and masked to 6 bits: lane 2r is
 * row r's scale of 2k, lane 2r + 1 its scale of 2k + 1 (scalePos(j, r) = 8(k & 1) + 2r + (j & 1) in the 16 bytes at
 * p + 16 + 16(k >> 1)). evenOf / oddOf make the pmaddwd factors of 2k / 2k + 1 from it (each row's scale in both of
 * its lanes): one load and three ops for two sub-blocks, where scales() takes a load, an and and a swizzle with a
 * mask built per sub-block for each.
 */
// @ts-ignore: decorator
@inline function scalePair(p: usize, k: usize, m63: v128): v128 {
  return v128.and(v128.load8x8_u(p + 16 + ((k >> 1) << 4) + ((k & 1) << 3)), m63);
}

// @ts-ignore: decorator
@inline function evenOf(L: v128): v128 {
  return v128.shuffle<i16>(L, L, 0, 0, 2, 2, 4, 4, 6, 6);
}

// @ts-ignore: decorator
@inline function oddOf(L: v128): v128 {
  return v128.shuffle<i16>(L, L, 1, 1, 3, 3, 5, 5, 7, 7);
}

/**
 * evenOf and oddOf as one-input byte swizzles by a constant (one pshufb): JavaScriptCore's form (the one-quad step,
 * Bun's), where a shuffle of L with itself runs as a two-input shuffle.
 */
// @ts-ignore: decorator
@inline function evenOfSw(L: v128): v128 {
  const sm = i8x16(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13);
  return RELAXED ? i8x16.relaxed_swizzle(L, sm) : i8x16.swizzle(L, sm);
}

// @ts-ignore: decorator
@inline function oddOfSw(L: v128): v128 {
  const sm = i8x16(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15);
  return RELAXED ? i8x16.relaxed_swizzle(L, sm) : i8x16.swizzle(L, sm);
}

/** Sub-blocks 2k and 2k + 1 of the quad at p (vectors from o), widened by their scales: i32x4, row r in lane r. SW: evenOfSw / oddOfSw. */
// @ts-ignore: decorator
@inline function subPair(p: usize, o: usize, k: usize, x: usize, m: usize, bm0: v128, bm1: v128, m4: v128, m63: v128, SW: bool = false): v128 {
  const L = scalePair(p, k, m63);
  const e = SW ? evenOfSw(L) : evenOf(L), od = SW ? oddOfSw(L) : oddOf(L);
  return i32x4.add(i32x4.dot_i16x8_s(sub(o, x, m, bm0, m4), e), i32x4.dot_i16x8_s(sub(o + 64, x, m + 1, bm1, m4), od));
}

/**
 * QN quads (QN = 4, 2 or 1; qs: bytes between quads) against one activation row q (T = 1): 4 * QN outputs, quad k's
 * at out + k * oqs. Per pair of sub-blocks, each quad's i16 sums (sub) are widened once each by pmaddwd with the
 * quad's scales (scalePair), and the first pair starts the i32 sums. Same integer sums and f32 steps as tile().
 */
// @ts-ignore: decorator
@inline function band(out: usize, oqs: usize, q: usize, p: usize, nb: i32, qs: usize, z: i32, QN: i32): void {
  // constants from an opaque zero (z), so that V8 keeps them in registers (see quant-matmul.ts)
  const m4 = i8x16.splat(<i8>(15 + z)), m63 = i8x16.splat(<i8>(63 + z)), m30 = i8x16.splat(<i8>(0x30 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const x0 = q + 4, o0 = p + 64, b0 = bcastMask(0), b1 = bcastMask(1);
    let s0 = subPair(p, o0, 0, x0, 0, b0, b1, m4, m63, QN == 1), s1 = s0, s2 = s0, s3 = s0;
    if (QN > 1) s1 = subPair(p + qs, o0 + qs, 0, x0, 0, b0, b1, m4, m63);
    if (QN > 2) {
      s2 = subPair(p + 2 * qs, o0 + 2 * qs, 0, x0, 0, b0, b1, m4, m63);
      s3 = subPair(p + 3 * qs, o0 + 3 * qs, 0, x0, 0, b0, b1, m4, m63);
    }
    for (let k: usize = 1; k < 4; k++) {
      // sub-blocks 2k and 2k + 1: half k >> 1 of the activation block, sub-block words 2(k & 1) and 2(k & 1) + 1
      const x = q + 4 + ((k >> 1) << 7), m = (k & 1) << 1, o = p + 64 + (k << 7), bm0 = bcastMask(m), bm1 = bcastMask(m + 1);
      s0 = i32x4.add(s0, subPair(p, o, k, x, m, bm0, bm1, m4, m63, QN == 1));
      if (QN > 1) s1 = i32x4.add(s1, subPair(p + qs, o + qs, k, x, m, bm0, bm1, m4, m63));
      if (QN > 2) {
        s2 = i32x4.add(s2, subPair(p + 2 * qs, o + 2 * qs, k, x, m, bm0, bm1, m4, m63));
        s3 = i32x4.add(s3, subPair(p + 3 * qs, o + 3 * qs, k, x, m, bm0, bm1, m4, m63));
      }
    }
    const P = pairs(q);
    a0 = f32x4.add(a0, finishAt(p, s0, q, P, m4, m30, hmask, p112));
    if (QN > 1) a1 = f32x4.add(a1, finishAt(p + qs, s1, q, P, m4, m30, hmask, p112));
    if (QN > 2) {
      a2 = f32x4.add(a2, finishAt(p + 2 * qs, s2, q, P, m4, m30, hmask, p112));
      a3 = f32x4.add(a3, finishAt(p + 3 * qs, s3, q, P, m4, m30, hmask, p112));
    }
    p += LB;
    q += AB;
  }
  v128.store(out, a0);
  if (QN > 1) v128.store(out + oqs, a1);
  if (QN > 2) {
    v128.store(out + 2 * oqs, a2);
    v128.store(out + 3 * oqs, a3);
  }
}

/**
 * One quad p against four activation rows q0..q3 (T > 1; the same row repeated where fewer): each
 * weight vector is unpacked once for four rows and each quad's scales once per sub-block.
 * Results: four f32x4 (rows of the quad) stored at o0..o3 (equal pointers where rows repeat: same values).
 */
// @ts-ignore: decorator
@inline function tile(o0: usize, o1: usize, o2: usize, o3: usize, p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, z: i32): void {
  const m4 = i8x16.splat(<i8>(15 + z)), m63 = i8x16.splat(<i8>(63 + z)), m30 = i8x16.splat(<i8>(0x30 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let s0 = zero, s1 = zero, s2 = zero, s3 = zero;
    for (let j: usize = 0; j < 8; j++) {
      const m = j & 3, bm = bcastMask(m);
      const x: usize = 4 + ((j >> 2) << 7);
      let t0 = zero, t1 = zero, t2 = zero, t3 = zero;
      for (let c2: usize = 0; c2 < 4; c2++) {
        const V = v128.load(p + 64 + (((j << 2) + c2) << 4));
        const lo = v128.and(V, m4), hi = v128.and(i16x8.shr_u(V, 4), m4);
        const xc = x + (c2 << 5);
        t0 = i16x8.add(t0, i16x8.add(dot16(lo, act(q0 + xc, m, bm)), dot16(hi, act(q0 + xc + 16, m, bm))));
        t1 = i16x8.add(t1, i16x8.add(dot16(lo, act(q1 + xc, m, bm)), dot16(hi, act(q1 + xc + 16, m, bm))));
        t2 = i16x8.add(t2, i16x8.add(dot16(lo, act(q2 + xc, m, bm)), dot16(hi, act(q2 + xc + 16, m, bm))));
        t3 = i16x8.add(t3, i16x8.add(dot16(lo, act(q3 + xc, m, bm)), dot16(hi, act(q3 + xc + 16, m, bm))));
      }
      const S = scales(p, j, scaleMask(j), m63);
      s0 = i32x4.add(s0, i32x4.dot_i16x8_s(t0, S));
      s1 = i32x4.add(s1, i32x4.dot_i16x8_s(t1, S));
      s2 = i32x4.add(s2, i32x4.dot_i16x8_s(t2, S));
      s3 = i32x4.add(s3, i32x4.dot_i16x8_s(t3, S));
    }
    // the quad's mins, d and dmin once for its four activation rows
    const lo = minsLo(p, m4, m30), hi = minsHi(p, m4, m30), dw = f16quad(p, hmask, p112), dm = f16quad(p + 8, hmask, p112);
    a0 = f32x4.add(a0, finish(s0, q0, pairs(q0), lo, hi, dw, dm));
    a1 = f32x4.add(a1, finish(s1, q1, pairs(q1), lo, hi, dw, dm));
    a2 = f32x4.add(a2, finish(s2, q2, pairs(q2), lo, hi, dw, dm));
    a3 = f32x4.add(a3, finish(s3, q3, pairs(q3), lo, hi, dw, dm));
    p += LB;
    q0 += AB; q1 += AB; q2 += AB; q3 += AB;
  }
  // stored last to first: where rows repeat, the pointers are equal and so are the values
  v128.store(o3, a3);
  v128.store(o2, a2);
  v128.store(o1, a1);
  v128.store(o0, a0);
}

/**
 * Two quads (p, p + qs) against four activation rows q0..q3 (T > 1; the same row repeated where fewer): each
 * unpacked weight vector serves four rows and each activation splat two quads. Results: the first quad's rows
 * at o0..o3, the second's at o0 + 16 .. o3 + 16 (equal pointers where rows repeat hold equal values).
 */
// @ts-ignore: decorator
@inline function tile24(o0: usize, o1: usize, o2: usize, o3: usize, p: usize, qs: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, z: i32): void {
  const m4 = i8x16.splat(<i8>(15 + z)), m63 = i8x16.splat(<i8>(63 + z)), m30 = i8x16.splat(<i8>(0x30 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let s0 = zero, s1 = zero, s2 = zero, s3 = zero, s4 = zero, s5 = zero, s6 = zero, s7 = zero;
    for (let j: usize = 0; j < 8; j++) {
      const m = j & 3, bm = bcastMask(m);
      const x: usize = 4 + ((j >> 2) << 7);
      // chunk pair 0 starts the i16 sums (no add to zero), pairs 1..3 add to them
      const o = p + 64 + (j << 6);
      let V = v128.load(o), U = v128.load(o + qs);
      let lo = v128.and(V, m4), hi = v128.and(i16x8.shr_u(V, 4), m4);
      let lo2 = v128.and(U, m4), hi2 = v128.and(i16x8.shr_u(U, 4), m4);
      let xa = act(q0 + x, m, bm), xb = act(q0 + x + 16, m, bm);
      let t0 = i16x8.add(dot16(lo, xa), dot16(hi, xb)), t4 = i16x8.add(dot16(lo2, xa), dot16(hi2, xb));
      xa = act(q1 + x, m, bm); xb = act(q1 + x + 16, m, bm);
      let t1 = i16x8.add(dot16(lo, xa), dot16(hi, xb)), t5 = i16x8.add(dot16(lo2, xa), dot16(hi2, xb));
      xa = act(q2 + x, m, bm); xb = act(q2 + x + 16, m, bm);
      let t2 = i16x8.add(dot16(lo, xa), dot16(hi, xb)), t6 = i16x8.add(dot16(lo2, xa), dot16(hi2, xb));
      xa = act(q3 + x, m, bm); xb = act(q3 + x + 16, m, bm);
      let t3 = i16x8.add(dot16(lo, xa), dot16(hi, xb)), t7 = i16x8.add(dot16(lo2, xa), dot16(hi2, xb));
      for (let c2: usize = 1; c2 < 4; c2++) {
        const oc = o + (c2 << 4), xc = x + (c2 << 5);
        V = v128.load(oc); U = v128.load(oc + qs);
        lo = v128.and(V, m4); hi = v128.and(i16x8.shr_u(V, 4), m4);
        lo2 = v128.and(U, m4); hi2 = v128.and(i16x8.shr_u(U, 4), m4);
        xa = act(q0 + xc, m, bm); xb = act(q0 + xc + 16, m, bm);
        t0 = i16x8.add(t0, i16x8.add(dot16(lo, xa), dot16(hi, xb)));
        t4 = i16x8.add(t4, i16x8.add(dot16(lo2, xa), dot16(hi2, xb)));
        xa = act(q1 + xc, m, bm); xb = act(q1 + xc + 16, m, bm);
        t1 = i16x8.add(t1, i16x8.add(dot16(lo, xa), dot16(hi, xb)));
        t5 = i16x8.add(t5, i16x8.add(dot16(lo2, xa), dot16(hi2, xb)));
        xa = act(q2 + xc, m, bm); xb = act(q2 + xc + 16, m, bm);
        t2 = i16x8.add(t2, i16x8.add(dot16(lo, xa), dot16(hi, xb)));
        t6 = i16x8.add(t6, i16x8.add(dot16(lo2, xa), dot16(hi2, xb)));
        xa = act(q3 + xc, m, bm); xb = act(q3 + xc + 16, m, bm);
        t3 = i16x8.add(t3, i16x8.add(dot16(lo, xa), dot16(hi, xb)));
        t7 = i16x8.add(t7, i16x8.add(dot16(lo2, xa), dot16(hi2, xb)));
      }
      const sm = scaleMask(j);
      const S = scales(p, j, sm, m63), S2 = scales(p + qs, j, sm, m63);
      s0 = i32x4.add(s0, i32x4.dot_i16x8_s(t0, S));
      s1 = i32x4.add(s1, i32x4.dot_i16x8_s(t1, S));
      s2 = i32x4.add(s2, i32x4.dot_i16x8_s(t2, S));
      s3 = i32x4.add(s3, i32x4.dot_i16x8_s(t3, S));
      s4 = i32x4.add(s4, i32x4.dot_i16x8_s(t4, S2));
      s5 = i32x4.add(s5, i32x4.dot_i16x8_s(t5, S2));
      s6 = i32x4.add(s6, i32x4.dot_i16x8_s(t6, S2));
      s7 = i32x4.add(s7, i32x4.dot_i16x8_s(t7, S2));
    }
    // each quad's mins, d and dmin, and each row's bsum pairs, once for the tile
    const P0 = pairs(q0), P1 = pairs(q1), P2 = pairs(q2), P3 = pairs(q3);
    let lo = minsLo(p, m4, m30), hi = minsHi(p, m4, m30), dw = f16quad(p, hmask, p112), dm = f16quad(p + 8, hmask, p112);
    a0 = f32x4.add(a0, finish(s0, q0, P0, lo, hi, dw, dm));
    a1 = f32x4.add(a1, finish(s1, q1, P1, lo, hi, dw, dm));
    a2 = f32x4.add(a2, finish(s2, q2, P2, lo, hi, dw, dm));
    a3 = f32x4.add(a3, finish(s3, q3, P3, lo, hi, dw, dm));
    const p2 = p + qs;
    lo = minsLo(p2, m4, m30); hi = minsHi(p2, m4, m30); dw = f16quad(p2, hmask, p112); dm = f16quad(p2 + 8, hmask, p112);
    a4 = f32x4.add(a4, finish(s4, q0, P0, lo, hi, dw, dm));
    a5 = f32x4.add(a5, finish(s5, q1, P1, lo, hi, dw, dm));
    a6 = f32x4.add(a6, finish(s6, q2, P2, lo, hi, dw, dm));
    a7 = f32x4.add(a7, finish(s7, q3, P3, lo, hi, dw, dm));
    p += LB;
    q0 += AB; q1 += AB; q2 += AB; q3 += AB;
  }
  // stored last to first: where rows repeat, the pointers are equal and so are the values
  v128.store(o3 + 16, a7);
  v128.store(o2 + 16, a6);
  v128.store(o1 + 16, a5);
  v128.store(o0 + 16, a4);
  v128.store(o3, a3);
  v128.store(o2, a2);
  v128.store(o1, a1);
  v128.store(o0, a0);
}

/**
 * T = 1, rows [r0, e) (quads), one quad per pass: matmul_q4_k_lanes_q1's step (JavaScriptCore) and
 * matmul_q4_k_lanes's last quads. One function for both (not inlined): the edge bundle carries every build's bytes.
 */
function gemv1(out: usize, xq: usize, w: usize, nb: i32, ws: usize, r0: i32, e: i32, z: i32): void {
  for (let r = r0; r + 4 <= e; r += 4) band(out + (<usize>r << 2), 16, xq, w + <usize>r * ws, nb, ws << 2, z, 1);
}

/**
 * T = 1, rows [r0, e) (quads), 16 rows per pass: four quads from four far-apart bands of the range, as matmul_q4_kx
 * takes rows: four sequential streams through memory (adjacent quads, read in turn, ran at 0.65-0.8x with the
 * weights coming from DRAM), then single quads (gemv1).
 */
// @ts-ignore: decorator
@inline function gemv4(out: usize, xq: usize, w: usize, nb: i32, ws: usize, r0: i32, e: i32, z: i32): void {
  const qn = (e - r0) >> 4, qo: usize = <usize>qn << 4;
  for (let g = 0; g < qn; g++) {
    const rg = r0 + 4 * g;
    band(out + (<usize>rg << 2), qo, xq, w + <usize>rg * ws, nb, (qo >> 2) * ws, z, 4);
  }
  gemv1(out, xq, w, nb, ws, r0 + 16 * qn, e, z);
}

/**
 * T > 1, rows [r0, e) (quads): activation rows in chunks that stay in L1 (gemmChunk), each pair of quads passing
 * over a chunk four rows at a time (tile24: 16 dot products per pair of chunks for 2 weight loads, 6 unpacking ops
 * and 8 activation splats; the two-quad, two-row tile before it did 8 for 2, 6 and 4: 1.2x in V8 and
 * JavaScriptCore), a last quad four rows at a time (tile).
 */
function gemm(out: usize, xq: usize, w: usize, nb: i32, d: i32, T: i32, r0: i32, e: i32, z: i32): void {
  const ws: usize = <usize>nb * WB, as: usize = <usize>nb * AB, od: usize = <usize>d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    let r = r0;
    for (; r + 8 <= e; r += 8) {
      const p = w + <usize>r * ws, o = out + (<usize>r << 2);
      for (let t = t0; t < t1; t += 4) {
        const q = xq + <usize>t * as, ot = o + <usize>t * od;
        const tb = t + 1 < t1 ? 1 : 0, tc = t + 2 < t1 ? 2 : tb, td = t + 3 < t1 ? 3 : tc;
        tile24(ot, ot + <usize>tb * od, ot + <usize>tc * od, ot + <usize>td * od, p, ws << 2, q, q + <usize>tb * as, q + <usize>tc * as, q + <usize>td * as, nb, z);
      }
    }
    for (; r + 4 <= e; r += 4) {
      const p = w + <usize>r * ws, o = out + (<usize>r << 2);
      for (let t = t0; t < t1; t += 4) {
        const q = xq + <usize>t * as, ot = o + <usize>t * od;
        const tb = t + 1 < t1 ? 1 : 0, tc = t + 2 < t1 ? 2 : tb, td = t + 3 < t1 ? 3 : tc;
        tile(ot, ot + <usize>tb * od, ot + <usize>tc * od, ot + <usize>td * od, p, q, q + <usize>tb * as, q + <usize>tc * as, q + <usize>td * as, nb, z);
      }
    }
  }
}

/**
 * out[t*d + r] = W[r] . xq[t] for r in [r0, r1), t < T: W in the lanes layout (repack_q4_k_lanes), xq KX
 * Q8_K activations (quantize_q8_kx), as matmul_q4_kx. r0 and r1 fall on quad boundaries (multiples of 4) or
 * r1 == d; rows from d & ~3 on are KX (matmul_q4_kx). T = 1: gemv4, four quads per pass; T > 1: gemm.
 */
export function matmul_q4_k_lanes(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31), d4 = d & ~3, e = min(r1, d4);
  if (T == 1) gemv4(out, xq, w, nb, <usize>nb * WB, r0, e, z);
  else gemm(out, xq, w, nb, d, T, r0, e, z);
  // the KX rows after the last quad
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, T, max(r0, d4), r1);
}

/**
 * matmul_q4_k_lanes with T = 1 one quad per pass (Bun's Q4_K matmul, src/quant/kernels.ts): JavaScriptCore spills
 * the four-quad step's live vectors (four quads' i16 and i32 sums and f32 results beside the shared splats) and
 * ran it at 0.65-0.77x of this one-quad form, where V8 runs the four-quad step 1.09-1.53x faster than this.
 * T > 1 as matmul_q4_k_lanes. The same integer sums and f32 steps, so bit-identical to it.
 */
export function matmul_q4_k_lanes_q1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31), d4 = d & ~3, e = min(r1, d4);
  if (T == 1) gemv1(out, xq, w, nb, <usize>nb * WB, r0, e, z);
  else gemm(out, xq, w, nb, d, T, r0, e, z);
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, T, max(r0, d4), r1);
}

// ---- T = 1 through the i32 dot-add, where it is an exact u8 x s8 dot product (V8 on a VNNI CPU) ----
//
// i32x4.relaxed_dot_i8x16_i7x16_add_s sums four byte products into each i32 lane. Where the engine lowers it to one
// vpdpbusd (V8 with AVX-VNNI), it is exact for any unsigned byte in its second operand, so a weight vector's high
// nibbles can stay where they are (V & 0xf0: 16 x 0..15) and only the low ones are masked: two ops a vector where
// band's unpacking takes three, no i16 adds (the dot-add accumulates), and each sub-block's sums (16 x the exact
// ones: the low nibbles' chain shifted left by 4 before the add) take their scales by one i32 multiply. Under
// JavaScriptCore the same instruction is pmaddubsw + pmaddwd + add, saturating for bytes >= 128: a wrong result, so
// src/quant/kernels.ts takes this kernel only where a run-time probe has found the exact semantics.
// Same integers: |16 Σ q a| <= 16 x 32 x 15 x 128 per sub-block, times a 6-bit scale, eight sub-blocks: < 2^29, and
// the superblock's sum is a multiple of 16, so shifting it right by 4 gives band's exact isum; finish() as band.

/** Sub-block's sums of the quad at o (four vectors) against activation chunks at x (word m), times 16. Relaxed only. */
// @ts-ignore: decorator
@inline function sub16(o: usize, x: usize, m: usize, m4: v128, mf0: v128): v128 {
  // written out: with a loop over the four vectors, V8 kept the loop and ran the step at 0.56-0.73x (standalone module)
  let V = v128.load(o);
  let lo = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x, m, m4), v128.and(V, m4), i32x4.splat(0));
  let hi = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x + 16, m, m4), v128.and(V, mf0), i32x4.splat(0));
  V = v128.load(o + 16);
  lo = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x + 32, m, m4), v128.and(V, m4), lo);
  hi = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x + 48, m, m4), v128.and(V, mf0), hi);
  V = v128.load(o + 32);
  lo = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x + 64, m, m4), v128.and(V, m4), lo);
  hi = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x + 80, m, m4), v128.and(V, mf0), hi);
  V = v128.load(o + 48);
  lo = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x + 96, m, m4), v128.and(V, m4), lo);
  hi = i32x4.relaxed_dot_i8x16_i7x16_add_s(act(x + 112, m, m4), v128.and(V, mf0), hi);
  return i32x4.add(i32x4.shl(lo, 4), hi);
}

/** Sub-blocks 2k and 2k + 1 of the quad at p (vectors from o), times their scales (i32 lanes, row r in lane r), times 16. */
// @ts-ignore: decorator
@inline function subPair16(p: usize, o: usize, k: usize, x: usize, m: usize, m4: v128, mf0: v128, m3f: v128): v128 {
  // the scale bytes of 2k and 2k + 1 side by side for each row (scalePair): the low / high i16 of i32 lane r
  const L = v128.load8x8_u(p + 16 + ((k >> 1) << 4) + ((k & 1) << 3));
  const se = v128.and(L, m3f), so = v128.and(i32x4.shr_u(L, 16), m3f);
  return i32x4.add(i32x4.mul(sub16(o, x, m, m4, mf0), se), i32x4.mul(sub16(o + 64, x, m + 1, m4, mf0), so));
}

/** band() through the dot-add (QN = 4 or 1 quads, qs bytes apart): the same isum, msum and f32 steps. Relaxed only. */
// @ts-ignore: decorator
@inline function band16(out: usize, oqs: usize, q: usize, p: usize, nb: i32, qs: usize, z: i32, QN: i32): void {
  const m4 = i8x16.splat(<i8>(15 + z)), mf0 = i8x16.splat(<i8>(0xf0 + z)), m30 = i8x16.splat(<i8>(0x30 + z));
  const m3f = i32x4.splat(63 + z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    // all four pairs in one loop from zero sums (the first pair peeled to start them, as band does, ran at 0.95x in V8)
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let k: usize = 0; k < 4; k++) {
      // sub-blocks 2k and 2k + 1: half k >> 1 of the activation block, sub-block words 2(k & 1) and 2(k & 1) + 1
      const x = q + 4 + ((k >> 1) << 7), m = (k & 1) << 1, o = p + 64 + (k << 7);
      // (s1 alone, then s2 and s3: grouped under one condition, binaryen reloaded a third of the shared splats)
      s0 = i32x4.add(s0, subPair16(p, o, k, x, m, m4, mf0, m3f));
      if (QN > 1) s1 = i32x4.add(s1, subPair16(p + qs, o + qs, k, x, m, m4, mf0, m3f));
      if (QN > 2) {
        s2 = i32x4.add(s2, subPair16(p + 2 * qs, o + 2 * qs, k, x, m, m4, mf0, m3f));
        s3 = i32x4.add(s3, subPair16(p + 3 * qs, o + 3 * qs, k, x, m, m4, mf0, m3f));
      }
    }
    const P = pairs(q);
    a0 = f32x4.add(a0, finishAt(p, i32x4.shr_s(s0, 4), q, P, m4, m30, hmask, p112));
    if (QN > 1) {
      a1 = f32x4.add(a1, finishAt(p + qs, i32x4.shr_s(s1, 4), q, P, m4, m30, hmask, p112));
      a2 = f32x4.add(a2, finishAt(p + 2 * qs, i32x4.shr_s(s2, 4), q, P, m4, m30, hmask, p112));
      a3 = f32x4.add(a3, finishAt(p + 3 * qs, i32x4.shr_s(s3, 4), q, P, m4, m30, hmask, p112));
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

/** gemv4 through band16: four far-apart quads per pass, then single quads. Relaxed only. */
// @ts-ignore: decorator
@inline function gemv16(out: usize, xq: usize, w: usize, nb: i32, ws: usize, r0: i32, e: i32, z: i32): void {
  const qn = (e - r0) >> 4, qo: usize = <usize>qn << 4;
  for (let g = 0; g < qn; g++) {
    const rg = r0 + 4 * g;
    band16(out + (<usize>rg << 2), qo, xq, w + <usize>rg * ws, nb, (qo >> 2) * ws, z, 4);
  }
  for (let r = r0 + 16 * qn; r + 4 <= e; r += 4) band16(out + (<usize>r << 2), 16, xq, w + <usize>r * ws, nb, ws << 2, z, 1);
}

/**
 * matmul_q4_k_lanes with T = 1 through the dot-add (gemv16): for engines whose i32x4.relaxed_dot_i8x16_i7x16_add_s is an
 * exact u8 x s8 dot product (V8 on a VNNI CPU: src/quant/kernels.ts checks it at run time); wrong where it saturates
 * (JavaScriptCore). T > 1 and the plain build (no dot-add) as matmul_q4_k_lanes. Bit-identical to it where it applies.
 */
export function matmul_q4_k_lanes_u8(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  if (!RELAXED) {
    matmul_q4_k_lanes(out, xq, w, n, d, T, r0, r1);
    return;
  }
  const nb = n >> 8, z = <i32>(<u32>n >> 31), d4 = d & ~3, e = min(r1, d4);
  // (gemm, not matmul_q4_k_lanes: inlined here, its T = 1 step made this function's step 0.65-0.97x of the same code alone)
  if (T == 1) gemv16(out, xq, w, nb, <usize>nb * WB, r0, e, z);
  else gemm(out, xq, w, nb, d, T, r0, e, z);
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, T, max(r0, d4), r1);
}
