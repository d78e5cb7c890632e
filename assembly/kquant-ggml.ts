// K-quant weights (Q2_K..Q6_K) x Q8_K activations with ggml's float arithmetic:
// ggml_vec_dot_q{2,3,4,5,6}_K_q8_K of the x86 build (the __AVX2__ branch; the
// AVX-512 build has no other), which llama.cpp uses for every T (tinyBLAS takes
// no K-quants; Q3_K/Q5_K/Q6_K are repacked only on ARM). Per superblock of 256
// the integer dot lands in eight i32 lanes, lane l holding, over the eight
// 32-element sub-blocks, scale * sum of w * a over the sub-block's elements
// 4l..4l+3 (maddubs pairs, then madd with the 16-bit scales); Q6_K takes
// 32 * (sc . bsums) off lane l for bsums 2l, 2l+1, i.e. other elements than the
// lane's own. The lanes are converted to f32 (cvtdq2ps: rounds above 2^24) and
// added with one fused multiply-add by d = d_a * d_w per superblock;
// hsum_float_8 at the end. Mins: Q2_K fuses them into the same lanes first,
// Q4_K keeps four fused lanes of its own, Q5_K one scalar (see fin, finM, finS).
// Integer sums are exact in both builds, so only this float order matters.
// (Checked against the zen4 build's own vec_dot on random blocks, too.)

import { f16, q3kScalesLo, q3kScalesHi } from "./quant-util";
import { fma4, fmaf } from "./fused";
import { hsum } from "./math";
import { Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q2_K_BYTES, Q3_K_BYTES, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, Q8_K_BYTES } from "./ggml-common";

/** Bytes per weight superblock. */
// @ts-ignore: decorator
@inline function wBytes(k: i32): usize {
  return k == Q2_K ? Q2_K_BYTES : k == Q3_K ? Q3_K_BYTES : k == Q4_K ? Q4_K_BYTES : k == Q5_K ? Q5_K_BYTES : Q6_K_BYTES;
}
// @ts-ignore: decorator
@inline const ABYTES: usize = Q8_K_BYTES; // Q8_K: f32 d, i8 qs[256], i16 bsums[16]

/**
 * i16 lane i = w[2i] * a[2i] + w[2i+1] * a[2i+1] (pmaddubsw's pairs), exact:
 * w is 0..63 (Q3_K in plain: -4..3), a int8. Relaxed: one dot with w as
 * the 7-bit operand. Plain: widening products, pair sums in i32 (|.| < 2^15), narrowed back.
 */
// @ts-ignore: decorator
@inline function pairs(w: v128, a: v128, ones16: v128): v128 {
  if (RELAXED) return i16x8.relaxed_dot_i8x16_i7x16_s(a, w);
  return i16x8.narrow_i32x4_s(
    i32x4.dot_i16x8_s(i16x8.extmul_low_i8x16_s(w, a), ones16),
    i32x4.dot_i16x8_s(i16x8.extmul_high_i8x16_s(w, a), ones16),
  );
}

/**
 * A superblock is walked in G groups of S sub-blocks (32 elements each) that
 * share their weight bytes, so that inside a group every shift is a constant:
 * Q6_K, Q3_K, Q2_K: two groups of four (128 elements); Q4_K, Q5_K: four of two.
 */
// @ts-ignore: decorator
@inline function groups(k: i32): i32 { return k == Q4_K || k == Q5_K ? 4 : 2; }

/**
 * Weights of sub-block s (a constant) of group g, half h (a constant: 16
 * elements), as bytes in ggml's AVX2 unpacking: unsigned (Q6_K 0..63 before the
 * -32, Q5_K 0..31, Q4_K 0..15, Q2_K 0..3); Q3_K: low two bits | high bit << 2
 * (0..7: the -4 of a clear high bit is applied by acc), in the plain build the
 * signed -4..3. st: Q5_K's qh / Q3_K's hmask half h, shifted right by the
 * group's first bit (2g / 4g).
 */
