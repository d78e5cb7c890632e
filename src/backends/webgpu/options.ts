// The WebGPU backend's options: what each accepts, its default with the measurement that set it, and checkOptions,
// which refuses anything else before the backend requests or allocates a thing. resolveOptions gives the values in
// effect (the defaults filled in, submitEvery capped), which the backend reads and nothing changes.
import { describeValue, optionNames, unknownOption } from "../../errors.ts";
import { type Gpu, WebGpuError } from "./device.ts";
import { F32_FORMS, type F32Form, type RowForm } from "./wgsl-matmul.ts";
import { TILE_SHAPE_NAMES } from "./wgsl-tiled.ts";
import { MAX_QUERIES, PARAM_SLOTS } from "./recorder.ts";

/**
 * Token rows from which a matmul runs as tiles in workgroup memory (wgsl-tiled.ts) rather than the one-row kernels
 * (8 token rows a workgroup): at 16 rows (batch-16 decode) the tiles measured 0.9-0.96x of those on an H200.
 */
const TILED_FROM = 32;
/**
 * Dispatches recorded before a submit: long chains (Model.decodeGreedy) then
 * run on the GPU while the host records the rest, instead of after it.
 */
const SUBMIT_EVERY = 256;
/**
 * Logits from which the device sampler spreads its top-p search over 128 workgroups (wgsl-sample.ts SAMPLE_PASS):
 * 3 passes of 1024 thresholds instead of about 10 of 8, for 4 dispatches more. On an H200 (2026-12-05, same run)
 * sampled decode gained 1.03-1.12x at 32000 logits and 1.08-1.09x at 128256; smaller vocabularies are not measured.
 */
const SPREAD_SAMPLE_FROM = 32000;
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
export const F32_ROW_LANES = 32;
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
   * FOLD_AUTO_ELEMENTS elements (choose.ts), whose workgroups' repeated reads of the row stay few (measured on an H200).
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

/** WebGpuOptions' names, every one (optionNames: a field added to WebGpuOptions and not listed fails to compile). */
const OPTION_NAMES = optionNames<WebGpuOptions>()([
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
]);

/**
 * Throws a WebGpuError for the first option that is not one WebGpuOptions' comments name (or a key it does not have:
 * a misspelt option would run the default unseen), naming the option, the value and what is accepted. Reads opts
 * only: nothing is requested or allocated before it passes.
 */
export function checkOptions(opts: WebGpuOptions): void {
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) {
    throw new WebGpuError(`options must be an object, got ${describeValue(opts)}`);
  }
  // errors.ts's check of names (the name meant, within two edits), refused as a WebGpuError as every option here is
  const unknown = unknownOption(opts, OPTION_NAMES);
  if (unknown !== undefined) throw new WebGpuError(unknown);
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

/** The options in effect: every one given or defaulted (tileRows and f32Lanes 0: chosen per matmul), submitEvery capped. */
export interface WebGpuSettings {
  readonly adapter: Gpu;
  readonly submitEvery: number;
  readonly profile: boolean;
  readonly fuseAttentionQuant: boolean;
  readonly tiledFrom: number;
  /** 0: wgsl-tiled.ts tileTokens picks. */
  readonly tileRows: number;
  readonly fold: Fold;
  readonly spreadSampleFrom: number;
  readonly rowKernels: RowForm;
  /** As asked: init falls back to "today" where the device lacks the shape's workgroup memory (WebGpuBackend.tiles). */
  readonly tiles: string;
  /** 0: F32_ROW_LANES for f32Form "rows", lanesFor's for "today". */
  readonly f32Lanes: number;
  readonly f32Form: F32Form;
  readonly attention: AttentionForm;
  readonly plans: boolean;
}

/** opts checked (checkOptions: a WebGpuError for the first bad one) and completed with the defaults above. */
export function resolveOptions(opts: WebGpuOptions = {}): WebGpuSettings {
  checkOptions(opts);
  const profile = opts.profile ?? false;
  return {
    adapter: opts.adapter,
    // a query set holds MAX_QUERIES timestamps at most: two per dispatch
    submitEvery: Math.max(1, Math.min(opts.submitEvery ?? SUBMIT_EVERY, profile ? MAX_QUERIES / 2 : PARAM_SLOTS)),
    profile,
    fuseAttentionQuant: opts.fuseAttentionQuant ?? true,
    tiledFrom: opts.tiledFrom ?? TILED_FROM,
    tileRows: opts.tileRows ?? 0,
    fold: opts.fold ?? "auto",
    spreadSampleFrom: opts.spreadSampleFrom ?? SPREAD_SAMPLE_FROM,
    rowKernels: opts.rowKernels ?? ROW_FORM,
    tiles: opts.tiles ?? TILES,
    f32Lanes: opts.f32Lanes ?? 0,
    f32Form: opts.f32Form ?? F32_FORM,
    attention: opts.attention ?? ATTENTION_FORM,
    plans: opts.plans ?? PLANS,
  };
}
