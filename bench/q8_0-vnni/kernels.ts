// AssemblyScript, compiled by bench/q8_0-vnni.bench.ts (relaxed or plain SIMD): Q8_0's lanes kernels in both
// forms on one module, so that new and old run in the same process over the same activations, and candidates of
// the VNNI form (cand_*; the tile shapes measured on 2026-12-05 are listed at TILE_ROWS in lanes-q8_0-vnni-steps.ts).
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
import { quads } from "../../assembly/lanes-q8_0-vnni-steps";
export { matmul_q8_0, quantize_q8_s } from "../../assembly/quant";
export { matmul_q8_0_lanes, repack_q8_0_lanes } from "../../assembly/lanes-q8_0";
export { matmul_q8_0_vnni, repack_q8_0_vnni } from "../../assembly/lanes-q8_0-vnni";

/**
 * Candidate: every T through the T = 1 pass (four quads from four bands x one activation row), each activation row
 * in turn: the weights stream from L2/L3 once per row instead of staying in L1 for a tile of rows (d a multiple of 16).
 */
export function cand_rows(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
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
