/**
 * Runs of a prefill chunk's query rows for the run attention kernel (assembly/attn-run.ts): consecutive rows of one
 * sequence at consecutive positions, from one start, attend in one call that reads each K and V row once for the run
 * instead of once a row. Each row keeps the bits of the one-row kernel, so where runs are cut changes nothing.
 */
import type { AttentionKernel } from "../kernels/spec.ts";

/**
 * Most rows one call takes: 4 measured 1.2-1.4x the row-by-row kernel at spans of 64-1000 positions, 8 no better
 * (bench/attention-run.bench.ts). The kernel also needs nRows <= nHeads (its score blocks), which runRows gives.
 */
export const ATTENTION_RUN_ROWS = 4;

/**
 * The run form of a one-row kernel, where it has one: the f32 cache's, without top-k (whose rows share one selection
 * scratch). The F16 cache's kernels keep one row a call (assembly/attn-run.ts says why).
 */
export function runKernel(kernel: AttentionKernel, topK: number): "attention_run" | undefined {
  return kernel === "attention" && topK === 0 ? "attention_run" : undefined;
}

/** The most rows a run may take for nHeads query heads (how many rows form one: src/threads/control.ts attentionRun). */
export function runRows(nHeads: number): number {
  return Math.min(ATTENTION_RUN_ROWS, nHeads);
}
