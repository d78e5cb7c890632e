/**
 * The kernel tables: for each quantized weight type, which activation format
 * llama.cpp's CPU backend pairs it with (ggml's vec_dot_type, or kvasm's Q8_S)
 * and the names of its kernels (src/kernels/spec.ts) over ggml's layout
 * (assembly/quant.ts and the files it re-exports), in llama.cpp's summation
 * order (GGML_ORDER_MATMUL), and over the layouts the WASM backend repacks
 * weights into at load (KX_KERNELS, LANES_KERNELS and lanesKernel's forms).
 */
import { UnsupportedError } from "../errors.ts";
import { GGMLType, type GGMLTypeId, ggmlTypeName } from "../formats/ggml-types.ts";
import type { DequantizeKernel, LanesDequantizeKernel, LanesRepackKernel, MatmulKernel, QuantizeKernel } from "../kernels/spec.ts";
import { actRowBytesOrUndefined, actTypeName, Q8_S, Q8_SN } from "./act-formats.ts";

/**
 * Whether the kernels run under JavaScriptCore (Bun), where some lanes kernels take other, bit-identical forms than
 * under V8 (Deno, Node): JavaScriptCore spills the four-quad steps' shared splats and lowers each constant vector
 * shift to four instructions (docs/cpu-performance.md). A measured choice per engine, not a probe: both engines run
 * both forms, and the bits are the same either way.
 */
export const JAVASCRIPTCORE = "Bun" in globalThis;

/** What a matmul over a weight needs: its activation format, the quantizer that writes it, the matmul. */
export interface MatmulKernels {
  type: GGMLTypeId;
  /** Q8_0, Q8_1, Q8_K, BF16, or kvasm's Q8_S or Q8_SN (act-formats.ts). */
  actType: GGMLTypeId;
  /** quantize_<act>(out, x, n, T) */
  quantize: QuantizeKernel;
  /** matmul_<type>(out, xq, w, n, d, T, r0, r1) */
  matmul: MatmulKernel;
}

/** A weight type's kernels over ggml's layout (or a row-local one: KX). */
export interface WeightKernel extends MatmulKernels {
  /** dequantize_<type>(out, w, n) */
  dequantize: DequantizeKernel;
}

const ACT_KERNEL: Record<number, QuantizeKernel> = {
  [GGMLType.Q8_0]: "quantize_q8_0",
  [Q8_S]: "quantize_q8_s",
  [GGMLType.Q8_1]: "quantize_q8_1",
  [GGMLType.Q8_K]: "quantize_q8_k",
  [GGMLType.BF16]: "quantize_bf16",
};

/** Weight types by kernel-name suffix: the spec's kernels matmul_<suffix> and dequantize_<suffix> (names checked by type). */
type WeightSuffix = "bf16" | "q8_0" | "q4_0" | "q4_1" | "q5_0" | "q5_1" | "q2_k" | "q3_k" | "q4_k" | "q5_k" | "q6_k";

function entry(type: GGMLTypeId, actType: GGMLTypeId, suffix: WeightSuffix): WeightKernel {
  return { type, actType, quantize: ACT_KERNEL[actType], matmul: `matmul_${suffix}`, dequantize: `dequantize_${suffix}` };
}

const TABLE = new Map<GGMLTypeId, WeightKernel>([
  [GGMLType.BF16, entry(GGMLType.BF16, GGMLType.BF16, "bf16")],
  // Q4_0 and Q8_0: ggml's Q8_0 values in kvasm's Q8_S blocks (f32 d, block sum), which save the matmuls work
  [GGMLType.Q8_0, entry(GGMLType.Q8_0, Q8_S, "q8_0")],
  [GGMLType.Q4_0, entry(GGMLType.Q4_0, Q8_S, "q4_0")],
  [GGMLType.Q4_1, entry(GGMLType.Q4_1, GGMLType.Q8_1, "q4_1")],
  [GGMLType.Q5_0, entry(GGMLType.Q5_0, GGMLType.Q8_0, "q5_0")],
  [GGMLType.Q5_1, entry(GGMLType.Q5_1, GGMLType.Q8_1, "q5_1")],
  [GGMLType.Q2_K, entry(GGMLType.Q2_K, GGMLType.Q8_K, "q2_k")],
  [GGMLType.Q3_K, entry(GGMLType.Q3_K, GGMLType.Q8_K, "q3_k")],
  [GGMLType.Q4_K, entry(GGMLType.Q4_K, GGMLType.Q8_K, "q4_k")],
  [GGMLType.Q5_K, entry(GGMLType.Q5_K, GGMLType.Q8_K, "q5_k")],
  [GGMLType.Q6_K, entry(GGMLType.Q6_K, GGMLType.Q8_K, "q6_k")],
]);

