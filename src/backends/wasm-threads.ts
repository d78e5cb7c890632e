import { GGMLType } from "../formats/ggml-types.ts";
import type { MatmulKernel } from "../kernels/spec.ts";
import { DeferredOps, Op } from "./deferred-ops.ts";
import type { ByteSource } from "../io/source.ts";
import { kernelModule, pickVariant } from "../kernels/wasm.ts";
import { type AttentionRows, STREAMING_ROWS_BELOW, ThreadPool, TILED_ROWS } from "../threads/pool.ts";
import { MAX_SEGMENTS } from "../threads/control.ts";
import { coreCount, threadCount, threadSupport } from "../threads/spawn.ts";
import { checkOptionNames, KvasmError, optionNames } from "../errors.ts";
import { type KVLayout, ROW_FIELDS, ROW_PAGE_TABLE, ROW_POS, ROW_START, type Weight } from "./backend.ts";
import { attentionTopK, WasmBackend } from "./wasm.ts";
import { runKernel, runRows } from "./attention-runs.ts";

export interface ThreadedWasmOptions {
  /** Threads in all, the calling thread included. */
  threads: number;
  relaxed?: boolean;
  /** Sum as llama.cpp's x86 kernels do where kvasm's faster order differs (WasmBackend's option). */
  ggmlOrder?: boolean;
  /**
   * Ops whose work (multiply-adds, or elements for elementwise ops) is below
   * this run on the calling thread alone: waking the workers costs more than
   * they save. 0 splits every op (the thread-count tests do).
   */
  minWork?: number;
  /** See PoolOptions.joinSpinMs: after this long an op's join waits asynchronously (in read/flush). */
  joinSpinMs?: number;
  /** When the Workers cannot start, run on the calling thread instead of failing (default: false). */
  fallback?: boolean;
  /**
   * Run a prefill's matmuls over one input (q, k, v; gate, up) as one op, with no join between them (default true;
   * see ThreadedWasmBackend.matmul). Same bits either way.
   */
  mergeMatmuls?: boolean;
  workerURL?: URL | string;
}

/** ThreadedWasmOptions' names: the constructor refuses any other key (`minwork: 0` kept the default threshold unseen). */
const THREADED_WASM_OPTION_NAMES = optionNames<ThreadedWasmOptions>()([
  "threads",
  "relaxed",
  "ggmlOrder",
  "minWork",
  "joinSpinMs",
  "fallback",
  "mergeMatmuls",
  "workerURL",
]);

/**
 * Below this much work an op runs on the calling thread alone. Measured with
 * bench/threads-dispatch.ts (16-core Xeon, Deno): a round trip to a spinning
 * worker costs about 0.5 µs, and a T=1 f32 matmul gains from a second thread
 * from about 25K multiply-adds on (49K: 8.4 -> 6.5 µs; 12K: 2.0 -> 2.4 µs).
 */
export const DEFAULT_MIN_WORK = 1 << 15;

/**
 * The WebAssembly backend on a pool of Workers over one shared memory. Matmul
 * is split by output rows (activations quantized or rounded once, here, before
 * the split), attention by heads, norms and RoPE by token rows, elementwise ops
 * by ranges; every row, head or element is computed by one thread with the same
 * code as single-threaded, so results are bit-identical for any thread count.
 * Small ops, embedding lookups, KV stores and copies run on the calling thread.
 *
 * How each kernel splits (which argument range, at what alignment, how far each pointer advances) is
 * the kernel specification's (src/kernels/spec.ts); the pool reads it.
 *
 * Ops are synchronous: the caller claims chunks like a worker, then spins until the workers
 * are done. If they are not done within the pool's join spin (a worker was
 * descheduled, or died), the op is left pending and later ops are queued;
 * read() and flush() finish them, awaiting the workers without blocking the
 * event loop, which is how a dead worker's exit event reaches the pending call.
 */
