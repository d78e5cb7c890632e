// Paged attention of one query row in two passes (scores, softmax weights,
// then the weighted sum of V), generic over the cache's element: f32 (the f32
// cache's `attention`) or IEEE half (attention_f16_twopass, the F16 cache in
// default mode), each element widened to f32 as it is loaded (halves in the
// four-position loops scaled by 2^-112, the other factor carrying the 2^112:
// load4Scaled). Inline, no state; attn-stream.ts exports the same loops for
// decode rows (`stream`).

import { hsum, madd, f16ToF32, f16x4ScaledBy, f16x8Lo } from "./math";
import { reduce4f } from "./quant-util";
import { alibiSlope, softmaxWeights, softmaxWeights4, topkMask } from "./attn-select";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

/** Four cache elements at p as f32x4 (E = f32, or u16 for IEEE halves). */
// @ts-ignore: decorator
@inline function load4<E>(p: usize): v128 {
  if (sizeof<E>() == 2) return f16x8Lo(v128.load64_zero(p));
  return v128.load(p);
}

/**
 * Four cache elements at p as f32x4, halves scaled by 2^-112 (math.ts f16x4ScaledBy: f16x4Scaled with its constants
 * k8192 and mask given): the other factor of each product then carries the 2^112, so each product, as a real number, is the
 * one of load4's value, and every rounding that follows has load4's bits, one multiply fewer per four halves. f32
 * elements as load4. The callers build the constants from an opaque zero once per call, so that V8 keeps them in
 * registers rather than rematerialize each v128.const at every use in the loop (quant-matmul.ts).
 */
// @ts-ignore: decorator
@inline function load4Scaled<E>(p: usize, k8192: v128, mask: v128): v128 {
  if (sizeof<E>() == 2) return f16x4ScaledBy(v128.load16x4_s(p), k8192, mask);
  return v128.load(p);
}

/**
 * Whether q's heads [h0, h1) times 2^112 stay exact (every |q| < 2^16, none NaN): then scores may take
 * load4Scaled's halves. Always for f32 (nothing is scaled).
 */
// @ts-ignore: decorator
@inline function qScales<E>(q: usize, h0: i32, h1: i32, headDim: i32): bool {
  if (sizeof<E>() != 2) return true;
  const n = (h1 - h0) * headDim, p = q + ((<usize>h0 * <usize>headDim) << 2);
  let m4 = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) m4 = f32x4.max(m4, f32x4.abs(v128.load(p + (<usize>i << 2))));
  // f32x4.max gives NaN for a NaN lane, which fails the test below as it should
  let all = i32x4.all_true(f32x4.lt(m4, f32x4.splat(65536.0)));
  for (; i < n; i++) all = all && abs(f32At(p, i)) < <f32>65536.0;
  return all;
}

/** One cache element at p as f32. */
// @ts-ignore: decorator
@inline function load1<E>(p: usize): f32 {
  if (sizeof<E>() == 2) return f16ToF32(load<u16>(p));
  return load<f32>(p);
}

/** Address of position p's slot (K or V at byte offset off) in the paged cache. */
// @ts-ignore: decorator
@inline export function kvSlot(kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, off: i32, slotBytes: usize, p: i32): usize {
  const page = <usize>load<i32>(pageTable + (<usize>(p / pageSize) << 2));
  return kvBase + page * <usize>pageBytes + <usize>off + <usize>(p % pageSize) * slotBytes;
}

