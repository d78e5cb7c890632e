import type { ByteSource } from "../../io/source.ts";
import { type GGMLTypeId, ggmlTypeName } from "../../formats/ggml-types.ts";
import { UnsupportedError } from "../../errors.ts";
import { type Backend, type KVLayout, kvSlotBytes, type KVType, type Weight } from "../backend.ts";
import {
  adapterName,
  DeviceErrors,
  type Gpu,
  type GpuLimits,
  hasWgslFeature,
  limitsOf,
  requestAdapter,
  requestDevice,
  WebGpuError,
} from "./device.ts";
import { embedKernel, f32RowKernel, matmulKernel, matmulTypes, type Prologue, QUANTIZE_Q8_K, rowKernel } from "./wgsl-matmul.ts";
import {
  ADD,
  ADD_BIAS,
  ARGMAX,
  ATTENTION,
  attentionKernel,
  attentionWideKernel,
  COPY,
  COPY_MANY,
  GELU_ERF,
  GELU_TANH,
  KV_STORE,
  LAYERNORM_SCALE,
  normQuantKernel,
  quantQ8_0Kernel,
  rmsnormKernel,
  ROPE,
  SWIGLU,
} from "./wgsl-ops.ts";
import {
  SAMPLE,
  SAMPLE_HEAD,
  SAMPLE_HEAD_K1,
  SAMPLE_HEAD_K2,
  SAMPLE_K_PASS,
  SAMPLE_PASS,
  SAMPLE_TAIL,
  SPREAD_GROUPS,
  SPREAD_K_PASSES,
  SPREAD_PASSES,
} from "./wgsl-sample.ts";
import { TILE_SHAPE_NAMES, tiledKernel, tiledWideKernel } from "./wgsl-tiled.ts";
import { attentionRowsKernel, ROWS_PER_TILE } from "./wgsl-attention-rows.ts";
import { DeviceSampler } from "./sample.ts";
import type { ResolvedSamplingParams } from "../../sampling/params.ts";
import { ATTENTION_F16, KV_STORE_F16 } from "./wgsl-attention-f16.ts";
import { Fuser, type FuseTarget, type Group, LOOKAHEAD, type Op, OpPool } from "./fuse.ts";
import { resolveOptions, type WebGpuOptions, type WebGpuSettings } from "./options.ts";
import { DeviceMemory, MAX_GROUPS, WEIGHT_BASE } from "./memory.ts";
import { PARAM_WORDS, type PlanState, Recorder } from "./recorder.ts";
import {
  ACT_WORDS,
  attentionForm,
  attentionKey,
  attentionRowsKey,
  embedKey,
  EPI_QKV,
  EPI_RESIDUAL,
  EPI_STORE,
  EPI_SWIGLU,
  EPILOGUES,
  F32_ROW_TILE,
  foldsQuant,
  matmulForm,
  matmulKey,
  matmulScratchBytes,
  matmulSignature,
  normQuantKey,
  PROLOGUES,
  quantizesAttention,
  quantizesInput,
  rmsnormKey,
  rowTile,
  SIG_ATTENTION,
  SIG_ATTENTION_ROWS,
  SIG_EMBED,
  SIG_NORMQUANT,
  SIG_RMSNORM,
  stagesInput,
  tiledKey,
  tiledSignature,
  tileForm,
  tileShapeFor,
} from "./choose.ts";

export { ATTENTION_FORMS, type AttentionForm, type Fold, ROW_FORMS, type WebGpuOptions, type WebGpuSettings } from "./options.ts";

/** Ops queued before the fuser looks at them: enough for a layer's groups, few enough that the GPU starts early. */
const QUEUE_DRAIN_AT = 48;
const NO_OUT = 0xffffffff;
/** Logits one workgroup of the argmax's first stage takes, and the most such chunks (partial pairs kept in the state buffer). */
const ARGMAX_CHUNK = 4096;
const ARGMAX_CHUNKS = 2048;

/**
 * The WebGPU backend: the Backend interface over its parts. Device memory (memory.ts) is one state buffer
 * (activations, KV pages, page tables, row metadata: the addresses the forward pass holds are byte offsets into it)
 * plus one buffer per weight tensor, uploaded once. Ops are queued, then fused where runs of them touch the same rows
 * (fuse.ts: Q/K/V with RoPE and the KV write, gate/up with SwiGLU, the residual add in the projection, RMSNorm in the
 * next matmul or with its activation quantizer); each group's kernel is chosen (choose.ts) and its params filled here,
 * and recorded into one compute pass (recorder.ts); the pass is submitted when the host reads (logits), writes (next
 * step's tokens), or flushes, so one forward pass is one submit and one readback.
 */
export class WebGpuBackend implements Backend, FuseTarget {
  readonly name = "webgpu";
  device!: Gpu;
  adapterName = "";
  limits!: GpuLimits;
  /** The options in effect: checked and completed by resolveOptions (options.ts) before anything is requested. */
  readonly settings: WebGpuSettings;

