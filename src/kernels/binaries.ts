// src/kernels/ owns the compiled kernels: where their bytes come from (this file), the ABI they export (spec.ts), and
// instantiating the plain or relaxed SIMD build on a memory (wasm.ts).
/**
 * Where the compiled kernels come from. Run from source (a checkout, or the
 * package on JSR, which has no build/ directory to read files from) they are
 * modules: scripts/build-kernels.mjs writes each build/kvasm-X.wasm also as
 * build/kvasm-X.ts holding its bytes in base64, imported here on first use, so
 * they travel in the module graph wherever the source goes. The single-file
 * bundles replace this module with one that inlines the .wasm files
 * (scripts/build-bundle.mjs).
 */
import { decodeBase64 } from "./base64.ts";

export type KernelVariant = "simd" | "relaxed" | "simd-shared" | "relaxed-shared";

// static specifiers, so Deno, JSR and bundlers see every build in the module graph
const MODULES: Record<KernelVariant, () => Promise<{ WASM_BASE64: string }>> = {
  "simd": () => import("../../build/kvasm-simd.ts"),
  "relaxed": () => import("../../build/kvasm-relaxed.ts"),
  "simd-shared": () => import("../../build/kvasm-simd-shared.ts"),
  "relaxed-shared": () => import("../../build/kvasm-relaxed-shared.ts"),
};

export async function kernelBytes(variant: KernelVariant): Promise<Uint8Array> {
  let base64: string;
  try {
    base64 = (await MODULES[variant]()).WASM_BASE64;
  } catch (e) {
    throw new Error(`kernel build build/kvasm-${variant}.ts is missing: run \`npm install\` (or \`npm run build:kernels\`) first`, {
      cause: e,
    });
  }
  return decodeBase64(base64);
}