/**
 * `attention` (f32.ts: arguments, and the order every result is reduced in) over slots of kvDim elements
 * of type E. How, for speed: positions are walked page by page (one page-table load and no division per
 * position), and within a page position-major, every head of [h0, h1) at one position before the next: a
 * layer's K (or V) rows of a page are one block of pageSize * kvDim elements, so both passes read it as
 * one sequential stream that the hardware prefetches (head by head, each head's rows lie a whole slot
 * apart and every row is a cache miss of its own). Four positions a step share the loads of q (scores)
 * and of the output row (V); four heads' softmaxes run side by side (softmaxWeights4).
 *
 * stream: the pass's K (then V) blocks are swept, four pages' at a time side by side (sweepPages), right
 * before the pass works on the first of them. The passes do a few hundred operations per 64-byte line, so
 * a line they miss on is waited for with few other misses in flight (a decode row's K and V come from
 * memory); the sweep's bare loads keep many misses in flight, and the pass then finds the blocks in L2. Data
 * already in cache (a prefill chunk's rows, which read the K and V the chunk just stored) only pays for the
 * sweep, so the callers choose (attn-stream.ts: the decode rows' kernels). Loads only: the same bits.
 */
// @ts-ignore: decorator
@inline export function attendPaged<E>(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize, stream: bool = false,
): void {
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>(1.0 / Math.sqrt(<f64>headDim));
  const len = end - start;
  const slotBytes = <usize>kvDim * sizeof<E>();
  const headBytes = <usize>headDim << 2; // of q and out (f32)
  const kvHeadBytes = <usize>headDim * sizeof<E>(); // of a K or V row
  const vec = (headDim & 3) == 0;
  let swept = i32x4.splat(0); // what the stream sweeps read, kept so that no compiler drops them
  // the bytes of a slot that heads [h0, h1) read: their KV heads' rows
  const sweepLo = <usize>(h0 / kvMul) * kvHeadBytes, sweepHi = h1 > h0 ? <usize>((h1 - 1) / kvMul + 1) * kvHeadBytes : sweepLo;
  let pagesLeft = 0; // pages of the current sweep's group still to work on
  // halves: the scores take load4Scaled's K with q times 2^112 where that is exact (all but absurd q); V always
  // (weights <= 1). Either path gives the same bits, so a head split that leaves a large q to one thread changes
  // nothing. The constants from an opaque zero (z), once per call (load4Scaled)
  const scaledQ = sizeof<E>() == 2 && vec && qScales<E>(q, h0, h1, headDim);
  const z = <i32>(<u32>kvDim >> 31);
  const k8192 = i32x4.splat(8192 + z), mask = i32x4.splat(<i32>0x8FFFE000 + z);
  const p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  // scores = q . k / sqrt(headDim) (+ ALiBi's slope * distance); head h's row at att + 4 h len (by absolute
  // head: threads splitting heads never overlap)
  for (let p = start; p < end;) {
    const run = min(pageSize - p % pageSize, end - p);
    const k = kvSlot(kvBase, pageTable, pageSize, pageBytes, kOff, slotBytes, p);
    if (stream && pagesLeft-- == 0) {
      swept = sweepPages(swept, kvBase, pageTable, pageSize, pageBytes, kOff, slotBytes, p, end, sweepLo, sweepHi);
      pagesLeft = SWEEP_PAGES - 1;
    }
    const j0 = p - start, dist0 = p - end + 1;
    let j = 0;
    if (vec && kvMul > 1) {
      for (; j + 4 <= run; j += 4) scoreGroups4<E>(att, q, k + <usize>j * slotBytes, slotBytes, kvHeadBytes, len, j0 + j, headDim, kvMul, h0, h1, scale, slopes, dist0 + j, scaledQ, k8192, mask, p112);
    } else if (vec && scaledQ) {
      for (; j + 4 <= run; j += 4) {
        const kj = k + <usize>j * slotBytes;
        for (let h = h0; h < h1; h++) {
          const sc = att + ((<usize>h * len + <usize>(j0 + j)) << 2);
          score4<E>(sc, q + <usize>h * headBytes, kj + <usize>h * kvHeadBytes, slotBytes, headDim, scale, alibiSlope(slopes, h), dist0 + j, true, k8192, mask, p112);
        }
      }
    } else if (vec) {
      for (; j + 4 <= run; j += 4) {
        const kj = k + <usize>j * slotBytes;
        for (let h = h0; h < h1; h++) {
          const sc = att + ((<usize>h * len + <usize>(j0 + j)) << 2);
          score4<E>(sc, q + <usize>h * headBytes, kj + <usize>h * kvHeadBytes, slotBytes, headDim, scale, alibiSlope(slopes, h), dist0 + j, false, k8192, mask, p112);
        }
      }
    }
    for (; j < run; j++) {
      const kj = k + <usize>j * slotBytes;
      for (let h = h0; h < h1; h++) {
        const sc = att + ((<usize>h * len + <usize>(j0 + j)) << 2);
        setF32(sc, 0, score1<E>(q + <usize>h * headBytes, kj + <usize>(h / kvMul) * kvHeadBytes, headDim, scale, alibiSlope(slopes, h), dist0 + j));
      }
    }
    p += run;
  }
  const rowBytes = <usize>len << 2;
  if (topK > 0) {
    for (let h = h0; h < h1; h++) topkMask(att + <usize>h * rowBytes, len, topK, sel + ((<usize>h * topK) << 3)); // the max is always kept
  }
  let h = h0;
  for (; h + 4 <= h1; h += 4) {
    const sc = att + <usize>h * rowBytes;
    softmaxWeights4(sc, rowBytes, len, rowMax(sc, len), rowMax(sc + rowBytes, len), rowMax(sc + 2 * rowBytes, len), rowMax(sc + 3 * rowBytes, len));
  }
  for (; h < h1; h++) {
    const sc = att + <usize>h * rowBytes;
    softmaxWeights(sc, len, rowMax(sc, len));
  }
  // out = sum_p weight_p * v_p
  pagesLeft = 0;
  memory.fill(out + <usize>h0 * headBytes, 0, <usize>(h1 - h0) * headBytes);
  for (let p = start; p < end;) {
    const run = min(pageSize - p % pageSize, end - p);
    const v = kvSlot(kvBase, pageTable, pageSize, pageBytes, vOff, slotBytes, p);
    if (stream && pagesLeft-- == 0) {
      swept = sweepPages(swept, kvBase, pageTable, pageSize, pageBytes, vOff, slotBytes, p, end, sweepLo, sweepHi);
      pagesLeft = SWEEP_PAGES - 1;
    }
    const j0 = p - start;
    let j = 0;
    if (vec && topK == 0 && kvMul > 1) {
      for (; j + 4 <= run; j += 4) weightGroups4<E>(out, att, v + <usize>j * slotBytes, slotBytes, kvHeadBytes, len, j0 + j, headDim, kvMul, h0, h1, k8192, mask, p112);
    } else if (vec && topK == 0) {
      for (; j + 4 <= run; j += 4) {
        const vj = v + <usize>j * slotBytes;
        for (let h = h0; h < h1; h++) {
          const w = att + ((<usize>h * len + <usize>(j0 + j)) << 2);
          weighted4<E>(out + <usize>h * headBytes, w, vj + <usize>h * kvHeadBytes, slotBytes, headDim, k8192, mask, p112);
        }
      }
    }
    for (; j < run; j++) {
      const vj = v + <usize>j * slotBytes;
      for (let h = h0; h < h1; h++) {
        const a = f32At(att, h * len + j0 + j);
        if (topK > 0 && a == 0) continue; // not among the top k: its V row is never read
        weighted1<E>(out + <usize>h * headBytes, a, vj + <usize>(h / kvMul) * kvHeadBytes, headDim);
      }
    }
    p += run;
  }
  // att is scratch: head h0's first weight, already used, takes the sweeps' bits
  if (stream && h1 > h0) store<i32>(att + <usize>h0 * rowBytes, i32x4.extract_lane(swept, 0) | i32x4.extract_lane(swept, 2));
}

