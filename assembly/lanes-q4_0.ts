// Q4_0 weights in kvasm's "lanes" layout: four rows interleaved so that i32 lane r of every int8 dot
// product belongs to row r. The exact integer block sum of each row then builds up in place (no
// cross-lane reduction per block), and every f32 step (scale conversion, scale, accumulate) serves
// four rows at once. Repacked in place at load (repack_q4_0_lanes); same size as ggml's blocks.
//
// Layout: rows in quads (rows 4g..4g+3 take the bytes of those four natural rows, so a row count that
// is not a multiple of 4 leaves its last d % 4 rows natural, where they were). Per quad and block b, at
// quad + 72 b: the four rows' f16 scales (8 bytes), then four 16-byte vectors. Vector v holds bytes
// 4v..4v+3 of each row's qs (the low nibble of qs[j] is element j, the high nibble element j + 16):
//   relaxed build: row r's qs[4v], qs[4v+1], qs[4v+2], qs[4v+3] at bytes 4r..4r+3, so against the
//     activation's elements 4v..4v+3 (low nibbles) or 16+4v.. (high) splatted, lanes 2r, 2r+1 of the
//     i16 dot (pmaddubsw) and lane r of its widening (pmaddwd) hold row r's products;
//   plain build: row r's qs[4v], qs[4v+2], qs[4v+1], qs[4v+3] at bytes 4r..4r+3: i16 word 2r holds
//     elements 4v, 16+4v, 4v+2, 16+4v+2 in its four nibbles and word 2r+1 elements 4v+1, 16+4v+1, 4v+3,
//     16+4v+3, so each nibble position s, unpacked to i16 lanes, meets an adjacent activation pair by
//     pmaddwd (the pair splatted as one i32).
//
// Bits: per (row, activation row, block) the exact integer sum Σ q·a − 8 Σa (q the unsigned nibble), then
// acc += (d_w · d_a) · f32(isum) in block order, exactly as q4_0Row in quant-gemm.ts, so every output is
// bit-identical to matmul_q4_0's, for any T, row range and thread count.
// Activations are Q8_S blocks (quant-act.ts): f32 d at 0, i32 Σa at 4, int8 values at 8.
import { blockAdd, blockTerm, dot16, f16, f16quad, f16quadMul } from "./quant-util";
import { Q4_0, Q4_0_BYTES, Q8_S_BYTES } from "./ggml-common";
import { gemm, gemmChunk, gemv } from "./quant-gemm";
import { dequantize_q4_0 } from "./quant-dequant";

/** Bytes of one quad's block: 4 x Q4_0_BYTES. */
// @ts-ignore: decorator
@inline const QB: usize = 72;

/**
 * Relaxed: Σ q·a of a quad's block at p (i32 lane r: row r), against the activation block's elements
 * splatted four at a time (x0..x3: elements 4v.., x4..x7: 16+4v..). Every i16 lane sums 16 products of
 * at most 15 x 127 (30480 < 2^15), so the eight dots add in i16 and widen once.
 */
// @ts-ignore: decorator
@inline function quadRelaxed(p: usize, x0: v128, x1: v128, x2: v128, x3: v128, x4: v128, x5: v128, x6: v128, x7: v128, m4: v128, ones16: v128): v128 {
  const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
  const s0 = i16x8.add(dot16(v128.and(w0, m4), x0), dot16(v128.and(i16x8.shr_u(w0, 4), m4), x4));
  const s1 = i16x8.add(dot16(v128.and(w1, m4), x1), dot16(v128.and(i16x8.shr_u(w1, 4), m4), x5));
  const s2 = i16x8.add(dot16(v128.and(w2, m4), x2), dot16(v128.and(i16x8.shr_u(w2, 4), m4), x6));
  const s3 = i16x8.add(dot16(v128.and(w3, m4), x3), dot16(v128.and(i16x8.shr_u(w3, 4), m4), x7));
  return i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16);
}

/**
 * Plain: the same sum from the plain build's byte order. Each vector's nibble position s, as i16 lanes
 * (and / shift, no byte shifts), meets one adjacent activation pair (as i16, splatted as an i32) by pmaddwd.
 * a[i]: pair i (elements 2i, 2i + 1) of the block, i = 0..15.
 */
