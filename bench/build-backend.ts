/**
 * The WASM backends that benches set against today's: BackendOn, the kernel build in one file (private memory), so
 * a bench can time this tree's build against an earlier one (a copy of build/) on the same model in one process; and
 * Q4KX, Q4_K weights in the KX layout they had before the lanes layout took them.
 */
import * as fs from "node:fs";

import { WasmBackend } from "../src/backends/wasm.ts";
import { Arena } from "../src/memory/arena.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";
import type { Weight } from "../src/backends/backend.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";

export class BackendOn extends WasmBackend {
  /**
   * aliases: kernels newer than an old build, each taken as the older one it equals (e.g. Bun's
   * matmul_q4_k_lanes_q1 as matmul_q4_k_lanes, bit-identical), so that the old build loads where this tree picks them.
   */
  constructor(
    private readonly file: string,
    private readonly variant: "relaxed" | "simd",
    private readonly aliases: Record<string, string> = {},
  ) {
    super({ relaxed: variant === "relaxed", shared: false });
  }
  override async init(bytes: number): Promise<void> {
    this.arena = new Arena(bytes, { shared: false });
    const module = await WebAssembly.compile(fs.readFileSync(this.file));
    const instance = await WebAssembly.instantiate(module, { env: { memory: this.arena.memory } });
    const exports: Record<string, unknown> = { ...instance.exports };
    for (const [name, old] of Object.entries(this.aliases)) exports[name] ??= exports[old];
    // a build from before the run attention kernel: the run as its rows one at a time through `attention`, which is what
    // the kernel computes (each row with attention's bits), so the old side times the old row-by-row path
    exports.attention_run ??= runAsRows(exports.attention as (...args: number[]) => void);
    this.kernels = checkKernelExports(exports as WebAssembly.Exports, this.variant);
    this.heapI32 = new Int32Array(this.arena.memory.buffer);
    this.heapU8 = new Uint8Array(this.arena.memory.buffer);
  }
}

/** attention_run's arguments (src/kernels/spec.ts ATTENTION_RUN) as nRows calls of `attention` (top-k 0). */
function runAsRows(attention: (...args: number[]) => void) {
  return (
    out: number,
    q: number,
    att: number,
    kvBase: number,
    pageTable: number,
    pageSize: number,
    pageBytes: number,
    kOff: number,
    vOff: number,
    kvDim: number,
    nHeads: number,
    nKvHeads: number,
    headDim: number,
    start: number,
    end: number,
    h0: number,
    h1: number,
    slopes: number,
    nRows: number,
  ): void => {
    for (let r = 0; r < nRows; r++) {
      const o = 4 * r * nHeads * headDim;
      attention(
        out + o,
        q + o,
        att,
        kvBase,
        pageTable,
        pageSize,
        pageBytes,
        kOff,
        vOff,
        kvDim,
        nHeads,
        nKvHeads,
        headDim,
        start,
        end + r,
        h0,
        h1,
        slopes,
        0,
        0,
      );
    }
  };
}

/** Q4_K weights repacked to KX, as before the lanes layout (assembly/lanes-kquant.ts) took them; other types as today. */
export class Q4KX extends WasmBackend {
  override prepareWeight(w: Weight): void {
    if (w.type !== GGMLType.Q4_K || w.cols % 256 !== 0) return super.prepareWeight(w);
    this.kernels.repack_q4_kx(w.ptr, w.bytes / 144, this.matmulScratch);
    w.layout = "kx";
  }
}
