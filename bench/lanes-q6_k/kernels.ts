// AssemblyScript, compiled by bench/lanes-q6_k.bench.ts (relaxed or plain SIMD): Q6_K's natural, KX and lanes
// kernels in one small module (seconds to build). Not formatted by deno fmt (deno.json excludes this folder).
export { matmul_q6_k } from "../../assembly/quant-matmul";
export { dequantize_q6_k } from "../../assembly/quant-dequant";
export { quantize_q8_k, quantize_q8_kx } from "../../assembly/quant-act";
export { dequantize_q6_kx, matmul_q6_kx, repack_q6_kx } from "../../assembly/kquant-decode";
export { dequantize_q6_k_lanes, matmul_q6_k_lanes, matmul_q6_k_lanes_q1, repack_q6_k_lanes } from "../../assembly/lanes-q6_k";
