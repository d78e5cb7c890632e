/**
 * What every standalone-candidate bench (bench/X.bench.ts over the module bench/X/kernels.ts) does around its own
 * cases and candidates: compile the module (standalone.ts) and instantiate it on a memory of its own, place the
 * buffers, fill deterministic inputs, check each candidate's outputs bit for bit against the shipped kernel's, time
 * the fastest call of interleaved rounds after a warm-up (JavaScriptCore reaches its optimizing tier late on a large
 * function: docs/cpu-performance.md, "Q8_0 under JavaScriptCore"), and print one line per case. A bench whose
 * candidate differs where it must not ends with exit code 1 (`finish`).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";

import { runStamp } from "./cli.ts";
import { compileStandalone, removeStandalone } from "./standalone.ts";

/** A kernel export: pointers and counts in, nothing or a number out. */
export type Fn = (...args: number[]) => number;

export const MiB = 1 << 20;

/** The JavaScript runtime this bench runs in. */
export const engine: "bun" | "deno" | "node" = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/** A compiled candidate module on its own memory. */
export interface Standalone {
  ex: Record<string, Fn>;
  memory: WebAssembly.Memory;
  heap: Uint8Array;
  /** the build the module was compiled for */
  relaxed: boolean;
}

/**
 * Compiles `entry` (relative to the repository root, or a tree holding assembly/ and the entry: `root`) with asc,
 * relaxed SIMD or plain, and instantiates it on a fresh memory of `mib` MiB; `wasm` takes an already compiled file
 * instead (kept). The temporary .wasm is removed once instantiated.
 */
export function openStandalone(
  entry: string,
  o: { relaxed: boolean; mib: number; root?: string; wasm?: string },
): Standalone {
  const root = o.root ?? new URL("..", import.meta.url).pathname;
  const file = o.wasm ?? compileStandalone(path.join(root, entry), o.relaxed, `${path.basename(path.dirname(entry))}-`);
  const memory = new WebAssembly.Memory({ initial: (o.mib * MiB) >> 16 });
  const bytes = fs.readFileSync(file);
  const module = new WebAssembly.Module(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Uint8Array<ArrayBuffer>);
  const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as Record<string, Fn>;
  if (!o.wasm) removeStandalone(file);
  return { ex, memory, heap: new Uint8Array(memory.buffer), relaxed: o.relaxed };
}

/**
 * Buffers one after another from `start` (each size in bytes, in the order given): their offsets by name. The
 * module's own static data lies below 64 KiB, so start there or above; throws where they pass `limit`.
 */
export function place<K extends string>(start: number, sizes: Record<K, number>, limit: number): Record<K, number> {
  const at = {} as Record<K, number>;
  let p = start;
  for (const k of Object.keys(sizes) as K[]) {
    at[k] = p;
    p += sizes[k];
  }
  if (p > limit) throw new Error(`buffers end at ${p} bytes, past the memory's ${limit}`);
  return at;
}