// @ts-ignore: decorator
@inline function quadPlainVec(w: v128, lo0: v128, hi0: v128, lo1: v128, hi1: v128, m16: v128): v128 {
  const n0 = v128.and(w, m16), n1 = v128.and(i16x8.shr_u(w, 4), m16), n2 = v128.and(i16x8.shr_u(w, 8), m16), n3 = i16x8.shr_u(w, 12);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(n0, lo0), i32x4.dot_i16x8_s(n1, hi0)),
    i32x4.add(i32x4.dot_i16x8_s(n2, lo1), i32x4.dot_i16x8_s(n3, hi1)),
  );
}

/**
 * nq quads (nq = 1..4, constant) at p, p + qs, .. against one activation row at q, sharing its splats; quad j's
 * four results at out + j * os.
 */
// @ts-ignore: decorator
@inline function gemvQuads(out: usize, os: usize, q: usize, p: usize, qs: usize, nb: i32, nq: i32, z: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), m16 = i16x8.splat(<i16> (15 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    const da = v128.load32_splat(q), s8 = i32x4.shl(v128.load32_splat(q + 4), 3);
    let i0: v128, i1: v128 = s8, i2: v128 = s8, i3: v128 = s8;
    if (RELAXED) {
      const x0 = v128.load32_splat(q + 8), x1 = v128.load32_splat(q + 12), x2 = v128.load32_splat(q + 16), x3 = v128.load32_splat(q + 20);
      const x4 = v128.load32_splat(q + 24), x5 = v128.load32_splat(q + 28), x6 = v128.load32_splat(q + 32), x7 = v128.load32_splat(q + 36);
      i0 = quadRelaxed(p, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
      if (nq > 1) i1 = quadRelaxed(p + qs, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
      if (nq > 2) i2 = quadRelaxed(p + 2 * qs, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
      if (nq > 3) i3 = quadRelaxed(p + 3 * qs, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
    } else {
      const x = v128.load(q + 8), y = v128.load(q + 24);
      const xl = i16x8.extend_low_i8x16_s(x), xh = i16x8.extend_high_i8x16_s(x);
      const yl = i16x8.extend_low_i8x16_s(y), yh = i16x8.extend_high_i8x16_s(y);
      i0 = quadPlain(p, xl, xh, yl, yh, m16);
      if (nq > 1) i1 = quadPlain(p + qs, xl, xh, yl, yh, m16);
      if (nq > 2) i2 = quadPlain(p + 2 * qs, xl, xh, yl, yh, m16);
      if (nq > 3) i3 = quadPlain(p + 3 * qs, xl, xh, yl, yh, m16);
    }
    c0 = blockAdd(c0, f16quad(p, hmask, p112), da, i32x4.sub(i0, s8));
    if (nq > 1) c1 = blockAdd(c1, f16quad(p + qs, hmask, p112), da, i32x4.sub(i1, s8));
    if (nq > 2) c2 = blockAdd(c2, f16quad(p + 2 * qs, hmask, p112), da, i32x4.sub(i2, s8));
    if (nq > 3) c3 = blockAdd(c3, f16quad(p + 3 * qs, hmask, p112), da, i32x4.sub(i3, s8));
    p += QB;
    q += Q8_S_BYTES;
  }
  v128.store(out, c0);
  if (nq > 1) v128.store(out + os, c1);
  if (nq > 2) v128.store(out + 2 * os, c2);
  if (nq > 3) v128.store(out + 3 * os, c3);
}

/** Plain: Σ q·a of a quad's block at p from the activation's four i16 halves (xl, xh: elements 0..15; yl, yh: 16..31). */
// @ts-ignore: decorator
@inline function quadPlain(p: usize, xl: v128, xh: v128, yl: v128, yh: v128, m16: v128): v128 {
  // vector v, nibble s: s = 0 pair 2v (elements 4v, 4v+1), s = 1 pair 8 + 2v, s = 2 pair 2v + 1, s = 3 pair 9 + 2v
  const v0 = quadPlainVec(v128.load(p + 8), v128.shuffle<i32>(xl, xl, 0, 0, 0, 0), v128.shuffle<i32>(yl, yl, 0, 0, 0, 0), v128.shuffle<i32>(xl, xl, 1, 1, 1, 1), v128.shuffle<i32>(yl, yl, 1, 1, 1, 1), m16);
  const v1 = quadPlainVec(v128.load(p + 24), v128.shuffle<i32>(xl, xl, 2, 2, 2, 2), v128.shuffle<i32>(yl, yl, 2, 2, 2, 2), v128.shuffle<i32>(xl, xl, 3, 3, 3, 3), v128.shuffle<i32>(yl, yl, 3, 3, 3, 3), m16);
  const v2 = quadPlainVec(v128.load(p + 40), v128.shuffle<i32>(xh, xh, 0, 0, 0, 0), v128.shuffle<i32>(yh, yh, 0, 0, 0, 0), v128.shuffle<i32>(xh, xh, 1, 1, 1, 1), v128.shuffle<i32>(yh, yh, 1, 1, 1, 1), m16);
  const v3 = quadPlainVec(v128.load(p + 56), v128.shuffle<i32>(xh, xh, 2, 2, 2, 2), v128.shuffle<i32>(yh, yh, 2, 2, 2, 2), v128.shuffle<i32>(xh, xh, 3, 3, 3, 3), v128.shuffle<i32>(yh, yh, 3, 3, 3, 3), m16);
  return i32x4.add(i32x4.add(v0, v1), i32x4.add(v2, v3));
}

/** Relaxed: one activation block at q (Q8_S) against a quad's unpacked block (l: low nibbles, h: high), scaled by dw. */
// @ts-ignore: decorator
@inline function tileRow(q: usize, l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, dw: v128, ones16: v128, k8: v128, MUL: bool): v128 {
  const s0 = i16x8.add(dot16(l0, v128.load32_splat(q + 8)), dot16(h0, v128.load32_splat(q + 24)));
  const s1 = i16x8.add(dot16(l1, v128.load32_splat(q + 12)), dot16(h1, v128.load32_splat(q + 28)));
  const s2 = i16x8.add(dot16(l2, v128.load32_splat(q + 16)), dot16(h2, v128.load32_splat(q + 32)));
  const s3 = i16x8.add(dot16(l3, v128.load32_splat(q + 20)), dot16(h3, v128.load32_splat(q + 36)));
  const s8 = MUL ? i32x4.mul(v128.load32_splat(q + 4), k8) : i32x4.shl(v128.load32_splat(q + 4), 3);
  const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), s8);
  return blockTerm(dw, v128.load32_splat(q), isum);
}

/**
 * Relaxed, T > 1: one quad at p against N activation rows q, q + as, .. (N = 4, or 2: JavaScriptCore's form, whose
 * 14 live vectors at N = 4 spill there; nt = 1..N valid, the others repeat the first), each block unpacked once for
 * the N; out rows at o, o + od, ...
 */
// @ts-ignore: decorator
@inline function tileQuad(o: usize, od: usize, p: usize, q: usize, as: usize, nt: i32, nb: i32, z: i32, N: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8 = i32x4.splat(8 + z), k8192 = i32x4.splat(8192 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const q0 = q, q1 = nt > 1 ? q + as : q, q2 = nt > 2 ? q + 2 * as : q, q3 = nt > 3 ? q + 3 * as : q;
  // JavaScriptCore's form (N = 2): multiplies for its constant shifts, as gemvQuad1
  const MUL = N == 2;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    const wp = p + <usize> b * QB, ao = <usize> b * Q8_S_BYTES;
    const dw = MUL ? f16quadMul(wp, hmask, p112, k8192) : f16quad(wp, hmask, p112);
    const w0 = v128.load(wp + 8), w1 = v128.load(wp + 24), w2 = v128.load(wp + 40), w3 = v128.load(wp + 56);
    const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
    const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
    const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
    const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
    c0 = f32x4.add(c0, tileRow(q0 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, k8, MUL));
    c1 = f32x4.add(c1, tileRow(q1 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, k8, MUL));
    if (N > 2) {
      c2 = f32x4.add(c2, tileRow(q2 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, k8, MUL));
      c3 = f32x4.add(c3, tileRow(q3 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, k8, MUL));
    }
  }
  v128.store(o, c0);
  if (nt > 1) v128.store(o + od, c1);
  if (nt > 2) v128.store(o + 2 * od, c2);
  if (nt > 3) v128.store(o + 3 * od, c3);
}

/**
 * Relaxed, T = 1, JavaScriptCore's form: one quad per pass, each activation splat loaded where it is used. With four quads
 * sharing eight live splats (gemvQuads) JavaScriptCore spills and runs the step at a third of this speed (2048x768, Bun
 * 1.4.5; V8 runs gemvQuads 1.15-1.2x faster than this). Same integer sums and f32 operations per quad and block.
 */
// @ts-ignore: decorator
@inline function gemvQuad1(out: usize, q: usize, p: usize, nb: i32, z: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8 = i32x4.splat(8 + z), k8192 = i32x4.splat(8192 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let c = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
    const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(v128.and(i16x8.shr_u(w0, 4), m4), v128.load32_splat(q + 24)));
    const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(v128.and(i16x8.shr_u(w1, 4), m4), v128.load32_splat(q + 28)));
    const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(v128.and(i16x8.shr_u(w2, 4), m4), v128.load32_splat(q + 32)));
    const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(v128.and(i16x8.shr_u(w3, 4), m4), v128.load32_splat(q + 36)));
    // 8 Σa and the scales by multiplies, not constant shifts (f16quadMul): 1.06-1.08x in Bun (bench/q4_0-tile.bench.ts gm2)
    const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.mul(v128.load32_splat(q + 4), k8));
    c = blockAdd(c, f16quadMul(p, hmask, p112, k8192), v128.load32_splat(q), isum);
    p += QB;
    q += Q8_S_BYTES;
  }
  v128.store(out, c);
}

