/**
 * The two single-thread kernel builds (plain SIMD and relaxed SIMD) over one shared memory, a seeded
 * xorshift32 source, and the K-quant weights and activations made from it: what the kernel-level tests need
 * to check one weight layout against another, bit for bit, in both builds.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO } from "./harness.ts";
import { f32ToF16 } from "../src/quant/half.ts";
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

/** d rows of n Q4_K weights: random nibbles and 6-bit scales and mins (every bit pattern), small f16 d of either sign and dmin. */
export function q4kRows(n: number, d: number, seed: number): Uint8Array {
  const QB = 144, u = xorshift(seed), out = new Uint8Array((n / 256) * d * QB);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(u() * 256);
  const v = new DataView(out.buffer);
  for (let p = 0; p < out.length; p += QB) {
    v.setUint16(p, f32ToF16((u() < 0.2 ? -1 : 1) * (0.001 + 0.01 * u())), true);
    v.setUint16(p + 2, f32ToF16(0.001 + 0.01 * u()), true);
  }
  return out;
}

/** d rows of n Q6_K weights: random ql, qh and scale bytes (every i8 scale, -128 included), small f16 d of either sign. */
export function q6kRows(n: number, d: number, seed: number): Uint8Array {
  const QB = 210, u = xorshift(seed), out = new Uint8Array((n / 256) * d * QB);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(u() * 256);
  const v = new DataView(out.buffer);
  for (let p = 0; p < out.length; p += QB) {
    if (u() < 0.1) out[p + 192 + Math.floor(u() * 16)] = 0x80;
    v.setUint16(p + 208, f32ToF16((u() < 0.3 ? -1 : 1) * (0.001 + 0.01 * u())), true);
  }
  return out;
}

/**
 * T rows of n activations for the K-quants' 256-element superblocks: an all-zero superblock, one whose largest
 * magnitude is positive, one with every a = -max.
 */
export function kquantActivations(n: number, T: number, seed: number): Float32Array {
  const u = xorshift(seed), x = new Float32Array(n * T);
  for (let i = 0; i < x.length; i++) x[i] = (u() - 0.5) * 4;
  x.fill(0, 256, 512);
  if (n * T >= 1024) x[700] = 9;
  if (n * T >= 1280) x.fill(-3, 1024, 1280);
  return x;
}
