import type { GGMLTypeId } from "../formats/ggml-types.ts";
import { QUANT_WEIGHT_TYPES, type WeightKernel, weightKernel } from "../quant/kernels.ts";

export type { WeightKernel };

/** The quantized weight kernels the WASM builds export (src/quant/kernels.ts), or undefined for types they lack. */
export function weightKernelFor(type: GGMLTypeId): WeightKernel | undefined {
  return QUANT_WEIGHT_TYPES.includes(type) ? weightKernel(type) : undefined;
}