/**
 * Matmuls that sum in llama.cpp's x86 order (load option ggmlOrder), by weight
 * type: bit-identical to the CPU backend of the node-llama-cpp 3.22.1 build on
 * an AVX-512 (Zen 4) host, slower than the default kernels. Same arguments as
 * the default matmul of the type (F32 and F16 included: matmul_f32 / matmul_f16).
 */
export const GGML_ORDER_MATMUL: ReadonlyMap<GGMLTypeId, MatmulKernel> = new Map<GGMLTypeId, MatmulKernel>([
  [GGMLType.F32, "matmul_f32_ggml"], // vec_dot_f32 (T = 1), tinyBLAS (T >= 2)
  [GGMLType.F16, "matmul_f16_ggml"], // vec_dot_f16, tinyBLAS
  [GGMLType.BF16, "matmul_bf16_ggml"], // vec_dot_bf16 (AVX512-BF16 dot), tinyBLAS
  [GGMLType.Q8_0, "matmul_q8_0_ggml"], // vec_dot and tinyBLAS sum alike
  [GGMLType.Q4_0, "matmul_q4_0_ggml"], // repacked q4_0_8x8 gemv/gemm (rows % 8 != 0: vec_dot)
  [GGMLType.Q4_1, "matmul_q4_1_ggml"],
  [GGMLType.Q5_0, "matmul_q5_0_ggml"],
  [GGMLType.Q5_1, "matmul_q5_1_ggml"],
  [GGMLType.Q2_K, "matmul_q2_k_ggml"], // repacked q2_K_8x8 (rows % 8 != 0: vec_dot)
  [GGMLType.Q3_K, "matmul_q3_k_ggml"],
  [GGMLType.Q4_K, "matmul_q4_k_ggml"], // repacked q4_K_8x8 (rows % 8 != 0: vec_dot)
  [GGMLType.Q5_K, "matmul_q5_k_ggml"],
  [GGMLType.Q6_K, "matmul_q6_k_ggml"],
]);

/**
 * The kernels for a weight type under ggmlOrder: its GGML_ORDER_MATMUL over ggml's own activation
 * format (Q8_0 where the default kernels take Q8_S); undefined where there is no such matmul.
 */
export function ggmlOrderKernel(type: GGMLTypeId): WeightKernel | undefined {
  const matmul = GGML_ORDER_MATMUL.get(type), k = TABLE.get(type);
  if (!matmul || !k) return undefined;
  return k.actType === Q8_S ? { ...k, actType: GGMLType.Q8_0, quantize: ACT_KERNEL[GGMLType.Q8_0], matmul } : { ...k, matmul };
}

/**
 * Kernels over kvasm's own "KX" layout of a weight type (assembly/kquant-decode.ts), which the WASM
 * backend repacks weights into at load (`repack`) outside ggmlOrder: Q6_K, whose natural order needs a
 * scale splat per 16 weights, and Q4_K, one per 32. Same results as the natural kernels, bit for bit; activations are Q8_K
 * blocks in the matching order (quantize_q8_kx), so they are never shared with the natural Q8_K kernels.
 */
export const KX_KERNELS: ReadonlyMap<GGMLTypeId, WeightKernel & { repack: "repack_q6_kx" | "repack_q4_kx" }> = new Map([
  [GGMLType.Q6_K, {
    type: GGMLType.Q6_K,
    actType: GGMLType.Q8_K,
    quantize: "quantize_q8_kx",
    matmul: "matmul_q6_kx",
    dequantize: "dequantize_q6_kx",
    repack: "repack_q6_kx",
  }],
  [GGMLType.Q4_K, {
    type: GGMLType.Q4_K,
    actType: GGMLType.Q8_K,
    quantize: "quantize_q8_kx",
    matmul: "matmul_q4_kx",
    dequantize: "dequantize_q4_kx",
    repack: "repack_q4_kx",
  }],
]);

/**
 * Kernels over kvasm's cross-row "lanes" layouts (Weight.layout "lanes"), which the WASM backend repacks
 * weights into at load (`repack`) outside ggmlOrder, in preference to KX: `rowGroup` consecutive rows are
 * interleaved so that SIMD lane r of every integer dot product belongs to row r, and a block's sum needs no
 * cross-lane step. Rows past the last whole group keep ggml's layout, where `matmul` and `dequantize` read
 * them; `matmul` takes row ranges that start on a group boundary (the thread pool aligns its chunks to
 * `rowGroup`), and `dequantize` takes the weight's start and a row index. Same results as the natural
 * kernels, bit for bit, for any T and row range.
 */
export interface LanesKernel extends MatmulKernels {
  /** Consecutive rows the layout interleaves; the repack needs this many rows of scratch. */
  rowGroup: number;
  /** repack_<type>_lanes(w, n, d, tmp): in place, whole groups only. */
  repack: LanesRepackKernel;
  /** dequantize_<type>_lanes(out, w, n, row, d): row `row` of the weight at w. */
  dequantize: LanesDequantizeKernel;
}