/** Pages whose blocks one sweep reads side by side: four streams keep more misses in flight than one (1.1-1.25x, measured). */
const SWEEP_PAGES = 4;

/**
 * The sweep of attendPaged's stream: the K (or V, at off) blocks of the page holding position p and of the
 * next SWEEP_PAGES - 1 pages up to end, read side by side by readLines4.
 */
// @ts-ignore: decorator
@inline function sweepPages(
  acc: v128, kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, off: i32, slotBytes: usize, p: i32, end: i32, lo: usize, hi: usize,
): v128 {
  const n0 = min(pageSize - p % pageSize, end - p), p1 = p + n0;
  const n1 = p1 < end ? min(pageSize, end - p1) : 0, p2 = p1 + n1;
  const n2 = p2 < end ? min(pageSize, end - p2) : 0, p3 = p2 + n2;
  const n3 = p3 < end ? min(pageSize, end - p3) : 0;
  const b0 = kvSlot(kvBase, pageTable, pageSize, pageBytes, off, slotBytes, p);
  const b1 = n1 > 0 ? kvSlot(kvBase, pageTable, pageSize, pageBytes, off, slotBytes, p1) : 0;
  const b2 = n2 > 0 ? kvSlot(kvBase, pageTable, pageSize, pageBytes, off, slotBytes, p2) : 0;
  const b3 = n3 > 0 ? kvSlot(kvBase, pageTable, pageSize, pageBytes, off, slotBytes, p3) : 0;
  return readLines4(acc, b0, n0, b1, n1, b2, n2, b3, n3, slotBytes, lo, hi);
}

