// Kernels of the F16 KV cache, llama.cpp's default cache type. One position's
// K (or V) for one layer is a slot of kvDim IEEE halves, half the bytes of the
// f32 cache. Attention follows ggml's CPU flash attention
// (ggml_compute_forward_flash_attn_ext_f16_one_chunk, which llama.cpp runs
// whenever flash attention resolves to enabled, as "auto" does on the CPU)
// operation for operation, so logits match llama.cpp's to the last bits:
// quantized weights quantize their activations, and a value that lands on
// the other side of a rounding step there moves every later logit.
// Pointers are byte addresses in the imported memory; outputs come first.

import { expfGlibc, f16ToF32, f16x8Lo, f16x8Hi, roundToF16, roundToF16x4 } from "./math";
import { fma4, fmaf, ggmlExpf4, reduce16 } from "./fused";
import { alibiSlope } from "./attn-select";
import { attendPaged } from "./attn-paged";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

/** f32 to IEEE half bits, round to nearest even (F16C's vcvtps2ph with rounding mode 0). */
// @ts-ignore: decorator
@inline function f32ToF16Bits(x: f32): u32 {
  const bits = reinterpret<u32>(x);
  const sign = (bits >> 16) & 0x8000;
  const a = bits & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00 | ((a >> 13) & 0x3ff); // NaN stays NaN
  // roundToF16 rounds in the f32 domain (overflow to inf, subnormals on the 2^-24 grid); then re-encode exactly
  const r = reinterpret<u32>(roundToF16(reinterpret<f32>(a)));
  if (r >= 0x7f800000) return sign | 0x7c00;
  if (r < 0x38800000) return sign | <u32>(reinterpret<f32>(r) * <f32>16777216.0); // subnormal: value / 2^-24
  return sign | (((r >> 23) - 112) << 10) | ((r >> 13) & 0x3ff);
}

/**
 * f32ToF16Bits on four lanes (the half in each i32 lane's low 16 bits), branch-free, its cases chosen by masks.
 * Normal: roundToF16's rounding, re-encoded in the same step: ((a + 0xfff + lsb) >> 13) - (112 << 10), capped at
 * 0x7c00 (past 65504, and inf). Subnormal: a + 0.5 rounds a to the 2^-24 grid as roundToF16 does, and as 0.5 + m
 * 2^-24 its bits are 0x3F000000 + m, m the half's bits. NaN: 0x7e00 with the top mantissa bits.
 */
// @ts-ignore: decorator
@inline function f32x4ToF16Bits(x: v128): v128 {
  const sign = i32x4.shr_u(v128.and(x, i32x4.splat(0x80000000)), 16);
  const a = v128.and(x, i32x4.splat(0x7fffffff));
  const m = i32x4.shr_u(a, 13);
  const lsb = v128.and(m, i32x4.splat(1));
  const normal = i32x4.min_s(i32x4.sub(i32x4.shr_u(i32x4.add(a, i32x4.add(lsb, i32x4.splat(0xfff))), 13), i32x4.splat(112 << 10)), i32x4.splat(0x7c00));
  const sub = i32x4.sub(f32x4.add(a, f32x4.splat(0.5)), i32x4.splat(0x3F000000));
  let h = v128.bitselect(sub, normal, i32x4.lt_s(a, i32x4.splat(0x38800000)));
  h = v128.bitselect(v128.or(i32x4.splat(0x7e00), v128.and(m, i32x4.splat(0x3ff))), h, i32x4.gt_s(a, i32x4.splat(0x7f800000)));
  return v128.or(h, sign);
}

/**
 * Rounds one row of n f32 (src) to IEEE halves (dst): llama.cpp's ggml_set_rows into an F16 cache. Eight at a
 * time (f32x4ToF16Bits, the scalar form's bits lane for lane), the tail one by one.
 */
export function kv_store_f16(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const s = src + (<usize>i << 2);
    // every lane is <= 0xffff, so the unsigned saturating narrow keeps it
    v128.store(dst + (<usize>i << 1), i16x8.narrow_i32x4_u(f32x4ToF16Bits(v128.load(s)), f32x4ToF16Bits(v128.load(s, 16))));
  }
  for (; i < n; i++) store<u16>(dst + (<usize>i << 1), <u16>f32ToF16Bits(f32At(src, i)));
}