export const LANES_KERNELS: ReadonlyMap<GGMLTypeId, LanesKernel> = new Map<GGMLTypeId, LanesKernel>([
  // assembly/lanes-q8_0.ts: quads of rows, 4 bytes of each per 16-byte vector; Q8_S activations, as matmul_q8_0
  [GGMLType.Q8_0, {
    type: GGMLType.Q8_0,
    actType: Q8_S,
    quantize: "quantize_q8_s",
    matmul: "matmul_q8_0_lanes",
    repack: "repack_q8_0_lanes",
    dequantize: "dequantize_q8_0_lanes",
    rowGroup: 4,
  }],
  // assembly/lanes-q4_0.ts: quads of rows, 4 qs bytes (8 nibbles) of each per 16-byte vector; Q8_S activations, as matmul_q4_0.
  // Bun takes matmul_q4_0_lanes_q1 (T = 1 one quad per pass, T > 1 tiles of two activation rows): JavaScriptCore spills the
  // four-quad step's shared splats and the 4-row tile (0.89-0.99x of matmul_q4_0; _q1 1.09-1.17x), where V8 runs those faster
  // (docs/cpu-performance.md "Q4_0 in the lanes layout"). Its steps take 8 Σa and the f16 scales by multiplies, not the
  // constant shifts JavaScriptCore lowers to four instructions each (1.07-1.10x at T = 1: "Decode under JavaScriptCore"). Bit-identical.
  [GGMLType.Q4_0, {
    type: GGMLType.Q4_0,
    actType: Q8_S,
    quantize: "quantize_q8_s",
    matmul: JAVASCRIPTCORE ? "matmul_q4_0_lanes_q1" : "matmul_q4_0_lanes",
    repack: "repack_q4_0_lanes",
    dequantize: "dequantize_q4_0_lanes",
    rowGroup: 4,
  }],
  // assembly/lanes-kquant.ts: quads of rows, 4 weights of each per 16-byte vector, scales and mins of 4 rows
  // decoded together; KX Q8_K activations, as matmul_q4_kx (so Q6_K's KX weights share them); the d % 4 last
  // rows are KX, not natural. Bun takes matmul_q4_k_lanes_q1 (T = 1 one quad per pass): JavaScriptCore spills the
  // four-quad step (0.65-0.77x of _q1), where V8 runs it 1.09-1.53x faster than _q1 (docs/cpu-performance.md "Q4_K decode"); its
  // scale pairs spread by one-input swizzles ("Decode under JavaScriptCore"). Where the
  // dot-add is an exact u8 x s8 dot (V8 with AVX-VNNI), lanesKernel gives Q4_K_U8_LANES instead. Bit-identical, all three.
  [GGMLType.Q4_K, {
    type: GGMLType.Q4_K,
    actType: GGMLType.Q8_K,
    quantize: "quantize_q8_kx",
    matmul: JAVASCRIPTCORE ? "matmul_q4_k_lanes_q1" : "matmul_q4_k_lanes",
    repack: "repack_q4_k_lanes",
    dequantize: "dequantize_q4_k_lanes",
    rowGroup: 4,
  }],
  // assembly/lanes-q6_k.ts: quads of rows, 4 weights of each per 16-byte vector (6 bits, KX's packing), the four rows'
  // scales as i16 pairs for pmaddwd; KX Q8_K activations, as matmul_q6_kx (shared with Q4_K); the d % 4 last rows are KX.
  // Bun takes matmul_q6_k_lanes_q1 (the same steps with the fourth chunk of each packed quad by byte averages: JavaScriptCore
  // lowers a constant vector shift to four instructions, pavgb to one): 1.04-1.06x of matmul_q6_k_lanes on the model's Q6_K
  // matmuls there, slower in V8 (docs/cpu-performance.md "Q6_K decode under JavaScriptCore"), and 32 x its scales by a
  // multiply ("Decode under JavaScriptCore"). Bit-identical.
  [GGMLType.Q6_K, {
    type: GGMLType.Q6_K,
    actType: GGMLType.Q8_K,
    quantize: "quantize_q8_kx",
    matmul: JAVASCRIPTCORE ? "matmul_q6_k_lanes_q1" : "matmul_q6_k_lanes",
    repack: "repack_q6_k_lanes",
    dequantize: "dequantize_q6_k_lanes",
    rowGroup: 4,
  }],
]);