export class ThreadedWasmBackend extends WasmBackend {
  override readonly name: string = "wasm-threads";
  /** Undefined when running on the calling thread alone (threads: 1, or the fallback). */
  pool: ThreadPool | undefined;
  private readonly threadOpts: ThreadedWasmOptions;
  private readonly minWork: number;
  /** Ops issued while the pool had a pending op, as records (no closures), run in order by drain(). */
  private readonly queue = new DeferredOps();
  private draining = false;
  /** The matmul kernel prepareActivations picked (returned here, not in a tuple: nothing is allocated per op). */
  private preparedKernel: MatmulKernel = "matmul_f32";
  /**
   * Prefill matmuls held back (not yet run) to be run as one op with the matmuls over the same input that follow
   * (sameInput): how many, and what a later one must share to join them. Any other op, read or flush runs them first.
   */
  private held = 0;
  /** See ThreadedWasmOptions.mergeMatmuls (a benchmark may switch it between steps). */
  mergeMatmuls: boolean;
  private readonly heldSeg = { x: 0, T: 0, n: 0, kind: "" };
  private readonly heldMatmuls: { fn: MatmulKernel; out: number; input: number; w: Weight | null }[] = Array.from(
    { length: MAX_SEGMENTS },
    () => ({ fn: "matmul_f32" as MatmulKernel, out: 0, input: 0, w: null }),
  );
  /** The attention op's row metadata, one object reused for every call. */
  private readonly attentionRows: AttentionRows = {
    rows: 0,
    T: 0,
    maxLen: 0,
    rowFields: ROW_FIELDS,
    rowPageTable: ROW_PAGE_TABLE,
    rowPos: ROW_POS,
    rowStart: ROW_START,
    bandBytes: 0,
    runRows: 0,
  };

  constructor(opts: ThreadedWasmOptions) {
    // the names first (so opts is an object or undefined; undefined gets threads' own ParamError, not a TypeError)
    checkOptionNames("ThreadedWasmBackend", opts, THREADED_WASM_OPTION_NAMES);
    super({ relaxed: opts?.relaxed, shared: true, ggmlOrder: opts?.ggmlOrder });
    threadCount("threads", opts?.threads);
    this.threadOpts = opts;
    this.minWork = opts.minWork ?? DEFAULT_MIN_WORK;
    this.mergeMatmuls = opts.mergeMatmuls ?? true;
  }

  override twin(): ThreadedWasmBackend {
    return new ThreadedWasmBackend(this.threadOpts);
  }

  /** No op of the Workers is pending or queued: the memory may be read and written from this thread now. */
  get idle(): boolean {
    return !this.pending();
  }

  /** Prefill's attention runs query rows on every thread at once, each in its own band of the scores' scratch. */
  get attentionBands(): number {
    return this.threadOpts.threads;
  }

  /** Threads actually running ops (1 after a fallback). */
  get threads(): number {
    return this.pool?.threads ?? 1;
  }

  override async init(bytes: number): Promise<void> {
    await super.init(bytes);
    const { threads, fallback } = this.threadOpts;
    if (threads === 1) return;
    const kind = threadSupport();
    try {
      if (!kind) throw new KvasmError("unsupported", "this runtime has no Worker with shared WebAssembly memory");
      const module = await kernelModule(pickVariant({ shared: true, relaxed: this.opts.relaxed }));
      this.pool = await ThreadPool.start({
        threads,
        kind,
        cores: await coreCount(),
        module,
        memory: this.arena.memory,
        exports: this.kernels,
        workerURL: this.threadOpts.workerURL,
        joinSpinMs: this.threadOpts.joinSpinMs,
      });
    } catch (e) {
      if (!fallback) {
        this.arena.close();
        throw e;
      }
    }
  }

  // ---------------------------------------------------------------- split ops