/** An F16 slot back to n f32 (tests and debugging). */
export function kv_load_f16(out: usize, src: usize, n: i32): void {
  for (let i = 0; i < n; i++) setF32(out, i, f16ToF32(load<u16>(src + (<usize>i << 1))));
}

/**
 * ggml_vec_dot_f16 as the AVX-512 build of ggml computes it (the CPU variant
 * llama.cpp loads on AVX-512 machines such as the one its references come
 * from): 64 values per step in four accumulators of sixteen f32 lanes,
 * products exact in f32 (half times half, so each FMA is a plain add), the
 * accumulators folded (acc0+acc2, acc1+acc3, then the two) and the sixteen
 * lanes reduced as GCC's _mm512_reduce_add_ps does (upper 256 bits plus
 * lower, upper 128 plus lower, lanes 2,3 onto 0,1, then lane 1 onto 0); the
 * n % 64 leftover products (all of them for head dims under 64) are added in
 * f64, and the sum is rounded to f32 once. q holds halves as f32, k raw halves.
 */
// @ts-ignore: decorator
@inline function dotF16(q: usize, k: usize, n: i32): f32 {
  const np = n & ~63;
  let sum: f64 = 0;
  if (np > 0) {
    // accumulator j, lanes 4m..4m+3: ajm
    let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
    let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
    let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a22 = f32x4.splat(0), a23 = f32x4.splat(0);
    let a30 = f32x4.splat(0), a31 = f32x4.splat(0), a32 = f32x4.splat(0), a33 = f32x4.splat(0);
    for (let i = 0; i < np; i += 64) {
      const qi = q + (<usize>i << 2), ki = k + (<usize>i << 1);
      let h = v128.load(ki);
      a00 = f32x4.add(a00, f32x4.mul(v128.load(qi), f16x8Lo(h)));
      a01 = f32x4.add(a01, f32x4.mul(v128.load(qi, 16), f16x8Hi(h)));
      h = v128.load(ki, 16);
      a02 = f32x4.add(a02, f32x4.mul(v128.load(qi, 32), f16x8Lo(h)));
      a03 = f32x4.add(a03, f32x4.mul(v128.load(qi, 48), f16x8Hi(h)));
      h = v128.load(ki, 32);
      a10 = f32x4.add(a10, f32x4.mul(v128.load(qi, 64), f16x8Lo(h)));
      a11 = f32x4.add(a11, f32x4.mul(v128.load(qi, 80), f16x8Hi(h)));
      h = v128.load(ki, 48);
      a12 = f32x4.add(a12, f32x4.mul(v128.load(qi, 96), f16x8Lo(h)));
      a13 = f32x4.add(a13, f32x4.mul(v128.load(qi, 112), f16x8Hi(h)));
      h = v128.load(ki, 64);
      a20 = f32x4.add(a20, f32x4.mul(v128.load(qi, 128), f16x8Lo(h)));
      a21 = f32x4.add(a21, f32x4.mul(v128.load(qi, 144), f16x8Hi(h)));
      h = v128.load(ki, 80);
      a22 = f32x4.add(a22, f32x4.mul(v128.load(qi, 160), f16x8Lo(h)));
      a23 = f32x4.add(a23, f32x4.mul(v128.load(qi, 176), f16x8Hi(h)));
      h = v128.load(ki, 96);
      a30 = f32x4.add(a30, f32x4.mul(v128.load(qi, 192), f16x8Lo(h)));
      a31 = f32x4.add(a31, f32x4.mul(v128.load(qi, 208), f16x8Hi(h)));
      h = v128.load(ki, 112);
      a32 = f32x4.add(a32, f32x4.mul(v128.load(qi, 224), f16x8Lo(h)));
      a33 = f32x4.add(a33, f32x4.mul(v128.load(qi, 240), f16x8Hi(h)));
    }
    // x0 = (acc0 + acc2) + (acc1 + acc3), per lane
    const y0 = f32x4.add(f32x4.add(a00, a20), f32x4.add(a10, a30));
    const y1 = f32x4.add(f32x4.add(a01, a21), f32x4.add(a11, a31));
    const y2 = f32x4.add(f32x4.add(a02, a22), f32x4.add(a12, a32));
    const y3 = f32x4.add(f32x4.add(a03, a23), f32x4.add(a13, a33));
    sum = <f64>reduce16(y0, y1, y2, y3);
  }
  for (let i = np; i < n; i++) sum += <f64>(f32At(q, i) * f16ToF32(load<u16>(k + (<usize>i << 1))));
  return <f32>sum;
}

