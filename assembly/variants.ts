// The attention variants of the cheat sheet (../shared/seeds/003_5f010b61a428b23c.txt) that src/ops.ts
// exposes as operators: AFT (full, local, simple) and its causal / recurrent forms, dense and windowed
// softmax attention (the Longformer band, and the attention step of Linformer), Linformer's projection
// of K and V along the sequence, sparse top-k attention, and per-tensor asymmetric u8 quantization.
// Same conventions as f32.ts: byte addresses into the imported memory, outputs first, scratch passed
// in by the caller, no allocation, no globals. Rows are row-major f32; D is the feature width.

import { hsum, madd, expf, expf4 } from "./math";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }
// @ts-ignore: decorator
@inline function row(base: usize, r: i32, width: i32): usize { return base + ((<usize>r * <usize>width) << 2); }

/** q . k over n floats. */
// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, n: i32): f32 {
  const n4 = n & ~3;
  let acc = f32x4.splat(0);
  for (let i = 0; i < n4; i += 4) acc = madd(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2)), acc);
  let s = hsum(acc);
  for (let i = n4; i < n; i++) s += f32At(a, i) * f32At(b, i);
  return s;
}

/** acc (n) += a * x (n). */
// @ts-ignore: decorator
@inline function axpy(acc: usize, a: f32, x: usize, n: i32): void {
  const n4 = n & ~3;
  const a4 = f32x4.splat(a);
  for (let i = 0; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(acc + o, madd(a4, v128.load(x + o), v128.load(acc + o)));
  }
  for (let i = n4; i < n; i++) setF32(acc, i, f32At(acc, i) + a * f32At(x, i));
}

// @ts-ignore: decorator
@inline function zero(p: usize, n: i32): void {
  memory.fill(p, 0, <usize>n << 2);
}

/** out (n) = sigmoid(q) * num / den, the AFT output gate; num may alias out. */
// @ts-ignore: decorator
@inline function gate(out: usize, q: usize, num: usize, den: usize, n: i32): void {
  const n4 = n & ~3;
  const one = f32x4.splat(1);
  for (let i = 0; i < n4; i += 4) {
    const o = <usize>i << 2;
    // 1 / (1 + e^-q): expf4 saturates at e^88.5, so a very negative q gives a tiny positive gate, not 0
    const sig = f32x4.div(one, f32x4.add(one, expf4(f32x4.neg(v128.load(q + o)))));
    v128.store(out + o, f32x4.mul(sig, f32x4.div(v128.load(num + o), v128.load(den + o))));
  }
  for (let i = n4; i < n; i++) {
    const sig = <f32>1 / (<f32>1 + expf(-f32At(q, i)));
    setF32(out, i, sig * (f32At(num, i) / f32At(den, i)));
  }
}

// ---------------------------------------------------------------- AFT (full, local)

/**
 * The seed's AFT key weights, per position: ek (T,D) = exp(k - max over the channels of k's row),
 * ekv = ek * v. (The seed subtracts each position's maximum over its channels, not over the sequence;
 * that shift does not cancel between positions, so it is part of the operator's definition.)
 */
export function aft_keys(ek: usize, ekv: usize, k: usize, v: usize, T: i32, D: i32): void {
  const d4 = D & ~3;
  for (let t = 0; t < T; t++) {
    const kr = row(k, t, D), vr = row(v, t, D), er = row(ek, t, D), evr = row(ekv, t, D);
    let mx: f32 = -Infinity;
    for (let i = 0; i < D; i++) mx = max(mx, f32At(kr, i));
    const m4 = f32x4.splat(mx);
    for (let i = 0; i < d4; i += 4) {
      const o = <usize>i << 2;
      const e = expf4(f32x4.sub(v128.load(kr + o), m4));
      v128.store(er + o, e);
      v128.store(evr + o, f32x4.mul(e, v128.load(vr + o)));
    }
    for (let i = d4; i < D; i++) {
      const e = expf(f32At(kr, i) - mx);
      setF32(er, i, e);
      setF32(evr, i, e * f32At(vr, i));
    }
  }
}