  /**
   * A prefill's matmul (T >= TILED_ROWS rows, no profile) is held back rather than run: the matmuls that follow over
   * the same input (sameInput: q's then k's and v's, gate's then up's) join it, and the next other op (or read, flush)
   * runs them as one pool op, each thread going on from one weight's rows to the next with one join at the end.
   * Every output row is computed by the same kernel call as alone, so the bits do not change.
   */
  override matmul(out: number, x: number, w: Weight, T: number, sameInput = false): void {
    if (this.held > 0 && sameInput && this.joinsHeld(x, w, T)) return this.hold(out, w);
    if (this.pending()) return this.queue.push(Op.matmul, out, x, T, sameInput ? 1 : 0, 0, 0, 0, 0, w);
    if (!this.pool || T * w.rows * w.cols < this.minWork) return super.matmul(out, x, w, T, sameInput);
    const scratch = this.matmulScratch;
    const p = this.profile;
    let t0 = p ? p.now() : 0;
    const input = this.prepareActivations(x, w, T, scratch, this.reusePrepared(x, w, T, scratch, sameInput));
    if (p) {
      if (w.type !== GGMLType.F32) p.add("quantize act", t0);
      t0 = p.now();
    }
    // the split preparation is still running: the matmul goes first in line. Outside drain() the
    // queue is empty here; inside it, ops issued after this matmul are already queued and must follow it.
    if (this.pool.busy) this.queue.unshift(Op.matmulSplit, out, input, T, 0, 0, 0, 0, 0, w, this.preparedKernel);
    else if (!p && T >= TILED_ROWS && this.mergeMatmuls && !this.draining) {
      // (not while draining the queue: an op that runs the held ones and finds the pool pending again queues itself
      // behind the ops already queued after it; outside drain() nothing is queued while a matmul is held)
      const h = this.heldSeg;
      h.x = x, h.T = T, h.n = w.cols, h.kind = this.activationKind(w);
      this.hold(out, w, input);
    } else this.matmulSplit(this.preparedKernel, out, input, w, T);
    if (p) this.profileMatmul(p, w, t0);
  }

  /** What a matmul prepares its input into: "f32" (nothing: it reads x), "round_f16", or its quantize kernel. */
  private activationKind(w: Weight): string {
    return w.type === GGMLType.F32 ? "f32" : w.type === GGMLType.F16 ? "round_f16" : this.kernelsOf(w).quantize;
  }

  /** Can a sameInput matmul join the held ones: room left, the same x, rows, width and activation preparation? */
  private joinsHeld(x: number, w: Weight, T: number): boolean {
    const h = this.heldSeg;
    return this.held < MAX_SEGMENTS && h.x === x && h.T === T && h.n === w.cols && h.kind === this.activationKind(w);
  }

  /** Holds a matmul back (see matmul): its kernel, output and prepared input (x itself for F32 weights). */
  private hold(out: number, w: Weight, input?: number): void {
    if (input === undefined) {
      // a joining matmul: the held ones' preparation is its own (reusePrepared keeps its record of it)
      input = this.prepareActivations(this.heldSeg.x, w, this.heldSeg.T, this.matmulScratch, true);
      if (w.type !== GGMLType.F32) this.reusePrepared(this.heldSeg.x, w, this.heldSeg.T, this.matmulScratch, true);
    }
    const m = this.heldMatmuls[this.held++];
    m.fn = this.preparedKernel, m.out = out, m.input = input, m.w = w;
  }

  /** Runs the held matmuls (see matmul): one of them as it is, more as one op. */
  private runHeld(): void {
    const n = this.held, pool = this.pool!, T = this.heldSeg.T;
    this.held = 0;
    if (n === 1) {
      const m = this.heldMatmuls[0];
      return this.matmulSplit(m.fn, m.out, m.input, m.w!, T);
    }
    for (let i = 0; i < n; i++) {
      const m = this.heldMatmuls[i], w = m.w!;
      pool.addSegment(this.rowGroupOf(w), m.fn, m.out, m.input, w.ptr, w.cols, w.rows, T);
      m.w = null;
    }
    pool.splitSegments("tiled");
  }

  /**
   * The matmul over prepared input, split by output rows; a few rows stream the weights through once: few, long chunks
   * (see splitStreaming); many rows (prefill) take small last chunks, so that neither thread waits long at the end.
   */
  private matmulSplit(fn: MatmulKernel, out: number, input: number, w: Weight, T: number): void {
    // a cross-row layout's chunks start on its row groups
    const cut = T < STREAMING_ROWS_BELOW ? "streaming" : T >= TILED_ROWS ? "tiled" : "default";
    this.pool!.splitGrouped(this.rowGroupOf(w), fn, "rows", cut, 8, out, input, w.ptr, w.cols, w.rows, T, 0, w.rows);
  }

