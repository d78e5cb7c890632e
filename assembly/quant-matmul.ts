// Quantized matmuls: out[t*d + r] = W[r] . x[t] for r in [r0, r1), t < T.
// W: d rows of n elements in ggml blocks; xq: T rows of quantized activations
// (Q8_S for Q4_0 and Q8_0: Q8_0's values with d as f32 and the block sum; Q8_0,
// Q8_1 or Q8_K for the others, as ggml pairs them).
//
// Every kernel computes the integer dot product of one weight block with one
// activation block exactly (i32), converts it to f32 once per block, and
// accumulates   (d_w * d_a) * isum   [- (dmin_w * d_a) * msum]   in f32, as
// ggml's reference vec_dot does. Integer sums are reduced across SIMD lanes
// before conversion, so the relaxed and plain builds give bit-identical results
// and results do not depend on r0/r1.
//
// Work is done in tiles of four (weight row, activation row) pairs:
//   T == 1: four weight rows against one activation row (the activation loads are shared;
//           Q4_0 and Q8_0: gemv() in quant-gemm.ts, with the tiles' per-block step);
//   T > 1:  one weight row against four activation rows (each weight block is
//           unpacked once and used four times; the row stays in L1 across t).
import { f16, f16x4, reduce4i, reduce4i16, reduce4f, dot16, q3kScalesLo, q3kScalesHi } from "./quant-util";
import {
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
  Q4_0_BYTES, Q4_1_BYTES, Q5_0_BYTES, Q5_1_BYTES, Q8_0_BYTES, Q8_1_BYTES, Q2_K_BYTES, Q3_K_BYTES, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, Q8_K_BYTES, Q8_S_BYTES,
} from "./ggml-common";
import { gemm, gemmChunk, gemv, hasGemm } from "./quant-gemm";

// Kinds are ggml type ids (ggml-common.ts).

// Tile modes.
// @ts-ignore: decorator
@inline const SAME_A = 0; // four weight rows, one activation row
// @ts-ignore: decorator
@inline const SAME_W = 1; // one weight row, four activation rows

// @ts-ignore: decorator
@inline function isK(k: i32): bool { return k >= Q2_K; }

/** Bytes per weight block. */
// @ts-ignore: decorator
@inline function wBytes(k: i32): usize {
  return k == Q4_0 ? Q4_0_BYTES : k == Q4_1 ? Q4_1_BYTES : k == Q5_0 ? Q5_0_BYTES : k == Q5_1 ? Q5_1_BYTES : k == Q8_0 ? Q8_0_BYTES
    : k == Q2_K ? Q2_K_BYTES : k == Q3_K ? Q3_K_BYTES : k == Q4_K ? Q4_K_BYTES : k == Q5_K ? Q5_K_BYTES : Q6_K_BYTES;
}
/** Do Q8_S activations (f32 d at 0, i32 sum at 4, int8 at 8) go with weight type k? */
// @ts-ignore: decorator
@inline function isS(k: i32): bool { return k == Q4_0 || k == Q8_0; }
/** Bytes per activation block: Q8_S (40), Q8_0 (34), Q8_1 (36) or Q8_K (292). */
// @ts-ignore: decorator
@inline function aBytes(k: i32): usize {
  return isK(k) ? Q8_K_BYTES : isS(k) ? Q8_S_BYTES : (k == Q4_1 || k == Q5_1) ? Q8_1_BYTES : Q8_0_BYTES;
}
/** Offset of the int8 values in an activation block. */
// @ts-ignore: decorator
@inline function aQs(k: i32): usize { return isK(k) ? 4 : isS(k) ? 8 : (k == Q4_1 || k == Q5_1) ? 4 : 2; }
/** Offset of the f16 d in a weight block. */
// @ts-ignore: decorator
@inline function wD(k: i32): usize { return k == Q2_K ? 80 : k == Q3_K ? 108 : k == Q6_K ? 208 : 0; }

/** Expand bits [16h, 16h+16) of qh into 16 bytes of 0x10 / 0. */
// @ts-ignore: decorator
@inline function hbits5(qh: u32, h: i32, bits: v128, x10: v128): v128 {
  const v = i32x4.splat(<i32>(qh >> (<u32>h << 4)));
  const b = v128.and(i8x16.shuffle(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), bits);
  return v128.and(i8x16.ne(b, i8x16.splat(0)), x10);
}

/**
 * Weights of sub-block j (32 elements), half h (16 elements), as bytes:
 * unsigned 0..63 for every type but Q8_0 (signed).
 */
