// The per-block steps of Q8_0's VNNI form (lanes-q8_0-vnni.ts has the why and the kernels): a T = 1 pass of four
// quads and a T > 1 tile of quads x activation rows. Not re-exported by index.ts (exported inline functions would
// become module exports): lanes-q8_0-vnni.ts and bench/q8_0-vnni/kernels.ts (tile shapes measured) import them.
import { Q8_S_BYTES } from "./ggml-common";
import { QB } from "./lanes-q8_0-layout";
import { blockAdd, f16quad } from "./quant-util";

/**
 * Activation rows of one T > 1 tile of two quads. Measured in V8 (bench/q8_0-vnni.bench.ts, 2026-12-05, T = 16 and
 * 128, 2048x768 and 768x2048, with load32_splat splats): 2 quads x 2 rows 1.41-1.54x matmul_q8_0_lanes, 2 x 4
 * 1.38-1.45x (16 chains and sums spill), 1 x 4 1.34-1.40x, 2 x 3 1.26-1.31x, 1 x 3 1.12-1.20x: every shape within
 * 10% of 80 GOP/s, so the tile's weight reuse is not what bounds it. The splats by shuffles (below) then gave
 * 1.02-1.15x more, at T = 1 as at T > 1.
 */
// @ts-ignore: decorator
@inline export const TILE_ROWS: i32 = 2;

/** A chain's next step, relaxed build: acc + per-lane sum of x_k w_k (x signed, w unsigned; one vpdpbusd where chosen). */
// @ts-ignore: decorator
@inline function dotAdd(x: v128, w: v128, acc: v128): v128 {
  return i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w, acc);
}

/** The chain's start for one activation block at q: -128 Σa in every lane (relaxed), so that it ends at isum. */
// @ts-ignore: decorator
@inline function chainStart(q: usize): v128 {
  return i32x4.splat(-(load<i32>(q + 4) << 7));
}

/** One quad's block (at p) against one activation block (at q), plain build: exact isum per row in lane r. */
// @ts-ignore: decorator
@inline function plainQuadSum(p: usize, q: usize): v128 {
  const bias = i8x16.splat(-128), zero = i32x4.splat(0);
  let lo = zero, hi = zero;
  for (let g: usize = 0; g < 8; g++) {
    const a = i16x8.extend_low_i8x16_s(v128.load32_splat(q + 8 + (g << 2)));
    const w = v128.xor(v128.load(p + 8 + (g << 4)), bias);
    lo = i32x4.add(lo, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w), a));
    hi = i32x4.add(hi, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w), a));
  }
  return i32x4.add(v128.shuffle<i32>(lo, hi, 0, 2, 4, 6), v128.shuffle<i32>(lo, hi, 1, 3, 5, 7));
}

/**
 * T = 1: nq (1 or 4, constant after inlining) quads at p0..p3 against one Q8_S activation row at q, each
 * quad's 4 outputs at o0..o3. Each 4-byte group of the activation is splatted once for the four quads, by a
 * one-input shuffle of a 16-byte load (two loads a block; eight load32_splat ran 0.87-0.92x); four independent
 * chains hide the dot-add's latency.
 */
