// AssemblyScript, compiled by bench/q4_0-tile.bench.ts (relaxed SIMD): Q4_0 lanes-layout tiles for T > 1
// and one-quad T = 1 steps, in one small module (a few seconds to build on a quiet host), against the kernels as built
// (matmul_q4_0, matmul_q4_0_lanes). bo, t2, t6, t8: T > 1 only; g1: T = 1 only (it reads activation row 0).
// 2026-12-05 (docs/cpu-performance.md "Q4_0 in the lanes layout", "Other activation formats"): g* T = 1 only, the rest T > 1; r4 reads the
// interleaved activations of interleave_q8_s4 (T a multiple of 4). Decode session (2026-12-05 09:10-09:27 UTC): gx* read the
// pre-splatted activations of splat_q8_x; gm*, gq1 are T = 1 only.
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
export { matmul_q4_0 } from "../../assembly/quant-matmul";
export { quantize_q8_s } from "../../assembly/quant-act";
export { matmul_q4_0_lanes, repack_q4_0_lanes } from "../../assembly/lanes-q4_0";
import { dot16 } from "../../assembly/quant-util";
import { Q8_S_BYTES } from "../../assembly/ggml-common";
import { gemmChunk } from "../../assembly/quant-gemm";

// @ts-ignore: decorator
@inline const QB: usize = 72;

// @ts-ignore: decorator
@inline function scales(p: usize, hmask: v128, p112: v128): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, 3), hmask), p112);
}

// @ts-ignore: decorator
@inline function tileRow(q: usize, l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, dw: v128, ones16: v128): v128 {
  const s0 = i16x8.add(dot16(l0, v128.load32_splat(q + 8)), dot16(h0, v128.load32_splat(q + 24)));
  const s1 = i16x8.add(dot16(l1, v128.load32_splat(q + 12)), dot16(h1, v128.load32_splat(q + 28)));
  const s2 = i16x8.add(dot16(l2, v128.load32_splat(q + 16)), dot16(h2, v128.load32_splat(q + 32)));
  const s3 = i16x8.add(dot16(l3, v128.load32_splat(q + 20)), dot16(h3, v128.load32_splat(q + 36)));
  const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.shl(v128.load32_splat(q + 4), 3));
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(isum));
}

/** Block-outer: per quad and block, nibbles unpacked once for every activation row of the chunk; accumulators in out. */
export function bo(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t++) v128.store(o + <usize> t * od, f32x4.splat(0));
      for (let b = 0; b < nb; b++) {
        const wp = p + <usize> b * QB, ao = xq + <usize> b * Q8_S_BYTES;
        const dw = scales(wp, hmask, p112);
        const w0 = v128.load(wp + 8), w1 = v128.load(wp + 24), w2 = v128.load(wp + 40), w3 = v128.load(wp + 56);
        const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
        const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
        const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
        const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
        for (let t = t0; t < t1; t++) {
          const ot = o + <usize> t * od;
          v128.store(ot, f32x4.add(v128.load(ot), tileRow(ao + <usize> t * as, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16)));
        }
      }
    }
  }
}

// @ts-ignore: decorator
@inline function tileN(o: usize, od: usize, p: usize, q: usize, as: usize, nt: i32, nb: i32, z: i32, N: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const q0 = q, q1 = nt > 1 ? q + as : q, q2 = nt > 2 ? q + 2 * as : q, q3 = nt > 3 ? q + 3 * as : q;
  const q4 = nt > 4 ? q + 4 * as : q, q5 = nt > 5 ? q + 5 * as : q, q6 = nt > 6 ? q + 6 * as : q, q7 = nt > 7 ? q + 7 * as : q;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
  for (let b = 0; b < nb; b++) {
    const wp = p + <usize> b * QB, ao = <usize> b * Q8_S_BYTES;
    const dw = scales(wp, hmask, p112);
    const w0 = v128.load(wp + 8), w1 = v128.load(wp + 24), w2 = v128.load(wp + 40), w3 = v128.load(wp + 56);
    const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
    const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
    const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
    const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
    c0 = f32x4.add(c0, tileRow(q0 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    c1 = f32x4.add(c1, tileRow(q1 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    if (N > 2) {
      c2 = f32x4.add(c2, tileRow(q2 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
      c3 = f32x4.add(c3, tileRow(q3 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    }
    if (N > 4) {
      c4 = f32x4.add(c4, tileRow(q4 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
      c5 = f32x4.add(c5, tileRow(q5 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    }
    if (N > 6) {
      c6 = f32x4.add(c6, tileRow(q6 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
      c7 = f32x4.add(c7, tileRow(q7 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    }
  }
  v128.store(o, c0);
  if (nt > 1) v128.store(o + od, c1);
  if (nt > 2) v128.store(o + 2 * od, c2);
  if (nt > 3) v128.store(o + 3 * od, c3);
  if (nt > 4) v128.store(o + 4 * od, c4);
  if (nt > 5) v128.store(o + 5 * od, c5);
  if (nt > 6) v128.store(o + 6 * od, c6);
  if (nt > 7) v128.store(o + 7 * od, c7);
}

/** One quad x 8 activation rows per tile (register accumulators). */
export function t8(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = max(8, gemmChunk(as) & ~7);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += 8) tileN(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(8, t1 - t), nb, z, 8);
    }
  }
}

/** One quad x 6 activation rows per tile. */
export function t6(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = max(6, gemmChunk(as) / 6 * 6);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += 6) tileN(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(6, t1 - t), nb, z, 6);
    }
  }
}

// @ts-ignore: decorator
@inline function quadInline(p: usize, q: usize, m4: v128, ones16: v128): v128 {
  const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
  const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(v128.and(i16x8.shr_u(w0, 4), m4), v128.load32_splat(q + 24)));
  const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(v128.and(i16x8.shr_u(w1, 4), m4), v128.load32_splat(q + 28)));
  const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(v128.and(i16x8.shr_u(w2, 4), m4), v128.load32_splat(q + 32)));
  const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(v128.and(i16x8.shr_u(w3, 4), m4), v128.load32_splat(q + 36)));
  return i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16);
}

/** T = 1: nq quads per pass from far-apart bands, activation splats loaded at each use (no live splats). */
// @ts-ignore: decorator
@inline function gemvInline(out: usize, xq: usize, w: usize, n: i32, d: i32, NQ: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const G = d >> 2, Q = G / NQ, bs = <usize> Q * qs, os = <usize> Q << 4;
  for (let g = 0; g < Q; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c0 = f32x4.splat(0), c1 = c0;
    for (let b = 0; b < nb; b++) {
      const da = v128.load32_splat(q), s8 = i32x4.shl(v128.load32_splat(q + 4), 3);
      const i0 = quadInline(p, q, m4, ones16);
      c0 = f32x4.add(c0, f32x4.mul(f32x4.mul(scales(p, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(i0, s8))));
      if (NQ > 1) {
        const i1 = quadInline(p + bs, q, m4, ones16);
        c1 = f32x4.add(c1, f32x4.mul(f32x4.mul(scales(p + bs, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(i1, s8))));
      }
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c0);
    if (NQ > 1) v128.store(out + (<usize> g << 4) + os, c1);
  }
}
export function g1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvInline(out, xq, w, n, d, 1);
}

/** One quad x 2 activation rows per tile (10 live vectors). */
export function t2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += 2) tileN(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(2, t1 - t), nb, z, 2);
    }
  }
}

// ---- i32 dot-add forms (2026-12-05): i32x4.relaxed_dot_i8x16_i7x16_add_s, activations signed (first operand), unsigned
// nibbles the 7-bit one: in the lanes layout each i32 lane's four byte products are one row's, so one instruction
// (vpdpbusd where the engine uses AVX-VNNI) sums 16 products into the rows' block sums: no i16 adds, no widening.

// @ts-ignore: decorator
@inline function dadd(a: v128, u: v128, c: v128): v128 {
  return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, u, c);
}

/** One activation block at q against a quad's unpacked block, one i32 chain (C = 1) or two (C = 2); scaled by dw. */
// @ts-ignore: decorator
@inline function rowD(q: usize, l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, dw: v128, C: i32): v128 {
  const z = i32x4.splat(0);
  let isum: v128;
  if (C == 1) {
    let s = dadd(v128.load32_splat(q + 8), l0, z);
    s = dadd(v128.load32_splat(q + 24), h0, s);
    s = dadd(v128.load32_splat(q + 12), l1, s);
    s = dadd(v128.load32_splat(q + 28), h1, s);
    s = dadd(v128.load32_splat(q + 16), l2, s);
    s = dadd(v128.load32_splat(q + 32), h2, s);
    s = dadd(v128.load32_splat(q + 20), l3, s);
    s = dadd(v128.load32_splat(q + 36), h3, s);
    isum = i32x4.sub(s, i32x4.shl(v128.load32_splat(q + 4), 3));
  } else {
    let s = dadd(v128.load32_splat(q + 8), l0, z), t = dadd(v128.load32_splat(q + 24), h0, z);
    s = dadd(v128.load32_splat(q + 12), l1, s);
    t = dadd(v128.load32_splat(q + 28), h1, t);
    s = dadd(v128.load32_splat(q + 16), l2, s);
    t = dadd(v128.load32_splat(q + 32), h2, t);
    s = dadd(v128.load32_splat(q + 20), l3, s);
    t = dadd(v128.load32_splat(q + 36), h3, t);
    isum = i32x4.sub(i32x4.add(s, t), i32x4.shl(v128.load32_splat(q + 4), 3));
  }
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(isum));
}

