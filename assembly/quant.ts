// Quantized kernels (ggml block formats). Owned by the quantization work.
//   quantize_<q8_0|q8_1|q8_k|bf16>(out, x, n, T)          activations, f32 -> blocks
//   matmul_<type>(out, xq, w, n, d, T, r0, r1)              W (d x n blocks) . xq (T rows)
//   dequantize_<type>(out, w, n)                            one row of blocks -> f32
export * from "./quant-act";
export * from "./quant-matmul";
export * from "./q8_0-ggml";
export * from "./legacy-ggml";
export * from "./repack-ggml";
export * from "./dense-ggml";
export * from "./kquant-ggml";
export * from "./quant-dequant";
export * from "./kquant-decode";
