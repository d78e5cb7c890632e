import { KvasmError } from "../errors.ts";
import {
  ARGS,
  ATT,
  ATTENTION,
  ATTENTION_ROWS,
  BOUNDS,
  chunkAlign,
  claimTag,
  CONTROL_BASE,
  COUNT_ARG,
  DONE,
  FAILED,
  FLOATS,
  FN,
  GEN,
  HAS_PAUSE,
  HI_ARG,
  kernelStatBytes,
  kernelStatIndex,
  LO_ARG,
  MAX_ARGS,
  MAX_SEGMENTS,
  MSG,
  MSG_LEN,
  NARGS,
  NCHUNKS,
  NEXT,
  NSEG,
  OP,
  planChunks,
  planRowChunks,
  planSegmentChunks,
  runShare,
  SEG_ARGS,
  SEG_FN,
  SEG_START,
  SEGMENTS,
  SLEEPERS,
  SPIN_PAUSE,
  spinHint,
  SPLIT_OFFSET,
  SPLIT_RANGE,
  STAT,
  STAT_FIELDS,
  STAT_MAX_THREADS,
  STAT_THREAD,
  STATS_ON,
  STOP,
  STRIDES,
  type ThreadView,
  threadView,
  TOTAL,
} from "./control.ts";
import { spawnWorker, threadCount, type ThreadSupport, type WorkerHandle } from "./spawn.ts";
import type { StartMessage, WorkerReply } from "./worker.ts";
import { workerURL } from "./worker-url.ts";
import {
  argIndex,
  type AttentionFrame,
  floatMask,
  KERNEL_NAMES,
  KERNEL_SPEC,
  type KernelArgs,
  type KernelName,
  type KernelSpec,
  type Split,
  type SplitKernel,
} from "../kernels/spec.ts";

/**
 * Attention chunks per thread (other ops: 8, planChunks' default). Every head costs the same, but each chunk
 * is one kernel call per query row: a 128-row prefill cut into 7 head chunks made 896 calls a layer where one
 * thread makes 128, and its attention ran 1.2x faster on two threads than on one (bench/threads.ts --profile);
 * 2 per thread ran it 1.7-1.8x. Since prefill attention goes by query rows (ATTENTION_ROWS, 1.85-2.1x), the cut by heads
 * of 4 or more rows is left to top-k attention, whose rows share one selection scratch.
 */
const ATTENTION_CHUNKS_PER_THREAD = 2;
/** Chunks a thread for splitStreaming: one (the halves on two threads; a thread that finds the other late still claims its chunk). */
const STREAM_CHUNKS_PER_THREAD = 1;
/**
 * Chunks a thread for a matmul of many token rows (Cut "tiled"): factoring's smallest chunk is then 1 / 64 of the rows
 * on two threads (16 of 768) instead of 1 / 16, the tail a thread may wait for at an op's end. Each chunk of a 128-row
 * prefill matmul is 1.5 ms or more of tile work, so the extra claims and calls cost nothing that shows, and two
 * threads' 128-row Q4_0 matmuls took 0.96-0.98x the time of the default cut, interleaved in one process (Deno and Bun,
 * 2026-12-05, bench/prefill-split.ts's shapes): 1.92-1.94x of one thread became 1.97-2.0x, what halves reach.
 */
const TILED_CHUNKS_PER_THREAD = 32;
/**
 * How an op is cut into chunks: "default" (planChunks' 8 a thread), "streaming" (one a thread: splitStreaming),
 * "tiled" (TILED_CHUNKS_PER_THREAD: a matmul of at least TILED_ROWS token rows).
 */
export type Cut = "default" | "streaming" | "tiled";
const CUT_CHUNKS_PER_THREAD: Record<Cut, number | undefined> = {
  default: undefined,
  streaming: STREAM_CHUNKS_PER_THREAD,
  tiled: TILED_CHUNKS_PER_THREAD,
};
/** Token rows from which a matmul takes the tiled cut (a 16-row Q4_0 768x768 chunk of 16 weight rows: 5 µs or more). */
export const TILED_ROWS = 16;
/**
 * Ops of fewer token rows than this (decode, a few sequences' steps) read their weights or cached keys and values
 * once from memory, so they take the streaming cut (splitStreaming; attention likewise); prefill keeps the finer cut.
 */
