// f32 / f16 kernels of the transformer: matmul, norms, RoPE, SwiGLU,
// residual add, row fetch and attention over the paged KV cache.
// Every pointer is a byte address in the imported memory; outputs come first.

import { hsum, madd, expfGlibc, f16ToF32, f16x8Lo, f16x8Hi, roundToF16, roundToF16x4 } from "./math";
import { fmaf } from "./fused";
import { attendPaged } from "./attn-paged";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

// ---------------------------------------------------------------- matmul

/**
 * W (d,n) @ x (T,n) -> out (T,d), rows [r0, r1) of W only (threads split rows).
 *
 * Every (row, activation row) dot product is summed in one order, whatever T
 * and whichever group the row lands in: one f32x4 chain over the row's
 * multiples of 4, its lanes summed by hsum, then the scalar tail. So a row's
 * result never depends on how rows were split between threads, nor on which
 * other activation rows share the call (batch invariance: a sequence decodes
 * the same alone and beside others).
 *
 * Four weight rows are read together so each x vector is loaded once for four
 * products. The four come from four bands of the row range (rows i, i+q, i+2q,
 * i+3q): four streams far apart in memory keep more cache-line fills in flight
 * than four adjacent rows, which nearly doubles the read rate of the
 * memory-bound T = 1 case (one chain per row suffices there: four chains of
 * one 4-cycle add each consume 16 bytes of weights a cycle, more than memory
 * delivers). For T > 1 each group of four rows stays in L1 while all T
 * activation rows stream past it, two at a time, so prefill reads each weight
 * once. (A 4 x 3 register tile measured 1.7-1.9x slower: V8 has 15 vector
 * registers for its 16 values. Eight bands for T = 1 measured 1.2x slower.)
 */
export function matmul_f32(out: usize, x: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>n << 2;
  if (T >= TILE5_MIN_T) return matmulTiled_f32(out, x, w, n, d, T, r0, r1);
  const q = (r1 - r0) >> 2;
  for (let g = 0; g < q; g++) {
    const ra = r0 + g, rb = ra + q, rc = rb + q, rd = rc + q;
    mm4_f32(out, x, w + <usize>ra * rowBytes, w + <usize>rb * rowBytes, w + <usize>rc * rowBytes, w + <usize>rd * rowBytes, n, d, T, ra, rb, rc, rd);
  }
  for (let r = r0 + 4 * q; r < r1; r++) {
    const w0 = w + <usize>r * rowBytes;
    mm4_f32(out, x, w0, w0, w0, w0, n, d, T, r, r, r, r);
  }
}

/** Activation rows from which matmul_f32 takes the five-row tile (fewer rows stream the weights: the four bands read faster). */
const TILE5_MIN_T = 4;

/**
 * matmul_f32 for T >= TILE5_MIN_T: five adjacent weight rows by two activation rows, ten f32x4 chains, each weight
 * vector loaded next to its two products (ten chains plus two x vectors and one weight vector fit V8's 15 vector
 * registers; the 4 x 2 tile's eight chains leave the two FMA pipes short of the eight in flight that their 4-cycle
 * latency asks for). Every dot keeps mm4_f32's order, so results are the same bits as before, for any row split.
 * The rows [r0, r1) are cut into groups of five and then four (any count from 12 on is 5a + 4b; a thread's chunk
 * is a multiple of 16 rows); what neither covers (a range of 1-3, 6, 7 or 11 rows) goes row by row.
 * 2026-12-05, relaxed build, T = 120, against the 4 x 2 tile in one module (bench-style, fastest of 12, loaded host at
 * real-time priority): Deno 1.05-1.09x, Bun 1.15-1.23x (768x720, 768x2040, 2048x720), 53-55 GFLOP/s in Deno.
 */
function matmulTiled_f32(out: usize, x: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>n << 2;
  const m = r1 - r0;
  let fives = m / 5;
  while (fives > 0 && (m - 5 * fives) % 4 != 0) fives--;
  let r = r0;
  for (let g = 0; g < fives; g++, r += 5) mm5_f32(out, x, w + <usize>r * rowBytes, n, d, T, r);
  for (; r + 4 <= r1; r += 4) {
    const w0 = w + <usize>r * rowBytes;
    mm4_f32(out, x, w0, w0 + rowBytes, w0 + 2 * rowBytes, w0 + 3 * rowBytes, n, d, T, r, r + 1, r + 2, r + 3);
  }
  for (; r < r1; r++) {
    const w0 = w + <usize>r * rowBytes;
    mm4_f32(out, x, w0, w0, w0, w0, n, d, T, r, r, r, r);
  }
}

