/**
 * The BF16, F16 and F32 matmuls in ggml's order (matmul_<type>_ggml) against
 * scalar models of llama.cpp's x86 AVX-512 CPU code, bit for bit, in the plain
 * and relaxed builds. llama.cpp picks the code by the number of activation
 * rows T: T = 1 runs the type's vec_dot (ggml-cpu/vec.cpp); T >= 2 runs
 * llamafile's tinyBLAS when n is a multiple of its step and d of 4, and
 * vec_dot per output otherwise. Each path keeps its own lanes and folds them
 * its own way, so each is modelled here and each shape below takes one of them.
 */
import { assertEquals, test } from "./harness.ts";
import { bf16ToF32, f16ToF32 } from "../src/quant/half.ts";
import { BUILDS, instantiateBuilds } from "./kernel-builds.ts";
import type { MatmulKernel } from "../src/kernels/spec.ts";

const f = Math.fround;
/** x86 FMA on f32: the product of two f32 is exact in a double, so one double add then rounding to f32 is the fused result (short of a double-rounding tie). */
const fma = (a: number, b: number, c: number) => f(a * b + c);

/** _mm512_reduce_add_ps as GCC 11 expands it: lane i += lane i+8, then i += i+4, then i += i+2, then lane 0 + lane 1. */
function reduce16(l: ArrayLike<number>): number {
  const a = Array.from({ length: 8 }, (_, i) => f(l[i] + l[i + 8]));
  const b = Array.from({ length: 4 }, (_, i) => f(a[i] + a[i + 4]));
  return f(f(b[0] + b[2]) + f(b[1] + b[3]));
}

// ---- BF16 (weights and activations both bf16 bits)

/** bf16 bits to a number with denormals read as zero (VDPBF16PS's DAZ). */
const daz = (h: number) => ((h & 0x7f80) === 0 ? 0 : bf16ToF32(h));
/**
 * One VDPBF16PS step on one lane: acc + a * b fused, round to nearest even;
 * a result below 2^-126 after rounding (to 24 bits, unbounded exponent)
 * flushes to a zero of its sign (FTZ). Checked on the Zen 4 host.
 */
function dp(acc: number, a: number, b: number): number {
  const s = acc + daz(a) * daz(b); // exact: the product has 16 significant bits
  if (Math.abs(s) < 2 ** -126 * (1 - 2 ** -25)) return s < 0 ? -0 : 0;
  return f(s);
}
/** Sixteen dpbf16 lanes over `steps` blocks of `stride` elements from `off`: lane i takes the odd element 2i+1, then the even 2i. */
function dpLanes(w: Uint16Array, x: Uint16Array, steps: number, stride: number, off: number): number[] {
  const l = new Array(16).fill(0);
  for (let s = 0; s < steps; s++) {
    for (let i = 0; i < 16; i++) {
      const e = s * stride + off + 2 * i;
      l[i] = dp(dp(l[i], w[e + 1], x[e + 1]), w[e], x[e]);
    }
  }
  return l;
}
/** ggml_vec_dot_bf16 (__AVX512BF16__): c1 over elements 64k..64k+31, c2 over the next 32; sumf (double) = reduce(c1) + reduce(c2) + leftover products (f32) one by one. */
function vecDotBf16(w: Uint16Array, x: Uint16Array, n: number): number {
  const k = Math.floor(n / 64);
  let s = 0;
  s += reduce16(dpLanes(w, x, k, 64, 0));
  s += reduce16(dpLanes(w, x, k, 64, 32));
  for (let i = 64 * k; i < n; i++) s += f(bf16ToF32(w[i]) * bf16ToF32(x[i]));
  return f(s);
}
/** tinyBLAS<32, __m512, __m512bh, ggml_bf16_t>: one dpbf16 accumulator per output over steps of 32, then hsum (reduce_add). */
const tinyBf16 = (w: Uint16Array, x: Uint16Array, n: number) => reduce16(dpLanes(w, x, n / 32, 32, 0));

// ---- F16 (weights f16 bits, activations f32 values of halves)