export const STREAMING_ROWS_BELOW = 4;
/** A split of the spec as the control block takes it: argument indices, and per argument its stride's coefficient and factors. */
interface CompiledSplit {
  op: number;
  fn: number;
  floats: number;
  /** offset: the count argument; range and heads: the argument that holds the total. */
  unitsArg: number;
  lo: number;
  hi: number;
  align: number;
  strideBytes: Float64Array;
  strideFactors: number[][];
}

/** The row metadata an attention op reads per query row (see control.ts runAttention). */
export interface AttentionRows {
  /** Byte address of the rows' metadata, T rows of rowFields i32. */
  rows: number;
  T: number;
  /** The longest span (end - start) among the rows: each chunk's score band. */
  maxLen: number;
  rowFields: number;
  rowPageTable: number;
  rowPos: number;
  rowStart: number;
  /**
   * 0: split by heads, every chunk over every row (the kernel's att holds nHeads * maxLen scores). Else split by query
   * rows, every head of a row in one call as on one thread, thread i's scores at att + i * bandBytes: the caller's
   * scratch must hold threads such bands of nHeads * maxLen scores, and no two rows may share other scratch (top-k's).
   */
  bandBytes: number;
  /**
   * With bandBytes: the most rows of a run one call takes (the run kernel, assembly/attn-run.ts, whose last argument is
   * nRows; src/backends/attention-runs.ts); 0 for the one-row kernels.
   */
  runRows: number;
}

/** recordStats(): the caller's wait at each op's join, by kernel index. */
interface JoinStats {
  joinMs: Float64Array;
  maxMs: Float64Array;
  ops: Float64Array;
}

/** One thread's statistics (see control.ts STAT); index 0 is the calling thread (no wake-ups: it publishes the ops). */
export interface ThreadStats {
  busyMs: number;
  chunks: number;
  emptyOps: number;
  parks: number;
  spunOps: number;
  spunDelayMs: number;
  parkedOps: number;
  parkedDelayMs: number;
}

/** One kernel's chunks on each thread (index 0: the calling thread) while recording. */
export interface KernelStats {
  /** Per thread, ms inside this kernel's chunks (JS glue of each call included). */
  busyMs: number[];
  /** Per thread, chunks run. */
  chunks: number[];
  /** Per thread, units run (matmul rows, attention query rows or heads, elements, rows): busyMs / units is its pace. */
  units: number[];
}

export interface PoolStats {
  threads: ThreadStats[];
  /** By kernel name: ops joined, the caller's summed and longest wait at their joins (ms) after running its own chunks. */
  joins: Record<string, { ops: number; waitMs: number; maxMs: number }>;
  /** By kernel name (those that ran): each thread's time in its chunks, the CPU work two threads' split costs against one's. */
  kernels: Record<string, KernelStats>;
}

/**
 * Who runs the ops (a benchmark's switch, ThreadPool.solo): "off", every thread; "split", the calling thread alone
 * through the very chunks the op is cut into for all threads (the workers are not told of the op); "whole", the
 * calling thread alone in one chunk, one kernel call as a single-thread backend makes it; "workers", the workers
 * alone through the op's chunks (the caller publishes and joins): a worker's pace against the caller's on the same
 * ops. Recording statistics (recordStats) in each, by kernel, separates what a split costs in work (split against
 * whole: tiles cut at chunk edges, per-chunk calls) from what running on two cores at once costs (off against split:
 * shared caches and memory, waits), in CPU time rather than wall time, which a shared host does not skew as much.
 */
export type Solo = "off" | "split" | "whole" | "workers";

export interface PoolOptions {
  /** Threads in all, the calling thread included: threads - 1 Workers are started. */
  threads: number;
  kind: ThreadSupport;
  /** The compiled shared-memory kernel build; every Worker instantiates this very module. */
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** The calling thread's instance of the module (it runs chunks itself). */
  exports: Record<string, unknown>;
  /** Kernels ops may name (default: every kernel of the spec); an op carries its index in this list. */
  kernelNames?: readonly string[];
  /** Cores of the machine: with more threads than cores every thread spins only briefly before it sleeps. */
  cores: number;
  /** Spin with Atomics.pause() each turn where the runtime has it (default true; see control.ts SPIN_PAUSE). */
  spinPause?: boolean;
  /**
   * How long an idle thread spins for the next op (a worker) or for the
   * workers (the caller) before it sleeps in Atomics.wait. Default: 5 ms when
   * every thread has a core, 0.05 ms when they do not.
   */
  spinMs?: number;
  /**
   * How long the caller spins for the workers to finish an op before it
   * leaves the op pending and lets the backend wait asynchronously, where a
   * worker's death event can reach it (default 50 ms). Not an error bound.
   */
  joinSpinMs?: number;
  workerURL?: URL | string;
}

