// AssemblyScript, compiled by bench/attention-run.bench.ts: a prefill chunk's causal attention over the paged f32 cache
// row by row (`attention`: the backends' calls before runs) and in runs of R rows (attention_run), each from position 0.
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
import { attention } from "../../assembly/f32";
import { attention_run } from "../../assembly/attn-run";

/** T rows at positions p0 .. p0 + T - 1 (q, out: T x nHeads x headDim f32), one call a row. */
export function rowByRow(
  out: usize, q: usize, att: usize, kv: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, p0: i32, T: i32,
): void {
  const rb = <usize>nHeads * headDim * 4;
  for (let t = 0; t < T; t++) {
    attention(out + t * rb, q + t * rb, att, kv, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, 0, p0 + t + 1, 0, nHeads, 0, 0, 0);
  }
}

/** The same rows in runs of R (the last run shorter). */
export function inRuns(
  out: usize, q: usize, att: usize, kv: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, p0: i32, T: i32, R: i32,
): void {
  const rb = <usize>nHeads * headDim * 4;
  for (let t = 0; t < T; t += R) {
    attention_run(out + t * rb, q + t * rb, att, kv, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, 0, p0 + t + 1, 0, nHeads, 0, min(R, T - t));
  }
}
