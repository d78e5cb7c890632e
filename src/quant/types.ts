/** Which ggml weight types kvasm runs, and the error for the rest. */
import { UnsupportedError } from "../errors.ts";
import { GGMLType, type GGMLTypeId, ggmlTypeName } from "../formats/ggml-types.ts";

/** Weight types with a matmul kernel: F32/F16 (assembly/f32.ts) and the quantized ones (assembly/quant.ts). */
const SUPPORTED_WEIGHT_TYPES: ReadonlySet<GGMLTypeId> = new Set([
  GGMLType.F32,
  GGMLType.F16,
  GGMLType.BF16,
  GGMLType.Q8_0,
  GGMLType.Q4_0,
  GGMLType.Q4_1,
  GGMLType.Q5_0,
  GGMLType.Q5_1,
  GGMLType.Q2_K,
  GGMLType.Q3_K,
  GGMLType.Q4_K,
  GGMLType.Q5_K,
  GGMLType.Q6_K,
]);

/** Throws UnsupportedError naming the tensor and its type (IQ*, TQ*, ...) unless kvasm can run it. */
export function assertSupportedWeightType(type: GGMLTypeId, tensorName: string): void {
  if (!SUPPORTED_WEIGHT_TYPES.has(type)) {
    throw new UnsupportedError(
      `tensor "${tensorName}" has type ${ggmlTypeName(type)}, which kvasm does not run ` +
        `(supported: ${[...SUPPORTED_WEIGHT_TYPES].map(ggmlTypeName).join(", ")})`,
    );
  }
}