/**
 * threads - 1 Workers over one shared memory plus the calling thread. The
 * module and memory go to each Worker once, in its start message; every op
 * after that is written into the control block and announced by bumping GEN.
 * The caller claims chunks like any worker, then joins by spinning on DONE.
 */
export class ThreadPool {
  readonly threads: number;
  readonly workers: WorkerHandle[] = [];
  private readonly view: ThreadView;
  private readonly names: Map<string, number>;
  private readonly kernelNames: readonly string[];
  /** The spec's splits, compiled once per (kernel, split) and found by kernel then split: nothing is built per op. */
  private readonly splits = new Map<string, Map<string, CompiledSplit>>();
  private readonly joinSpinMs: number;
  private readonly spinMs: number;
  private canWait = true;
  /** An op whose workers had not finished when the caller stopped spinning; settle() finishes it. */
  private pending = false;
  private dead: string | undefined;
  private onDeath: (() => void) | undefined;
  private closed = false;
  /** Generation of the op being written or run. */
  private gen = 0;
  /** Chunks a pending op waits for. */
  private want = 0;
  /** splitArgs' arguments, one buffer for every op. */
  private readonly argBuf = new Float64Array(8);
  /** splitSegments' segments, gathered by addSegment: kernel index, row group, matmul arguments, first unit of each. */
  private readonly segFn = new Int32Array(MAX_SEGMENTS);
  private readonly segAlign = new Int32Array(MAX_SEGMENTS);
  private readonly segArgs = new Float64Array(MAX_SEGMENTS * SEG_ARGS);
  private readonly segStarts = new Int32Array(MAX_SEGMENTS + 1);
  private segCount = 0;
  /** recordStats(): the caller's join waits, by kernel index; null while not recording. */
  private joinStats: JoinStats | null = null;
  /** Per thread and kernel, time in chunks and chunks (control.ts kernelStatIndex), shared with every worker. */
  private readonly kernelStats: SharedArrayBuffer;
  /** See Solo: "off" but in benchmarks that account for the split's work. */
  solo: Solo = "off";

  /** Whether spinning threads run Atomics.pause() each turn (false where the runtime lacks it; see control.ts SPIN_PAUSE). */
  get spinPause(): boolean {
    return Atomics.load(this.view.ctl, SPIN_PAUSE) === 1;
  }

  set spinPause(on: boolean) {
    Atomics.store(this.view.ctl, SPIN_PAUSE, on && HAS_PAUSE ? 1 : 0);
  }

  private constructor(opts: PoolOptions) {
    this.threads = opts.threads;
    this.kernelNames = opts.kernelNames ?? KERNEL_NAMES;
    this.kernelStats = new SharedArrayBuffer(kernelStatBytes(Math.min(opts.threads, STAT_MAX_THREADS), this.kernelNames.length));
    this.view = threadView(opts.memory, opts.exports, this.kernelNames, 0, this.kernelStats);
    this.names = new Map(this.kernelNames.map((n, i) => [n, i]));
    this.joinSpinMs = opts.joinSpinMs ?? 50;
    this.spinMs = spinMs(opts);
  }

  /** Starts the Workers and resolves when every one has instantiated the kernels. */
  static async start(opts: PoolOptions): Promise<ThreadPool> {
    threadCount("threads", opts.threads);
    const pool = new ThreadPool(opts);
    const c = pool.view.ctl;
    for (const i of [DONE, FAILED, STOP, MSG_LEN, SLEEPERS, STATS_ON]) Atomics.store(c, i, 0);
    pool.spinPause = opts.spinPause ?? true;
    const gen = Atomics.load(c, GEN);
    const url = opts.workerURL ?? workerURL();
    const started: Promise<void>[] = [];
    try {
      for (let index = 1; index < opts.threads; index++) {
        let ready!: () => void, failed!: (e: Error) => void;
        const up = new Promise<void>((res, rej) => (ready = res, failed = rej));
        up.catch(() => {}); // awaited below; a rejection after an earlier failure must not go unhandled
        started.push(up);
        const handle = await spawnWorker(url, opts.kind, {
          message: (m) => {
            const r = m as WorkerReply;
            if (r?.type === "ready") ready();
            else if (r?.type === "error") failed(new KvasmError("worker", `worker ${index} could not start: ${r.message}`));
          },
          failure: (reason) => {
            failed(new KvasmError("worker", `worker ${index} could not start: ${reason}`));
            pool.died(`worker ${index} ${reason}`);
          },
        });
        pool.workers.push(handle);
        const start: StartMessage = {
          type: "start",
          module: opts.module,
          memory: opts.memory,
          names: pool.kernelNames,
          index,
          gen,
          spinMs: spinMs(opts),
          kernelStats: pool.kernelStats,
        };
        handle.post(start);
      }
      await Promise.all(started);
    } catch (e) {
      pool.close();
      throw e instanceof KvasmError
        ? e
        : new KvasmError("worker", `could not start worker threads: ${(e as Error)?.message ?? e}`, { cause: e });
    }
    for (const w of pool.workers) w.unref();
    return pool;
  }

