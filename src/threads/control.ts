// src/threads/ owns running kernels on Workers over the shared memory: the control block every thread spins or waits
// on (this file), the pool that splits ops, and the worker script.
/**
 * The thread pool's control block and the one function every thread runs.
 *
 * The block lives in the arena's reserved low 64 KiB (never handed out by the
 * Arena), at [CONTROL_BASE, CONTROL_BASE + CONTROL_BYTES): the caller writes an
 * op (kernel index, arguments, how to split) into it and bumps GEN; workers
 * and caller run `runShare`, claiming chunks of the range until none are left
 * and adding 1 to DONE for each chunk they finish. Nothing but Atomics passes between threads after start.
 *
 * How each kernel is split (which arguments hold the range, the count, the
 * strides) comes from the kernel specification (src/kernels/spec.ts), read by
 * the pool on the calling thread and written here as argument indices. This
 * module imports nothing: the Worker entry (worker.ts) is built from it alone,
 * so a bundle can ship the worker as one self-contained script.
 */

/** Byte address of the control block in the shared memory. */
export const CONTROL_BASE = 4096;
/** Bytes of the block, the failure message area included. */
const CONTROL_BYTES = 4096;

// i32 word indices into the block. The words threads spin on or claim with get cache lines (16 words) of
// their own: GEN (spun on by idle workers, with SLEEPERS), NEXT (claimed per chunk), DONE (spun on by the
// joining caller). On one line with the op's words, every write of the next op's arguments and every
// claim or count pulled the line away from the spinning core and back.
/** Bumped (Atomics.add) once per op; workers wait for it to change. */
export const GEN = 96;
/** Chunks of the current op finished (by any thread). */
export const DONE = 112;
/** 0, or the index of a worker that failed (its message is at MSG). */
export const FAILED = 2;
/** Set to 1 by close(): workers leave their loop at the next GEN. */
export const STOP = 3;
/** Op code of the current op. */
export const OP = 5;
/** Index into the kernel name list the pool was started with. */
export const FN = 6;
/** Number of kernel arguments. */
export const NARGS = 7;
/** Bit i set: argument i is an f32 (stored as its bits). */
export const FLOATS = 8;
/** Units to split (rows, heads, elements). */
export const TOTAL = 9;
/** SPLIT_RANGE and ATTENTION: which arguments receive a chunk's first and end unit (matmul r0, r1; attention h0, h1). */
export const LO_ARG = 4;
export const HI_ARG = 10;
/** SPLIT_OFFSET: which argument receives the chunk's unit count. */
export const COUNT_ARG = 11;
/** Length in bytes of the failure message at MSG. */
export const MSG_LEN = 12;
/**
 * The claim word: (GEN & 0xffff) << 16 | next chunk index. A thread claims a
 * chunk by compare-exchange only while the tag is its op's generation, so a
 * worker that wakes after its op was finished by others claims nothing, and
 * the caller never waits for a thread that has no work.
 */
export const NEXT = 80;
/**
 * 1 while spinning threads (a worker waiting for GEN, the caller waiting at a join) run Atomics.pause() each turn: the
 * spin-wait hint (x86 `pause`), which leaves the core's issue slots to a hyperthread sibling that computes (on a 2-vCPU
 * cloud VM the two vCPUs are often the two hyperthreads of one core: the pool's own other thread, busy in a chunk while
 * this one spins for the next op). Set by the pool (ThreadPool.spinPause) where the runtime has Atomics.pause.
 */
export const SPIN_PAUSE = 14;
/** Chunks in the op; chunk i is units [BOUNDS + i, BOUNDS + i + 1) (see planChunks). */
export const NCHUNKS = 15;
/** Kernel arguments, then per-argument byte strides (SPLIT_OFFSET), MAX_ARGS words each. */
export const ARGS = 16;
export const MAX_ARGS = 24;
export const STRIDES = ARGS + MAX_ARGS;
/**
 * ATTENTION: the batch's row metadata (where the rows are, how many, the
 * longest span, the field layout of a row), the bytes of one query row, and
 * the kernel's argument indices that change per row (from the spec).
 */