/**
 * Q4_0 lanes weights x Q8_S activations: out[t*d + r] = W[r] . x[t] for r in [r0, r1) (r0 a multiple of 4, as the
 * matmul chunks' 16-row alignment gives), t < T. Rows from d & ~3 on are ggml's (not repacked). oneQuad: JavaScriptCore's
 * forms, T = 1 one quad per pass (gemvQuad1), T > 1 tiles of one quad x 2 activation rows (relaxed build only; the plain
 * build has one form).
 */
// @ts-ignore: decorator
@inline function lanesMatmul(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32, oneQuad: bool): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * Q4_0_BYTES, as: usize = <usize> nb * Q8_S_BYTES, qs: usize = ws << 2;
  const dl = d & ~3, l1 = min(r1, dl);
  if (T == 1 && oneQuad && RELAXED) {
    for (let g = r0 >> 2; 4 * g < l1; g++) gemvQuad1(out + (<usize> g << 4), xq, w + <usize> g * qs, nb, z);
    if (r1 > dl) gemv(Q4_0, out, xq, w, n, max(r0, dl), r1, ws);
    return;
  }
  if (T == 1) {
    // four quads from four far-apart bands of the range per pass (g, g + Q, g + 2Q, g + 3Q: independent streams
    // through memory, as gemv in quant-gemm.ts), sharing the activation's splats; 1..3 quads left over
    const g0 = r0 >> 2, g1 = l1 >> 2;
    const Q = (g1 - g0) >> 2, bs = <usize> Q * qs, os = <usize> Q << 4;
    for (let g = g0; g < g0 + Q; g++) gemvQuads(out + (<usize> g << 4), os, xq, w + <usize> g * qs, bs, nb, 4, z);
    for (let g = g0 + 4 * Q; g < g1; g++) gemvQuads(out + (<usize> g << 4), 16, xq, w + <usize> g * qs, qs, nb, 1, z);
    if (r1 > dl) gemv(Q4_0, out, xq, w, n, max(r0, dl), r1, ws);
    return;
  }
  const od: usize = <usize> d << 2;
  // activation rows in chunks that stay in L1 while every quad passes over them (as gemm in quant-gemm.ts)
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    if (RELAXED) {
      for (let g = r0 >> 2; 4 * g < l1; g++) {
        const p = w + <usize> g * qs, o = out + (<usize> g << 4);
        if (oneQuad) {
          for (let t = t0; t < t1; t += 2) tileQuad(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(2, t1 - t), nb, z, 2);
        } else {
          for (let t = t0; t < t1; t += 4) tileQuad(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(4, t1 - t), nb, z, 4);
        }
      }
    } else {
      // plain: sixteen unpacked i16 nibble vectors per quad would not stay in registers; four quads per activation row
      let g = r0 >> 2;
      for (; 4 * g + 16 <= l1; g += 4) {
        for (let t = t0; t < t1; t++) gemvQuads(out + <usize> t * od + (<usize> g << 4), 16, xq + <usize> t * as, w + <usize> g * qs, qs, nb, 4, z);
      }
      for (; 4 * g < l1; g++) {
        for (let t = t0; t < t1; t++) gemvQuads(out + <usize> t * od + (<usize> g << 4), 16, xq + <usize> t * as, w + <usize> g * qs, qs, nb, 1, z);
      }
    }
  }
  if (r1 > dl) gemm(Q4_0, out, xq, w, n, d, T, max(r0, dl), r1, ws, as);
}