  /**
   * Starts (clearing what was counted) or stops recording where two threads' time goes (a benchmark's switch:
   * bench/threads.ts --joins): the caller's wait at each op's join, by kernel; each thread's time in chunks, its chunks,
   * ops it found empty; each worker's delay from an op's publication to its start, spinning or woken from
   * Atomics.wait. Read them with stats() while no op runs.
   */
  recordStats(on: boolean): void {
    const c = this.view.ctl;
    this.view.stats.fill(0);
    this.view.kernelStats.fill(0);
    const n = this.kernelNames.length;
    this.joinStats = on ? { joinMs: new Float64Array(n), maxMs: new Float64Array(n), ops: new Float64Array(n) } : null;
    Atomics.store(c, STATS_ON, on ? 1 : 0);
  }

  /** What recordStats() counted so far, by thread and (the caller's join waits) by kernel name. */
  stats(): PoolStats {
    const s = this.view.stats, j = this.joinStats;
    const threads: ThreadStats[] = [];
    for (let i = 0; i < Math.min(this.threads, STAT_MAX_THREADS); i++) {
      const at = STAT_THREAD + i * STAT_FIELDS;
      threads.push({
        busyMs: s[at + STAT.busyMs],
        chunks: s[at + STAT.chunks],
        emptyOps: s[at + STAT.emptyOps],
        parks: s[at + STAT.parks],
        spunOps: s[at + STAT.spunOps],
        spunDelayMs: s[at + STAT.spunDelayMs],
        parkedOps: s[at + STAT.parkedOps],
        parkedDelayMs: s[at + STAT.parkedDelayMs],
      });
    }
    const joins: Record<string, { ops: number; waitMs: number; maxMs: number }> = {};
    if (j) j.ops.forEach((n, i) => n > 0 && (joins[this.kernelNames[i]] = { ops: n, waitMs: j.joinMs[i], maxMs: j.maxMs[i] }));
    const kernels: Record<string, KernelStats> = {}, ks = this.view.kernelStats, nk = this.kernelNames.length;
    for (let fn = 0; fn < nk; fn++) {
      const busyMs: number[] = [], chunks: number[] = [], units: number[] = [];
      for (let i = 0; i < threads.length; i++) {
        const at = kernelStatIndex(i, fn, nk);
        busyMs.push(ks[at]), chunks.push(ks[at + 1]), units.push(ks[at + 2]);
      }
      if (chunks.some((n) => n > 0)) kernels[this.kernelNames[fn]] = { busyMs, chunks, units };
    }
    return { threads, joins, kernels };
  }

  kernelIndex(name: string): number {
    const i = this.names.get(name);
    if (i === undefined) throw new KvasmError("unsupported", `the thread pool was not started with kernel ${name}`);
    return i;
  }

  /**
   * Runs a kernel split as the spec's `split` of it says: the units come from the arguments (the count
   * argument, or the total's), each chunk gets its range or count and its advanced pointers. Returns
   * false when the op was left pending (see run()). Its rest array is one allocation per call: the backend's
   * per-token ops take splitArgs instead.
   */
  split<S extends string, K extends SplitKernel<S>>(kernel: K, split: S, ...args: KernelArgs<K> & number[]): boolean {
    return this.splitOp(undefined, kernel, split, args, args.length);
  }

  /**
   * split() for an op that streams its data through once from memory (a one-row matmul: every weight byte
   * is read once, from DRAM when the model is larger than the cache), cut into STREAM_CHUNKS_PER_THREAD
   * chunks a thread. Each chunk starts its own streams, and the hardware prefetcher takes a while to follow
   * each new one: a cold 768x768 Q4_K one-row matmul took 25.8 µs as one call on one thread and 35.6 µs as
   * the nine calls of the default cut (2 calls: 30.7 µs), so on two threads the default cut ate most of the
   * second core's gain.
   */
  splitStreaming<S extends string, K extends SplitKernel<S>>(kernel: K, split: S, ...args: KernelArgs<K> & number[]): boolean {
    return this.splitOp(STREAM_CHUNKS_PER_THREAD, kernel, split, args, args.length);
  }