  private adapter: Gpu;
  private readonly errors = new DeviceErrors();
  private memory!: DeviceMemory;
  private rec!: Recorder;
  /** Ops waiting to be fused and recorded: the first `queued` entries (records from `pool`, given back once recorded). */
  private readonly queue: Op[] = [];
  private queued = 0;
  private readonly pool = new OpPool();
  private readonly fuser = new Fuser(this);
  /** Decode steps replayed from a plan so far (tests, benches). */
  replays = 0;
  /** Host milliseconds spent fusing and recording queued ops (the CPU side of a token). */
  recordMs = 0;
  /** One dispatch's params as the ops' recorders fill them (dispatch copies them out at once). */
  private readonly args = new Uint32Array(PARAM_WORDS);
  private readonly bitsF = new Float32Array(1);
  private readonly bitsU = new Uint32Array(this.bitsF.buffer);
  /** The weights a fused matmul binds (q, k, v or gate, up; and a prologue's norm weight), filled per dispatch. */
  private readonly ws4: Array<Weight | null> = [null, null, null, null];
  /** How the fused matmul being recorded gets its input (input()); stage = params row g. */
  private readonly how = { act: 0, prologue: "none" as Prologue, stage: [0, 0, 0, 0] };
  /** The activation the last quantize dispatch left in the matmul scratch (QuantizedScratch). */
  private readonly quantized = new QuantizedScratch();
  /** The matmul scratch's address in the state buffer (setMatmulScratch). */
  private matmulScratch = 0;
  private argmaxPartials = 0;
  /** The register-tiled shape quantized tiled matmuls take ("today": today's kernel), once the device's limits are known. */
  private tileShape = "today";

  /** Op records the queue has made so far: steady after the first decode step (the rest come from its pool). */
  get opRecords(): number {
    return this.pool.created;
  }

  /** Dispatches recorded so far (what fusion saves shows here). */
  get dispatches(): number {
    return this.rec?.dispatches ?? 0;
  }

  /** The quantized tiled matmuls' form in effect after init: "today", "auto", or the `tiles` shape the device had workgroup memory for. */
  get tiles(): string {
    return this.tileShape;
  }

  /**
   * opts: WebGpuOptions, each checked (options.ts checkOptions) before anything is requested from the GPU: a value
   * other than those its comment names is a WebGpuError naming the option, the value and what it accepts.
   */
  constructor(opts: WebGpuOptions = {}) {
    this.settings = resolveOptions(opts);
    this.adapter = this.settings.adapter;
  }

  async init(_bytes: number): Promise<void> {
    if (!this.adapter) {
      const { adapter, reason } = await requestAdapter();
      if (!adapter) throw new WebGpuError(reason!);
      this.adapter = adapter;
    }
    this.adapterName = adapterName(this.adapter);
    const profile = this.settings.profile;
    const device = await requestDevice(this.adapter, profile ? ["timestamp-query"] : []);
    this.device = device;
    this.limits = limitsOf(device);
    this.tileShape = tileShapeFor(this.settings.tiles, this.limits.maxComputeWorkgroupStorageSize);
    this.errors.watch(device, () => this.device === device);
    // memory submits what is recorded before it grows the state buffer or copies out of it
    this.memory = new DeviceMemory(device, this.limits, this.errors, {
      submit: () => this.rec.submit(),
      copyEncoder: () => this.rec.copyEncoder(),
    });
    const dot4 = hasWgslFeature("packed_4x8_integer_dot_product");
    this.rec = new Recorder(device, this.memory, this.settings.submitEvery, profile, dot4);
    this.argmaxPartials = this.alloc(ARGMAX_CHUNKS * 8, "argmax partials");
  }

  // ------------------------------------------------------------ memory

  alloc(bytes: number, what: string, align = 64): number {
    this.assertLive();
    return this.memory.alloc(bytes, what, align);
  }

  write(ptr: number, data: ArrayBufferView): void {
    this.assertLive();
    if (ptr >= WEIGHT_BASE) throw new WebGpuError("write() addresses the state buffer only");
    this.drain(true);
    this.quantized.valid = false;
    this.memory.write(ptr, data);
  }

  // async: a dead device or a bad address rejects the promise, as every WebGPU failure does
  async upload(ptr: number, source: ByteSource, offset: number, bytes: number): Promise<void> {
    this.assertLive();
    await this.memory.upload(ptr, source, offset, bytes);
  }

  async read(ptr: number, dest: Float32Array): Promise<void> {
    this.assertLive();
    this.drain(true);
    await this.memory.read(ptr, dest);
  }

  async flush(): Promise<void> {
    this.assertLive();
    this.drain(true);
    this.rec.submit();
    await this.device.queue.onSubmittedWorkDone();
    await this.errors.check();
  }

  close(): Promise<void> {
    if (!this.device) return Promise.resolve();
    try {
      this.drain(true);
      this.rec.submit();
    } catch { /* closing anyway */ }
    this.queue.length = this.queued = 0;
    this.memory.destroy();
    this.rec.destroy();
    const device = this.device;
    this.device = undefined;
    device.destroy();
    return Promise.resolve();
  }

  // ------------------------------------------------------------ recording

  private assertLive(): void {
    if (this.errors.lost) throw new WebGpuError(this.errors.lost);
    if (!this.device) throw new WebGpuError("the backend is not initialized (or was closed)");
  }

  /** Profiling: GPU nanoseconds per kernel (pipeline key) since the last call; empty unless constructed with profile. */
  async gpuTimes(): Promise<Map<string, { count: number; ns: number }>> {
    await this.flush();
    return this.rec.gpuTimes();
  }

  /** Recorder.dispatch, after noting that an op other than a matmul may overwrite the quantized input or the scratch. */
  private dispatch(
    key: string,
    source: string | (() => string),
    params: ArrayLike<number>,
    gx: number,
    gy: number,
    w: Weight | Array<Weight | null> | null = null,
    wOffset = 0,
    wSize = 0,
    weightBindings = 1,
    vec4Weights = false,
  ): void {
    this.assertLive();
    if (!key.startsWith("matmul:") && !key.startsWith("tiled:")) this.quantized.valid = false;
    this.rec.dispatch(key, source, params, gx, gy, w, wOffset, wSize, weightBindings, vec4Weights);
  }