/** f32(v * s + y) on four lanes through f64: v (a half) times s (an f32) is exact there, so this is the fma. */
// @ts-ignore: decorator
@inline function fmaHalf(v: v128, s: v128, y: v128): v128 {
  const lo = f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(v), s), f64x2.promote_low_f32x4(y));
  const hi = f64x2.add(f64x2.mul(f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 2, 3)), s), f64x2.promote_low_f32x4(i32x4.shuffle(y, y, 2, 3, 2, 3)));
  return i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/** faChunk's result: the chunk's running max M (high word) and sum S (low word), as f32 bits. */
// @ts-ignore: decorator
@inline function chunkMax(r: u64): f32 { return reinterpret<f32>(<u32>(r >> 32)); }
// @ts-ignore: decorator
@inline function chunkSum(r: u64): f32 { return reinterpret<f32>(<u32>r); }

/** Rounds head h's q to half in place (ggml's q_to_vec_dot into the F16 K type). */
// @ts-ignore: decorator
@inline function roundQ(qh: usize, headDim: i32): void {
  const dv = headDim & ~7;
  for (let i = 0; i < dv; i += 4) v128.store(qh + (<usize>i << 2), roundToF16x4(v128.load(qh + (<usize>i << 2))));
  for (let i = dv; i < headDim; i++) setF32(qh, i, roundToF16(f32At(qh, i)));
}

/**
 * ggml_compute_forward_flash_attn_ext_f16_one_chunk's loop for one head over
 * positions [p0, p1) (positions outside are masked, -inf, and skipped there
 * before any arithmetic): the running half vector VKQ is left in oh (as f32
 * values that are halves), unnormalized; returns M and S (chunkMax, chunkSum).
 */
// @ts-ignore: decorator
@inline function faChunk(
  qh: usize, oh: usize, kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32,
  slotBytes: usize, kvHeadOff: usize, headDim: i32, scale: f32, p0: i32, p1: i32, slope: f32, qPos: i32,
): u64 {
  const dv = headDim & ~7; // eight halves per load in the SIMD loops, the rest one by one
  memory.fill(oh, 0, <usize>headDim << 2);
  let M: f32 = -Infinity;
  let S: f32 = 0;
  for (let p = p0; p < p1; p++) {
    const slot = kvBase + <usize>load<i32>(pageTable + (<usize>(p / pageSize) << 2)) * <usize>pageBytes + <usize>(p % pageSize) * slotBytes + kvHeadOff;
    let s = dotF16(qh, slot + <usize>kOff, headDim) * scale;
    if (slope != 0) s += slope * <f32>(p - qPos); // llama.cpp: s = s*scale; s += slope*mask, the mask -|i - j|
    let ms: f32 = 1;
    let vs: f32 = 1;
    if (s > M) {
      ms = expfGlibc(M - s);
      M = s;
      const ms4 = f32x4.splat(ms);
      for (let i = 0; i < dv; i += 4) v128.store(oh + (<usize>i << 2), roundToF16x4(f32x4.mul(v128.load(oh + (<usize>i << 2)), ms4)));
      for (let i = dv; i < headDim; i++) setF32(oh, i, roundToF16(f32At(oh, i) * ms));
    } else {
      vs = expfGlibc(s - M);
    }
    // y = half(fma(v, vs, y)): the product of a half and an f32 is exact in f64, so one f64 add then f32 rounding is the fma
    const v = slot + <usize>vOff;
    const vs64 = <f64>vs;
    const vs2 = f64x2.splat(vs64);
    for (let i = 0; i < dv; i += 8) {
      const h8 = v128.load(v + (<usize>i << 1));
      const o = oh + (<usize>i << 2);
      v128.store(o, roundToF16x4(fmaHalf(f16x8Lo(h8), vs2, v128.load(o))));
      v128.store(o, roundToF16x4(fmaHalf(f16x8Hi(h8), vs2, v128.load(o, 16))), 16);
    }
    for (let i = dv; i < headDim; i++) {
      const y = <f32>(<f64>f16ToF32(load<u16>(v + (<usize>i << 1))) * vs64 + <f64>f32At(oh, i));
      setF32(oh, i, roundToF16(y));
    }
    S = S * ms + vs; // two roundings: llama.cpp's build multiplies, then adds (no contraction here)
  }
  return (<u64>reinterpret<u32>(M) << 32) | <u64>reinterpret<u32>(S);
}

