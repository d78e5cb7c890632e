// Kernels of the 8-bit KV caches. Q8_0: one position's K (or V) for one layer
// is a slot of kvDim int8 values followed by kvDim / qBlock f32 scales (one per
// block of qBlock values: 32, or one head when heads are shorter), so a page
// takes a bit over a quarter of the f32 cache's bytes. u8_asym: kvDim uint8
// values followed by an f32 scale and an f32 zero point per block (the seed's
// asymmetric quantization). Pointers are byte addresses in the imported
// memory; outputs come first.

import { hsum, madd } from "./math";
import { alibiSlope, softmaxWeights, topkMask } from "./attn-select";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

/** Four int8 at p as f32x4. */
// @ts-ignore: decorator
@inline function i8x4(p: usize): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(p))));
}

/**
 * Quantizes one row of n f32 (src) into a Q8_0 slot (dst): per block of
 * qBlock values, d = max|x| / 127 and q = round(x / d), as ggml's Q8_0.
 */
export function kv_store_q8(dst: usize, src: usize, n: i32, qBlock: i32): void {
  const scales = dst + <usize>n;
  for (let b = 0; b < n; b += qBlock) {
    let amax: f32 = 0;
    for (let i = 0; i < qBlock; i++) amax = max(amax, abs(f32At(src, b + i)));
    const d = amax / <f32>127;
    const id: f32 = d > 0 ? <f32>1 / d : 0;
    for (let i = 0; i < qBlock; i++) {
      const q = <i32>nearest(f32At(src, b + i) * id);
      store<i8>(dst + <usize>(b + i), <i8>min(127, max(-127, q)));
    }
    store<f32>(scales + (<usize>(b / qBlock) << 2), d);
  }
}

/** The Q8_0 slot back to n f32 (tests and debugging). */
export function kv_load_q8(out: usize, src: usize, n: i32, qBlock: i32): void {
  const scales = src + <usize>n;
  for (let i = 0; i < n; i++) setF32(out, i, <f32>load<i8>(src + <usize>i) * load<f32>(scales + (<usize>(i / qBlock) << 2)));
}

/**
 * The f32 attention kernel's twin over Q8_0 pages: heads [h0, h1) of one
 * query row attend positions [start, end) through the page table. A head's
 * dot product is the sum over its blocks of scale * (q . int8 block), and
 * its output accumulates scale * weight * int8 values, so nothing is
 * dequantized into memory. slopes, topK and sel as in `attention`.
 */
export function attention_q8(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32, qBlock: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize,
): void {
  attention8<i8>(out, q, att, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, qBlock,
    nHeads, nKvHeads, headDim, start, end, h0, h1, slopes, topK, sel);
}

// ---------------------------------------------------------------- u8_asym

/** Four uint8 at p as f32x4. */
// @ts-ignore: decorator
@inline function u8x4(p: usize): v128 {
  return f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p))));
}

/**
 * Quantizes one row of n f32 (src) into a u8_asym slot (dst): n uint8, then
 * per block of qBlock values an f32 scale and an f32 zero point, as the seed's
 * quantize_tensor does per tensor: scale = (max - min) / 255, zero_point =
 * -min / scale, q = clamp(round(x / scale + zero_point), 0, 255), so that
 * x ~ scale * (q - zero_point). A constant block (max = min) gets the scale
 * |min| / 255 (1 for zeros), which stores it exactly as q = 0.
 */
export function kv_store_u8(dst: usize, src: usize, n: i32, qBlock: i32): void {
  const params = dst + <usize>n;
  for (let b = 0; b < n; b += qBlock) {
    let lo: f32 = f32At(src, b), hi: f32 = lo;
    for (let i = 1; i < qBlock; i++) { const x = f32At(src, b + i); lo = min(lo, x); hi = max(hi, x); }
    let scale: f32 = (hi - lo) / <f32>255;
    if (!(scale > 0)) scale = lo != 0 ? abs(lo) / <f32>255 : 1;
    const zp: f32 = <f32>0 - lo / scale;
    for (let i = 0; i < qBlock; i++) {
      const qf = nearest<f32>(f32At(src, b + i) / scale + zp);
      store<u8>(dst + <usize>(b + i), <u8>(<i32>min<f32>(255, max<f32>(0, qf))));
    }
    const at = params + (<usize>(b / qBlock) << 3);
    store<f32>(at, scale);
    store<f32>(at, zp, 4);
  }
}

/** The u8_asym slot back to n f32: scale * (q - zero_point) (tests and debugging). */
export function kv_load_u8(out: usize, src: usize, n: i32, qBlock: i32): void {
  const params = src + <usize>n;
  for (let i = 0; i < n; i++) {
    const at = params + (<usize>(i / qBlock) << 3);
    setF32(out, i, load<f32>(at) * (<f32>load<u8>(src + <usize>i) - load<f32>(at, 4)));
  }
}

/**
 * attention_q8's twin over u8_asym pages. With k = scale * (u - zp) per
 * block, q . k = scale * (q . u - zp * sum(q)), both sums taken in one pass
 * over the block; the output gains (a scale) u - (a scale zp) per block. As in
 * attention_q8, nothing is dequantized into memory. slopes, topK and sel as
 * in `attention`.
 */