  /**
   * Rounds or quantizes x into scratch once, before the matmul is split, as
   * matmulRows(prepare) does; a batch of rows is itself split by rows (each
   * row is rounded or quantized alone). Returns the matmul's input; its kernel is left in preparedKernel.
   */
  private prepareActivations(x: number, w: Weight, T: number, scratch: number, ready: boolean): number {
    const k = this.kernels, n = w.cols, split = this.pool !== undefined && T >= 2 && T * n >= this.minWork;
    switch (w.type) {
      case GGMLType.F32:
        this.preparedKernel = this.denseKernel(GGMLType.F32);
        return x;
      case GGMLType.F16:
        this.preparedKernel = this.denseKernel(GGMLType.F16);
        if (ready) return scratch;
        if (split) this.pool!.splitArgs("round_f16", "elements", false, 3, scratch, x, T * n);
        else k.round_f16(scratch, x, T * n);
        return scratch;
      default: {
        const q = this.kernelsOf(w);
        this.preparedKernel = q.matmul;
        if (ready) return scratch;
        if (split) this.pool!.splitArgs(q.quantize, "rows", false, 4, scratch, x, n, T);
        else k[q.quantize](scratch, x, n, T);
        return scratch;
      }
    }
  }

  override attention(out: number, q: number, kv: KVLayout, layer: number, rows: number, T: number, scratch: number): void {
    if (this.pending()) return this.queue.push(Op.attention, out, q, layer, rows, T, scratch, 0, 0, kv);
    let maxLen = 0;
    for (let t = 0; t < T; t++) {
      const r = (rows >> 2) + t * ROW_FIELDS;
      maxLen = Math.max(maxLen, this.heapI32[r + ROW_POS] + 1 - this.heapI32[r + ROW_START]);
    }
    // the Q8_0 and u8_asym caches' attention runs on the calling thread; the F16 cache's kernel takes the f32 one's arguments
    if (!this.pool || kv.kvType === "q8_0" || kv.kvType === "u8_asym" || 2 * T * kv.nHeads * maxLen * kv.headDim < this.minWork) {
      return super.attention(out, q, kv, layer, rows, T, scratch);
    }
    // one kernel for the whole batch (the F16 cache's path by the last row's position), every head split over the threads
    const lastPos = this.heapI32[(rows >> 2) + (T - 1) * ROW_FIELDS + ROW_POS];
    const batch = this.attentionRows;
    batch.rows = rows, batch.T = T, batch.maxLen = maxLen;
    // many rows: split by query rows, each thread in its own band of the scratch (planned attentionBands times over),
    // unless the rows share top-k's selection scratch (the F16 cache's kernels take no top-k); then a chunk's rows go
    // in runs where the kernel has a run form (assembly/attn-run.ts: a run's scores fit a band, the same bits)
    const topK = attentionTopK(kv);
    batch.bandBytes = T >= STREAMING_ROWS_BELOW && topK === 0 ? 4 * kv.nHeads * maxLen : 0;
    let kernel = this.attentionKernel(kv, T, lastPos);
    const run = batch.bandBytes > 0 ? runKernel(kernel, topK) : undefined;
    if (run) kernel = run;
    batch.runRows = run ? runRows(kv.nHeads) : 0;
    const frame = this.attentionFrame(kernel, kv, layer, scratch, 0, kv.nHeads);
    frame.set("out", out).set("q", q);
    const p = this.profile, t0 = p ? p.now() : 0;
    this.pool.attention(frame, batch);
    if (p) p.add("attention", t0);
  }

  override rmsnorm(out: number, x: number, w: Weight, n: number, eps: number, T: number): void {
    if (this.pending()) return this.queue.push(Op.rmsnorm, out, x, n, eps, T, 0, 0, 0, w);
    if (!this.pool || T < 2 || 2 * T * n < this.minWork) return super.rmsnorm(out, x, w, n, eps, T);
    // rows of (out, x, w.ptr, n, eps, T): out and x advance by a row, T becomes the chunk's rows
    const p = this.profile, t0 = p ? p.now() : 0;
    this.pool.splitArgs("rmsnorm", "rows", false, 6, out, x, w.ptr, n, eps, T);
    if (p) p.add("norm", t0);
  }