// @ts-ignore: decorator
@inline function wv(k: i32, p: usize, g: i32, s: i32, h: i32, st: v128, m3: v128, m4: v128, x04: v128, x10: v128, x30: v128): v128 {
  const hh = <usize>h << 4, gg = <usize>g << 5;
  if (k == Q6_K) {
    // ql: sub-blocks 0, 2 in the low / high nibbles of ql[64g..], 1, 3 of ql[64g + 32..]; qh: bit pair s
    const a = v128.load(p + (gg << 1) + (<usize>(s & 1) << 5) + hh);
    const lo = v128.and(s >> 1 ? i16x8.shr_u(a, 4) : a, m4);
    const hb = v128.load(p + 128 + gg + hh);
    const hi = v128.and(s == 0 ? i16x8.shl(hb, 4) : s == 1 ? i16x8.shl(hb, 2) : s == 2 ? hb : i16x8.shr_u(hb, 2), x30);
    return v128.or(lo, hi);
  }
  if (k == Q5_K || k == Q4_K) {
    const a = v128.load(p + (k == Q5_K ? 48 : 16) + gg + hh);
    const lo = v128.and(s ? i16x8.shr_u(a, 4) : a, m4);
    if (k == Q4_K) return lo;
    return v128.or(lo, v128.and(i16x8.shl(st, s ? 3 : 4), x10));
  }
  const a = v128.load(p + (k == Q3_K ? 32 : 16) + gg + hh);
  const lo = v128.and(s ? i16x8.shr_u(a, s << 1) : a, m3);
  if (k == Q2_K) return lo;
  // Q3_K: high bit s of st to bit 2
  const q = v128.or(lo, v128.and(s == 0 ? i16x8.shl(st, 2) : s == 1 ? i16x8.shl(st, 1) : s == 2 ? st : i16x8.shr_u(st, 1), x04));
  if (RELAXED) return q;
  return i8x16.sub(q, x04);
}

/** Integer scale of sub-block s of group g, half h; lo / hi: Q3_K's scales 0..7 / 8..15, Q4_K/Q5_K's 8 scales (lo). */
// @ts-ignore: decorator
@inline function scale(k: i32, p: usize, g: i32, s: i32, h: i32, lo: u64, hi: u64): v128 {
  let c: i32;
  if (k == Q6_K) c = <i32>load<i8>(p + 192 + (<usize>g << 3) + (<usize>s << 1) + <usize>h);
  else if (k == Q2_K) c = <i32>load<u8>(p + (<usize>g << 3) + (<usize>s << 1) + <usize>h) & 15;
  else if (k == Q3_K) c = (<i32>((g ? hi : lo) >> (<u64>((s << 1) + h) << 3)) & 0xff) - 32;
  else c = <i32>(lo >> (<u64>((g << 1) + s) << 3)) & 0xff;
  return i16x8.splat(<i16>c);
}

/** Offset of the activations of sub-block s of group g, half h, in a Q8_K block. */
// @ts-ignore: decorator
@inline function aOff(k: i32, g: i32, s: i32, h: i32): usize {
  return 4 + (<usize>g << (k == Q4_K || k == Q5_K ? 6 : 7)) + (<usize>s << 5) + (<usize>h << 4);
}

/** Lanes L += scale * (pairs of w . a, summed in fours); Q3_K relaxed: q - 4 through 4 * the activation pair sums (exact in i16). */
// @ts-ignore: decorator
@inline function acc(k: i32, L: v128, w: v128, a: v128, c: v128, ones16: v128, ones8: v128): v128 {
  let pr = pairs(w, a, ones16);
  if (RELAXED && k == Q3_K) pr = i16x8.sub(pr, i16x8.shl(i16x8.relaxed_dot_i8x16_i7x16_s(a, ones8), 2));
  return i32x4.add(L, i32x4.dot_i16x8_s(pr, c));
}