// @ts-ignore: decorator
@inline function wv(k: i32, p: usize, j: i32, h: i32, m1: v128, m3: v128, m4: v128, bits: v128, x10: v128): v128 {
  if (k == Q8_0) return v128.load(p + 2 + (<usize>h << 4));
  if (k == Q4_0 || k == Q4_1) {
    const q = v128.load(p + (k == Q4_0 ? 2 : 4));
    return v128.and(h == 0 ? q : i16x8.shr_u(q, 4), m4);
  }
  if (k == Q5_0 || k == Q5_1) {
    const q = v128.load(p + (k == Q5_0 ? 6 : 8));
    const lo = v128.and(h == 0 ? q : i16x8.shr_u(q, 4), m4);
    return v128.or(lo, hbits5(load<u32>(p + (k == Q5_0 ? 2 : 4)), h, bits, x10));
  }
  const hh = <usize>h << 4;
  if (k == Q2_K) {
    return v128.and(i16x8.shr_u(v128.load(p + 16 + (<usize>(j >> 2) << 5) + hh), (j & 3) << 1), m3);
  }
  if (k == Q3_K) {
    const lo = v128.and(i16x8.shr_u(v128.load(p + 32 + (<usize>(j >> 2) << 5) + hh), (j & 3) << 1), m3);
    const hb = i16x8.shl(v128.and(i16x8.shr_u(v128.load(p + hh), j), m1), 2);
    return v128.or(lo, hb);
  }
  if (k == Q4_K) {
    return v128.and(i16x8.shr_u(v128.load(p + 16 + (<usize>(j >> 1) << 5) + hh), (j & 1) << 2), m4);
  }
  if (k == Q5_K) {
    const lo = v128.and(i16x8.shr_u(v128.load(p + 48 + (<usize>(j >> 1) << 5) + hh), (j & 1) << 2), m4);
    const hb = i16x8.shl(v128.and(i16x8.shr_u(v128.load(p + 16 + hh), j), m1), 4);
    return v128.or(lo, hb);
  }
  // Q6_K
  const lo = v128.and(i16x8.shr_u(v128.load(p + (<usize>(j >> 2) << 6) + (<usize>(j & 1) << 5) + hh), ((j >> 1) & 1) << 2), m4);
  const hb = i16x8.shl(v128.and(i16x8.shr_u(v128.load(p + 128 + (<usize>(j >> 2) << 5) + hh), (j & 3) << 1), m3), 4);
  return v128.or(lo, hb);
}

/** Activations of sub-block j, half h. */
// @ts-ignore: decorator
@inline function av(k: i32, q: usize, j: i32, h: i32): v128 {
  return v128.load(q + aQs(k) + (<usize>j << 5) + (<usize>h << 4));
}

/** Per-superblock packed scales of a K-quant block (u64 of bytes), for sc16. */
// @ts-ignore: decorator
@inline function kPackLo(k: i32, p: usize): u64 {
  if (k == Q3_K) return q3kScalesLo(p + 96);
  if (k == Q4_K || k == Q5_K) {
    const u0 = load<u32>(p + 4), u2 = load<u32>(p + 12);
    const s1 = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
    return <u64>(u0 & 0x3f3f3f3f) | (<u64>s1 << 32); // the 8 scales
  }
  return 0;
}
// @ts-ignore: decorator
@inline function kPackHi(k: i32, p: usize): u64 {
  if (k == Q3_K) return q3kScalesHi(p + 96);
  if (k == Q4_K || k == Q5_K) {
    const u1 = load<u32>(p + 8), u2 = load<u32>(p + 12);
    const m1 = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4);
    return <u64>(u1 & 0x3f3f3f3f) | (<u64>m1 << 32); // the 8 mins
  }
  return 0;
}

/** Integer scale of sub-block j, half h (per 16 elements; Q4_K/Q5_K: per 32, h ignored). */
// @ts-ignore: decorator
@inline function sc16(k: i32, p: usize, lo: u64, hi: u64, j: i32, h: i32): i32 {
  if (k == Q2_K) return <i32>load<u8>(p + (j << 1) + h) & 15;
  if (k == Q6_K) return <i32>load<i8>(p + 192 + (j << 1) + h);
  if (k == Q3_K) return (<i32>((j < 4 ? lo : hi) >> (<u64>(((j << 1) + h) & 7) << 3)) & 0xff) - 32;
  return <i32>(lo >> (<u64>j << 3)) & 0xff; // Q4_K, Q5_K
}

/**
 * Lane partial sums of the per-16 correction Σ_s c_s * bsums_s of a Q8_K block at q:
 * Q2_K mins (c = scales>>4), Q6_K / Q3_K scales (for the -32 / -4 offsets), Q4_K / Q5_K mins (per 32).
 */
// @ts-ignore: decorator
@inline function kCorr(k: i32, p: usize, hi: u64, lo: u64, q: usize, m4: v128, x20: v128): v128 {
  const b0 = v128.load(q + 260), b1 = v128.load(q + 276);
  let c: v128;
  if (k == Q2_K) c = v128.and(i16x8.shr_u(v128.load(p), 4), m4);
  else if (k == Q6_K) c = v128.load(p + 192);
  else if (k == Q3_K) c = i8x16.sub(i64x2.replace_lane(i64x2.splat(lo), 1, hi), x20);
  else {
    // 8 mins, each covering two bsums: add the bsum pairs (|pair| <= 32 * 127, so
    // narrowing back to i16 is exact), then one pmaddwd with the mins (no
    // shuffles, which JavaScriptCore lowers poorly)
    const m = i16x8.extend_low_i8x16_u(i64x2.splat(hi));
    return i32x4.dot_i16x8_s(m, i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(b0), i32x4.extadd_pairwise_i16x8_s(b1)));
  }
  if (k == Q2_K) {
    return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(c), b0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(c), b1));
  }
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(c), b0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(c), b1));
}

/**
 * One (weight, activation) pair's integer sum for one 32-element sub-block, added to s (i32x4).
 * u0/u1: the 7-bit operand (weights; for Q8_0 the shared side's magnitudes), x0/x1: the
 * signed one. The two halves' i16 partials are added before widening (|lane| <= 2*2*63*127
 * fits i16 for every type but Q8_0), and the widening pmaddwd multiplies by the
 * sub-block's integer scale (ones where there is none).
 * off: Q5_0's 16 x the activation lane sums, subtracted in i16 (still fits); Q4_0's
 * 8 x the block sum is subtracted after the reduction (tile()), from Q8_S's stored sum.
 */
