import { Arena } from "../memory/arena.ts";
import type { ByteSource } from "../io/source.ts";
import { GGMLType, type GGMLTypeId, ggmlTypeName, rowBytes } from "../formats/ggml-types.ts";
import { byteDotReadsUnsigned, dotAddIsExactU8S8, instantiateKernels, type Kernels, pickVariant } from "../kernels/wasm.ts";
import { AttentionFrame, type AttentionKernel, type MatmulKernel } from "../kernels/spec.ts";
import { type WeightKernel, weightKernelFor } from "./weight-kernels.ts";
import {
  GGML_ORDER_MATMUL,
  ggmlOrderKernel,
  JAVASCRIPTCORE,
  KX_KERNELS,
  type LanesKernel,
  lanesKernel,
  type MatmulKernels,
} from "../quant/kernels.ts";
import { actRowBytesOrUndefined } from "../quant/act-formats.ts";
import { checkOptionNames, optionNames, UnsupportedError } from "../errors.ts";
import type { OpProfile } from "./op-profile.ts";
import { runKernel, runRows } from "./attention-runs.ts";
import { attentionRun } from "../threads/control.ts";
import {
  type Backend,
  type KVLayout,
  kvSlotBytes,
  type KVType,
  ROW_FIELDS,
  ROW_PAGE_TABLE,
  ROW_POS,
  ROW_START,
  type Weight,
} from "./backend.ts";

/** The top-k the cache's attention kernels take: the layout's, but 0 for the F16 cache, whose kernels take none. */
export function attentionTopK(kv: KVLayout): number {
  return kv.kvType === "f16" ? 0 : kv.topK ?? 0;
}

/**
 * The F16 cache's attention kernel for a batch of T query rows, the last at
 * position pos, as llama.cpp's CPU flash attention (ggml_compute_forward_flash_attn_ext_f16)
 * picks its path:
 * - a ubatch of at least GGML_FA_TILE_Q = 64 rows, head dim a multiple of
 *   GGML_F32_EPR (16 on AVX-512): the tiled kernel (attention_f16_tiled);
 * - one query row over a K view of n_kv >= 512 cells: the split-KV path as on
 *   one thread (attention_f16_split). llama.cpp's n_kv (llama_kv_cache::get_n_kv)
 *   is the highest used cell + 1 padded to 256, at least 256, at most the
 *   cache's cells (n_ctx, itself padded to 256), so with one sequence from
 *   cell 0 it reaches 512 exactly when pos >= 256;
 * - anything else one_chunk's online softmax (attention_f16).
 * The batch stands for llama.cpp's ubatch: both cut a prompt alike when
 * maxBatchRows equals llama.cpp's n_ubatch (512, ggmlOrder's default).
 * Without ggmlOrder every row takes attention_f16_twopass, whatever the batch
 * and position, so that a row's output does not depend on the rows beside it
 * (batch invariance; the paths above reduce in different orders): the f32
 * cache's kernel over halves, several times faster than one_chunk's
 * half-precision online softmax and closer to exact (its output stays f32).
 */
export function f16AttentionKernel(
  T: number,
  headDim: number,
  pos: number,
  ggmlOrder = true,
): "attention_f16" | "attention_f16_twopass" | "attention_f16_tiled" | "attention_f16_split" {
  if (!ggmlOrder) return "attention_f16_twopass";
  if (T >= 64 && headDim % 16 === 0) return "attention_f16_tiled";
  return T === 1 && pos >= 256 ? "attention_f16_split" : "attention_f16";
}

export interface WasmOptions {
  /** Use the relaxed-SIMD kernels; default: when the runtime validates them. */
  relaxed?: boolean;
  /** A shared WebAssembly.Memory (for Workers over it: ThreadedWasmBackend); default false. */
  shared?: boolean;
  /** Sum as llama.cpp's x86 kernels do where kvasm's faster order differs (LoadOptions.ggmlOrder); default false. */
  ggmlOrder?: boolean;
}