/**
 * Q4_0 lanes weights x Q8_S activations: out[t*d + r] = W[r] . x[t] for r in [r0, r1) (r0 a multiple of 4, as the
 * matmul chunks' 16-row alignment gives), t < T. Rows from d & ~3 on are ggml's (not repacked).
 */
export function matmul_q4_0_lanes(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  lanesMatmul(out, xq, w, n, d, T, r0, r1, false);
}

/**
 * matmul_q4_0_lanes in the forms JavaScriptCore runs fast (Bun's Q4_0 kernel): T = 1 one quad per pass (gemvQuad1),
 * T > 1 one quad x 2 activation rows per tile; bit-identical to it.
 */
export function matmul_q4_0_lanes_q1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  lanesMatmul(out, xq, w, n, d, T, r0, r1, true);
}

/** Row r's four qs bytes 4v..4v+3 (u32 at p) in this build's lanes order (plain: qs[4v], qs[4v+2], qs[4v+1], qs[4v+3]). */
// @ts-ignore: decorator
@inline function lanesWord(x: u32): u32 {
  if (RELAXED) return x;
  return (x & 0xFF0000FF) | ((x >> 8) & 0x0000FF00) | ((x << 8) & 0x00FF0000);
}

/**
 * Rewrites a d x n Q4_0 weight at w in place into this build's lanes layout (load time, once per weight): each
 * quad of rows goes to tmp (4 x n / 32 x 18 bytes of scratch) and back interleaved. The last d % 4 rows stay as they are.
 */