// @ts-ignore: decorator
@inline function step(k: i32, s: v128, u0: v128, u1: v128, x0: v128, x1: v128, c0: i32, c1: i32, ones16: v128, off: v128, sv: v128): v128 {
  if (k == Q8_0) {
    // products up to 127*127: two per lane fit i16, four do not, so widen each half
    return i32x4.add(s, i32x4.add(i32x4.dot_i16x8_s(dot16(u0, x0), ones16), i32x4.dot_i16x8_s(dot16(u1, x1), ones16)));
  }
  const p = i16x8.add(dot16(u0, x0), dot16(u1, x1));
  if (k == Q5_0) return i32x4.add(s, i32x4.dot_i16x8_s(i16x8.sub(p, off), ones16));
  if (!isK(k)) return i32x4.add(s, i32x4.dot_i16x8_s(p, ones16));
  if (k == Q4_K || k == Q5_K) return i32x4.add(s, i32x4.dot_i16x8_s(p, i16x8.splat(<i16>c0)));
  if (k == Q6_K) {
    // sv = [c0, c1] x 4: interleave the two halves' i16 partials so that one
    // pmaddwd per half-vector applies both scales (no scalar scale extraction/splat)
    const p0 = dot16(u0, x0), p1 = dot16(u1, x1);
    return i32x4.add(s, i32x4.add(
      i32x4.dot_i16x8_s(v128.shuffle<i16>(p0, p1, 0, 8, 1, 9, 2, 10, 3, 11), sv),
      i32x4.dot_i16x8_s(v128.shuffle<i16>(p0, p1, 4, 12, 5, 13, 6, 14, 7, 15), sv),
    ));
  }
  // Q2_K, Q3_K: one scale per 16 elements
  return i32x4.add(s, i32x4.add(
    i32x4.dot_i16x8_s(dot16(u0, x0), i16x8.splat(<i16>c0)),
    i32x4.dot_i16x8_s(dot16(u1, x1), i16x8.splat(<i16>c1)),
  ));
}

/**
 * Q4_K, four rows x one activation row (T == 1): one row's integer sums for
 * sub-blocks 2i and 2i+1, which share the 32 bytes at p + 16 + 32i (low and high
 * nibbles), so each byte is loaded once. xa0/xa1, xb0/xb1: the activations of
 * the two sub-blocks (loaded once for the four rows); sc: the row's 8 scales
 * (kPackLo). The scales are splat from a scalar: a constant i8x16.shuffle of a
 * scale vector is cheaper in V8 but much slower in JavaScriptCore.
 */
// @ts-ignore: decorator
@inline function q4kPair(p: usize, i: i32, xa0: v128, xa1: v128, xb0: v128, xb1: v128, sc: u64, m4: v128): v128 {
  const w0 = v128.load(p + 16 + (<usize>i << 5)), w1 = v128.load(p + 32 + (<usize>i << 5));
  const pl = i16x8.add(dot16(v128.and(w0, m4), xa0), dot16(v128.and(w1, m4), xa1));
  const ph = i16x8.add(dot16(v128.and(i16x8.shr_u(w0, 4), m4), xb0), dot16(v128.and(i16x8.shr_u(w1, 4), m4), xb1));
  const c0 = i16x8.splat(<i16>sc16(Q4_K, p, sc, 0, i << 1, 0)), c1 = i16x8.splat(<i16>sc16(Q4_K, p, sc, 0, (i << 1) + 1, 0));
  return i32x4.add(i32x4.dot_i16x8_s(pl, c0), i32x4.dot_i16x8_s(ph, c1));
}

/**
 * Q6_K, T == 1: one row's integer sums for half h of the four sub-blocks 4n..4n+3
 * (n: which 128-element half of the superblock). Those share 16 bytes of ql at
 * 64n + 16h (sub-blocks 4n, 4n+2: low, high nibbles), 16 at 64n + 32 + 16h (4n+1,
 * 4n+3) and 16 of qh at 128 + 32n + 16h (bits 0-1, 2-3, 4-5, 6-7 in order), so
 * each weight byte is loaded once and the high bits are moved straight into
 * place (bits 4-5) with one shift each, none for sub-block 4n+2. Weights are
 * 0..63 (the -32 is applied through the bsums after the superblock).
 */
// @ts-ignore: decorator
@inline function q6kQuad(p: usize, n: i32, h: i32, x0: v128, x1: v128, x2: v128, x3: v128, m4: v128, m30: v128): v128 {
  const o = (<usize>n << 6) + (<usize>h << 4);
  const a = v128.load(p + o), b = v128.load(p + o + 32), hb = v128.load(p + 128 + (<usize>n << 5) + (<usize>h << 4));
  // (16-bit shifts: the bits that cross into the neighbouring byte are masked off)
  const w0 = v128.or(v128.and(a, m4), v128.and(i16x8.shl(hb, 4), m30));
  const w1 = v128.or(v128.and(b, m4), v128.and(i16x8.shl(hb, 2), m30));
  const w2 = v128.or(v128.and(i16x8.shr_u(a, 4), m4), v128.and(hb, m30));
  const w3 = v128.or(v128.and(i16x8.shr_u(b, 4), m4), v128.and(i16x8.shr_u(hb, 2), m30));
  // scale of sub-block 4n+q, half h: scales[8n + 2q + h] (scalar splats: see q4kPair)
  const sc = p + 192 + (<usize>n << 3) + <usize>h;
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(dot16(w0, x0), i16x8.splat(load<i8>(sc))), i32x4.dot_i16x8_s(dot16(w1, x1), i16x8.splat(load<i8>(sc + 2)))),
    i32x4.add(i32x4.dot_i16x8_s(dot16(w2, x2), i16x8.splat(load<i8>(sc + 4))), i32x4.dot_i16x8_s(dot16(w3, x3), i16x8.splat(load<i8>(sc + 6)))),
  );
}

