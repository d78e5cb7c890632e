// Which kernel each op takes, as plain functions of its shapes and the options (WebGpuSettings): the matmul's form
// (tiles, the row kernels, the F32 row kernel or matmulKernel, and its threads and token tile), the tile shape, whether
// a one-row matmul norms and quantizes its own input, attention's form; and the kernels' cache keys, packed into one
// number first (keyFor in recorder.ts: no string per dispatch).
import { GGMLType, type GGMLTypeId } from "../../formats/ggml-types.ts";
import type { KVLayout, Weight } from "../backend.ts";
import { Q8_0_ACT_WORDS, Q8_K_ACT_WORDS } from "./wgsl-common.ts";
import {
  type Epilogue,
  f32RowStagedWords,
  lanesFor,
  pairedUnits,
  type Prologue,
  type RowPlan,
  rowPlan,
  stagedWords,
} from "./wgsl-matmul.ts";
import { autoTileShape, TILE_N, TILE_SHAPE_NAMES, TILE_SHAPES, type TileShape, tileStorageBytes, tileTokens } from "./wgsl-tiled.ts";
import { MAX_TILE_HEAD_DIM } from "./wgsl-attention-rows.ts";
import { F32_ROW_LANES, type Fold, type WebGpuSettings } from "./options.ts";
import { wideAttentionFits } from "./wgsl-ops.ts";

/** A quantized weight type's input: its activation blocks (elements, u32 words) and the quantizer that makes them. */
export const ACT_WORDS: Record<number, { block: number; words: number; quantizer: string }> = {
  [GGMLType.Q8_0]: { block: 32, words: Q8_0_ACT_WORDS, quantizer: "quantize_q8_0" },
  [GGMLType.Q4_0]: { block: 32, words: Q8_0_ACT_WORDS, quantizer: "quantize_q8_0" },
  [GGMLType.Q4_K]: { block: 256, words: Q8_K_ACT_WORDS, quantizer: "quantize_q8_k" },
  [GGMLType.Q6_K]: { block: 256, words: Q8_K_ACT_WORDS, quantizer: "quantize_q8_k" },
};

/** Bytes of scratch a matmul of a `type` weight needs for T rows of n inputs quantized (0: it reads them as they are). */
export function matmulScratchBytes(type: GGMLTypeId, n: number, T: number): number {
  const a = ACT_WORDS[type];
  return a ? T * Math.ceil(n / a.block) * a.words * 4 : 0;
}

// ------------------------------------------------------------ matmuls

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

/** The matmul's input is quantized for this weight type. */
export function quantizesInput(type: GGMLTypeId): boolean {
  return ACT_WORDS[type] !== undefined;
}

/** One row of input to a matmul of w can be quantized to Q8_0 blocks in its workgroups (prologue normq or quant). */
export function foldsQuant(w: Weight, fold: Fold): boolean {
  if (fold === false || (fold === "auto" && w.rows * w.cols > FOLD_AUTO_ELEMENTS)) return false;
  return ACT_WORDS[w.type]?.block === 32 && stagedWords(w.cols, "quant") > 0;
}

/**
 * One row of input that a matmul of w stages in workgroup memory, normed (F32/F16) or normed and quantized to Q8_0
 * (Q8_0/Q4_0 weights, unless fold is false) by each workgroup itself (wgsl-matmul.ts prologueCode). Q4_K/Q6_K inputs
 * (Q8_K blocks) keep their RMSNorm + quantize dispatch.
 */
export function stagesInput(w: Weight, T: number, fold: Fold): boolean {
  if (T !== 1) return false;
  if (!quantizesInput(w.type)) return stagedWords(w.cols) > 0;
  return foldsQuant(w, fold);
}

/** Token rows per matmul workgroup: 1 for decode, so no accumulator or reduction is spent on absent rows. */
export function tokenTile(T: number): number {
  return T === 1 ? 1 : T <= 4 ? 4 : 8;
}

/**
 * The kernel a matmul dispatch takes: tiles in workgroup memory (T from tiledFrom, its input not staged by a
 * prologue); for one row of Q8_0/Q4_0 the row kernel of rowPlan's lanes (rowKernels); for one row of F32 under f32Form
 * "rows" with a prologue of at most a norm, f32RowKernel at f32Lanes' or F32_ROW_LANES' threads a row, where its
 * staged row fits workgroup memory; else matmulKernel, with tokenTile's rows, paired units where the type has them,
 * lanesFor's threads a row (f32Lanes for one row of F32), and 16-byte F32 units.
 */