/** Four 16-lane accumulators as GGML_F16 / GGML_F32 (AVX-512) keep them: sum[j][i] over elements 64k + 16j + i; folded sum0 += sum2, sum1 += sum3, sum0 += sum1, then reduce_add. */
function vec4x16(w: (i: number) => number, x: (i: number) => number, n: number): number {
  const sum = Array.from({ length: 4 }, () => new Array(16).fill(0));
  for (let b = 0; b + 64 <= n; b += 64) {
    for (let j = 0; j < 4; j++) for (let i = 0; i < 16; i++) sum[j][i] = fma(w(b + 16 * j + i), x(b + 16 * j + i), sum[j][i]);
  }
  const s = Array.from({ length: 16 }, (_, i) => f(f(sum[0][i] + sum[2][i]) + f(sum[1][i] + sum[3][i])));
  return reduce16(s);
}
/** tinyBLAS<16, __m512, __m512, T>: one 16-lane FMA accumulator per output over steps of 16, then reduce_add. */
function tiny16(w: (i: number) => number, x: (i: number) => number, n: number): number {
  const l = new Array(16).fill(0);
  for (let b = 0; b < n; b += 16) for (let i = 0; i < 16; i++) l[i] = fma(w(b + i), x(b + i), l[i]);
  return reduce16(l);
}
/** ggml_vec_dot_f16: the folded sum as a double, plus the leftover products (f32) in double. */
function vecDotF16(w: (i: number) => number, x: (i: number) => number, n: number): number {
  let s = vec4x16(w, x, n);
  for (let i = n - (n % 64); i < n; i++) s += f(w(i) * x(i));
  return f(s);
}
/** ggml_vec_dot_f32: the folded sum stays a float; GCC compiled its leftover loop as multiply-then-add for the first L & ~7 elements and fused for the last L & 7. */
function vecDotF32(w: (i: number) => number, x: (i: number) => number, n: number): number {
  let s = vec4x16(w, x, n);
  const np = n - (n % 64), fused = n - (n % 8);
  for (let i = np; i < n; i++) s = i < fused ? f(s + f(w(i) * x(i))) : fma(w(i), x(i), s);
  return s;
}

let seed = 2024;
const rnd = () => ((seed ^= seed << 13, seed ^= seed >>> 17, seed ^= seed << 5) >>> 0) / 2 ** 32;
const f32b = new Float32Array(1), u32b = new Uint32Array(f32b.buffer);
/** A random f32: sign, exponent in [lo, hi], random mantissa; zero with probability pz. */
function randF32(lo: number, hi: number, pz = 0): number {
  if (rnd() < pz) return 0;
  const e = lo + Math.floor(rnd() * (hi - lo + 1));
  u32b[0] = (rnd() < 0.5 ? 0x80000000 : 0) | ((e + 127) << 23) | Math.floor(rnd() * 0x800000);
  return f32b[0];
}

const memory = new WebAssembly.Memory({ initial: 64 });
const kernels = instantiateBuilds(memory);
const builds = BUILDS.map((b) => [b, kernels[b]] as const);
const W = 65536;

/**
 * Runs the kernel for rows [r0, r1) of a (d, n) matrix against T activation
 * rows already in memory at W / X, in both builds, and checks every output
 * against want(r, t) bit for bit (zeros by sign too).
 */
function check(name: MatmulKernel, X: number, n: number, d: number, T: number, want: (r: number, t: number) => number) {
  const OUT = X + 4 * T * n + 64;
  const ref = Array.from({ length: T * d }, (_, i) => want(i % d, Math.floor(i / d)));
  for (const [build, k] of builds) {
    for (const [r0, r1] of [[0, d], [3, d - 1]]) {
      const out = new Float32Array(memory.buffer, OUT, T * d);
      out.fill(NaN);
      k[name](OUT, X, W, n, d, T, r0, r1);
      let bad = 0, first = "";
      for (let t = 0; t < T; t++) {
        for (let r = 0; r < d; r++) {
          const got = out[t * d + r], exp = r >= r0 && r < r1 ? ref[t * d + r] : NaN;
          if (!Object.is(got, exp)) {
            if (!bad) first = `row ${r}, t ${t}: ${got} vs ${exp}`;
            bad++;
          }
        }
      }
      assertEquals(bad, 0, `${name} ${build} n=${n} d=${d} T=${T} rows [${r0}, ${r1}): first ${first}`);
    }
  }
}