  /**
   * split() (or, with `streaming`, splitStreaming()) with the kernel's first `n` arguments (at most 8) in a0..a7:
   * the decode step's path, which allocates nothing (no rest array; the arguments go through one reused buffer).
   */
  splitArgs<S extends string, K extends SplitKernel<S>>(
    kernel: K,
    split: S,
    streaming: boolean,
    n: KernelArgs<K>["length"],
    a0: number,
    a1: number,
    a2: number,
    a3 = 0,
    a4 = 0,
    a5 = 0,
    a6 = 0,
    a7 = 0,
  ): boolean {
    return this.splitGrouped(1, kernel, split, streaming ? "streaming" : "default", n, a0, a1, a2, a3, a4, a5, a6, a7);
  }

  /**
   * splitArgs() with every chunk also starting at a multiple of `group` units: a matmul over a weight in a cross-row
   * layout (Weight.layout "lanes"), whose kernel takes row ranges that start on its row group. The chunks start at
   * multiples of the least common multiple of the spec's align and group, cut as `cut` says.
   */
  splitGrouped<S extends string, K extends SplitKernel<S>>(
    group: number,
    kernel: K,
    split: S,
    cut: Cut,
    n: KernelArgs<K>["length"],
    a0: number,
    a1: number,
    a2: number,
    a3 = 0,
    a4 = 0,
    a5 = 0,
    a6 = 0,
    a7 = 0,
  ): boolean {
    const a = this.argBuf;
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3, a[4] = a4, a[5] = a5, a[6] = a6, a[7] = a7;
    return this.splitOp(CUT_CHUNKS_PER_THREAD[cut], kernel, split, a, n, group);
  }

  /**
   * Adds a matmul (out, xq, w, n, d, T over all d rows; a kernel of the spec's "rows" split) to the op that
   * splitSegments() runs next: up to MAX_SEGMENTS matmuls over one prepared input, one op with no join between them.
   * `group` is the weight layout's row group (splitGrouped's).
   */
  addSegment<K extends SplitKernel<"rows">>(
    group: number,
    kernel: K,
    out: number,
    xq: number,
    w: number,
    n: number,
    d: number,
    T: number,
  ): void {
    const i = this.segCount;
    if (i >= MAX_SEGMENTS) throw new KvasmError("params", `an op takes at most ${MAX_SEGMENTS} matmuls`);
    const s = this.compiled(kernel, "rows");
    if (s.lo !== 6 || s.hi !== 7) throw new KvasmError("unsupported", `${kernel} does not take its rows as r0, r1 after 6 arguments`);
    this.segFn[i] = s.fn;
    this.segAlign[i] = chunkAlign(s.align, group);
    const a = this.segArgs, at = i * SEG_ARGS;
    a[at] = out, a[at + 1] = xq, a[at + 2] = w, a[at + 3] = n, a[at + 4] = d, a[at + 5] = T, a[at + 6] = 0, a[at + 7] = d;
    this.segStarts[i + 1] = this.segStarts[i] + d;
    this.segCount = i + 1;
  }

  /**
   * Runs the matmuls addSegment() gathered as one op, cut as `cut` says across all their rows (each chunk within one
   * weight's rows, starting on its row group), and joins once. Returns false when the op was left pending (see run()).
   */
  splitSegments(cut: Cut): boolean {
    const count = this.segCount;
    this.segCount = 0;
    this.assertUsable();
    const c = this.view.ctl;
    this.gen = Atomics.load(c, GEN) + 1;
    Atomics.store(c, NEXT, claimTag(this.gen));
    c[OP] = SEGMENTS;
    c[FN] = this.segFn[0];
    c[NARGS] = SEG_ARGS * count;
    c[FLOATS] = 0;
    c[TOTAL] = this.segStarts[count];
    c[LO_ARG] = 6;
    c[HI_ARG] = 7;
    c[NSEG] = count;
    for (let i = 0; i < count; i++) {
      c[SEG_FN + i] = this.segFn[i];
      c[SEG_START + i] = this.segStarts[i];
    }
    for (let i = 0; i < count * SEG_ARGS; i++) c[ARGS + i] = this.segArgs[i];
    c[NCHUNKS] = planSegmentChunks(this.segStarts, this.segAlign, count, this.threads, c, BOUNDS, CUT_CHUNKS_PER_THREAD[cut] ?? 8);
    return this.run();
  }

