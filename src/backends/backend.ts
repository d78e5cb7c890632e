// src/backends/ owns what runs the forward pass: the Backend contract (this file), the WASM backends on one
// thread or a pool of Workers, the WebGPU backend (webgpu/, which registers its names when imported), and
// select.ts, which picks one: WASM by default, another by the name it registered.

import type { ByteSource } from "../io/source.ts";
import type { GGMLTypeId } from "../formats/ggml-types.ts";
import type { ResolvedSamplingParams } from "../sampling/params.ts";
import type { Sampler } from "../sampling/sampler.ts";

/**
 * The contract between the forward pass and whatever runs it (WASM on one
 * thread, WASM on a pool of Workers, WebGPU). Every buffer is an address in
 * the backend's own memory: the arena for WASM, a storage buffer for WebGPU.
 * Ops are enqueued in order; only `read` is asynchronous, because GPU readback
 * is, so a backend may record a whole forward pass and submit it at once.
 */
export interface Backend {
  readonly name: string;

  /** Reserves `bytes` of device memory once; allocations below carve it up. */
  init(bytes: number): Promise<void>;
  /**
   * Carves `bytes` out of the reserved memory. `commit` (default true) asks the backend to make the pages
   * resident now; false leaves them to `commit()` later (the KV pages: a declared context costs nothing until used).
   */
  alloc(bytes: number, what: string, align?: number, commit?: boolean): number;
  /** Makes never-used bytes of an uncommitted allocation resident (zero) before their first use in a kernel. */
  commit?(ptr: number, bytes: number): void;
  /** Host to device (page tables, positions, row metadata). */
  write(ptr: number, data: ArrayBufferView): void;
  /** Streams `bytes` of the source at `offset` to `ptr`: weights go from file to device with no second copy. */
  upload(ptr: number, source: ByteSource, offset: number, bytes: number): Promise<void>;
  /**
   * After a weight's upload (and the loader's validation of its tensor), may rewrite its bytes in place into a
   * faster layout of the same size, and then marks `w.layout`; every later op on `w` reads that layout.
   */
  prepareWeight?(w: Weight): void;
  /** Device to host, after all enqueued work. */
  read(ptr: number, dest: Float32Array): Promise<void>;

  /** Can this backend multiply by weights of this ggml type? */
  supportsWeight(type: GGMLTypeId): boolean;
  /** Can kvStore/attention run on pages of this element type? Absent: "f32" only. */
  supportsKV?(type: KVType): boolean;
  /**
   * Score bands `attention`'s scratch must hold (each nHeads x positions f32): one per thread that runs query rows at
   * once. The run state's attScratch is planned this many times over; absent: 1.
   */
  readonly attentionBands?: number;
  /** Scratch bytes `matmul` needs for T activation rows of width n against a weight of this type. */
  matmulScratchBytes(type: GGMLTypeId, n: number, T: number): number;
  /**
   * Hands the backend its matmul scratch: `bytes` at `ptr` (a region of the arena plan, at least matmulScratchBytes
   * for every weight and row count it will multiply), before the first matmul. The scratch is the backend's own
   * (quantized or rounded activations): the forward pass never names it.
   */
  setMatmulScratch(ptr: number, bytes: number): void;
  /**
   * Whether draws with these parameters can run on the device (WebGPU); absent: never. The model asks the
   * backend rather than naming a concrete one, so the loader (and the edge bundle) carry no GPU code.
   */
  samplesOnDevice?(params: ResolvedSamplingParams): boolean;
  /** A sampler on the device over `vocabSize` logits, `rows` draws per readback (where samplesOnDevice says so). */
  deviceSampler?(vocabSize: number, rows: number): DeviceSampling;

