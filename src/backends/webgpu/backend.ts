import type { ByteSource } from "../../io/source.ts";
import { GGMLType, type GGMLTypeId, ggmlTypeName } from "../../formats/ggml-types.ts";
import { describeValue, OutOfMemoryError, UnsupportedError } from "../../errors.ts";
import { type Backend, type KVLayout, kvSlotBytes, type KVType, type Weight } from "../backend.ts";
import { adapterName, type Gpu, type GpuLimits, hasWgslFeature, limitsOf, requestAdapter, requestDevice, WebGpuError } from "./device.ts";
import { prelude, Q8_0_ACT_WORDS, Q8_K_ACT_WORDS } from "./wgsl-common.ts";
import {
  embedKernel,
  type Epilogue,
  F32_FORMS,
  type F32Form,
  f32RowKernel,
  f32RowStagedWords,
  lanesFor,
  matmulKernel,
  matmulTypes,
  pairedUnits,
  type Prologue,
  QUANTIZE_Q8_K,
  type RowForm,
  rowKernel,
  type RowPlan,
  rowPlan,
  stagedWords,
} from "./wgsl-matmul.ts";
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
  wideAttentionFits,
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
import {
  autoTileShape,
  TILE_N,
  TILE_SHAPE_NAMES,
  TILE_SHAPES,
  tiledKernel,
  tiledWideKernel,
  tileStorageBytes,
  tileTokens,
} from "./wgsl-tiled.ts";
import { attentionRowsKernel, MAX_TILE_HEAD_DIM, ROWS_PER_TILE } from "./wgsl-attention-rows.ts";
import { DeviceSampler } from "./sample.ts";
import type { ResolvedSamplingParams } from "../../sampling/params.ts";
import { ATTENTION_F16, KV_STORE_F16 } from "./wgsl-attention-f16.ts";
import { Fuser, type FuseTarget, type Group, LOOKAHEAD, type Op, OpPool } from "./fuse.ts";

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
/**
 * Head sizes up to which the per-row attention kernel is built for the head size, its K row's loads written out
 * (all in flight before the sums; a loop over a parameter keeps 4 at a time). Larger heads keep the loop.
 */
const UNROLLED_HEAD_DIM = 128;
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
/**
 * Logits from which the device sampler spreads its top-p search over 128 workgroups (wgsl-sample.ts SAMPLE_PASS):
 * 3 passes of 1024 thresholds instead of about 10 of 8, for 4 dispatches more. On an H200 (2026-12-05, same run)
 * sampled decode gained 1.03-1.12x at 32000 logits and 1.08-1.09x at 128256; smaller vocabularies are not measured.
 */
const SPREAD_SAMPLE_FROM = 32000;
/**
 * fold "auto" (the default): a one-row matmul norms and quantizes its own input where its weight has at most this
 * many elements. Each of its workgroups reads the whole input row again, so the prologue's cost grows with the
 * weight while the dispatch it saves costs the same: on an H200 (2026-12-05, same run) "layers" ran stories110M
 * Q4_0 (weights of 0.6-1.6M elements) at 1.08-1.18x of the dispatches apart, the 1B shape (4-17M) at 0.89-0.94x,
 * where the folded gate/up and down projections took longer than their dispatches apart. The bound keeps to what
 * was measured: every 110M weight folds, no 1B one (its Q/K/V, 4M, might gain alone: not measured). With the row
 * kernels (ROW_FORM) folding the 1B's layers ("layers") tied with not folding on an H100 (2026-12-05 15:33-15:38 UTC,
 * three rounds: 781 / 779 / 788 against 775 / 753 / 802 tok/s; 86 dispatches a token against 134, 1427 against 1533 us
 * of GPU time each timed alone), so the bound stays (Q8_0 there is not measured).
 */
const FOLD_AUTO_ELEMENTS = 2 ** 21;
/**
 * Decode's one-row Q8_0/Q4_0 kernels by default (wgsl-matmul.ts rowPlan): "auto", the row kernels with the lanes
 * and units the H200's matvec bench found fastest, folded too. On an H100 (2026-12-05 15:33-15:38 UTC, one call,
 * main's tree then this one, three rounds of the 1B and two of stories110M, one call of 256 tokens) they decoded the
 * 1B shape Q4_0 at 1.32x of matmulKernel's (775 / 753 / 802 against 585 / 581 / 593 tok/s) and stories110M Q4_0,
 * whose layers fold, at 1.10-1.15x (1397 / 1455 against 1272 / 1263), where keeping matmulKernel's fold there ran
 * 1.03-1.04x: since the fold's norm keeps its loads in flight (sumSquares), the row kernels' prologue no longer loses
 * (it had run 1.4-5.5x slower than unfolded on the H200's matvec bench, and stories110M Q4_0 at 0.77x).
 * "pairs" and "octets" (the first rule) and "off" (matmulKernel) by option.
 */
const ROW_FORM: RowForm = "auto";
export const ROW_FORMS: RowForm[] = ["auto", "off", "pairs", "octets"];
/**
 * Decode's one-row F32 matmuls by default: "rows", wgsl-matmul.ts f32RowKernel (the activation staged once a
 * workgroup, a thread's weight loads issued before the staging, two reduction barriers, the epilogues' reads ahead),
 * at F32_ROW_LANES threads a row. On an H100 (2026-12-05 18:36-18:40 UTC, one call, main's tree and this one
 * alternating, three rounds) stories110M F32 greedy decoded at 1343 / 1422 / 1465 tok/s with it at 64 lanes against
 * matmulKernel's 1176 / 1285 / 1275 (1.11-1.15x), and its matmuls took 77 us less of the GPU's time a token (each
 * dispatch timed alone: the output and down projections 198 us against 233, Q/K/V 137 against 157, gate/up 166
 * against 175). "today" (matmulKernel, lanesFor's or f32Lanes' threads) by option.
 */