/**
 * Reads one 16-byte vector of every 64-byte line of bytes [lo, hi) of each slot (slotBytes apart) of four
 * blocks side by side (block i: ni slots at bi; ni = 0: none), ORed into acc. [lo, hi) holds the KV heads of
 * the call's query heads, all of the slot on one thread. Bare independent loads in address order within each
 * block: the core keeps many line misses in flight, and the prefetcher sees four sequential streams.
 */
// @ts-ignore: decorator
@inline function readLines4(
  acc: v128, b0: usize, n0: i32, b1: usize, n1: i32, b2: usize, n2: i32, b3: usize, n3: i32, slotBytes: usize, lo: usize, hi: usize,
): v128 {
  // all of each slot (one thread): each block is one run of bytes
  if (lo == 0 && hi == slotBytes) return readBytes4(acc, b0, <usize>n0 * slotBytes, b1, <usize>n1 * slotBytes, b2, <usize>n2 * slotBytes, b3, <usize>n3 * slotBytes);
  let a0 = acc, a1 = i32x4.splat(0);
  const all = min(min(n0, n1), min(n2, n3)), most = max(max(n0, n1), max(n2, n3));
  for (let j = 0; j < all; j++) {
    const s = <usize>j * slotBytes;
    for (let o = lo; o + 16 <= hi; o += 64) {
      a0 = v128.or(a0, v128.load(b0 + s + o));
      a1 = v128.or(a1, v128.load(b1 + s + o));
      a0 = v128.or(a0, v128.load(b2 + s + o));
      a1 = v128.or(a1, v128.load(b3 + s + o));
    }
  }
  for (let j = all; j < most; j++) {
    const s = <usize>j * slotBytes;
    for (let o = lo; o + 16 <= hi; o += 64) {
      if (j < n0) a0 = v128.or(a0, v128.load(b0 + s + o));
      if (j < n1) a1 = v128.or(a1, v128.load(b1 + s + o));
      if (j < n2) a0 = v128.or(a0, v128.load(b2 + s + o));
      if (j < n3) a1 = v128.or(a1, v128.load(b3 + s + o));
    }
  }
  return v128.or(a0, a1);
}

/** readLines4 over four runs of bytes (block i: ni bytes at bi). */
// @ts-ignore: decorator
@inline function readBytes4(acc: v128, b0: usize, n0: usize, b1: usize, n1: usize, b2: usize, n2: usize, b3: usize, n3: usize): v128 {
  let a0 = acc, a1 = i32x4.splat(0);
  const all = min(min(n0, n1), min(n2, n3));
  let o: usize = 0;
  for (; o + 16 <= all; o += 64) {
    a0 = v128.or(a0, v128.load(b0 + o));
    a1 = v128.or(a1, v128.load(b1 + o));
    a0 = v128.or(a0, v128.load(b2 + o));
    a1 = v128.or(a1, v128.load(b3 + o));
  }
  for (let x = o; x + 16 <= n0; x += 64) a0 = v128.or(a0, v128.load(b0 + x));
  for (let x = o; x + 16 <= n1; x += 64) a1 = v128.or(a1, v128.load(b1 + x));
  for (let x = o; x + 16 <= n2; x += 64) a0 = v128.or(a0, v128.load(b2 + x));
  for (let x = o; x + 16 <= n3; x += 64) a1 = v128.or(a1, v128.load(b3 + x));
  return v128.or(a0, a1);
}

