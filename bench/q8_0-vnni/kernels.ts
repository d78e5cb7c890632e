// AssemblyScript, compiled by bench/q8_0-vnni.bench.ts (relaxed or plain SIMD): Q8_0's lanes kernels in both
// forms on one module, so that new and old run in the same process over the same activations, and candidates of
// the VNNI form (cand_*; the tile shapes measured on 2026-12-05 are listed at TILE_ROWS in lanes-q8_0-vnni-steps.ts).
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
import { quads } from "../../assembly/lanes-q8_0-vnni-steps";
import { dot16, f16quad } from "../../assembly/quant-util";
export { matmul_q8_0, quantize_q8_s } from "../../assembly/quant";
export { matmul_q8_0_lanes, repack_q8_0_lanes } from "../../assembly/lanes-q8_0";
export { matmul_q8_0_vnni, repack_q8_0_vnni } from "../../assembly/lanes-q8_0-vnni";

/**
 * Candidate: every T through the T = 1 pass (four quads from four bands x one activation row), each activation row
 * in turn: the weights stream from L2/L3 once per row instead of staying in L1 for a tile of rows (d a multiple of 16).
 */
function cand_rows_unused(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * 34, as: usize = <usize> nb * 40, od: usize = <usize> d << 2;
  const q = d >> 4, bs: usize = <usize> q * (ws << 2), bo: usize = <usize> q << 4;
  for (let t = 0; t < T; t++) {
    for (let g = 0; g < q; g++) {
      const r = g << 2, p = w + <usize> r * ws, o = out + <usize> t * od + (<usize> r << 2);
      quads(o, o + bo, o + 2 * bo, o + 3 * bo, xq + <usize> t * as, p, p + bs, p + 2 * bs, p + 3 * bs, nb, z, 4);
    }
  }
}

/**
 * Candidate for JavaScriptCore, signed form (matmul_q8_0_lanes' bytes and integer steps): T > 1 in tiles of one quad x
 * two activation rows (12 live vectors; the four-quad pass keeps about 16, which JavaScriptCore spills).
 */
// @ts-ignore: decorator
@inline function signedTile(o: usize, od: usize, p: usize, q: usize, as: usize, nb: i32, z: i32, nr: i32): void {
  const ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let f0 = f32x4.splat(0), f1 = f0;
  const q1 = q + as;
  for (let b: usize = 0; b < <usize> nb; b++) {
    const qo = b * 40, po = b * 136;
    const zero = i32x4.splat(0);
    let i0 = zero, i1 = zero;
    for (let g: usize = 0; g < 8; g++) {
      const w = v128.load(p + po + 8 + (g << 4));
      let x = v128.load32_splat(q + qo + 8 + (g << 2));
      let m = i8x16.lt_s(x, zero);
      i0 = i32x4.add(i0, i32x4.dot_i16x8_s(dot16(i8x16.abs(x), i8x16.sub(v128.xor(w, m), m)), ones16));
      if (nr > 1) {
        x = v128.load32_splat(q1 + qo + 8 + (g << 2));
        m = i8x16.lt_s(x, zero);
        i1 = i32x4.add(i1, i32x4.dot_i16x8_s(dot16(i8x16.abs(x), i8x16.sub(v128.xor(w, m), m)), ones16));
      }
    }
    const dw = f16quad(p + po, hmask, p112);
    f0 = f32x4.add(f0, f32x4.mul(f32x4.mul(dw, v128.load32_splat(q + qo)), f32x4.convert_i32x4_s(i0)));
    if (nr > 1) f1 = f32x4.add(f1, f32x4.mul(f32x4.mul(dw, v128.load32_splat(q1 + qo)), f32x4.convert_i32x4_s(i1)));
  }
  v128.store(o, f0);
  if (nr > 1) v128.store(o + od, f1);
}

