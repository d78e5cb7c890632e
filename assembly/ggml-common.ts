// ggml's block layouts, as ggml-common.h declares them: type ids as stored in GGUF, elements per block and
// bytes per block. Every kernel file takes them from here; src/formats/ggml-types.ts is the one TypeScript
// mirror, and tests/kernel-spec.test.ts checks that the two agree. @inline, as the constants they replace were.

// type ids (enum ggml_type)
// @ts-ignore: decorator
@inline export const Q4_0: i32 = 2;
// @ts-ignore: decorator
@inline export const Q4_1: i32 = 3;
// @ts-ignore: decorator
@inline export const Q5_0: i32 = 6;
// @ts-ignore: decorator
@inline export const Q5_1: i32 = 7;
// @ts-ignore: decorator
@inline export const Q8_0: i32 = 8;
// @ts-ignore: decorator
@inline export const Q8_1: i32 = 9;
// @ts-ignore: decorator
@inline export const Q2_K: i32 = 10;
// @ts-ignore: decorator
@inline export const Q3_K: i32 = 11;
// @ts-ignore: decorator
@inline export const Q4_K: i32 = 12;
// @ts-ignore: decorator
@inline export const Q5_K: i32 = 13;
// @ts-ignore: decorator
@inline export const Q6_K: i32 = 14;
// @ts-ignore: decorator
@inline export const Q8_K: i32 = 15;
// @ts-ignore: decorator
@inline export const BF16: i32 = 30;

// elements per block: QK4_0 = QK4_1 = QK5_0 = QK5_1 = QK8_0 = QK8_1 = 32; every K-quant superblock 256
// @ts-ignore: decorator
@inline export const QK: i32 = 32;
// @ts-ignore: decorator
@inline export const QK_K: i32 = 256;

// bytes per block (sizeof(block_*))
// @ts-ignore: decorator
@inline export const Q4_0_BYTES: usize = 18; // f16 d, 16 bytes of nibbles
// @ts-ignore: decorator
@inline export const Q4_1_BYTES: usize = 20; // f16 d, f16 m, 16 bytes of nibbles
// @ts-ignore: decorator
@inline export const Q5_0_BYTES: usize = 22; // f16 d, 4 bytes of high bits, 16 bytes of nibbles
// @ts-ignore: decorator
@inline export const Q5_1_BYTES: usize = 24; // f16 d, f16 m, 4 bytes of high bits, 16 bytes of nibbles
// @ts-ignore: decorator
@inline export const Q8_0_BYTES: usize = 34; // f16 d, 32 int8
// @ts-ignore: decorator
@inline export const Q8_1_BYTES: usize = 36; // f16 d, f16 s (d * sum), 32 int8
// @ts-ignore: decorator
@inline export const Q2_K_BYTES: usize = 84; // 16 bytes of scales (scale | min << 4), 64 bytes of 2-bit values, f16 d, f16 dmin
// @ts-ignore: decorator
@inline export const Q3_K_BYTES: usize = 110; // 32 bytes of high bits, 64 bytes of 2-bit values, 12 bytes of scales, f16 d
// @ts-ignore: decorator
@inline export const Q4_K_BYTES: usize = 144; // f16 d, f16 dmin, 12 bytes of scales, 128 bytes of nibbles
// @ts-ignore: decorator
@inline export const Q5_K_BYTES: usize = 176; // f16 d, f16 dmin, 12 bytes of scales, 32 bytes of high bits, 128 bytes of nibbles
// @ts-ignore: decorator
@inline export const Q6_K_BYTES: usize = 210; // 128 bytes of low bits, 64 bytes of high bits, 16 int8 scales, f16 d
// @ts-ignore: decorator
@inline export const Q8_K_BYTES: usize = 292; // f32 d, 256 int8, 16 i16 bsums
// kvasm's activation format for Q4_0 and Q8_0 weights (not a ggml type; quantize_q8_s in quant-act.ts)
// @ts-ignore: decorator
@inline export const Q8_S_BYTES: usize = 40; // f32 d (Q8_0's f16 d, widened), i32 sum of the 32 int8, 32 int8