  /**
   * Backend.replayForward: the first call for `key` records `forward` (drained on both sides, so none of its ops
   * fuses with another's and the plan holds exactly its dispatches); later calls replay the plan. A plan is
   * recorded again when the state buffer was remade since (its bind groups name the old one) or the quantized
   * activation tracking differs from the recording's start (the step's first matmul would quantize differently).
   * Profiling (a timed pass per dispatch) always records.
   */
  replayForward(key: object, forward: () => void): void {
    this.assertLive();
    if (!this.settings.plans || this.rec.profiling) return forward();
    this.drain(true);
    this.memory.stateBuffer();
    const t0 = performance.now();
    if (this.rec.replay(key, this.quantized)) {
      this.replays++;
      this.recordMs += performance.now() - t0;
      return;
    }
    this.rec.record(key, this.quantized, () => {
      forward();
      this.drain(true);
    });
  }

  /** args[0..7] = a..h and the rest 0: one dispatch's params, without an array literal per dispatch. */
  private words(a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0): Uint32Array {
    const p = this.args;
    p.fill(0);
    p[0] = a;
    p[1] = b;
    p[2] = c;
    p[3] = d;
    p[4] = e;
    p[5] = f;
    p[6] = g;
    p[7] = h;
    return p;
  }

  /** params vec4 row r (words 4r..4r+3) of args. */
  private row(r: number, a: number, b: number, c: number, d: number): void {
    const p = this.args;
    p[4 * r] = a;
    p[4 * r + 1] = b;
    p[4 * r + 2] = c;
    p[4 * r + 3] = d;
  }

  /** An f32's bits as a u32 (for eps and scales in the params), through one scratch word. */
  private f32Bits(x: number): number {
    this.bitsF[0] = x;
    return this.bitsU[0];
  }

  private elementwise(key: string, src: string, params: ArrayLike<number>, n: number): void {
    this.dispatch(key, src, params, Math.ceil(n / 256), 0);
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
    return matmulScratchBytes(type, n, T);
  }

  // ------------------------------------------------------------ the queue

  /** FuseTarget: one binding holds the whole tensor, and a fused dispatch's rows fit its grid. */
  whole(w: Weight): boolean {
    const r = this.memory.ranges(w);
    return r.length === 1 && r[0].size === 0 && w.rows <= MAX_GROUPS * 4;
  }

  /** FuseTarget: the matmul's input is quantized for this weight type. */
  quantizesInput(w: Weight): boolean {
    return quantizesInput(w.type);
  }

  /** FuseTarget: one row of input a matmul of w norms, or norms and quantizes, in its own workgroups (choose.ts stagesInput). */
  stagesInput(w: Weight, T: number): boolean {
    return stagesInput(w, T, this.settings.fold);
  }

  /** FuseTarget: an RMSNorm may become the prologue of a lone one-row matmul (the classifier), not only of q|k|v or gate|up. */
  normsAlone(w: Weight): boolean {
    return this.settings.fold === true && this.whole(w);
  }

  private enqueue(op: Op): void {
    this.queue[this.queued++] = op;
    if (this.queued >= QUEUE_DRAIN_AT) this.drain(false);
  }

  /** A pooled op record of kind k, for the caller to fill every field of and enqueue. */
  private take<K extends Op["k"]>(k: K): Extract<Op, { k: K }> {
    this.assertLive();
    return this.pool.take(k);
  }