export function attention_u8(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32, qBlock: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize,
): void {
  attention8<u8>(out, q, att, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, qBlock,
    nHeads, nKvHeads, headDim, start, end, h0, h1, slopes, topK, sel);
}

/**
 * The one loop of attention_q8 and attention_u8. Q is i8 (a Q8_0 slot: one f32 scale per block) or u8
 * (u8_asym: an f32 scale and an f32 zero point per block); the compiler folds the isSigned<Q>() branches
 * and inlines the loop into each export, so each is the loop it had when the two were written out apart.
 */
// @ts-ignore: decorator
@inline function attention8<Q>(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32, qBlock: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize,
): void {
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>(1.0 / Math.sqrt(<f64>headDim));
  const len = end - start;
  const paramShift: usize = isSigned<Q>() ? 2 : 3; // per block: the scale (Q8_0), or scale and zero point (u8_asym)
  const slotBytes = <usize>(kvDim + (kvDim / qBlock) * (isSigned<Q>() ? 4 : 8));
  const qb4 = qBlock & ~3;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * headDim) << 2);
    const e0 = (h / kvMul) * headDim; // first element of this KV head in a slot
    const sc = att + ((<usize>h * len) << 2);
    const slope = alibiSlope(slopes, h);
    let mx: f32 = -Infinity;
    for (let p = start; p < end; p++) {
      const page = <usize>load<i32>(pageTable + (<usize>(p / pageSize) << 2));
      const slot = kvBase + page * <usize>pageBytes + <usize>kOff + <usize>(p % pageSize) * slotBytes;
      let s: f32 = 0;
      for (let c = 0; c < headDim; c += qBlock) {
        const k = slot + <usize>(e0 + c);
        const qc = qh + (<usize>c << 2);
        const at = slot + <usize>kvDim + (<usize>((e0 + c) / qBlock) << paramShift);
        if (isSigned<Q>()) {
          let acc = f32x4.splat(0);
          for (let i = 0; i < qb4; i += 4) acc = madd(v128.load(qc + (<usize>i << 2)), i8x4(k + <usize>i), acc);
          let dot = hsum(acc);
          for (let i = qb4; i < qBlock; i++) dot += f32At(qc, i) * <f32>load<i8>(k + <usize>i);
          s += dot * load<f32>(at);
        } else {
          // k = scale * (u - zp) per block: q . k = scale * (q . u - zp * sum(q)), both sums in one pass
          let acc = f32x4.splat(0), qs = f32x4.splat(0);
          for (let i = 0; i < qb4; i += 4) {
            const qv = v128.load(qc + (<usize>i << 2));
            acc = madd(qv, u8x4(k + <usize>i), acc);
            qs = f32x4.add(qs, qv);
          }
          let dot = hsum(acc), qsum = hsum(qs);
          for (let i = qb4; i < qBlock; i++) { dot += f32At(qc, i) * <f32>load<u8>(k + <usize>i); qsum += f32At(qc, i); }
          s += load<f32>(at) * (dot - load<f32>(at, 4) * qsum);
        }
      }
      s *= scale;
      if (slopes != 0) s += slope * <f32>(p - end + 1);
      setF32(sc, p - start, s);
      mx = max(mx, s);
    }
    if (topK > 0) topkMask(sc, len, topK, sel + ((<usize>h * topK) << 3));
    softmaxWeights(sc, len, mx);
    const oh = out + ((<usize>h * headDim) << 2);
    for (let i = 0; i < headDim; i++) setF32(oh, i, 0);
    for (let p = start; p < end; p++) {
      const a = f32At(sc, p - start);
      if (topK > 0 && a == 0) continue;
      const page = <usize>load<i32>(pageTable + (<usize>(p / pageSize) << 2));
      const slot = kvBase + page * <usize>pageBytes + <usize>vOff + <usize>(p % pageSize) * slotBytes;
      for (let c = 0; c < headDim; c += qBlock) {
        const v = slot + <usize>(e0 + c);
        const at = slot + <usize>kvDim + (<usize>((e0 + c) / qBlock) << paramShift);
        const oc = oh + (<usize>c << 2);
        if (isSigned<Q>()) {
          const ac = a * load<f32>(at);
          const a4 = f32x4.splat(ac);
          for (let i = 0; i < qb4; i += 4) {
            const o = <usize>i << 2;
            v128.store(oc + o, madd(a4, i8x4(v + <usize>i), v128.load(oc + o)));
          }
          for (let i = qb4; i < qBlock; i++) setF32(oc, i, f32At(oc, i) + ac * <f32>load<i8>(v + <usize>i));
        } else {
          // the output gains (a scale) u - (a scale zp) per block
          const as = a * load<f32>(at);
          const off = -as * load<f32>(at, 4);
          const a4 = f32x4.splat(as), off4 = f32x4.splat(off);
          for (let i = 0; i < qb4; i += 4) {
            const o = <usize>i << 2;
            v128.store(oc + o, f32x4.add(madd(a4, u8x4(v + <usize>i), v128.load(oc + o)), off4));
          }
          for (let i = qb4; i < qBlock; i++) setF32(oc, i, f32At(oc, i) + as * <f32>load<u8>(v + <usize>i) + off);
        }
      }
    }
  }
}
