// AssemblyScript, compiled by bench/q4_0-tile.bench.ts (relaxed SIMD): Q4_0 lanes-layout tiles for T > 1
// and one-quad T = 1 steps, in one small module (a few seconds to build on a quiet host), against the kernels as built
// (matmul_q4_0, matmul_q4_0_lanes). bo, t2, t6, t8: T > 1 only; g1: T = 1 only (it reads activation row 0).
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