/**
 * Q8_0's lanes layout in the VNNI form (assembly/lanes-q8_0-vnni.ts): the same interleave with the weight bytes offset
 * to unsigned (w + 128), so that one i32x4.relaxed_dot_i8x16_i7x16_add_s does what takes the signed form xor, sub,
 * pmaddubsw, pmaddwd and an add (Σa, in Q8_S, takes the offset back out); T > 1 in tiles of two quads x two activation
 * rows. Valid only where that op is an exact u8 x s8 dot (V8 with AVX-VNNI: one vpdpbusd; not JavaScriptCore, not V8
 * without AVX-VNNI), so the WASM backend takes it through lanesKernel, on the relaxed build, where dotAddIsExactU8S8()
 * holds. Bit-identical to matmul_q8_0 for weight bytes in -127..127 (docs/cpu-performance.md "Q8_0: the VNNI form").
 */
export const Q8_0_VNNI_LANES: LanesKernel = {
  type: GGMLType.Q8_0,
  actType: Q8_S,
  quantize: "quantize_q8_s",
  matmul: "matmul_q8_0_vnni",
  repack: "repack_q8_0_vnni",
  dequantize: "dequantize_q8_0_vnni",
  rowGroup: 4,
};

/**
 * Q4_K's lanes layout with T = 1 through the dot-add (assembly/lanes-kquant.ts, matmul_q4_k_lanes_u8): the same layout and
 * KX activations, each weight vector's high nibbles masked in place (16 x 0..15, exact only where the dot-add is a u8 x s8
 * dot), i32 sums per sub-block scaled by an i32 multiply; T > 1 as matmul_q4_k_lanes. Bit-identical (docs/cpu-performance.md "Q4_K decode
 * through the dot-add").
 */
const Q4_K_U8_LANES: LanesKernel = { ...LANES_KERNELS.get(GGMLType.Q4_K)!, matmul: "matmul_q4_k_lanes_u8" };

/**
 * Q8_0's signed lanes layout against Q8_SN activations (assembly/lanes-q8_0-nib.ts): for T >= 4 each activation byte
 * split into two planes of magnitude <= 8 and the weight bytes offset to unsigned in the tile, so that a block's
 * pmaddubsw pairs sum exactly in i16 (no sign moves, no widening per 16 bytes); T < 4 matmul_q8_0_lanes' pass. Bun's
 * Q8_0 form: in JavaScriptCore the tiles run 1.16-1.25x of matmul_q8_0_lanes at T = 16-128 (the prefill step
 * 1.14-1.17x), in V8 0.86-0.88x (docs/cpu-performance.md "Q8_0 in Bun: nibble activations"). Needs the relaxed i16 dot
 * to read its second operand unsigned (byteDotReadsUnsigned), so the WASM backend takes it through lanesKernel, on the
 * relaxed build, in Bun, where that holds. The same layout and dequantize as LANES_KERNELS' Q8_0, its repack storing a
 * -128 byte as -127 (so that the T < 4 pass and the tiles agree on it); bit-identical to matmul_q8_0 for weight bytes in
 * -127..127.
 */
export const Q8_0_NIB_LANES: LanesKernel = {
  ...LANES_KERNELS.get(GGMLType.Q8_0)!,
  actType: Q8_SN,
  quantize: "quantize_q8_sn",
  matmul: "matmul_q8_0_nib",
  repack: "repack_q8_0_nib",
};

/**
 * A weight type's lanes kernels: where the relaxed dot-add is an exact u8 x s8 dot (dotAddIsExactU8S8), Q8_0's VNNI form
 * and Q4_K's u8 kernel; for Q8_0 where `nibbleQ8_0` (Bun, and byteDotReadsUnsigned), Q8_0_NIB_LANES; else LANES_KERNELS'.
 */
export function lanesKernel(type: GGMLTypeId, dotAddExact: boolean, nibbleQ8_0 = false): LanesKernel | undefined {
  if (dotAddExact && type === GGMLType.Q8_0) return Q8_0_VNNI_LANES;
  if (dotAddExact && type === GGMLType.Q4_K) return Q4_K_U8_LANES;
  if (nibbleQ8_0 && type === GGMLType.Q8_0) return Q8_0_NIB_LANES;
  return LANES_KERNELS.get(type);
}

/** All quantized weight types with kernels (F32/F16 live in assembly/f32.ts). */
export const QUANT_WEIGHT_TYPES: readonly GGMLTypeId[] = [...TABLE.keys()];

/** The kernels for a weight type; UnsupportedError for F32/F16 (not here) and types kvasm does not run. */
export function weightKernel(type: GGMLTypeId): WeightKernel {
  const k = TABLE.get(type);
  if (!k) throw new UnsupportedError(`no quantized matmul kernel for ${ggmlTypeName(type)}`);
  return k;
}

/** Bytes of one quantized activation row of n elements (n must split into the act type's blocks). */
export function actRowBytes(actType: GGMLTypeId, n: number): number {
  const b = actRowBytesOrUndefined(actType, n);
  if (b === undefined) throw new UnsupportedError(`${actTypeName(actType)} activations need rows that split into blocks; got ${n}`);
  return b;
}
