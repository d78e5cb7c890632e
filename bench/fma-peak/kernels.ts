// AssemblyScript, compiled by bench/fma-peak.ts (a few seconds): the one-core ceiling of 128-bit multiply-adds, the
// rate the F32 matmuls are held against. Not formatted by deno fmt (it drops @inline decorators): deno.json excludes
// this folder.
import { madd } from "../../assembly/math";

/**
 * n steps of ten independent chains acc_i = x * c + acc_i (math.ts madd, the accumulator as the addend as in the
 * matmuls: one fused multiply-add in the relaxed build), four f32 lanes each: 80 flops a step. Ten chains cover
 * the latency of two FMA pipes (4 cycles each, 8 in flight); x * c = 2^-20 keeps every lane finite. Returns one
 * lane of the sum, so that no chain is dropped. z must be 0.
 */
export function fma_chains(n: i32, z: i32): f32 {
  // x and c from an opaque zero (z = 0 at every call): as v128.const operands V8 rematerializes them at each madd in
  // the loop, and the chains ran at 13-14 GFLOP/s in Deno against 52-54 with them held in registers (2026-12-05 20:35
  // UTC, a hand-assembled module of ten chains whose operands come from memory; 7.5 with them as constants, loaded)
  const x = f32x4.splat(<f32>0.5 + <f32>z), c = f32x4.splat(<f32>(1.0 / 524288.0) + <f32>z);
  let a0 = f32x4.splat(1), a1 = f32x4.splat(1.5), a2 = f32x4.splat(0.5), a3 = f32x4.splat(0.75);
  let a4 = f32x4.splat(1.25), a5 = f32x4.splat(0.625), a6 = f32x4.splat(0.875), a7 = f32x4.splat(1.125);
  let a8 = f32x4.splat(1.375), a9 = f32x4.splat(0.9375);
  for (let i = 0; i < n; i++) {
    a0 = madd(x, c, a0); a1 = madd(x, c, a1); a2 = madd(x, c, a2); a3 = madd(x, c, a3);
    a4 = madd(x, c, a4); a5 = madd(x, c, a5); a6 = madd(x, c, a6); a7 = madd(x, c, a7);
    a8 = madd(x, c, a8); a9 = madd(x, c, a9);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)));
  return f32x4.extract_lane(f32x4.add(s, f32x4.add(a8, a9)), 0);
}