/**
 * one_chunk over [start, end) for heads [h0, h1), then the division by S;
 * `split` adds the reduce of llama.cpp's split-KV path on one thread, which
 * folds the single chunk into zeros with so = expf(-inf) = 0 and sc = expf(0)
 * = 1: VKQ = fma(0, 0, VKQc * 1) = VKQc + 0 and S = Sc, so one_chunk's result
 * except that -0 outputs become +0 (and an empty chunk leaves zeros).
 */
// @ts-ignore: decorator
@inline function oneChunkHeads(
  split: bool, out: usize, q: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32, slopes: usize,
): void {
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>1 / sqrt<f32>(<f32>headDim); // llama.cpp's kq_scale = 1.0f/sqrtf(float(n_embd_head))
  const slotBytes = <usize>kvDim << 1;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * headDim) << 2);
    roundQ(qh, headDim);
    const oh = out + ((<usize>h * headDim) << 2);
    const S = chunkSum(faChunk(qh, oh, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, slotBytes, (<usize>(h / kvMul) * headDim) << 1, headDim, scale, start, end, alibiSlope(slopes, h), end - 1));
    if (split) {
      if (S == 0) { memory.fill(oh, 0, <usize>headDim << 2); continue; } // skipped chunk: the zeroed VKQ, unscaled
      const inv: f32 = <f32>1 / S;
      for (let i = 0; i < headDim; i++) setF32(oh, i, (f32At(oh, i) + <f32>0) * inv);
    } else {
      const inv: f32 = S == 0 ? 0 : <f32>1 / S;
      for (let i = 0; i < headDim; i++) setF32(oh, i, f32At(oh, i) * inv);
    }
  }
}

/**
 * Flash attention over F16 pages: heads [h0, h1) of one query row attend
 * positions [start, end) through the page table (layout as in `attention`,
 * slots of kvDim halves). As ggml does it: q is rounded to half (in place:
 * the forward pass does not read q again); each score is the half dot
 * product times 1/sqrt(headDim); the softmax is online, one position at a
 * time in order, with the running output kept in half precision (scaled by
 * expf(Mold - M) on a new maximum, then y = half(fma(v, expf(s - M), y)))
 * and the running sum in f32; the output is that half vector times 1/sum.
 * The running output lives in `out` (as f32 values that are halves). The
 * arguments are `attention`'s, so the thread pool splits both alike; the
 * score scratch (_att) goes unused: scores are consumed as they come.
 */
export function attention_f16(
  out: usize, q: usize, _att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, _topK: i32, _sel: usize,
): void {
  oneChunkHeads(false, out, q, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, start, end, h0, h1, slopes);
}

/**
 * The F16 cache in default mode (without ggmlOrder): `attention`'s two passes
 * (attendPaged) over slots of kvDim halves, each widened to f32 as it is
 * loaded, q kept in f32, the scores, weights and output in f32: what the f32
 * cache computes on the halves the cache holds, at half its memory traffic,
 * instead of llama.cpp's online softmax with its half-precision running output
 * (attention_f16, which --ggml-order keeps for llama.cpp's bits). One kernel
 * for every row, batch and position, heads split as `attention`'s: batch and
 * thread-count invariant. att: the scores' scratch, as in `attention`.
 */