const ATT_WORDS = STRIDES + MAX_ARGS;
export const ATT = {
  rows: ATT_WORDS,
  T: ATT_WORDS + 1,
  maxLen: ATT_WORDS + 2,
  rowFields: ATT_WORDS + 3,
  rowPageTable: ATT_WORDS + 4,
  rowPos: ATT_WORDS + 5,
  rowStart: ATT_WORDS + 6,
  qBytes: ATT_WORDS + 7,
  outArg: ATT_WORDS + 8,
  qArg: ATT_WORDS + 9,
  attArg: ATT_WORDS + 10,
  pageTableArg: ATT_WORDS + 11,
  startArg: ATT_WORDS + 12,
  endArg: ATT_WORDS + 13,
  /** ATTENTION_ROWS: bytes between two threads' score bands (thread i's scores start at att + i * bandBytes). */
  bandBytes: ATT_WORDS + 14,
  /**
   * The most rows of a run one call takes (a run kernel's nRows, its last argument: attentionRun); 0 for a one-row kernel.
   * The ATTENTION op (by heads) passes nRows = 1 to a run kernel: a run's scores fit only a whole band.
   */
  runRows: ATT_WORDS + 15,
} as const;
// ATT fills words 64..79 (ATT_WORDS = 64): NEXT, at 80, starts the next cache line; a sixteenth field needs another place
/**
 * Workers asleep in Atomics.wait on GEN (each adds 1 before it waits and takes it back after): the caller
 * calls Atomics.notify only when this is not 0, so an op among spinning workers costs no notify.
 */
export const SLEEPERS = 97;
/** The op's chunk boundaries, NCHUNKS + 1 words (planChunks); up to MAX_CHUNKS chunks fit before MSG. */
export const BOUNDS = 128;
export const MAX_CHUNKS = 120;
/** Byte offset (from CONTROL_BASE) and size of a failed worker's message. */
export const MSG = 1024;
/**
 * Byte offset (from CONTROL_BASE) of the opt-in thread statistics (ThreadPool.recordStats; bench/threads.ts --joins):
 * f64 words, STAT.published (when the caller published the current op, in epoch ms: performance.timeOrigin + now(),
 * which every thread can read alike), then STAT_FIELDS words a thread (thread i at STAT_THREAD + i * STAT_FIELDS).
 * Written only while the STATS_ON word is 1, so ops of a pool that does not record pay one read of a word per op.
 */
export const STATS = 3072;
export const MSG_BYTES = STATS - MSG;
/** 1 while threads record statistics (see STATS). */
export const STATS_ON = 13;
/** f64 indices into the statistics area: the header, then each thread's fields, from STAT_THREAD + index * STAT_FIELDS. */
export const STAT = {
  published: 0,
  /** Per thread: ms spent running chunks (inside the kernels, JS glue of the call included). */
  busyMs: 0,
  /** Chunks run. */
  chunks: 1,
  /** Ops in which this thread ran no chunk: the others had claimed them all when it arrived. */
  emptyOps: 2,
  /** Workers: times they slept in Atomics.wait for an op (their spin ran out first). */
  parks: 3,
  /** Workers: ops seen while spinning, and the summed delay from the op's publication to being seen (ms). */
  spunOps: 4,
  spunDelayMs: 5,
  /** Workers: ops seen after a sleep, and their summed delay from publication (a notify's wake-up, ms). */
  parkedOps: 6,
  parkedDelayMs: 7,
} as const;
export const STAT_THREAD = 8;
export const STAT_FIELDS = 8;
/** Threads whose statistics fit in the area. */
export const STAT_MAX_THREADS = (CONTROL_BYTES - STATS) / 8 / STAT_FIELDS - 1;

// op codes
/** fn(...args) with args[LO_ARG] = lo, args[HI_ARG] = hi: the kernel takes the range itself (matmul rows r0, r1). */
export const SPLIT_RANGE = 1;
/** fn(...args) with args[i] += lo * strides[i] and args[COUNT_ARG] = hi - lo (elementwise, per-row ops). */
export const SPLIT_OFFSET = 2;
/** Attention by heads over every query row (see runAttention). */
export const ATTENTION = 3;
/** Attention by query rows, every head of a row in one call, each thread in its own score band (see attentionRows). */
export const ATTENTION_ROWS = 4;
/**
 * Matmuls over one prepared input as one op (runSegment): up to MAX_SEGMENTS weights' output rows laid end to end as
 * one range of units, each chunk inside one weight's rows. The q, k and v projections (and gate and up) read the same
 * activations and write separate outputs, so no thread waits at a join between them: the threads run on from one
 * weight's rows to the next, and the op's last small chunks balance the whole.
 */
