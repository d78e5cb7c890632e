import type { ByteSource } from "../../io/source.ts";
import { GGMLType, type GGMLTypeId, ggmlTypeName } from "../../formats/ggml-types.ts";
import { OutOfMemoryError, UnsupportedError } from "../../errors.ts";
import { type Backend, type KVLayout, kvOffsets, type KVType, type Weight } from "../backend.ts";
import { adapterName, type Gpu, type GpuLimits, hasWgslFeature, limitsOf, requestAdapter, requestDevice, WebGpuError } from "./device.ts";
import { prelude, Q8_0_ACT_WORDS, Q8_K_ACT_WORDS } from "./wgsl-common.ts";
import {
  embedKernel,
  type Epilogue,
  lanesFor,
  matmulKernel,
  matmulTypes,
  pairedUnits,
  type Prologue,
  QUANTIZE_Q8_K,
  stagedWords,
} from "./wgsl-matmul.ts";
import {
  ADD,
  ADD_BIAS,
  ARGMAX,
  ATTENTION,
  attentionKernel,
  COPY,
  COPY_MANY,
  GELU_ERF,
  GELU_TANH,
  KV_STORE,
  LAYERNORM_SCALE,
  normQuantKernel,
  quantQ8_0Kernel,
  RMSNORM,
  ROPE,
  SWIGLU,
} from "./wgsl-ops.ts";
import { SAMPLE } from "./wgsl-sample.ts";
import { TILE_N, tiledKernel, tileTokens } from "./wgsl-tiled.ts";
import { attentionRowsKernel, MAX_TILE_HEAD_DIM, ROWS_PER_TILE } from "./wgsl-attention-rows.ts";
import { DeviceSampler } from "./sample.ts";
import type { ResolvedSamplingParams } from "../../sampling/params.ts";
import { ATTENTION_F16, KV_STORE_F16 } from "./wgsl-attention-f16.ts";
import { type FuseTarget, type Group, groupAt, LOOKAHEAD, type Op } from "./fuse.ts";

// GPUBufferUsage / GPUMapMode bits (the globals are absent outside WebGPU runtimes)
const MAP_READ = 0x1, COPY_SRC = 0x4, COPY_DST = 0x8, UNIFORM = 0x40, STORAGE = 0x80;

/** State addresses are byte offsets into the state buffer; weight addresses live far above them and only name a tensor. */
const STATE_START = 256;
const WEIGHT_BASE = 2 ** 40;
/** One dispatch's params: 128 bytes used, 256 apart (minUniformBufferOffsetAlignment). */
const PARAM_SLOT = 256;
const PARAM_WORDS = 32;
/**
 * Token rows from which a matmul runs as tiles in workgroup memory (wgsl-tiled.ts) rather than the one-row kernels
 * (8 token rows a workgroup): at 16 rows (batch-16 decode) the tiles measured 0.9-0.96x of those on an H200.
 */
const TILED_FROM = 32;
/**
 * Rows from which attention runs 16 rows a workgroup (wgsl-attention-rows.ts). Rows of different sequences in one
 * tile take a pass each, so a step of many sequences with a row each (batched decode) stays on the per-row kernel:
 * at 16 such rows the many-row kernel measured 0.7x (batch-16 decode on an H200).
 */
export const ATTENTION_ROWS_FROM = 64;
/** Ops queued before the fuser looks at them: enough for a layer's groups, few enough that the GPU starts early. */
const QUEUE_DRAIN_AT = 48;
const NO_OUT = 0xffffffff;
/** Logits one workgroup of the argmax's first stage takes, and the most such chunks (partial pairs kept in the state buffer). */
const ARGMAX_CHUNK = 4096;
const ARGMAX_CHUNKS = 2048;
const PARAM_SLOTS = 4096;
/**
 * Dispatches recorded before a submit: long chains (Model.decodeGreedy) then
 * run on the GPU while the host records the rest, instead of after it.
 */
const SUBMIT_EVERY = 256;
const MAX_GROUPS = 65535;
const MAX_QUERIES = 4096;

/** A row range of a weight that one binding covers (offset and size 0: the whole buffer). */
interface WeightRange {
  row0: number;
  rows: number;
  offset: number;
  size: number;
}

interface WeightBuffer {
  addr: number;
  bytes: number;
  buffer: Gpu;
  what: string;
}

const ACT_WORDS: Record<number, { block: number; words: number; quantizer: string }> = {
  [GGMLType.Q8_0]: { block: 32, words: Q8_0_ACT_WORDS, quantizer: "quantize_q8_0" },
  [GGMLType.Q4_0]: { block: 32, words: Q8_0_ACT_WORDS, quantizer: "quantize_q8_0" },
  [GGMLType.Q4_K]: { block: 256, words: Q8_K_ACT_WORDS, quantizer: "quantize_q8_k" },
  [GGMLType.Q6_K]: { block: 256, words: Q8_K_ACT_WORDS, quantizer: "quantize_q8_k" },
};

/**
 * The WebGPU backend. Device memory is one state buffer (activations, KV
 * pages, page tables, row metadata: the addresses the forward pass holds are
 * byte offsets into it) plus one buffer per weight tensor, uploaded once.
 * Ops are queued, then fused where runs of them touch the same rows (fuse.ts:
 * Q/K/V with RoPE and the KV write, gate/up with SwiGLU, the residual add in
 * the projection, RMSNorm in the next matmul or with its activation quantizer), and recorded into
 * one compute pass; the pass is submitted when the host reads (logits), writes
 * (next step's tokens), or flushes, so one forward pass is one submit and one readback.
 */
export class WebGpuBackend implements Backend, FuseTarget {
  readonly name = "webgpu";
  device!: Gpu;
  adapterName = "";
  limits!: GpuLimits;

  private adapter: Gpu;
  private layout!: Gpu;
  private pipelineLayout!: Gpu;
  /** Fused matmuls bind up to four weight tensors (q, k, v or gate, up; and the RMSNorm weight of a norm prologue). */
  private layout3!: Gpu;
  private pipelineLayout3!: Gpu;
  private readonly queue: Op[] = [];
  private readonly pipelines = new Map<string, Gpu>();
  private readonly bindGroups = new Map<string, Gpu>();
  private hasDot4 = false;

  private stateTop = STATE_START;
  private state: Gpu = null;
  private weightTop = WEIGHT_BASE;
  private readonly weights = new Map<number, WeightBuffer>();
  private readonly rangeCache = new WeakMap<Weight, WeightRange[]>();
  private dummy!: Gpu;
  private argmaxPartials = 0;