// @ts-ignore: decorator
@inline function tileD(o: usize, od: usize, p: usize, q: usize, as: usize, nt: i32, nb: i32, z: i32, N: i32, C: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const q0 = q, q1 = nt > 1 ? q + as : q, q2 = nt > 2 ? q + 2 * as : q, q3 = nt > 3 ? q + 3 * as : q;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    const wp = p + <usize> b * QB, ao = <usize> b * Q8_S_BYTES;
    const dw = scales(wp, hmask, p112);
    const w0 = v128.load(wp + 8), w1 = v128.load(wp + 24), w2 = v128.load(wp + 40), w3 = v128.load(wp + 56);
    const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
    const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
    const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
    const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
    c0 = f32x4.add(c0, rowD(q0 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, C));
    if (N > 1) c1 = f32x4.add(c1, rowD(q1 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, C));
    if (N > 2) {
      c2 = f32x4.add(c2, rowD(q2 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, C));
      c3 = f32x4.add(c3, rowD(q3 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, C));
    }
  }
  v128.store(o, c0);
  if (nt > 1) v128.store(o + od, c1);
  if (nt > 2) v128.store(o + 2 * od, c2);
  if (nt > 3) v128.store(o + 3 * od, c3);
}

// @ts-ignore: decorator
@inline function tilesD(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, N: i32, C: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += N) tileD(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(N, t1 - t), nb, z, N, C);
    }
  }
}
export function d4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesD(out, xq, w, n, d, T, 4, 1);
}
export function d4c(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesD(out, xq, w, n, d, T, 4, 2);
}
export function d2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesD(out, xq, w, n, d, T, 2, 1);
}
export function d2c(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesD(out, xq, w, n, d, T, 2, 2);
}
export function d1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesD(out, xq, w, n, d, T, 1, 2);
}

/** T = 1 with the dot-add: a quad's block against the activation block at q (splats loaded at each use), C chains. */
// @ts-ignore: decorator
@inline function quadD(p: usize, q: usize, m4: v128, C: i32): v128 {
  const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
  const z = i32x4.splat(0);
  let s = dadd(v128.load32_splat(q + 8), v128.and(w0, m4), z);
  let t = C == 2 ? dadd(v128.load32_splat(q + 24), v128.and(i16x8.shr_u(w0, 4), m4), z) : dadd(v128.load32_splat(q + 24), v128.and(i16x8.shr_u(w0, 4), m4), s);
  s = dadd(v128.load32_splat(q + 12), v128.and(w1, m4), C == 2 ? s : t);
  t = dadd(v128.load32_splat(q + 28), v128.and(i16x8.shr_u(w1, 4), m4), C == 2 ? t : s);
  s = dadd(v128.load32_splat(q + 16), v128.and(w2, m4), C == 2 ? s : t);
  t = dadd(v128.load32_splat(q + 32), v128.and(i16x8.shr_u(w2, 4), m4), C == 2 ? t : s);
  s = dadd(v128.load32_splat(q + 20), v128.and(w3, m4), C == 2 ? s : t);
  t = dadd(v128.load32_splat(q + 36), v128.and(i16x8.shr_u(w3, 4), m4), C == 2 ? t : s);
  return C == 2 ? i32x4.add(s, t) : t;
}