const F32_FORM: F32Form = "rows";
/**
 * Threads a row of f32RowKernel (f32Lanes overrides it): 32, 8 rows a workgroup. In the same call, with the wide
 * attention in both, 32 lanes decoded stories110M F32 at 1518 / 1538 tok/s against 64's 1441 / 1437 (1.05x, 1.07x;
 * the two rounds that ran both). The default as a whole (32 lanes, today's attention), 2026-12-05 18:50 UTC, one H100
 * call, four rounds: 1538.8-1541.7 tok/s against the "today" form's 1320.3-1321.6 (1.165-1.167x).
 */
const F32_ROW_LANES = 32;
/**
 * One token row's attention by default: attentionKernel's 128 threads a (head, row) ("today"). "wide",
 * wgsl-ops.ts attentionWideKernel (256 threads, two-step reductions, the V pass over 16 position groups at head size
 * 64), did not win every round on an H100 (2026-12-05 18:36-18:40 UTC): alone 1110 / 1307 / 1308 tok/s against
 * main's 1176 / 1285 / 1275, beside the F32 row kernel 1441 / 1437 / 1456 against 1343 / 1422 / 1465, and each of its
 * dispatches timed alone took 15.3 us against 12.8 (184 us a token against 154). In the next call (18:50 UTC) it ran
 * 1.003-1.010x the default in four rounds, 1.03x on stories110M Q4_0, 1.01x on the 1B: not every round of both, so
 * kept by option for measuring.
 */
export type AttentionForm = "today" | "wide";
const ATTENTION_FORM: AttentionForm = "today";
export const ATTENTION_FORMS: AttentionForm[] = ["today", "wide"];
/**
 * Prefill's quantized matmul tiles by default: "auto" (wgsl-tiled.ts autoTileShape, register tiles chosen by their
 * count). On an H200 (2026-12-05 15:01 UTC, one call, the 1B shape Q4_0) "auto" as first written prefilled 128 rows
 * at 1.17x and 512 rows at 1.20x of today's tiles (10.9k tok/s), bit-identical; autoTileShape now takes the shapes
 * that call's GEMM bench found fastest. "today" (tiledQuantKernel, 4 x 4 sums a thread) or a TILE_SHAPES name by option.
 */
const TILES = "auto";
/** Where one-row matmuls norm and quantize their own input: see the constructor. */
export type Fold = boolean | "layers" | "auto";

/**
 * Whether replayForward replays the device decode loop's recorded step by default (the constructor's plans): the
 * same kernels in the same order, so the same bits. On an H100 (2026-12-05 16:24-16:26 UTC, one call, plans off and
 * on alternating, two rounds each, one call of 256 tokens) the replay decoded the 1B shape Q4_0 at 804.7 and 805.4
 * tok/s against 777.8 and 782.0 recorded afresh (the host's share of a token 0.44-0.53 against 0.84-0.88),
 * stories110M F32 at 1281.8 and 1272.3 against 1251.2 and 1267.9, stories110M Q4_0 at 1507.6 against 1429.0; kvasm's
 * own host time a 1B token (bench/webgpu-host-own.ts own) 42-72 us against 307-375.
 */
const PLANS = true;

/**
 * A decode step's dispatches as replayForward recorded them: pipeline, bind group, params (PARAM_WORDS each) and
 * grid, replayed as they are on later steps. generation: the bind groups' (a grown state buffer drops them).
 * before/after: the quantized-activation tracking (quantizedState) the recording started from and left.
 */
interface Plan {
  generation: number;
  before: number[];
  after: number[];
  pipes: Gpu[];
  groups: Gpu[];
  grid: number[];
  params: number[];
  words: Uint32Array;
  count: number;
}

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
 * WebGpuBackend's options: every one optional, each checked by checkOptions before the constructor sets anything (a
 * NaN threshold compared false everywhere and turned its path off; fold "off" folded as "layers" does). What each accepts
 * is named first in its comment.
 */
export interface WebGpuOptions {
  /** A GPUAdapter (navigator.gpu.requestAdapter()'s: an object with requestDevice); default: init requests one. */
  adapter?: Gpu;
  /**
   * An integer >= 1: dispatches per submit at most (default SUBMIT_EVERY, 256; capped at 4096, the params slots, or
   * 2048 when profiling).
   */
  submitEvery?: number;
  /** true or false: each dispatch in its own timed pass (slower: for measuring, never for serving; default false). */
  profile?: boolean;
  /**
   * true or false: false quantizes attention's output in a dispatch of its own (for tests: the fused kernel's blocks
   * are bit-identical; default true).
   */
  fuseAttentionQuant?: boolean;
  /**
   * An integer >= 1, or Infinity (never): token rows from which matmuls run as tiles (default TILED_FROM, 32; for
   * measuring the crossover).
   */
  tiledFrom?: number;
  /** 32 or 64: token rows a tile holds (default: wgsl-tiled.ts tileTokens picks). */
  tileRows?: 32 | 64;
  /**
   * true, false, "layers" or "auto": where one-row matmuls norm and quantize their own input (wgsl-matmul.ts
   * prologueCode) instead of reading it from the dispatches before them; the products are bit-identical either way.
   * "layers": the layers' RMSNorm + quantize and quantize dispatches of Q8_0/Q4_0 decode become prologues; true: the
   * final RMSNorm too, in the classifier (whose many workgroups each read the row and the norm weight again: at 128256
   * rows that is more bytes than the weights); false: none; "auto" (the default): "layers" for weights of at most
   * FOLD_AUTO_ELEMENTS elements, whose workgroups' repeated reads of the row stay few (measured on an H200, above).
   */
  fold?: Fold;
  /**
   * An integer >= 0, or Infinity (never): vocabularies from which the device sampler's top-p search runs over many
   * workgroups (default SPREAD_SAMPLE_FROM, 32000; the draws are bit-identical either way).
   */
  spreadSampleFrom?: number;
  /**
   * "auto", "off", "pairs" or "octets" (ROW_FORMS): which kernels decode's one-row Q8_0/Q4_0 matmuls take (default
   * ROW_FORM, "auto": wgsl-matmul.ts rowPlan's; the others for measuring).
   */
  rowKernels?: RowForm;
  /**
   * "auto", "today" or a name of wgsl-tiled.ts TILE_SHAPES: the quantized tiled matmuls' form ("auto", the default,
   * TILES: autoTileShape picks one per matmul by its tile count; the others for measuring). A shape needing more
   * workgroup memory than the device gives falls back to "today".
   */
  tiles?: string;
  /**
   * 8, 16, 32 or 64: threads a row of decode's one-row F32 matmuls (default: F32_ROW_LANES, 32, for f32Form "rows";
   * for "today" wgsl-matmul.ts lanesFor's, 64 for stories110M, where on an H100 16 and 32 lanes decoded stories110M F32
   * at 0.72x and 0.88-0.92x of 64's, 2026-12-05 15:33-15:38 UTC).
   */
  f32Lanes?: number;
  /**
   * "today" or "rows" (F32_FORMS): which kernel decode's one-row F32 matmuls take (default F32_FORM, "rows":
   * wgsl-matmul.ts f32RowKernel, at f32Lanes' or F32_ROW_LANES' threads a row, where its staged row fits workgroup
   * memory; "today": matmulKernel's).
   */
  f32Form?: F32Form;
  /**
   * "today" or "wide" (ATTENTION_FORMS): the per-row attention kernel of an F32 cache (default ATTENTION_FORM, "today":
   * attentionKernel; "wide": attentionWideKernel, for head sizes it fits, wgsl-ops.ts wideAttentionFits).
   */
  attention?: AttentionForm;
  /**
   * true or false: whether the device decode loop's step is recorded once and replayed (replayForward; default PLANS,
   * true; false records every step; the same dispatches either way).
   */
  plans?: boolean;
}