test("matmul_bf16_ggml: vec_dot_bf16 (T = 1, or tinyBLAS declines) and tinyBLAS (T >= 2) lanes of VDPBF16PS, plain and relaxed builds", () => {
  // [n, d, T, tiny]: n % 64 != 0 leaves vec_dot leftovers; n % 32 != 0 or d % 4 != 0 sends T >= 2 to vec_dot.
  // tiny: magnitudes down to the denormals, so that denormal inputs (read as 0), products below 2^-126 and
  // flushed sums all occur: the kernel's exact path.
  const shapes: [number, number, number, boolean][] = [
    [256, 12, 1, false],
    [256, 12, 3, false],
    [224, 12, 1, false],
    [224, 12, 2, false],
    [200, 12, 2, false],
    [256, 10, 2, false],
    [256, 12, 1, true],
    [256, 12, 3, true],
    [200, 10, 2, true],
  ];
  const toBf16 = (v: number) => {
    f32b[0] = v;
    return u32b[0] >>> 16;
  }; // exact: randF32 below is cut to bf16 bits
  const normal = () => toBf16(randF32(-8, 2, 0.05));
  const denormal = () => (rnd() < 0.5 ? 0x8000 : 0) | (1 + Math.floor(rnd() * 0x7f));
  const small = () => (rnd() < 0.03 ? denormal() : toBf16(randF32(-75, -55, 0.1)));
  for (const [n, d, T, tiny] of shapes) {
    const val = tiny ? small : normal;
    const w = new Uint16Array(memory.buffer, W, d * n);
    for (let i = 0; i < d * n; i++) w[i] = val();
    const X = W + 2 * d * n + 64;
    const x = new Uint16Array(memory.buffer, X, T * n);
    for (let i = 0; i < T * n; i++) x[i] = val();
    const wc = Uint16Array.from(w), xc = Uint16Array.from(x);
    const gemm = T >= 2 && n % 32 === 0 && d % 4 === 0;
    check("matmul_bf16_ggml", X, n, d, T, (r, t) => {
      const wr = wc.subarray(r * n, (r + 1) * n), xr = xc.subarray(t * n, (t + 1) * n);
      return gemm ? tinyBf16(wr, xr, n) : vecDotBf16(wr, xr, n);
    });
  }
});

test("matmul_f16_ggml: vec_dot_f16 (T = 1, or tinyBLAS declines) and tinyBLAS (T >= 2) lanes, plain and relaxed builds", () => {
  // weights: random finite halves, subnormals included; activations: halves held as f32 (what round_f16 gives)
  const half = () => {
    const e = Math.floor(rnd() * 31); // 0..30: subnormals and normals, no inf/NaN
    return (rnd() < 0.5 ? 0x8000 : 0) | (e << 10) | Math.floor(rnd() * 1024);
  };
  const small = () => (rnd() < 0.5 ? 0x8000 : 0) | ((2 + Math.floor(rnd() * 15)) << 10) | Math.floor(rnd() * 1024); // |h| < 2
  const shapes: [number, number, number][] = [[256, 12, 1], [256, 12, 3], [200, 12, 1], [200, 12, 2], [144, 12, 3], [256, 10, 2]];
  for (const [n, d, T] of shapes) {
    const w = new Uint16Array(memory.buffer, W, d * n);
    for (let i = 0; i < d * n; i++) w[i] = rnd() < 0.1 ? half() : small();
    const X = W + 2 * d * n + 64;
    const x = new Float32Array(memory.buffer, X, T * n);
    for (let i = 0; i < T * n; i++) x[i] = f16ToF32(rnd() < 0.1 ? half() : small());
    const wc = Float64Array.from(w, f16ToF32), xc = Float64Array.from(x);
    const gemm = T >= 2 && n % 16 === 0 && d % 4 === 0;
    check("matmul_f16_ggml", X, n, d, T, (r, t) => {
      const wi = (i: number) => wc[r * n + i], xi = (i: number) => xc[t * n + i];
      return gemm ? tiny16(wi, xi, n) : vecDotF16(wi, xi, n);
    });
  }
});

test("matmul_f32_ggml: vec_dot_f32 (T = 1, or tinyBLAS declines) and tinyBLAS (T >= 2) fused lanes, plain and relaxed builds", () => {
  // n = 127 and 199 leave 63 and 7 leftovers (multiply-then-add, then fused); n = 144 runs tinyBLAS with n % 64 != 0
  const shapes: [number, number, number][] = [[256, 12, 1], [256, 12, 3], [127, 12, 1], [199, 12, 2], [144, 12, 3], [256, 10, 2]];
  for (const [n, d, T] of shapes) {
    const w = new Float32Array(memory.buffer, W, d * n);
    for (let i = 0; i < d * n; i++) w[i] = randF32(-12, 3, 0.02);
    const X = W + 4 * d * n + 64;
    const x = new Float32Array(memory.buffer, X, T * n);
    for (let i = 0; i < T * n; i++) x[i] = randF32(-12, 3, 0.02);
    const wc = Float64Array.from(w), xc = Float64Array.from(x);
    const gemm = T >= 2 && n % 16 === 0 && d % 4 === 0;
    check("matmul_f32_ggml", X, n, d, T, (r, t) => {
      const wi = (i: number) => wc[r * n + i], xi = (i: number) => xc[t * n + i];
      return gemm ? tiny16(wi, xi, n) : vecDotF32(wi, xi, n);
    });
  }
});