/** T = 1, dot-add: NQ quads per pass from far-apart bands (d / 4 a multiple of NQ here). */
// @ts-ignore: decorator
@inline function gemvD(out: usize, xq: usize, w: usize, n: i32, d: i32, NQ: i32, C: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const G = d >> 2, Q = G / NQ, bs = <usize> Q * qs, os = <usize> Q << 4;
  for (let g = 0; g < Q; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
    for (let b = 0; b < nb; b++) {
      const da = v128.load32_splat(q), s8 = i32x4.shl(v128.load32_splat(q + 4), 3);
      c0 = f32x4.add(c0, f32x4.mul(f32x4.mul(scales(p, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(quadD(p, q, m4, C), s8))));
      if (NQ > 1) c1 = f32x4.add(c1, f32x4.mul(f32x4.mul(scales(p + bs, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(quadD(p + bs, q, m4, C), s8))));
      if (NQ > 2) {
        c2 = f32x4.add(c2, f32x4.mul(f32x4.mul(scales(p + 2 * bs, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(quadD(p + 2 * bs, q, m4, C), s8))));
        c3 = f32x4.add(c3, f32x4.mul(f32x4.mul(scales(p + 3 * bs, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(quadD(p + 3 * bs, q, m4, C), s8))));
      }
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c0);
    if (NQ > 1) v128.store(out + (<usize> g << 4) + os, c1);
    if (NQ > 2) {
      v128.store(out + (<usize> g << 4) + 2 * os, c2);
      v128.store(out + (<usize> g << 4) + 3 * os, c3);
    }
  }
}
export function gd1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvD(out, xq, w, n, d, 1, 1);
}
export function gd1c(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvD(out, xq, w, n, d, 1, 2);
}
export function gd4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvD(out, xq, w, n, d, 4, 1);
}
export function gd2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvD(out, xq, w, n, d, 2, 1);
}

// ---- shift counts from a value the compiler cannot fold (2026-12-05): JavaScriptCore materializes a constant vector
// shift count for every shift (mov, and, movq to an xmm register, then the shift by register); a count computed from
// n (sh4 = 4 + z, z = 0 for every real n) is computed once per call.

// @ts-ignore: decorator
@inline function scalesZ(p: usize, hmask: v128, p112: v128, sh16: i32, sh3: i32): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), sh16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, sh3), hmask), p112);
}

// @ts-ignore: decorator
@inline function tileRowZ(q: usize, l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, dw: v128, ones16: v128, sh3: i32): v128 {
  const s0 = i16x8.add(dot16(l0, v128.load32_splat(q + 8)), dot16(h0, v128.load32_splat(q + 24)));
  const s1 = i16x8.add(dot16(l1, v128.load32_splat(q + 12)), dot16(h1, v128.load32_splat(q + 28)));
  const s2 = i16x8.add(dot16(l2, v128.load32_splat(q + 16)), dot16(h2, v128.load32_splat(q + 32)));
  const s3 = i16x8.add(dot16(l3, v128.load32_splat(q + 20)), dot16(h3, v128.load32_splat(q + 36)));
  const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.shl(v128.load32_splat(q + 4), sh3));
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(isum));
}

// @ts-ignore: decorator
@inline function tileZ(o: usize, od: usize, p: usize, q: usize, as: usize, nt: i32, nb: i32, z: i32, N: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const sh4 = 4 + z, sh3 = 3 + z, sh16 = 16 + z;
  const q0 = q, q1 = nt > 1 ? q + as : q, q2 = nt > 2 ? q + 2 * as : q, q3 = nt > 3 ? q + 3 * as : q;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    const wp = p + <usize> b * QB, ao = <usize> b * Q8_S_BYTES;
    const dw = scalesZ(wp, hmask, p112, sh16, sh3);
    const w0 = v128.load(wp + 8), w1 = v128.load(wp + 24), w2 = v128.load(wp + 40), w3 = v128.load(wp + 56);
    const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, sh4), m4);
    const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, sh4), m4);
    const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, sh4), m4);
    const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, sh4), m4);
    c0 = f32x4.add(c0, tileRowZ(q0 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, sh3));
    c1 = f32x4.add(c1, tileRowZ(q1 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, sh3));
    if (N > 2) {
      c2 = f32x4.add(c2, tileRowZ(q2 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, sh3));
      c3 = f32x4.add(c3, tileRowZ(q3 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16, sh3));
    }
  }
  v128.store(o, c0);
  if (nt > 1) v128.store(o + od, c1);
  if (nt > 2) v128.store(o + 2 * od, c2);
  if (nt > 3) v128.store(o + 3 * od, c3);
}

// @ts-ignore: decorator
@inline function tilesZ(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, N: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += N) tileZ(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(N, t1 - t), nb, z, N);
    }
  }
}
export function z2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesZ(out, xq, w, n, d, T, 2);
}
export function z4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesZ(out, xq, w, n, d, T, 4);
}

/** T = 1, one quad per pass (g1) with the shift counts from z. */
export function gz1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const sh4 = 4 + z, sh3 = 3 + z, sh16 = 16 + z;
  for (let g = 0; g < d >> 2; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
      const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(v128.and(i16x8.shr_u(w0, sh4), m4), v128.load32_splat(q + 24)));
      const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(v128.and(i16x8.shr_u(w1, sh4), m4), v128.load32_splat(q + 28)));
      const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(v128.and(i16x8.shr_u(w2, sh4), m4), v128.load32_splat(q + 32)));
      const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(v128.and(i16x8.shr_u(w3, sh4), m4), v128.load32_splat(q + 36)));
      const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.shl(v128.load32_splat(q + 4), sh3));
      c = f32x4.add(c, f32x4.mul(f32x4.mul(scalesZ(p, hmask, p112, sh16, sh3), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum)));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c);
  }
}

// ---- constant offsets as the loads' own offsets (immOffset) instead of added to the address (2026-12-05): JavaScriptCore
// computes each `q + k` address with two adds before the load (the i32 add, then the memory base); with the offset in
// the load it takes one. V8 folds both forms into the addressing mode.

// @ts-ignore: decorator
@inline function scalesO(p: usize, hmask: v128, p112: v128): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, 3), hmask), p112);
}