/**
 * num (D) = sum_j wts[j] ekv[row j], den (D) = sum_j wts[j] ek[row j] for j in [lo, hi], row j = j % ring when
 * ring > 0 (the decoder's ring of slots), else j. Sixteen channels at a time in eight registers, so each pair
 * (t, j) costs two fused multiply-adds per four channels and no round trip of the sums through memory.
 * Each channel is summed over j ascending whatever the blocking, so the dense and the decode forms agree bit for bit.
 */
// @ts-ignore: decorator
@inline function mixRows(num: usize, den: usize, wts: usize, lo: i32, hi: i32, ek: usize, ekv: usize, D: i32, ring: i32): void {
  const stride = <usize>D << 2;
  let c = 0;
  for (; c + 16 <= D; c += 16) {
    const off = <usize>c << 2;
    let n0 = f32x4.splat(0), n1 = f32x4.splat(0), n2 = f32x4.splat(0), n3 = f32x4.splat(0);
    let d0 = f32x4.splat(0), d1 = f32x4.splat(0), d2 = f32x4.splat(0), d3 = f32x4.splat(0);
    for (let j = lo; j <= hi; j++) {
      const r = <usize>(ring > 0 ? j % ring : j) * stride + off;
      const e = f32x4.splat(f32At(wts, j));
      const pv = ekv + r, pk = ek + r;
      n0 = madd(e, v128.load(pv), n0); n1 = madd(e, v128.load(pv, 16), n1);
      n2 = madd(e, v128.load(pv, 32), n2); n3 = madd(e, v128.load(pv, 48), n3);
      d0 = madd(e, v128.load(pk), d0); d1 = madd(e, v128.load(pk, 16), d1);
      d2 = madd(e, v128.load(pk, 32), d2); d3 = madd(e, v128.load(pk, 48), d3);
    }
    v128.store(num + off, n0); v128.store(num + off, n1, 16); v128.store(num + off, n2, 32); v128.store(num + off, n3, 48);
    v128.store(den + off, d0); v128.store(den + off, d1, 16); v128.store(den + off, d2, 32); v128.store(den + off, d3, 48);
  }
  for (; c + 4 <= D; c += 4) {
    const off = <usize>c << 2;
    let n0 = f32x4.splat(0), d0 = f32x4.splat(0);
    for (let j = lo; j <= hi; j++) {
      const r = <usize>(ring > 0 ? j % ring : j) * stride + off;
      const e = f32x4.splat(f32At(wts, j));
      n0 = madd(e, v128.load(ekv + r), n0);
      d0 = madd(e, v128.load(ek + r), d0);
    }
    v128.store(num + off, n0);
    v128.store(den + off, d0);
  }
  for (; c < D; c++) {
    let n: f32 = 0, d: f32 = 0;
    for (let j = lo; j <= hi; j++) {
      const r = <usize>(ring > 0 ? j % ring : j) * stride + (<usize>c << 2);
      const e = f32At(wts, j);
      n += e * load<f32>(ekv + r);
      d += e * load<f32>(ek + r);
    }
    setF32(num, c, n);
    setF32(den, c, d);
  }
}

/** wts[j] = e^(w[j] - max w) over [lo, hi] (w may alias wts). */
// @ts-ignore: decorator
@inline function expWeights(wts: usize, w: usize, lo: i32, hi: i32): void {
  let mx: f32 = -Infinity;
  for (let j = lo; j <= hi; j++) mx = max(mx, f32At(w, j));
  for (let j = lo; j <= hi; j++) setF32(wts, j, expf(f32At(w, j) - mx));
}