/** Q4_K/Q5_K's 8 six-bit scales (lo) and mins (hi) from the 12 bytes at p (ggml's utmp unpacking), one per byte. */
// @ts-ignore: decorator
@inline function k4Scales(p: usize): u64 {
  const u0 = load<u32>(p), u2 = load<u32>(p + 8);
  const s1 = (u2 & 0x0f0f0f0f) | (((u0 >> 6) & 0x03030303) << 4);
  return <u64>(u0 & 0x3f3f3f3f) | (<u64>s1 << 32);
}
// @ts-ignore: decorator
@inline function k4Mins(p: usize): u64 {
  const u1 = load<u32>(p + 4), u2 = load<u32>(p + 8);
  const m1 = ((u2 >> 4) & 0x0f0f0f0f) | (((u1 >> 6) & 0x03030303) << 4);
  return <u64>(u1 & 0x3f3f3f3f) | (<u64>m1 << 32);
}

/** Offset of the f16 d in a weight superblock. */
// @ts-ignore: decorator
@inline function wD(k: i32): usize { return k == Q2_K ? 80 : k == Q3_K ? 108 : k == Q6_K ? 208 : 0; }

/**
 * End of a superblock for lanes 4h..4h+3 of one activation (block at q):
 * acc = fma(d_a * d_w, f32(I), acc). Q6_K first takes (sc . bsums pairwise) << 5
 * off the integers (lane l: bsums 2l, 2l+1); Q2_K first fuses -d_a * dmin *
 * (mins . bsums pairwise) into the same lanes.
 */
// @ts-ignore: decorator
@inline function fin(k: i32, a: v128, I: v128, p: usize, q: usize, h: i32): v128 {
  const da = load<f32>(q);
  const bs = v128.load(q + 260 + (<usize>h << 4));
  if (k == Q6_K) {
    const sc = v128.load(p + 192);
    I = i32x4.sub(I, i32x4.shl(i32x4.dot_i16x8_s(bs, h ? i16x8.extend_high_i8x16_s(sc) : i16x8.extend_low_i8x16_s(sc)), 5));
  }
  if (k == Q2_K) {
    const mins = i8x16.shr_u(v128.load(p), 4);
    const m = i32x4.dot_i16x8_s(h ? i16x8.extend_high_i8x16_u(mins) : i16x8.extend_low_i8x16_u(mins), bs);
    a = fma4(f32x4.splat(-da * f16(p + 82)), f32x4.convert_i32x4_s(m), a);
  }
  return fma4(f32x4.splat(da * f16(p + wD(k))), f32x4.convert_i32x4_s(I), a);
}

/** Q4_K/Q5_K mins . (bsums pairs summed) as ggml forms it: lane i = m[2i] q8s[2i] + m[2i+1] q8s[2i+1]. */
// @ts-ignore: decorator
@inline function minsProd(q: usize, hi: u64): v128 {
  const q8s = i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(v128.load(q + 260)), i32x4.extadd_pairwise_i16x8_s(v128.load(q + 276)));
  return i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(i64x2.splat(hi)), q8s);
}
/** Q4_K's acc_m: four lanes, fused. */
// @ts-ignore: decorator
@inline function finM(m: v128, p: usize, q: usize, hi: u64): v128 {
  return fma4(f32x4.splat(-load<f32>(q) * f16(p + 2)), f32x4.convert_i32x4_s(minsProd(q, hi)), m);
}
/** Q5_K's summs += dmin * (int)hsum(prod): scalar, contracted by GCC into vfmadd231ss. */
// @ts-ignore: decorator
@inline function finS(sm: f32, p: usize, q: usize, hi: u64): f32 {
  const pr = minsProd(q, hi);
  const t = i32x4.add(pr, v128.shuffle<i32>(pr, pr, 2, 3, 0, 1));
  return fmaf(-load<f32>(q) * f16(p + 2), <f32>(i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1)), sm);
}

/** hsum_float_8 of (L: lanes 0..3, H: 4..7), plus Q4_K's folded acc_m or Q5_K's summs. */
// @ts-ignore: decorator
@inline function result(k: i32, L: v128, H: v128, M: v128, sm: f32): f32 {
  // upper four onto lower, then hsum: lanes 2,3 onto 0,1, lane 1 onto 0
  const s = hsum(f32x4.add(H, L));
  if (k == Q5_K) return s + sm;
  if (k == Q4_K) return s + hsum(M);
  return s;
}

