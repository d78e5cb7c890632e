// AssemblyScript, compiled by bench/lanes-kquant.bench.ts (relaxed or plain SIMD): Q4_K's natural, KX and lanes
// kernels in one small module (seconds to build). Not formatted by deno fmt (deno.json excludes this folder).
export { matmul_q4_k } from "../../assembly/quant-matmul";
export { dequantize_q4_k } from "../../assembly/quant-dequant";
export { quantize_q8_k, quantize_q8_kx } from "../../assembly/quant-act";
export { dequantize_q4_kx, matmul_q4_kx, repack_q4_kx } from "../../assembly/kquant-decode";
export { dequantize_q4_k_lanes, matmul_q4_k_lanes, matmul_q4_k_lanes_q1, matmul_q4_k_lanes_u8, repack_q4_k_lanes } from "../../assembly/lanes-kquant";