/**
 * AFT mixing after aft_keys: out[t] = sigmoid(q[t]) * sum_t' e^(w[t,t'] - max_t' w[t,:]) ekv[t'] / (the same with ek),
 * t' over the positions row t sees: all T (AFT-full), |t - t'| < window when window > 0 (AFT-local: the seed
 * masks the rest to -inf), and t' <= t when causal. The position bias row w[t, :] is either row t of a bias
 * matrix (AFT-local's wbias, rows biasStride floats apart) or, when wdim > 0, computed on the fly as
 * u[t] . ub[t'] (AFT-full's w = u v^T, never materialized). wrow: scratch for T floats (the row's weights);
 * den: D floats. Cost: (positions seen) * (2D + wdim) per row; memory T*D for ek/ekv.
 */
export function aft_mix(
  out: usize, q: usize, ek: usize, ekv: usize, T: i32, D: i32,
  bias: usize, biasStride: i32, u: usize, ub: usize, wdim: i32,
  window: i32, causal: i32, wrow: usize, den: usize,
): void {
  for (let t = 0; t < T; t++) {
    let lo = 0, hi = T - 1;
    if (window > 0) {
      lo = max(0, t - window + 1);
      hi = min(T - 1, t + window - 1);
    }
    if (causal) hi = min(hi, t);
    let w = row(bias, t, biasStride);
    if (wdim > 0) {
      const ur = row(u, t, wdim);
      for (let j = lo; j <= hi; j++) setF32(wrow, j, dot(ur, row(ub, j, wdim), wdim));
      w = wrow;
    }
    expWeights(wrow, w, lo, hi);
    const num = row(out, t, D);
    mixRows(num, den, wrow, lo, hi, ek, ekv, D, 0);
    gate(num, row(q, t, D), num, den, D);
  }
}

/**
 * One decode step of causal AFT-local at position pos: the new k, v enter a ring of `window` slots
 * (ek, ekv: window * D floats each, slot pos % window), and the output mixes positions
 * (pos - window, pos] with the bias row wbiasRow[t'] (row pos of wbias). State is the ring: window * 2D
 * floats whatever the sequence length. wts: scratch for pos + 1 floats; den: D floats. The arithmetic is
 * aft_mix's causal form, step for step.
 */
export function aft_local_step(
  out: usize, q: usize, k: usize, v: usize, ek: usize, ekv: usize, wbiasRow: usize, pos: i32, window: i32, D: i32,
  wts: usize, den: usize,
): void {
  aft_keys(row(ek, pos % window, D), row(ekv, pos % window, D), k, v, 1, D);
  const lo = max(0, pos - window + 1);
  expWeights(wts, wbiasRow, lo, pos);
  mixRows(out, den, wts, lo, pos, ek, ekv, D, window);
  gate(out, q, out, den, D);
}

// ---------------------------------------------------------------- AFT-simple

/**
 * AFT-simple over the whole sequence: out[t] = sigmoid(q[t]) * sum_t' softmax_t'(k[:, d]) v[t'] (softmax over
 * the sequence, per channel; the same mix for every t). Two passes: the channel maxima, then the sums.
 * state: 3 * D floats of scratch. Cost T * D time, D memory beyond the inputs.
 */
export function aft_simple(out: usize, q: usize, k: usize, v: usize, T: i32, D: i32, state: usize): void {
  const mx = state, num = state + (<usize>D << 2), den = state + (<usize>D << 3);
  const d4 = D & ~3;
  memory.copy(mx, k, <usize>D << 2);
  for (let t = 1; t < T; t++) {
    const kr = row(k, t, D);
    for (let i = 0; i < d4; i += 4) v128.store(mx + (<usize>i << 2), f32x4.max(v128.load(mx + (<usize>i << 2)), v128.load(kr + (<usize>i << 2))));
    for (let i = d4; i < D; i++) setF32(mx, i, max(f32At(mx, i), f32At(kr, i)));
  }
  zero(num, D);
  zero(den, D);
  for (let t = 0; t < T; t++) {
    const kr = row(k, t, D), vr = row(v, t, D);
    for (let i = 0; i < d4; i += 4) {
      const o = <usize>i << 2;
      const e = expf4(f32x4.sub(v128.load(kr + o), v128.load(mx + o)));
      v128.store(num + o, madd(e, v128.load(vr + o), v128.load(num + o)));
      v128.store(den + o, f32x4.add(v128.load(den + o), e));
    }
    for (let i = d4; i < D; i++) {
      const e = expf(f32At(kr, i) - f32At(mx, i));
      setF32(num, i, f32At(num, i) + e * f32At(vr, i));
      setF32(den, i, f32At(den, i) + e);
    }
  }
  for (let t = 0; t < T; t++) gate(row(out, t, D), row(q, t, D), num, den, D);
}