  private params!: Gpu;
  private readonly paramsHost = new Uint32Array((PARAM_SLOTS * PARAM_SLOT) / 4);
  private readonly paramOffset = new Uint32Array(1);
  /** Dispatches recorded so far (what fusion saves shows here). */
  dispatches = 0;
  /** Host milliseconds spent fusing and recording queued ops (the CPU side of a token). */
  recordMs = 0;
  private slot = 0;

  /**
   * The activation the last quantize dispatch left in scratch ("quantizer:x:n:T:scratch"):
   * matmuls of one input (q, k, v; gate, up) share it until another op runs.
   */
  private quantized: { key: string; x: number; xEnd: number; scratch: number; scratchEnd: number } | null = null;

  private encoder: Gpu = null;
  private pass: Gpu = null;
  /**
   * Readback buffers: one per read in flight (a caller may start the next read before awaiting the last, as
   * Model's device loop does to record the next run while Deno's mapAsync sleeps), kept for reuse.
   */
  private readonly staging: Array<{ buffer: Gpu; busy: boolean }> = [];

  private lost: string | null = null;
  private errors: string[] = [];
  private pendingScopes: Promise<unknown>[] = [];

  private readonly submitEvery: number;
  private readonly fuseAttentionQuant: boolean;
  private readonly fold: boolean | "layers";
  private readonly tiledFrom: number;
  private readonly tileRows: number;

  /** profile: GPU time per kernel (bench/webgpu.ts --profile), where the adapter has timestamp queries. */
  private readonly profile: boolean;
  private querySet: Gpu = null;
  private readonly slotKeys: string[] = [];
  private readonly profileReads: Promise<void>[] = [];
  private readonly gpuTime = new Map<string, { count: number; ns: number }>();

  /**
   * submitEvery: dispatches per submit at most (default 256; at most 4096).
   * profile: each dispatch in its own timed pass (slower: for measuring, never for serving).
   * tiledFrom: token rows from which matmuls run as tiles (default 32; for measuring the crossover);
   * tileRows: token rows a tile holds, 32 or 64 (default: wgsl-tiled.ts tileTokens picks).
   * fuseAttentionQuant: false quantizes attention's output in a dispatch of its own (for tests: the fused kernel's
   * blocks are bit-identical).
   * fold: false keeps the RMSNorm + quantize and quantize dispatches of Q8_0/Q4_0 decode, and the final RMSNorm, as
   * dispatches of their own instead of prologues of the one-row matmuls that read them (the tree before the fold: for
   * measuring both in one run, and for tests: the products are bit-identical); "layers" folds the layers' and keeps
   * the final RMSNorm apart (the classifier's many workgroups each recompute the norm: measured by bench/webgpu.ts).
   */
  constructor(
    opts: {
      adapter?: Gpu;
      submitEvery?: number;
      profile?: boolean;
      fuseAttentionQuant?: boolean;
      tiledFrom?: number;
      tileRows?: 32 | 64;
      fold?: boolean | "layers";
    } = {},
  ) {
    this.adapter = opts.adapter;
    this.tiledFrom = opts.tiledFrom ?? TILED_FROM;
    this.tileRows = opts.tileRows ?? 0;
    this.fuseAttentionQuant = opts.fuseAttentionQuant ?? true;
    this.fold = opts.fold ?? true;
    this.profile = opts.profile ?? false;
    // a query set holds 4096 timestamps at most: two per dispatch
    this.submitEvery = Math.max(1, Math.min(opts.submitEvery ?? SUBMIT_EVERY, this.profile ? MAX_QUERIES / 2 : PARAM_SLOTS));
  }