export const SEGMENTS = 5;
export const MAX_SEGMENTS = 3;
/** A matmul's arguments (out, xq, w, n, d, T, r0, r1): segment s's are at ARGS + SEG_ARGS * s. */
export const SEG_ARGS = 8;
/** SEGMENTS: segment s's kernel index at SEG_FN + s, its first unit in the op's range at SEG_START + s (s < NSEG). */
export const SEG_FN = STRIDES;
export const SEG_START = STRIDES + MAX_SEGMENTS;
export const NSEG = STRIDES + 2 * MAX_SEGMENTS;

/** The segment of a SEGMENTS op that holds unit u. */
function segmentOf(c: Int32Array, u: number): number {
  let s = 0;
  while (s + 1 < c[NSEG] && c[SEG_START + s + 1] <= u) s++;
  return s;
}

/** The least common multiple of a split's align and a row group (both positive integers): where chunks may start. */
export function chunkAlign(align: number, group: number): number {
  if (group === 1) return align;
  // Euclid's gcd without destructuring (an array per step in JavaScriptCore: this runs once per split op)
  let a = align, b = group;
  while (b) {
    const r = a % b;
    a = b;
    b = r;
  }
  return (align / a) * group;
}

/**
 * Cuts an op's [0, total) units into chunks that threads claim one at a time (compare-exchange on NEXT),
 * writing the boundaries to `bounds` (chunk i is [bounds[i], bounds[i + 1])) and returning the count.
 *
 * Each chunk takes 1 / (2 * threads) of the units still unclaimed (factoring), never fewer than about
 * total / (8 * threads): the first chunks are large (few claims and kernel calls), the last ones small,
 * so when one thread starts late or is slowed the other is left idle for at most a small chunk at the
 * end (equal chunks of an eighth of the op can leave one thread idle for an eighth of every op while the other
 * runs its last chunk). Every chunk starts at a multiple of `align` and the last one
 * ends at `total`, so a kernel's unit groups and leftover units fall exactly as on one thread, and each
 * unit is computed by the same code, whichever thread claims it.
 */
export function planChunks(total: number, align: number, threads: number, bounds: Int32Array | number[], at = 0, perThread = 8): number {
  const floor = roundUp(Math.max(1, Math.ceil(total / Math.min(MAX_CHUNKS, perThread * threads))), align);
  let n = 0;
  for (let lo = 0; lo < total; n++) {
    bounds[at + n] = lo;
    lo = Math.min(total, lo + Math.max(floor, roundUp(Math.ceil((total - lo) / (2 * threads)), align)));
  }
  bounds[at + n] = total;
  return n;
}

/**
 * planChunks over a SEGMENTS op: segment s is units [starts[s], starts[s + 1]) (starts[count] = total), its chunks
 * start at multiples of aligns[s] from its start and never cross its end. Each chunk takes 1 / (2 * threads) of the
 * units still unclaimed in the whole op (not in its segment), never fewer than total / min(MAX_CHUNKS / 2, perThread *
 * threads): large chunks while much is left, small ones at the op's end, the one place a thread waits.
 */
export function planSegmentChunks(
  starts: ArrayLike<number>,
  aligns: ArrayLike<number>,
  count: number,
  threads: number,
  bounds: Int32Array | number[],
  at: number,
  perThread: number,
): number {
  const total = starts[count], cap = Math.min(MAX_CHUNKS >> 1, perThread * threads);
  let n = 0, left = total;
  for (let s = 0; s < count; s++) {
    const end = starts[s + 1], align = aligns[s], floor = roundUp(Math.max(1, Math.ceil(total / cap)), align);
    for (let lo = starts[s]; lo < end; n++) {
      bounds[at + n] = lo;
      const hi = Math.min(end, lo + Math.max(floor, roundUp(Math.ceil(left / (2 * threads)), align)));
      left -= hi - lo;
      lo = hi;
    }
  }
  bounds[at + n] = total;
  return n;
}

/** u rounded up to a multiple of align (a function, not a closure in planChunks: that was one allocation per op). */
function roundUp(u: number, align: number): number {
  return Math.ceil(u / align) * align;
}

/** Does this runtime have Atomics.pause (Deno, Bun, browsers of 2025 on; not Node 20)? */
export const HAS_PAUSE = typeof (Atomics as unknown as { pause?: unknown }).pause === "function";

/** Atomics.pause(), typed: call only where HAS_PAUSE. */
export const spinHint = Atomics as unknown as { pause(): void };

// deno-lint-ignore no-explicit-any
type KernelFn = (...args: any[]) => unknown;