  private splitOp(
    perThread: number | undefined,
    kernel: KernelName,
    split: string,
    args: ArrayLike<number>,
    nargs: number,
    group = 1,
  ): boolean {
    const s = this.compiled(kernel, split);
    const units = args[s.unitsArg];
    this.writeOp(s, args, nargs, units, perThread, group);
    if (s.op === SPLIT_OFFSET) {
      const c = this.view.ctl;
      for (let i = 0; i < nargs; i++) {
        let stride = s.strideBytes[i];
        const factors = s.strideFactors[i];
        for (let j = 0; j < factors.length; j++) stride *= args[factors[j]];
        c[STRIDES + i] = stride;
      }
      c[COUNT_ARG] = s.unitsArg;
    }
    return this.run();
  }

  /**
   * Attention over every query row: the frame holds the kernel's row-invariant arguments; each chunk sets the
   * per-row ones (out and q from row 0's, the scores' band, page table, start, end) from `rows`, as control.ts
   * runAttention does. With rows.bandBytes, chunks are runs of query rows of about equal work (planRowChunks), each
   * row (or run of rows, rows.runRows) one call over every head, as the calling thread alone calls it: prefill's 128
   * rows then make 32 calls a layer (runs of 4) on any thread count. Without it, chunks are heads h0, h1 of every row
   * (one call per row and chunk).
   */
  attention(frame: AttentionFrame, rows: AttentionRows): boolean {
    const kernel = frame.kernel, args = frame.args;
    const s = this.compiled(kernel, "heads");
    // a few rows stream each head's cached keys and values through once: one chunk a thread, as splitStreaming
    this.writeOp(
      s,
      args,
      args.length,
      args[s.unitsArg],
      rows.T < STREAMING_ROWS_BELOW ? STREAM_CHUNKS_PER_THREAD : ATTENTION_CHUNKS_PER_THREAD,
    );
    const c = this.view.ctl;
    c[ATT.rows] = rows.rows, c[ATT.T] = rows.T, c[ATT.maxLen] = rows.maxLen, c[ATT.rowFields] = rows.rowFields;
    c[ATT.rowPageTable] = rows.rowPageTable, c[ATT.rowPos] = rows.rowPos, c[ATT.rowStart] = rows.rowStart;
    c[ATT.qBytes] = args[argIndex(kernel, "nHeads")] * args[argIndex(kernel, "headDim")] * 4;
    c[ATT.outArg] = argIndex(kernel, "out"), c[ATT.qArg] = argIndex(kernel, "q"), c[ATT.attArg] = argIndex(kernel, "att");
    c[ATT.pageTableArg] = argIndex(kernel, "pageTable"), c[ATT.startArg] = argIndex(kernel, "start");
    c[ATT.endArg] = argIndex(kernel, "end");
    c[ATT.bandBytes] = rows.bandBytes;
    c[ATT.runRows] = rows.runRows;
    if (rows.bandBytes > 0) {
      c[OP] = ATTENTION_ROWS;
      c[TOTAL] = rows.T;
      c[NCHUNKS] = planRowChunks(this.view.heap, rows.rows, rows.T, rows.rowFields, rows.rowPos, rows.rowStart, this.threads, c, BOUNDS);
    }
    return this.run();
  }

  private compiled(kernel: KernelName, split: string): CompiledSplit {
    return this.splits.get(kernel)?.get(split) ?? this.compile(kernel, split);
  }