export function attention_f16_twopass(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize,
): void {
  attendPaged<u16>(out, q, att, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, start, end, h0, h1, slopes, topK, sel);
}

/**
 * ggml's split-KV flash attention (ggml_compute_forward_flash_attn_ext_f16
 * with use_split_kv_path: one query row, llama.cpp's padded n_kv >= 512) as
 * llama.cpp runs it on nChunks threads: the padded KV range [0, nKv) is cut
 * in chunks of ceil(nKv / nChunks) positions, each chunk is one_chunk's loop
 * (faChunk, over the chunk's unmasked positions [start, end)) stopped before
 * the division, and ggml_flash_attn_ext_reduce_partials folds the chunks in
 * order: chunks with S = 0 (all masked) are skipped; M = fmaxf(M, Mc),
 * so = expf(Mold - M), sc = expf(Mc - M) (glibc's expf), VKQ = fma(VKQ, so,
 * VKQc * sc) and S = fma(S, so, Sc * sc) (GCC's contraction, checked in the
 * zen4 build's disassembly), then VKQ * (1 / S). scratch holds headDim f32
 * (the folded VKQ); out and q as in attention_f16.
 */
export function attention_f16_chunks(
  out: usize, q: usize, scratch: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32, nKv: i32, nChunks: i32, slopes: usize,
): void {
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>1 / sqrt<f32>(<f32>headDim);
  const slotBytes = <usize>kvDim << 1;
  const chunk = (nKv + nChunks - 1) / nChunks;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * headDim) << 2);
    roundQ(qh, headDim);
    const oh = out + ((<usize>h * headDim) << 2);
    const kvHeadOff = (<usize>(h / kvMul) * headDim) << 1;
    memory.fill(scratch, 0, <usize>headDim << 2);
    let M: f32 = -Infinity;
    let S: f32 = 0;
    for (let c = 0; c < nChunks; c++) {
      const c0 = c * chunk;
      if (c0 >= nKv) continue;
      const p0 = max(c0, start), p1 = min(min(c0 + chunk, nKv), end);
      if (p0 >= p1) continue; // every position masked: M = -inf, S = 0, skipped by the reduce
      const r = faChunk(qh, oh, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, slotBytes, kvHeadOff, headDim, scale, p0, p1, alibiSlope(slopes, h), end - 1);
      const Mc = chunkMax(r), Sc = chunkSum(r);
      if (Sc == 0) continue;
      const Mn = max(M, Mc);
      const so = expfGlibc(M - Mn), sc = expfGlibc(Mc - Mn);
      for (let i = 0; i < headDim; i++) setF32(scratch, i, fmaf(f32At(scratch, i), so, f32At(oh, i) * sc));
      S = fmaf(S, so, Sc * sc);
      M = Mn;
    }
    const inv: f32 = S != 0 ? <f32>1 / S : 1;
    for (let i = 0; i < headDim; i++) setF32(oh, i, f32At(scratch, i) * inv);
  }
}

/**
 * attention_f16_chunks for one chunk (llama.cpp on one thread), with
 * `attention`'s arguments so the thread pool can run it, and no scratch
 * (see oneChunkHeads for what the reduce of one chunk does).
 */
export function attention_f16_split(
  out: usize, q: usize, _att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, _topK: i32, _sel: usize,
): void {
  oneChunkHeads(true, out, q, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, start, end, h0, h1, slopes);
}

/** Lanes [0, n) of v (n in 1..4) to p: the tail of a group of four whose other lanes lie outside the tile. */
// @ts-ignore: decorator
@inline function storeLanes(p: usize, v: v128, n: i32): void {
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
  if (n > 3) store<f32>(p, f32x4.extract_lane(v, 3), 12);
}

/**
 * Softmax weights of the tile positions P0..P0+3 (one group of four lanes of
 * a sixteen-lane block): ggml_v_expf(s - M) where P lies in [lo, hi), else 0
 * (ggml's -inf mask and padding: ggml_v_expf(-inf) is 0). The scores at
 * sc[P - lo] are replaced by the weights, which the V step reads.
 */