/** Five adjacent rows (from row r, at w0) against all T activation rows, two at a time, each dot in mm4_f32's order. */
// @ts-ignore: decorator
@inline function mm5_f32(out: usize, x: usize, w0: usize, n: i32, d: i32, T: i32, r: i32): void {
  const rowBytes = <usize>n << 2;
  const w1 = w0 + rowBytes, w2 = w1 + rowBytes, w3 = w2 + rowBytes, w4 = w3 + rowBytes;
  const n4 = n & ~3;
  const dBytes = <usize>d << 2;
  let t = 0;
  for (; t + 2 <= T; t += 2) {
    const xa = x + <usize>t * rowBytes, xb = xa + rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0), a4 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0), b4 = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const va = v128.load(xa + o), vb = v128.load(xb + o);
      let q = v128.load(w0 + o);
      a0 = madd(q, va, a0); b0 = madd(q, vb, b0);
      q = v128.load(w1 + o);
      a1 = madd(q, va, a1); b1 = madd(q, vb, b1);
      q = v128.load(w2 + o);
      a2 = madd(q, va, a2); b2 = madd(q, vb, b2);
      q = v128.load(w3 + o);
      a3 = madd(q, va, a3); b3 = madd(q, vb, b3);
      q = v128.load(w4 + o);
      a4 = madd(q, va, a4); b4 = madd(q, vb, b4);
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3), s4 = hsum(a4);
    let u0 = hsum(b0), u1 = hsum(b1), u2 = hsum(b2), u3 = hsum(b3), u4 = hsum(b4);
    for (let i = n4; i < n; i++) {
      const ea = f32At(xa, i), eb = f32At(xb, i);
      s0 += f32At(w0, i) * ea; s1 += f32At(w1, i) * ea; s2 += f32At(w2, i) * ea; s3 += f32At(w3, i) * ea; s4 += f32At(w4, i) * ea;
      u0 += f32At(w0, i) * eb; u1 += f32At(w1, i) * eb; u2 += f32At(w2, i) * eb; u3 += f32At(w3, i) * eb; u4 += f32At(w4, i) * eb;
    }
    const oa = out + <usize>t * dBytes, ob = oa + dBytes;
    setF32(oa, r, s0); setF32(oa, r + 1, s1); setF32(oa, r + 2, s2); setF32(oa, r + 3, s3); setF32(oa, r + 4, s4);
    setF32(ob, r, u0); setF32(ob, r + 1, u1); setF32(ob, r + 2, u2); setF32(ob, r + 3, u3); setF32(ob, r + 4, u4);
  }
  for (; t < T; t++) {
    const xa = x + <usize>t * rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0), a4 = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const va = v128.load(xa + o);
      a0 = madd(v128.load(w0 + o), va, a0); a1 = madd(v128.load(w1 + o), va, a1); a2 = madd(v128.load(w2 + o), va, a2);
      a3 = madd(v128.load(w3 + o), va, a3); a4 = madd(v128.load(w4 + o), va, a4);
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3), s4 = hsum(a4);
    for (let j = n4; j < n; j++) {
      const e = f32At(xa, j);
      s0 += f32At(w0, j) * e; s1 += f32At(w1, j) * e; s2 += f32At(w2, j) * e; s3 += f32At(w3, j) * e; s4 += f32At(w4, j) * e;
    }
    const oa = out + <usize>t * dBytes;
    setF32(oa, r, s0); setF32(oa, r + 1, s1); setF32(oa, r + 2, s2); setF32(oa, r + 3, s3); setF32(oa, r + 4, s4);
  }
}