/** v with the sign of the bytes whose mask m is all ones flipped (v ^ m) - m. */
/** q4kPair with the row's unpacked bytes (la, lb: low nibbles, ha, hb: high) and scale splats given, for activation x (T > 1). */
// @ts-ignore: decorator
@inline function q4kPairW(la: v128, lb: v128, ha: v128, hb: v128, c0: v128, c1: v128, x: usize): v128 {
  const pl = i16x8.add(dot16(la, v128.load(x)), dot16(lb, v128.load(x + 16)));
  const ph = i16x8.add(dot16(ha, v128.load(x + 32)), dot16(hb, v128.load(x + 48)));
  return i32x4.add(i32x4.dot_i16x8_s(pl, c0), i32x4.dot_i16x8_s(ph, c1));
}

/** q6kQuad with the four sub-blocks' weights (w0..w3) and scale splats (e0..e3) given, for activation x (T > 1). */
// @ts-ignore: decorator
@inline function q6kQuadW(w0: v128, w1: v128, w2: v128, w3: v128, e0: v128, e1: v128, e2: v128, e3: v128, x: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(dot16(w0, v128.load(x)), e0), i32x4.dot_i16x8_s(dot16(w1, v128.load(x + 32)), e1)),
    i32x4.add(i32x4.dot_i16x8_s(dot16(w2, v128.load(x + 64)), e2), i32x4.dot_i16x8_s(dot16(w3, v128.load(x + 96)), e3)),
  );
}

// @ts-ignore: decorator
@inline function flip(v: v128, m: v128): v128 { return i8x16.sub(v128.xor(v, m), m); }

/** Q5_0's offset term for activation halves x0, x1: (Σ lane pairs) << 4, as i16x8. */
// @ts-ignore: decorator
@inline function offA(x0: v128, x1: v128, ones8: v128): v128 {
  return i16x8.shl(i16x8.add(dot16(ones8, x0), dot16(ones8, x1)), 4);
}