/**
 * Four consecutive positions' scores of one head (k: the first position's head row, slotBytes apart) into
 * sc[0..3]: four independent chains (each its own, in score1's order) sharing the loads of q, and one
 * four-lane reduction whose lanes sum as hsum does ((a0 + a2) + (a1 + a3)): score1's bits. dist: the
 * first position's distance to the query (p - own position, for ALiBi).
 */
// @ts-ignore: decorator
@inline export function score4<E>(
  sc: usize, qh: usize, k0: usize, slotBytes: usize, headDim: i32, scale: f32, slope: f32, dist: i32,
  scaled: bool, k8192: v128, mask: v128, p112: v128,
): void {
  const k1 = k0 + slotBytes, k2 = k1 + slotBytes, k3 = k2 + slotBytes;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  if (scaled && sizeof<E>() == 2) {
    // q times 2^112 (p112; exact: qScales), once for four positions; K by load4Scaled: the same products
    for (let i = 0; i < headDim; i += 4) {
      const qv = f32x4.mul(v128.load(qh + (<usize>i << 2)), p112);
      const e = <usize>i * sizeof<E>();
      a0 = madd(qv, load4Scaled<E>(k0 + e, k8192, mask), a0);
      a1 = madd(qv, load4Scaled<E>(k1 + e, k8192, mask), a1);
      a2 = madd(qv, load4Scaled<E>(k2 + e, k8192, mask), a2);
      a3 = madd(qv, load4Scaled<E>(k3 + e, k8192, mask), a3);
    }
  } else {
    for (let i = 0; i < headDim; i += 4) {
      const qv = v128.load(qh + (<usize>i << 2));
      const e = <usize>i * sizeof<E>();
      a0 = madd(qv, load4<E>(k0 + e), a0);
      a1 = madd(qv, load4<E>(k1 + e), a1);
      a2 = madd(qv, load4<E>(k2 + e), a2);
      a3 = madd(qv, load4<E>(k3 + e), a3);
    }
  }
  let s4 = f32x4.mul(reduce4f(a0, a1, a2, a3), f32x4.splat(scale));
  if (slope != 0) s4 = f32x4.add(s4, f32x4.mul(f32x4.splat(slope), distances(dist)));
  v128.store(sc, s4);
}

/**
 * Four consecutive positions' scores (k: the first position's slot) of heads [h0, h1) into their score rows (head h's
 * at att + 4 (h len + j)), for grouped-query attention (kvMul > 1): two query heads of one KV head go together through
 * score4x2, each K load serving both; a head left alone through score4. Either way each score has score4's bits. A
 * function of its own, so that multi-head attention's loop in attendPaged stays as it was: with the pairs inside that
 * loop, the multi-head decode row ran 0.95x (median of five runs, Deno, one vCPU).
 */
function scoreGroups4<E>(
  att: usize, q: usize, k: usize, slotBytes: usize, kvHeadBytes: usize, len: i32, j: i32, headDim: i32, kvMul: i32, h0: i32, h1: i32,
  scale: f32, slopes: usize, dist: i32, scaled: bool, k8192: v128, mask: v128, p112: v128,
): void {
  const headBytes = <usize>headDim << 2, rowBytes = <usize>len << 2;
  // g: h's KV head, whose query heads end at gEnd (no division per head: one costs about a tenth of score4)
  let g = h0 / kvMul, gEnd = min(h1, (g + 1) * kvMul);
  for (let h = h0; h < h1;) {
    const sc = att + ((<usize>h * len + <usize>j) << 2), qh = q + <usize>h * headBytes, kh = k + <usize>g * kvHeadBytes;
    if (h + 1 < gEnd) {
      score4x2<E>(sc, sc + rowBytes, qh, qh + headBytes, kh, slotBytes, headDim, scale, alibiSlope(slopes, h), alibiSlope(slopes, h + 1), dist, dist, scaled, k8192, mask, p112);
      h += 2;
    } else {
      score4<E>(sc, qh, kh, slotBytes, headDim, scale, alibiSlope(slopes, h), dist, scaled, k8192, mask, p112);
      h++;
    }
    if (h >= gEnd) {
      g++;
      gEnd = min(h1, gEnd + kvMul);
    }
  }
}