/** Four rows (possibly the same row four times, for leftovers) against all T activation rows, each dot in the one order. */
// @ts-ignore: decorator
@inline function mm4_f32(
  out: usize, x: usize, w0: usize, w1: usize, w2: usize, w3: usize, n: i32, d: i32, T: i32, ra: i32, rb: i32, rc: i32, rd: i32,
): void {
  const rowBytes = <usize>n << 2;
  const n4 = n & ~3;
  const dBytes = <usize>d << 2;
  let t = 0;
  for (; t + 2 <= T; t += 2) {
    const xa = x + <usize>t * rowBytes, xb = xa + rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const va = v128.load(xa + o), vb = v128.load(xb + o);
      const q0 = v128.load(w0 + o), q1 = v128.load(w1 + o), q2 = v128.load(w2 + o), q3 = v128.load(w3 + o);
      a0 = madd(q0, va, a0); a1 = madd(q1, va, a1); a2 = madd(q2, va, a2); a3 = madd(q3, va, a3);
      b0 = madd(q0, vb, b0); b1 = madd(q1, vb, b1); b2 = madd(q2, vb, b2); b3 = madd(q3, vb, b3);
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    let u0 = hsum(b0), u1 = hsum(b1), u2 = hsum(b2), u3 = hsum(b3);
    for (let i = n4; i < n; i++) {
      const ea = f32At(xa, i), eb = f32At(xb, i);
      s0 += f32At(w0, i) * ea; s1 += f32At(w1, i) * ea; s2 += f32At(w2, i) * ea; s3 += f32At(w3, i) * ea;
      u0 += f32At(w0, i) * eb; u1 += f32At(w1, i) * eb; u2 += f32At(w2, i) * eb; u3 += f32At(w3, i) * eb;
    }
    const oa = out + <usize>t * dBytes, ob = oa + dBytes;
    setF32(oa, ra, s0); setF32(oa, rb, s1); setF32(oa, rc, s2); setF32(oa, rd, s3);
    setF32(ob, ra, u0); setF32(ob, rb, u1); setF32(ob, rc, u2); setF32(ob, rd, u3);
  }
  for (; t < T; t++) {
    const xa = x + <usize>t * rowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let i = 0; i < n4; i += 4) {
      const o = <usize>i << 2;
      const va = v128.load(xa + o);
      a0 = madd(v128.load(w0 + o), va, a0); a1 = madd(v128.load(w1 + o), va, a1);
      a2 = madd(v128.load(w2 + o), va, a2); a3 = madd(v128.load(w3 + o), va, a3);
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (let j = n4; j < n; j++) {
      const e = f32At(xa, j);
      s0 += f32At(w0, j) * e; s1 += f32At(w1, j) * e; s2 += f32At(w2, j) * e; s3 += f32At(w3, j) * e;
    }
    const oa = out + <usize>t * dBytes;
    setF32(oa, ra, s0); setF32(oa, rb, s1); setF32(oa, rc, s2); setF32(oa, rd, s3);
  }
}

/**
 * W (d,n) in IEEE half @ x (T,n) -> out (T,d), rows [r0, r1). x holds f32 values
 * already rounded to half precision (round_f16), as llama.cpp rounds the
 * activations of an F16 matmul; products and sums are f32. Rows are grouped in
 * four bands as in matmul_f32.
 */
export function matmul_f16(out: usize, x: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const rowBytes = <usize>n << 1;
  const q = (r1 - r0) >> 2;
  for (let g = 0; g < q; g++) {
    const ra = r0 + g, rb = ra + q, rc = rb + q, rd = rc + q;
    mm4_f16(out, x, w + <usize>ra * rowBytes, w + <usize>rb * rowBytes, w + <usize>rc * rowBytes, w + <usize>rd * rowBytes, n, d, T, ra, rb, rc, rd);
  }
  for (let r = r0 + 4 * q; r < r1; r++) {
    const w0 = w + <usize>r * rowBytes;
    mm4_f16(out, x, w0, w0, w0, w0, n, d, T, r, r, r, r);
  }
}