/** Four dot products of n elements: pairs (p_i, q_i); returns them as f32x4. */
// @ts-ignore: decorator
@inline function tile(k: i32, mode: i32, p0: usize, p1: usize, p2: usize, p3: usize,
  q0: usize, q1: usize, q2: usize, q3: usize, nb: i32, z: i32): v128 {
  // Vector constants, built from an opaque zero (z) outside the loop: V8 would
  // otherwise rematerialize every non-trivial v128.const at each use in the loop.
  const m1 = i8x16.splat(<i8>(1 + z)), m3 = i8x16.splat(<i8>(3 + z)), m4 = i8x16.splat(<i8>(15 + z));
  // deno-lint-ignore no-unused-vars -- used below; the loop body's own `let c10` hides it from JS scoping, not from AssemblyScript's
  const c10 = i8x16.splat(<i8>(0x10 + z)), c20 = i8x16.splat(<i8>(32 + z)), c30 = i8x16.splat(<i8>(0x30 + z)), bits = i64x2.splat(0x8040201008040201 + <i64>z);
  const ones16 = i16x8.splat(<i16>(1 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const zero = i32x4.splat(0);
  const WB = wBytes(k), AB = aBytes(k);
  const NS = isK(k) ? 8 : 1;
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    let s0 = zero, s1 = s0, s2 = s0, s3 = s0;
    // per-superblock scale packs
    let l0: u64 = 0, l1: u64 = 0, l2: u64 = 0, l3: u64 = 0, h0: u64 = 0, h1: u64 = 0, h2: u64 = 0, h3: u64 = 0;
    if (k == Q3_K || k == Q4_K || k == Q5_K) {
      l0 = kPackLo(k, p0); h0 = kPackHi(k, p0);
      if (mode == SAME_W) { l1 = l0; l2 = l0; l3 = l0; h1 = h0; h2 = h0; h3 = h0; }
      else { l1 = kPackLo(k, p1); l2 = kPackLo(k, p2); l3 = kPackLo(k, p3); h1 = kPackHi(k, p1); h2 = kPackHi(k, p2); h3 = kPackHi(k, p3); }
    }
    let j = 0;
    // T == 1 fast paths for Q4_K and Q6_K (the types of Q4_K_M files): every weight
    // byte loaded once, no per-sub-block offset arithmetic. Same integer sums as
    // the generic loop below. (Fully unrolling these loops measured slower in
    // both engines.)
    if (mode == SAME_A && k == Q4_K) {
      // sub-blocks in pairs (see q4kPair)
      for (let i = 0; i < 4; i++) {
        const x = q0 + 4 + (<usize>i << 6);
        const xa0 = v128.load(x), xa1 = v128.load(x + 16), xb0 = v128.load(x + 32), xb1 = v128.load(x + 48);
        s0 = i32x4.add(s0, q4kPair(p0, i, xa0, xa1, xb0, xb1, l0, m4)); s1 = i32x4.add(s1, q4kPair(p1, i, xa0, xa1, xb0, xb1, l1, m4));
        s2 = i32x4.add(s2, q4kPair(p2, i, xa0, xa1, xb0, xb1, l2, m4)); s3 = i32x4.add(s3, q4kPair(p3, i, xa0, xa1, xb0, xb1, l3, m4));
      }
      j = NS;
    }
    if (mode == SAME_A && k == Q6_K) {
      // per 128-element half n and 16-element half h, four sub-blocks (see q6kQuad)
      for (let t = 0; t < 4; t++) {
        const n = t >> 1, h = t & 1;
        const x = q0 + 4 + (<usize>n << 7) + (<usize>h << 4);
        const x0 = v128.load(x), x1 = v128.load(x + 32), x2 = v128.load(x + 64), x3 = v128.load(x + 96);
        s0 = i32x4.add(s0, q6kQuad(p0, n, h, x0, x1, x2, x3, m4, c30)); s1 = i32x4.add(s1, q6kQuad(p1, n, h, x0, x1, x2, x3, m4, c30));
        s2 = i32x4.add(s2, q6kQuad(p2, n, h, x0, x1, x2, x3, m4, c30)); s3 = i32x4.add(s3, q6kQuad(p3, n, h, x0, x1, x2, x3, m4, c30));
      }
      j = NS;
    }
    // T > 1 paths for Q4_K and Q6_K: the same weight unpacking (each byte loaded
    // once), done once for the four activation rows (q4kPairW, q6kQuadW); the
    // same exact integer sums as the generic loop.
    if (mode == SAME_W && k == Q4_K) {
      for (let i = 0; i < 4; i++) {
        const w0 = v128.load(p0 + 16 + (<usize>i << 5)), w1 = v128.load(p0 + 32 + (<usize>i << 5));
        const la = v128.and(w0, m4), lb = v128.and(w1, m4), ha = v128.and(i16x8.shr_u(w0, 4), m4), hb = v128.and(i16x8.shr_u(w1, 4), m4);
        const c0 = i16x8.splat(<i16>sc16(Q4_K, p0, l0, 0, i << 1, 0)), c1 = i16x8.splat(<i16>sc16(Q4_K, p0, l0, 0, (i << 1) + 1, 0));
        const x: usize = 4 + (<usize>i << 6);
        s0 = i32x4.add(s0, q4kPairW(la, lb, ha, hb, c0, c1, q0 + x)); s1 = i32x4.add(s1, q4kPairW(la, lb, ha, hb, c0, c1, q1 + x));
        s2 = i32x4.add(s2, q4kPairW(la, lb, ha, hb, c0, c1, q2 + x)); s3 = i32x4.add(s3, q4kPairW(la, lb, ha, hb, c0, c1, q3 + x));
      }
      j = NS;
    }
    if (mode == SAME_W && k == Q6_K) {
      for (let t = 0; t < 4; t++) {
        const n = t >> 1, h = t & 1;
        const o = (<usize>n << 6) + (<usize>h << 4);
        const a = v128.load(p0 + o), b = v128.load(p0 + o + 32), hb = v128.load(p0 + 128 + (<usize>n << 5) + (<usize>h << 4));
        const w0 = v128.or(v128.and(a, m4), v128.and(i16x8.shl(hb, 4), c30));
        const w1 = v128.or(v128.and(b, m4), v128.and(i16x8.shl(hb, 2), c30));
        const w2 = v128.or(v128.and(i16x8.shr_u(a, 4), m4), v128.and(hb, c30));
        const w3 = v128.or(v128.and(i16x8.shr_u(b, 4), m4), v128.and(i16x8.shr_u(hb, 2), c30));
        const sc = p0 + 192 + (<usize>n << 3) + <usize>h;
        const e0 = i16x8.splat(load<i8>(sc)), e1 = i16x8.splat(load<i8>(sc + 2)), e2 = i16x8.splat(load<i8>(sc + 4)), e3 = i16x8.splat(load<i8>(sc + 6));
        const x: usize = 4 + (<usize>n << 7) + (<usize>h << 4);
        s0 = i32x4.add(s0, q6kQuadW(w0, w1, w2, w3, e0, e1, e2, e3, q0 + x)); s1 = i32x4.add(s1, q6kQuadW(w0, w1, w2, w3, e0, e1, e2, e3, q1 + x));
        s2 = i32x4.add(s2, q6kQuadW(w0, w1, w2, w3, e0, e1, e2, e3, q2 + x)); s3 = i32x4.add(s3, q6kQuadW(w0, w1, w2, w3, e0, e1, e2, e3, q3 + x));
      }
      j = NS;
    }
    if (j < NS) do {
      let u00 = wv(k, p0, j, 0, m1, m3, m4, bits, c10), u01 = wv(k, p0, j, 1, m1, m3, m4, bits, c10);
      let u10 = u00, u11 = u01, u20 = u00, u21 = u01, u30 = u00, u31 = u01;
      if (mode != SAME_W) {
        u10 = wv(k, p1, j, 0, m1, m3, m4, bits, c10); u11 = wv(k, p1, j, 1, m1, m3, m4, bits, c10);
        u20 = wv(k, p2, j, 0, m1, m3, m4, bits, c10); u21 = wv(k, p2, j, 1, m1, m3, m4, bits, c10);
        u30 = wv(k, p3, j, 0, m1, m3, m4, bits, c10); u31 = wv(k, p3, j, 1, m1, m3, m4, bits, c10);
      }
      let x00 = av(k, q0, j, 0), x01 = av(k, q0, j, 1);
      let x10 = x00, x11 = x01, x20 = x00, x21 = x01, x30 = x00, x31 = x01;
      if (mode != SAME_A) {
        x10 = av(k, q1, j, 0); x11 = av(k, q1, j, 1);
        x20 = av(k, q2, j, 0); x21 = av(k, q2, j, 1);
        x30 = av(k, q3, j, 0); x31 = av(k, q3, j, 1);
      }
      if (k == Q8_0) {
        // Both sides are signed: move the shared side's signs onto the other side, so
        // the shared side's magnitudes (0..127) can be dot16's unsigned operand
        // (abs and compare once per block, xor and sub per pair).
        if (mode == SAME_A) {
          const n0 = i8x16.lt_s(x00, zero), n1 = i8x16.lt_s(x01, zero);
          const a0 = i8x16.abs(x00), a1 = i8x16.abs(x01);
          x00 = flip(u00, n0); x01 = flip(u01, n1); x10 = flip(u10, n0); x11 = flip(u11, n1);
          x20 = flip(u20, n0); x21 = flip(u21, n1); x30 = flip(u30, n0); x31 = flip(u31, n1);
          u00 = a0; u01 = a1; u10 = a0; u11 = a1; u20 = a0; u21 = a1; u30 = a0; u31 = a1;
        } else {
          const n0 = i8x16.lt_s(u00, zero), n1 = i8x16.lt_s(u01, zero);
          const a0 = i8x16.abs(u00), a1 = i8x16.abs(u01);
          x00 = flip(x00, n0); x01 = flip(x01, n1); x10 = flip(x10, n0); x11 = flip(x11, n1);
          x20 = flip(x20, n0); x21 = flip(x21, n1); x30 = flip(x30, n0); x31 = flip(x31, n1);
          u00 = a0; u01 = a1; u10 = a0; u11 = a1; u20 = a0; u21 = a1; u30 = a0; u31 = a1;
        }
      }
      let c00 = 1, c01 = 1, c10 = 1, c11 = 1, c20 = 1, c21 = 1, c30 = 1, c31 = 1;
      // Q6_K: sub-block j's two i8 scales, as i16 pairs [c0, c1] repeated (a 16-bit splat load + sign extension)
      let v0 = zero, v1 = zero, v2 = zero, v3 = zero;
      if (k == Q6_K) {
        v0 = i16x8.extend_low_i8x16_s(v128.load16_splat(p0 + 192 + (<usize>j << 1)));
        if (mode == SAME_W) { v1 = v0; v2 = v0; v3 = v0; }
        else {
          v1 = i16x8.extend_low_i8x16_s(v128.load16_splat(p1 + 192 + (<usize>j << 1)));
          v2 = i16x8.extend_low_i8x16_s(v128.load16_splat(p2 + 192 + (<usize>j << 1)));
          v3 = i16x8.extend_low_i8x16_s(v128.load16_splat(p3 + 192 + (<usize>j << 1)));
        }
      } else if (isK(k)) {
        c00 = sc16(k, p0, l0, h0, j, 0); c01 = sc16(k, p0, l0, h0, j, 1);
        if (mode == SAME_W) { c10 = c00; c11 = c01; c20 = c00; c21 = c01; c30 = c00; c31 = c01; }
        else {
          c10 = sc16(k, p1, l1, h1, j, 0); c11 = sc16(k, p1, l1, h1, j, 1);
          c20 = sc16(k, p2, l2, h2, j, 0); c21 = sc16(k, p2, l2, h2, j, 1);
          c30 = sc16(k, p3, l3, h3, j, 0); c31 = sc16(k, p3, l3, h3, j, 1);
        }
      }
      // q - 16 of Q5_0: subtract 16 times the activation sum (Q4_0's q - 8: below, from Q8_S's sum)
      let o0 = zero, o1 = zero, o2 = zero, o3 = zero;
      if (k == Q5_0) {
        o0 = offA(x00, x01, m1);
        if (mode == SAME_A) { o1 = o0; o2 = o0; o3 = o0; }
        else { o1 = offA(x10, x11, m1); o2 = offA(x20, x21, m1); o3 = offA(x30, x31, m1); }
      }
      s0 = step(k, s0, u00, u01, x00, x01, c00, c01, ones16, o0, v0);
      s1 = step(k, s1, u10, u11, x10, x11, c10, c11, ones16, o1, v1);
      s2 = step(k, s2, u20, u21, x20, x21, c20, c21, ones16, o2, v2);
      s3 = step(k, s3, u30, u31, x30, x31, c30, c31, ones16, o3, v3);
      j++;
    } while (j < NS);
    // Q6_K (q - 32) and Q3_K (q - 4): subtract the offset times Σ scale * bsum
    if (k == Q6_K || k == Q3_K) {
      const sh = k == Q6_K ? 5 : 2;
      s0 = i32x4.sub(s0, i32x4.shl(kCorr(k, p0, h0, l0, q0, m4, c20), sh));
      s1 = i32x4.sub(s1, i32x4.shl(kCorr(k, p1, h1, l1, q1, m4, c20), sh));
      s2 = i32x4.sub(s2, i32x4.shl(kCorr(k, p2, h2, l2, q2, m4, c20), sh));
      s3 = i32x4.sub(s3, i32x4.shl(kCorr(k, p3, h3, l3, q3, m4, c20), sh));
    }
    // scales: d_w (f16) times d_a (f16 for Q8_0/Q8_1, f32 for Q8_K and Q8_S)
    let dw: v128, da: v128;
    if (mode == SAME_W) dw = f32x4.splat(f16(p0 + wD(k)));
    else dw = f16x4(p0 + wD(k), p1 + wD(k), p2 + wD(k), p3 + wD(k), hmask, p112);
    if (isK(k) || isS(k)) {
      if (mode == SAME_A) da = f32x4.splat(load<f32>(q0));
      else da = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(load<f32>(q0)), 1, load<f32>(q1)), 2, load<f32>(q2)), 3, load<f32>(q3));
    } else {
      if (mode == SAME_A) da = f32x4.splat(f16(q0));
      else da = f16x4(q0, q1, q2, q3, hmask, p112);
    }
    // Q4_0's sums of unsigned nibbles times activations fit i16 in every partial the reduction
    // narrows (16 products: 16 * 15 * 127 < 2^15; |a| <= 127: quantize_q8_s never writes -128),
    // and the whole block's (32 products) is only formed in i32; then q - 8: minus 8 x Σa
    let isum = k == Q4_0 ? reduce4i16(s0, s1, s2, s3, ones16) : reduce4i(s0, s1, s2, s3);
    if (k == Q4_0) {
      let sa: v128;
      if (mode == SAME_A) sa = v128.load32_splat(q0 + 4);
      else sa = i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(v128.load32_splat(q0 + 4), 1, load<i32>(q1 + 4)), 2, load<i32>(q2 + 4)), 3, load<i32>(q3 + 4));
      isum = i32x4.sub(isum, i32x4.shl(sa, 3));
    }
    let f = f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(isum));
    if (k == Q2_K || k == Q4_K || k == Q5_K) {
      const mo: usize = k == Q2_K ? 82 : 2;
      let dm: v128;
      if (mode == SAME_W) dm = f32x4.splat(f16(p0 + mo));
      else dm = f16x4(p0 + mo, p1 + mo, p2 + mo, p3 + mo, hmask, p112);
      const ms = reduce4i(kCorr(k, p0, h0, l0, q0, m4, c20), kCorr(k, p1, h1, l1, q1, m4, c20), kCorr(k, p2, h2, l2, q2, m4, c20), kCorr(k, p3, h3, l3, q3, m4, c20));
      f = f32x4.sub(f, f32x4.mul(f32x4.mul(dm, da), f32x4.convert_i32x4_s(ms)));
    }
    if (k == Q4_1 || k == Q5_1) {
      // + m_w * s_a
      let mw: v128, sa: v128;
      if (mode == SAME_W) mw = f32x4.splat(f16(p0 + 2));
      else mw = f16x4(p0 + 2, p1 + 2, p2 + 2, p3 + 2, hmask, p112);
      if (mode == SAME_A) sa = f32x4.splat(f16(q0 + 2));
      else sa = f16x4(q0 + 2, q1 + 2, q2 + 2, q3 + 2, hmask, p112);
      f = f32x4.add(f, f32x4.mul(mw, sa));
    }
    acc = f32x4.add(acc, f);
    p0 += WB; q0 += AB;
    if (mode == SAME_W) { p1 = p0; p2 = p0; p3 = p0; } else { p1 += WB; p2 += WB; p3 += WB; }
    if (mode == SAME_A) { q1 = q0; q2 = q0; q3 = q0; } else { q1 += AB; q2 += AB; q3 += AB; }
  }
  return acc;
}