/**
 * One weight row (p) against NA activation rows (q0..q3; NA = 1 or 4), nb
 * superblocks; results stored at o0..o3. Each weight half is unpacked once and
 * used NA times. Lanes 0..3 of an output are kept in L / fL, lanes 4..7 in
 * H / fH: half h of every sub-block feeds lanes 4h..4h+3.
 */
// @ts-ignore: decorator
@inline function tile(k: i32, NA: i32, p: usize, q0: usize, q1: usize, q2: usize, q3: usize, nb: i32,
  o0: usize, o1: usize, o2: usize, o3: usize, z: i32): void {
  // constants from an opaque zero (z): V8 would rematerialize them at each use in the loop
  const m3 = i8x16.splat(<i8>(3 + z)), m4 = i8x16.splat(<i8>(15 + z));
  const x04 = i8x16.splat(<i8>(4 + z)), x10 = i8x16.splat(<i8>(0x10 + z)), x30 = i8x16.splat(<i8>(0x30 + z));
  const ones16 = i16x8.splat(<i16>(1 + z)), ones8 = i8x16.splat(<i8>(1 + z));
  const zero = i32x4.splat(0);
  const G = groups(k);
  let fL0 = f32x4.splat(0), fH0 = fL0, fM0 = fL0, fL1 = fL0, fH1 = fL0, fM1 = fL0;
  let fL2 = fL0, fH2 = fL0, fM2 = fL0, fL3 = fL0, fH3 = fL0, fM3 = fL0;
  let sm0: f32 = 0, sm1: f32 = 0, sm2: f32 = 0, sm3: f32 = 0;
  for (let b = 0; b < nb; b++) {
    let lo: u64 = 0, hi: u64 = 0;
    if (k == Q3_K) { lo = q3kScalesLo(p + 96); hi = q3kScalesHi(p + 96); }
    if (k == Q4_K || k == Q5_K) { lo = k4Scales(p + 4); hi = k4Mins(p + 4); }
    let st0 = zero, st1 = zero; // Q5_K: qh, Q3_K: hmask (halves 0, 1)
    if (k == Q5_K) { st0 = v128.load(p + 16); st1 = v128.load(p + 32); }
    if (k == Q3_K) { st0 = v128.load(p); st1 = v128.load(p + 16); }
    let L0 = zero, H0 = zero, L1 = zero, H1 = zero, L2 = zero, H2 = zero, L3 = zero, H3 = zero;
    for (let g = 0; g < G; g++) {
      // sub-blocks s = 0, 1 (and 2, 3 for groups of four), written out so that s is a constant
      {
        const w0 = wv(k, p, g, 0, 0, st0, m3, m4, x04, x10, x30), w1 = wv(k, p, g, 0, 1, st1, m3, m4, x04, x10, x30);
        const c0 = scale(k, p, g, 0, 0, lo, hi), c1 = scale(k, p, g, 0, 1, lo, hi);
        const a0 = aOff(k, g, 0, 0), a1 = aOff(k, g, 0, 1);
        L0 = acc(k, L0, w0, v128.load(q0 + a0), c0, ones16, ones8); H0 = acc(k, H0, w1, v128.load(q0 + a1), c1, ones16, ones8);
        if (NA == 4) {
          L1 = acc(k, L1, w0, v128.load(q1 + a0), c0, ones16, ones8); H1 = acc(k, H1, w1, v128.load(q1 + a1), c1, ones16, ones8);
          L2 = acc(k, L2, w0, v128.load(q2 + a0), c0, ones16, ones8); H2 = acc(k, H2, w1, v128.load(q2 + a1), c1, ones16, ones8);
          L3 = acc(k, L3, w0, v128.load(q3 + a0), c0, ones16, ones8); H3 = acc(k, H3, w1, v128.load(q3 + a1), c1, ones16, ones8);
        }
      }
      {
        const w0 = wv(k, p, g, 1, 0, st0, m3, m4, x04, x10, x30), w1 = wv(k, p, g, 1, 1, st1, m3, m4, x04, x10, x30);
        const c0 = scale(k, p, g, 1, 0, lo, hi), c1 = scale(k, p, g, 1, 1, lo, hi);
        const a0 = aOff(k, g, 1, 0), a1 = aOff(k, g, 1, 1);
        L0 = acc(k, L0, w0, v128.load(q0 + a0), c0, ones16, ones8); H0 = acc(k, H0, w1, v128.load(q0 + a1), c1, ones16, ones8);
        if (NA == 4) {
          L1 = acc(k, L1, w0, v128.load(q1 + a0), c0, ones16, ones8); H1 = acc(k, H1, w1, v128.load(q1 + a1), c1, ones16, ones8);
          L2 = acc(k, L2, w0, v128.load(q2 + a0), c0, ones16, ones8); H2 = acc(k, H2, w1, v128.load(q2 + a1), c1, ones16, ones8);
          L3 = acc(k, L3, w0, v128.load(q3 + a0), c0, ones16, ones8); H3 = acc(k, H3, w1, v128.load(q3 + a1), c1, ones16, ones8);
        }
      }
      if (G == 2) {
        {
          const w0 = wv(k, p, g, 2, 0, st0, m3, m4, x04, x10, x30), w1 = wv(k, p, g, 2, 1, st1, m3, m4, x04, x10, x30);
          const c0 = scale(k, p, g, 2, 0, lo, hi), c1 = scale(k, p, g, 2, 1, lo, hi);
          const a0 = aOff(k, g, 2, 0), a1 = aOff(k, g, 2, 1);
          L0 = acc(k, L0, w0, v128.load(q0 + a0), c0, ones16, ones8); H0 = acc(k, H0, w1, v128.load(q0 + a1), c1, ones16, ones8);
          if (NA == 4) {
            L1 = acc(k, L1, w0, v128.load(q1 + a0), c0, ones16, ones8); H1 = acc(k, H1, w1, v128.load(q1 + a1), c1, ones16, ones8);
            L2 = acc(k, L2, w0, v128.load(q2 + a0), c0, ones16, ones8); H2 = acc(k, H2, w1, v128.load(q2 + a1), c1, ones16, ones8);
            L3 = acc(k, L3, w0, v128.load(q3 + a0), c0, ones16, ones8); H3 = acc(k, H3, w1, v128.load(q3 + a1), c1, ones16, ones8);
          }
        }
        {
          const w0 = wv(k, p, g, 3, 0, st0, m3, m4, x04, x10, x30), w1 = wv(k, p, g, 3, 1, st1, m3, m4, x04, x10, x30);
          const c0 = scale(k, p, g, 3, 0, lo, hi), c1 = scale(k, p, g, 3, 1, lo, hi);
          const a0 = aOff(k, g, 3, 0), a1 = aOff(k, g, 3, 1);
          L0 = acc(k, L0, w0, v128.load(q0 + a0), c0, ones16, ones8); H0 = acc(k, H0, w1, v128.load(q0 + a1), c1, ones16, ones8);
          if (NA == 4) {
            L1 = acc(k, L1, w0, v128.load(q1 + a0), c0, ones16, ones8); H1 = acc(k, H1, w1, v128.load(q1 + a1), c1, ones16, ones8);
            L2 = acc(k, L2, w0, v128.load(q2 + a0), c0, ones16, ones8); H2 = acc(k, H2, w1, v128.load(q2 + a1), c1, ones16, ones8);
            L3 = acc(k, L3, w0, v128.load(q3 + a0), c0, ones16, ones8); H3 = acc(k, H3, w1, v128.load(q3 + a1), c1, ones16, ones8);
          }
        }
      }
      if (k == Q5_K) { st0 = i16x8.shr_u(st0, 2); st1 = i16x8.shr_u(st1, 2); }
      if (k == Q3_K) { st0 = i16x8.shr_u(st0, 4); st1 = i16x8.shr_u(st1, 4); }
    }
    fL0 = fin(k, fL0, L0, p, q0, 0); fH0 = fin(k, fH0, H0, p, q0, 1);
    if (k == Q4_K) fM0 = finM(fM0, p, q0, hi);
    if (k == Q5_K) sm0 = finS(sm0, p, q0, hi);
    if (NA == 4) {
      fL1 = fin(k, fL1, L1, p, q1, 0); fH1 = fin(k, fH1, H1, p, q1, 1);
      fL2 = fin(k, fL2, L2, p, q2, 0); fH2 = fin(k, fH2, H2, p, q2, 1);
      fL3 = fin(k, fL3, L3, p, q3, 0); fH3 = fin(k, fH3, H3, p, q3, 1);
      if (k == Q4_K) { fM1 = finM(fM1, p, q1, hi); fM2 = finM(fM2, p, q2, hi); fM3 = finM(fM3, p, q3, hi); }
      if (k == Q5_K) { sm1 = finS(sm1, p, q1, hi); sm2 = finS(sm2, p, q2, hi); sm3 = finS(sm3, p, q3, hi); }
    }
    p += wBytes(k); q0 += ABYTES; q1 += ABYTES; q2 += ABYTES; q3 += ABYTES;
  }
  store<f32>(o0, result(k, fL0, fH0, fM0, sm0));
  if (NA == 4) {
    store<f32>(o1, result(k, fL1, fH1, fM1, sm1));
    store<f32>(o2, result(k, fL2, fH2, fM2, sm2));
    store<f32>(o3, result(k, fL3, fH3, fM3, sm3));
  }
}