// @ts-ignore: decorator
@inline function tileRowO(q: usize, l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, dw: v128, ones16: v128): v128 {
  const s0 = i16x8.add(dot16(l0, v128.load32_splat(q, 8)), dot16(h0, v128.load32_splat(q, 24)));
  const s1 = i16x8.add(dot16(l1, v128.load32_splat(q, 12)), dot16(h1, v128.load32_splat(q, 28)));
  const s2 = i16x8.add(dot16(l2, v128.load32_splat(q, 16)), dot16(h2, v128.load32_splat(q, 32)));
  const s3 = i16x8.add(dot16(l3, v128.load32_splat(q, 20)), dot16(h3, v128.load32_splat(q, 36)));
  const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.shl(v128.load32_splat(q, 4), 3));
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(isum));
}

// @ts-ignore: decorator
@inline function tileO(o: usize, od: usize, p: usize, q: usize, as: usize, nt: i32, nb: i32, z: i32, N: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const q1 = nt > 1 ? as : 0, q2 = nt > 2 ? 2 * as : 0, q3 = nt > 3 ? 3 * as : 0;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  let wp = p, a = q;
  for (let b = 0; b < nb; b++) {
    const dw = scalesO(wp, hmask, p112);
    const w0 = v128.load(wp, 8), w1 = v128.load(wp, 24), w2 = v128.load(wp, 40), w3 = v128.load(wp, 56);
    const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
    const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
    const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
    const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
    c0 = f32x4.add(c0, tileRowO(a, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    c1 = f32x4.add(c1, tileRowO(a + q1, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    if (N > 2) {
      c2 = f32x4.add(c2, tileRowO(a + q2, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
      c3 = f32x4.add(c3, tileRowO(a + q3, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    }
    wp += QB;
    a += Q8_S_BYTES;
  }
  v128.store(o, c0);
  if (nt > 1) v128.store(o + od, c1);
  if (nt > 2) v128.store(o + 2 * od, c2);
  if (nt > 3) v128.store(o + 3 * od, c3);
}

// @ts-ignore: decorator
@inline function tilesO(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, N: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += N) tileO(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(N, t1 - t), nb, z, N);
    }
  }
}
export function o2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesO(out, xq, w, n, d, T, 2);
}
export function o4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesO(out, xq, w, n, d, T, 4);
}

/** T = 1, one quad per pass (g1) with the offsets in the loads. */
export function go1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  for (let g = 0; g < d >> 2; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const w0 = v128.load(p, 8), w1 = v128.load(p, 24), w2 = v128.load(p, 40), w3 = v128.load(p, 56);
      const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q, 8)), dot16(v128.and(i16x8.shr_u(w0, 4), m4), v128.load32_splat(q, 24)));
      const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q, 12)), dot16(v128.and(i16x8.shr_u(w1, 4), m4), v128.load32_splat(q, 28)));
      const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q, 16)), dot16(v128.and(i16x8.shr_u(w2, 4), m4), v128.load32_splat(q, 32)));
      const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q, 20)), dot16(v128.and(i16x8.shr_u(w3, 4), m4), v128.load32_splat(q, 36)));
      const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.shl(v128.load32_splat(q, 4), 3));
      c = f32x4.add(c, f32x4.mul(f32x4.mul(scalesO(p, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum)));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c);
  }
}

// ---- four activation rows interleaved (2026-12-05): per group of 4 rows and block, 160 bytes: the rows' f32 d (16),
// their 8 Σa as i32 (16), then 8 vectors, vector g holding bytes 4g..4g+3 of each row's qs (row t at 4t..4t+3). A quad's
// unpacked weight vector (row r in lane r) rotated by k lanes meets it without splats: i32 lane i holds (row t_i,
// weight row (i + k) % 4). 10 loads per quad x 4 rows x block instead of 40, for 24 + 3 one-input shuffles.

/** Q8_S rows at src (T a multiple of 4) to the interleaved groups at dst. */
export function interleave_q8_s4(dst: usize, src: usize, n: i32, T: i32): void {
  const nb = n >> 5;
  const as: usize = <usize> nb * Q8_S_BYTES;
  for (let t0 = 0; t0 < T; t0 += 4) {
    for (let b = 0; b < nb; b++) {
      const o = dst + (<usize> t0 * as) + <usize> b * 160;
      for (let t = 0; t < 4; t++) {
        const s = src + <usize> (t0 + t) * as + <usize> b * Q8_S_BYTES;
        store<f32>(o + (<usize> t << 2), load<f32>(s));
        store<i32>(o + 16 + (<usize> t << 2), load<i32>(s + 4) << 3);
        for (let g = 0; g < 8; g++) store<u32>(o + 32 + (<usize> g << 4) + (<usize> t << 2), load<u32>(s + 8 + (<usize> g << 2)));
      }
    }
  }
}

// @ts-ignore: decorator
@inline function rotk(v: v128, k: i32): v128 {
  if (k == 0) return v;
  if (k == 1) return v128.shuffle<i32>(v, v, 1, 2, 3, 0);
  if (k == 2) return v128.shuffle<i32>(v, v, 2, 3, 0, 1);
  return v128.shuffle<i32>(v, v, 3, 0, 1, 2);
}

// @ts-ignore: decorator
@inline function storeRot(o: usize, od: usize, c: v128, k: i32): void {
  // lane i: activation row i, weight row (i + k) % 4
  store<f32>(o + ((<usize> (k & 3)) << 2), f32x4.extract_lane(c, 0));
  store<f32>(o + od + ((<usize> ((1 + k) & 3)) << 2), f32x4.extract_lane(c, 1));
  store<f32>(o + 2 * od + ((<usize> ((2 + k) & 3)) << 2), f32x4.extract_lane(c, 2));
  store<f32>(o + 3 * od + ((<usize> ((3 + k) & 3)) << 2), f32x4.extract_lane(c, 3));
}