export function repack_q4_0_lanes(w: usize, n: i32, d: i32, tmp: usize): void {
  const nb = n >> 5;
  const ws: usize = <usize> nb * Q4_0_BYTES;
  for (let g = 0; g < d >> 2; g++) {
    const p = w + <usize> g * (ws << 2);
    memory.copy(tmp, p, ws << 2);
    for (let b = 0; b < nb; b++) {
      const o = p + <usize> b * QB;
      for (let r: usize = 0; r < 4; r++) {
        const s = tmp + r * ws + <usize> b * Q4_0_BYTES;
        store<u16>(o + (r << 1), load<u16>(s));
        for (let v: usize = 0; v < 4; v++) store<u32>(o + 8 + (v << 4) + (r << 2), lanesWord(load<u32>(s + 2 + (v << 2))));
      }
    }
  }
}

/**
 * Row `row` of the d x n lanes weight at w (its start) to f32, the same float operations as dequantize_q4_0
 * (embedding lookups of a repacked table); rows from d & ~3 on are ggml's.
 */
export function dequantize_q4_0_lanes(out: usize, w: usize, n: i32, row: i32, d: i32): void {
  const ws: usize = <usize> (n >> 5) * Q4_0_BYTES;
  if (row >= (d & ~3)) {
    dequantize_q4_0(out, w + <usize> row * ws, n);
    return;
  }
  const r = <usize> (row & 3);
  const quad = w + <usize> (row >> 2) * (ws << 2);
  for (let b = 0; b < n >> 5; b++) {
    const p = quad + <usize> b * QB, dd = f16(p + (r << 1));
    for (let v = 0; v < 4; v++) {
      const x = lanesWord(load<u32>(p + 8 + (<usize> v << 4) + (r << 2))); // the lanes order is its own inverse
      for (let k = 0; k < 4; k++) {
        const q = <i32> ((x >> (k << 3)) & 0xFF), j = b * 32 + 4 * v + k;
        store<f32>(out + (<usize> j << 2), <f32> ((q & 15) - 8) * dd);
        store<f32>(out + (<usize> (j + 16) << 2), <f32> ((q >> 4) - 8) * dd);
      }
    }
  }
}