/**
 * weighted4 over four consecutive positions (v: the first position's slot) for heads [h0, h1) of grouped-query
 * attention: two query heads of one KV head together through weighted4x2, each V load serving both; a head left alone
 * through weighted4. Each output element has weighted4's bits. Its own function, as scoreGroups4.
 */
function weightGroups4<E>(
  out: usize, att: usize, v: usize, slotBytes: usize, kvHeadBytes: usize, len: i32, j: i32, headDim: i32, kvMul: i32, h0: i32, h1: i32,
  k8192: v128, mask: v128, p112: v128,
): void {
  const headBytes = <usize>headDim << 2, rowBytes = <usize>len << 2;
  let g = h0 / kvMul, gEnd = min(h1, (g + 1) * kvMul);
  for (let h = h0; h < h1;) {
    const w = att + ((<usize>h * len + <usize>j) << 2), oh = out + <usize>h * headBytes, vh = v + <usize>g * kvHeadBytes;
    if (h + 1 < gEnd) {
      weighted4x2<E>(oh, oh + headBytes, w, w + rowBytes, vh, slotBytes, headDim, k8192, mask, p112);
      h += 2;
    } else {
      weighted4<E>(oh, w, vh, slotBytes, headDim, k8192, mask, p112);
      h++;
    }
    if (h >= gEnd) {
      g++;
      gEnd = min(h1, gEnd + kvMul);
    }
  }
}

/**
 * score4 for two query vectors (q0, q1) on the same four positions (k0: the first position's K row, slotBytes apart),
 * q0's four scores to sc0 and q1's to sc1: eight chains sharing each K load. q0 and q1 are two query heads of one KV
 * head (grouped-query attention: dist0 = dist1) or two query rows of one head (attn-run.ts: slope0 = slope1). Each chain
 * and its reduction are score4's (scaled, k8192, mask, p112 as there), so each score has its bits.
 */
export function score4x2<E>(
  sc0: usize, sc1: usize, q0: usize, q1: usize, k0: usize, slotBytes: usize, headDim: i32, scale: f32, slope0: f32, slope1: f32,
  dist0: i32, dist1: i32, scaled: bool, k8192: v128, mask: v128, p112: v128,
): void {
  const k1 = k0 + slotBytes, k2 = k1 + slotBytes, k3 = k2 + slotBytes;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  if (scaled && sizeof<E>() == 2) {
    // each q times 2^112 (exact: qScales), K by load4Scaled: score4's products
    for (let i = 0; i < headDim; i += 4) {
      const o = <usize>i << 2, e = <usize>i * sizeof<E>();
      const x = f32x4.mul(v128.load(q0 + o), p112), y = f32x4.mul(v128.load(q1 + o), p112);
      const c0 = load4Scaled<E>(k0 + e, k8192, mask), c1 = load4Scaled<E>(k1 + e, k8192, mask);
      const c2 = load4Scaled<E>(k2 + e, k8192, mask), c3 = load4Scaled<E>(k3 + e, k8192, mask);
      a0 = madd(x, c0, a0); b0 = madd(y, c0, b0);
      a1 = madd(x, c1, a1); b1 = madd(y, c1, b1);
      a2 = madd(x, c2, a2); b2 = madd(y, c2, b2);
      a3 = madd(x, c3, a3); b3 = madd(y, c3, b3);
    }
  } else {
    for (let i = 0; i < headDim; i += 4) {
      const o = <usize>i << 2, e = <usize>i * sizeof<E>();
      const x = v128.load(q0 + o), y = v128.load(q1 + o);
      const c0 = load4<E>(k0 + e), c1 = load4<E>(k1 + e), c2 = load4<E>(k2 + e), c3 = load4<E>(k3 + e);
      a0 = madd(x, c0, a0); b0 = madd(y, c0, b0);
      a1 = madd(x, c1, a1); b1 = madd(y, c1, b1);
      a2 = madd(x, c2, a2); b2 = madd(y, c2, b2);
      a3 = madd(x, c3, a3); b3 = madd(y, c3, b3);
    }
  }
  const s = f32x4.splat(scale);
  let s0 = f32x4.mul(reduce4f(a0, a1, a2, a3), s), s1 = f32x4.mul(reduce4f(b0, b1, b2, b3), s);
  if (slope0 != 0) s0 = f32x4.add(s0, f32x4.mul(f32x4.splat(slope0), distances(dist0)));
  if (slope1 != 0) s1 = f32x4.add(s1, f32x4.mul(f32x4.splat(slope1), distances(dist1)));
  v128.store(sc0, s0);
  v128.store(sc1, s1);
}