/** One quad at p x one group of 4 interleaved activation rows at a; out rows at o, o + od, ... */
// @ts-ignore: decorator
@inline function tileR(o: usize, od: usize, p: usize, a: usize, nb: i32, z: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    let s0 = i16x8.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let v = 0; v < 4; v++) {
      const w = v128.load(p + 8 + (<usize> v << 4));
      const lo = v128.and(w, m4), hi = v128.and(i16x8.shr_u(w, 4), m4);
      const al = v128.load(a + 32 + (<usize> v << 4)), ah = v128.load(a + 96 + (<usize> v << 4));
      s0 = i16x8.add(s0, i16x8.add(dot16(lo, al), dot16(hi, ah)));
      s1 = i16x8.add(s1, i16x8.add(dot16(rotk(lo, 1), al), dot16(rotk(hi, 1), ah)));
      s2 = i16x8.add(s2, i16x8.add(dot16(rotk(lo, 2), al), dot16(rotk(hi, 2), ah)));
      s3 = i16x8.add(s3, i16x8.add(dot16(rotk(lo, 3), al), dot16(rotk(hi, 3), ah)));
    }
    const dw = scales(p, hmask, p112), da = v128.load(a), s8 = v128.load(a + 16);
    c0 = f32x4.add(c0, f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(s0, ones16), s8))));
    c1 = f32x4.add(c1, f32x4.mul(f32x4.mul(rotk(dw, 1), da), f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(s1, ones16), s8))));
    c2 = f32x4.add(c2, f32x4.mul(f32x4.mul(rotk(dw, 2), da), f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(s2, ones16), s8))));
    c3 = f32x4.add(c3, f32x4.mul(f32x4.mul(rotk(dw, 3), da), f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(s3, ones16), s8))));
    p += QB;
    a += 160;
  }
  storeRot(o, od, c0, 0);
  storeRot(o, od, c1, 1);
  storeRot(o, od, c2, 2);
  storeRot(o, od, c3, 3);
}

/** T > 1 (a multiple of 4 here) over interleaved activations at xq (interleave_q8_s4). */
export function r4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = gemmChunk(as) & ~3;
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += 4) tileR(o + <usize> t * od, od, p, xq + <usize> t * as, nb, z);
    }
  }
}

/** T = 1, one quad per pass (g1) with the eight splats made by one-input shuffles of two activation loads. */
export function gs1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  for (let g = 0; g < d >> 2; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const x = v128.load(q + 8), y = v128.load(q + 24);
      const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
      const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.shuffle<i32>(x, x, 0, 0, 0, 0)), dot16(v128.and(i16x8.shr_u(w0, 4), m4), v128.shuffle<i32>(y, y, 0, 0, 0, 0)));
      const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.shuffle<i32>(x, x, 1, 1, 1, 1)), dot16(v128.and(i16x8.shr_u(w1, 4), m4), v128.shuffle<i32>(y, y, 1, 1, 1, 1)));
      const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.shuffle<i32>(x, x, 2, 2, 2, 2)), dot16(v128.and(i16x8.shr_u(w2, 4), m4), v128.shuffle<i32>(y, y, 2, 2, 2, 2)));
      const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.shuffle<i32>(x, x, 3, 3, 3, 3)), dot16(v128.and(i16x8.shr_u(w3, 4), m4), v128.shuffle<i32>(y, y, 3, 3, 3, 3)));
      const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.shl(v128.load32_splat(q + 4), 3));
      c = f32x4.add(c, f32x4.mul(f32x4.mul(scales(p, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum)));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c);
  }
}

// ---- the splats as one-input shuffles of two activation loads per row and block (2026-12-05): V8's Turbofan (Node 20,
// --print-wasm-code) hoists the 4-row tile's 40 splat loads to the top of the block and spills them to the stack; two
// loads per row leave 16 vectors to hoist.

// @ts-ignore: decorator
@inline function tileRowS(q: usize, l0: v128, l1: v128, l2: v128, l3: v128, h0: v128, h1: v128, h2: v128, h3: v128, dw: v128, ones16: v128): v128 {
  const x = v128.load(q + 8), y = v128.load(q + 24);
  const s0 = i16x8.add(dot16(l0, v128.shuffle<i32>(x, x, 0, 0, 0, 0)), dot16(h0, v128.shuffle<i32>(y, y, 0, 0, 0, 0)));
  const s1 = i16x8.add(dot16(l1, v128.shuffle<i32>(x, x, 1, 1, 1, 1)), dot16(h1, v128.shuffle<i32>(y, y, 1, 1, 1, 1)));
  const s2 = i16x8.add(dot16(l2, v128.shuffle<i32>(x, x, 2, 2, 2, 2)), dot16(h2, v128.shuffle<i32>(y, y, 2, 2, 2, 2)));
  const s3 = i16x8.add(dot16(l3, v128.shuffle<i32>(x, x, 3, 3, 3, 3)), dot16(h3, v128.shuffle<i32>(y, y, 3, 3, 3, 3)));
  const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.shl(v128.load32_splat(q + 4), 3));
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(isum));
}

// @ts-ignore: decorator
@inline function tileS(o: usize, od: usize, p: usize, q: usize, as: usize, nt: i32, nb: i32, z: i32, N: i32): void {
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const q0 = q, q1 = nt > 1 ? q + as : q, q2 = nt > 2 ? q + 2 * as : q, q3 = nt > 3 ? q + 3 * as : q;
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  for (let b = 0; b < nb; b++) {
    const wp = p + <usize> b * QB, ao = <usize> b * Q8_S_BYTES;
    const dw = scales(wp, hmask, p112);
    const w0 = v128.load(wp + 8), w1 = v128.load(wp + 24), w2 = v128.load(wp + 40), w3 = v128.load(wp + 56);
    const l0 = v128.and(w0, m4), h0 = v128.and(i16x8.shr_u(w0, 4), m4);
    const l1 = v128.and(w1, m4), h1 = v128.and(i16x8.shr_u(w1, 4), m4);
    const l2 = v128.and(w2, m4), h2 = v128.and(i16x8.shr_u(w2, 4), m4);
    const l3 = v128.and(w3, m4), h3 = v128.and(i16x8.shr_u(w3, 4), m4);
    c0 = f32x4.add(c0, tileRowS(q0 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    c1 = f32x4.add(c1, tileRowS(q1 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    if (N > 2) {
      c2 = f32x4.add(c2, tileRowS(q2 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
      c3 = f32x4.add(c3, tileRowS(q3 + ao, l0, l1, l2, l3, h0, h1, h2, h3, dw, ones16));
    }
  }
  v128.store(o, c0);
  if (nt > 1) v128.store(o + od, c1);
  if (nt > 2) v128.store(o + 2 * od, c2);
  if (nt > 3) v128.store(o + 3 * od, c3);
}

// @ts-ignore: decorator
@inline function tilesS(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, N: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * Q8_S_BYTES, qs: usize = <usize> nb * QB, od: usize = <usize> d << 2;
  const chunk = gemmChunk(as);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; 4 * g < d; g++) {
      const p = w + <usize> g * qs, o = out + (<usize> g << 4);
      for (let t = t0; t < t1; t += N) tileS(o + <usize> t * od, od, p, xq + <usize> t * as, as, min(N, t1 - t), nb, z, N);
    }
  }
}
export function s2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesS(out, xq, w, n, d, T, 2);
}
export function s4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  tilesS(out, xq, w, n, d, T, 4);
}

// ---------------------------------------------------------------- 2026-12-05 (decode session): pre-splatted activations
// Q8_X: each Q8_S block of an activation row (40 bytes) widened to the ten vectors the T = 1 step splats from it, 160 bytes:
// d as f32x4, 8 Σa as i32x4, then the block's eight 4-byte groups each splatted (elements 4k..4k+3 at 32 + 16k). The step
// then reads plain 16-byte loads (one instruction each in JavaScriptCore, offsets folded) instead of 10 load32_splat per
// quad and block (a scalar load and a broadcast, plus two adds for a computed address, there). Same integers, same f32 steps.
// @ts-ignore: decorator
@inline const XB: usize = 160;

export function splat_q8_x(dst: usize, src: usize, n: i32, T: i32): void {
  const nb = (n >> 5) * T;
  for (let b = 0; b < nb; b++) {
    v128.store(dst, v128.load32_splat(src));
    v128.store(dst, i32x4.shl(v128.load32_splat(src + 4), 3), 16);
    for (let k: usize = 0; k < 8; k++) v128.store(dst + 32 + 16 * k, v128.load32_splat(src + 8 + 4 * k));
    dst += XB;
    src += Q8_S_BYTES;
  }
}

/** One quad's block at p against a Q8_X block at x: Σ q·a − 8 Σa, i32 lane r row r. */
// @ts-ignore: decorator
@inline function quadX(p: usize, x: usize, m4: v128, ones16: v128): v128 {
  const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
  const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load(x, 32)), dot16(v128.and(i16x8.shr_u(w0, 4), m4), v128.load(x, 96)));
  const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load(x, 48)), dot16(v128.and(i16x8.shr_u(w1, 4), m4), v128.load(x, 112)));
  const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load(x, 64)), dot16(v128.and(i16x8.shr_u(w2, 4), m4), v128.load(x, 128)));
  const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load(x, 80)), dot16(v128.and(i16x8.shr_u(w3, 4), m4), v128.load(x, 144)));
  return i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), v128.load(x, 16));
}

