// AssemblyScript, compiled by bench/q8_0-jsc.bench.ts (relaxed or plain SIMD): kvasm's Q8_0 matmul as built today
// (assembly/quant-gemm.ts), the same tile with its per-block reduction removed (timing only: wrong sums),
// and a candidate "lanes" layout in which no per-block reduction exists. Not formatted by deno fmt
// (it drops @inline decorators): deno.json excludes this folder.
import { gemm, gemv } from "../../assembly/quant-gemm";
import { dot16, f16x4 } from "../../assembly/quant-util";
import { Q8_0 } from "../../assembly/ggml-common";
export { quantize_q8_s } from "../../assembly/quant-act";

/** Today's kernel (matmul_q8_0's T = 1 and T > 1 paths). */
export function now(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const ws: usize = <usize> (n >> 5) * 34, as: usize = <usize> (n >> 5) * 40;
  if (T == 1) gemv(Q8_0, out, xq, w, n, 0, d, ws);
  else gemm(Q8_0, out, xq, w, n, d, T, 0, d, ws, as);
}

// @ts-ignore: decorator
@inline function flip(v: v128, m: v128): v128 {
  return i8x16.sub(v128.xor(v, m), m);
}

/**
 * The 4 x 4 tile's per-block step (q8_0Row) with reduce4i (six two-input i32 shuffles, three adds) replaced by
 * three adds: what the tile costs without its horizontal reduction. Its sums are wrong; it is only timed.
 */
// @ts-ignore: decorator
@inline function rowNoReduce(p0: usize, p1: usize, p2: usize, p3: usize, q: usize, dw: v128, ones16: v128): v128 {
  const x0 = v128.load(q + 8), x1 = v128.load(q + 24);
  const zero = i32x4.splat(0);
  const n0 = i8x16.lt_s(x0, zero), n1 = i8x16.lt_s(x1, zero);
  const u0 = i8x16.abs(x0), u1 = i8x16.abs(x1);
  const s0 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(v128.load(p0 + 2), n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(v128.load(p0 + 18), n1)), ones16));
  const s1 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(v128.load(p1 + 2), n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(v128.load(p1 + 18), n1)), ones16));
  const s2 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(v128.load(p2 + 2), n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(v128.load(p2 + 18), n1)), ones16));
  const s3 = i32x4.add(i32x4.dot_i16x8_s(dot16(u0, flip(v128.load(p3 + 2), n0)), ones16), i32x4.dot_i16x8_s(dot16(u1, flip(v128.load(p3 + 18), n1)), ones16));
  return f32x4.mul(f32x4.mul(dw, v128.load32_splat(q)), f32x4.convert_i32x4_s(i32x4.add(i32x4.add(s0, s1), i32x4.add(s2, s3))));
}

export function noReduce(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * 34, as: usize = <usize> nb * 40, od: usize = <usize> d << 2;
  const ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  for (let r = 0; r < d; r += 4) {
    const p0 = w + <usize> r * ws, p1 = p0 + ws, p2 = p1 + ws, p3 = p2 + ws;
    for (let t = 0; t < T; t += 4) {
      const q0 = xq + <usize> t * as, q1 = T > 1 ? q0 + as : q0, q2 = T > 1 ? q1 + as : q0, q3 = T > 1 ? q2 + as : q0;
      let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
      for (let b = 0; b < nb; b++) {
        const wo = <usize> b * 34, ao = <usize> b * 40;
        const dw = f16x4(p0 + wo, p1 + wo, p2 + wo, p3 + wo, hmask, p112);
        c0 = f32x4.add(c0, rowNoReduce(p0 + wo, p1 + wo, p2 + wo, p3 + wo, q0 + ao, dw, ones16));
        if (T == 1) continue;
        c1 = f32x4.add(c1, rowNoReduce(p0 + wo, p1 + wo, p2 + wo, p3 + wo, q1 + ao, dw, ones16));
        c2 = f32x4.add(c2, rowNoReduce(p0 + wo, p1 + wo, p2 + wo, p3 + wo, q2 + ao, dw, ones16));
        c3 = f32x4.add(c3, rowNoReduce(p0 + wo, p1 + wo, p2 + wo, p3 + wo, q3 + ao, dw, ones16));
      }
      const o = out + <usize> t * od + (<usize> r << 2);
      v128.store(o, c0);
      if (T == 1) continue;
      v128.store(o + od, c1);
      v128.store(o + 2 * od, c2);
      v128.store(o + 3 * od, c3);
    }
  }
}