/** bf16 x bf16 dot products (f32 products, f32 sums) for four pairs. */
// @ts-ignore: decorator
@inline function tileBf16(mode: i32, p0: usize, p1: usize, p2: usize, p3: usize,
  q0: usize, q1: usize, q2: usize, q3: usize, n: i32, z: i32): v128 {
  const hiMask = i32x4.splat(0xffff0000 + z);
  let e0 = f32x4.splat(0), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const off = <usize>i << 1;
    const w0 = v128.load(p0 + off);
    let w1 = w0, w2 = w0, w3 = w0;
    if (mode != SAME_W) { w1 = v128.load(p1 + off); w2 = v128.load(p2 + off); w3 = v128.load(p3 + off); }
    const a0 = v128.load(q0 + off);
    let a1 = a0, a2 = a0, a3 = a0;
    if (mode != SAME_A) { a1 = v128.load(q1 + off); a2 = v128.load(q2 + off); a3 = v128.load(q3 + off); }
    e0 = f32x4.add(e0, f32x4.mul(i32x4.shl(w0, 16), i32x4.shl(a0, 16)));
    o0 = f32x4.add(o0, f32x4.mul(v128.and(w0, hiMask), v128.and(a0, hiMask)));
    e1 = f32x4.add(e1, f32x4.mul(i32x4.shl(w1, 16), i32x4.shl(a1, 16)));
    o1 = f32x4.add(o1, f32x4.mul(v128.and(w1, hiMask), v128.and(a1, hiMask)));
    e2 = f32x4.add(e2, f32x4.mul(i32x4.shl(w2, 16), i32x4.shl(a2, 16)));
    o2 = f32x4.add(o2, f32x4.mul(v128.and(w2, hiMask), v128.and(a2, hiMask)));
    e3 = f32x4.add(e3, f32x4.mul(i32x4.shl(w3, 16), i32x4.shl(a3, 16)));
    o3 = f32x4.add(o3, f32x4.mul(v128.and(w3, hiMask), v128.and(a3, hiMask)));
  }
  let r = reduce4f(f32x4.add(e0, o0), f32x4.add(e1, o1), f32x4.add(e2, o2), f32x4.add(e3, o3));
  for (; i < n; i++) {
    const off = <usize>i << 1;
    const a = reinterpret<f32>(<u32>load<u16>(q0 + off) << 16);
    const b = reinterpret<f32>(<u32>load<u16>(q1 + off) << 16);
    const c = reinterpret<f32>(<u32>load<u16>(q2 + off) << 16);
    const e = reinterpret<f32>(<u32>load<u16>(q3 + off) << 16);
    const v = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(a), 1, b), 2, c), 3, e);
    const w = f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(
      f32x4.splat(reinterpret<f32>(<u32>load<u16>(p0 + off) << 16)), 1, reinterpret<f32>(<u32>load<u16>(p1 + off) << 16)),
      2, reinterpret<f32>(<u32>load<u16>(p2 + off) << 16)), 3, reinterpret<f32>(<u32>load<u16>(p3 + off) << 16));
    r = f32x4.add(r, f32x4.mul(w, v));
  }
  return r;
}

