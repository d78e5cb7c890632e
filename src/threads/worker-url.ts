/**
 * Where the pool's Worker script is. In a source checkout it is worker.ts
 * beside this file (Deno and Bun load TypeScript workers); the single-file
 * bundle replaces this module with one that points at its bundled worker,
 * as it replaces src/kernels/binaries.ts.
 */
export function workerURL(): URL {
  return new URL("./worker.ts", import.meta.url);
}