/** matmul_q8_0_lanes' T > 1 with signedTile: each quad over all T rows, two at a time (weights at WL; d % 4 == 0). */
function cand_s12_unused(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * 34, as: usize = <usize> nb * 40, od: usize = <usize> d << 2;
  for (let r = 0; r + 4 <= d; r += 4) {
    const p = w + <usize> r * ws;
    for (let t = 0; t < T; t += 2) {
      const o = out + <usize> t * od + (<usize> r << 2), x = xq + <usize> t * as;
      if (T - t >= 2) signedTile(o, od, p, x, as, nb, z, 2);
      else signedTile(o, od, p, x, as, nb, z, 1);
    }
  }
}

/**
 * Candidate for every engine, signed form: matmul_q8_0_lanes' four-quad pass with each pmaddubsw + pmaddwd + add as one
 * i32x4.relaxed_dot_i8x16_i7x16_add_s(flipped weights, |a|, acc). Its 7-bit operand is |a| <= 127, where the relaxed
 * op is exact in every engine (pairs of at most 2 x 127 x 127 fit i16), so the sums stay matmul_q8_0_lanes'.
 */
// @ts-ignore: decorator
@inline function signedQuadsDot(o0: usize, o1: usize, o2: usize, o3: usize, q: usize, p0: usize, p1: usize, p2: usize, p3: usize, nb: i32, z: i32): void {
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let i0 = zero, i1 = zero, i2 = zero, i3 = zero;
    for (let g: usize = 0; g < 8; g++) {
      const x = v128.load32_splat(q + 8 + (g << 2));
      const u = i8x16.abs(x), m = i8x16.lt_s(x, zero);
      const o = 8 + (g << 4);
      i0 = i32x4.relaxed_dot_i8x16_i7x16_add_s(i8x16.sub(v128.xor(v128.load(p0 + o), m), m), u, i0);
      i1 = i32x4.relaxed_dot_i8x16_i7x16_add_s(i8x16.sub(v128.xor(v128.load(p1 + o), m), m), u, i1);
      i2 = i32x4.relaxed_dot_i8x16_i7x16_add_s(i8x16.sub(v128.xor(v128.load(p2 + o), m), m), u, i2);
      i3 = i32x4.relaxed_dot_i8x16_i7x16_add_s(i8x16.sub(v128.xor(v128.load(p3 + o), m), m), u, i3);
    }
    const da = v128.load32_splat(q);
    a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(f16quad(p0, hmask, p112), da), f32x4.convert_i32x4_s(i0)));
    a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(f16quad(p1, hmask, p112), da), f32x4.convert_i32x4_s(i1)));
    a2 = f32x4.add(a2, f32x4.mul(f32x4.mul(f16quad(p2, hmask, p112), da), f32x4.convert_i32x4_s(i2)));
    a3 = f32x4.add(a3, f32x4.mul(f32x4.mul(f16quad(p3, hmask, p112), da), f32x4.convert_i32x4_s(i3)));
    p0 += 136;
    p1 += 136;
    p2 += 136;
    p3 += 136;
    q += 40;
  }
  v128.store(o0, a0);
  v128.store(o1, a1);
  v128.store(o2, a2);
  v128.store(o3, a3);
}

/** matmul_q8_0_lanes' loop (four bands, activation rows in gemm's L1 chunks) over signedQuadsDot (d a multiple of 16). */
export function cand_sdot(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * 34, as: usize = <usize> nb * 40, od: usize = <usize> d << 2;
  const q = d >> 4, bs: usize = <usize> q * (ws << 2), bo: usize = <usize> q << 4;
  const chunk = T == 1 ? 1 : max(4, <i32> (16384 / as) & ~3);
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = min(T, t0 + chunk);
    for (let g = 0; g < q; g++) {
      const r = g << 2, p = w + <usize> r * ws;
      for (let t = t0; t < t1; t++) {
        const o = out + <usize> t * od + (<usize> r << 2);
        signedQuadsDot(o, o + bo, o + 2 * bo, o + 3 * bo, xq + <usize> t * as, p, p + bs, p + 2 * bs, p + 3 * bs, nb, z);
      }
    }
  }
}