// @ts-ignore: decorator
@inline function tileAny(k: i32, mode: i32, p0: usize, p1: usize, p2: usize, p3: usize,
  q0: usize, q1: usize, q2: usize, q3: usize, n: i32): v128 {
  if (k == 30) return tileBf16(mode, p0, p1, p2, p3, q0, q1, q2, q3, n, <i32>(<u32>n >> 31));
  return tile(k, mode, p0, p1, p2, p3, q0, q1, q2, q3, n / (isK(k) ? 256 : 32), <i32>(<u32>n >> 31));
}

/** The row loop shared by every matmul_<type>. */
// @ts-ignore: decorator
@inline function matmul(k: i32, out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  // row strides in bytes
  const ws: usize = k == 30 ? <usize>n << 1 : <usize>(n / (isK(k) ? 256 : 32)) * wBytes(k);
  const as: usize = k == 30 ? <usize>n << 1 : <usize>(n / (isK(k) ? 256 : 32)) * aBytes(k);
  if (T == 1 && hasGemm(k)) {
    // Q4_0, Q8_0: the tiles' own per-block step (quant-gemm.ts)
    gemv(k, out, xq, w, n, r0, r1, ws);
    return;
  }
  if (T == 1) {
    // Four rows from four far-apart bands of [r0, r1) (g, g+q, g+2q, g+3q), as
    // matmul_f32 does: four independent streams through memory. Each row's
    // result does not depend on which tile lane computes it.
    const q = (r1 - r0) >> 2;
    const qs = <usize>q * ws, qo = <usize>q << 2;
    for (let g = r0; g < r0 + q; g++) {
      const p = w + <usize>g * ws;
      const v = tileAny(k, SAME_A, p, p + qs, p + 2 * qs, p + 3 * qs, xq, xq, xq, xq, n);
      const o = out + (<usize>g << 2);
      store<f32>(o, f32x4.extract_lane(v, 0));
      store<f32>(o + qo, f32x4.extract_lane(v, 1));
      store<f32>(o + 2 * qo, f32x4.extract_lane(v, 2));
      store<f32>(o + 3 * qo, f32x4.extract_lane(v, 3));
    }
    const r = r0 + 4 * q;
    if (r < r1) {
      // 1..3 leftover rows: repeat the last one
      const p = w + <usize>r * ws;
      const pb = r + 1 < r1 ? p + ws : p, pc = r + 2 < r1 ? p + 2 * ws : p;
      const v = tileAny(k, SAME_A, p, pb, pc, p, xq, xq, xq, xq, n);
      store<f32>(out + (<usize>r << 2), f32x4.extract_lane(v, 0));
      if (r + 1 < r1) store<f32>(out + (<usize>(r + 1) << 2), f32x4.extract_lane(v, 1));
      if (r + 2 < r1) store<f32>(out + (<usize>(r + 2) << 2), f32x4.extract_lane(v, 2));
    }
    return;
  }
  if (hasGemm(k)) {
    // 4 x 4 register tiles, bit-identical per pair to the one-row path above (quant-gemm.ts)
    gemm(k, out, xq, w, n, d, T, r0, r1, ws, as);
    return;
  }
  const od: usize = <usize>d << 2;
  // activation rows in chunks that stay in L1 while every weight row passes over them
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const T1 = min(T, t0 + chunk);
    for (let r = r0; r < r1; r++) {
      const p = w + <usize>r * ws;
      const o = out + (<usize>r << 2);
      let t = t0;
      for (; t + 4 <= T1; t += 4) {
        const q = xq + <usize>t * as;
        const v = tileAny(k, SAME_W, p, p, p, p, q, q + as, q + 2 * as, q + 3 * as, n);
        const ot = o + <usize>t * od;
        store<f32>(ot, f32x4.extract_lane(v, 0));
        store<f32>(ot + od, f32x4.extract_lane(v, 1));
        store<f32>(ot + 2 * od, f32x4.extract_lane(v, 2));
        store<f32>(ot + 3 * od, f32x4.extract_lane(v, 3));
      }
      if (t < T1) {
        const q = xq + <usize>t * as;
        const qb = t + 1 < T1 ? q + as : q, qc = t + 2 < T1 ? q + 2 * as : q;
        const v = tileAny(k, SAME_W, p, p, p, p, q, qb, qc, q, n);
        const ot = o + <usize>t * od;
        store<f32>(ot, f32x4.extract_lane(v, 0));
        if (t + 1 < T1) store<f32>(ot + od, f32x4.extract_lane(v, 1));
        if (t + 2 < T1) store<f32>(ot + 2 * od, f32x4.extract_lane(v, 2));
      }
    }
  }
}