// @ts-ignore: decorator
@inline function mm4_f16(
  out: usize, x: usize, w0: usize, w1: usize, w2: usize, w3: usize, n: i32, d: i32, T: i32, ra: i32, rb: i32, rc: i32, rd: i32,
): void {
  const xRowBytes = <usize>n << 2;
  const dBytes = <usize>d << 2;
  const n8 = n & ~7;
  let t = 0;
  for (; t + 2 <= T; t += 2) {
    const xa = x + <usize>t * xRowBytes, xb = xa + xRowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
    for (let i = 0; i < n8; i += 8) {
      const ox = <usize>i << 2, ow = <usize>i << 1;
      const va = v128.load(xa + ox), va2 = v128.load(xa + ox, 16);
      const vb = v128.load(xb + ox), vb2 = v128.load(xb + ox, 16);
      let h = v128.load(w0 + ow); let lo = f16x8Lo(h), hi = f16x8Hi(h);
      a0 = madd(hi, va2, madd(lo, va, a0)); b0 = madd(hi, vb2, madd(lo, vb, b0));
      h = v128.load(w1 + ow); lo = f16x8Lo(h); hi = f16x8Hi(h);
      a1 = madd(hi, va2, madd(lo, va, a1)); b1 = madd(hi, vb2, madd(lo, vb, b1));
      h = v128.load(w2 + ow); lo = f16x8Lo(h); hi = f16x8Hi(h);
      a2 = madd(hi, va2, madd(lo, va, a2)); b2 = madd(hi, vb2, madd(lo, vb, b2));
      h = v128.load(w3 + ow); lo = f16x8Lo(h); hi = f16x8Hi(h);
      a3 = madd(hi, va2, madd(lo, va, a3)); b3 = madd(hi, vb2, madd(lo, vb, b3));
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    let u0 = hsum(b0), u1 = hsum(b1), u2 = hsum(b2), u3 = hsum(b3);
    for (let i = n8; i < n; i++) {
      const ea = f32At(xa, i), eb = f32At(xb, i);
      const ow = <usize>i << 1;
      const h0 = f16ToF32(load<u16>(w0 + ow)), h1 = f16ToF32(load<u16>(w1 + ow));
      const h2 = f16ToF32(load<u16>(w2 + ow)), h3 = f16ToF32(load<u16>(w3 + ow));
      s0 += h0 * ea; s1 += h1 * ea; s2 += h2 * ea; s3 += h3 * ea;
      u0 += h0 * eb; u1 += h1 * eb; u2 += h2 * eb; u3 += h3 * eb;
    }
    const oa = out + <usize>t * dBytes, ob = oa + dBytes;
    setF32(oa, ra, s0); setF32(oa, rb, s1); setF32(oa, rc, s2); setF32(oa, rd, s3);
    setF32(ob, ra, u0); setF32(ob, rb, u1); setF32(ob, rc, u2); setF32(ob, rd, u3);
  }
  for (; t < T; t++) {
    const xa = x + <usize>t * xRowBytes;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let i = 0; i < n8; i += 8) {
      const ox = <usize>i << 2, ow = <usize>i << 1;
      const va = v128.load(xa + ox), va2 = v128.load(xa + ox, 16);
      let h = v128.load(w0 + ow);
      a0 = madd(f16x8Hi(h), va2, madd(f16x8Lo(h), va, a0));
      h = v128.load(w1 + ow);
      a1 = madd(f16x8Hi(h), va2, madd(f16x8Lo(h), va, a1));
      h = v128.load(w2 + ow);
      a2 = madd(f16x8Hi(h), va2, madd(f16x8Lo(h), va, a2));
      h = v128.load(w3 + ow);
      a3 = madd(f16x8Hi(h), va2, madd(f16x8Lo(h), va, a3));
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (let i = n8; i < n; i++) {
      const e = f32At(xa, i);
      const ow = <usize>i << 1;
      s0 += f16ToF32(load<u16>(w0 + ow)) * e; s1 += f16ToF32(load<u16>(w1 + ow)) * e;
      s2 += f16ToF32(load<u16>(w2 + ow)) * e; s3 += f16ToF32(load<u16>(w3 + ow)) * e;
    }
    const oa = out + <usize>t * dBytes;
    setF32(oa, ra, s0); setF32(oa, rb, s1); setF32(oa, rc, s2); setF32(oa, rd, s3);
  }
}

/** out[i] = x[i] rounded to the nearest half (ties to even), as f32. Activations of an F16 matmul. */
export function round_f16(out: usize, x: usize, n: i32): void {
  const nv = n & ~3;
  let i = 0;
  for (; i < nv; i += 4) v128.store(out + (<usize>i << 2), roundToF16x4(v128.load(x + (<usize>i << 2))));
  for (; i < n; i++) setF32(out, i, roundToF16(f32At(x, i)));
}

// ---------------------------------------------------------------- row fetch

/** One row of an f32 table: out (n,) = w (n,). */
export function dequantize_f32(out: usize, w: usize, n: i32): void {
  memory.copy(out, w, <usize>n << 2);
}

/** One row of an f16 table to f32. */
export function dequantize_f16(out: usize, w: usize, n: i32): void {
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const h = v128.load(w + (<usize>i << 1));
    v128.store(out + (<usize>i << 2), f16x8Lo(h));
    v128.store(out + (<usize>i << 2), f16x8Hi(h), 16);
  }
  for (; i < n; i++) setF32(out, i, f16ToF32(load<u16>(w + (<usize>i << 1))));
}