// @ts-ignore: decorator
@inline function tileWeights(sc: usize, P0: i32, lo: i32, hi: i32, M4: v128): v128 {
  if (P0 + 4 <= lo || P0 >= hi) return f32x4.splat(0);
  if (P0 >= lo && P0 + 4 <= hi) {
    const at = sc + (<usize>(P0 - lo) << 2);
    const e = ggmlExpf4(f32x4.sub(v128.load(at), M4));
    v128.store(at, e);
    return e;
  }
  // a group cut by lo or hi: live lanes from the scores, the others -inf (weight 0)
  let s = f32x4.splat(-Infinity);
  if (P0 >= lo && P0 < hi) s = f32x4.replace_lane(s, 0, f32At(sc, P0 - lo));
  if (P0 + 1 >= lo && P0 + 1 < hi) s = f32x4.replace_lane(s, 1, f32At(sc, P0 + 1 - lo));
  if (P0 + 2 >= lo && P0 + 2 < hi) s = f32x4.replace_lane(s, 2, f32At(sc, P0 + 2 - lo));
  if (P0 + 3 >= lo && P0 + 3 < hi) s = f32x4.replace_lane(s, 3, f32At(sc, P0 + 3 - lo));
  let e = ggmlExpf4(f32x4.sub(s, M4));
  e = v128.and(e, f32x4.ne(s, f32x4.splat(-Infinity))); // exactly 0 off the tile, as ggml_v_expf gives
  if (P0 >= lo && P0 < hi) setF32(sc, P0 - lo, f32x4.extract_lane(e, 0));
  if (P0 + 1 >= lo && P0 + 1 < hi) setF32(sc, P0 + 1 - lo, f32x4.extract_lane(e, 1));
  if (P0 + 2 >= lo && P0 + 2 < hi) setF32(sc, P0 + 2 - lo, f32x4.extract_lane(e, 2));
  if (P0 + 3 >= lo && P0 + 3 < hi) setF32(sc, P0 + 3 - lo, f32x4.extract_lane(e, 3));
  return e;
}

/**
 * ggml's tiled flash attention (ggml_compute_forward_flash_attn_ext_tiled),
 * which llama.cpp's CPU backend runs instead of the one-chunk kernel above
 * when the ubatch has at least GGML_FA_TILE_Q = 64 query rows and the head
 * dim is a multiple of 16 (GGML_F32_EPR on AVX-512): the caller picks it then.
 * Same arguments as `attention_f16`; q is read as f32 and left alone.
 *
 * ggml runs 64 query rows against KV tiles of 64 cells (tiles from cell 0;
 * here from position 0, the cell of that position in llama.cpp's cache for a
 * sequence that starts at cell 0). Every step is per query row, so one row at
 * a time gives the same bits, whatever rows share its Q tile: a tile that ggml
 * skips for the whole Q tile (all -inf) or for one row (its max is -inf) adds
 * nothing, and masked or padded cells add weight 0, so fma(0, v, y) leaves y.
 * Per tile, for the live positions [lo, hi) of [start, end):
 *  - score = the f32 GEMM's FMA chain over the head dim, from 0, of q (f32)
 *    times k (half to f32), then times 1/sqrt(headDim) (the mask adds 0);
 *  - tile max; M' = max(M, tile max); on M' > M the f32 output row and the
 *    f32 sum are scaled by expf(M - M') (glibc expf; plain multiplies);
 *  - ggml_vec_soft_max_f32 on the 64 lanes: w = ggml_v_expf(s - M'), each
 *    block of sixteen summed as GCC's _mm512_reduce_add_ps, the four block
 *    sums added in f64 (ggml_float), and S = f32(f64(S) + that);
 *  - the output row y += w v as the GEMM's FMA chain over the tile's cells
 *    in order (v half to f32).
 * Then y * (1/S) (0 when S is 0). The scores and weights of one tile (at
 * most min(64, end - start) of them) use the head's part of the scratch
 * (att + h * (end - start)), as `attention` does.
 */