// @ts-ignore: decorator
@inline export function quads(o0: usize, o1: usize, o2: usize, o3: usize, q: usize, p0: usize, p1: usize, p2: usize, p3: usize, nb: i32, z: i32, nq: i32): void {
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    let i0: v128, i1: v128, i2: v128, i3: v128;
    if (RELAXED) {
      i0 = chainStart(q);
      i1 = i0;
      i2 = i0;
      i3 = i0;
      for (let h: usize = 0; h < 2; h++) {
        // activation bytes 16h..16h+15: groups 4h..4h+3, weight vectors at 8 + 64h + 16k
        const a = v128.load(q + 8 + (h << 4)), o = 8 + (h << 6);
        let x = v128.shuffle<i32>(a, a, 0, 0, 0, 0);
        i0 = dotAdd(x, v128.load(p0 + o), i0);
        if (nq > 1) {
          i1 = dotAdd(x, v128.load(p1 + o), i1);
          i2 = dotAdd(x, v128.load(p2 + o), i2);
          i3 = dotAdd(x, v128.load(p3 + o), i3);
        }
        x = v128.shuffle<i32>(a, a, 1, 1, 1, 1);
        i0 = dotAdd(x, v128.load(p0 + o + 16), i0);
        if (nq > 1) {
          i1 = dotAdd(x, v128.load(p1 + o + 16), i1);
          i2 = dotAdd(x, v128.load(p2 + o + 16), i2);
          i3 = dotAdd(x, v128.load(p3 + o + 16), i3);
        }
        x = v128.shuffle<i32>(a, a, 2, 2, 2, 2);
        i0 = dotAdd(x, v128.load(p0 + o + 32), i0);
        if (nq > 1) {
          i1 = dotAdd(x, v128.load(p1 + o + 32), i1);
          i2 = dotAdd(x, v128.load(p2 + o + 32), i2);
          i3 = dotAdd(x, v128.load(p3 + o + 32), i3);
        }
        x = v128.shuffle<i32>(a, a, 3, 3, 3, 3);
        i0 = dotAdd(x, v128.load(p0 + o + 48), i0);
        if (nq > 1) {
          i1 = dotAdd(x, v128.load(p1 + o + 48), i1);
          i2 = dotAdd(x, v128.load(p2 + o + 48), i2);
          i3 = dotAdd(x, v128.load(p3 + o + 48), i3);
        }
      }
    } else {
      i0 = plainQuadSum(p0, q);
      i1 = nq > 1 ? plainQuadSum(p1, q) : i0;
      i2 = nq > 1 ? plainQuadSum(p2, q) : i0;
      i3 = nq > 1 ? plainQuadSum(p3, q) : i0;
    }
    const da = v128.load32_splat(q);
    a0 = blockAdd(a0, f16quad(p0, hmask, p112), da, i0);
    p0 += QB;
    if (nq > 1) {
      a1 = blockAdd(a1, f16quad(p1, hmask, p112), da, i1);
      a2 = blockAdd(a2, f16quad(p2, hmask, p112), da, i2);
      a3 = blockAdd(a3, f16quad(p3, hmask, p112), da, i3);
      p1 += QB;
      p2 += QB;
      p3 += QB;
    }
    q += Q8_S_BYTES;
  }
  v128.store(o0, a0);
  if (nq > 1) {
    v128.store(o1, a1);
    v128.store(o2, a2);
    v128.store(o3, a3);
  }
}

/**
 * T > 1: one or two adjacent quads (nq, constant; the second at p + qs) x one or two activation rows (nr, constant;
 * at q and q + as): each weight vector loaded once for both rows, each activation group splatted (by a shuffle, as
 * in quads) once for both quads, the quads' f16 scales converted once per block for both rows. Outputs: row t's at
 * o + t * od, the second quad's 16 bytes on. Live vectors: 4 chains, 4 f32 sums, 2 weights, 2 activation loads, a
 * splat, 2 constants (V8 has 16 xmm registers).
 */