/**
 * Causal AFT-simple as a recurrence, T steps from the state (running max m, numerator n, denominator s per
 * channel: 3 * D floats; start m = -inf, n = s = 0): m' = max(m, k), n = n e^(m - m') + e^(k - m') v,
 * s = s e^(m - m') + e^(k - m'), out = sigmoid(q) n / s. The state is all a decoder keeps: D * 3 floats
 * however long the sequence. T > 1 runs a causal prefill through the same steps.
 */
export function aft_simple_step(out: usize, q: usize, k: usize, v: usize, T: i32, D: i32, state: usize): void {
  const mx = state, num = state + (<usize>D << 2), den = state + (<usize>D << 3);
  const d4 = D & ~3;
  for (let t = 0; t < T; t++) {
    const kr = row(k, t, D), vr = row(v, t, D);
    for (let i = 0; i < d4; i += 4) {
      const o = <usize>i << 2;
      const kk = v128.load(kr + o), m = v128.load(mx + o);
      const m2 = f32x4.max(m, kk);
      // e^(m - m2): the lanes still at -inf (first step) scale an all-zero sum, so flushing to 0 is exact
      const a = expf4(f32x4.sub(m, m2));
      const b = expf4(f32x4.sub(kk, m2));
      v128.store(mx + o, m2);
      v128.store(num + o, madd(b, v128.load(vr + o), f32x4.mul(v128.load(num + o), a)));
      v128.store(den + o, madd(v128.load(den + o), a, b));
    }
    for (let i = d4; i < D; i++) {
      const kk = f32At(kr, i), m = f32At(mx, i);
      const m2 = max(m, kk);
      const a = m == -Infinity ? <f32>0 : expf(m - m2);
      const b = expf(kk - m2);
      setF32(mx, i, m2);
      setF32(num, i, b * f32At(vr, i) + f32At(num, i) * a);
      setF32(den, i, f32At(den, i) * a + b);
    }
    gate(row(out, t, D), row(q, t, D), num, den, D);
  }
}

// ---------------------------------------------------------------- softmax attention: dense, banded, causal

/**
 * Softmax attention of Tq query rows (D) over Tk key rows (D) and value rows (Dv), scale 1/sqrt(D).
 * window >= 0 limits row t to keys |t - t'| <= window (Longformer's bidirectional sliding window, dense
 * rows computed only inside the band); causal limits it to t' <= t. sc: scratch for Tk floats.
 * Cost: Tq * (keys seen) * (D + Dv); memory: one row of scores.
 */
export function attention_window(
  out: usize, q: usize, k: usize, v: usize, Tq: i32, Tk: i32, D: i32, Dv: i32, window: i32, causal: i32, sc: usize,
): void {
  const scale = <f32>(1.0 / Math.sqrt(<f64>D));
  for (let t = 0; t < Tq; t++) {
    let lo = 0, hi = Tk - 1;
    if (window >= 0) {
      lo = max(0, t - window);
      hi = min(Tk - 1, t + window);
    }
    if (causal) hi = min(hi, t);
    const qr = row(q, t, D);
    let mx: f32 = -Infinity;
    for (let j = lo; j <= hi; j++) {
      const s = dot(qr, row(k, j, D), D) * scale;
      setF32(sc, j, s);
      mx = max(mx, s);
    }
    let sum: f32 = 0;
    for (let j = lo; j <= hi; j++) {
      const e = expf(f32At(sc, j) - mx);
      setF32(sc, j, e);
      sum += e;
    }
    const inv = <f32>1 / sum;
    const o = row(out, t, Dv);
    zero(o, Dv);
    for (let j = lo; j <= hi; j++) axpy(o, f32At(sc, j) * inv, row(v, j, Dv), Dv);
  }
}