  async init(_bytes: number): Promise<void> {
    if (!this.adapter) {
      const { adapter, reason } = await requestAdapter();
      if (!adapter) throw new WebGpuError(reason!);
      this.adapter = adapter;
    }
    this.adapterName = adapterName(this.adapter);
    const device = await requestDevice(this.adapter, this.profile ? ["timestamp-query"] : []);
    this.device = device;
    if (this.profile && device.features.has("timestamp-query")) {
      this.querySet = device.createQuerySet({ type: "timestamp", count: MAX_QUERIES });
    }
    this.limits = limitsOf(device);
    this.hasDot4 = hasWgslFeature("packed_4x8_integer_dot_product");
    device.lost.then((info: Gpu) => {
      if (this.device === device) this.lost = `device lost (${info?.reason ?? "unknown"}): ${info?.message ?? ""}`;
    });
    device.addEventListener?.("uncapturederror", (ev: Gpu) => this.errors.push(String(ev.error?.message ?? ev.error)));
    this.layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: 4, buffer: { type: "storage" } },
        { binding: 1, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 2, visibility: 4, buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: PARAM_WORDS * 4 } },
      ],
    });
    this.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [this.layout] });
    this.layout3 = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: 4, buffer: { type: "storage" } },
        { binding: 1, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 2, visibility: 4, buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: PARAM_WORDS * 4 } },
        { binding: 3, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 4, visibility: 4, buffer: { type: "read-only-storage" } },
        { binding: 5, visibility: 4, buffer: { type: "read-only-storage" } },
      ],
    });
    this.pipelineLayout3 = device.createPipelineLayout({ bindGroupLayouts: [this.layout3] });
    this.params = device.createBuffer({ size: PARAM_SLOTS * PARAM_SLOT, usage: UNIFORM | COPY_DST });
    this.dummy = device.createBuffer({ size: 16, usage: STORAGE });
    this.argmaxPartials = this.alloc(ARGMAX_CHUNKS * 8, "argmax partials");
  }

  // ------------------------------------------------------------ memory

  alloc(bytes: number, what: string, align = 64): number {
    this.assertLive();
    if (what.startsWith("weight ")) return this.allocWeight(bytes, what);
    const at = Math.ceil(this.stateTop / align) * align;
    const top = at + bytes;
    if (top > this.limits.maxStorageBufferBindingSize) {
      throw new OutOfMemoryError(
        `WebGPU: ${what} (${bytes} bytes) would grow the state buffer to ${top} bytes, past this adapter's maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize}); use a shorter contextLength or fewer sequences`,
      );
    }
    this.stateTop = top;
    return at;
  }

  private allocWeight(bytes: number, what: string): number {
    // +16: kernels read the word after a 2-byte-aligned value; sizes must be multiples of 4
    const size = Math.ceil(bytes / 4) * 4 + 16;
    if (size > this.limits.maxBufferSize) {
      throw new OutOfMemoryError(
        `WebGPU: ${what} needs a ${size}-byte buffer, past this adapter's maxBufferSize (${this.limits.maxBufferSize})`,
      );
    }
    this.device.pushErrorScope("out-of-memory");
    const buffer = this.device.createBuffer({ size, usage: STORAGE | COPY_DST });
    this.pendingScopes.push(this.device.popErrorScope().then((e: Gpu) => e && this.errors.push(`allocating ${what}: ${e.message}`)));
    const addr = this.weightTop;
    this.weightTop += Math.ceil(size / 256) * 256;
    this.weights.set(addr, { addr, bytes, buffer, what });
    return addr;
  }

  /** The state buffer, created (or grown, keeping its contents) to cover every state allocation so far. */
  private stateBuffer(): Gpu {
    if (this.state && this.state.size >= this.stateTop) return this.state;
    this.submit();
    const size = Math.ceil(this.stateTop / 256) * 256;
    this.device.pushErrorScope("out-of-memory");
    const buf = this.device.createBuffer({ size, usage: STORAGE | COPY_SRC | COPY_DST });
    this.pendingScopes.push(
      this.device.popErrorScope().then((e: Gpu) => e && this.errors.push(`allocating the ${size}-byte state buffer: ${e.message}`)),
    );
    if (this.state) {
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(this.state, 0, buf, 0, this.state.size);
      this.device.queue.submit([enc.finish()]);
      this.state.destroy();
    }
    this.state = buf;
    this.bindGroups.clear();
    return buf;
  }

  write(ptr: number, data: ArrayBufferView): void {
    this.assertLive();
    if (ptr >= WEIGHT_BASE) throw new WebGpuError("write() addresses the state buffer only");
    this.drain(true);
    const state = this.stateBuffer();
    this.quantized = null;
    this.submit(); // work recorded before this write must see the old contents
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
      padded.set(bytes);
      // keep the bytes past the end as they are: this path only serves byte-sized host writes
      bytes = padded;
    }
    this.device.queue.writeBuffer(state, ptr, bytes);
  }

  async upload(ptr: number, source: ByteSource, offset: number, bytes: number): Promise<void> {
    this.assertLive();
    const w = this.weights.get(ptr);
    if (!w) throw new WebGpuError(`upload to ${ptr}, which is not a weight allocation`);
    const CHUNK = 32 << 20;
    const host = new Uint8Array(Math.min(CHUNK, Math.ceil(bytes / 4) * 4));
    for (let done = 0; done < bytes; done += CHUNK) {
      const n = Math.min(CHUNK, bytes - done);
      const view = host.subarray(0, Math.ceil(n / 4) * 4);
      view.fill(0, n);
      await source.read(offset + done, view.subarray(0, n));
      this.device.queue.writeBuffer(w.buffer, done, view);
    }
    await this.checkErrors();
  }

  async read(ptr: number, dest: Float32Array): Promise<void> {
    this.assertLive();
    this.drain(true);
    const state = this.stateBuffer();
    const bytes = dest.byteLength;
    const slot = this.stagingFor(bytes);
    const enc = this.open();
    this.pass.end();
    this.pass = null;
    // recorded and submitted before the first await: what the caller records next cannot change what this reads
    enc.copyBufferToBuffer(state, ptr, slot.buffer, 0, bytes);
    this.submit();
    try {
      await slot.buffer.mapAsync(1, 0, bytes);
    } catch (e) {
      slot.busy = false;
      throw new WebGpuError(`reading back ${bytes} bytes failed: ${this.lost ?? (e as Error).message}`, { cause: e });
    }
    dest.set(new Float32Array(slot.buffer.getMappedRange(0, bytes)));
    slot.buffer.unmap();
    slot.busy = false;
    await this.checkErrors();
  }

  /** A readback buffer of at least `bytes` that no read in flight holds (a larger one replaces an idle one too small). */
  private stagingFor(bytes: number): { buffer: Gpu; busy: boolean } {
    let slot = this.staging.find((s) => !s.busy && s.buffer.size >= bytes);
    if (!slot) {
      const buffer = this.device.createBuffer({ size: Math.ceil(bytes / 256) * 256, usage: MAP_READ | COPY_DST });
      const idle = this.staging.findIndex((s) => !s.busy);
      if (idle >= 0) {
        this.staging[idle].buffer.destroy();
        this.staging[idle] = slot = { buffer, busy: false };
      } else this.staging.push(slot = { buffer, busy: false });
    }
    slot.busy = true;
    return slot;
  }

  async flush(): Promise<void> {
    this.assertLive();
    this.drain(true);
    this.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.checkErrors();
  }

  close(): Promise<void> {
    if (!this.device) return Promise.resolve();
    try {
      this.drain(true);
      this.submit();
    } catch { /* closing anyway */ }
    this.queue.length = 0;
    for (const w of this.weights.values()) w.buffer.destroy();
    this.weights.clear();
    this.state?.destroy();
    for (const s of this.staging.splice(0)) s.buffer.destroy();
    this.params?.destroy();
    this.dummy?.destroy();
    const device = this.device;
    this.device = undefined;
    this.bindGroups.clear();
    this.pipelines.clear();
    device.destroy();
    return Promise.resolve();
  }

  // ------------------------------------------------------------ recording

  private assertLive(): void {
    if (this.lost) throw new WebGpuError(this.lost);
    if (!this.device) throw new WebGpuError("the backend is not initialized (or was closed)");
  }

  private async checkErrors(): Promise<void> {
    if (this.pendingScopes.length) {
      const scopes = this.pendingScopes;
      this.pendingScopes = [];
      await Promise.all(scopes);
    }
    if (this.lost) throw new WebGpuError(this.lost);
    if (this.errors.length) {
      const msg = this.errors.join("; ");
      this.errors = [];
      throw new WebGpuError(msg);
    }
  }

  private open(): Gpu {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.encoder;
  }

  /** Ends the pass and submits everything recorded, with its params. */
  private submit(): void {
    if (!this.encoder) return;
    if (this.pass) this.pass.end();
    if (this.slot > 0) this.device.queue.writeBuffer(this.params, 0, this.paramsHost, 0, (this.slot * PARAM_SLOT) / 4);
    const timed = this.querySet && this.slot > 0 ? this.resolveTimes(this.encoder, this.slot) : null;
    this.device.queue.submit([this.encoder.finish()]);
    if (timed) this.profileReads.push(timed());
    this.encoder = this.pass = null;
    this.slot = 0;
  }

  /** Profiling: copies this submit's timestamps out; the returned reader adds them to gpuTime once the GPU is done. */
  private resolveTimes(enc: Gpu, slots: number): () => Promise<void> {
    const bytes = slots * 16;
    const resolved = this.device.createBuffer({ size: bytes, usage: 0x200 | COPY_SRC }); // QUERY_RESOLVE
    const host = this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
    enc.resolveQuerySet(this.querySet, 0, 2 * slots, resolved, 0);
    enc.copyBufferToBuffer(resolved, 0, host, 0, bytes);
    const keys = this.slotKeys.slice(0, slots);
    return async () => {
      await host.mapAsync(1);
      const t = new BigUint64Array(host.getMappedRange());
      keys.forEach((key, i) => {
        const e = this.gpuTime.get(key) ?? { count: 0, ns: 0 };
        e.count++;
        e.ns += Number(t[2 * i + 1] - t[2 * i]);
        this.gpuTime.set(key, e);
      });
      host.unmap();
      host.destroy();
      resolved.destroy();
    };
  }

  /** Profiling: GPU nanoseconds per kernel (pipeline key) since the last call; empty unless constructed with profile. */
  async gpuTimes(): Promise<Map<string, { count: number; ns: number }>> {
    await this.flush();
    await Promise.all(this.profileReads.splice(0));
    const out = new Map(this.gpuTime);
    this.gpuTime.clear();
    return out;
  }

  private pipeline(key: string, source: () => string, weights = 1): Gpu {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: prelude(this.hasDot4, weights) + source(), label: key });
      const layout = weights > 1 ? this.pipelineLayout3 : this.pipelineLayout;
      p = this.device.createComputePipeline({ layout, compute: { module, entryPoint: "main" }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Bind group for the state buffer plus one weight range (or none). */
  private bindGroup(w: Weight | null, offset = 0, size = 0): Gpu {
    const key = w ? `${w.ptr}:${offset}` : "-";
    let g = this.bindGroups.get(key);
    if (!g) {
      const wb = w ? this.weightBuffer(w) : undefined;
      const buf = wb ? wb.buffer : this.dummy;
      const entry = w ? { buffer: buf, offset: wb!.base + offset, size: size || wb!.size - offset } : { buffer: buf };
      g = this.device.createBindGroup({
        layout: this.layout,
        entries: [{ binding: 0, resource: { buffer: this.state } }, { binding: 1, resource: entry }, {
          binding: 2,
          resource: { buffer: this.params, size: PARAM_WORDS * 4 },
        }],
      });
      this.bindGroups.set(key, g);
    }
    return g;
  }

  /** Bind group for the state buffer plus two or three weight tensors (a fused matmul); a row view binds at its offset. */
  private bindGroup3(ws: Array<Weight | null>): Gpu {
    const key = ws.map((w) => w?.ptr ?? "-").join("|");
    let g = this.bindGroups.get(key);
    if (!g) {
      const res = (i: number) => {
        if (!ws[i]) return { buffer: this.dummy };
        const wb = this.weightBuffer(ws[i]!);
        return wb.base === 0 ? { buffer: wb.buffer } : { buffer: wb.buffer, offset: wb.base, size: wb.size };
      };
      g = this.device.createBindGroup({
        layout: this.layout3,
        entries: [
          { binding: 0, resource: { buffer: this.state } },
          { binding: 1, resource: res(0) },
          { binding: 2, resource: { buffer: this.params, size: PARAM_WORDS * 4 } },
          { binding: 3, resource: res(1) },
          { binding: 4, resource: res(2) },
          { binding: 5, resource: res(3) },
        ],
      });
      this.bindGroups.set(key, g);
    }
    return g;
  }

  /**
   * The buffer holding w, w's byte offset in it and the bytes from there a binding may cover: a row view of a
   * fused tensor (GPT-2's and BLOOM's q/k/v of attn_qkv, and their biases) starts inside its tensor's buffer.
   */
  private weightBuffer(w: Weight): { buffer: Gpu; base: number; size: number } {
    const whole = this.weights.get(w.ptr);
    if (whole) return { buffer: whole.buffer, base: 0, size: whole.buffer.size };
    for (const b of this.weights.values()) {
      if (w.ptr <= b.addr || w.ptr + w.bytes > b.addr + b.bytes) continue;
      const base = w.ptr - b.addr, align = this.limits.minStorageBufferOffsetAlignment;
      if (base % align !== 0) {
        throw new UnsupportedError(
          `WebGPU: ${w.name} starts at byte ${base} of ${b.what}, not a multiple of this adapter's binding alignment ${align}`,
        );
      }
      return { buffer: b.buffer, base, size: Math.min(Math.ceil(w.bytes / 4) * 4 + 16, b.buffer.size - base) };
    }
    throw new WebGpuError(`${w.name} is not in GPU memory`);
  }

  /**
   * Records one dispatch. params: up to 16 u32 (addresses already in words).
   * groups: [x, y], or a 1-D count of 256-thread groups folded into x, y.
   */
  private dispatch(
    key: string,
    source: () => string,
    params: ArrayLike<number>,
    groups: number | [number, number],
    w: Weight | Array<Weight | null> | null = null,
    wOffset = 0,
    wSize = 0,
    weightBindings = 1,
  ): void {
    this.assertLive();
    this.stateBuffer();
    if (!key.startsWith("matmul:") && !key.startsWith("tiled:")) this.quantized = null; // any other op may overwrite x or the scratch
    if (this.slot >= this.submitEvery) this.submit();
    const multi = Array.isArray(w);
    const pipe = this.pipeline(key, source, multi ? Math.max(3, weightBindings) : 1);
    const bg = multi ? this.bindGroup3(w) : this.bindGroup(w, wOffset, wSize);
    if (this.querySet) {
      // one timed pass per dispatch
      this.open();
      this.pass.end();
      this.pass = this.encoder.beginComputePass({
        timestampWrites: { querySet: this.querySet, beginningOfPassWriteIndex: 2 * this.slot, endOfPassWriteIndex: 2 * this.slot + 1 },
      });
      this.slotKeys[this.slot] = key;
    }
    this.open();
    const base = (this.slot * PARAM_SLOT) / 4;
    for (let i = 0; i < PARAM_WORDS; i++) this.paramsHost[base + i] = params[i] ?? 0;
    this.dispatches++;
    this.pass.setPipeline(pipe);
    // the typed-array form: Deno converts a plain array of offsets element by element (0.5 us a dispatch)
    this.paramOffset[0] = this.slot * PARAM_SLOT;
    this.pass.setBindGroup(0, bg, this.paramOffset, 0, 1);
    this.slot++;
    let gx: number, gy: number;
    if (typeof groups === "number") {
      gx = Math.min(groups, MAX_GROUPS);
      gy = Math.ceil(groups / MAX_GROUPS);
    } else [gx, gy] = groups;
    if (gx > 0 && gy > 0) this.pass.dispatchWorkgroups(gx, gy);
  }

  private elementwise(key: string, src: string, params: number[], n: number): void {
    this.dispatch(key, () => src, params, Math.ceil(n / 256));
  }

  // ------------------------------------------------------------ ops

  supportsWeight(type: GGMLTypeId): boolean {
    return matmulTypes().includes(type);
  }

  samplesOnDevice(params: ResolvedSamplingParams): boolean {
    return DeviceSampler.supports(params);
  }

  deviceSampler(vocabSize: number, rows: number): DeviceSampler {
    return new DeviceSampler(this, vocabSize, rows);
  }

  /** f32, and f16: llama.cpp's default cache, with ggml's flash-attention arithmetic (wgsl-attention-f16.ts). */
  supportsKV(type: KVType): boolean {
    return type === "f32" || type === "f16";
  }

  matmulScratchBytes(type: GGMLTypeId, n: number, T: number): number {
    const a = ACT_WORDS[type];
    return a ? T * Math.ceil(n / a.block) * a.words * 4 : 0;
  }

  /** Row ranges of a tensor that fit one binding, at offsets the adapter accepts. */
  private ranges(w: Weight): WeightRange[] {
    // the same for a weight's whole life, and asked for several times per op by the fuser: computed once
    let r = this.rangeCache.get(w);
    if (!r) this.rangeCache.set(w, r = this.computeRanges(w));
    return r;
  }

  private computeRanges(w: Weight): WeightRange[] {
    const rowBytes = w.bytes / w.rows;
    const limit = this.limits.maxStorageBufferBindingSize - 256;
    const bufSize = this.weightBuffer(w).size;
    if (bufSize <= this.limits.maxStorageBufferBindingSize && w.rows <= MAX_GROUPS * 8) {
      return [{ row0: 0, rows: w.rows, offset: 0, size: 0 }];
    }
    const step = Math.max(256, Math.min(Math.floor(limit / rowBytes / 256) * 256, MAX_GROUPS * 8 - (MAX_GROUPS * 8) % 256));
    const out = [];
    for (let r = 0; r < w.rows; r += step) {
      const rows = Math.min(step, w.rows - r);
      const offset = r * rowBytes;
      out.push({ row0: r, rows, offset, size: Math.min(Math.ceil((rows * rowBytes) / 4) * 4 + 16, bufSize - offset) });
    }
    return out;
  }

  // ------------------------------------------------------------ the queue

  /** FuseTarget: one binding holds the whole tensor, and a fused dispatch's rows fit its grid. */
  whole(w: Weight): boolean {
    const r = this.ranges(w);
    return r.length === 1 && r[0].size === 0 && w.rows <= MAX_GROUPS * 4;
  }

  /** FuseTarget: the matmul's input is quantized for this weight type. */
  quantizesInput(w: Weight): boolean {
    return ACT_WORDS[w.type] !== undefined;
  }

  /**
   * FuseTarget: one row of input that a matmul of w stages in workgroup memory, normed (F32/F16) or normed and
   * quantized to Q8_0 (Q8_0/Q4_0 weights, unless constructed with fold: false) by each workgroup itself
   * (wgsl-matmul.ts prologueCode). Q4_K/Q6_K inputs (Q8_K blocks) keep their RMSNorm + quantize dispatch.
   */
  stagesInput(w: Weight, T: number): boolean {
    if (T !== 1) return false;
    if (!this.quantizesInput(w)) return stagedWords(w.cols) > 0;
    return this.foldsQuant(w);
  }

  /** One row of input to a matmul of w can be quantized to Q8_0 blocks in its workgroups (prologue normq or quant). */
  private foldsQuant(w: Weight): boolean {
    return this.fold !== false && ACT_WORDS[w.type]?.block === 32 && stagedWords(w.cols, "quant") > 0;
  }

  /** FuseTarget: an RMSNorm may become the prologue of a lone one-row matmul (the classifier), not only of q|k|v or gate|up. */
  normsAlone(w: Weight): boolean {
    return this.fold === true && this.whole(w);
  }

  private enqueue(op: Op): void {
    this.assertLive();
    this.queue.push(op);
    if (this.queue.length >= QUEUE_DRAIN_AT) this.drain(false);
  }

  /** Records the queued ops, fused where a rule applies; short of `final`, keeps the last few for a group they may start. */
  private drain(final: boolean): void {
    const t0 = performance.now();
    const q = this.queue;
    let i = 0;
    while (i < q.length && (final || q.length - i >= LOOKAHEAD)) {
      const { group, len } = groupAt(q, i, this);
      this.record(group);
      i += len;
    }
    q.splice(0, i);
    this.recordMs += performance.now() - t0;
  }

  private record(g: Group): void {
    switch (g.g) {
      case "single":
        return this.recordOp(g.op);
      case "attnQuant":
        return this.attentionNow(g.attn, g.next);
      case "normQuant":
        return this.normQuant(g.norm.out, g.norm.x, g.norm.w, g.norm.n, g.norm.eps, g.norm.T, g.next.w, g.next.scratch);
      case "qkv": {
        const { q, key, value, ropeQ, store } = g;
        const T = q.T, kv = store.kv, { kOff, vOff } = kvOffsets(kv, store.layer);
        const { act, prologue, stage } = this.input(q, g.norm);
        this.fusedMatmul("qkv", [q.w, key.w, value.w, g.norm?.w ?? null], T, q.w.rows + 2 * key.w.rows, prologue, [
          [0, act / 4, q.w.cols, T],
          [q.w.rows, key.w.rows, value.w.rows, q.w.bytes / q.w.rows],
          [q.out / 4, key.out / 4, value.out / 4, ropeQ.positions / 4],
          [ropeQ.table / 4, store.rows / 4, ropeQ.headDim, ropeQ.ropeDim | ((ropeQ.halves ? 1 : 0) << 16)],
          [kv.base, kv.pageBytes, kv.pageSize, kv.kvDim],
          [kOff, vOff, 0, 0],
          stage,
        ]);
        return;
      }
      case "swiglu": {
        const { gate, up } = g;
        const { act, prologue, stage } = this.input(gate, g.norm);
        this.fusedMatmul("swiglu", [gate.w, up.w, null, g.norm?.w ?? null], gate.T, 2 * gate.w.rows, prologue, [
          [0, act / 4, gate.w.cols, gate.T],
          [gate.w.rows, 0, gate.w.rows, gate.w.bytes / gate.w.rows],
          [gate.out / 4, up.out / 4, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          stage,
        ]);
        return;
      }
      case "store": {
        const { mm } = g;
        const { act, prologue, stage } = this.input(mm, g.norm);
        this.fusedMatmul("store", [mm.w, null, null, g.norm.w], mm.T, mm.w.rows, prologue, [
          [0, act / 4, mm.w.cols, mm.T],
          [mm.w.rows, 0, mm.w.rows, mm.w.bytes / mm.w.rows],
          [mm.out / 4, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          stage,
        ]);
        return;
      }
      case "residual": {
        const { mm, add } = g;
        const { act, prologue, stage } = this.input(mm);
        this.fusedMatmul("residual", [mm.w], mm.T, mm.w.rows, prologue, [
          [0, act / 4, mm.w.cols, mm.T],
          [mm.w.rows, 0, mm.w.rows, mm.w.bytes / mm.w.rows],
          [mm.out / 4, add.out / 4, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 0, 0],
          stage,
        ]);
        return;
      }
      case "copies": {
        const words = g.copies.map((c) => [c.dst / 4, c.src / 4, c.bytes / 4, 0]);
        const most = Math.max(...g.copies.map((c) => c.bytes / 4));
        this.dispatch("copy_many", () => COPY_MANY, [0, 0, 0, 0, ...words.flat()], [Math.ceil(most / 256), g.copies.length]);
        return;
      }
      case "argmax":
        return this.argmaxNow(g.pick.out, g.pick.x, g.pick.n, g.copy.dst / 4);
    }
  }

  private recordOp(op: Op): void {
    switch (op.k) {
      case "matmul":
        return this.matmulNow(op.out, op.x, op.w, op.T, op.scratch);
      case "rmsnorm": {
        const epsBits = new Uint32Array(new Float32Array([op.eps]).buffer)[0];
        return this.dispatch("rmsnorm", () => RMSNORM, [op.out / 4, op.x / 4, op.n, op.T, epsBits], [op.T, 1], op.w);
      }
      case "rope":
        return this.elementwise("rope", ROPE, [
          op.x / 4,
          op.table / 4,
          op.positions / 4,
          op.T,
          op.nHeads,
          op.headDim,
          op.ropeDim,
          op.halves ? 1 : 0,
        ], op.T * op.nHeads * (op.ropeDim / 2));
      case "kvStore": {
        const { kv, T } = op, { kOff, vOff } = kvOffsets(kv, op.layer);
        const f16 = kv.kvType === "f16"; // a thread per word: two halves
        return this.elementwise(f16 ? "kvstore_f16" : "kvstore", f16 ? KV_STORE_F16 : KV_STORE, [
          op.key / 4,
          op.value / 4,
          op.rows / 4,
          T,
          kv.base,
          kv.pageBytes,
          kv.pageSize,
          kv.kvDim,
          kOff,
          vOff,
        ], f16 ? T * kv.kvDim / 2 : T * kv.kvDim);
      }
      case "add":
        return this.elementwise("add", ADD, [op.out / 4, op.a / 4, op.b / 4, op.n], op.n);
      case "swiglu":
        return this.elementwise("swiglu", SWIGLU, [op.out / 4, op.gate / 4, op.up / 4, op.n * op.T], op.n * op.T);
      case "copy":
        return this.elementwise("copy", COPY, [op.dst / 4, op.src / 4, op.bytes / 4], op.bytes / 4);
      case "argmax":
        return this.argmaxNow(op.out, op.x, op.n, NO_OUT);
      case "attention":
        return this.attentionNow(op);
      case "other":
        return op.run();
    }
  }

  // ------------------------------------------------------------ ops

  embed(out: number, table: Weight, tokens: number, T: number): void {
    const n = table.cols;
    const rowBytes = table.bytes / table.rows;
    this.enqueue({
      k: "other",
      run: () => {
        for (const r of this.ranges(table)) {
          this.dispatch(
            `embed:${table.type}`,
            () => embedKernel(table.type),
            [out / 4, tokens / 4, n, T, r.row0, r.rows, rowBytes],
            Math.ceil((n * T) / 256),
            table,
            r.offset,
            r.size,
          );
        }
      },
    });
  }

  /** The matmul scratch's address in the state buffer (setMatmulScratch). */
  private matmulScratch = 0;

  setMatmulScratch(ptr: number, _bytes: number): void {
    this.matmulScratch = ptr;
  }

  matmul(out: number, x: number, w: Weight, T: number): void {
    if (!this.supportsWeight(w.type)) throw new UnsupportedError(`the WebGPU backend has no matmul for ${ggmlTypeName(w.type)} weights`);
    const a = ACT_WORDS[w.type];
    if (a && w.cols % a.block !== 0) throw new UnsupportedError(`${w.name}: ${w.cols} columns do not split into ${a.block}-element blocks`);
    if (!a && w.cols % 4 !== 0) {
      throw new UnsupportedError(`${w.name}: the WebGPU F32/F16 matmul needs a multiple of 4 columns, got ${w.cols}`);
    }
    this.enqueue({ k: "matmul", out, x, w, T, scratch: this.matmulScratch });
  }

  /** The address a matmul of w reads its input at: x itself, or its quantized blocks in scratch (quantized now unless still there). */
  private matmulInput(w: Weight, x: number, T: number, scratch: number): number {
    const a = ACT_WORDS[w.type];
    if (!a) return x;
    const n = w.cols;
    const key = `${a.quantizer}:${x}:${n}:${T}:${scratch}`;
    if (this.quantized?.key !== key) {
      if (a.block === 32) this.dispatch("quantize_q8_0", () => quantQ8_0Kernel(false), [scratch / 4, x / 4, n, T], [Math.ceil(n / 256), T]);
      else this.dispatch("quantize_q8_k", () => QUANTIZE_Q8_K, [scratch / 4, x / 4, n, T], Math.ceil((T * n) / a.block / 256));
      this.quantized = { key, x, xEnd: x + T * n * 4, scratch, scratchEnd: scratch + this.matmulScratchBytes(w.type, n, T) };
    }
    return scratch;
  }

  /**
   * How a fused matmul gets its input: normed by its own prologue (one row of F32/F16 weights' input that
   * fits workgroup memory; `stage` = params row g), or x itself or its quantized blocks in scratch, after a
   * norm dispatch of its own where there is a norm.
   */
  private input(
    mm: { x: number; w: Weight; T: number; scratch: number },
    norm?: { out: number; x: number; w: Weight; n: number; eps: number; T: number },
  ): { act: number; prologue: Prologue; stage: number[] } {
    const quantized = this.quantizesInput(mm.w);
    if (norm && this.stagesInput(mm.w, mm.T)) {
      const epsBits = new Uint32Array(new Float32Array([norm.eps]).buffer)[0];
      return { act: 0, prologue: quantized ? "normq" : "norm", stage: [norm.x / 4, norm.out / 4, epsBits, mm.scratch / 4] };
    }
    if (norm) this.recordOp({ k: "rmsnorm", ...norm });
    // one row not quantized yet (the down projection's input): each workgroup quantizes it, no dispatch of its own
    if (quantized && mm.T === 1 && this.foldsQuant(mm.w) && this.quantized?.key !== this.quantKey(mm.w, mm.x, 1, mm.scratch)) {
      return { act: 0, prologue: "quant", stage: [mm.x / 4, 0, 0, mm.scratch / 4] };
    }
    return { act: this.matmulInput(mm.w, mm.x, mm.T, mm.scratch), prologue: "none", stage: [0, 0, 0, 0] };
  }

  /** The `quantized` key of x's activation blocks for a matmul of w. */
  private quantKey(w: Weight, x: number, T: number, scratch: number): string {
    return `${ACT_WORDS[w.type].quantizer}:${x}:${w.cols}:${T}:${scratch}`;
  }

  /** Token rows per matmul workgroup: 1 for decode, so no accumulator or reduction is spent on absent rows. */
  private tokenTile(T: number): number {
    return T === 1 ? 1 : T <= 4 ? 4 : 8;
  }

  private matmulNow(out: number, x: number, w: Weight, T: number, scratch: number): void {
    const act = this.matmulInput(w, x, T, scratch);
    const rowBytes = w.bytes / w.rows, tt = this.tokenTile(T), paired = pairedUnits(w.type, w.cols);
    for (const r of this.ranges(w)) {
      const params = [0, act / 4, w.cols, T, r.rows, r.row0, w.rows, rowBytes, out / 4];
      if (T >= this.tiledFrom) {
        const bm = this.tileRows || tileTokens(T, r.rows);
        this.dispatch(
          `tiled:${w.type}:store:${bm}`,
          () => tiledKernel(w.type, "store", bm),
          params,
          [
            Math.ceil(r.rows / TILE_N),
            Math.ceil(T / bm),
          ],
          w,
          r.offset,
          r.size,
        );
        continue;
      }
      const lanes = lanesFor(w.type, w.cols);
      this.dispatch(
        `matmul:${w.type}:store:${tt}:${paired}:${lanes}`,
        () => matmulKernel(w.type, "store", tt, paired, lanes),
        params,
        [Math.ceil(r.rows / (256 / lanes)), Math.ceil(T / tt)],
        w,
        r.offset,
        r.size,
      );
    }
    // the quantized input stays valid for the next matmul unless this one wrote over its source or the scratch
    const q = this.quantized, outEnd = out + T * w.rows * 4;
    if (q && ((out < q.xEnd && q.x < outEnd) || (out < q.scratchEnd && q.scratch < outEnd))) this.quantized = null;
  }

  /** One dispatch of a fused matmul (wgsl-matmul.ts's epilogues) over `rows` weight rows in all; params as vec4 rows a, b, c, ... */
  private fusedMatmul(epilogue: Epilogue, ws: Array<Weight | null>, T: number, rows: number, prologue: Prologue, params: number[][]): void {
    const w0 = ws[0]!, n = w0.cols;
    const type = w0.type, tt = this.tokenTile(T), paired = pairedUnits(type, n), lanes = lanesFor(type, n);
    const multi = ws.length > 1 && ws.slice(1).some((w) => w);
    const binds = prologue === "norm" || prologue === "normq" ? 4 : multi ? 3 : 1;
    if (T >= this.tiledFrom && prologue === "none") {
      const bm = this.tileRows || tileTokens(T, rows);
      this.dispatch(
        `tiled:${type}:${epilogue}:${bm}`,
        () => tiledKernel(type, epilogue, bm),
        params.flat(),
        [Math.ceil(rows / TILE_N), Math.ceil(T / bm)],
        binds > 1 ? ws : w0,
        0,
        0,
        binds,
      );
      this.quantized = null;
      return;
    }
    this.dispatch(
      `matmul:${type}:${epilogue}:${tt}:${paired}:${lanes}:${prologue}:${prologue === "none" ? 0 : n}`,
      () => matmulKernel(type, epilogue, tt, paired, lanes, prologue, n),
      params.flat(),
      [Math.ceil(rows / (256 / lanes)), Math.ceil(T / tt)],
      binds > 1 ? ws : w0,
      0,
      0,
      binds,
    );
    this.quantized = null; // its outputs may lie anywhere: quantize afresh
  }

  /** RMSNorm and the quantizer of the matmul (of weight `next`) that reads its output, in one dispatch. */
  private normQuant(out: number, x: number, w: Weight, n: number, eps: number, T: number, next: Weight, scratch: number): void {
    const a = ACT_WORDS[next.type];
    const epsBits = new Uint32Array(new Float32Array([eps]).buffer)[0];
    if (a.block === 32) {
      this.dispatch("normquant:32", () => quantQ8_0Kernel(true), [scratch / 4, x / 4, n, T, epsBits, out / 4], [Math.ceil(n / 256), T], w);
    } else this.dispatch("normquant:256", () => normQuantKernel(256), [out / 4, x / 4, n, T, epsBits, scratch / 4], [T, 1], w);
    this.quantized = {
      key: `${a.quantizer}:${out}:${n}:${T}:${scratch}`,
      x: out,
      xEnd: out + T * n * 4,
      scratch,
      scratchEnd: scratch + this.matmulScratchBytes(next.type, n, T),
    };
  }

  rmsnorm(out: number, x: number, w: Weight, n: number, eps: number, T: number): void {
    this.enqueue({ k: "rmsnorm", out, x, w, n, eps, T });
  }

  layernorm(out: number, x: number, w: Weight, bias: Weight | undefined, n: number, eps: number, T: number): void {
    const epsBits = new Uint32Array(new Float32Array([eps]).buffer)[0];
    this.enqueue({ k: "other", run: () => this.dispatch("layernorm", () => LAYERNORM_SCALE, [out / 4, x / 4, n, T, epsBits], [T, 1], w) });
    if (bias) this.addBias(out, bias, T, n);
  }

  addBias(x: number, bias: Weight, rows: number, n: number): void {
    this.enqueue({
      k: "other",
      run: () => this.dispatch("addbias", () => ADD_BIAS, [x / 4, rows * n, n], Math.ceil((rows * n) / 256), bias),
    });
  }

  gelu(out: number, x: number, n: number): void {
    this.enqueue({ k: "other", run: () => this.elementwise("gelu", GELU_TANH, [out / 4, x / 4, n], n) });
  }

  geluErf(out: number, x: number, n: number): void {
    this.enqueue({ k: "other", run: () => this.elementwise("gelu_erf", GELU_ERF, [out / 4, x / 4, n], n) });
  }

  rope(x: number, table: number, positions: number, T: number, nHeads: number, headDim: number, ropeDim: number, halves: boolean): void {
    this.enqueue({ k: "rope", x, table, positions, T, nHeads, headDim, ropeDim, halves });
  }

  add(out: number, a: number, b: number, n: number): void {
    this.enqueue({ k: "add", out, a, b, n });
  }

  swiglu(out: number, gate: number, up: number, n: number, T: number): void {
    this.enqueue({ k: "swiglu", out, gate, up, n, T });
  }

  kvStore(kv: KVLayout, layer: number, k: number, v: number, rows: number, T: number): void {
    this.enqueue({ k: "kvStore", kv, layer, key: k, value: v, rows, T });
  }

  attention(out: number, q: number, kv: KVLayout, layer: number, rows: number, T: number, _scratch: number): void {
    if (kv.headDim > 256) throw new UnsupportedError(`the WebGPU attention kernel handles head sizes up to 256, not ${kv.headDim}`);
    if (kv.topK) throw new UnsupportedError("the WebGPU backend has no sparse top-k attention (attention.topK); use the WASM backend");
    if (kv.kvType === "f16" && kv.headDim % 2) {
      throw new UnsupportedError(`the WebGPU F16 cache reads halves in pairs: head size ${kv.headDim} is odd (use kvCacheType "f32")`);
    }
    this.enqueue({ k: "attention", out, q, kv, layer, rows, T });
  }

  /** The many-row kernel (16 rows a workgroup, wgsl-attention-rows.ts) serves these rows. */
  private attentionRows(kv: KVLayout, T: number): boolean {
    return T >= ATTENTION_ROWS_FROM && kv.kvType === "f32" && kv.headDim <= MAX_TILE_HEAD_DIM && kv.headDim % 8 === 0;
  }

  /** FuseTarget: the per-row attention kernel quantizes its head's output in whole Q8_0 blocks for a Q8_0/Q4_0 matmul. */
  quantizesAttention(kv: KVLayout, T: number, w: Weight): boolean {
    return this.fuseAttentionQuant && kv.kvType === "f32" && ACT_WORDS[w.type]?.block === 32 && !this.attentionRows(kv, T) &&
      kv.headDim % 32 === 0 &&
      kv.headDim <= 128;
  }

  /** quantTo: also the Q8_0 blocks of the output for the matmul `next` reads them, at its scratch (attnQuant). */
  private attentionNow(op: Extract<Op, { k: "attention" }>, next?: Extract<Op, { k: "matmul" }>): void {
    const { out, q, kv, layer, rows, T } = op;
    const { kOff, vOff } = kvOffsets(kv, layer);
    // d = (ALiBi on, its slopes' word address)
    const alibi = kv.alibiSlopes === undefined ? [0, 0] : [1, kv.alibiSlopes / 4];
    const params = [
      out / 4,
      q / 4,
      rows / 4,
      kv.base,
      kv.pageBytes,
      kv.pageSize,
      kv.kvDim,
      kv.headDim,
      kv.nHeads,
      kv.nKvHeads,
      kOff,
      vOff,
      ...alibi,
      0,
      0,
      T,
      next ? next.scratch / 4 : 0,
    ];
    if (kv.kvType === "f16") {
      // ggml's one_chunk, one (head, row) a workgroup, every row alike (batch invariance); d.z = the score scale, 1 / sqrtf(headDim)
      params[14] = new Uint32Array(new Float32Array([1 / Math.fround(Math.sqrt(kv.headDim))]).buffer)[0];
      this.dispatch("attention_f16", () => ATTENTION_F16, params, [kv.nHeads, T]);
      return;
    }
    // many rows: 16 a workgroup, each K/V position read once for all of them (wgsl-attention-rows.ts)
    if (this.attentionRows(kv, T)) {
      this.dispatch(`attention_rows:${kv.headDim}`, () => attentionRowsKernel(kv.headDim), params, [
        kv.nHeads,
        Math.ceil(T / ROWS_PER_TILE),
      ]);
    } else if (next) {
      this.dispatch("attention_quant", () => attentionKernel(true), params, [kv.nHeads, T]);
      const n = next.w.cols;
      this.quantized = {
        key: `${ACT_WORDS[next.w.type].quantizer}:${out}:${n}:${T}:${next.scratch}`,
        x: out,
        xEnd: out + T * n * 4,
        scratch: next.scratch,
        scratchEnd: next.scratch + this.matmulScratchBytes(next.w.type, n, T),
      };
    } else this.dispatch("attention", () => ATTENTION, params, [kv.nHeads, T]);
  }

  copy(dst: number, src: number, bytes: number): void {
    if (dst % 4 || src % 4 || bytes % 4) throw new WebGpuError(`copy of ${bytes} bytes at ${src} -> ${dst} is not word-aligned`);
    this.enqueue({ k: "copy", dst, src, bytes });
  }

  argmax(out: number, x: number, n: number): void {
    this.enqueue({ k: "argmax", out, x, n });
  }

  /** Records one step of the device sampler (sample.ts lays out its params; the array is read when the dispatch is recorded). */
  sampleOnDevice(params: Uint32Array): void {
    this.enqueue({ k: "other", run: () => this.dispatch("sample", () => SAMPLE, params, [1, 1]) });
  }

  /** out2: a word address that gets the pick too (the next step's token), or NO_OUT. */
  private argmaxNow(out: number, x: number, n: number, out2: number): void {
    const chunks = Math.ceil(n / ARGMAX_CHUNK);
    if (chunks === 1 || chunks > ARGMAX_CHUNKS) {
      this.dispatch("argmax", () => ARGMAX, [out / 4, x / 4, n, out2, 0, n, 0], [1, 1]);
      return;
    }
    const part = this.argmaxPartials / 4;
    this.dispatch("argmax", () => ARGMAX, [part, x / 4, n, NO_OUT, 0, ARGMAX_CHUNK, 1], [chunks, 1]);
    this.dispatch("argmax", () => ARGMAX, [out / 4, part, chunks, out2, 1, chunks, 0], [1, 1]);
  }
}