export function attention_f16_tiled(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, _topK: i32, _sel: usize,
): void {
  const kvMul = nHeads / nKvHeads;
  const scale = <f32>1 / sqrt<f32>(<f32>headDim);
  const scale4 = f32x4.splat(scale);
  const slotBytes = <usize>kvDim << 1;
  const len = end - start;
  const d8 = headDim & ~7;
  for (let h = h0; h < h1; h++) {
    const qh = q + ((<usize>h * headDim) << 2);
    const kvHeadOff = (<usize>(h / kvMul) * headDim) << 1;
    const oh = out + ((<usize>h * headDim) << 2);
    const sc = att + ((<usize>h * len) << 2);
    const slope = alibiSlope(slopes, h);
    memory.fill(oh, 0, <usize>headDim << 2);
    let M: f32 = -Infinity;
    let S: f32 = 0;
    for (let tb = start & ~63; tb < end; tb += 64) {
      const lo = max(start, tb), hi = min(end, tb + 64), n = hi - lo;
      // scores, four positions at a time (lanes = positions; past hi the last one again, not stored)
      for (let j = 0; j < n; j += 4) {
        const p0 = lo + j, p1 = min(p0 + 1, hi - 1), p2 = min(p0 + 2, hi - 1), p3 = min(p0 + 3, hi - 1);
        const k0 = kvBase + <usize>load<i32>(pageTable + (<usize>(p0 / pageSize) << 2)) * <usize>pageBytes + <usize>(p0 % pageSize) * slotBytes + kvHeadOff + <usize>kOff;
        const k1 = kvBase + <usize>load<i32>(pageTable + (<usize>(p1 / pageSize) << 2)) * <usize>pageBytes + <usize>(p1 % pageSize) * slotBytes + kvHeadOff + <usize>kOff;
        const k2 = kvBase + <usize>load<i32>(pageTable + (<usize>(p2 / pageSize) << 2)) * <usize>pageBytes + <usize>(p2 % pageSize) * slotBytes + kvHeadOff + <usize>kOff;
        const k3 = kvBase + <usize>load<i32>(pageTable + (<usize>(p3 / pageSize) << 2)) * <usize>pageBytes + <usize>(p3 % pageSize) * slotBytes + kvHeadOff + <usize>kOff;
        let acc = f32x4.splat(0);
        for (let d = 0; d < d8; d += 8) {
          const h0v = v128.load(k0 + (<usize>d << 1)), h1v = v128.load(k1 + (<usize>d << 1));
          const h2v = v128.load(k2 + (<usize>d << 1)), h3v = v128.load(k3 + (<usize>d << 1));
          const qd = qh + (<usize>d << 2);
          // dims d..d+3, then d+4..d+7: rows are positions, transposed to one vector per dim
          for (let half = 0; half < 2; half++) {
            const r0 = half ? f16x8Hi(h0v) : f16x8Lo(h0v), r1 = half ? f16x8Hi(h1v) : f16x8Lo(h1v);
            const r2 = half ? f16x8Hi(h2v) : f16x8Lo(h2v), r3 = half ? f16x8Hi(h3v) : f16x8Lo(h3v);
            const t0 = i32x4.shuffle(r0, r1, 0, 4, 1, 5), t1 = i32x4.shuffle(r2, r3, 0, 4, 1, 5);
            const t2 = i32x4.shuffle(r0, r1, 2, 6, 3, 7), t3 = i32x4.shuffle(r2, r3, 2, 6, 3, 7);
            const qo = qd + (<usize>half << 4);
            acc = fma4(f32x4.splat(load<f32>(qo)), i32x4.shuffle(t0, t1, 0, 1, 4, 5), acc);
            acc = fma4(f32x4.splat(load<f32>(qo, 4)), i32x4.shuffle(t0, t1, 2, 3, 6, 7), acc);
            acc = fma4(f32x4.splat(load<f32>(qo, 8)), i32x4.shuffle(t2, t3, 0, 1, 4, 5), acc);
            acc = fma4(f32x4.splat(load<f32>(qo, 12)), i32x4.shuffle(t2, t3, 2, 3, 6, 7), acc);
          }
        }
        for (let d = d8; d < headDim; d++) {
          let kd = f32x4.splat(f16ToF32(load<u16>(k0 + (<usize>d << 1))));
          kd = f32x4.replace_lane(kd, 1, f16ToF32(load<u16>(k1 + (<usize>d << 1))));
          kd = f32x4.replace_lane(kd, 2, f16ToF32(load<u16>(k2 + (<usize>d << 1))));
          kd = f32x4.replace_lane(kd, 3, f16ToF32(load<u16>(k3 + (<usize>d << 1))));
          acc = fma4(f32x4.splat(f32At(qh, d)), kd, acc);
        }
        let s4 = f32x4.mul(acc, scale4);
        if (slope != 0) {
          // ALiBi: + slope * (p - own position) per lane, as the mask adds it after the scale
          const d4 = f32x4.convert_i32x4_s(i32x4.add(i32x4.splat(p0 - end + 1), i32x4(0, 1, 2, 3)));
          s4 = f32x4.add(s4, f32x4.mul(f32x4.splat(slope), d4));
        }
        if (j + 4 <= n) v128.store(sc + (<usize>j << 2), s4);
        else storeLanes(sc + (<usize>j << 2), s4, n - j);
      }
      // ggml_vec_max_f32 over the row (the -inf lanes never win), then fmaxf with the running max
      let tmax: f32 = -Infinity;
      for (let j = 0; j < n; j++) { const s = f32At(sc, j); tmax = tmax > s ? tmax : s; }
      if (tmax == -Infinity) continue;
      const Mnew: f32 = M > tmax ? M : tmax;
      if (Mnew > M) {
        const ms = expfGlibc(M - Mnew);
        const ms4 = f32x4.splat(ms);
        for (let i = 0; i < d8; i += 4) v128.store(oh + (<usize>i << 2), f32x4.mul(v128.load(oh + (<usize>i << 2)), ms4));
        for (let i = d8; i < headDim; i++) setF32(oh, i, f32At(oh, i) * ms);
        S *= ms;
      }
      M = Mnew;
      const M4 = f32x4.splat(M);
      let sum: f64 = 0;
      for (let b = tb; b < tb + 64; b += 16) {
        if (b + 16 <= lo || b >= hi) continue; // all sixteen weights 0: the block adds 0
        const e0 = tileWeights(sc, b, lo, hi, M4), e1 = tileWeights(sc, b + 4, lo, hi, M4);
        const e2 = tileWeights(sc, b + 8, lo, hi, M4), e3 = tileWeights(sc, b + 12, lo, hi, M4);
        sum += <f64>reduce16(e0, e1, e2, e3);
      }
      S = <f32>(<f64>S + sum);
      // y = fma(w, v, y) per cell in order; a weight of 0 leaves y as it is
      for (let j = 0; j < n; j++) {
        const w = f32At(sc, j);
        if (w == 0) continue;
        const p = lo + j;
        const v = kvBase + <usize>load<i32>(pageTable + (<usize>(p / pageSize) << 2)) * <usize>pageBytes + <usize>(p % pageSize) * slotBytes + kvHeadOff + <usize>vOff;
        const w2 = f64x2.splat(<f64>w);
        for (let i = 0; i < d8; i += 8) {
          const h8 = v128.load(v + (<usize>i << 1));
          const o = oh + (<usize>i << 2);
          v128.store(o, fmaHalf(f16x8Lo(h8), w2, v128.load(o)));
          v128.store(o, fmaHalf(f16x8Hi(h8), w2, v128.load(o, 16)), 16);
        }
        for (let i = d8; i < headDim; i++) {
          setF32(oh, i, <f32>(<f64>f16ToF32(load<u16>(v + (<usize>i << 1))) * <f64>w + <f64>f32At(oh, i)));
        }
      }
    }
    const inv: f32 = S == 0 ? 0 : <f32>1 / S;
    const inv4 = f32x4.splat(inv);
    for (let i = 0; i < d8; i += 4) v128.store(oh + (<usize>i << 2), f32x4.mul(v128.load(oh + (<usize>i << 2)), inv4));
    for (let i = d8; i < headDim; i++) setF32(oh, i, f32At(oh, i) * inv);
  }
}
