// What the attention kernels add to plain softmax attention, shared by the
// f32, Q8_0 and u8_asym caches: ALiBi's linear bias on the scores and the
// sparse top-k selection over the cached positions. Inline helpers, no state.

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
