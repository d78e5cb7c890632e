// Build-time switch: 1 in the relaxed-SIMD builds (scripts/build-kernels.mjs passes --use RELAXED=1).
// Kernels branch on it with `if (RELAXED)`, which the compiler folds away.
// @ts-ignore: decorator
@global @inline export const RELAXED: i32 = 0;