const OPTION_NAMES: ReadonlyArray<keyof WebGpuOptions> = [
  "adapter",
  "submitEvery",
  "profile",
  "fuseAttentionQuant",
  "tiledFrom",
  "tileRows",
  "fold",
  "spreadSampleFrom",
  "rowKernels",
  "tiles",
  "f32Lanes",
  "f32Form",
  "attention",
  "plans",
];

/**
 * Throws a WebGpuError for the first option that is not one WebGpuOptions' comments name (or a key it does not have:
 * a misspelt option would run the default unseen), naming the option, the value and what is accepted. Reads opts
 * only: nothing is requested or allocated before it passes.
 */
function checkOptions(opts: WebGpuOptions): void {
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) {
    throw new WebGpuError(`options must be an object, got ${describeValue(opts)}`);
  }
  for (const key of Object.keys(opts)) {
    if (!(OPTION_NAMES as readonly string[]).includes(key)) {
      throw new WebGpuError(`unknown option ${JSON.stringify(key)} (${OPTION_NAMES.join(", ")})`);
    }
  }
  const a = opts.adapter;
  if (a !== undefined && (typeof a !== "object" || a === null || typeof a.requestDevice !== "function")) {
    throw new WebGpuError(`adapter must be a GPUAdapter (an object with requestDevice), got ${describeValue(a)}`);
  }
  count("submitEvery", opts.submitEvery, 1, false);
  count("tiledFrom", opts.tiledFrom, 1, true);
  count("spreadSampleFrom", opts.spreadSampleFrom, 0, true);
  for (const name of ["profile", "fuseAttentionQuant", "plans"] as const) {
    const v = opts[name];
    if (v !== undefined && typeof v !== "boolean") throw new WebGpuError(`${name} must be true or false, got ${describeValue(v)}`);
  }
  const lanes = opts.f32Lanes;
  if (lanes !== undefined && ![8, 16, 32, 64].includes(lanes)) {
    throw new WebGpuError(`f32Lanes must be 8, 16, 32 or 64, got ${describeValue(lanes)}`);
  }
  if (opts.tileRows !== undefined && opts.tileRows !== 32 && opts.tileRows !== 64) {
    throw new WebGpuError(`tileRows must be 32 or 64, got ${describeValue(opts.tileRows)}`);
  }
  oneOf("fold", opts.fold, [true, false, "layers", "auto"]);
  oneOf("rowKernels", opts.rowKernels, ROW_FORMS);
  oneOf("tiles", opts.tiles, ["today", "auto", ...TILE_SHAPE_NAMES]);
  oneOf("f32Form", opts.f32Form, F32_FORMS);
  oneOf("attention", opts.attention, ATTENTION_FORMS);
}

/** An integer option >= min (or Infinity where `never` allows it), or undefined. */
function count(name: string, v: unknown, min: number, never: boolean): void {
  if (v === undefined || (typeof v === "number" && ((Number.isInteger(v) && v >= min) || (never && v === Infinity)))) return;
  throw new WebGpuError(`${name} must be an integer >= ${min}${never ? " or Infinity" : ""}, got ${describeValue(v)}`);
}

