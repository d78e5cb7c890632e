/**
 * The two single-thread kernel builds (plain SIMD and relaxed SIMD) over one shared memory, and a seeded
 * xorshift32 source: what the kernel-level tests need to check one weight layout against another, bit for
 * bit, in both builds.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO } from "./harness.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";
import type { Kernels } from "../src/kernels/spec.ts";

export const BUILDS = ["simd", "relaxed"] as const;
export type Build = typeof BUILDS[number];

/** Both builds instantiated over `memory` (each checked against the kernel spec). */
export function instantiateBuilds(memory: WebAssembly.Memory): Record<Build, Kernels> {
  const kernels = {} as Record<Build, Kernels>;
  for (const b of BUILDS) {
    const bytes = fs.readFileSync(path.join(REPO, "build", `kvasm-${b}.wasm`));
    kernels[b] = checkKernelExports(new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports, b);
  }
  return kernels;
}

/** Uniform numbers in [0, 1) from a 32-bit xorshift, the same sequence for the same seed in every runtime. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}