/**
 * The row loop: ggml's vec_dot per output, for any T. T >= 4: one weight row
 * against four activation rows at a time (each weight half unpacked once),
 * then the rest one by one.
 */
// @ts-ignore: decorator
@inline function matmul(k: i32, out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 8;
  const ws = <usize>nb * wBytes(k), as = <usize>nb * ABYTES, od = <usize>d << 2;
  const z = <i32>(<u32>n >> 31);
  for (let r = r0; r < r1; r++) {
    const wr = w + <usize>r * ws, o = out + (<usize>r << 2);
    let t = 0;
    for (; t + 4 <= T; t += 4) {
      const q = xq + <usize>t * as, ot = o + <usize>t * od;
      tile(k, 4, wr, q, q + as, q + 2 * as, q + 3 * as, nb, ot, ot + od, ot + 2 * od, ot + 3 * od, z);
    }
    for (; t < T; t++) {
      const q = xq + <usize>t * as, ot = o + <usize>t * od;
      tile(k, 1, wr, q, q, q, q, nb, ot, ot, ot, ot, z);
    }
  }
}

/** Q6_K weights x Q8_K activations in ggml's order (ggml_vec_dot_q6_K_q8_K, AVX2 branch). */
export function matmul_q6_k_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q6_K, out, xq, w, n, d, T, r0, r1); }
/** Q5_K weights x Q8_K activations in ggml's order (ggml_vec_dot_q5_K_q8_K: mins through a scalar fused sum). */
export function matmul_q5_k_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q5_K, out, xq, w, n, d, T, r0, r1); }
/** Q3_K weights x Q8_K activations in ggml's order (ggml_vec_dot_q3_K_q8_K). */
export function matmul_q3_k_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q3_K, out, xq, w, n, d, T, r0, r1); }
/** Q4_K (not repacked) x Q8_K in ggml_vec_dot_q4_K_q8_K's order (mins in four fused lanes). */
export function matmul_q4_k_vecdot_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q4_K, out, xq, w, n, d, T, r0, r1); }
/** Q2_K (not repacked) x Q8_K in ggml_vec_dot_q2_K_q8_K's order (mins fused into the lanes first). */
export function matmul_q2_k_vecdot_ggml(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void { matmul(Q2_K, out, xq, w, n, d, T, r0, r1); }