/** WasmOptions' names: the constructor refuses any other key (`ggmlorder: true` ran kvasm's order unseen). */
const WASM_OPTION_NAMES = optionNames<WasmOptions>()(["relaxed", "shared", "ggmlOrder"]);

/**
 * The WebAssembly backend on the calling thread: the arena is its device
 * memory and every op is one synchronous kernel call. It runs wherever
 * WebAssembly SIMD does (edge functions included: no Worker, no file system).
 */
export class WasmBackend implements Backend {
  readonly name: string = "wasm";
  arena!: Arena;
  kernels!: Kernels;
  protected heapI32!: Int32Array;
  protected heapU8!: Uint8Array;

  /**
   * What the relaxed build does in this runtime, for the lanes forms (lanesKernelFor), decided on first use from the
   * build this backend will instantiate (so before init too: the arena plan sizes the matmul scratch by the form's
   * activation format). dotAddExact: the relaxed dot-add is an exact u8 x s8 dot (dotAddIsExactU8S8): Q8_0 weights take
   * the VNNI form. nibbleQ8_0: Bun (JavaScriptCore, whose dot-add saturates), where the relaxed i16 dot reads its second
   * operand unsigned (byteDotReadsUnsigned): Q8_0 weights take the signed layout against nibble activations.
   */
  private lanesChoice?: { readonly dotAddExact: boolean; readonly nibbleQ8_0: boolean };

  /** Set to time every op by class (bench/peers.ts --profile); null: off, one null check per op. */
  profile: OpProfile | null = null;

  /** Weight kernels by type, with the ggml-order variants swapped in when asked (ggmlOrder). */
  private readonly weightKernels = new Map<GGMLTypeId, WeightKernel>();
  /** Each attention kernel's argument array, made on first use and reused for every row. */
  private readonly attentionFrames = new Map<AttentionKernel, AttentionFrame>();

  constructor(protected readonly opts: WasmOptions = {}) {
    checkOptionNames("WasmBackend", opts, WASM_OPTION_NAMES);
  }

  /** A new, unstarted backend with these options: the next memory of a multi-memory layout (MultiMemoryBackend). */
  twin(): WasmBackend {
    return new WasmBackend(this.opts);
  }

  async init(bytes: number): Promise<void> {
    const shared = this.opts.shared ?? false;
    this.arena = new Arena(bytes, { shared });
    const variant = pickVariant({ shared, relaxed: this.opts.relaxed });
    this.kernels = await instantiateKernels(this.arena.memory, variant);
    this.heapI32 = new Int32Array(this.arena.memory.buffer);
    this.heapU8 = new Uint8Array(this.arena.memory.buffer);
  }

  alloc(bytes: number, what: string, align = 64, commit = true): number {
    const ptr = this.arena.alloc(bytes, align, what);
    if (commit) this.commit(ptr, bytes);
    return ptr;
  }

  commit(ptr: number, bytes: number): void {
    // Commit the pages now (the memory is zero already): the OS maps a page on its first write, and the KV
    // cache's first writes would otherwise cost a page fault per new slot in decode (~0.5 ms a token on the
    // stories110M shape in these VMs). llama.cpp clears its cache buffer at creation likewise. Weights are
    // written at load anyway. Uncommitted regions (the KV pages) come here in steps, as the page pool first hands
    // their pages out.
    this.heapU8.fill(0, ptr, ptr + bytes);
  }