// ---------------------------------------------------------------- elementwise

/** RMSNorm of T rows: out (T,n) = x / sqrt(mean(x^2) + eps) * w. Sum of squares in f64, as ggml does. */
export function rmsnorm(out: usize, x: usize, w: usize, n: i32, eps: f32, T: i32): void {
  for (let t = 0; t < T; t++) {
    const xr = x + ((<usize>t * n) << 2), or = out + ((<usize>t * n) << 2);
    // as ggml_compute_forward_rms_norm_f32: squares in f32 summed in f64, the mean rounded to f32, then 1/sqrtf in f32
    let ss: f64 = 0;
    for (let i = 0; i < n; i++) {
      const v = f32At(xr, i);
      ss += <f64>(v * v);
    }
    const mean = <f32>(ss / <f64>n);
    const scale = <f32>1 / sqrt<f32>(mean + eps);
    const s4 = f32x4.splat(scale);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(or + o, f32x4.mul(f32x4.mul(v128.load(xr + o), s4), v128.load(w + o)));
    }
    for (; i < n; i++) setF32(or, i, f32At(xr, i) * scale * f32At(w, i));
  }
}

/** out = a + b over n floats (the residual connection; out may alias a). */
export function add(out: usize, a: usize, b: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(a + o), v128.load(b + o)));
  }
  for (; i < n; i++) setF32(out, i, f32At(a, i) + f32At(b, i));
}

/**
 * SwiGLU: out = silu(gate) * up on T rows of n floats, silu(g) = g / (1 + e^-g),
 * as ggml_vec_swiglu_f32 of ggml's AVX-512 build computes each row: groups of
 * sixteen through ggml_v_expf (its own polynomial, not the C library's), the
 * row's last n % 16 through the C library's expf. Where relaxed_madd is one fused
 * multiply-add (maddFuses: V8 on x86 with FMA3) ggml_v_expf runs as expfFused, its
 * own steps; elsewhere as ggmlExpf2 on each pair of lanes (fused.ts ggmlExpf4's
 * steps and roundings, kept in f64: the same bits, but about six times the work).
 */
export function swiglu(out: usize, gate: usize, up: usize, n: i32, T: i32): void {
  const z = <i32>(<u32>n >> 31); // an opaque zero: n >= 0
  if (RELAXED) {
    if (maddFuses(z)) {
      swigluRows<f32>(out, gate, up, n, T, z);
      return;
    }
  }
  swigluRows<f64>(out, gate, up, n, T, z);
}

/**
 * Whether relaxed_madd fuses in the code that calls this (a handful of instructions per call, no state): (1 + 2^-23)^2
 * - (1 + 2^-22) is 2^-46 with one rounding and 0 with two. An engine lowers every relaxed_madd of a function the same
 * way, so this answers for the loop beside it.
 */
// @ts-ignore: decorator
@inline function maddFuses(z: i32): bool {
  const a = f32x4.splat(reinterpret<f32>(0x3f800001 + z)), c = f32x4.splat(reinterpret<f32>(0xbf800002 + z));
  return f32x4.extract_lane(f32x4.relaxed_madd(a, a, c), 0) != 0;
}

/**
 * swiglu's rows, e^-g in f32 lanes by expfFused (E = f32: relaxed_madd fuses) or in f64 lanes by ggmlExpf2 (E = f64),
 * the other's code dropped at compile time (the `if` on sizeof<E>()). The constants come from z, once per call: as
 * v128.const operands V8 rematerializes each at every use inside the loop (docs/cpu-performance.md, "V8's vector
 * constants and conversions").
 */