export type MatmulForm =
  | { kind: "tiled" }
  | { kind: "row"; plan: RowPlan }
  | { kind: "f32Rows"; lanes: number }
  | { kind: "matmul"; tt: number; paired: boolean; lanes: number; v4: boolean };

const TILED: MatmulForm = { kind: "tiled" };

/** The form of a matmul of a `type` weight, n columns, over `rows` weight rows and T token rows (MatmulForm). */
export function matmulForm(
  type: GGMLTypeId,
  n: number,
  T: number,
  rows: number,
  prologue: Prologue,
  s: Pick<WebGpuSettings, "tiledFrom" | "rowKernels" | "f32Form" | "f32Lanes">,
): MatmulForm {
  if (T >= s.tiledFrom && prologue === "none") return TILED;
  const plan = T === 1 ? rowPlan(type, n, s.rowKernels, rows) : null;
  if (plan) return { kind: "row", plan };
  const oneF32 = T === 1 && type === GGMLType.F32;
  if (oneF32 && s.f32Form === "rows" && f32RowStagedWords(n) > 0 && (prologue === "none" || prologue === "norm")) {
    return { kind: "f32Rows", lanes: s.f32Lanes || F32_ROW_LANES };
  }
  const lanes = oneF32 && s.f32Lanes ? s.f32Lanes : lanesFor(type, n);
  return { kind: "matmul", tt: tokenTile(T), paired: pairedUnits(type, n), lanes, v4: type === GGMLType.F32 };
}

/**
 * The register-tiled shape quantized tiled matmuls take on a device with `storage` bytes of workgroup memory:
 * the `tiles` option as given ("auto" or a shape that fits), else "today".
 */
export function tileShapeFor(tiles: string, storage: number): string {
  const shape = TILE_SHAPES[tiles];
  return tiles === "auto" || (shape && tileStorageBytes(shape) <= storage) ? tiles : "today";
}

/**
 * A tiled matmul's tiles: quantized weights in the register-tiled shape when one is set (tileShape; "auto":
 * autoTileShape's for T and rows), else today's tiles of TILE_N rows by tileRows' or tileTokens' 32 or 64 tokens.
 */
export function tileForm(
  type: number,
  T: number,
  rows: number,
  tileShape: string,
  tileRows: number,
  storage: number,
): { name: string; shape: TileShape | null; bm: number; bn: number } {
  const name = type === GGMLType.F32 || type === GGMLType.F16
    ? "today"
    : tileShape === "auto"
    ? autoTileShape(T, rows, storage) ?? "today"
    : tileShape;
  const shape = name === "today" ? null : TILE_SHAPES[name];
  return { name, shape, bm: shape ? shape.bm : tileRows || tileTokens(T, rows), bn: shape ? shape.bn : TILE_N };
}

// ------------------------------------------------------------ attention

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

/** The many-row kernel (16 rows a workgroup, wgsl-attention-rows.ts) serves these rows. */
export function attentionRows(kv: KVLayout, T: number): boolean {
  return T >= ATTENTION_ROWS_FROM && kv.kvType === "f32" && kv.headDim <= MAX_TILE_HEAD_DIM && kv.headDim % 8 === 0;
}

/** The per-row attention kernel quantizes its head's output in whole Q8_0 blocks for a Q8_0/Q4_0 matmul of w. */
export function quantizesAttention(kv: KVLayout, T: number, w: Weight, fuseAttentionQuant: boolean): boolean {
  return fuseAttentionQuant && kv.kvType === "f32" && ACT_WORDS[w.type]?.block === 32 && !attentionRows(kv, T) &&
    kv.headDim % 32 === 0 &&
    kv.headDim <= 128;
}

/**
 * Attention's kernel for T rows over kv: "f16" (wgsl-attention-f16.ts, an F16 cache), "rows" (16 rows a workgroup,
 * attentionRows), or the per-row kernel, `wide` (attentionWideKernel: attention "wide" where its head size fits) or
 * not, built for the head size (`headDim`, its K row's loads written out) up to UNROLLED_HEAD_DIM (0: a parameter).
 */
export function attentionForm(
  kv: KVLayout,
  T: number,
  attention: WebGpuSettings["attention"],
): { kind: "f16" | "rows" | "row"; wide: boolean; headDim: number } {
  if (kv.kvType === "f16") return { kind: "f16", wide: false, headDim: 0 };
  if (attentionRows(kv, T)) return { kind: "rows", wide: false, headDim: 0 };
  const headDim = kv.headDim <= UNROLLED_HEAD_DIM && kv.headDim % 4 === 0 ? kv.headDim : 0;
  return { kind: "row", wide: attention === "wide" && wideAttentionFits(kv.headDim), headDim };
}