/**
 * Sparse top-k attention (the seed's sparse_top_k_attention): each query row keeps its topk largest scores
 * q . k / sqrt(D) over all Tk keys, softmaxes those, and mixes their value rows; the other weights are 0.
 * Scores stream through a sorted list of topk (value, index) pairs in sel (topk f32 then topk i32), so the
 * score row is never stored: memory topk per row, time Tq * Tk * D (+ Tq * topk * Dv). Ties keep the earlier key.
 */
export function sparse_topk_attention(
  out: usize, q: usize, k: usize, v: usize, Tq: i32, Tk: i32, D: i32, Dv: i32, topk: i32, sel: usize,
): void {
  const scale = <f32>(1.0 / Math.sqrt(<f64>D));
  const vals = sel, idx = sel + (<usize>topk << 2);
  for (let t = 0; t < Tq; t++) {
    const qr = row(q, t, D);
    let n = 0;
    for (let j = 0; j < Tk; j++) {
      const s = dot(qr, row(k, j, D), D) * scale;
      if (n == topk && !(s > f32At(vals, topk - 1))) continue;
      // insertion into the descending list, dropping the smallest when full
      let p = n < topk ? n++ : topk - 1;
      while (p > 0 && s > f32At(vals, p - 1)) {
        setF32(vals, p, f32At(vals, p - 1));
        store<i32>(idx + (<usize>p << 2), load<i32>(idx + (<usize>(p - 1) << 2)));
        p--;
      }
      setF32(vals, p, s);
      store<i32>(idx + (<usize>p << 2), j);
    }
    const mx = f32At(vals, 0);
    let sum: f32 = 0;
    for (let p = 0; p < n; p++) {
      const e = expf(f32At(vals, p) - mx);
      setF32(vals, p, e);
      sum += e;
    }
    const inv = <f32>1 / sum;
    const o = row(out, t, Dv);
    zero(o, Dv);
    for (let p = 0; p < n; p++) axpy(o, f32At(vals, p) * inv, row(v, load<i32>(idx + (<usize>p << 2)), Dv), Dv);
  }
}

// ---------------------------------------------------------------- Linformer

/**
 * Linformer's projection of K (or V) along the sequence: out (K, D) = E[:, :T] (K rows of eStride floats)
 * @ x (T, D) + bE, i.e. nn.Linear(max_seq_len, K) applied to x^T after zero padding T up to max_seq_len
 * (the padded rows add nothing but the bias). Cost K * T * D; the attention that follows sees K keys, not T.
 */
export function linformer_project(out: usize, e: usize, be: usize, x: usize, T: i32, K: i32, D: i32, eStride: i32): void {
  for (let j = 0; j < K; j++) {
    const o = row(out, j, D);
    const b = f32At(be, j);
    const b4 = f32x4.splat(b);
    const d4 = D & ~3;
    for (let i = 0; i < d4; i += 4) v128.store(o + (<usize>i << 2), b4);
    for (let i = d4; i < D; i++) setF32(o, i, b);
    const er = row(e, j, eStride);
    for (let t = 0; t < T; t++) axpy(o, f32At(er, t), row(x, t, D), D);
  }
}

// ---------------------------------------------------------------- asymmetric u8 quantization

/**
 * The seed's quantize_tensor(x, 8) over n floats: scale = (max - min) / 255, zero_point = 0 - min / scale,
 * q = clamp(round_half_even(x / scale + zero_point), 0, 255), all in f32 as PyTorch computes them.
 * Writes scale and zero_point to params (2 f32). A constant (or non-finite) x gives scale 0 (or NaN):
 * the caller checks params before reading q.
 */