// @ts-ignore: decorator
@inline function swigluRows<E>(out: usize, gate: usize, up: usize, n: i32, T: i32, z: i32): void {
  const zf = <f64>z, z32 = <f32>z, fused = sizeof<E>() == 4;
  // ggml_v_expf's constants, as f32 lanes (fused) or f64 ones
  const round = fused ? f32x4.splat(<f32>12582912.0 + z32) : f64x2.splat(12582912.0 + zf); // 0x1.8p23
  const log2e = constant(0x3fb8aa3b, z, fused); // 0x1.715476p+0
  const ln2hi = constant(0x3f317200, z, fused), ln2lo = constant(0x35bfbe8e, z, fused); // 0x1.62e4p-1, 0x1.7f7d1cp-20
  const p0 = constant(0x3c072010, z, fused), p1 = constant(0x3d2b9f17, z, fused), p2 = constant(0x3e2aaf33, z, fused);
  const p3 = constant(0x3efffedb, z, fused), p4 = constant(0x3f7ffff6, z, fused), one = constant(0x3f800000, z, fused);
  const limit = constant(0x43400000, z, fused), inf = constant(0x7f800000, z, fused); // 192, +inf
  const bias = f64x2.splat(4503599627371519.0 + zf), k127 = i32x4.splat(127 + z);
  const one32 = f32x4.splat(<f32>1 + z32), zero = f32x4.splat(0);
  const nv = n & ~15;
  for (let t = 0; t < T; t++) {
    const row = (<usize>t * <usize>n) << 2;
    const o0 = out + row, g0 = gate + row, u0 = up + row;
    let i = 0;
    for (; i < nv; i += 4) {
      const o = <usize>i << 2;
      const g = v128.load(g0 + o);
      const x = f32x4.sub(zero, g);
      let e: v128;
      if (sizeof<E>() == 4) e = expfFused(x, round, log2e, ln2hi, ln2lo, p0, p1, p2, p3, p4, one, limit, inf, k127);
      else {
        const lo = ggmlExpf2(f64x2.promote_low_f32x4(x), round, log2e, ln2hi, ln2lo, p0, p1, p2, p3, p4, one, bias, limit, inf);
        const hi = ggmlExpf2(
          f64x2.promote_low_f32x4(i32x4.shuffle(x, x, 2, 3, 2, 3)), round, log2e, ln2hi, ln2lo, p0, p1, p2, p3, p4, one, bias, limit, inf,
        );
        e = i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
      }
      const silu = f32x4.div(g, f32x4.add(one32, e));
      v128.store(o0 + o, f32x4.mul(silu, v128.load(u0 + o)));
    }
    for (; i < n; i++) {
      const g = f32At(g0, i);
      setF32(o0, i, (g / (<f32>1 + expfGlibc(-g))) * f32At(u0, i));
    }
  }
}

/** The f32 whose bits are `bits` (plus the opaque zero z), splat as f32 lanes (f32) or as f64 ones. */
// @ts-ignore: decorator
@inline function constant(bits: u32, z: i32, f32: bool): v128 {
  const v = reinterpret<f32>(bits + <u32>z);
  return f32 ? f32x4.splat(v) : f64x2.splat(<f64>v);
}

/**
 * fused.ts ggmlExpf4 where relaxed_madd is a fused multiply-add (swiglu checks): each fma4 one relaxed_madd, the same
 * single rounding as ggml's _mm512_fmadd_ps, and scalef's j * 2^n as (j * 2^(n >> 1)) * 2^(n - (n >> 1)): both factors
 * normal for |n| <= 192 and the first product exact, so one rounding, as scalef (subnormal results included). Past
 * |n| > 192 the result is replaced, as there.
 */
