/**
 * Where the compiled kernels come from. In a source checkout they are the
 * files `npm install` built into build/; the single-file bundle replaces this
 * module with one that inlines them (scripts/build-bundle.mjs).
 */
export type KernelVariant = "simd" | "relaxed" | "simd-shared" | "relaxed-shared";

export async function kernelBytes(variant: KernelVariant): Promise<Uint8Array> {
  const url = new URL(`../../build/kvasm-${variant}.wasm`, import.meta.url);
  const { readFileSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  try {
    return readFileSync(fileURLToPath(url));
  } catch (e) {
    throw new Error(`kernel build ${url.pathname} is missing: run \`npm install\` (or \`npm run build:kernels\`) first`, { cause: e });
  }
}
