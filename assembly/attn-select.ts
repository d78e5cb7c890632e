// What the attention kernels of the f32, Q8_0 and u8_asym caches share: the
// softmax of a head's scores into weights, ALiBi's linear bias on the scores
// and the sparse top-k selection over the cached positions. Inline helpers,
// no state.

import { expf } from "./math";
import { roundToInt } from "./quant-util";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

/**
 * ALiBi slope of head h: the f32 at slopes + 4h, or 0 without ALiBi (slopes
 * is 0). The table is written at load (src/model/alibi.ts), so the kernels
 * take any head count without a power function of their own.
 */
// @ts-ignore: decorator
@inline export function alibiSlope(slopes: usize, h: i32): f32 {
  return slopes != 0 ? f32At(slopes, h) : 0;
}

/**
 * math.ts's expf on four lanes, lane for lane the same operations (f32 multiply
 * and add, never fused; the same two-factor 2^k; 0 below -103, +inf above 88.72),
 * so every lane has expf's bits: the softmax takes four scores a step and its
 * weights stay what the one-at-a-time loop gave. The constants are arguments,
 * built once per softmax from an opaque zero (expConstant): V8 rebuilds a vector
 * constant at each use inside a loop.
 */
// @ts-ignore: decorator
@inline function expfLanes(
  x: v128, log2e: v128, ln2hi: v128, ln2lo: v128, p6: v128, p5: v128, p4: v128, p3: v128, p2: v128, one: v128,
  round: v128, k127: v128, low: v128, high: v128, inf: v128,
): v128 {
  const k = f32x4.nearest(f32x4.mul(x, log2e));
  const r = f32x4.sub(f32x4.sub(x, f32x4.mul(k, ln2hi)), f32x4.mul(k, ln2lo));
  let p = p6;
  p = f32x4.add(f32x4.mul(p, r), p5);
  p = f32x4.add(f32x4.mul(p, r), p4);
  p = f32x4.add(f32x4.mul(p, r), p3);
  p = f32x4.add(f32x4.mul(p, r), p2);
  p = f32x4.add(f32x4.mul(p, r), one);
  p = f32x4.add(f32x4.mul(p, r), one);
  // k's integer by quant-util's roundToInt (exact for |k| < 2^22; a larger or NaN k is masked below or gives NaN
  // through p), where trunc_sat costs about eight instructions in V8
  const ki = roundToInt(k, round);
  const k1 = i32x4.shr_s(ki, 1);
  const s1 = i32x4.shl(i32x4.add(k1, k127), 23);
  const s2 = i32x4.shl(i32x4.add(i32x4.sub(ki, k1), k127), 23);
  const y = f32x4.mul(f32x4.mul(p, s1), s2);
  const lo = v128.andnot(y, f32x4.lt(x, low));
  return v128.bitselect(inf, lo, f32x4.gt(x, high));
}

/** v in four lanes, plus an opaque zero z (0 at run time, so v exactly; the compiler cannot fold it). */
// @ts-ignore: decorator
@inline function expConstant(v: f32, z: i32): v128 {
  return f32x4.splat(v + <f32>z);
}

/**
 * A head's n scores at sc (mx their maximum) become its softmax weights in
 * place: e_j = expf(s_j - mx), summed in position order, then each e_j times
 * 1 / sum. Four lanes a step through expfLanes: the same bits as the scalar
 * loop. A score of -inf (masked by topkMask) gets the weight 0 exactly.
 */
// @ts-ignore: decorator
@inline export function softmaxWeights(sc: usize, n: i32, mx: f32): void {
  softmaxRows(sc, 0, n, mx, 0, 0, 0, 1);
}

/**
 * softmaxWeights over four rows of n scores (row r at sc + r * rowBytes, mr its maximum) at once: each row
 * takes softmaxWeights' operations in its order, so the same bits. Why: a row's sum is one chain of
 * dependent adds (position order), which alone leaves the core waiting on each add; four rows' chains
 * are independent and overlap.
 */
// @ts-ignore: decorator
@inline export function softmaxWeights4(sc: usize, rowBytes: usize, n: i32, m0: f32, m1: f32, m2: f32, m3: f32): void {
  softmaxRows(sc, rowBytes, n, m0, m1, m2, m3, 4);
}

