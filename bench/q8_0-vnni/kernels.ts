// AssemblyScript, compiled by bench/q8_0-vnni.bench.ts (relaxed or plain SIMD): Q8_0's lanes kernels in both
// forms on one module, so that new and old run in the same process over the same activations, and candidate
// T > 1 tile shapes of the VNNI form (cand_<quads>x<rows>: quads of weight rows x activation rows per tile).
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
import { tile, tileRows } from "../../assembly/lanes-q8_0-vnni-steps";
import { f16quad } from "../../assembly/lanes-q8_0-layout";
export { matmul_q8_0, quantize_q8_s } from "../../assembly/quant";
export { matmul_q8_0_lanes, repack_q8_0_lanes } from "../../assembly/lanes-q8_0";
export { matmul_q8_0_vnni, repack_q8_0_vnni } from "../../assembly/lanes-q8_0-vnni";

/** matmul_q8_0_vnni's T > 1 path with nq quads x R activation rows per tile (d a multiple of 4 nq; r0 = 0, r1 = d). */
// @ts-ignore: decorator
@inline function drive(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, nq: i32, R: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * 34, as: usize = <usize> nb * 40, od: usize = <usize> d << 2, qs: usize = ws << 2;
  for (let r = 0; r + 4 * nq <= d; r += 4 * nq) {
    const p = w + <usize> r * ws;
    for (let t = 0; t < T; t += R) {
      const o = out + <usize> t * od + (<usize> r << 2), x = xq + <usize> t * as;
      if (T - t >= R) tile(o, od, p, qs, x, as, nb, z, nq, R);
      else tileRows(o, od, p, qs, x, as, nb, z, nq, T - t);
    }
  }
}

export function cand_1x4(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  drive(out, xq, w, n, d, T, 1, 4);
}
export function cand_2x2(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  drive(out, xq, w, n, d, T, 2, 2);
}
function cand_2x3_unused(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  drive(out, xq, w, n, d, T, 2, 3);
}
function cand_1x3_unused(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  drive(out, xq, w, n, d, T, 1, 3);
}

/**
 * Candidate: the 2 quads x 2 rows tile with each activation row's 4-byte groups splatted by one-input shuffles of
 * 16-byte loads (2 loads per row and block instead of 8 load32_splat): fewer loads (and V8's bounds checks).
 */
// @ts-ignore: decorator
@inline function tileShuf(o: usize, od: usize, p: usize, qs: usize, q: usize, as: usize, nb: i32, z: i32): void {
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let f00 = f32x4.splat(0), f01 = f00, f10 = f00, f11 = f00;
  const q1 = q + as;
  for (let b: usize = 0; b < <usize> nb; b++) {
    const qo = b * 40, po = b * 136;
    let i00 = i32x4.splat(-(load<i32>(q + qo + 4) << 7)), i10 = i00;
    let i01 = i32x4.splat(-(load<i32>(q1 + qo + 4) << 7)), i11 = i01;
    for (let h: usize = 0; h < 2; h++) {
      const a0 = v128.load(q + qo + 8 + (h << 4)), a1 = v128.load(q1 + qo + 8 + (h << 4));
      const wo = p + po + 8 + (h << 6);
      let w0 = v128.load(wo), w1 = v128.load(wo + qs);
      let x = v128.shuffle<i32>(a0, a0, 0, 0, 0, 0);
      i00 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i00);
      i10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i10);
      x = v128.shuffle<i32>(a1, a1, 0, 0, 0, 0);
      i01 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i01);
      i11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i11);
      w0 = v128.load(wo + 16), w1 = v128.load(wo + qs + 16);
      x = v128.shuffle<i32>(a0, a0, 1, 1, 1, 1);
      i00 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i00);
      i10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i10);
      x = v128.shuffle<i32>(a1, a1, 1, 1, 1, 1);
      i01 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i01);
      i11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i11);
      w0 = v128.load(wo + 32), w1 = v128.load(wo + qs + 32);
      x = v128.shuffle<i32>(a0, a0, 2, 2, 2, 2);
      i00 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i00);
      i10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i10);
      x = v128.shuffle<i32>(a1, a1, 2, 2, 2, 2);
      i01 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i01);
      i11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i11);
      w0 = v128.load(wo + 48), w1 = v128.load(wo + qs + 48);
      x = v128.shuffle<i32>(a0, a0, 3, 3, 3, 3);
      i00 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i00);
      i10 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i10);
      x = v128.shuffle<i32>(a1, a1, 3, 3, 3, 3);
      i01 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w0, i01);
      i11 = i32x4.relaxed_dot_i8x16_i7x16_add_s(x, w1, i11);
    }
    const dw0 = f16quad(p + po, hmask, p112), dw1 = f16quad(p + qs + po, hmask, p112);
    let da = v128.load32_splat(q + qo);
    f00 = f32x4.add(f00, f32x4.mul(f32x4.mul(dw0, da), f32x4.convert_i32x4_s(i00)));
    f10 = f32x4.add(f10, f32x4.mul(f32x4.mul(dw1, da), f32x4.convert_i32x4_s(i10)));
    da = v128.load32_splat(q1 + qo);
    f01 = f32x4.add(f01, f32x4.mul(f32x4.mul(dw0, da), f32x4.convert_i32x4_s(i01)));
    f11 = f32x4.add(f11, f32x4.mul(f32x4.mul(dw1, da), f32x4.convert_i32x4_s(i11)));
  }
  v128.store(o, f00);
  v128.store(o + 16, f10);
  v128.store(o + od, f01);
  v128.store(o + od + 16, f11);
}

export function cand_2x2s(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * 34, as: usize = <usize> nb * 40, od: usize = <usize> d << 2, qs: usize = ws << 2;
  for (let r = 0; r + 8 <= d; r += 8) {
    const p = w + <usize> r * ws;
    for (let t = 0; t < T; t += 2) {
      const o = out + <usize> t * od + (<usize> r << 2), x = xq + <usize> t * as;
      if (T - t >= 2) tileShuf(o, od, p, qs, x, as, nb, z);
      else tileRows(o, od, p, qs, x, as, nb, z, 2, 1);
    }
  }
}