  /** compiled()'s first call for (kernel, split); apart, so the lookup allocates nothing (no closure context made per call). */
  private compile(kernel: KernelName, split: string): CompiledSplit {
    let byName = this.splits.get(kernel);
    if (!byName) this.splits.set(kernel, byName = new Map());
    const spec: KernelSpec = KERNEL_SPEC[kernel];
    const d: Split | undefined = spec.split?.[split];
    if (!d) throw new KvasmError("unsupported", `the kernel specification has no split ${split} of ${kernel}`);
    const at = (arg: string) => {
      const i = spec.args.indexOf(arg);
      if (i < 0) throw new KvasmError("unsupported", `split ${split} of ${kernel} names ${arg}, which is not among its arguments`);
      return i;
    };
    const n = spec.args.length;
    const s: CompiledSplit = {
      op: d.by === "range" ? SPLIT_RANGE : d.by === "heads" ? ATTENTION : SPLIT_OFFSET,
      fn: this.kernelIndex(kernel),
      floats: floatMask(kernel),
      unitsArg: at(d.by === "offset" ? d.count : d.total),
      lo: d.by === "offset" ? -1 : at(d.lo),
      hi: d.by === "offset" ? -1 : at(d.hi),
      align: d.align,
      strideBytes: new Float64Array(n),
      strideFactors: Array.from({ length: n }, () => []),
    };
    if (d.by === "offset") {
      for (const [arg, [bytes, ...times]] of Object.entries(d.advance)) {
        s.strideBytes[at(arg)] = bytes;
        s.strideFactors[at(arg)] = times.map(at);
      }
    }
    byName.set(split, s);
    return s;
  }

  private writeOp(s: CompiledSplit, args: ArrayLike<number>, nargs: number, total: number, perThread?: number, group = 1): void {
    this.assertUsable();
    if (nargs > MAX_ARGS) throw new KvasmError("params", `an op takes at most ${MAX_ARGS} arguments`);
    const c = this.view.ctl, f = this.view.ctlF32, floatMask = s.floats;
    // close the previous op's claims before its words change: a late worker then claims nothing
    this.gen = Atomics.load(c, GEN) + 1;
    Atomics.store(c, NEXT, claimTag(this.gen));
    c[OP] = s.op;
    c[FN] = s.fn;
    c[NARGS] = nargs;
    c[FLOATS] = floatMask;
    c[TOTAL] = total;
    c[LO_ARG] = s.lo;
    c[HI_ARG] = s.hi;
    c[NCHUNKS] = planChunks(total, chunkAlign(s.align, group), this.threads, c, BOUNDS, perThread);
    for (let i = 0; i < nargs; i++) {
      if ((floatMask >> i) & 1) f[ARGS + i] = args[i];
      else c[ARGS + i] = args[i];
    }
  }

  /**
   * Announces the op, runs chunks here until none are left, and joins. Returns
   * false when chunks that workers claimed were still running after
   * joinSpinMs: the op is then pending, and settle() must be awaited before
   * the next op or any read of its results.
   */
  private run(): boolean {
    const c = this.view.ctl;
    if (this.solo === "split" || this.solo === "whole") return this.runSolo();
    Atomics.store(c, DONE, 0);
    if (this.joinStats) this.view.stats[STAT.published] = performance.timeOrigin + performance.now();
    Atomics.store(c, GEN, this.gen); // publishes the op's words written above
    // a worker that was not counted here sees the new GEN before it can wait (both sides seq-cst: see SLEEPERS)
    if (Atomics.load(c, SLEEPERS) !== 0) Atomics.notify(c, GEN);
    try {
      if (this.solo !== "workers" || this.threads === 1) runShare(this.view, this.gen);
    } catch (e) {
      // no more claims; join the chunks workers already run (all but this thread's failed one), then report
      const claimed = Math.min(Atomics.exchange(c, NEXT, claimTag(this.gen) | 0xffff) & 0xffff, c[NCHUNKS]);
      this.join(claimed - 1);
      throw e;
    }
    if (this.joinStats) return this.joinCounted(c[NCHUNKS]);
    return this.join(c[NCHUNKS]);
  }

  /**
   * The op on the calling thread alone (solo "split" or "whole"): GEN is not bumped, so the workers never see it, and
   * the next op takes the same generation. "whole" runs it as one chunk, the kernel's one call over the whole range.
   */
  private runSolo(): boolean {
    const c = this.view.ctl;
    if (this.solo === "whole" && c[OP] === SEGMENTS) {
      // one call per matmul: a chunk never crosses from one weight's rows to the next
      const n = c[NSEG];
      for (let i = 0; i < n; i++) c[BOUNDS + i] = c[SEG_START + i];
      c[BOUNDS + n] = c[TOTAL];
      c[NCHUNKS] = n;
    } else if (this.solo === "whole") {
      c[NCHUNKS] = 1;
      c[BOUNDS] = 0;
      c[BOUNDS + 1] = c[TOTAL];
    }
    Atomics.store(c, DONE, 0);
    runShare(this.view, this.gen);
    return true;
  }

