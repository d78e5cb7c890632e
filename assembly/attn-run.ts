// Paged attention of a run of query rows of one sequence at consecutive
// positions (a prefill chunk's rows) in one call over the f32 cache, each row
// with `attention`'s bits. `attention` reads a row's whole span of K and V, so a
// chunk of T rows read the sequence's cache T times over, from L2 or memory;
// here each K or V row is read once for the run, then from L1 by its other rows.
// The F16 cache keeps the row-by-row kernel: its run form measured 1.06-1.19x
// (widening the halves is most of its step) and took the builds past their size
// budget (docs/cpu-performance.md, "Prefill attention in runs of rows").

import { alibiSlope, softmaxWeights, softmaxWeights4 } from "./attn-select";
import { kvSlot, rowMax, score1, score4, score4x2, weighted1 } from "./attn-paged";
import { madd } from "./math";
import { attention } from "./f32";

/**
 * Output elements [i, i + 4 NV) of two query rows' head (o0, o1; NV = 4 or 1 vectors) over positions [start, end): each
 * element from +0, plus weight * v for each position in order (the products and order of attendPaged's weighted4 and
 * weighted1), the sums in registers across the positions instead of loaded and stored every four. w0, w1: the rows'
 * weights from start on; off: the slot offset of the elements (the layer's V, the KV head, i).
 */
function weightedSpan(
  o0: usize, o1: usize, w0: usize, w1: usize, kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, off: i32,
  slotBytes: usize, start: i32, end: i32, NV: i32,
): void {
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  let w: usize = 0;
  for (let p = start; p < end;) {
    const run = min(pageSize - p % pageSize, end - p);
    let v = kvSlot(kvBase, pageTable, pageSize, pageBytes, off, slotBytes, p);
    for (let j = 0; j < run; j++) {
      const x = v128.load32_splat(w0 + w), y = v128.load32_splat(w1 + w);
      const c0 = v128.load(v);
      a0 = madd(x, c0, a0); b0 = madd(y, c0, b0);
      if (NV == 4) {
        const c1 = v128.load(v, 16), c2 = v128.load(v, 32), c3 = v128.load(v, 48);
        a1 = madd(x, c1, a1); b1 = madd(y, c1, b1);
        a2 = madd(x, c2, a2); b2 = madd(y, c2, b2);
        a3 = madd(x, c3, a3); b3 = madd(y, c3, b3);
      }
      v += slotBytes;
      w += 4;
    }
    p += run;
  }
  v128.store(o0, a0); v128.store(o1, b0);
  if (NV == 4) {
    v128.store(o0, a1, 16); v128.store(o1, b1, 16);
    v128.store(o0, a2, 32); v128.store(o1, b2, 32);
    v128.store(o0, a3, 48); v128.store(o1, b3, 48);
  }
}

/**
 * `attention` (f32.ts: arguments, and the order every result is reduced in; top-k not taken) for a run of nRows query rows
 * of one sequence at consecutive positions: row r's q and out at + r * nHeads * headDim floats, its position end - 1 + r,
 * every row from start; 1 <= nRows <= nHeads. Each score, weight and output element is computed by attendPaged's
 * operations in its order (a score by position; a weight by row and head; an output element over the positions in order,
 * from +0), so every row has the bits `attention` gives it alone, and a chunk's rows may be cut into runs anywhere.
 *
 * Heads go in blocks of nHeads / nRows: a block's scores, row r of head h at att + 4 ((h - b0) nRows + r) lenR (lenR the
 * last row's span), take nRows x (nHeads / nRows) x lenR floats, within the nHeads x lenR that `attention` takes for the
 * last row alone, so the caller's scratch serves both. Rows go in pairs over what both see (positions below end): the
 * scores four positions at a time, each K load serving both rows (score4x2); the output 16 elements of a head at a time
 * over all those positions, the sums in registers (weightedSpan). Each row's own last positions (end .. end - 1 + r)
 * follow one at a time, as attendPaged's tails. A lone row, or heads not a multiple of 4 wide, go row by row through
 * `attention` itself (called, not inlined: the kernels' size budget).
 */