// @ts-ignore: decorator
@inline export function tile(o: usize, od: usize, p: usize, qs: usize, q: usize, as: usize, nb: i32, z: i32, nq: i32, nr: i32): void {
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let f00 = f32x4.splat(0), f01 = f00, f10 = f00, f11 = f00;
  const q1 = q + as;
  for (let b: usize = 0; b < <usize> nb; b++) {
    const qo = b * Q8_S_BYTES, po = b * QB;
    let i00: v128, i01: v128, i10: v128, i11: v128;
    if (RELAXED) {
      i00 = chainStart(q + qo);
      i10 = i00;
      i01 = nr > 1 ? chainStart(q1 + qo) : i00;
      i11 = i01;
      for (let h: usize = 0; h < 2; h++) {
        const a0 = v128.load(q + qo + 8 + (h << 4)), a1 = nr > 1 ? v128.load(q1 + qo + 8 + (h << 4)) : a0;
        const wo = p + po + 8 + (h << 6);
        let w0 = v128.load(wo), w1 = nq > 1 ? v128.load(wo + qs) : w0;
        let x = v128.shuffle<i32>(a0, a0, 0, 0, 0, 0);
        i00 = dotAdd(x, w0, i00);
        if (nq > 1) i10 = dotAdd(x, w1, i10);
        if (nr > 1) {
          x = v128.shuffle<i32>(a1, a1, 0, 0, 0, 0);
          i01 = dotAdd(x, w0, i01);
          if (nq > 1) i11 = dotAdd(x, w1, i11);
        }
        w0 = v128.load(wo + 16);
        if (nq > 1) w1 = v128.load(wo + qs + 16);
        x = v128.shuffle<i32>(a0, a0, 1, 1, 1, 1);
        i00 = dotAdd(x, w0, i00);
        if (nq > 1) i10 = dotAdd(x, w1, i10);
        if (nr > 1) {
          x = v128.shuffle<i32>(a1, a1, 1, 1, 1, 1);
          i01 = dotAdd(x, w0, i01);
          if (nq > 1) i11 = dotAdd(x, w1, i11);
        }
        w0 = v128.load(wo + 32);
        if (nq > 1) w1 = v128.load(wo + qs + 32);
        x = v128.shuffle<i32>(a0, a0, 2, 2, 2, 2);
        i00 = dotAdd(x, w0, i00);
        if (nq > 1) i10 = dotAdd(x, w1, i10);
        if (nr > 1) {
          x = v128.shuffle<i32>(a1, a1, 2, 2, 2, 2);
          i01 = dotAdd(x, w0, i01);
          if (nq > 1) i11 = dotAdd(x, w1, i11);
        }
        w0 = v128.load(wo + 48);
        if (nq > 1) w1 = v128.load(wo + qs + 48);
        x = v128.shuffle<i32>(a0, a0, 3, 3, 3, 3);
        i00 = dotAdd(x, w0, i00);
        if (nq > 1) i10 = dotAdd(x, w1, i10);
        if (nr > 1) {
          x = v128.shuffle<i32>(a1, a1, 3, 3, 3, 3);
          i01 = dotAdd(x, w0, i01);
          if (nq > 1) i11 = dotAdd(x, w1, i11);
        }
      }
    } else {
      i00 = plainQuadSum(p + po, q + qo);
      i10 = nq > 1 ? plainQuadSum(p + qs + po, q + qo) : i00;
      i01 = nr > 1 ? plainQuadSum(p + po, q1 + qo) : i00;
      i11 = nr > 1 && nq > 1 ? plainQuadSum(p + qs + po, q1 + qo) : i00;
    }
    const dw0 = f16quad(p + po, hmask, p112);
    const dw1 = nq > 1 ? f16quad(p + qs + po, hmask, p112) : dw0;
    let da = v128.load32_splat(q + qo);
    f00 = blockAdd(f00, dw0, da, i00);
    if (nq > 1) f10 = blockAdd(f10, dw1, da, i10);
    if (nr > 1) {
      da = v128.load32_splat(q1 + qo);
      f01 = blockAdd(f01, dw0, da, i01);
      if (nq > 1) f11 = blockAdd(f11, dw1, da, i11);
    }
  }
  v128.store(o, f00);
  if (nq > 1) v128.store(o + 16, f10);
  if (nr > 1) {
    v128.store(o + od, f01);
    if (nq > 1) v128.store(o + od + 16, f11);
  }
}

/** One tile of nq (constant) quads x nr (1 or 2, from T) activation rows, the row count dispatched to a constant. */
// @ts-ignore: decorator
@inline export function tileRows(o: usize, od: usize, p: usize, qs: usize, q: usize, as: usize, nb: i32, z: i32, nq: i32, nr: i32): void {
  if (nr >= 2) tile(o, od, p, qs, q, as, nb, z, nq, 2);
  else tile(o, od, p, qs, q, as, nb, z, nq, 1);
}