/** The views one thread needs over the shared memory. */
export interface ThreadView {
  ctl: Int32Array; // the control block, as i32 words
  ctlF32: Float32Array; // the same words, as f32
  stats: Float64Array; // the statistics area (STATS), as f64
  /** Per thread and kernel, ms in chunks and chunks run (kernelStatIndex), while STATS_ON; a buffer of the pool's own. */
  kernelStats: Float64Array;
  heap: Int32Array; // the whole memory, as i32
  fns: KernelFn[]; // kernels, in the pool's name order
  index: number; // 0 for the calling thread, 1.. for the workers: which scratch band ATTENTION_ROWS writes
}

/**
 * Where thread `index`'s figures for kernel `fn` sit in ThreadView.kernelStats (of `kernels` kernels): ms in its chunks
 * at the index returned, chunks run at the next, units run (rows, heads, elements) at the one after: units per ms tell a
 * thread slowed by its core (a busy SMT sibling of the host, a lower clock) from one that got less work. The caller's
 * recordStats() reads them; the buffer is a SharedArrayBuffer the pool makes at start (kernelStatBytes) and hands every
 * worker in its start message.
 */
export function kernelStatIndex(index: number, fn: number, kernels: number): number {
  return KERNEL_STAT_FIELDS * (index * kernels + fn);
}

const KERNEL_STAT_FIELDS = 3;

/** Bytes of the per-kernel statistics of `threads` threads over `kernels` kernels (see kernelStatIndex). */
export function kernelStatBytes(threads: number, kernels: number): number {
  return 8 * KERNEL_STAT_FIELDS * threads * kernels;
}

export function threadView(
  memory: WebAssembly.Memory,
  exports: Record<string, unknown>,
  names: readonly string[],
  index = 0,
  kernelStats?: SharedArrayBuffer,
): ThreadView {
  const buf = memory.buffer;
  return {
    ctl: new Int32Array(buf, CONTROL_BASE, CONTROL_BYTES >> 2),
    ctlF32: new Float32Array(buf, CONTROL_BASE, CONTROL_BYTES >> 2),
    stats: new Float64Array(buf, CONTROL_BASE + STATS, (CONTROL_BYTES - STATS) >> 3),
    kernelStats: new Float64Array(kernelStats ?? new SharedArrayBuffer(kernelStatBytes(index + 1, names.length))),
    heap: new Int32Array(buf),
    fns: names.map((n) => exports[n] as KernelFn),
    index,
  };
}

// Kernels are called with `fn.apply(null, argv)`, not `fn(...argv)`: in Bun (JavaScriptCore) a spread call from a pool
// thread, which never returns to its event loop, left memory behind that the thread did not give back (a 16-sequence
// engine on stories260K, 2 threads: resident 87 -> 119 MiB over 38,400 tokens, flat at 79-81 MiB with apply;
// bench/serve-load.ts, README "Serving").
// One argument array per arity, made once and refilled for every chunk: emptied and pushed again (as before), an
// array gives up its backing store and grows a new one per call. The arrays hold tagged values (made of nulls), not
// unboxed doubles, so that apply() passes a small integer as it is instead of boxing every argument of every call.
const argvs: unknown[][] = [];

function argvOf(n: number): unknown[] {
  return argvs[n] ??= Array.from({ length: n }, () => null);
}

/** The NEXT word that opens generation `gen` at chunk 0. */
export function claimTag(gen: number): number {
  return (gen & 0xffff) << 16;
}

/**
 * Claims and runs chunks of generation `gen`'s op until none are left,
 * adding 1 to DONE after each. Caller and workers run this same code.
 */
export function runShare(v: ThreadView, gen: number): void {
  if (v.ctl[STATS_ON] === 1 && v.index < STAT_MAX_THREADS) return runShareCounted(v, gen);
  const c = v.ctl, tag = gen & 0xffff;
  for (;;) {
    const cur = Atomics.load(c, NEXT), i = cur & 0xffff, chunks = c[NCHUNKS];
    if (cur >>> 16 !== tag || i >= chunks) return;
    if (Atomics.compareExchange(c, NEXT, cur, cur + 1) !== cur) continue;
    runRange(v, c[BOUNDS + i], c[BOUNDS + i + 1]);
    // only the op's last chunk can end the caller's wait (join waits for all of them)
    if (Atomics.add(c, DONE, 1) + 1 >= chunks) Atomics.notify(c, DONE);
  }
}

/**
 * runShare with this thread's statistics (STATS): its time in chunks, its chunks, and whether it got any; and by kernel
 * (kernelStats), its time in the op's chunks and their count.
 */