  /** Records the queued ops, fused where a rule applies; short of `final`, keeps the last few for a group they may start. */
  private drain(final: boolean): void {
    const t0 = performance.now();
    const q = this.queue, n = this.queued;
    let i = 0;
    while (i < n && (final || n - i >= LOOKAHEAD)) {
      const len = this.fuser.groupAt(q, i, n);
      this.record(this.fuser.group);
      i += len;
    }
    for (let j = 0; j < i; j++) this.pool.give(q[j]);
    q.copyWithin(0, i, n);
    this.queued = n - i;
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
        const T = q.T, kv = store.kv, kOff = kvOffset(kv, store.layer, 0), vOff = kvOffset(kv, store.layer, 1);
        const how = this.input(q, g.norm);
        const a = this.words();
        this.row(0, 0, how.act / 4, q.w.cols, T);
        this.row(1, q.w.rows, key.w.rows, value.w.rows, q.w.bytes / q.w.rows);
        this.row(2, q.out / 4, key.out / 4, value.out / 4, ropeQ.positions / 4);
        this.row(3, ropeQ.table / 4, store.rows / 4, ropeQ.headDim, ropeQ.ropeDim | ((ropeQ.halves ? 1 : 0) << 16));
        this.row(4, kv.base, kv.pageBytes, kv.pageSize, kv.kvDim);
        this.row(5, kOff, vOff, 0, 0);
        this.stageRow(how.stage);
        this.fusedMatmul(EPI_QKV, q.w, key.w, value.w, g.norm?.w ?? null, T, q.w.rows + 2 * key.w.rows, how.prologue, a);
        return;
      }
      case "swiglu": {
        const { gate, up } = g;
        const how = this.input(gate, g.norm);
        const a = this.words();
        this.row(0, 0, how.act / 4, gate.w.cols, gate.T);
        this.row(1, gate.w.rows, 0, gate.w.rows, gate.w.bytes / gate.w.rows);
        this.row(2, gate.out / 4, up.out / 4, 0, 0);
        this.stageRow(how.stage);
        this.fusedMatmul(EPI_SWIGLU, gate.w, up.w, null, g.norm?.w ?? null, gate.T, 2 * gate.w.rows, how.prologue, a);
        return;
      }
      case "residual":
      case "store": {
        const mm = g.mm;
        const how = this.input(mm, g.g === "store" ? g.norm : null);
        const a = this.words();
        this.row(0, 0, how.act / 4, mm.w.cols, mm.T);
        this.row(1, mm.w.rows, 0, mm.w.rows, mm.w.bytes / mm.w.rows);
        this.row(2, mm.out / 4, g.g === "residual" ? g.add.out / 4 : 0, 0, 0);
        this.stageRow(how.stage);
        const norm = g.g === "store" ? g.norm.w : null;
        this.fusedMatmul(g.g === "store" ? EPI_STORE : EPI_RESIDUAL, mm.w, null, null, norm, mm.T, mm.w.rows, how.prologue, a);
        return;
      }
      case "copies": {
        // b..h = (dst, src, words, -) of each copy; the grid's x covers the longest
        const a = this.words();
        let most = 0;
        for (let c = 0; c < g.count; c++) {
          const cp = g.copies[c];
          this.row(1 + c, cp.dst / 4, cp.src / 4, cp.bytes / 4, 0);
          most = Math.max(most, cp.bytes / 4);
        }
        this.dispatch("copy_many", COPY_MANY, a, Math.ceil(most / 256), g.count);
        return;
      }
      case "argmax":
        return this.argmaxNow(g.pick.out, g.pick.x, g.pick.n, g.copy.dst / 4);
    }
  }

  /** params row g (the prologue's) from a stage array. */
  private stageRow(stage: number[]): void {
    this.row(6, stage[0], stage[1], stage[2], stage[3]);
  }

  private recordOp(op: Op): void {
    switch (op.k) {
      case "matmul":
        return this.matmulNow(op.out, op.x, op.w, op.T, op.scratch);
      case "rmsnorm":
        return this.rmsnormNow(op.out, op.x, op.w, op.n, op.eps, op.T);
      case "rope":
        this.words(op.x / 4, op.table / 4, op.positions / 4, op.T, op.nHeads, op.headDim, op.ropeDim, op.halves ? 1 : 0);
        return this.elementwise("rope", ROPE, this.args, op.T * op.nHeads * (op.ropeDim / 2));
      case "kvStore": {
        const { kv, T } = op;
        const f16 = kv.kvType === "f16"; // a thread per word: two halves
        const a = this.words(op.key / 4, op.value / 4, op.rows / 4, T, kv.base, kv.pageBytes, kv.pageSize, kv.kvDim);
        a[8] = kvOffset(kv, op.layer, 0);
        a[9] = kvOffset(kv, op.layer, 1);
        return this.elementwise(f16 ? "kvstore_f16" : "kvstore", f16 ? KV_STORE_F16 : KV_STORE, a, f16 ? T * kv.kvDim / 2 : T * kv.kvDim);
      }
      case "add":
        return this.elementwise("add", ADD, this.words(op.out / 4, op.a / 4, op.b / 4, op.n), op.n);
      case "swiglu":
        return this.elementwise("swiglu", SWIGLU, this.words(op.out / 4, op.gate / 4, op.up / 4, op.n * op.T), op.n * op.T);
      case "copy":
        return this.elementwise("copy", COPY, this.words(op.dst / 4, op.src / 4, op.bytes / 4), op.bytes / 4);
      case "argmax":
        return this.argmaxNow(op.out, op.x, op.n, NO_OUT);
      case "attention":
        return this.attentionNow(op);
      case "embed":
        return this.embedNow(op.out, op.table, op.tokens, op.T);
      case "sample":
        return this.sampleNow(op.params);
      case "layernorm":
        this.words(op.out / 4, op.x / 4, op.n, op.T, this.f32Bits(op.eps));
        return this.dispatch("layernorm", LAYERNORM_SCALE, this.args, op.T, 1, op.w);
      case "addBias":
        this.words(op.x / 4, op.rows * op.n, op.n);
        return this.dispatch("addbias", ADD_BIAS, this.args, Math.ceil((op.rows * op.n) / 256), 0, op.bias);
      case "gelu":
        return this.elementwise(op.erf ? "gelu_erf" : "gelu", op.erf ? GELU_ERF : GELU_TANH, this.words(op.out / 4, op.x / 4, op.n), op.n);
    }
  }

  private rmsnormNow(out: number, x: number, w: Weight, n: number, eps: number, T: number): void {
    const key = this.rec.keyFor(SIG_RMSNORM + n, rmsnormKey); // built for its row width (rmsnormKernel: RMSNORM's bits)
    const src = this.rec.built(key) ? "" : rmsnormKernel(n);
    this.dispatch(key, src, this.words(out / 4, x / 4, n, T, this.f32Bits(eps)), T, 1, w);
  }

  // ------------------------------------------------------------ ops

  embed(out: number, table: Weight, tokens: number, T: number): void {
    const op = this.take("embed");
    op.out = out;
    op.table = table;
    op.tokens = tokens;
    op.T = T;
    this.enqueue(op);
  }

  private embedNow(out: number, table: Weight, tokens: number, T: number): void {
    const n = table.cols, rowBytes = table.bytes / table.rows, ranges = this.memory.ranges(table);
    const key = this.rec.keyFor(SIG_EMBED + table.type, embedKey);
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i];
      this.words(out / 4, tokens / 4, n, T, r.row0, r.rows, rowBytes);
      const src = this.rec.built(key) ? "" : embedKernel(table.type);
      this.dispatch(key, src, this.args, Math.ceil((n * T) / 256), 0, table, r.offset, r.size);
    }
  }

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
    const op = this.take("matmul");
    op.out = out;
    op.x = x;
    op.w = w;
    op.T = T;
    op.scratch = this.matmulScratch;
    this.enqueue(op);
  }

  /** The address a matmul of w reads its input at: x itself, or its quantized blocks in scratch (quantized now unless still there). */
  private matmulInput(w: Weight, x: number, T: number, scratch: number): number {
    const a = ACT_WORDS[w.type];
    if (!a) return x;
    const n = w.cols;
    if (!this.quantized.holds(w, x, T, scratch)) {
      this.words(scratch / 4, x / 4, n, T);
      if (a.block === 32) {
        const src = this.rec.built("quantize_q8_0") ? "" : quantQ8_0Kernel(false);
        this.dispatch("quantize_q8_0", src, this.args, Math.ceil(n / 256), T);
      } else this.dispatch("quantize_q8_k", QUANTIZE_Q8_K, this.args, Math.ceil((T * n) / a.block / 256), 0);
      this.quantized.note(w.type, x, n, T, scratch);
    }
    return scratch;
  }

  /**
   * How a fused matmul gets its input (into `how`): normed, or normed and quantized, or quantized, by its own
   * prologue (one row that fits workgroup memory; `stage` = params row g), or else x itself or its quantized
   * blocks in scratch, after a norm dispatch of its own where there is a norm.
   */
  private input(
    mm: { x: number; w: Weight; T: number; scratch: number },
    norm: { out: number; x: number; w: Weight; n: number; eps: number; T: number } | null,
  ): { act: number; prologue: Prologue; stage: number[] } {
    const how = this.how, stage = how.stage;
    const quantized = this.quantizesInput(mm.w);
    how.act = 0;
    stage[0] =
      stage[1] =
      stage[2] =
      stage[3] =
        0;
    if (norm && this.stagesInput(mm.w, mm.T)) {
      how.prologue = quantized ? "normq" : "norm";
      stage[0] = norm.x / 4;
      stage[1] = norm.out / 4;
      stage[2] = this.f32Bits(norm.eps);
      stage[3] = mm.scratch / 4;
      return how;
    }
    if (norm) this.rmsnormNow(norm.out, norm.x, norm.w, norm.n, norm.eps, norm.T);
    // one row not quantized yet (the down projection's input): each workgroup quantizes it, no dispatch of its own
    if (quantized && mm.T === 1 && foldsQuant(mm.w, this.settings.fold) && !this.quantized.holds(mm.w, mm.x, 1, mm.scratch)) {
      how.prologue = "quant";
      stage[0] = mm.x / 4;
      stage[3] = mm.scratch / 4;
      return how;
    }
    how.prologue = "none";
    how.act = this.matmulInput(mm.w, mm.x, mm.T, mm.scratch);
    return how;
  }

  /**
   * One tiled matmul dispatch (wgsl-tiled.ts) over `rows` virtual rows of T tokens, in choose.ts tileForm's tiles:
   * quantized weights in the register-tiled shape when one is set (`tiles`), else today's tiles.
   */
  private tiled(
    type: number,
    epilogue: number,
    T: number,
    rows: number,
    params: ArrayLike<number>,
    w: Weight | Array<Weight | null>,
    wOffset: number,
    wSize: number,
    binds: number,
  ): void {
    const storage = this.limits.maxComputeWorkgroupStorageSize;
    const { name, shape, bm, bn } = tileForm(type, T, rows, this.tileShape, this.settings.tileRows, storage);
    const key = this.rec.keyFor(tiledSignature(type, epilogue, bm, shape ? TILE_SHAPE_NAMES.indexOf(name) + 1 : 0), tiledKey);
    const src = this.rec.built(key)
      ? ""
      : shape
      ? tiledWideKernel(type as GGMLTypeId, EPILOGUES[epilogue], shape)
      : tiledKernel(type as GGMLTypeId, EPILOGUES[epilogue], bm);
    this.dispatch(key, src, params, Math.ceil(rows / bn), Math.ceil(T / bm), w, wOffset, wSize, binds);
  }

  private matmulNow(out: number, x: number, w: Weight, T: number, scratch: number): void {
    const act = this.matmulInput(w, x, T, scratch);
    const rowBytes = w.bytes / w.rows, ranges = this.memory.ranges(w);
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i];
      const p = this.words(0, act / 4, w.cols, T, r.rows, r.row0, w.rows, rowBytes);
      p[8] = out / 4;
      this.matmulDispatch(EPI_STORE, w, T, r.rows, "none", p, w, r.offset, r.size, 1);
    }
    // the quantized input stays valid for the next matmul unless this one wrote over its source or the scratch
    const q = this.quantized, outEnd = out + T * w.rows * 4;
    if (q.valid && ((out < q.xEnd && q.x < outEnd) || (out < q.scratchEnd && q.scratch < outEnd))) q.valid = false;
  }

  /**
   * One dispatch of a fused matmul (wgsl-matmul.ts's epilogues) over `rows` weight rows in all, of weights w0..w2
   * and a prologue's norm weight wn; params in `args` as vec4 rows a, b, c, ... (g: the prologue's).
   */
  private fusedMatmul(
    epilogue: number,
    w0: Weight,
    w1: Weight | null,
    w2: Weight | null,
    wn: Weight | null,
    T: number,
    rows: number,
    prologue: Prologue,
    params: Uint32Array,
  ): void {
    const ws = this.ws4;
    ws[0] = w0;
    ws[1] = w1;
    ws[2] = w2;
    ws[3] = wn;
    const multi = !!(w1 || w2 || wn);
    const binds = prologue === "norm" || prologue === "normq" ? 4 : multi ? 3 : 1;
    this.matmulDispatch(epilogue, w0, T, rows, prologue, params, binds > 1 ? ws : w0, 0, 0, binds);
    this.quantized.valid = false; // its outputs may lie anywhere: quantize afresh
  }

  /**
   * One matmul dispatch of weight type and width w's over `rows` weight rows and T token rows, in the form
   * choose.ts matmulForm picks; `bound`: w's row range (wOffset, wSize) or a fused matmul's weights.
   */
  private matmulDispatch(
    epilogue: number,
    w: Weight,
    T: number,
    rows: number,
    prologue: Prologue,
    params: Uint32Array,
    bound: Weight | Array<Weight | null>,
    wOffset: number,
    wSize: number,
    binds: number,
  ): void {
    const type = w.type, n = w.cols, epi = EPILOGUES[epilogue], pro = PROLOGUES.indexOf(prologue);
    const form = matmulForm(type, n, T, rows, prologue, this.settings);
    switch (form.kind) {
      case "tiled":
        return this.tiled(type, epilogue, T, rows, params, bound, wOffset, wSize, binds);
      case "row": {
        const { plan } = form; // rowPlan: units paired, always
        const key = this.rec.keyFor(matmulSignature(type, epilogue, rowTile(plan), true, plan.lanes, pro, n), matmulKey);
        const src = this.rec.built(key) ? "" : rowKernel(type, epi, prologue, n, plan);
        return this.dispatch(key, src, params, Math.ceil(rows / (256 / plan.lanes)), 1, bound, wOffset, wSize, binds, plan.octets);
      }
      case "f32Rows": {
        const key = this.rec.keyFor(matmulSignature(type, epilogue, F32_ROW_TILE, false, form.lanes, pro, n), matmulKey);
        // matmulForm takes f32Rows with no prologue or a norm only
        const src = this.rec.built(key) ? "" : f32RowKernel(epi, prologue as "none" | "norm", n, form.lanes);
        return this.dispatch(key, src, params, Math.ceil(rows / (256 / form.lanes)), 1, bound, wOffset, wSize, binds, true);
      }
      case "matmul": {
        const { tt, paired, lanes, v4 } = form, pn = prologue === "none" ? 0 : n;
        const key = this.rec.keyFor(matmulSignature(type, epilogue, tt, paired, lanes, pro, pn), matmulKey);
        const src = this.rec.built(key) ? "" : matmulKernel(type, epi, tt, paired, lanes, prologue, n, v4);
        return this.dispatch(key, src, params, Math.ceil(rows / (256 / lanes)), Math.ceil(T / tt), bound, wOffset, wSize, binds, v4);
      }
    }
  }

  /** RMSNorm and the quantizer of the matmul (of weight `next`) that reads its output, in one dispatch. */
  private normQuant(out: number, x: number, w: Weight, n: number, eps: number, T: number, next: Weight, scratch: number): void {
    const a = ACT_WORDS[next.type];
    const epsBits = this.f32Bits(eps);
    if (a.block === 32) {
      const key = this.rec.keyFor(SIG_NORMQUANT + n, normQuantKey); // built for its row width (quantQ8_0Kernel)
      const src = this.rec.built(key) ? "" : quantQ8_0Kernel(true, n);
      this.dispatch(key, src, this.words(scratch / 4, x / 4, n, T, epsBits, out / 4), Math.ceil(n / 256), T, w);
    } else {
      const src = this.rec.built("normquant:256") ? "" : normQuantKernel(256);
      this.dispatch("normquant:256", src, this.words(out / 4, x / 4, n, T, epsBits, scratch / 4), T, 1, w);
    }
    this.quantized.note(next.type, out, n, T, scratch);
  }

  rmsnorm(out: number, x: number, w: Weight, n: number, eps: number, T: number): void {
    const op = this.take("rmsnorm");
    op.out = out;
    op.x = x;
    op.w = w;
    op.n = n;
    op.eps = eps;
    op.T = T;
    this.enqueue(op);
  }

  layernorm(out: number, x: number, w: Weight, bias: Weight | undefined, n: number, eps: number, T: number): void {
    const op = this.take("layernorm");
    op.out = out;
    op.x = x;
    op.w = w;
    op.n = n;
    op.eps = eps;
    op.T = T;
    this.enqueue(op);
    if (bias) this.addBias(out, bias, T, n);
  }

  addBias(x: number, bias: Weight, rows: number, n: number): void {
    const op = this.take("addBias");
    op.x = x;
    op.bias = bias;
    op.rows = rows;
    op.n = n;
    this.enqueue(op);
  }

  gelu(out: number, x: number, n: number): void {
    this.enqueueGelu(out, x, n, false);
  }

  geluErf(out: number, x: number, n: number): void {
    this.enqueueGelu(out, x, n, true);
  }

  private enqueueGelu(out: number, x: number, n: number, erf: boolean): void {
    const op = this.take("gelu");
    op.out = out;
    op.x = x;
    op.n = n;
    op.erf = erf;
    this.enqueue(op);
  }

  rope(x: number, table: number, positions: number, T: number, nHeads: number, headDim: number, ropeDim: number, halves: boolean): void {
    const op = this.take("rope");
    op.x = x;
    op.table = table;
    op.positions = positions;
    op.T = T;
    op.nHeads = nHeads;
    op.headDim = headDim;
    op.ropeDim = ropeDim;
    op.halves = halves;
    this.enqueue(op);
  }

  add(out: number, a: number, b: number, n: number): void {
    const op = this.take("add");
    op.out = out;
    op.a = a;
    op.b = b;
    op.n = n;
    this.enqueue(op);
  }

  swiglu(out: number, gate: number, up: number, n: number, T: number): void {
    const op = this.take("swiglu");
    op.out = out;
    op.gate = gate;
    op.up = up;
    op.n = n;
    op.T = T;
    this.enqueue(op);
  }

  kvStore(kv: KVLayout, layer: number, k: number, v: number, rows: number, T: number): void {
    const op = this.take("kvStore");
    op.kv = kv;
    op.layer = layer;
    op.key = k;
    op.value = v;
    op.rows = rows;
    op.T = T;
    this.enqueue(op);
  }

  attention(out: number, q: number, kv: KVLayout, layer: number, rows: number, T: number, _scratch: number): void {
    if (kv.headDim > 256) throw new UnsupportedError(`the WebGPU attention kernel handles head sizes up to 256, not ${kv.headDim}`);
    if (kv.topK) throw new UnsupportedError("the WebGPU backend has no sparse top-k attention (attention.topK); use the WASM backend");
    if (kv.kvType === "f16" && kv.headDim % 2) {
      throw new UnsupportedError(`the WebGPU F16 cache reads halves in pairs: head size ${kv.headDim} is odd (use kvCacheType "f32")`);
    }
    const op = this.take("attention");
    op.out = out;
    op.q = q;
    op.kv = kv;
    op.layer = layer;
    op.rows = rows;
    op.T = T;
    this.enqueue(op);
  }

  /** FuseTarget: the per-row attention kernel quantizes its head's output in whole Q8_0 blocks for a Q8_0/Q4_0 matmul. */
  quantizesAttention(kv: KVLayout, T: number, w: Weight): boolean {
    return quantizesAttention(kv, T, w, this.settings.fuseAttentionQuant);
  }

  /** quantTo: also the Q8_0 blocks of the output for the matmul `next` reads them, at its scratch (attnQuant). */
  private attentionNow(op: Extract<Op, { k: "attention" }>, next?: Extract<Op, { k: "matmul" }>): void {
    const { out, q, kv, layer, rows, T } = op;
    // a = (out, q, rows, base), b = (pageBytes, pageSize, kvDim, headDim), c = (nHeads, nKvHeads, kOff, vOff),
    // d = (ALiBi on, its slopes' word address, score scale bits (F16), -), e = (T, the quantized blocks' word address)
    const p = this.words(out / 4, q / 4, rows / 4, kv.base, kv.pageBytes, kv.pageSize, kv.kvDim, kv.headDim);
    this.row(2, kv.nHeads, kv.nKvHeads, kvOffset(kv, layer, 0), kvOffset(kv, layer, 1));
    this.row(3, kv.alibiSlopes === undefined ? 0 : 1, kv.alibiSlopes === undefined ? 0 : kv.alibiSlopes / 4, 0, 0);
    this.row(4, T, next ? next.scratch / 4 : 0, 0, 0);
    const form = attentionForm(kv, T, this.settings.attention);
    if (form.kind === "f16") {
      // ggml's one_chunk, one (head, row) a workgroup, every row alike (batch invariance); d.z = the score scale, 1 / sqrtf(headDim)
      p[14] = this.f32Bits(1 / Math.fround(Math.sqrt(kv.headDim)));
      this.dispatch("attention_f16", ATTENTION_F16, p, kv.nHeads, T);
      return;
    }
    // many rows: 16 a workgroup, each K/V position read once for all of them (wgsl-attention-rows.ts)
    if (form.kind === "rows") {
      const key = this.rec.keyFor(SIG_ATTENTION_ROWS + kv.headDim, attentionRowsKey);
      const src = this.rec.built(key) ? "" : attentionRowsKernel(kv.headDim);
      this.dispatch(key, src, p, kv.nHeads, Math.ceil(T / ROWS_PER_TILE));
    } else {
      // the kernel built for this head size (its K row's loads written out) where it is small enough to keep them in registers
      const { wide, headDim: hd } = form;
      const key = this.rec.keyFor(SIG_ATTENTION + (wide ? 1024 : 0) + (next ? 512 : 0) + hd, attentionKey);
      const src = this.rec.built(key)
        ? ""
        : wide
        ? attentionWideKernel(!!next, kv.headDim)
        : next || hd
        ? attentionKernel(!!next, hd)
        : ATTENTION;
      this.dispatch(key, src, p, kv.nHeads, T);
      if (next) this.quantized.note(next.w.type, out, next.w.cols, T, next.scratch);
    }
  }

  copy(dst: number, src: number, bytes: number): void {
    if (dst % 4 || src % 4 || bytes % 4) throw new WebGpuError(`copy of ${bytes} bytes at ${src} -> ${dst} is not word-aligned`);
    const op = this.take("copy");
    op.dst = dst;
    op.src = src;
    op.bytes = bytes;
    this.enqueue(op);
  }

  argmax(out: number, x: number, n: number): void {
    const op = this.take("argmax");
    op.out = out;
    op.x = x;
    op.n = n;
    this.enqueue(op);
  }

  /** Records one step of the device sampler (sample.ts lays out its params; the array is read when the dispatch is recorded). */
  sampleOnDevice(params: Uint32Array): void {
    const op = this.take("sample");
    op.params = params;
    this.enqueue(op);
  }

  /**
   * One step of the device sampler: one workgroup (SAMPLE), or from `spreadSampleFrom` logits the same draw in
   * three kernels whose top-p search runs over 128 workgroups a pass (SAMPLE_HEAD, SAMPLE_PASS, SAMPLE_TAIL).
   */
  private sampleNow(params: Uint32Array): void {
    if (params[4] < this.settings.spreadSampleFrom) return this.dispatch("sample", SAMPLE, params, 1, 1);
    const a = this.words();
    a.set(params);
    if (params[7] > 0) {
      // b.w = topK: the key search's passes between the weights and the cut
      this.dispatch("sample_head_k1", SAMPLE_HEAD_K1, params, 1, 1);
      for (let p = 0; p < SPREAD_K_PASSES; p++) {
        a[16] = p; // e.x: the pass
        this.dispatch("sample_k_pass", SAMPLE_K_PASS, a, SPREAD_GROUPS, 1);
      }
      this.dispatch("sample_head_k2", SAMPLE_HEAD_K2, params, 1, 1);
    } else this.dispatch("sample_head", SAMPLE_HEAD, params, 1, 1);
    for (let p = 0; p < SPREAD_PASSES; p++) {
      a[16] = p; // e.x: the pass
      this.dispatch("sample_pass", SAMPLE_PASS, a, SPREAD_GROUPS, 1);
    }
    this.dispatch("sample_tail", SAMPLE_TAIL, params, 1, 1);
  }

  /** out2: a word address that gets the pick too (the next step's token), or NO_OUT. */
  private argmaxNow(out: number, x: number, n: number, out2: number): void {
    const chunks = Math.ceil(n / ARGMAX_CHUNK);
    if (chunks === 1 || chunks > ARGMAX_CHUNKS) {
      this.dispatch("argmax", ARGMAX, this.words(out / 4, x / 4, n, out2, 0, n, 0), 1, 1);
      return;
    }
    const part = this.argmaxPartials / 4;
    this.dispatch("argmax", ARGMAX, this.words(part, x / 4, n, NO_OUT, 0, ARGMAX_CHUNK, 1), chunks, 1);
    this.dispatch("argmax", ARGMAX, this.words(out / 4, part, chunks, out2, 1, chunks, 0), 1, 1);
  }
}