/** T = 1, NQ quads per pass from NQ far-apart bands (NQ = 1: g1's order; 4: matmul_q4_0_lanes's), over Q8_X. */
// @ts-ignore: decorator
@inline function gemvX(out: usize, xq: usize, w: usize, n: i32, d: i32, NQ: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const nQuads = d >> 2, Q = nQuads / NQ, bs = <usize> Q * qs, os = <usize> Q << 4;
  for (let g = 0; g < Q; g++) {
    let p = w + <usize> g * qs, x = xq;
    let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
    for (let b = 0; b < nb; b++) {
      const da = v128.load(x);
      c0 = f32x4.add(c0, f32x4.mul(f32x4.mul(scales(p, hmask, p112), da), f32x4.convert_i32x4_s(quadX(p, x, m4, ones16))));
      if (NQ > 1) {
        c1 = f32x4.add(c1, f32x4.mul(f32x4.mul(scales(p + bs, hmask, p112), da), f32x4.convert_i32x4_s(quadX(p + bs, x, m4, ones16))));
        c2 = f32x4.add(c2, f32x4.mul(f32x4.mul(scales(p + 2 * bs, hmask, p112), da), f32x4.convert_i32x4_s(quadX(p + 2 * bs, x, m4, ones16))));
        c3 = f32x4.add(c3, f32x4.mul(f32x4.mul(scales(p + 3 * bs, hmask, p112), da), f32x4.convert_i32x4_s(quadX(p + 3 * bs, x, m4, ones16))));
      }
      p += QB;
      x += XB;
    }
    const o = out + (<usize> g << 4);
    v128.store(o, c0);
    if (NQ > 1) {
      v128.store(o + os, c1);
      v128.store(o + 2 * os, c2);
      v128.store(o + 3 * os, c3);
    }
  }
}
/** gx*: xq is the Q8_X row (splat_q8_x). */
export function gx1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvX(out, xq, w, n, d, 1);
}
export function gx4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvX(out, xq, w, n, d, 4);
}

// The quad's scales without the two constant shifts (JavaScriptCore: four instructions each): the f16 sign-extended to
// i32 times 2^13 puts exponent and mantissa at bits 13..27 and the sign in bits 28..31, which hmask reduces to bit 31:
// the bits of scales() (shl 16, then shr_s 3, then the same mask).
// @ts-ignore: decorator
@inline function scalesMul(p: usize, hmask: v128, p112: v128, k8192: v128): v128 {
  const h = i32x4.mul(i32x4.extend_low_i16x8_s(v128.load64_zero(p)), k8192);
  return f32x4.mul(v128.and(h, hmask), p112);
}

/** g1 with scalesMul and 8 Σa as a multiply (S = 1: scales only; 2: and the Σa shift). */
// @ts-ignore: decorator
@inline function gemvM(out: usize, xq: usize, w: usize, n: i32, d: i32, S: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8192 = i32x4.splat(8192 + z), k8 = i32x4.splat(8 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const sh4 = S > 2 ? 4 + z : 4;
  for (let g = 0; g < (d >> 2); g++) {
    let p = w + <usize> g * qs, q = xq;
    let c = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
      const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(v128.and(i16x8.shr_u(w0, sh4), m4), v128.load32_splat(q + 24)));
      const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(v128.and(i16x8.shr_u(w1, sh4), m4), v128.load32_splat(q + 28)));
      const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(v128.and(i16x8.shr_u(w2, sh4), m4), v128.load32_splat(q + 32)));
      const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(v128.and(i16x8.shr_u(w3, sh4), m4), v128.load32_splat(q + 36)));
      const s8 = S > 1 ? i32x4.mul(v128.load32_splat(q + 4), k8) : i32x4.shl(v128.load32_splat(q + 4), 3);
      const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), s8);
      c = f32x4.add(c, f32x4.mul(f32x4.mul(scalesMul(p, hmask, p112, k8192), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum)));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c);
  }
}
export function gm1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvM(out, xq, w, n, d, 1);
}
export function gm2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvM(out, xq, w, n, d, 2);
}
export function gm3(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  gemvM(out, xq, w, n, d, 3);
}