/** softmaxWeights over R rows (R = 1 or 4, a constant), row r at sc + r * rowBytes with maximum mr. */
// @ts-ignore: decorator
@inline function softmaxRows(sc: usize, rowBytes: usize, n: i32, m0: f32, m1: f32, m2: f32, m3: f32, R: i32): void {
  // expfLanes' constants, from an opaque zero: built once here, not at every use in the loop
  const z = <i32>(<u32>n >> 31);
  const log2e = expConstant(1.442695, z), ln2hi = expConstant(0.693145751953125, z), ln2lo = expConstant(1.428606765330187e-6, z);
  const p6 = expConstant(1.3888889e-3, z), p5 = expConstant(8.3333333e-3, z), p4 = expConstant(4.1666667e-2, z);
  const p3 = expConstant(0.16666667, z), p2 = expConstant(0.5, z), one = expConstant(1.0, z);
  const round = expConstant(12582912.0, z), k127 = i32x4.splat(127 + z);
  const low = expConstant(-103.0, z), high = expConstant(88.72, z), inf = expConstant(Infinity, z);
  const r1 = sc + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
  const mv0 = f32x4.splat(m0), mv1 = f32x4.splat(m1), mv2 = f32x4.splat(m2), mv3 = f32x4.splat(m3);
  let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j << 2;
    const e0 = expfLanes(f32x4.sub(v128.load(sc + o), mv0), log2e, ln2hi, ln2lo, p6, p5, p4, p3, p2, one, round, k127, low, high, inf);
    v128.store(sc + o, e0);
    s0 = (((s0 + f32x4.extract_lane(e0, 0)) + f32x4.extract_lane(e0, 1)) + f32x4.extract_lane(e0, 2)) + f32x4.extract_lane(e0, 3);
    if (R == 4) {
      const e1 = expfLanes(f32x4.sub(v128.load(r1 + o), mv1), log2e, ln2hi, ln2lo, p6, p5, p4, p3, p2, one, round, k127, low, high, inf);
      const e2 = expfLanes(f32x4.sub(v128.load(r2 + o), mv2), log2e, ln2hi, ln2lo, p6, p5, p4, p3, p2, one, round, k127, low, high, inf);
      const e3 = expfLanes(f32x4.sub(v128.load(r3 + o), mv3), log2e, ln2hi, ln2lo, p6, p5, p4, p3, p2, one, round, k127, low, high, inf);
      v128.store(r1 + o, e1);
      v128.store(r2 + o, e2);
      v128.store(r3 + o, e3);
      s1 = (((s1 + f32x4.extract_lane(e1, 0)) + f32x4.extract_lane(e1, 1)) + f32x4.extract_lane(e1, 2)) + f32x4.extract_lane(e1, 3);
      s2 = (((s2 + f32x4.extract_lane(e2, 0)) + f32x4.extract_lane(e2, 1)) + f32x4.extract_lane(e2, 2)) + f32x4.extract_lane(e2, 3);
      s3 = (((s3 + f32x4.extract_lane(e3, 0)) + f32x4.extract_lane(e3, 1)) + f32x4.extract_lane(e3, 2)) + f32x4.extract_lane(e3, 3);
    }
  }
  for (; j < n; j++) {
    const e0 = expf(f32At(sc, j) - m0);
    setF32(sc, j, e0);
    s0 += e0;
    if (R == 4) {
      const e1 = expf(f32At(r1, j) - m1), e2 = expf(f32At(r2, j) - m2), e3 = expf(f32At(r3, j) - m3);
      setF32(r1, j, e1);
      setF32(r2, j, e2);
      setF32(r3, j, e3);
      s1 += e1;
      s2 += e2;
      s3 += e3;
    }
  }
  scaleRow(sc, n, <f32>1 / s0);
  if (R == 4) {
    scaleRow(r1, n, <f32>1 / s1);
    scaleRow(r2, n, <f32>1 / s2);
    scaleRow(r3, n, <f32>1 / s3);
  }
}

/** n floats at sc times inv (softmaxWeights' last step). */
// @ts-ignore: decorator
@inline function scaleRow(sc: usize, n: i32, inv: f32): void {
  const inv4 = f32x4.splat(inv);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const at = sc + (<usize>j << 2);
    v128.store(at, f32x4.mul(v128.load(at), inv4));
  }
  for (; j < n; j++) setF32(sc, j, f32At(sc, j) * inv);
}

// @ts-ignore: decorator
@inline function worse(s: f32, i: i32, ts: f32, ti: i32): bool {
  return s < ts || (s == ts && i > ti);
}

/**
 * Sparse top-k attention's selection: keeps the k largest of the n scores at
 * sc (equal scores: the earlier position wins) and sets the others to -inf,
 * so the softmax that follows runs over the kept ones only and the V loop
 * skips the rest (their weight is exactly 0). A min-heap of k (score, index)
 * pairs at heap (k f32 scores, then k i32 indices) holds the best so far; a
 * score enters only when it beats the heap's worst, so a pass costs O(n) plus
 * O(log k) per entry. Nothing to do when k is 0 or at least n.
 */
export function topkMask(sc: usize, n: i32, k: i32, heap: usize): void {
  if (k <= 0 || k >= n) return;
  const hs = heap, hi = heap + (<usize>k << 2);
  for (let j = 0; j < k; j++) { setF32(hs, j, f32At(sc, j)); store<i32>(hi + (<usize>j << 2), j); }
  for (let j = (k >> 1) - 1; j >= 0; j--) siftDown(hs, hi, k, j);
  for (let j = k; j < n; j++) {
    const s = f32At(sc, j);
    if (!(s > f32At(hs, 0))) continue; // a later equal score never beats an earlier one
    setF32(hs, 0, s);
    store<i32>(hi, j);
    siftDown(hs, hi, k, 0);
  }
  const ts = f32At(hs, 0), ti = load<i32>(hi);
  for (let j = 0; j < n; j++) {
    if (worse(f32At(sc, j), j, ts, ti)) setF32(sc, j, -Infinity);
  }
}

function siftDown(hs: usize, hi: usize, k: i32, j: i32): void {
  const s = f32At(hs, j), i = load<i32>(hi + (<usize>j << 2));
  for (;;) {
    let c = 2 * j + 1;
    if (c >= k) break;
    let cs = f32At(hs, c), ci = load<i32>(hi + (<usize>c << 2));
    if (c + 1 < k) {
      const rs = f32At(hs, c + 1), ri = load<i32>(hi + (<usize>(c + 1) << 2));
      if (worse(rs, ri, cs, ci)) { c++; cs = rs; ci = ri; }
    }
    if (!worse(cs, ci, s, i)) break;
    setF32(hs, j, cs);
    store<i32>(hi + (<usize>j << 2), ci);
    j = c;
  }
  setF32(hs, j, s);
  store<i32>(hi + (<usize>j << 2), i);
}
