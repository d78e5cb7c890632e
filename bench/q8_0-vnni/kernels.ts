// AssemblyScript, compiled by bench/q8_0-vnni.bench.ts (relaxed or plain SIMD): Q8_0's lanes kernels in both
// forms on one module, so that new and old run in the same process over the same activations, and candidate
// T > 1 tile shapes of the VNNI form (cand_<quads>x<rows>: quads of weight rows x activation rows per tile).
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
import { tile, tileRows } from "../../assembly/lanes-q8_0-vnni-steps";
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
export function cand_2x3(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  drive(out, xq, w, n, d, T, 2, 3);
}
export function cand_1x3(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  drive(out, xq, w, n, d, T, 1, 3);
}