/** xorshift32 from `seed`: every bench's weights and activations are the same from run to run and engine to engine. */
export function xorshift(seed = 12345): () => number {
  let s = seed;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** f32 activations at `at`: sin(0.37 i) * 2 plus, where `spikes`, every 97th value x40 (some ±127 once quantized). */
export function fillActivations(memory: WebAssembly.Memory, at: number, count: number, spikes = false): void {
  const xf = new Float32Array(memory.buffer, at, count);
  for (let i = 0; i < count; i++) xf[i] = Math.sin(i * 0.37) * 2 * (spikes && i % 97 === 0 ? 40 : 1);
}

/**
 * A d x n Q8_0 weight in ggml's layout at `at`, from `rand`: f16 scales in [2^-8, 2^-6), bytes anywhere in
 * -127..127 with a tenth at the extremes (ggml never writes -128).
 */
export function fillQ8_0Weight(heap: Uint8Array, at: number, n: number, d: number, rand: () => number): void {
  const nb = n / 32;
  for (let r = 0; r < d; r++) {
    for (let b = 0; b < nb; b++) {
      const p = at + (r * nb + b) * 34;
      const h = 0x1c00 + (rand() & 0x7ff);
      heap[p] = h & 255, heap[p + 1] = h >> 8;
      for (let k = 0; k < 32; k++) {
        const v = rand();
        heap[p + 2 + k] = v % 10 === 0 ? (v & 32 ? 0x81 : 0x7f) : (v & 255) === 0x80 ? 0x81 : v & 255;
      }
    }
  }
}

/** A copy of `count` 32-bit outputs at `at` (the reference a candidate's outputs must equal). */
export function snapshot(memory: WebAssembly.Memory, at: number, count: number): Uint32Array {
  return new Uint32Array(memory.buffer, at, count).slice();
}

/**
 * Whether `run` writes exactly `ref`'s bits at `at`: the outputs are first filled with a NaN pattern no kernel
 * writes, so a candidate that leaves outputs unwritten fails too.
 */
export function sameBits(memory: WebAssembly.Memory, at: number, ref: Uint32Array, run: () => void): boolean {
  new Uint32Array(memory.buffer, at, ref.length).fill(0x7fc00001);
  run();
  const o = new Uint32Array(memory.buffer, at, ref.length);
  return ref.every((x, i) => x === o[i]);
}

/**
 * The fastest call of each variant, in ms: first `warmupMs` of calls of each (interleaved, so every one tiers up
 * under the same load), then `rounds` rounds, each timing `reps` calls of every variant in turn.
 */
export function fastest(
  variants: readonly string[],
  call: (v: string) => void,
  o: { rounds: number; reps: number; warmupMs: number },
): Record<string, number> {
  const until = performance.now() + o.warmupMs * variants.length;
  while (performance.now() < until) for (const v of variants) call(v);
  const best: Record<string, number> = Object.fromEntries(variants.map((v) => [v, Infinity]));
  for (let r = 0; r < o.rounds; r++) {
    for (const v of variants) {
      const t0 = performance.now();
      for (let i = 0; i < o.reps; i++) call(v);
      best[v] = Math.min(best[v], (performance.now() - t0) / o.reps);
    }
  }
  return best;
}

/** The first line of every bench: the runtime, the build, what is compared, when (UTC) and the host's load. */
export function header(what: string, relaxed: boolean): void {
  console.log(`${engine}, ${relaxed ? "relaxed" : "plain"} build, ${runStamp()}: ${what}`);
}

const differing: string[] = [];

/**
 * One case's line: each variant's fastest call in µs, its ratio base / variant and GOP/s (`ops` operations a call),
 * and a mark where its outputs differ; `same[v]` undefined means not checked. A differing variant fails the bench
 * (exit code 1 at `finish`) unless `mayDiffer(v)` (a kernel valid only where the runtime's probe allows it).
 */
export function report(
  label: string,
  variants: readonly string[],
  best: Record<string, number>,
  o: { base: string; ops: number; same: Record<string, boolean | undefined>; mayDiffer?: (v: string) => boolean; extra?: string },
): void {
  const cells = variants.map((v) => {
    const mark = o.same[v] === false ? ", NOT bit-identical" : "";
    if (o.same[v] === false && !o.mayDiffer?.(v)) differing.push(`${label.replace(/\s+/g, " ").trim()} ${v}`);
    return ` ${v} ${(best[v] * 1000).toFixed(1).padStart(7)} (${(best[o.base] / best[v]).toFixed(2)}x, ${
      (o.ops / best[v] / 1e6).toFixed(0)
    } GOP/s${mark})`;
  });
  console.log(`  ${label}${cells.join("")}${o.extra ?? ""}`);
}

/** Records a failed check that is not one variant's (a dequantization, a split row range). */
export function mismatch(what: string): void {
  differing.push(what);
}

/** Ends the bench: lists every check that failed and sets exit code 1 where any did. */
export function finish(): void {
  if (!differing.length) return;
  console.error(`outputs differ from the shipped kernel's: ${differing.join("; ")}`);
  process.exitCode = 1;
}