/** Byte offset of a layer's K (which 0) or V (1) within a page: kvOffsets's, without the object it returns. */
function kvOffset(kv: KVLayout, layer: number, which: 0 | 1): number {
  const block = kv.pageSize * kvSlotBytes(kv.kvType, kv.kvDim, kv.qBlock);
  return layer * 2 * block + which * block;
}

/**
 * The activation the last quantize dispatch left in the matmul scratch ("quantizer:x:n:T:scratch"): matmuls of one
 * input (q, k, v; gate, up) share it until another op runs. A plan's PlanState: a replayed step starts from the
 * tracking its recording started from and leaves what the recording left.
 */
class QuantizedScratch implements PlanState {
  valid = false;
  block = 0;
  x = 0;
  n = 0;
  T = 0;
  scratch = 0;
  xEnd = 0;
  scratchEnd = 0;

  /** Whether scratch holds x's activation blocks for a matmul of w (quantized by an earlier dispatch, x unchanged since). */
  holds(w: Weight, x: number, T: number, scratch: number): boolean {
    return this.valid && this.block === ACT_WORDS[w.type].block && this.x === x && this.n === w.cols && this.T === T &&
      this.scratch === scratch;
  }

  /** Notes that scratch now holds the activation blocks of x (n columns, T rows) for weights of `type`. */
  note(type: GGMLTypeId, x: number, n: number, T: number, scratch: number): void {
    this.valid = true;
    this.block = ACT_WORDS[type].block;
    this.x = x;
    this.n = n;
    this.T = T;
    this.scratch = scratch;
    this.xEnd = x + T * n * 4;
    this.scratchEnd = scratch + matmulScratchBytes(type, n, T);
  }

  /** Whether the tracking is `a` (a get()), compared in place: no array per step. */
  matches(a: number[]): boolean {
    if (!this.valid) return a[0] === 0;
    return a[0] === 1 && a[1] === this.block && a[2] === this.x && a[3] === this.n && a[4] === this.T &&
      a[5] === this.scratch && a[6] === this.xEnd && a[7] === this.scratchEnd;
  }

  /** The tracking as numbers (all of it, or zeros when nothing is held). */
  get(): number[] {
    return this.valid ? [1, this.block, this.x, this.n, this.T, this.scratch, this.xEnd, this.scratchEnd] : [0, 0, 0, 0, 0, 0, 0, 0];
  }

  /** Sets the tracking to `a` (a get()): where a replayed plan leaves it. */
  set(a: number[]): void {
    this.valid = a[0] === 1;
    this.block = a[1];
    this.x = a[2];
    this.n = a[3];
    this.T = a[4];
    this.scratch = a[5];
    this.xEnd = a[6];
    this.scratchEnd = a[7];
  }
}