/** BF16 weights x BF16 activations. n % 8 == 0 is fastest; any n works. */
export function matmul_bf16(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(30, out, xq, w, n, d, T, r0, r1); }
/** Q8_0 weights x Q8_0 activations (matmul_q8_0_ggml in q8_0-ggml.ts sums in ggml's order instead). */
export function matmul_q8_0(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q8_0, out, xq, w, n, d, T, r0, r1); }
/** Q4_0 weights x Q8_0 activations. */
export function matmul_q4_0(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q4_0, out, xq, w, n, d, T, r0, r1); }
/** Q4_1 weights x Q8_1 activations. */
export function matmul_q4_1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q4_1, out, xq, w, n, d, T, r0, r1); }
/** Q5_0 weights x Q8_0 activations. */
export function matmul_q5_0(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q5_0, out, xq, w, n, d, T, r0, r1); }
/** Q5_1 weights x Q8_1 activations. */
export function matmul_q5_1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q5_1, out, xq, w, n, d, T, r0, r1); }
/** Q2_K weights x Q8_K activations. */
export function matmul_q2_k(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q2_K, out, xq, w, n, d, T, r0, r1); }
/** Q3_K weights x Q8_K activations. */
export function matmul_q3_k(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q3_K, out, xq, w, n, d, T, r0, r1); }
/** Q4_K weights x Q8_K activations. */
export function matmul_q4_k(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q4_K, out, xq, w, n, d, T, r0, r1); }
/** Q5_K weights x Q8_K activations. */
export function matmul_q5_k(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q5_K, out, xq, w, n, d, T, r0, r1); }
/** Q6_K weights x Q8_K activations. */
export function matmul_q6_k(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q6_K, out, xq, w, n, d, T, r0, r1); }