  /** out (T, dim) = rows tokens[t] of the table; tokens is a device i32 array. */
  embed(out: number, table: Weight, tokens: number, T: number): void;
  /**
   * out (T, w.rows) = x (T, w.cols) @ W^T, through the backend's matmul scratch (setMatmulScratch).
   * sameInput: the caller promises that x is that of the previous matmul and has not changed
   * since (q, k and v of one normed row; gate and up), so a backend may reuse the activations it
   * quantized (or rounded) then, when they are of the kind this weight needs: one quantization, not three.
   */
  matmul(out: number, x: number, w: Weight, T: number, sameInput?: boolean): void;
  rmsnorm(out: number, x: number, w: Weight, n: number, eps: number, T: number): void;
  /** In place on T rows of nHeads heads; positions: device i32 (T); table: (cos, sin) pairs (maxPos, ropeDim/2). */
  rope(x: number, table: number, positions: number, T: number, nHeads: number, headDim: number, ropeDim: number, halves: boolean): void;
  add(out: number, a: number, b: number, n: number): void;
  /** out = silu(gate) * up on T rows of n (row by row, as ggml groups its SIMD body and tail per row). */
  swiglu(out: number, gate: number, up: number, n: number, T: number): void;
  /** Writes T rows of K and V (kvDim floats each) into their cache slots for one layer. */
  kvStore(kv: KVLayout, layer: number, k: number, v: number, rows: number, T: number): void;
  /** out (T, qDim) = attention of T query rows over the cache, for one layer. */
  attention(out: number, q: number, kv: KVLayout, layer: number, rows: number, T: number, scratch: number): void;
  /** LayerNorm of T rows (GPT-2, GPT-NeoX, BLOOM, MPT): out (T,n) = (x - mean) / sqrt(var + eps) * w (+ bias, when given). */
  layernorm(out: number, x: number, w: Weight, bias: Weight | undefined, n: number, eps: number, T: number): void;
  /** x (rows, n) += bias (n) on every row: a Linear layer's bias after its matmul. */
  addBias(x: number, bias: Weight, rows: number, n: number): void;
  /** GELU, tanh approximation (GPT-2 "gelu_new"), over n floats; out may alias x. */
  gelu(out: number, x: number, n: number): void;
  /** GELU, exact erf form (PyTorch nn.GELU, GPT-NeoX "gelu"), over n floats; out may alias x. */
  geluErf(out: number, x: number, n: number): void;
  /** Copies `bytes` between device addresses (row gathers, copy-on-write of pages). */
  copy(dst: number, src: number, bytes: number): void;
  /**
   * Optional: writes the i32 index of the largest of `n` floats at `x` to `out`
   * (ties to the lowest index, NaN never chosen; -1 when all are NaN), so greedy
   * decoding can feed its pick to the next step without a readback (Model.decodeGreedy).
   * A backend with argmax must take a read's bytes as of the read() call, not when its promise settles:
   * Model's device loop records the next run before it awaits the last run's read.
   */
  argmax?(out: number, x: number, n: number): void;
  /**
   * Optional: runs `forward` (a decode step's recording: the same ops with the same arguments every call, its
   * per-token inputs read from device memory) through a plan kept under `key`. The first call records it as
   * usual and keeps what it dispatched; later calls replay those dispatches without calling `forward`, so the
   * host skips the architecture's op calls, fusion and bookkeeping (WebGPU: Model's device decode loop). The
   * same kernels run in the same order either way, so results are bit-identical.
   */
  replayForward?(key: object, forward: () => void): void;