/** An option of named forms, or undefined; unknown ones listed with what is accepted (strings quoted in neither). */
function oneOf(name: string, v: unknown, accepted: readonly unknown[]): void {
  if (v === undefined || accepted.includes(v)) return;
  throw new WebGpuError(`unknown ${name} ${describeValue(v)} (${accepted.join(", ")})`);
}

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
  /** Ops waiting to be fused and recorded: the first `queued` entries (records from `pool`, given back once recorded). */
  private readonly queue: Op[] = [];
  private queued = 0;
  private readonly pool = new OpPool();
  private readonly fuser = new Fuser(this);
  private readonly pipelines = new Map<string, Gpu>();
  /** Bind groups of one weight range (by the weight's address (0: none), then the offset) and of fused matmuls (four addresses in turn). */
  private readonly bindGroups1 = new Map<number, Map<number, Gpu>>();
  private readonly bindGroups3 = new Map<number, unknown>();
  private readonly keys = new Map<number, string>();
  /** replayForward's plans by the caller's key, and the one being recorded (dispatch appends to it). */
  private plans = new WeakMap<object, Plan>();
  private recording: Plan | null = null;
  /** Bumped when the cached bind groups are dropped (the state buffer remade): a plan from before binds the old buffer. */
  private generation = 0;
  /** Whether replayForward keeps and replays plans (constructor option plans, default PLANS; false: it only calls forward). */
  private readonly usePlans: boolean;
  /** Decode steps replayed from a plan so far (tests, benches). */
  replays = 0;
  /** One dispatch's params as the ops' recorders fill them (dispatch copies them out at once). */
  private readonly args = new Uint32Array(PARAM_WORDS);
  private readonly bitsF = new Float32Array(1);
  private readonly bitsU = new Uint32Array(this.bitsF.buffer);
  /** The weights a fused matmul binds (q, k, v or gate, up; and a prologue's norm weight), filled per dispatch. */
  private readonly ws4: Array<Weight | null> = [null, null, null, null];
  /** How the fused matmul being recorded gets its input (input()); stage = params row g. */
  private readonly how = { act: 0, prologue: "none" as Prologue, stage: [0, 0, 0, 0] };
  private hasDot4 = false;

  private stateTop = STATE_START;
  private state: Gpu = null;
  private weightTop = WEIGHT_BASE;
  private readonly weights = new Map<number, WeightBuffer>();
  private readonly rangeCache = new WeakMap<Weight, WeightRange[]>();
  private dummy!: Gpu;
  private argmaxPartials = 0;

  private params!: Gpu;
  /** The params' host copy (1 MiB): made in the constructor once the options are checked, not as a field. */
  private readonly paramsHost: Uint32Array;
  private readonly paramOffset = new Uint32Array(1);
  /** Op records the queue has made so far: steady after the first decode step (the rest come from its pool). */
  get opRecords(): number {
    return this.pool.created;
  }
  /** Dispatches recorded so far (what fusion saves shows here). */
  dispatches = 0;
  /** Host milliseconds spent fusing and recording queued ops (the CPU side of a token). */
  recordMs = 0;
  private slot = 0;

  /**
   * The activation the last quantize dispatch left in scratch ("quantizer:x:n:T:scratch"):
   * matmuls of one input (q, k, v; gate, up) share it until another op runs.
   */
  private readonly quantized = { valid: false, block: 0, x: 0, n: 0, T: 0, scratch: 0, xEnd: 0, scratchEnd: 0 };

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
  private readonly fold: Fold;
  private readonly spreadSampleFrom: number;
  private readonly tiledFrom: number;
  private readonly tileRows: number;
  private readonly rowForm: RowForm;
  /** Threads a row of decode's one-row F32 matmuls (0: F32_ROW_LANES for f32Form "rows", lanesFor's for "today"). */
  private readonly f32Lanes: number;
  private readonly f32Form: F32Form;
  private readonly attentionForm: AttentionForm;
  private readonly tilesName: string;
  /** The register-tiled shape quantized tiled matmuls take ("today": today's kernel), once the device's limits are known. */
  private tileShape = "today";

  /** profile: GPU time per kernel (bench/webgpu.ts --profile), where the adapter has timestamp queries. */
  private readonly profile: boolean;
  private querySet: Gpu = null;
  private readonly slotKeys: string[] = [];
  private readonly profileReads: Promise<void>[] = [];
  private readonly gpuTime = new Map<string, { count: number; ns: number }>();

  /**
   * opts: WebGpuOptions, each checked (checkOptions) before anything is requested from the GPU: a value other than
   * those its comment names is a WebGpuError naming the option, the value and what it accepts.
   */
  constructor(opts: WebGpuOptions = {}) {
    checkOptions(opts);
    this.paramsHost = new Uint32Array((PARAM_SLOTS * PARAM_SLOT) / 4);
    this.f32Lanes = opts.f32Lanes ?? 0;
    this.f32Form = opts.f32Form ?? F32_FORM;
    this.attentionForm = opts.attention ?? ATTENTION_FORM;
    this.tilesName = opts.tiles ?? TILES;
    this.rowForm = opts.rowKernels ?? ROW_FORM;
    this.adapter = opts.adapter;
    this.tiledFrom = opts.tiledFrom ?? TILED_FROM;
    this.tileRows = opts.tileRows ?? 0;
    this.fuseAttentionQuant = opts.fuseAttentionQuant ?? true;
    this.fold = opts.fold ?? "auto";
    this.spreadSampleFrom = opts.spreadSampleFrom ?? SPREAD_SAMPLE_FROM;
    this.profile = opts.profile ?? false;
    this.usePlans = opts.plans ?? PLANS;
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
    const shape = TILE_SHAPES[this.tilesName];
    this.tileShape = this.tilesName === "auto" || (shape && tileStorageBytes(shape) <= this.limits.maxComputeWorkgroupStorageSize)
      ? this.tilesName
      : "today";
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
    this.bindGroups1.clear();
    this.bindGroups3.clear();
    this.generation++;
    return buf;
  }

  write(ptr: number, data: ArrayBufferView): void {
    this.assertLive();
    if (ptr >= WEIGHT_BASE) throw new WebGpuError("write() addresses the state buffer only");
    this.drain(true);
    const state = this.stateBuffer();
    this.quantized.valid = false;
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
    this.queue.length = this.queued = 0;
    for (const w of this.weights.values()) w.buffer.destroy();
    this.weights.clear();
    this.state?.destroy();
    for (const s of this.staging.splice(0)) s.buffer.destroy();
    this.params?.destroy();
    this.dummy?.destroy();
    const device = this.device;
    this.device = undefined;
    this.bindGroups1.clear();
    this.bindGroups3.clear();
    this.pipelines.clear();
    this.plans = new WeakMap();
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

  /** The pipeline of `key`, compiled from `source` the first time (a function: only called then). */
  private pipeline(key: string, source: string | (() => string), weights = 1, vec4Weights = false): Gpu {
    let p = this.pipelines.get(key);
    if (!p) {
      const code = typeof source === "string" ? source : source();
      const module = this.device.createShaderModule({ code: prelude(this.hasDot4, weights, vec4Weights) + code, label: key });
      const layout = weights > 1 ? this.pipelineLayout3 : this.pipelineLayout;
      p = this.device.createComputePipeline({ layout, compute: { module, entryPoint: "main" }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /**
   * A kernel's key for a numeric signature (its parameters packed into one number), made once: template
   * strings built per dispatch would allocate every token.
   */
  private keyFor(signature: number, make: (s: number) => string): string {
    let k = this.keys.get(signature);
    if (k === undefined) this.keys.set(signature, k = make(signature));
    return k;
  }

  /** Bind group for the state buffer plus one weight range (or none), cached by the range's address (no key string). */
  private bindGroup(w: Weight | null, offset = 0, size = 0): Gpu {
    const ptr = w ? w.ptr : 0;
    let byOffset = this.bindGroups1.get(ptr);
    if (!byOffset) this.bindGroups1.set(ptr, byOffset = new Map());
    let g = byOffset.get(offset);
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
      byOffset.set(offset, g);
    }
    return g;
  }

  /**
   * Bind group for the state buffer plus up to four weight tensors (a fused matmul; the fourth the norm weight of
   * a prologue); a row view binds at its offset. Cached in maps keyed by each tensor's address in turn.
   */
  private bindGroup3(ws: Array<Weight | null>): Gpu {
    let m: Map<number, unknown> = this.bindGroups3;
    for (let i = 0; i < 3; i++) {
      const k = ws[i]?.ptr ?? 0;
      let next = m.get(k) as Map<number, unknown> | undefined;
      if (!next) m.set(k, next = new Map());
      m = next;
    }
    const last = ws[3]?.ptr ?? 0;
    let g = m.get(last);
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
      m.set(last, g);
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
   * Records one dispatch. params: up to 32 u32 (addresses already in words), read before this returns (the
   * callers fill the backend's one `args` array). (gx, gy) workgroups, or gy = 0: gx is a 1-D count of
   * 256-thread groups, folded into x and y. w: one weight range, or the four tensors of a fused matmul.
   */
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
    this.stateBuffer();
    // any other op may overwrite x or the scratch
    if (!key.startsWith("matmul:") && !key.startsWith("tiled:")) this.quantized.valid = false;
    if (this.slot >= this.submitEvery) this.submit();
    const multi = Array.isArray(w);
    const pipe = this.pipeline(key, source, multi ? Math.max(3, weightBindings) : 1, vec4Weights);
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
    if (gy === 0) {
      gy = Math.ceil(gx / MAX_GROUPS);
      gx = Math.min(gx, MAX_GROUPS);
    }
    const base = this.encode(pipe, bg, params, 0, gx, gy);
    const rec = this.recording;
    if (rec) {
      rec.pipes.push(pipe);
      rec.groups.push(bg);
      rec.grid.push(gx, gy);
      for (let i = 0; i < PARAM_WORDS; i++) rec.params.push(this.paramsHost[base + i]);
      rec.count++;
    }
  }

  /**
   * One dispatch into the open pass (opened here): PARAM_WORDS params from `params[from]` (zeros past its end) into
   * the next slot, the pipeline, the bind group at that slot's offset, and the grid (none where it is empty). Returns
   * the slot's first word in paramsHost. dispatch and a plan's replay both end here.
   */
  private encode(pipe: Gpu, bg: Gpu, params: ArrayLike<number>, from: number, gx: number, gy: number): number {
    this.open();
    const base = (this.slot * PARAM_SLOT) / 4, host = this.paramsHost;
    for (let i = 0; i < PARAM_WORDS; i++) host[base + i] = from + i < params.length ? params[from + i] : 0;
    this.dispatches++;
    this.pass.setPipeline(pipe);
    // the typed-array form: Deno converts a plain array of offsets element by element (0.5 us a dispatch)
    this.paramOffset[0] = this.slot * PARAM_SLOT;
    this.pass.setBindGroup(0, bg, this.paramOffset, 0, 1);
    this.slot++;
    if (gx > 0 && gy > 0) this.pass.dispatchWorkgroups(gx, gy);
    return base;
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
    if (!this.usePlans || this.querySet) return forward();
    this.drain(true);
    this.stateBuffer();
    const plan = this.plans.get(key);
    if (plan && plan.generation === this.generation && this.quantizedIs(plan.before)) return this.replay(plan);
    const before = this.quantizedState();
    const rec: Plan = {
      generation: this.generation,
      before,
      after: before,
      pipes: [],
      groups: [],
      grid: [],
      params: [],
      words: new Uint32Array(0),
      count: 0,
    };
    this.recording = rec;
    try {
      forward();
      this.drain(true);
    } finally {
      this.recording = null;
    }
    if (rec.generation !== this.generation) return void this.plans.delete(key);
    rec.after = this.quantizedState();
    rec.words = Uint32Array.from(rec.params);
    rec.params = [];
    this.plans.set(key, rec);
  }

  /** Records a plan's dispatches again (dispatch's steps, without fusing or building anything). */
  private replay(p: Plan): void {
    const t0 = performance.now();
    for (let d = 0; d < p.count; d++) {
      if (this.slot >= this.submitEvery) this.submit();
      this.encode(p.pipes[d], p.groups[d], p.words, d * PARAM_WORDS, p.grid[2 * d], p.grid[2 * d + 1]);
    }
    this.setQuantizedState(p.after);
    this.replays++;
    this.recordMs += performance.now() - t0;
  }

  /** Whether the quantized activation tracking is `a` (a quantizedState), compared in place: no array per step. */
  private quantizedIs(a: number[]): boolean {
    const q = this.quantized;
    if (!q.valid) return a[0] === 0;
    return a[0] === 1 && a[1] === q.block && a[2] === q.x && a[3] === q.n && a[4] === q.T && a[5] === q.scratch &&
      a[6] === q.xEnd && a[7] === q.scratchEnd;
  }

  /** The quantized activation tracking as numbers (all of it, or zeros when nothing is held). */
  private quantizedState(): number[] {
    const q = this.quantized;
    return q.valid ? [1, q.block, q.x, q.n, q.T, q.scratch, q.xEnd, q.scratchEnd] : [0, 0, 0, 0, 0, 0, 0, 0];
  }

  /** Sets the quantized activation tracking to `a` (a quantizedState): where a replayed plan leaves it. */
  private setQuantizedState(a: number[]): void {
    const q = this.quantized;
    q.valid = a[0] === 1;
    q.block = a[1];
    q.x = a[2];
    q.n = a[3];
    q.T = a[4];
    q.scratch = a[5];
    q.xEnd = a[6];
    q.scratchEnd = a[7];
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
    if (this.fold === false || (this.fold === "auto" && w.rows * w.cols > FOLD_AUTO_ELEMENTS)) return false;
    return ACT_WORDS[w.type]?.block === 32 && stagedWords(w.cols, "quant") > 0;
  }

  /** FuseTarget: an RMSNorm may become the prologue of a lone one-row matmul (the classifier), not only of q|k|v or gate|up. */
  normsAlone(w: Weight): boolean {
    return this.fold === true && this.whole(w);
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
    const key = this.keyFor(SIG_RMSNORM + n, rmsnormKey); // built for its row width (rmsnormKernel: RMSNORM's bits)
    const src = this.pipelines.has(key) ? "" : rmsnormKernel(n);
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
    const n = table.cols, rowBytes = table.bytes / table.rows, ranges = this.ranges(table);
    const key = this.keyFor(SIG_EMBED + table.type, embedKey);
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i];
      this.words(out / 4, tokens / 4, n, T, r.row0, r.rows, rowBytes);
      const src = this.pipelines.has(key) ? "" : embedKernel(table.type);
      this.dispatch(key, src, this.args, Math.ceil((n * T) / 256), 0, table, r.offset, r.size);
    }
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
    const op = this.take("matmul");
    op.out = out;
    op.x = x;
    op.w = w;
    op.T = T;
    op.scratch = this.matmulScratch;
    this.enqueue(op);
  }

  /** Whether scratch holds x's activation blocks for a matmul of w (quantized by an earlier dispatch, x unchanged since). */
  private holdsQuantized(w: Weight, x: number, T: number, scratch: number): boolean {
    const q = this.quantized;
    return q.valid && q.block === ACT_WORDS[w.type].block && q.x === x && q.n === w.cols && q.T === T && q.scratch === scratch;
  }

  /** Notes that scratch now holds the activation blocks of x (n columns, T rows) for weights of `type`. */
  private noteQuantized(type: GGMLTypeId, x: number, n: number, T: number, scratch: number): void {
    const q = this.quantized;
    q.valid = true;
    q.block = ACT_WORDS[type].block;
    q.x = x;
    q.n = n;
    q.T = T;
    q.scratch = scratch;
    q.xEnd = x + T * n * 4;
    q.scratchEnd = scratch + this.matmulScratchBytes(type, n, T);
  }

  /** The address a matmul of w reads its input at: x itself, or its quantized blocks in scratch (quantized now unless still there). */
  private matmulInput(w: Weight, x: number, T: number, scratch: number): number {
    const a = ACT_WORDS[w.type];
    if (!a) return x;
    const n = w.cols;
    if (!this.holdsQuantized(w, x, T, scratch)) {
      this.words(scratch / 4, x / 4, n, T);
      if (a.block === 32) {
        const src = this.pipelines.has("quantize_q8_0") ? "" : quantQ8_0Kernel(false);
        this.dispatch("quantize_q8_0", src, this.args, Math.ceil(n / 256), T);
      } else this.dispatch("quantize_q8_k", QUANTIZE_Q8_K, this.args, Math.ceil((T * n) / a.block / 256), 0);
      this.noteQuantized(w.type, x, n, T, scratch);
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
    if (quantized && mm.T === 1 && this.foldsQuant(mm.w) && !this.holdsQuantized(mm.w, mm.x, 1, mm.scratch)) {
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
   * One tiled matmul dispatch (wgsl-tiled.ts) over `rows` virtual rows of T tokens: quantized weights in the
   * register-tiled shape when one is set (`tiles`), else today's tiles of 64 rows by tileTokens' 32 or 64 tokens.
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
    const name = type === GGMLType.F32 || type === GGMLType.F16
      ? "today"
      : this.tileShape === "auto"
      ? autoTileShape(T, rows, this.limits.maxComputeWorkgroupStorageSize) ?? "today"
      : this.tileShape;
    const s = name === "today" ? null : TILE_SHAPES[name];
    const bm = s ? s.bm : this.tileRows || tileTokens(T, rows), bn = s ? s.bn : TILE_N;
    const key = this.keyFor(tiledSignature(type, epilogue, bm, s ? TILE_SHAPE_NAMES.indexOf(name) + 1 : 0), tiledKey);
    const src = this.pipelines.has(key)
      ? ""
      : s
      ? tiledWideKernel(type as GGMLTypeId, EPILOGUES[epilogue], s)
      : tiledKernel(type as GGMLTypeId, EPILOGUES[epilogue], bm);
    this.dispatch(key, src, params, Math.ceil(rows / bn), Math.ceil(T / bm), w, wOffset, wSize, binds);
  }

  /** The quantized tiled matmuls' form in effect after init: "today", "auto", or the `tiles` shape the device had workgroup memory for. */
  get tiles(): string {
    return this.tileShape;
  }

  /** Token rows per matmul workgroup: 1 for decode, so no accumulator or reduction is spent on absent rows. */
  private tokenTile(T: number): number {
    return T === 1 ? 1 : T <= 4 ? 4 : 8;
  }

  /** Threads a weight row of matmulKernel's dispatch: f32Lanes for one-row F32, else lanesFor's. */
  private lanes(type: GGMLTypeId, n: number, T: number): number {
    return T === 1 && type === GGMLType.F32 && this.f32Lanes ? this.f32Lanes : lanesFor(type, n);
  }

  /** Whether a matmul takes f32RowKernel: one-row F32 under f32Form "rows", its row fitting workgroup memory. */
  private f32Rows(type: GGMLTypeId, n: number, T: number): boolean {
    return T === 1 && type === GGMLType.F32 && this.f32Form === "rows" && f32RowStagedWords(n) > 0;
  }

  private matmulNow(out: number, x: number, w: Weight, T: number, scratch: number): void {
    const act = this.matmulInput(w, x, T, scratch);
    const rowBytes = w.bytes / w.rows, tt = this.tokenTile(T), paired = pairedUnits(w.type, w.cols), ranges = this.ranges(w);
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i];
      const p = this.words(0, act / 4, w.cols, T, r.rows, r.row0, w.rows, rowBytes);
      p[8] = out / 4;
      if (T >= this.tiledFrom) {
        this.tiled(w.type, EPI_STORE, T, r.rows, p, w, r.offset, r.size, 1);
        continue;
      }
      const plan = T === 1 ? rowPlan(w.type, w.cols, this.rowForm, r.rows) : null;
      if (plan) {
        const key = this.keyFor(matmulSignature(w.type, EPI_STORE, rowTile(plan), paired, plan.lanes, PRO_NONE, w.cols), matmulKey);
        const src = this.pipelines.has(key) ? "" : rowKernel(w.type, "store", "none", w.cols, plan);
        this.dispatch(key, src, p, Math.ceil(r.rows / (256 / plan.lanes)), 1, w, r.offset, r.size, 1, plan.octets);
        continue;
      }
      const lanes = this.lanes(w.type, w.cols, T), v4 = w.type === GGMLType.F32;
      if (this.f32Rows(w.type, w.cols, T)) {
        const fl = this.f32Lanes || F32_ROW_LANES;
        const key = this.keyFor(matmulSignature(w.type, EPI_STORE, F32_ROW_TILE, false, fl, PRO_NONE, w.cols), matmulKey);
        const src = this.pipelines.has(key) ? "" : f32RowKernel("store", "none", w.cols, fl);
        this.dispatch(key, src, p, Math.ceil(r.rows / (256 / fl)), 1, w, r.offset, r.size, 1, true);
        continue;
      }
      const key = this.keyFor(matmulSignature(w.type, EPI_STORE, tt, paired, lanes, PRO_NONE, 0), matmulKey);
      const src = this.pipelines.has(key) ? "" : matmulKernel(w.type, "store", tt, paired, lanes, "none", 0, v4);
      this.dispatch(key, src, p, Math.ceil(r.rows / (256 / lanes)), Math.ceil(T / tt), w, r.offset, r.size, 1, v4);
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
    const n = w0.cols, type = w0.type, tt = this.tokenTile(T), paired = pairedUnits(type, n), lanes = this.lanes(type, n, T);
    const ws = this.ws4;
    ws[0] = w0;
    ws[1] = w1;
    ws[2] = w2;
    ws[3] = wn;
    const multi = !!(w1 || w2 || wn);
    const binds = prologue === "norm" || prologue === "normq" ? 4 : multi ? 3 : 1;
    const epi = EPILOGUES[epilogue];
    if (T >= this.tiledFrom && prologue === "none") {
      this.tiled(type, epilogue, T, rows, params, binds > 1 ? ws : w0, 0, 0, binds);
      this.quantized.valid = false;
      return;
    }
    const pro = PROLOGUES.indexOf(prologue), pn = prologue === "none" ? 0 : n;
    const plan = T === 1 ? rowPlan(type, n, this.rowForm, rows) : null;
    if (plan) {
      const key = this.keyFor(matmulSignature(type, epilogue, rowTile(plan), paired, plan.lanes, pro, n), matmulKey);
      const src = this.pipelines.has(key) ? "" : rowKernel(type, epi, prologue, n, plan);
      this.dispatch(key, src, params, Math.ceil(rows / (256 / plan.lanes)), 1, binds > 1 ? ws : w0, 0, 0, binds, plan.octets);
      this.quantized.valid = false;
      return;
    }
    if (this.f32Rows(type, n, T) && (prologue === "none" || prologue === "norm")) {
      const fl = this.f32Lanes || F32_ROW_LANES;
      const key = this.keyFor(matmulSignature(type, epilogue, F32_ROW_TILE, false, fl, pro, n), matmulKey);
      const src = this.pipelines.has(key) ? "" : f32RowKernel(epi, prologue, n, fl);
      this.dispatch(key, src, params, Math.ceil(rows / (256 / fl)), 1, binds > 1 ? ws : w0, 0, 0, binds, true);
      this.quantized.valid = false;
      return;
    }
    const key = this.keyFor(matmulSignature(type, epilogue, tt, paired, lanes, pro, pn), matmulKey), v4 = type === GGMLType.F32;
    const src = this.pipelines.has(key) ? "" : matmulKernel(type, epi, tt, paired, lanes, prologue, n, v4);
    this.dispatch(key, src, params, Math.ceil(rows / (256 / lanes)), Math.ceil(T / tt), binds > 1 ? ws : w0, 0, 0, binds, v4);
    this.quantized.valid = false; // its outputs may lie anywhere: quantize afresh
  }

  /** RMSNorm and the quantizer of the matmul (of weight `next`) that reads its output, in one dispatch. */
  private normQuant(out: number, x: number, w: Weight, n: number, eps: number, T: number, next: Weight, scratch: number): void {
    const a = ACT_WORDS[next.type];
    const epsBits = this.f32Bits(eps);
    if (a.block === 32) {
      const key = this.keyFor(SIG_NORMQUANT + n, normQuantKey); // built for its row width (quantQ8_0Kernel)
      const src = this.pipelines.has(key) ? "" : quantQ8_0Kernel(true, n);
      this.dispatch(key, src, this.words(scratch / 4, x / 4, n, T, epsBits, out / 4), Math.ceil(n / 256), T, w);
    } else {
      const src = this.pipelines.has("normquant:256") ? "" : normQuantKernel(256);
      this.dispatch("normquant:256", src, this.words(out / 4, x / 4, n, T, epsBits, scratch / 4), T, 1, w);
    }
    this.noteQuantized(next.type, out, n, T, scratch);
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
    // a = (out, q, rows, base), b = (pageBytes, pageSize, kvDim, headDim), c = (nHeads, nKvHeads, kOff, vOff),
    // d = (ALiBi on, its slopes' word address, score scale bits (F16), -), e = (T, the quantized blocks' word address)
    const p = this.words(out / 4, q / 4, rows / 4, kv.base, kv.pageBytes, kv.pageSize, kv.kvDim, kv.headDim);
    this.row(2, kv.nHeads, kv.nKvHeads, kvOffset(kv, layer, 0), kvOffset(kv, layer, 1));
    this.row(3, kv.alibiSlopes === undefined ? 0 : 1, kv.alibiSlopes === undefined ? 0 : kv.alibiSlopes / 4, 0, 0);
    this.row(4, T, next ? next.scratch / 4 : 0, 0, 0);
    if (kv.kvType === "f16") {
      // ggml's one_chunk, one (head, row) a workgroup, every row alike (batch invariance); d.z = the score scale, 1 / sqrtf(headDim)
      p[14] = this.f32Bits(1 / Math.fround(Math.sqrt(kv.headDim)));
      this.dispatch("attention_f16", ATTENTION_F16, p, kv.nHeads, T);
      return;
    }
    // many rows: 16 a workgroup, each K/V position read once for all of them (wgsl-attention-rows.ts)
    if (this.attentionRows(kv, T)) {
      const key = this.keyFor(SIG_ATTENTION_ROWS + kv.headDim, attentionRowsKey);
      const src = this.pipelines.has(key) ? "" : attentionRowsKernel(kv.headDim);
      this.dispatch(key, src, p, kv.nHeads, Math.ceil(T / ROWS_PER_TILE));
    } else {
      // the kernel built for this head size (its K row's loads written out) where it is small enough to keep them in registers
      const hd = kv.headDim <= UNROLLED_HEAD_DIM && kv.headDim % 4 === 0 ? kv.headDim : 0;
      const wide = this.attentionForm === "wide" && wideAttentionFits(kv.headDim);
      const key = this.keyFor(SIG_ATTENTION + (wide ? 1024 : 0) + (next ? 512 : 0) + hd, attentionKey);
      const src = this.pipelines.has(key)
        ? ""
        : wide
        ? attentionWideKernel(!!next, kv.headDim)
        : next || hd
        ? attentionKernel(!!next, hd)
        : ATTENTION;
      this.dispatch(key, src, p, kv.nHeads, T);
      if (next) this.noteQuantized(next.w.type, out, next.w.cols, T, next.scratch);
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
    if (params[4] < this.spreadSampleFrom) return this.dispatch("sample", SAMPLE, params, 1, 1);
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

// Fused matmuls' epilogues and prologues by number, and kernels' numeric signatures (for keyFor: no string per dispatch)
const EPILOGUES: Epilogue[] = ["store", "residual", "swiglu", "qkv"];
const EPI_STORE = 0, EPI_RESIDUAL = 1, EPI_SWIGLU = 2, EPI_QKV = 3;
const PROLOGUES: Prologue[] = ["none", "norm", "normq", "quant"];
const PRO_NONE = 0;
const SIG_EMBED = 1 * 2 ** 44, SIG_ATTENTION_ROWS = 2 * 2 ** 44, SIG_TILED = 3 * 2 ** 44, SIG_MATMUL = 4 * 2 ** 44;
const SIG_ATTENTION = 5 * 2 ** 44, SIG_NORMQUANT = 6 * 2 ** 44, SIG_RMSNORM = 7 * 2 ** 44;

/** type (< 64), epilogue (< 4), tile rows (< 256), shape (TILE_SHAPE_NAMES index + 1; 0: today's tiles). */
function tiledSignature(type: number, epilogue: number, bm: number, shape: number): number {
  return SIG_TILED + ((shape * 64 + type) * 4 + epilogue) * 256 + bm;
}

function tiledKey(s: number): string {
  const v = s - SIG_TILED, shape = Math.floor(v / 65536);
  return `tiled:${shape ? `${TILE_SHAPE_NAMES[shape - 1]}:` : ""}${Math.floor(v / 1024) % 64}:${EPILOGUES[Math.floor(v / 256) % 4]}:${
    v % 256
  }`;
}

/** type (< 64), epilogue (< 4), tt (< 16), paired, lanes (< 128), prologue (< 4), n (< 2^20). */
function matmulSignature(type: number, epilogue: number, tt: number, paired: boolean, lanes: number, prologue: number, n: number): number {
  return SIG_MATMUL + (((((type * 4 + epilogue) * 16 + tt) * 2 + (paired ? 1 : 0)) * 128 + lanes) * 4 + prologue) * 2 ** 20 + n;
}

/**
 * The row kernel (wgsl-matmul.ts rowKernel, built for its n) in matmulSignature's tt field, which the other one-row
 * kernels fill with 1, 4 or 8: 9..12 for paired units (1..4 in flight), 13..14 for octets (1..2).
 */
function rowTile(plan: RowPlan): number {
  return plan.octets ? 12 + plan.unroll : 8 + plan.unroll;
}

/** wgsl-matmul.ts f32RowKernel (built for its n) in matmulSignature's tt field: 15, which no other kernel takes. */
const F32_ROW_TILE = 15;

function matmulKey(s: number): string {
  let v = s - SIG_MATMUL;
  const n = v % 2 ** 20;
  v = Math.floor(v / 2 ** 20);
  const prologue = PROLOGUES[v % 4], lanes = Math.floor(v / 4) % 128, paired = Math.floor(v / 512) % 2 === 1;
  const tt = Math.floor(v / 1024) % 16, epilogue = EPILOGUES[Math.floor(v / 16384) % 4], type = Math.floor(v / 65536);
  return `matmul:${type}:${epilogue}:${tt}:${paired}:${lanes}:${prologue}:${n}`;
}

/** RMSNorm + the Q8_0 quantizer, built for its row width n. */
function normQuantKey(s: number): string {
  return `normquant:32:${s - SIG_NORMQUANT}`;
}

/** RMSNorm, built for its row width n. */
function rmsnormKey(s: number): string {
  return `rmsnorm:${s - SIG_RMSNORM}`;
}

function embedKey(s: number): string {
  return `embed:${s - SIG_EMBED}`;
}

/** attention (per-row kernel): wide (1024, attentionWideKernel) + quantize (512) + head size written out (0: a parameter). */
function attentionKey(s: number): string {
  const w = s - SIG_ATTENTION, v = w % 1024;
  return `${w >= 1024 ? "wide_" : ""}${v >= 512 ? "attention_quant" : "attention"}${v % 512 ? `:${v % 512}` : ""}`;
}

function attentionRowsKey(s: number): string {
  return `attention_rows:${s - SIG_ATTENTION_ROWS}`;
}