// @ts-ignore: decorator
@inline function expfFused(x: v128, round: v128, log2e: v128, ln2hi: v128, ln2lo: v128, p0: v128, p1: v128, p2: v128, p3: v128,
  p4: v128, one: v128, limit: v128, inf: v128, k127: v128): v128 {
  const z = f32x4.relaxed_madd(x, log2e, round);
  const n = f32x4.sub(z, round);
  const negN = f32x4.neg(n);
  const b = f32x4.relaxed_madd(negN, ln2lo, f32x4.relaxed_madd(negN, ln2hi, x));
  const u = f32x4.mul(b, b);
  const j = f32x4.relaxed_madd(
    f32x4.relaxed_madd(f32x4.relaxed_madd(p0, b, p1), u, f32x4.relaxed_madd(p2, b, p3)), u, f32x4.relaxed_madd(p4, b, one),
  );
  // n as an integer: z holds it in its low mantissa bits (|n| <= 192; past that res is replaced), so one integer
  // subtraction of round's bits where trunc_sat costs about eight instructions in V8
  const nI = i32x4.sub(z, round), k1 = i32x4.shr_s(nI, 1);
  const s1 = i32x4.shl(i32x4.add(k1, k127), 23), s2 = i32x4.shl(i32x4.add(i32x4.sub(nI, k1), k127), 23);
  const res = f32x4.mul(f32x4.mul(j, s1), s2);
  const big = f32x4.gt(f32x4.abs(n), limit);
  const alt = v128.andnot(inf, f32x4.le(n, f32x4.splat(0)));
  return v128.bitselect(alt, res, big);
}

/** f64 lanes rounded to f32 precision (and back): what fma4's demote leaves of a result, in f64. */
// @ts-ignore: decorator
@inline function toF32(v: v128): v128 {
  return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(v));
}

/** fma(a, b, c) of f32 values held in f64 lanes: the f64 product and sum rounded to f32 once, as fma4 does. */
// @ts-ignore: decorator
@inline function fmaF64(a: v128, b: v128, c: v128): v128 {
  return toF32(f64x2.add(f64x2.mul(a, b), c));
}

/**
 * fused.ts ggmlExpf4 on two lanes held in f64 (each an f32 value), step for step, each result rounded to f32 where
 * ggmlExpf4 rounds it, so the same bits; without fma4's promotes, shuffles and demote around every multiply-add
 * (nine of them) it runs SwiGLU 1.25-1.3x faster in V8 and 1.4-1.45x in JavaScriptCore (bench/swiglu.bench.ts, which
 * checks the bits against ggmlExpf4's over every magnitude, the special values and random bit patterns).
 * Returns the two results in f64 lanes (each an f32 value).
 */
// @ts-ignore: decorator
@inline function ggmlExpf2(x: v128, round: v128, log2e: v128, ln2hi: v128, ln2lo: v128, p0: v128, p1: v128, p2: v128, p3: v128,
  p4: v128, one: v128, bias: v128, limit: v128, inf: v128): v128 {
  const z = fmaF64(x, log2e, round);
  // z - round is exact for |n| <= 192 (both near 2^23); past that the result is replaced below
  const n = toF32(f64x2.sub(z, round));
  const negN = f64x2.neg(n);
  const b = fmaF64(negN, ln2lo, fmaF64(negN, ln2hi, x));
  const u = toF32(f64x2.mul(b, b));
  const j = fmaF64(fmaF64(fmaF64(p0, b, p1), u, fmaF64(p2, b, p3)), u, fmaF64(p4, b, one));
  // scalef(j, n) = j * 2^n rounded once; for integer |n| <= 192, n + 2^52 + 1023 holds n + 1023 in its low mantissa
  // bits, which a shift by 52 makes the exponent of 2^n
  const scale = i64x2.shl(f64x2.add(n, bias), 52);
  const res = toF32(f64x2.mul(j, scale));
  const big = f64x2.gt(f64x2.abs(n), limit);
  const alt = v128.andnot(inf, f64x2.le(n, f64x2.splat(0)));
  return v128.bitselect(alt, res, big);
}

// ---------------------------------------------------------------- RoPE

/**
 * Rotary position embedding, in place, on T rows of nHeads heads of headDim.
 * cs: table (maxPos, ropeDim/2, 2) of (cos, sin) for each position and pair;
 * pos: T i32 positions. halves = 0 rotates interleaved pairs (x[2i], x[2i+1])
 * (GGUF llama, llama2.c); halves = 1 rotates (x[i], x[i + ropeDim/2]) (Hugging Face rotate_half).
 * Dimensions past ropeDim (partial rotary) are left alone.
 */