  /** join() timed into the op's kernel's join wait (recordStats). */
  private joinCounted(want: number): boolean {
    const j = this.joinStats!, fn = this.view.ctl[FN], t0 = performance.now();
    const done = this.join(want);
    const ms = performance.now() - t0;
    j.joinMs[fn] += ms;
    j.maxMs[fn] = Math.max(j.maxMs[fn], ms);
    j.ops[fn]++;
    return done;
  }

  /** Waits for DONE to reach `want` chunks; false if it had not after joinSpinMs (the op is then pending). */
  private join(want: number): boolean {
    const c = this.view.ctl;
    if (Atomics.load(c, DONE) < want) {
      // the clock is read after 256 spins (about a µs: most joins end before it), then every 2048: each
      // performance.now() is a number allocated, and joins read it once per op (~1 KB a token), and a caller
      // that waited for a descheduled worker every 256 spins (0.3-4 KB a token on a loaded host)
      let sleepAfter = Infinity, giveUp = Infinity;
      const pause = HAS_PAUSE && c[SPIN_PAUSE] === 1;
      for (let i = 1, done = 0; (done = Atomics.load(c, DONE)) < want; i++) {
        if (pause) spinHint.pause();
        if ((i & 2047) !== 0 && i !== 256) continue;
        if (this.dead !== undefined) throw this.deathError();
        const now = performance.now();
        if (i === 256) sleepAfter = now + this.spinMs, giveUp = now + this.joinSpinMs;
        if (now >= giveUp) {
          this.pending = true;
          this.want = want;
          return false;
        }
        // past the spin budget, sleep until a worker's notify (more threads than cores: spinning would starve them)
        if (now > sleepAfter && this.canWait) {
          try {
            Atomics.wait(c, DONE, done, 1);
          } catch {
            this.canWait = false; // a browser's main thread may not block
          }
        }
      }
    }
    if (Atomics.load(c, FAILED) !== 0) throw this.failure();
    return true;
  }

  /** True while an op's workers have not finished (see run()). */
  get busy(): boolean {
    return this.pending;
  }

  /** Waits, without blocking the event loop, for a pending op; rejects if a worker fails or dies meanwhile. */
  async settle(): Promise<void> {
    const c = this.view.ctl, want = this.want;
    while (this.pending) {
      if (this.closed) throw new KvasmError("closed", "thread pool was closed while an op was pending");
      if (this.dead !== undefined) throw this.deathError();
      const done = Atomics.load(c, DONE);
      if (done >= want) {
        this.pending = false;
        if (Atomics.load(c, FAILED) !== 0) throw this.failure();
        return;
      }
      const death = new Promise<void>((res) => (this.onDeath = res));
      await Promise.race([death, waitChange(c, DONE, done)]);
      this.onDeath = undefined;
    }
  }

  private died(reason: string): void {
    if (this.closed || this.dead !== undefined) return;
    this.dead = reason;
    this.onDeath?.();
  }

  private deathError(): KvasmError {
    return new KvasmError("worker", `a worker thread died: ${this.dead}; close the model and load it again`);
  }

  private failure(): KvasmError {
    const c = this.view.ctl;
    const len = Atomics.load(c, MSG_LEN);
    const text = new TextDecoder().decode(new Uint8Array(c.buffer, CONTROL_BASE + MSG, len).slice());
    const who = Atomics.load(c, FAILED);
    this.dead ??= `worker ${who} failed`;
    return new KvasmError("worker", `worker ${who} failed during an op: ${text}`);
  }

  private assertUsable(): void {
    if (this.closed) throw new KvasmError("closed", "thread pool was used after close()");
    if (this.dead !== undefined) throw this.deathError();
    if (this.pending) {
      throw new KvasmError("worker", "thread pool: an op was dispatched while the previous one is pending (await settle() first)");
    }
  }

  /** Stops and terminates every Worker. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const c = this.view.ctl;
    Atomics.store(c, STOP, 1);
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
    for (const w of this.workers) w.terminate();
    this.onDeath?.();
  }
}

function spinMs(opts: PoolOptions): number {
  return opts.spinMs ?? (opts.threads <= opts.cores ? 5 : 0.05);
}

/** Resolves when c[i] may have changed from `value` (Atomics.waitAsync where there is one; else the next timer tick). */
function waitChange(c: Int32Array, i: number, value: number): Promise<unknown> {
  // deno-lint-ignore no-explicit-any
  const waitAsync = (Atomics as any).waitAsync;
  if (typeof waitAsync === "function") {
    const r = waitAsync(c, i, value, 100);
    return r.async ? r.value : Promise.resolve();
  }
  return new Promise((res) => setTimeout(res, 1));
}