// ------------------------------------------------------------ kernel keys

// Fused matmuls' epilogues and prologues by number, and kernels' numeric signatures (for keyFor: no string per dispatch)
export const EPILOGUES: Epilogue[] = ["store", "residual", "swiglu", "qkv"];
export const EPI_STORE = 0, EPI_RESIDUAL = 1, EPI_SWIGLU = 2, EPI_QKV = 3;
export const PROLOGUES: Prologue[] = ["none", "norm", "normq", "quant"];
export const PRO_NONE = 0;
export const SIG_EMBED = 1 * 2 ** 44, SIG_ATTENTION_ROWS = 2 * 2 ** 44, SIG_TILED = 3 * 2 ** 44, SIG_MATMUL = 4 * 2 ** 44;
export const SIG_ATTENTION = 5 * 2 ** 44, SIG_NORMQUANT = 6 * 2 ** 44, SIG_RMSNORM = 7 * 2 ** 44;

/** type (< 64), epilogue (< 4), tile rows (< 256), shape (TILE_SHAPE_NAMES index + 1; 0: today's tiles). */
export function tiledSignature(type: number, epilogue: number, bm: number, shape: number): number {
  return SIG_TILED + ((shape * 64 + type) * 4 + epilogue) * 256 + bm;
}

export function tiledKey(s: number): string {
  const v = s - SIG_TILED, shape = Math.floor(v / 65536);
  return `tiled:${shape ? `${TILE_SHAPE_NAMES[shape - 1]}:` : ""}${Math.floor(v / 1024) % 64}:${EPILOGUES[Math.floor(v / 256) % 4]}:${
    v % 256
  }`;
}

/** type (< 64), epilogue (< 4), tt (< 16), paired, lanes (< 128), prologue (< 4), n (< 2^20). */
export function matmulSignature(
  type: number,
  epilogue: number,
  tt: number,
  paired: boolean,
  lanes: number,
  prologue: number,
  n: number,
): number {
  return SIG_MATMUL + (((((type * 4 + epilogue) * 16 + tt) * 2 + (paired ? 1 : 0)) * 128 + lanes) * 4 + prologue) * 2 ** 20 + n;
}

/**
 * The row kernel (wgsl-matmul.ts rowKernel, built for its n) in matmulSignature's tt field, which the other one-row
 * kernels fill with 1, 4 or 8: 9..12 for paired units (1..4 in flight), 13..14 for octets (1..2).
 */
export function rowTile(plan: RowPlan): number {
  return plan.octets ? 12 + plan.unroll : 8 + plan.unroll;
}

/** wgsl-matmul.ts f32RowKernel (built for its n) in matmulSignature's tt field: 15, which no other kernel takes. */
export const F32_ROW_TILE = 15;

export function matmulKey(s: number): string {
  let v = s - SIG_MATMUL;
  const n = v % 2 ** 20;
  v = Math.floor(v / 2 ** 20);
  const prologue = PROLOGUES[v % 4], lanes = Math.floor(v / 4) % 128, paired = Math.floor(v / 512) % 2 === 1;
  const tt = Math.floor(v / 1024) % 16, epilogue = EPILOGUES[Math.floor(v / 16384) % 4], type = Math.floor(v / 65536);
  return `matmul:${type}:${epilogue}:${tt}:${paired}:${lanes}:${prologue}:${n}`;
}

/** RMSNorm + the Q8_0 quantizer, built for its row width n. */
export function normQuantKey(s: number): string {
  return `normquant:32:${s - SIG_NORMQUANT}`;
}

/** RMSNorm, built for its row width n. */
export function rmsnormKey(s: number): string {
  return `rmsnorm:${s - SIG_RMSNORM}`;
}

export function embedKey(s: number): string {
  return `embed:${s - SIG_EMBED}`;
}

/** attention (per-row kernel): wide (1024, attentionWideKernel) + quantize (512) + head size written out (0: a parameter). */
export function attentionKey(s: number): string {
  const w = s - SIG_ATTENTION, v = w % 1024;
  return `${w >= 1024 ? "wide_" : ""}${v >= 512 ? "attention_quant" : "attention"}${v % 512 ? `:${v % 512}` : ""}`;
}

export function attentionRowsKey(s: number): string {
  return `attention_rows:${s - SIG_ATTENTION_ROWS}`;
}