export function rope(x: usize, cs: usize, pos: usize, T: i32, nHeads: i32, headDim: i32, ropeDim: i32, halves: i32): void {
  const half = ropeDim >> 1;
  for (let t = 0; t < T; t++) {
    const p = load<i32>(pos + (<usize>t << 2));
    const c = cs + ((<usize>p * half) << 3);
    const row = x + ((<usize>t * nHeads * headDim) << 2);
    for (let h = 0; h < nHeads; h++) {
      const hp = row + ((<usize>h * headDim) << 2);
      for (let i = 0; i < half; i++) {
        const fc = load<f32>(c + (<usize>i << 3)), fs = load<f32>(c + (<usize>i << 3), 4);
        const ia = halves ? i : 2 * i, ib = halves ? i + half : 2 * i + 1;
        const a = f32At(hp, ia), b = f32At(hp, ib);
        // ggml's rotate_pairs as GCC contracts it: fma(a, cos, -(b sin)), fma(a, sin, b cos)
        setF32(hp, ia, fmaf(a, fc, -(b * fs)));
        setF32(hp, ib, fmaf(a, fs, b * fc));
      }
    }
  }
}

// ---------------------------------------------------------------- attention

/**
 * Causal grouped-query attention of one query row over the paged KV cache.
 * q (nHeads*headDim) -> out (nHeads*headDim), heads [h0, h1) only.
 * Positions [start, end) are attended (end = own position + 1; start > 0 for
 * a sliding window). Position p lives in page pageTable[p / pageSize] at
 * kvBase + page * pageBytes, slot p % pageSize; within a page this layer's K
 * rows start at kOff and V rows at vOff, each slot kvDim floats.
 * Query head h reads KV head h / (nHeads / nKvHeads): no K or V is copied.
 * att is scratch for (end - start) scores for each of the nHeads heads.
 * slopes: ALiBi's per-head slopes (nHeads f32), or 0: each score then gains
 * slope * (p - own position). topK > 0: sparse top-k attention, the softmax
 * over the topK best scores only (topkMask); sel is its scratch, 8 * topK
 * bytes per head at sel + 8 * topK * h.
 *
 * What each head computes, in this order (the order is the result: thread
 * splits and batches must not change a bit): each score one f32x4 chain over
 * the head's multiples of 4 summed as hsum does, then the scalar tail, times
 * 1/sqrt(headDim); the softmax weights (softmaxWeights); each output element
 * the sum over positions, in position order from +0, of weight * v.
 * How it is made fast without changing that: attendPaged (attn-paged.ts).
 */
export function attention(
  out: usize, q: usize, att: usize,
  kvBase: usize, pageTable: usize, pageSize: i32, pageBytes: i32, kOff: i32, vOff: i32, kvDim: i32,
  nHeads: i32, nKvHeads: i32, headDim: i32, start: i32, end: i32, h0: i32, h1: i32,
  slopes: usize, topK: i32, sel: usize,
): void {
  attendPaged<f32>(out, q, att, kvBase, pageTable, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim, start, end, h0, h1, slopes, topK, sel);
}

/** Copies n bytes (KV cache writes, copy-on-write of pages). */
export function copy(dst: usize, src: usize, n: usize): void {
  memory.copy(dst, src, n);
}

/**
 * Sum of n floats read as four far-apart streams with two accumulators each
 *  (the access pattern of the banded matmuls, minus the math): the
 * fastest way a kernel can read memory, so benchmarks measure the machine's
 * read bandwidth with it and report matmuls as a fraction of that.
 */
export function read_probe(x: usize, n: i32): f32 {
  const q = <usize>(n >> 6) << 6; // bytes per stream: n/4 floats, rounded down to 16 floats
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let c0 = f32x4.splat(0), c1 = f32x4.splat(0), c2 = f32x4.splat(0), c3 = f32x4.splat(0);
  for (let o: usize = 0; o < q; o += 32) {
    const p = x + o;
    a0 = f32x4.add(a0, v128.load(p)); a1 = f32x4.add(a1, v128.load(p + q));
    a2 = f32x4.add(a2, v128.load(p + 2 * q)); a3 = f32x4.add(a3, v128.load(p + 3 * q));
    c0 = f32x4.add(c0, v128.load(p, 16)); c1 = f32x4.add(c1, v128.load(p + q, 16));
    c2 = f32x4.add(c2, v128.load(p + 2 * q, 16)); c3 = f32x4.add(c3, v128.load(p + 3 * q, 16));
  }
  return hsum(f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3))));
}