function runShareCounted(v: ThreadView, gen: number): void {
  const c = v.ctl, s = v.stats, at = STAT_THREAD + v.index * STAT_FIELDS, tag = gen & 0xffff;
  const ks = v.kernelStats, segments = c[OP] === SEGMENTS;
  let ran = 0, k = kernelStatIndex(v.index, c[FN], v.fns.length);
  for (;;) {
    const cur = Atomics.load(c, NEXT), i = cur & 0xffff, chunks = c[NCHUNKS];
    if (cur >>> 16 !== tag || i >= chunks) break;
    if (Atomics.compareExchange(c, NEXT, cur, cur + 1) !== cur) continue;
    const lo = c[BOUNDS + i], hi = c[BOUNDS + i + 1], t0 = performance.now();
    if (segments) k = kernelStatIndex(v.index, c[SEG_FN + segmentOf(c, lo)], v.fns.length);
    runRange(v, lo, hi);
    const ms = performance.now() - t0;
    s[at + STAT.busyMs] += ms;
    if (k + 2 < ks.length) ks[k] += ms, ks[k + 1]++, ks[k + 2] += hi - lo;
    ran++;
    if (Atomics.add(c, DONE, 1) + 1 >= chunks) Atomics.notify(c, DONE);
  }
  s[at + STAT.chunks] += ran;
  if (ran === 0) s[at + STAT.emptyOps]++;
}

function runRange(v: ThreadView, lo: number, hi: number): void {
  const c = v.ctl, op = c[OP];
  if (op === SEGMENTS) return runSegment(v, lo, hi);
  const n = c[NARGS], floats = c[FLOATS];
  const argv = argvOf(n);
  for (let i = 0; i < n; i++) argv[i] = (floats >> i) & 1 ? v.ctlF32[ARGS + i] : c[ARGS + i];
  if (op === ATTENTION) return runAttention(v, argv, lo, hi);
  if (op === ATTENTION_ROWS) {
    return attentionRows(v, argv, lo, hi, c[ARGS + c[ATT.attArg]] + v.index * c[ATT.bandBytes], 0, c[ATT.runRows]);
  }
  if (op === SPLIT_RANGE) {
    argv[c[LO_ARG]] = lo;
    argv[c[HI_ARG]] = hi;
  } else {
    for (let i = 0; i < n; i++) argv[i] = (argv[i] as number) + lo * c[STRIDES + i];
    argv[c[COUNT_ARG]] = hi - lo;
  }
  v.fns[c[FN]].apply(null, argv);
}

/** Units [lo, hi) of a SEGMENTS op: rows lo - start, hi - start of the weight of the segment that holds them. */
function runSegment(v: ThreadView, lo: number, hi: number): void {
  const c = v.ctl, s = segmentOf(c, lo), start = c[SEG_START + s], at = ARGS + SEG_ARGS * s;
  const argv = argvOf(SEG_ARGS);
  for (let i = 0; i < SEG_ARGS; i++) argv[i] = c[at + i];
  argv[c[LO_ARG]] = lo - start;
  argv[c[HI_ARG]] = hi - start;
  v.fns[c[SEG_FN + s]].apply(null, argv);
}

/**
 * Heads [h0, h1) of every query row, the kernel's arguments in argv (in the
 * spec's order) with the per-row ones set here. The kernel keeps head h's
 * scores at att + h * len; threads run rows at their own pace, and rows differ
 * in len, so each chunk's scores are moved into its own band [h0 * maxLen, h1 * maxLen).
 */
function runAttention(v: ThreadView, argv: unknown[], h0: number, h1: number): void {
  const c = v.ctl;
  argv[c[LO_ARG]] = h0;
  argv[c[HI_ARG]] = h1;
  attentionRows(v, argv, 0, c[ATT.T], c[ARGS + c[ATT.attArg]], h0, Math.min(1, c[ATT.runRows]));
}

/**
 * Query rows [t0, t1) with the heads argv holds, one kernel call a row (or a run of up to maxRun rows: a run kernel's
 * nRows, its last argument in the spec; 0 for a kernel without it), as the calling thread alone makes them. Head h's
 * scores go to att + 4 * (h0 * maxLen + (h - h0) * len): runAttention's band of its heads; ATTENTION_ROWS passes h0 = 0
 * (every head) and its thread's own band as att, since the rows of one thread's chunks run one after another and two
 * threads' rows run at once. A run's scores (assembly/attn-run.ts: heads in blocks, at most nHeads x the last row's
 * span) fit such a whole band only, which is why runAttention passes maxRun 1.
 */