/** V8's four-quad T = 1 step (matmul_q4_0_lanes: four far-apart bands sharing the splats) with scalesMul and 8 Σa by a multiply. */
export function gm4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8192 = i32x4.splat(8192 + z), k8 = i32x4.splat(8 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const Q = (d >> 2) >> 2, bs = <usize> Q * qs, os = <usize> Q << 4;
  for (let g = 0; g < Q; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
    for (let b = 0; b < nb; b++) {
      const da = v128.load32_splat(q), s8 = i32x4.mul(v128.load32_splat(q + 4), k8);
      const x0 = v128.load32_splat(q + 8), x1 = v128.load32_splat(q + 12), x2 = v128.load32_splat(q + 16), x3 = v128.load32_splat(q + 20);
      const x4 = v128.load32_splat(q + 24), x5 = v128.load32_splat(q + 28), x6 = v128.load32_splat(q + 32), x7 = v128.load32_splat(q + 36);
      const i0 = quadR(p, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
      const i1 = quadR(p + bs, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
      const i2 = quadR(p + 2 * bs, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
      const i3 = quadR(p + 3 * bs, x0, x1, x2, x3, x4, x5, x6, x7, m4, ones16);
      c0 = f32x4.add(c0, f32x4.mul(f32x4.mul(scalesMul(p, hmask, p112, k8192), da), f32x4.convert_i32x4_s(i32x4.sub(i0, s8))));
      c1 = f32x4.add(c1, f32x4.mul(f32x4.mul(scalesMul(p + bs, hmask, p112, k8192), da), f32x4.convert_i32x4_s(i32x4.sub(i1, s8))));
      c2 = f32x4.add(c2, f32x4.mul(f32x4.mul(scalesMul(p + 2 * bs, hmask, p112, k8192), da), f32x4.convert_i32x4_s(i32x4.sub(i2, s8))));
      c3 = f32x4.add(c3, f32x4.mul(f32x4.mul(scalesMul(p + 3 * bs, hmask, p112, k8192), da), f32x4.convert_i32x4_s(i32x4.sub(i3, s8))));
      p += QB;
      q += Q8_S_BYTES;
    }
    const o = out + (<usize> g << 4);
    v128.store(o, c0);
    v128.store(o + os, c1);
    v128.store(o + 2 * os, c2);
    v128.store(o + 3 * os, c3);
  }
}

// @ts-ignore: decorator
@inline function quadR(p: usize, x0: v128, x1: v128, x2: v128, x3: v128, x4: v128, x5: v128, x6: v128, x7: v128, m4: v128, ones16: v128): v128 {
  const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
  const s0 = i16x8.add(dot16(v128.and(w0, m4), x0), dot16(v128.and(i16x8.shr_u(w0, 4), m4), x4));
  const s1 = i16x8.add(dot16(v128.and(w1, m4), x1), dot16(v128.and(i16x8.shr_u(w1, 4), m4), x5));
  const s2 = i16x8.add(dot16(v128.and(w2, m4), x2), dot16(v128.and(i16x8.shr_u(w2, 4), m4), x6));
  const s3 = i16x8.add(dot16(v128.and(w3, m4), x3), dot16(v128.and(i16x8.shr_u(w3, 4), m4), x7));
  return i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16);
}

// The high nibbles without a shift (JavaScriptCore lowers a constant shift to four instructions): with each byte's low
// nibble cleared (w & 0xf0), q15mulr_sat_s(x, 2048) = (x * 2048 + 2^14) >> 15 = x >> 4 (arithmetic, as i16: the +8 never
// carries into bit 4), so byte 0 of each i16 is b0 >> 4 and byte 1 (b1 >> 4) | sign fill, which the 15 mask clears.
// @ts-ignore: decorator
@inline function hiQ(w: v128, mf0: v128, k2048: v128, m4: v128): v128 {
  return v128.and(i16x8.q15mulr_sat_s(v128.and(w, mf0), k2048), m4);
}
export function gq1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8192 = i32x4.splat(8192 + z), k8 = i32x4.splat(8 + z);
  const mf0 = i8x16.splat(<i8> (0xf0 + z)), k2048 = i16x8.splat(<i16> (2048 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  for (let g = 0; g < (d >> 2); g++) {
    let p = w + <usize> g * qs, q = xq;
    let c = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
      const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(hiQ(w0, mf0, k2048, m4), v128.load32_splat(q + 24)));
      const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(hiQ(w1, mf0, k2048, m4), v128.load32_splat(q + 28)));
      const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(hiQ(w2, mf0, k2048, m4), v128.load32_splat(q + 32)));
      const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(hiQ(w3, mf0, k2048, m4), v128.load32_splat(q + 36)));
      const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.mul(v128.load32_splat(q + 4), k8));
      c = f32x4.add(c, f32x4.mul(f32x4.mul(scalesMul(p, hmask, p112, k8192), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum)));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c);
  }
}

// hiQ by the relaxed q15mulr (x86: one pmulhrsw, where q15mulr_sat_s adds a fix-up for -32768 x -32768, which 2048
// never meets, so both give the same bits here). Session 10: Bun 0.96x of gm2 (gq1 0.67x).
// @ts-ignore: decorator
@inline function hiR(w: v128, mf0: v128, k2048: v128, m4: v128): v128 {
  return v128.and(i16x8.relaxed_q15mulr_s(v128.and(w, mf0), k2048), m4);
}
export function gr1(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8192 = i32x4.splat(8192 + z), k8 = i32x4.splat(8 + z);
  const mf0 = i8x16.splat(<i8> (0xf0 + z)), k2048 = i16x8.splat(<i16> (2048 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  for (let g = 0; g < (d >> 2); g++) {
    let p = w + <usize> g * qs, q = xq;
    let c = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
      const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(hiR(w0, mf0, k2048, m4), v128.load32_splat(q + 24)));
      const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(hiR(w1, mf0, k2048, m4), v128.load32_splat(q + 28)));
      const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(hiR(w2, mf0, k2048, m4), v128.load32_splat(q + 32)));
      const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(hiR(w3, mf0, k2048, m4), v128.load32_splat(q + 36)));
      const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.mul(v128.load32_splat(q + 4), k8));
      c = f32x4.add(c, f32x4.mul(f32x4.mul(scalesMul(p, hmask, p112, k8192), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum)));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c);
  }
}

