// Kernels of the GPT-2 / GPT-NeoX family: LayerNorm with a bias, bias add,
// and GELU in its two forms (tanh approximation, exact erf). Same conventions
// as f32.ts: byte addresses into the imported memory, outputs first, no
// allocation, no static data (so no library exp/tanh/erf with tables).

import { expf } from "./math";

// @ts-ignore: decorator
@inline function f32At(p: usize, i: i32): f32 { return load<f32>(p + (<usize>i << 2)); }
// @ts-ignore: decorator
@inline function setF32(p: usize, i: i32, v: f32): void { store<f32>(p + (<usize>i << 2), v); }

/**
 * LayerNorm of T rows: out (T,n) = (x - mean) / sqrt(var + eps) * w + b.
 * Mean and variance in f64 over two passes (PyTorch's f32 Welford agrees to
 * an ulp; a one-pass sum of squares would cancel for rows with a large mean).
 * b = 0: no bias (MPT's no_bias LayerNorm).
 */
export function layernorm(out: usize, x: usize, w: usize, b: usize, n: i32, eps: f32, T: i32): void {
  for (let t = 0; t < T; t++) {
    const xr = x + ((<usize>t * n) << 2), or = out + ((<usize>t * n) << 2);
    let sum: f64 = 0;
    for (let i = 0; i < n; i++) sum += <f64>f32At(xr, i);
    const mean = sum / <f64>n;
    let ss: f64 = 0;
    for (let i = 0; i < n; i++) {
      const d = <f64>f32At(xr, i) - mean;
      ss += d * d;
    }
    const scale = <f32>(1.0 / Math.sqrt(ss / <f64>n + <f64>eps));
    const m = <f32>mean;
    const m4 = f32x4.splat(m), s4 = f32x4.splat(scale);
    let i = 0;
    if (b == 0) {
      // no bias (MPT's no_bias): the same products, nothing added
      for (; i + 4 <= n; i += 4) {
        const o = <usize>i << 2;
        v128.store(or + o, f32x4.mul(f32x4.mul(f32x4.sub(v128.load(xr + o), m4), s4), v128.load(w + o)));
      }
      for (; i < n; i++) setF32(or, i, (f32At(xr, i) - m) * scale * f32At(w, i));
      continue;
    }
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const v = f32x4.mul(f32x4.sub(v128.load(xr + o), m4), s4);
      v128.store(or + o, f32x4.add(f32x4.mul(v, v128.load(w + o)), v128.load(b + o)));
    }
    for (; i < n; i++) setF32(or, i, (f32At(xr, i) - m) * scale * f32At(w, i) + f32At(b, i));
  }
}

/** x (T,n) += bias (n) on every row: the bias of a Linear layer, after its matmul. */
export function add_bias(x: usize, bias: usize, n: i32, T: i32): void {
  for (let t = 0; t < T; t++) {
    const xr = x + ((<usize>t * n) << 2);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(xr + o, f32x4.add(v128.load(xr + o), v128.load(bias + o)));
    }
    for (; i < n; i++) setF32(xr, i, f32At(xr, i) + f32At(bias, i));
  }
}

/**
 * GELU, tanh approximation (GPT-2's "gelu_new", "gelu_pytorch_tanh"):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanh(u) = (1 - e^-2|u|) / (1 + e^-2|u|) with u's sign.
 */
export function gelu_tanh(out: usize, x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const v = f32At(x, i);
    const u = <f32>0.7978845608028654 * (v + <f32>0.044715 * v * v * v);
    const e = expf(<f32>-2 * abs<f32>(u));
    let th = (<f32>1 - e) / (<f32>1 + e);
    if (u < 0) th = -th;
    setF32(out, i, <f32>0.5 * v * (<f32>1 + th));
  }
}

/**
 * GELU, exact form (PyTorch's default nn.GELU, GPT-NeoX / Pythia "gelu"): 0.5 x (1 + erf(x / sqrt 2)).
 * erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7), evaluated in f64.
 */
export function gelu_erf(out: usize, x: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const v = f32At(x, i);
    const z = <f64>v * 0.7071067811865476;
    const a = Math.abs(z);
    const t = 1.0 / (1.0 + 0.3275911 * a);
    const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * <f64>expf(<f32>(-a * a));
    if (z < 0) erf = -erf;
    setF32(out, i, <f32>(0.5 * <f64>v * (1.0 + erf)));
  }
}