export function attention_run(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, nRows: i32,
): void {
  // the score blocks below fit the caller's scratch only so (the backends' runs never pass more)
  if (nRows > nHeads) unreachable();
  const headBytes = <usize>headDim << 2, rowBytes = <usize>nHeads * headBytes; // of q and out
  if ((headDim & 3) != 0 || nRows == 1) {
    for (let r = 0; r < nRows; r++) {
      const o = <usize>r * rowBytes;
      attention(out + o, q + o, att, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, start, end + r, h0, h1, slopes, 0, 0);
    }
    return;
  }
  const R = nRows;
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>(1.0 / Math.sqrt(<f64>headDim));
  const len0 = end - start, endR = end + R - 1;
  const slotBytes = <usize>kvDim << 2;
  const scBytes = <usize>(len0 + R - 1) << 2; // one (head, row) score row: the last row's span
  const hb = max(1, nHeads / R), none = f32x4.splat(0); // none: score4's half-precision constants, unused for f32
  for (let b0 = h0; b0 < h1; b0 += hb) {
    const b1 = min(h1, b0 + hb);
    // scores; row r's distance of a position to its own, end - 1 + r (ALiBi)
    for (let p = start; p < endR;) {
      const run = min(pageSize - p % pageSize, endR - p);
      const k = kvSlot(kvBase, pageTable, pageSize, pageBytes, kOff, slotBytes, p);
      const j0 = p - start;
      // four positions that every row sees (below end), rows in pairs
      const shared = min(run, end - p);
      let j = 0;
      for (; j + 4 <= shared; j += 4) {
        const kj = k + <usize>j * slotBytes, dist = p + j - end + 1;
        for (let h = b0; h < b1; h++) {
          const kh = kj + <usize>(h / kvMul) * headBytes, qh = q + <usize>h * headBytes, slope = alibiSlope(slopes, h);
          const sc = att + <usize>((h - b0) * R) * scBytes + (<usize>(j0 + j) << 2);
          let r = 0;
          for (; r + 2 <= R; r += 2) {
            const s0 = sc + <usize>r * scBytes, q0 = qh + <usize>r * rowBytes;
            score4x2<f32>(s0, s0 + scBytes, q0, q0 + rowBytes, kh, slotBytes, headDim, scale, slope, slope, dist - r, dist - r - 1, false, none, none, none);
          }
          if (r < R) score4<f32>(sc + <usize>r * scBytes, qh + <usize>r * rowBytes, kh, slotBytes, headDim, scale, slope, dist - r, false, none, none, none);
        }
      }
      for (; j < run; j++) {
        const pos = p + j, kj = k + <usize>j * slotBytes;
        for (let h = b0; h < b1; h++) {
          const kh = kj + <usize>(h / kvMul) * headBytes, qh = q + <usize>h * headBytes, slope = alibiSlope(slopes, h);
          const sc = att + <usize>((h - b0) * R) * scBytes + (<usize>(j0 + j) << 2);
          // rows from the first that sees pos (pos < end + r)
          for (let r = max(0, pos - end + 1); r < R; r++) {
            store<f32>(sc + <usize>r * scBytes, score1<f32>(qh + <usize>r * rowBytes, kh, headDim, scale, slope, pos - end + 1 - r));
          }
        }
      }
      p += run;
    }
    // each (head, row) score row to its softmax weights, four heads of a row side by side
    const headStride = <usize>R * scBytes;
    for (let r = 0; r < R; r++) {
      const n = len0 + r;
      let h = b0;
      for (; h + 4 <= b1; h += 4) {
        const sc = att + <usize>((h - b0) * R + r) * scBytes;
        softmaxWeights4(sc, headStride, n, rowMax(sc, n), rowMax(sc + headStride, n), rowMax(sc + 2 * headStride, n), rowMax(sc + 3 * headStride, n));
      }
      for (; h < b1; h++) {
        const sc = att + <usize>((h - b0) * R + r) * scBytes;
        softmaxWeights(sc, n, rowMax(sc, n));
      }
    }
    // out = sum_p weight_p * v_p: over [start, end) two rows and 16 (then 4) elements at a time; a lone last row of an
    // odd run is paired with itself (its sums twice, the same bits)
    for (let h = b0; h < b1; h++) {
      const vh = vOff + (h / kvMul) * headDim * 4, oh = out + <usize>h * headBytes;
      const wh = att + <usize>((h - b0) * R) * scBytes;
      for (let r = 0; r < R; r += 2) {
        const r1 = min(r + 1, R - 1);
        const o0 = oh + <usize>r * rowBytes, o1 = oh + <usize>r1 * rowBytes, w0 = wh + <usize>r * scBytes, w1 = wh + <usize>r1 * scBytes;
        let i = 0;
        for (; i + 16 <= headDim; i += 16) {
          weightedSpan(o0 + (<usize>i << 2), o1 + (<usize>i << 2), w0, w1, kvBase, pageTable, pageSize, pageBytes, vh + (i << 2), slotBytes, start, end, 4);
        }
        for (; i < headDim; i += 4) {
          weightedSpan(o0 + (<usize>i << 2), o1 + (<usize>i << 2), w0, w1, kvBase, pageTable, pageSize, pageBytes, vh + (i << 2), slotBytes, start, end, 1);
        }
      }
    }
    // each row's own last positions, in order
    for (let pos = end; pos < endR; pos++) {
      const vj = kvSlot(kvBase, pageTable, pageSize, pageBytes, vOff, slotBytes, pos);
      for (let h = b0; h < b1; h++) {
        const vh = vj + <usize>(h / kvMul) * headBytes, oh = out + <usize>h * headBytes;
        const w = att + <usize>((h - b0) * R) * scBytes + (<usize>(pos - start) << 2);
        for (let r = pos - end + 1; r < R; r++) weighted1<f32>(oh + <usize>r * rowBytes, load<f32>(w + <usize>r * scBytes), vh, headDim);
      }
    }
  }
}