/** dist .. dist + 3 as f32 lanes: four consecutive positions' distances to the query (ALiBi). */
// @ts-ignore: decorator
@inline export function distances(dist: i32): v128 {
  const d = f32x4.splat(<f32>dist);
  return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(d, 1, <f32>(dist + 1)), 2, <f32>(dist + 2)), 3, <f32>(dist + 3));
}

/** One position's score of one head: an f32x4 chain over the multiples of 4 summed by hsum, then the scalar tail. */
// @ts-ignore: decorator
@inline export function score1<E>(qh: usize, k: usize, headDim: i32, scale: f32, slope: f32, dist: i32): f32 {
  const hd4 = headDim & ~3;
  let acc = f32x4.splat(0);
  for (let i = 0; i < hd4; i += 4) acc = madd(v128.load(qh + (<usize>i << 2)), load4<E>(k + <usize>i * sizeof<E>()), acc);
  let s = hsum(acc);
  for (let i = hd4; i < headDim; i++) s += f32At(qh, i) * load1<E>(k + <usize>i * sizeof<E>());
  s *= scale;
  if (slope != 0) s += slope * <f32>dist;
  return s;
}

/**
 * The largest of n floats at sc (max is exact: any order gives it), NaN if any is NaN. Four lanes by pmax (one maxps;
 * f32x4.max's NaN handling costs V8 about six more instructions a step) with the NaNs tracked apart.
 */
// @ts-ignore: decorator
@inline export function rowMax(sc: usize, n: i32): f32 {
  let m4 = f32x4.splat(-Infinity), nan4 = i32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const x = v128.load(sc + (<usize>j << 2));
    m4 = f32x4.pmax(m4, x);
    nan4 = v128.or(nan4, f32x4.ne(x, x));
  }
  let m = max(max(f32x4.extract_lane(m4, 0), f32x4.extract_lane(m4, 1)), max(f32x4.extract_lane(m4, 2), f32x4.extract_lane(m4, 3)));
  if (v128.any_true(nan4)) m = NaN;
  for (; j < n; j++) m = max(m, f32At(sc, j));
  return m;
}

/**
 * oh += w[0] v0 + w[1] v1 + w[2] v2 + w[3] v3 over a head of headDim (a multiple of 4) floats, the four V
 * rows slotBytes apart from v0: each element takes the four products in position order (weighted1's bits
 * four times over), with a quarter of the loads and stores of the output row.
 */