  override rope(
    x: number,
    table: number,
    positions: number,
    T: number,
    nHeads: number,
    headDim: number,
    ropeDim: number,
    halves: boolean,
  ): void {
    if (this.pending()) return this.queue.push(Op.rope, x, table, positions, T, nHeads, headDim, ropeDim, halves ? 1 : 0);
    if (!this.pool || T < 2 || 2 * T * nHeads * ropeDim < this.minWork) {
      return super.rope(x, table, positions, T, nHeads, headDim, ropeDim, halves);
    }
    const p = this.profile, t0 = p ? p.now() : 0;
    this.pool.splitArgs("rope", "rows", false, 8, x, table, positions, T, nHeads, headDim, ropeDim, halves ? 1 : 0);
    if (p) p.add("rope", t0);
  }

  override add(out: number, a: number, b: number, n: number): void {
    if (this.pending()) return this.queue.push(Op.add, out, a, b, n);
    if (!this.pool || n < this.minWork) return super.add(out, a, b, n);
    const p = this.profile, t0 = p ? p.now() : 0;
    this.pool.splitArgs("add", "elements", false, 4, out, a, b, n);
    if (p) p.add("add", t0);
  }

  override swiglu(out: number, gate: number, up: number, n: number, T: number): void {
    if (this.pending()) return this.queue.push(Op.swiglu, out, gate, up, n, T);
    // an exp and a divide per element: one decode row of 2048 took 12.8 µs on one thread (bench/threads.ts
    // --profile, 2-core Zen VM), as long as a 250K multiply-add matmul, so it is split from 1024 elements on
    if (!this.pool || 32 * n * T < this.minWork) return super.swiglu(out, gate, up, n, T);
    // rows whose width is a multiple of 16 group alike as one long row (split at multiples of 64 elements);
    // other widths split by whole rows, so each row's SIMD body and tail fall as on one thread
    const p = this.profile, t0 = p ? p.now() : 0;
    if (n % 16 === 0) this.pool.splitArgs("swiglu", "elements", T < STREAMING_ROWS_BELOW, 5, out, gate, up, n * T, 1); // decode: halves
    else if (T > 1) this.pool.splitArgs("swiglu", "rows", false, 5, out, gate, up, n, T);
    else return super.swiglu(out, gate, up, n, T);
    if (p) p.add("act", t0);
  }

  // ---------------------------------------------------------------- calling-thread ops, in order behind a pending op

  override embed(out: number, table: Weight, tokens: number, T: number): void {
    if (this.pending()) return this.queue.push(Op.embed, out, tokens, T, 0, 0, 0, 0, 0, table);
    super.embed(out, table, tokens, T);
  }

  override kvStore(kv: KVLayout, layer: number, k: number, v: number, rows: number, T: number): void {
    if (this.pending()) return this.queue.push(Op.kvStore, layer, k, v, rows, T, 0, 0, 0, kv);
    super.kvStore(kv, layer, k, v, rows, T);
  }

  override copy(dst: number, src: number, bytes: number): void {
    if (this.pending()) return this.queue.push(Op.copy, dst, src, bytes);
    super.copy(dst, src, bytes);
  }

  // GPT-2 / GPT-NeoX ops: small next to the matmuls, run on the calling thread
  override layernorm(out: number, x: number, w: Weight, bias: Weight | undefined, n: number, eps: number, T: number): void {
    if (this.pending()) return this.queue.push(Op.layernorm, out, x, n, eps, T, 0, 0, 0, w, bias);
    super.layernorm(out, x, w, bias, n, eps, T);
  }

  override addBias(x: number, bias: Weight, rows: number, n: number): void {
    if (this.pending()) return this.queue.push(Op.addBias, x, rows, n, 0, 0, 0, 0, 0, bias);
    super.addBias(x, bias, rows, n);
  }

  override gelu(out: number, x: number, n: number): void {
    if (this.pending()) return this.queue.push(Op.gelu, out, x, n);
    super.gelu(out, x, n);
  }