/** gm2's step over two far-apart bands per pass (two streams through memory), each quad loading its own splats. */
export function gm2b(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8192 = i32x4.splat(8192 + z), k8 = i32x4.splat(8 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const Q = (d >> 2) >> 1, bs = <usize> Q * qs, os = <usize> Q << 4;
  for (let g = 0; g < Q; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c0 = f32x4.splat(0), c1 = c0;
    for (let b = 0; b < nb; b++) {
      c0 = f32x4.add(c0, stepM(p, q, m4, ones16, k8, k8192, hmask, p112));
      c1 = f32x4.add(c1, stepM(p + bs, q, m4, ones16, k8, k8192, hmask, p112));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c0);
    v128.store(out + (<usize> g << 4) + os, c1);
  }
}

// @ts-ignore: decorator
@inline function stepM(p: usize, q: usize, m4: v128, ones16: v128, k8: v128, k8192: v128, hmask: v128, p112: v128): v128 {
  const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
  const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(v128.and(i16x8.shr_u(w0, 4), m4), v128.load32_splat(q + 24)));
  const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(v128.and(i16x8.shr_u(w1, 4), m4), v128.load32_splat(q + 28)));
  const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(v128.and(i16x8.shr_u(w2, 4), m4), v128.load32_splat(q + 32)));
  const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(v128.and(i16x8.shr_u(w3, 4), m4), v128.load32_splat(q + 36)));
  const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.mul(v128.load32_splat(q + 4), k8));
  return f32x4.mul(f32x4.mul(scalesMul(p, hmask, p112, k8192), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum));
}

/** gm2 with the high nibbles by i8x16.shr_u (no mask after the shift). */
export function gm5(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8192 = i32x4.splat(8192 + z), k8 = i32x4.splat(8 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  for (let g = 0; g < (d >> 2); g++) {
    let p = w + <usize> g * qs, q = xq;
    let c = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      const w0 = v128.load(p + 8), w1 = v128.load(p + 24), w2 = v128.load(p + 40), w3 = v128.load(p + 56);
      const s0 = i16x8.add(dot16(v128.and(w0, m4), v128.load32_splat(q + 8)), dot16(i8x16.shr_u(w0, 4), v128.load32_splat(q + 24)));
      const s1 = i16x8.add(dot16(v128.and(w1, m4), v128.load32_splat(q + 12)), dot16(i8x16.shr_u(w1, 4), v128.load32_splat(q + 28)));
      const s2 = i16x8.add(dot16(v128.and(w2, m4), v128.load32_splat(q + 16)), dot16(i8x16.shr_u(w2, 4), v128.load32_splat(q + 32)));
      const s3 = i16x8.add(dot16(v128.and(w3, m4), v128.load32_splat(q + 20)), dot16(i8x16.shr_u(w3, 4), v128.load32_splat(q + 36)));
      const isum = i32x4.sub(i32x4.dot_i16x8_s(i16x8.add(i16x8.add(s0, s1), i16x8.add(s2, s3)), ones16), i32x4.mul(v128.load32_splat(q + 4), k8));
      c = f32x4.add(c, f32x4.mul(f32x4.mul(scalesMul(p, hmask, p112, k8192), v128.load32_splat(q)), f32x4.convert_i32x4_s(isum)));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c);
  }
}

/**
 * Session 10: gm2b (two far-apart bands per pass) with each activation splat loaded once for both quads and used at
 * once (short live ranges: JavaScriptCore spills V8's four-quad step, whose eight splats stay live across the quads).
 */
export function gp2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const qs: usize = <usize> nb * QB;
  const m4 = i8x16.splat(<i8> (15 + z)), ones16 = i16x8.splat(<i16> (1 + z)), k8192 = i32x4.splat(8192 + z), k8 = i32x4.splat(8 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const Q = (d >> 2) >> 1, bs = <usize> Q * qs, os = <usize> Q << 4;
  for (let g = 0; g < Q; g++) {
    let p = w + <usize> g * qs, q = xq;
    let c0 = f32x4.splat(0), c1 = c0;
    for (let b = 0; b < nb; b++) {
      let xl = v128.load32_splat(q + 8), xh = v128.load32_splat(q + 24);
      let a = v128.load(p + 8), e = v128.load(p + bs + 8);
      let sA = i16x8.add(dot16(v128.and(a, m4), xl), dot16(v128.and(i16x8.shr_u(a, 4), m4), xh));
      let sB = i16x8.add(dot16(v128.and(e, m4), xl), dot16(v128.and(i16x8.shr_u(e, 4), m4), xh));
      xl = v128.load32_splat(q + 12); xh = v128.load32_splat(q + 28);
      a = v128.load(p + 24); e = v128.load(p + bs + 24);
      sA = i16x8.add(sA, i16x8.add(dot16(v128.and(a, m4), xl), dot16(v128.and(i16x8.shr_u(a, 4), m4), xh)));
      sB = i16x8.add(sB, i16x8.add(dot16(v128.and(e, m4), xl), dot16(v128.and(i16x8.shr_u(e, 4), m4), xh)));
      xl = v128.load32_splat(q + 16); xh = v128.load32_splat(q + 32);
      a = v128.load(p + 40); e = v128.load(p + bs + 40);
      sA = i16x8.add(sA, i16x8.add(dot16(v128.and(a, m4), xl), dot16(v128.and(i16x8.shr_u(a, 4), m4), xh)));
      sB = i16x8.add(sB, i16x8.add(dot16(v128.and(e, m4), xl), dot16(v128.and(i16x8.shr_u(e, 4), m4), xh)));
      xl = v128.load32_splat(q + 20); xh = v128.load32_splat(q + 36);
      a = v128.load(p + 56); e = v128.load(p + bs + 56);
      sA = i16x8.add(sA, i16x8.add(dot16(v128.and(a, m4), xl), dot16(v128.and(i16x8.shr_u(a, 4), m4), xh)));
      sB = i16x8.add(sB, i16x8.add(dot16(v128.and(e, m4), xl), dot16(v128.and(i16x8.shr_u(e, 4), m4), xh)));
      const s8 = i32x4.mul(v128.load32_splat(q + 4), k8), da = v128.load32_splat(q);
      c0 = f32x4.add(c0, f32x4.mul(f32x4.mul(scalesMul(p, hmask, p112, k8192), da), f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(sA, ones16), s8))));
      c1 = f32x4.add(c1, f32x4.mul(f32x4.mul(scalesMul(p + bs, hmask, p112, k8192), da), f32x4.convert_i32x4_s(i32x4.sub(i32x4.dot_i16x8_s(sB, ones16), s8))));
      p += QB;
      q += Q8_S_BYTES;
    }
    v128.store(out + (<usize> g << 4), c0);
    v128.store(out + (<usize> g << 4) + os, c1);
  }
}