// @ts-ignore: decorator
@inline function weighted4<E>(oh: usize, w: usize, v0: usize, slotBytes: usize, headDim: i32, k8192: v128, mask: v128, p112: v128): void {
  const v1 = v0 + slotBytes, v2 = v1 + slotBytes, v3 = v2 + slotBytes;
  // halves: V by load4Scaled, the weights times 2^112 (p112; softmax weights are <= 1: exact), the same products
  let b0 = v128.load32_splat(w), b1 = v128.load32_splat(w, 4), b2 = v128.load32_splat(w, 8), b3 = v128.load32_splat(w, 12);
  if (sizeof<E>() == 2) {
    b0 = f32x4.mul(b0, p112); b1 = f32x4.mul(b1, p112); b2 = f32x4.mul(b2, p112); b3 = f32x4.mul(b3, p112);
  }
  for (let i = 0; i < headDim; i += 4) {
    const o = oh + (<usize>i << 2), e = <usize>i * sizeof<E>();
    let acc = v128.load(o);
    acc = madd(b0, load4Scaled<E>(v0 + e, k8192, mask), acc);
    acc = madd(b1, load4Scaled<E>(v1 + e, k8192, mask), acc);
    acc = madd(b2, load4Scaled<E>(v2 + e, k8192, mask), acc);
    acc = madd(b3, load4Scaled<E>(v3 + e, k8192, mask), acc);
    v128.store(o, acc);
  }
}

/**
 * weighted4 for two query heads of one KV head (grouped-query attention): oh0 with weights w0 and oh1 with w1, over the
 * same four V rows, each V load serving both. Each output element takes weighted4's products in its order: its bits.
 */
function weighted4x2<E>(
  oh0: usize, oh1: usize, w0: usize, w1: usize, v0: usize, slotBytes: usize, headDim: i32, k8192: v128, mask: v128, p112: v128,
): void {
  const v1 = v0 + slotBytes, v2 = v1 + slotBytes, v3 = v2 + slotBytes;
  let a0 = v128.load32_splat(w0), a1 = v128.load32_splat(w0, 4), a2 = v128.load32_splat(w0, 8), a3 = v128.load32_splat(w0, 12);
  let b0 = v128.load32_splat(w1), b1 = v128.load32_splat(w1, 4), b2 = v128.load32_splat(w1, 8), b3 = v128.load32_splat(w1, 12);
  if (sizeof<E>() == 2) {
    a0 = f32x4.mul(a0, p112); a1 = f32x4.mul(a1, p112); a2 = f32x4.mul(a2, p112); a3 = f32x4.mul(a3, p112);
    b0 = f32x4.mul(b0, p112); b1 = f32x4.mul(b1, p112); b2 = f32x4.mul(b2, p112); b3 = f32x4.mul(b3, p112);
  }
  for (let i = 0; i < headDim; i += 4) {
    const o = <usize>i << 2, e = <usize>i * sizeof<E>();
    const c0 = load4Scaled<E>(v0 + e, k8192, mask), c1 = load4Scaled<E>(v1 + e, k8192, mask);
    const c2 = load4Scaled<E>(v2 + e, k8192, mask), c3 = load4Scaled<E>(v3 + e, k8192, mask);
    let x = v128.load(oh0 + o), y = v128.load(oh1 + o);
    x = madd(a0, c0, x); y = madd(b0, c0, y);
    x = madd(a1, c1, x); y = madd(b1, c1, y);
    x = madd(a2, c2, x); y = madd(b2, c2, y);
    x = madd(a3, c3, x); y = madd(b3, c3, y);
    v128.store(oh0 + o, x);
    v128.store(oh1 + o, y);
  }
}

/** oh += a v over a head of headDim floats. */
// @ts-ignore: decorator
@inline export function weighted1<E>(oh: usize, a: f32, v: usize, headDim: i32): void {
  const hd4 = headDim & ~3;
  const a4 = f32x4.splat(a);
  for (let i = 0; i < hd4; i += 4) {
    const o = oh + (<usize>i << 2);
    v128.store(o, madd(a4, load4<E>(v + <usize>i * sizeof<E>()), v128.load(o)));
  }
  for (let i = hd4; i < headDim; i++) setF32(oh, i, f32At(oh, i) + a * load1<E>(v + <usize>i * sizeof<E>()));
}