  /** Waits for enqueued work (a no-op for synchronous backends). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A weight matrix (or vector) in device memory, in ggml layout: `rows` rows of `cols` elements. */
export interface Weight {
  name: string;
  type: GGMLTypeId;
  cols: number; // shape[0], the contiguous dimension
  rows: number; // product of the other dimensions
  ptr: number;
  bytes: number;
  /** Set by a backend's prepareWeight when it rewrote the bytes into its own layout (see WeightLayout). */
  layout?: WeightLayout;
}

/**
 * kvasm's own layouts of a weight's bytes, same size as ggml's (src/quant/kernels.ts holds each one's kernels):
 * - "kx": row-local, each row's blocks reordered in place (KX_KERNELS: Q6_K, Q4_K);
 * - "lanes": cross-row, a group of consecutive rows interleaved so that SIMD lane r of every dot product belongs
 *   to row r of the group (LANES_KERNELS); the rows after the last whole group keep ggml's layout. Thread chunks of
 *   a matmul start on group boundaries, and embedding lookups de-interleave one row.
 */
export type WeightLayout = "kx" | "lanes";

/**
 * Geometry of the paged KV cache, shared by the cache (which owns pages and
 * page tables) and the backends (which read through them). A page holds
 * `pageSize` positions of K and V for every layer: [layer][K|V][slot][kvDim].
 */
export interface KVLayout {
  base: number; // address of page 0
  pageSize: number; // positions per page
  pageBytes: number;
  kvDim: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  nLayers: number;
  /**
   * Element type of the pages: "f32"; "f16" (per slot: kvDim IEEE halves; attention as llama.cpp's CPU flash attention);
   * or "q8_0" (per slot: kvDim int8 values, then one f32 scale per qBlock values).
   */
  kvType: KVType;
  /** Values per Q8_0 scale, or per u8_asym scale and zero point (0 for f32 and f16). */
  qBlock: number;
  /** ALiBi: address of the nHeads f32 slopes (src/model/alibi.ts); 0 = no positional bias in attention. */
  alibiSlopes?: number;
  /** Sparse top-k attention: each query row's softmax runs over its topK best scores only; 0 or absent = dense. */
  topK?: number;
  /** Scratch of the top-k selection: 8 * topK bytes per query head. */
  topKScratch?: number;
}

/**
 * "u8_asym": per slot kvDim uint8, then per qBlock values an f32 scale and an f32 zero point
 * (the seed's asymmetric quantization, x ~ scale * (q - zero_point)).
 */
export type KVType = "f32" | "f16" | "q8_0" | "u8_asym";
/** Every KVType, in the order messages list them (loadModel, --kv-cache and the benches check values against it). */
export const KV_TYPES: readonly KVType[] = ["f32", "f16", "q8_0", "u8_asym"];

/** Bytes of one position's K (or V) for one layer. */
export function kvSlotBytes(kvType: KVType, kvDim: number, qBlock: number): number {
  if (kvType === "f32") return kvDim * 4;
  if (kvType === "f16") return kvDim * 2;
  if (kvType === "u8_asym") return kvDim + (kvDim / qBlock) * 8;
  return kvDim + (kvDim / qBlock) * 4;
}

/**
 * Per query row metadata for kvStore/attention, an i32 device array of
 * ROW_FIELDS per row: the sequence's page table address, the row's position,
 * and the first position it attends (> 0 under a sliding window).
 */
export const ROW_FIELDS = 4;
export const ROW_PAGE_TABLE = 0;
export const ROW_POS = 1;
export const ROW_START = 2;

export function kvOffsets(kv: KVLayout, layer: number): { kOff: number; vOff: number } {
  const block = kv.pageSize * kvSlotBytes(kv.kvType, kv.kvDim, kv.qBlock);
  return { kOff: layer * 2 * block, vOff: layer * 2 * block + block };
}

/** Draws on the device, a batch of steps per readback (Model.decodeSampled; WebGPU's is backends/webgpu/sample.ts). */
export interface DeviceSampling {
  /** Takes the sampler's params, RNG and `history` (penalties) before a batch; validates before anything is reserved. */
  load(sampler: Sampler, history: ArrayLike<number>, logits: number, nextToken: number): void;
  /** Records step k's draw from the logits, writing the pick and the next step's input token. */
  step(k: number): void;
  /** Reads the batch's `m` picks into `out` and moves the sampler's RNG on past them. */
  finish(sampler: Sampler, out: Int32Array, m: number): Promise<void>;
}
