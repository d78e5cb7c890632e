// AssemblyScript, compiled by bench/q4_0-lanes.bench.ts (relaxed or plain SIMD): today's Q4_0 matmul (matmul_q4_0)
// beside the lanes layout's kernels (assembly/lanes-q4_0.ts), in one module, faster to compile than the whole build.
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
export { quantize_q8_s } from "../../assembly/quant-act";
export { matmul_q4_0 } from "../../assembly/quant-matmul";
export { dequantize_q4_0 } from "../../assembly/quant-dequant";
export { dequantize_q4_0_lanes, matmul_q4_0_lanes, matmul_q4_0_lanes_jsc, repack_q4_0_lanes } from "../../assembly/lanes-q4_0";