export function quantize_asym_u8(q: usize, x: usize, n: i32, params: usize): void {
  const n4 = n & ~3;
  let lo4 = f32x4.splat(Infinity), hi4 = f32x4.splat(-Infinity);
  for (let i = 0; i < n4; i += 4) {
    const a = v128.load(x + (<usize>i << 2));
    lo4 = f32x4.min(lo4, a);
    hi4 = f32x4.max(hi4, a);
  }
  let lo = min(min(f32x4.extract_lane(lo4, 0), f32x4.extract_lane(lo4, 1)), min(f32x4.extract_lane(lo4, 2), f32x4.extract_lane(lo4, 3)));
  let hi = max(max(f32x4.extract_lane(hi4, 0), f32x4.extract_lane(hi4, 1)), max(f32x4.extract_lane(hi4, 2), f32x4.extract_lane(hi4, 3)));
  for (let i = n4; i < n; i++) {
    lo = min(lo, f32At(x, i));
    hi = max(hi, f32At(x, i));
  }
  const scale: f32 = (hi - lo) / <f32>255;
  const zp: f32 = <f32>0 - lo / scale;
  setF32(params, 0, scale);
  setF32(params, 1, zp);
  if (!(scale > 0) || !isFinite(scale) || !isFinite(zp)) return;
  const s4 = f32x4.splat(scale), z4 = f32x4.splat(zp), top = f32x4.splat(255), bottom = f32x4.splat(0);
  const n16 = n & ~15;
  for (let i = 0; i < n16; i += 16) {
    const p = x + (<usize>i << 2);
    const a = i32x4.trunc_sat_f32x4_u(f32x4.min(f32x4.max(f32x4.nearest(f32x4.add(f32x4.div(v128.load(p), s4), z4)), bottom), top));
    const b = i32x4.trunc_sat_f32x4_u(f32x4.min(f32x4.max(f32x4.nearest(f32x4.add(f32x4.div(v128.load(p, 16), s4), z4)), bottom), top));
    const c = i32x4.trunc_sat_f32x4_u(f32x4.min(f32x4.max(f32x4.nearest(f32x4.add(f32x4.div(v128.load(p, 32), s4), z4)), bottom), top));
    const d = i32x4.trunc_sat_f32x4_u(f32x4.min(f32x4.max(f32x4.nearest(f32x4.add(f32x4.div(v128.load(p, 48), s4), z4)), bottom), top));
    v128.store(q + <usize>i, i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(a, b), i16x8.narrow_i32x4_u(c, d)));
  }
  for (let i = n16; i < n; i++) {
    const r = min(max(nearest<f32>(f32At(x, i) / scale + zp), <f32>0), <f32>255);
    store<u8>(q + <usize>i, <u8>r);
  }
}

/** The seed's dequantize_tensor: out (n) = scale * (q - zero_point), in f32. */
export function dequantize_asym_u8(out: usize, q: usize, n: i32, scale: f32, zp: f32): void {
  const n16 = n & ~15;
  const s4 = f32x4.splat(scale), z4 = f32x4.splat(zp);
  for (let i = 0; i < n16; i += 16) {
    const b = v128.load(q + <usize>i);
    const lo = i16x8.extend_low_i8x16_u(b), hi = i16x8.extend_high_i8x16_u(b);
    const o = out + (<usize>i << 2);
    v128.store(o, f32x4.mul(s4, f32x4.sub(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(lo)), z4)));
    v128.store(o, f32x4.mul(s4, f32x4.sub(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(lo)), z4)), 16);
    v128.store(o, f32x4.mul(s4, f32x4.sub(f32x4.convert_i32x4_u(i32x4.extend_low_i16x8_u(hi)), z4)), 32);
    v128.store(o, f32x4.mul(s4, f32x4.sub(f32x4.convert_i32x4_u(i32x4.extend_high_i16x8_u(hi)), z4)), 48);
  }
  for (let i = n16; i < n; i++) setF32(out, i, scale * (<f32>load<u8>(q + <usize>i) - zp));
}
