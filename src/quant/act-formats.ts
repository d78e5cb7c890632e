/**
 * kvasm's own activation formats, beside ggml's (Q8_0, Q8_1, Q8_K, BF16: src/formats/ggml-types.ts).
 * They are what a quantize_* kernel writes into matmul scratch, never a tensor in a file, so their
 * ids lie outside GGUF's type ids.
 */
import { blockGeometry, type GGMLTypeId, ggmlTypeName, rowBytes } from "../formats/ggml-types.ts";

/**
 * Q8_S, for Q4_0 and Q8_0 weights in the default mode (assembly/quant-act.ts quantize_q8_s):
 * {f32 d; i32 sum; i8 qs[32]}, 40 bytes per 32 elements. d and qs are quantize_q8_0's (d rounded
 * to f16, then widened), so the matmuls' products and sums are those over Q8_0 blocks; the f32 d
 * and the block sum save them a conversion and (Q4_0) the sum behind its -8 offset per block.
 */
export const Q8_S: GGMLTypeId = 0x108;

/**
 * Q8_SN, for Q8_0 weights in Bun's lanes form (assembly/lanes-q8_0-nib.ts quantize_q8_sn): each row is its Q8_S blocks,
 * then per block the values split into two signed planes of magnitude <= 8 (a = 16 ah + al), each 4-byte group
 * repeated four times, and the block's -128 Σa and d as four lanes each: 40 + 288 bytes per 32 elements. The matmul
 * takes the planes for T >= 4, the Q8_S blocks else.
 */
export const Q8_SN: GGMLTypeId = 0x109;

const ACT_BLOCK: Record<number, readonly [number, number]> = { [Q8_S]: [32, 40], [Q8_SN]: [32, 328] };

/** [elements per block, bytes per block] of an activation format: kvasm's or a ggml type's. */
export function actBlockGeometry(t: GGMLTypeId): readonly [number, number] | undefined {
  return ACT_BLOCK[t] ?? blockGeometry(t);
}

/** Bytes of one activation row of n elements; undefined when n does not split into whole blocks. */
export function actRowBytesOrUndefined(t: GGMLTypeId, n: number): number | undefined {
  const g = ACT_BLOCK[t];
  if (!g) return rowBytes(t, n);
  return n % g[0] === 0 ? (n / g[0]) * g[1] : undefined;
}

/** The name of an activation format, for messages. */
export function actTypeName(t: GGMLTypeId): string {
  return t === Q8_S ? "Q8_S" : t === Q8_SN ? "Q8_SN" : ggmlTypeName(t);
}