  write(ptr: number, data: ArrayBufferView): void {
    // the step's i32 inputs (tokens, positions, row metadata) go in as they are: a byte view of them was an allocation per write
    if (data instanceof Int32Array && (ptr & 3) === 0) this.heapI32.set(data, ptr / 4); // (ptr >> 2 is negative past 2 GiB)
    else this.heapU8.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), ptr);
  }

  async upload(ptr: number, source: ByteSource, offset: number, bytes: number): Promise<void> {
    // 64 MiB pieces: a file read lands straight in the arena, and a progress callback can run between pieces
    const CHUNK = 64 << 20;
    for (let done = 0; done < bytes; done += CHUNK) {
      const n = Math.min(CHUNK, bytes - done);
      await source.read(offset + done, this.arena.u8(ptr + done, n));
    }
  }

  read(ptr: number, dest: Float32Array): Promise<void> {
    // the logits are read from one place at one length every step: that view is kept (the memory never grows)
    if (ptr !== this.readPtr || dest.length !== this.readView.length) this.readView = this.arena.f32(ptr, dest.length), this.readPtr = ptr;
    dest.set(this.readView);
    return Promise.resolve();
  }

  private readPtr = -1;
  private readView: Float32Array<ArrayBufferLike> = new Float32Array(0);

  supportsWeight(type: GGMLTypeId): boolean {
    return type === GGMLType.F32 || type === GGMLType.F16 || weightKernelFor(type) !== undefined;
  }

  supportsKV(type: KVType): boolean {
    return type === "f32" || type === "f16" || type === "q8_0" || type === "u8_asym";
  }

  matmulScratchBytes(type: GGMLTypeId, n: number, T: number): number {
    if (type === GGMLType.F32) return 0;
    if (type === GGMLType.F16) return T * n * 4;
    const k = this.quantKernel(type), lanes = this.opts.ggmlOrder ? undefined : this.lanesKernelFor(type);
    // the activations of the layout the weight will take (Q8_0 in Bun: Q8_SN, 8.2x Q8_S) or of its natural kernel
    const act = Math.max(actRowBytesOrUndefined(k.actType, n) ?? 0, lanes ? actRowBytesOrUndefined(lanes.actType, n) ?? 0 : 0);
    return Math.max(T * act, this.lanesScratchBytes(type, n));
  }

  /** Scratch the lanes repack of a weight of this type and width takes at load (a row group), 0 where it will not run. */
  private lanesScratchBytes(type: GGMLTypeId, n: number): number {
    const lanes = this.opts.ggmlOrder ? undefined : this.lanesKernelFor(type);
    return lanes ? lanes.rowGroup * (rowBytes(type, n) ?? 0) : 0;
  }

  /**
   * The lanes kernels this backend repacks a weight type into (src/quant/kernels.ts lanesKernel): for Q8_0, the VNNI
   * form (matmul_q8_0_vnni) where the dot-add is exact here, in Bun the signed layout against nibble activations
   * (matmul_q8_0_nib) where the relaxed i16 dot reads unsigned, else the signed one (matmul_q8_0_lanes). Fixed on first use.
   */
  lanesKernelFor(type: GGMLTypeId): LanesKernel | undefined {
    if (!this.lanesChoice) {
      const relaxed = pickVariant({ shared: this.opts.shared ?? false, relaxed: this.opts.relaxed }).startsWith("relaxed");
      const dotAddExact = relaxed && dotAddIsExactU8S8();
      this.lanesChoice = { dotAddExact, nibbleQ8_0: relaxed && !dotAddExact && JAVASCRIPTCORE && byteDotReadsUnsigned() };
    }
    return lanesKernel(type, this.lanesChoice.dotAddExact, this.lanesChoice.nibbleQ8_0);
  }

  protected quantKernel(type: GGMLTypeId): WeightKernel {
    let k = this.weightKernels.get(type);
    if (k) return k;
    k = weightKernelFor(type);
    if (!k) throw new UnsupportedError(`the WASM backend has no matmul for ${ggmlTypeName(type)} weights`);
    // ggmlOrder: llama.cpp's summation order over its own activation format
    if (this.opts.ggmlOrder) k = ggmlOrderKernel(type) ?? k;
    this.weightKernels.set(type, k);
    return k;
  }

  /** The kernels for weight w: its layout's (prepareWeight) or its type's. */
  protected kernelsOf(w: Weight): MatmulKernels {
    const layout = w.layout === "lanes" ? this.lanesKernelFor(w.type) : w.layout === "kx" ? KX_KERNELS.get(w.type) : undefined;
    return layout ?? this.quantKernel(w.type);
  }

  /** Rows of w that its layout interleaves (1: each row on its own): a matmul's row ranges start at multiples of it. */
  protected rowGroupOf(w: Weight): number {
    return (w.layout === "lanes" ? this.lanesKernelFor(w.type)?.rowGroup : undefined) ?? 1;
  }

  /**
   * Repacks a weight in place into kvasm's layout for its type, outside ggmlOrder (same results bit for bit;
   * src/quant/kernels.ts): the lanes layout (Q8_0, Q4_0, Q4_K, Q6_K: four rows a vector, no cross-lane sum per
   * block; a K-quant's d % 4 tail rows KX), else KX (no scale splat per 16 or 32 weights). One pass over the
   * weight's bytes at load (the 20 MB 32000x768 Q6_K classifier: 3-15 ms on a loaded 2-core VM); uses the matmul
   * scratch, placed before the weights (matmulScratchBytes counts the lanes repack's row group).
   */
  prepareWeight(w: Weight): void {
    if (this.opts.ggmlOrder) return;
    const lanes = this.lanesKernelFor(w.type), row = rowBytes(w.type, w.cols);
    if (lanes && row && w.bytes === row * w.rows && w.rows >= lanes.rowGroup && this.matmulScratchSize >= lanes.rowGroup * row) {
      this.kernels[lanes.repack](w.ptr, w.cols, w.rows, this.matmulScratch);
      w.layout = "lanes";
      return;
    }
    const kx = KX_KERNELS.get(w.type);
    const block = rowBytes(w.type, 256);
    if (!kx || !block || w.cols % 256 !== 0 || w.bytes % block !== 0 || this.matmulScratchSize < 256) return;
    this.kernels[kx.repack](w.ptr, w.bytes / block, this.matmulScratch);
    w.layout = "kx";
  }

  /** The F32 or F16 matmul: ggml's summation order when asked (ggmlOrder) and built. */
  protected denseKernel(type: typeof GGMLType.F32 | typeof GGMLType.F16): MatmulKernel {
    const plain: MatmulKernel = type === GGMLType.F32 ? "matmul_f32" : "matmul_f16";
    return (this.opts.ggmlOrder ? GGML_ORDER_MATMUL.get(type) : undefined) ?? plain;
  }

  embed(out: number, table: Weight, tokens: number, T: number): void {
    const n = table.cols;
    const p = this.profile, t0 = p ? p.now() : 0;
    const lanes = table.layout === "lanes" ? this.lanesKernelFor(table.type) : undefined;
    if (lanes) {
      // a row is spread over its row group: the kernel takes the table's start and the row
      const fetchRow = this.kernels[lanes.dequantize];
      for (let t = 0; t < T; t++) fetchRow(out + t * n * 4, table.ptr, n, this.heapI32[(tokens >> 2) + t], table.rows);
    } else {
      const stride = rowBytes(table.type, n)!;
      const fetch = table.type === GGMLType.F32
        ? this.kernels.dequantize_f32
        : table.type === GGMLType.F16
        ? this.kernels.dequantize_f16
        : this.kernels[((table.layout === "kx" ? KX_KERNELS.get(table.type) : undefined) ?? this.quantKernel(table.type)).dequantize];
      for (let t = 0; t < T; t++) {
        const id = this.heapI32[(tokens >> 2) + t];
        fetch(out + t * n * 4, table.ptr + id * stride, n);
      }
    }
    if (p) p.add("embed", t0);
  }

  /** The matmul scratch's address (setMatmulScratch); 0 until the loader places it. */
  protected matmulScratch = 0;
  private matmulScratchSize = 0;

  setMatmulScratch(ptr: number, bytes: number): void {
    this.matmulScratch = ptr;
    this.matmulScratchSize = bytes;
  }

  matmul(out: number, x: number, w: Weight, T: number, sameInput = false): void {
    const scratch = this.matmulScratch;
    this.matmulRows(out, x, w, T, scratch, 0, w.rows, !this.reusePrepared(x, w, T, scratch, sameInput));
  }

  /** What the last preparation wrote to scratch: from which x, by which kernel (round_f16 or a quantize_*), n, T. */
  private readonly prepared = { x: -1, scratch: -1, kind: "", n: 0, T: 0 };

  /**
   * Whether scratch already holds x prepared for w (the caller's sameInput promise, and the same x, scratch,
   * activation kind, width and rows as the last preparation); if not, notes that it is about to be prepared.
   */
  protected reusePrepared(x: number, w: Weight, T: number, scratch: number, sameInput: boolean): boolean {
    const p = this.prepared;
    if (w.type === GGMLType.F32) {
      // prepares nothing: what scratch holds may be of an older x, which a later sameInput must not take
      p.x = -1;
      return false;
    }
    const kind = w.type === GGMLType.F16 ? "round_f16" : this.kernelsOf(w).quantize;
    if (sameInput && p.x === x && p.scratch === scratch && p.kind === kind && p.n === w.cols && p.T === T) return true;
    p.x = x, p.scratch = scratch, p.kind = kind, p.n = w.cols, p.T = T;
    return false;
  }

  /**
   * One matmul over weight rows [r0, r1). `prepare` quantizes (or rounds) the
   * activations into scratch first; the threaded backend prepares once and
   * lets each thread run its own row range.
   */
  protected matmulRows(out: number, x: number, w: Weight, T: number, scratch: number, r0: number, r1: number, prepare: boolean): void {
    const k = this.kernels;
    const p = this.profile;
    let t0 = p ? p.now() : 0;
    let input = x, kernel: MatmulKernel;
    switch (w.type) {
      case GGMLType.F32:
        kernel = this.denseKernel(GGMLType.F32);
        break;
      case GGMLType.F16:
        if (prepare) k.round_f16(scratch, x, T * w.cols);
        input = scratch;
        kernel = this.denseKernel(GGMLType.F16);
        break;
      default: {
        const q = this.kernelsOf(w);
        if (prepare) k[q.quantize](scratch, x, w.cols, T);
        input = scratch;
        kernel = q.matmul;
      }
    }
    if (p) {
      if (prepare && w.type !== GGMLType.F32) p.add("quantize act", t0);
      t0 = p.now();
    }
    k[kernel](out, input, w.ptr, w.cols, w.rows, T, r0, r1);
    if (p) this.profileMatmul(p, w, t0);
  }

  /**
   * Books a matmul's time under its type and shape, and the kernel where a layout chose it (Q8_0's two lanes forms
   * differ by runtime). Apart from the matmul, so that the key's closure (which captures w) is made here: in the
   * matmul it made V8 allocate a context for w on every call, profiling or not.
   */
  protected profileMatmul(p: OpProfile, w: Weight, t0: number): void {
    p.add(p.keyOf(w, () => `matmul ${ggmlTypeName(w.type)} ${w.rows}x${w.cols}${w.layout ? ` (${this.kernelsOf(w).matmul})` : ""}`), t0);
  }

  rmsnorm(out: number, x: number, w: Weight, n: number, eps: number, T: number): void {
    const p = this.profile, t0 = p ? p.now() : 0;
    this.kernels.rmsnorm(out, x, w.ptr, n, eps, T);
    if (p) p.add("norm", t0);
  }

  rope(x: number, table: number, positions: number, T: number, nHeads: number, headDim: number, ropeDim: number, halves: boolean): void {
    const p = this.profile, t0 = p ? p.now() : 0;
    this.kernels.rope(x, table, positions, T, nHeads, headDim, ropeDim, halves ? 1 : 0);
    if (p) p.add("rope", t0);
  }

  add(out: number, a: number, b: number, n: number): void {
    const p = this.profile, t0 = p ? p.now() : 0;
    this.kernels.add(out, a, b, n);
    if (p) p.add("add", t0);
  }

  swiglu(out: number, gate: number, up: number, n: number, T: number): void {
    const p = this.profile, t0 = p ? p.now() : 0;
    this.kernels.swiglu(out, gate, up, n, T);
    if (p) p.add("act", t0);
  }

  layernorm(out: number, x: number, w: Weight, bias: Weight | undefined, n: number, eps: number, T: number): void {
    this.kernels.layernorm(out, x, w.ptr, bias?.ptr ?? 0, n, eps, T);
  }

  addBias(x: number, bias: Weight, rows: number, n: number): void {
    this.kernels.add_bias(x, bias.ptr, n, rows);
  }

  gelu(out: number, x: number, n: number): void {
    this.kernels.gelu_tanh(out, x, n);
  }

  geluErf(out: number, x: number, n: number): void {
    this.kernels.gelu_erf(out, x, n);
  }

  kvStore(kv: KVLayout, layer: number, k: number, v: number, rows: number, T: number): void {
    const row = kv.kvDim * 4;
    const slot = kvSlotBytes(kv.kvType, kv.kvDim, kv.qBlock);
    // kvOffsets' two numbers, without its object (one a layer and token)
    const kOff = 2 * layer * kv.pageSize * slot, vOff = kOff + kv.pageSize * slot;
    const q8 = kv.kvType === "q8_0";
    const u8 = kv.kvType === "u8_asym";
    const h = this.heapI32;
    const p = this.profile, t0 = p ? p.now() : 0;
    for (let t = 0; t < T; t++) {
      const r = (rows >> 2) + t * ROW_FIELDS;
      const pos = h[r + ROW_POS];
      const page = h[(h[r + ROW_PAGE_TABLE] >> 2) + Math.floor(pos / kv.pageSize)];
      const at = kv.base + page * kv.pageBytes + (pos % kv.pageSize) * slot;
      if (q8 || u8) {
        const store = q8 ? this.kernels.kv_store_q8 : this.kernels.kv_store_u8;
        store(at + kOff, k + t * row, kv.kvDim, kv.qBlock);
        store(at + vOff, v + t * row, kv.kvDim, kv.qBlock);
        continue;
      }
      if (kv.kvType === "f16") {
        this.kernels.kv_store_f16(at + kOff, k + t * row, kv.kvDim);
        this.kernels.kv_store_f16(at + vOff, v + t * row, kv.kvDim);
        continue;
      }
      // memory.copy inside the kernels (the slow part of a store was the page fault on a fresh cache page: see alloc)
      this.kernels.copy(at + kOff, k + t * row, row);
      this.kernels.copy(at + vOff, v + t * row, row);
    }
    if (p) p.add("kv store", t0);
  }

  attention(out: number, q: number, kv: KVLayout, layer: number, rows: number, T: number, scratch: number): void {
    const p = this.profile, t0 = p ? p.now() : 0;
    this.attentionHeads(out, q, kv, layer, rows, T, scratch, 0, kv.nHeads);
    if (p) p.add("attention", t0);
  }

  protected attentionHeads(
    out: number,
    q: number,
    kv: KVLayout,
    layer: number,
    rows: number,
    T: number,
    scratch: number,
    h0: number,
    h1: number,
  ): void {
    const qDim = kv.nHeads * kv.headDim;
    const h = this.heapI32;
    const topK = attentionTopK(kv), maxRun = runRows(kv.nHeads);
    let frame: AttentionFrame | undefined;
    for (let t = 0; t < T;) {
      const r = (rows >> 2) + t * ROW_FIELDS, pageTable = h[r + ROW_PAGE_TABLE];
      // a row whose sequence has no other row beside it in the batch is a decode row (a chunk's rows are consecutive)
      const decodeRow = (t === 0 || h[r - ROW_FIELDS + ROW_PAGE_TABLE] !== pageTable) &&
        (t === T - 1 || h[r + ROW_FIELDS + ROW_PAGE_TABLE] !== pageTable);
      // the kernel can change between rows: decode rows and a chunk's rows, and the F16 cache's path by position;
      // a chunk's rows go in runs where the kernel has a run form (the same bits)
      let kernel = this.attentionKernel(kv, T, h[r + ROW_POS], decodeRow);
      const run = decodeRow ? undefined : runKernel(kernel, topK);
      const n = run ? attentionRun(h, rows, t, T, maxRun, ROW_FIELDS, ROW_PAGE_TABLE, ROW_START, ROW_POS) : 1;
      if (run && n > 1) kernel = run;
      if (frame?.kernel !== kernel) frame = this.attentionFrame(kernel, kv, layer, scratch, h0, h1);
      frame.set("out", out + t * qDim * 4).set("q", q + t * qDim * 4).set("pageTable", pageTable);
      frame.set("start", h[r + ROW_START]).set("end", h[r + ROW_POS] + 1).set("nRows", n);
      frame.call(this.kernels);
      t += n;
    }
  }

  /**
   * The attention kernel of the cache type: for the F16 cache with ggmlOrder llama.cpp's flash attention path
   * for a batch of T rows whose (last) row is at pos (f16AttentionKernel; attention_f16 rounds the row's q to
   * half in place), without it attention_f16_twopass. A decode row (by default: T = 1) of the f32 cache and of
   * the F16 cache without ggmlOrder takes the same loops with each page's K and V swept into cache first
   * (assembly/attn-stream.ts, the same bits): its K and V come from memory, where a prefill chunk's rows read
   * what the chunk just stored, from cache.
   */
  protected attentionKernel(kv: KVLayout, T: number, pos: number, decodeRow = T === 1): AttentionKernel {
    switch (kv.kvType) {
      case "q8_0":
        return "attention_q8";
      case "u8_asym":
        return "attention_u8";
      case "f16": {
        const kernel = f16AttentionKernel(T, kv.headDim, pos, this.opts.ggmlOrder ?? false);
        return kernel === "attention_f16_twopass" && decodeRow ? "attention_f16_stream" : kernel;
      }
      default:
        return decodeRow ? "attention_stream" : "attention";
    }
  }

  /** The kernel's reused argument array with every argument that is the same for all rows set: the cache's layout, heads, ALiBi, top-k. */
  protected attentionFrame(kernel: AttentionKernel, kv: KVLayout, layer: number, scratch: number, h0: number, h1: number): AttentionFrame {
    let frame = this.attentionFrames.get(kernel);
    if (!frame) this.attentionFrames.set(kernel, frame = new AttentionFrame(kernel));
    const block = kv.pageSize * kvSlotBytes(kv.kvType, kv.kvDim, kv.qBlock), kOff = 2 * layer * block; // kvOffsets, without its object
    // the F16 cache's kernels take no top-k (and ignore its arguments)
    const topK = attentionTopK(kv), sel = kv.kvType === "f16" ? 0 : kv.topKScratch ?? 0;
    frame.set("att", scratch).set("kvBase", kv.base).set("pageSize", kv.pageSize).set("pageBytes", kv.pageBytes);
    frame.set("kOff", kOff).set("vOff", kOff + block).set("kvDim", kv.kvDim).set("qBlock", kv.qBlock);
    frame.set("nHeads", kv.nHeads).set("nKvHeads", kv.nKvHeads).set("headDim", kv.headDim).set("h0", h0).set("h1", h1);
    frame.set("slopes", kv.alibiSlopes ?? 0).set("topK", topK).set("sel", sel);
    return frame;
  }

  copy(dst: number, src: number, bytes: number): void {
    this.kernels.copy(dst, src, bytes);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.arena?.close();
    // drop every reference into the memory so the runtime can collect it
    this.heapI32 = this.heapU8 = undefined as unknown as Int32Array & Uint8Array;
    this.readPtr = -1, this.readView = new Float32Array(0);
    this.kernels = undefined as unknown as Kernels;
    return Promise.resolve();
  }
}