function attentionRows(v: ThreadView, argv: unknown[], t0: number, t1: number, att: number, h0: number, maxRun: number): void {
  const c = v.ctl, heap = v.heap, attention = v.fns[c[FN]];
  const qBytes = c[ATT.qBytes], rowFields = c[ATT.rowFields], maxLen = c[ATT.maxLen];
  const out = c[ARGS + c[ATT.outArg]], q = c[ARGS + c[ATT.qArg]];
  const rowPageTable = c[ATT.rowPageTable], rowStart = c[ATT.rowStart], rowPos = c[ATT.rowPos], nRowsArg = c[NARGS] - 1;
  for (let t = t0; t < t1;) {
    const r = (c[ATT.rows] >> 2) + t * rowFields;
    const start = heap[r + rowStart], end = heap[r + rowPos] + 1;
    const n = maxRun > 1 ? attentionRun(heap, c[ATT.rows], t, t1, maxRun, rowFields, rowPageTable, rowStart, rowPos) : 1;
    argv[c[ATT.outArg]] = out + t * qBytes;
    argv[c[ATT.qArg]] = q + t * qBytes;
    argv[c[ATT.attArg]] = att + 4 * h0 * (maxLen - (end - start));
    argv[c[ATT.pageTableArg]] = heap[r + rowPageTable];
    argv[c[ATT.startArg]] = start;
    argv[c[ATT.endArg]] = end;
    if (maxRun > 0) argv[nRowsArg] = n;
    attention.apply(null, argv);
    t += n;
  }
}

/**
 * How many query rows from t (at most maxRun, below t1) form a run for the run attention kernel (assembly/attn-run.ts,
 * src/backends/attention-runs.ts): the same page table and start, each position one past the last. heap: the arena as
 * i32; rows: the row metadata's byte address, rowFields i32 a row, the fields at the offsets given.
 */
export function attentionRun(
  heap: Int32Array,
  rows: number,
  t: number,
  t1: number,
  maxRun: number,
  rowFields: number,
  rowPageTable: number,
  rowStart: number,
  rowPos: number,
): number {
  const r = (rows >> 2) + t * rowFields;
  const pageTable = heap[r + rowPageTable], start = heap[r + rowStart], pos = heap[r + rowPos];
  let n = 1;
  while (n < maxRun && t + n < t1) {
    const s = r + n * rowFields;
    if (heap[s + rowPageTable] !== pageTable || heap[s + rowStart] !== start || heap[s + rowPos] !== pos + n) break;
    n++;
  }
  return n;
}

/**
 * Attention's per-call cost in positions: what a query row costs beyond its span (the call, q's load, the softmax's
 * setup), for planRowChunks' balance. A row of span len costs about len + ROW_CALL_POSITIONS.
 */
export const ROW_CALL_POSITIONS = 8;

/**
 * Cuts T query rows into chunks of about equal attention work for ATTENTION_ROWS, as planChunks factors units: each
 * chunk takes 1 / (2 * threads) of the work still unclaimed, never less than total / min(MAX_CHUNKS - 1, 8 * threads).
 * A row's work is its span (end - start, from the row metadata at byte `rows`, rowFields i32 a row) plus
 * ROW_CALL_POSITIONS: a causal prefill's later rows attend to more positions, so equal row counts would leave the thread
 * with the last rows working alone. Writes the boundaries to bounds[at..] and returns the chunk count.
 */
export function planRowChunks(
  heap: Int32Array,
  rows: number,
  T: number,
  rowFields: number,
  rowPos: number,
  rowStart: number,
  threads: number,
  bounds: Int32Array | number[],
  at = 0,
): number {
  const base = rows >> 2;
  let total = 0;
  for (let t = 0; t < T; t++) {
    const r = base + t * rowFields;
    total += heap[r + rowPos] + 1 - heap[r + rowStart] + ROW_CALL_POSITIONS;
  }
  const floor = total / Math.min(MAX_CHUNKS - 1, 8 * threads);
  let n = 0, left = total;
  for (let t = 0; t < T; n++) {
    bounds[at + n] = t;
    const want = Math.max(floor, left / (2 * threads));
    let work = 0;
    while (t < T && work < want) {
      const r = base + t * rowFields;
      work += heap[r + rowPos] + 1 - heap[r + rowStart] + ROW_CALL_POSITIONS;
      t++;
    }
    left -= work;
  }
  bounds[at + n] = T;
  return n;
}
