// The decode rows' attention kernels: the f32 cache's `attention` and the F16
// cache's default-mode attention_f16_twopass with attendPaged's stream on (each
// page's K and V block swept into cache before a pass works on it), the same
// bits. A decode row's K and V come from memory; a prefill chunk's rows read
// what the chunk just stored, from cache, where the sweep would only cost: the
// backends take these for T = 1 (src/backends/wasm.ts attentionKernel).

import { attendPaged } from "./attn-paged";

/**
 * `attention` for a decode row (f32.ts: arguments, and the order every result is reduced in; the same bits):
 * each page's K and V block swept into cache first (attendPaged's stream). The backends take it for T = 1.
 */
export function attention_stream(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize,
): void {
  attendPaged<f32>(out, q, att, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, start, end, h0, h1, slopes, topK, sel, true);
}

/** attention_f16_twopass (kv16.ts) for a decode row, the same bits: each page's K and V block swept into cache first. */
export function attention_f16_stream(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize,
): void {
  attendPaged<u16>(out, q, att, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, start, end, h0, h1, slopes, topK, sel, true);
}