/**
 * The "lanes" layout (repacked by the bench in JS): per 4 rows and block, the rows' four f16 scales (8 bytes),
 * then 8 vectors, vector g = elements 4g..4g+3 of rows 0, 1, 2, 3 (136 bytes = 4 x 34); relaxed build: row r's
 * four at bytes 4r..4r+3; plain build (its dot16 pairs bytes i and i + 8): at 2r, 2r + 1, 2r + 8, 2r + 9. Against the activation's
 * 4 elements splatted (load32_splat), i32 lane r of every dot belongs to row r: the block's exact integer sum
 * builds up in place, with no horizontal reduction; then the same f32 steps as q8_0Row, so the same bits.
 * Four quads (16 rows) per pass share the activation's abs and sign per group.
 */
// @ts-ignore: decorator
@inline function f16quad(p: usize, hmask: v128, p112: v128): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, 3), hmask), p112);
}

// @ts-ignore: decorator
@inline function band16(out: usize, q: usize, p0: usize, nb: i32, qs: usize, z: i32): void {
  const ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let i0 = zero, i1 = zero, i2 = zero, i3 = zero;
    for (let g: usize = 0; g < 8; g++) {
      // relaxed: the 4 activation bytes in every lane; plain (dot16 pairs bytes i and i + 8): bytes 0, 1 in the low half, 2, 3 in the high
      const x = RELAXED ? v128.load32_splat(q + 8 + (g << 2))
        : v128.shuffle<i8>(v128.load32_zero(q + 8 + (g << 2)), i32x4.splat(0), 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3);
      const u = i8x16.abs(x), m = i8x16.lt_s(x, zero);
      const o = p0 + 8 + (g << 4);
      i0 = i32x4.add(i0, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o), m)), ones16));
      i1 = i32x4.add(i1, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o + qs), m)), ones16));
      i2 = i32x4.add(i2, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o + 2 * qs), m)), ones16));
      i3 = i32x4.add(i3, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(o + 3 * qs), m)), ones16));
    }
    const da = v128.load32_splat(q);
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(f16quad(p0, hmask, p112), da), f32x4.convert_i32x4_s(i0)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(f16quad(p0 + qs, hmask, p112), da), f32x4.convert_i32x4_s(i1)));
    a2 = f32x4.add(a2, f32x4.mul(f32x4.mul(f16quad(p0 + 2 * qs, hmask, p112), da), f32x4.convert_i32x4_s(i2)));
    a3 = f32x4.add(a3, f32x4.mul(f32x4.mul(f16quad(p0 + 3 * qs, hmask, p112), da), f32x4.convert_i32x4_s(i3)));
    p0 += 136;
    q += 40;
  }
  v128.store(out, a0);
  v128.store(out + 16, a1);
  v128.store(out + 32, a2);
  v128.store(out + 48, a3);
}

/** The lanes layout's matmul (d a multiple of 16): every 16-row band against each activation row in turn. */
export function lanes(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const as: usize = <usize> nb * 40, od: usize = <usize> d << 2, qs: usize = <usize> nb * 136;
  for (let r = 0; r < d; r += 16) {
    for (let t = 0; t < T; t++) band16(out + <usize> t * od + (<usize> r << 2), xq + <usize> t * as, w + <usize> (r >> 2) * qs, nb, qs, z);
  }
}
