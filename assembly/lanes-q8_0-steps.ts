// The per-block step of Q8_0's signed lanes kernel (lanes-q8_0.ts has the why and the layout), shared with
// matmul_q8_0_nib (lanes-q8_0-nib.ts), which runs it for T < 4. Not re-exported by index.ts (exported inline
// functions would become module exports).
import { blockAdd, dot16, f16quad } from "./quant-util";
import { Q8_S_BYTES } from "./ggml-common";
import { QB } from "./lanes-q8_0-layout";

/** v with the sign of the bytes whose mask m is all ones flipped (v ^ m) - m. */
// @ts-ignore: decorator
@inline function flip(v: v128, m: v128): v128 {
  return i8x16.sub(v128.xor(v, m), m);
}

/** Row r's block sum in lane r: lo holds rows 0, 1 and hi rows 2, 3, two partials each (the plain build's dots). */
// @ts-ignore: decorator
@inline function pairs(lo: v128, hi: v128): v128 {
  return i32x4.add(v128.shuffle<i32>(lo, hi, 0, 2, 4, 6), v128.shuffle<i32>(lo, hi, 1, 3, 5, 7));
}

/**
 * nq (1 or 4, constant after inlining) quads at p0..p3 (p1..p3 unused when nq is 1) against one Q8_S
 * activation row at q: each quad's 4 outputs at o0..o3.
 */
// @ts-ignore: decorator
@inline export function quads(o0: usize, o1: usize, o2: usize, o3: usize, q: usize, p0: usize, p1: usize, p2: usize, p3: usize, nb: i32, z: i32, nq: i32): void {
  const ones16 = i16x8.splat(<i16> (1 + z));
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    const zero = i32x4.splat(0);
    let i0 = zero, i1 = zero, i2 = zero, i3 = zero;
    if (RELAXED) {
      for (let g: usize = 0; g < 8; g++) {
        // the 4 activation bytes in every i32 lane: magnitudes for pmaddubsw's unsigned side, signs onto the weights
        const x = v128.load32_splat(q + 8 + (g << 2));
        const u = i8x16.abs(x), m = i8x16.lt_s(x, zero);
        const o = 8 + (g << 4);
        i0 = i32x4.add(i0, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p0 + o), m)), ones16));
        if (nq > 1) {
          i1 = i32x4.add(i1, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p1 + o), m)), ones16));
          i2 = i32x4.add(i2, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p2 + o), m)), ones16));
          i3 = i32x4.add(i3, i32x4.dot_i16x8_s(dot16(u, flip(v128.load(p3 + o), m)), ones16));
        }
      }
    } else {
      // plain SIMD has no byte dot product: both sides widen to i16 (signed, so no sign moves), the activation's
      // 4 values twice; pmaddwd then leaves rows 0, 1 (low half) and 2, 3 (high half) two i32 partials each,
      // paired once per block (exact integers: the order of the additions cannot change the block sum)
      let h0 = zero, h1 = zero, h2 = zero, h3 = zero;
      for (let g: usize = 0; g < 8; g++) {
        const a = i16x8.extend_low_i8x16_s(v128.load32_splat(q + 8 + (g << 2)));
        const o = 8 + (g << 4);
        const w0 = v128.load(p0 + o);
        i0 = i32x4.add(i0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w0), a));
        h0 = i32x4.add(h0, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w0), a));
        if (nq > 1) {
          const w1 = v128.load(p1 + o), w2 = v128.load(p2 + o), w3 = v128.load(p3 + o);
          i1 = i32x4.add(i1, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w1), a));
          h1 = i32x4.add(h1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w1), a));
          i2 = i32x4.add(i2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w2), a));
          h2 = i32x4.add(h2, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w2), a));
          i3 = i32x4.add(i3, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w3), a));
          h3 = i32x4.add(h3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w3), a));
        }
      }
      i0 = pairs(i0, h0);
      if (nq > 1) {
        i1 = pairs(i1, h1);
        i2 = pairs(i2, h2);
        i3 = pairs(i3, h3);
      }
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