  override geluErf(out: number, x: number, n: number): void {
    if (this.pending()) return this.queue.push(Op.geluErf, out, x, n);
    super.geluErf(out, x, n);
  }

  override write(ptr: number, data: ArrayBufferView): void {
    if (this.pending()) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(); // the caller may reuse its buffer
      this.queue.push(Op.write, ptr, 0, 0, 0, 0, 0, 0, 0, bytes);
      return;
    }
    super.write(ptr, data);
  }

  override async upload(ptr: number, source: ByteSource, offset: number, bytes: number): Promise<void> {
    if (this.held > 0) this.runHeld();
    await this.drain();
    await super.upload(ptr, source, offset, bytes);
  }

  override read(ptr: number, dest: Float32Array): Promise<void> {
    if (this.held > 0) this.runHeld();
    // nothing pending or queued (the usual end of a step): read now, without drain()'s async frames
    if (this.pool === undefined || (!this.pool.busy && this.queue.size === 0)) return super.read(ptr, dest);
    return this.drainThenRead(ptr, dest);
  }

  private async drainThenRead(ptr: number, dest: Float32Array): Promise<void> {
    await this.drain();
    await super.read(ptr, dest);
  }

  override flush(): Promise<void> {
    if (this.held > 0) this.runHeld();
    if (this.pool === undefined || (!this.pool.busy && this.queue.size === 0)) return Promise.resolve();
    return this.drain();
  }

  override async close(): Promise<void> {
    this.held = 0;
    this.queue.clear();
    this.pool?.close();
    this.pool = undefined;
    await super.close();
  }

  /** Is there a pending op (or queued ops behind one) that a new op must wait for? */
  private pending(): boolean {
    if (this.held > 0) this.runHeld();
    return this.pool !== undefined && (this.pool.busy || (this.queue.size > 0 && !this.draining));
  }

  /** Finishes a pending op and runs the ops queued behind it, awaiting the workers whenever one is pending again. */
  private async drain(): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    try {
      for (;;) {
        await pool.settle();
        if (this.queue.size === 0) return;
        this.draining = true;
        try {
          this.runFirst();
        } finally {
          this.draining = false;
        }
      }
    } catch (e) {
      this.queue.clear();
      throw e;
    }
  }

  /** Takes the first queued op off the queue and runs it as it was issued. */
  private runFirst(): void {
    const q = this.queue, i = q.first();
    const a = q.args, at = i * DeferredOps.ARGS, w = q.refA[i] as Weight, kv = q.refA[i] as KVLayout;
    const a0 = a[at], a1 = a[at + 1], a2 = a[at + 2], a3 = a[at + 3], a4 = a[at + 4], a5 = a[at + 5], a6 = a[at + 6], a7 = a[at + 7];
    const op = q.ops[i], refB = q.refB[i];
    q.shift();
    switch (op) {
      case Op.matmul:
        return this.matmul(a0, a1, w, a2, a3 === 1);
      case Op.matmulSplit:
        return this.matmulSplit(refB as MatmulKernel, a0, a1, w, a2);
      case Op.attention:
        return this.attention(a0, a1, kv, a2, a3, a4, a5);
      case Op.rmsnorm:
        return this.rmsnorm(a0, a1, w, a2, a3, a4);
      case Op.rope:
        return this.rope(a0, a1, a2, a3, a4, a5, a6, a7 === 1);
      case Op.add:
        return this.add(a0, a1, a2, a3);
      case Op.swiglu:
        return this.swiglu(a0, a1, a2, a3, a4);
      case Op.embed:
        return this.embed(a0, w, a1, a2);
      case Op.kvStore:
        return this.kvStore(kv, a0, a1, a2, a3, a4);
      case Op.copy:
        return this.copy(a0, a1, a2);
      case Op.layernorm:
        return this.layernorm(a0, a1, w, refB as Weight | undefined, a2, a3, a4);
      case Op.addBias:
        return this.addBias(a0, w, a1, a2);
      case Op.gelu:
        return this.gelu(a0, a1, a2);
      case Op.geluErf:
        return this.geluErf(a0, a1, a2);
      case Op.write:
        return super.write(a0, q.refA[i] as Uint8Array);
    }
  }
}
