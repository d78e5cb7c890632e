/**
 * The Q4_0, Q4_K and Q2_K matmuls in the order of llama.cpp's repacked x86
 * kernels (assembly/repack-ggml.ts) against scalar models of that order, bit
 * for bit, in the plain and relaxed builds. On this build llama.cpp repacks
 * every matmul weight of these types whose row count is a multiple of 8
 * (q4_0_8x8, q4_K_8x8, q2_K_8x8) and forward_mul_mat then runs gemm on the
 * first T - T % 4 activation rows (T > 3) and gemv on the rest
 * (ggml-cpu/repack.cpp, ggml-cpu/arch/x86/repack.cpp). Each output has one f32
 * accumulator (K-quants: one for d, one for dmin, subtracted at the end) and
 * one fused multiply-add per step of an exact integer sum; the step is what
 * differs between gemv and gemm (see stepsPerBlock).
 */
import { assert, assertEquals, REPO, test } from "./harness.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import { f16ToF32 } from "../src/quant/half.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";

const f = Math.fround;
const F = new Float32Array(1), U = new Uint32Array(F.buffer);
/** The f32 after x (toward +inf for up, -inf otherwise); x finite, nonzero. */
function nextF32(x: number, up: boolean): number {
  F[0] = x;
  U[0] += (x > 0) === up ? 1 : -1;
  return F[0];
}
/**
 * fma(a, b, c) rounded once to f32, as x86's vfmadd231ps: a * b is exact in
 * f64 (two f32), p + c rounds once to f64 with error e (TwoSum); rounding that
 * f64 to f32 is right unless it sits exactly halfway between two f32, where e
 * decides.
 */
function fmaf(a: number, b: number, c: number): number {
  const p = a * b, s = p + c;
  const bv = s - p, e = (p - (s - bv)) + (c - bv);
  const r = f(s);
  if (e === 0 || r === s) return r;
  const other = nextF32(r, s > r);
  if (s !== (r + other) / 2) return r;
  return (e > 0) === (other > r) ? other : r;
}

let seed = 0x2545f491;
const rnd = () => ((seed ^= seed << 13, seed ^= seed >>> 17, seed ^= seed << 5) >>> 0) / 2 ** 32;
const randF16 = () => 0x2000 + Math.floor(rnd() * 0x1800); // normal, positive

interface Kind {
  name: "q4_0" | "q4_k" | "q2_k";
  qk: number; // elements per weight block
  wb: number; // bytes per weight block
  ab: number; // bytes per activation block (Q8_0 or Q8_K)
  /** Fill one weight block at p (max: every value and scale at its largest). */
  weight(v: DataView, p: number, max: boolean): void;
  /**
   * The integer sums of one weight block against one activation block, one
   * entry per fused step: [Σ scale * q * a, Σ min * bsum] for K-quants, [Σ (q-8) a] for Q4_0.
   */
  steps(v: DataView, w: number, x: number, gemm: boolean): number[][];
  /** The float scales (f32) multiplying those sums: [d_w * d_a, dmin_w * d_a] or [d_w * d_a]. */
  scales(v: DataView, w: number, x: number): number[];
}

const i8 = (v: DataView, p: number) => v.getInt8(p);
const u8 = (v: DataView, p: number) => v.getUint8(p);
const h16 = (v: DataView, p: number) => f16ToF32(v.getUint16(p, true));

/** Q8_K activations: f32 d, 256 int8 (-127..127, as quantize_row_q8_K writes), 16 bsums (i16, sums of 16). */
function q8k(v: DataView, p: number, max: boolean): void {
  v.setFloat32(p, f(1e-3 + rnd() * 1e-2), true);
  for (let j = 0; j < 256; j++) v.setInt8(p + 4 + j, max ? 127 : Math.floor(rnd() * 255) - 127);
  for (let j = 0; j < 16; j++) {
    let s = 0;
    for (let l = 0; l < 16; l++) s += i8(v, p + 4 + 16 * j + l);
    v.setInt16(p + 260 + 2 * j, s, true);
  }
}
/** Q8_0 activations: f16 d, 32 int8 (-127..127). */
function q80(v: DataView, p: number, max: boolean): void {
  v.setUint16(p, randF16(), true);
  for (let j = 0; j < 32; j++) v.setInt8(p + 2 + j, max ? 127 : Math.floor(rnd() * 255) - 127);
}

/** Q4_K's 6-bit scale and min of sub-block j (get_scale_min_k4). */
function q4kScaleMin(v: DataView, p: number, j: number): [number, number] {
  const q = (i: number) => u8(v, p + 4 + i);
  if (j < 4) return [q(j) & 63, q(j + 4) & 63];
  return [(q(j + 4) & 0xf) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4)];
}

const KINDS: Kind[] = [
  {
    // gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx: one fused step per 32-block, both paths
    name: "q4_0",
    qk: 32,
    wb: 18,
    ab: 34,
    weight(v, p, max) {
      v.setUint16(p, randF16(), true);
      for (let j = 0; j < 16; j++) v.setUint8(p + 2 + j, max ? 0xff : Math.floor(rnd() * 256));
    },
    steps(v, w, x) {
      let s = 0;
      for (let l = 0; l < 16; l++) {
        s += ((u8(v, w + 2 + l) & 15) - 8) * i8(v, x + 2 + l);
        s += ((u8(v, w + 2 + l) >> 4) - 8) * i8(v, x + 18 + l);
      }
      return [[s]];
    },
    scales: (v, w, x) => [f(h16(v, w) * h16(v, x))],
  },
  {
    // ggml_gemv_q4_K_8x8_q8_K: one step per superblock; ggml_gemm_q4_K_8x8_q8_K: one per
    // 64 elements (its sb loop: sub-blocks 2c and 2c+1, with their two mins * bsum pairs)
    name: "q4_k",
    qk: 256,
    wb: 144,
    ab: 292,
    weight(v, p, max) {
      v.setUint16(p, randF16(), true);
      v.setUint16(p + 2, randF16(), true);
      for (let j = 0; j < 140; j++) v.setUint8(p + 4 + j, max ? 0xff : Math.floor(rnd() * 256));
    },
    steps(v, w, x, gemm) {
      const out: number[][] = [];
      for (let c = 0; c < 4; c++) {
        let dot = 0, mins = 0;
        for (const j of [2 * c, 2 * c + 1]) {
          const [sc, m] = q4kScaleMin(v, w, j);
          let s = 0;
          for (let l = 0; l < 32; l++) s += ((u8(v, w + 16 + 32 * c + l) >> (4 * (j & 1))) & 15) * i8(v, x + 4 + 32 * j + l);
          dot += sc * s;
          mins += m * (v.getInt16(x + 260 + 4 * j, true) + v.getInt16(x + 262 + 4 * j, true));
        }
        out.push([dot, mins]);
      }
      return gemm ? out : [[out.reduce((a, s) => a + s[0], 0), out.reduce((a, s) => a + s[1], 0)]];
    },
    scales: (v, w, x) => [f(h16(v, w) * v.getFloat32(x, true)), f(h16(v, w + 2) * v.getFloat32(x, true))],
  },
  {
    // ggml_gemv_q2_K_8x8_q8_K: one step per superblock; ggml_gemm_q2_K_8x8_q8_K: one per
    // 128 elements (its sb loop: 16-element sub-blocks 8h..8h+7)
    name: "q2_k",
    qk: 256,
    wb: 84,
    ab: 292,
    weight(v, p, max) {
      for (let j = 0; j < 80; j++) v.setUint8(p + j, max ? 0xff : Math.floor(rnd() * 256));
      v.setUint16(p + 80, randF16(), true);
      v.setUint16(p + 82, randF16(), true);
    },
    steps(v, w, x, gemm) {
      const out: number[][] = [];
      for (let h = 0; h < 2; h++) {
        let dot = 0, mins = 0;
        for (let j = 8 * h; j < 8 * h + 8; j++) {
          const sm = u8(v, w + j);
          let s = 0;
          for (let l = 0; l < 16; l++) {
            const e = 16 * j + l - 128 * h; // byte 32h + (e & 31), bits 2 * (e >> 5)
            s += ((u8(v, w + 16 + 32 * h + (e & 31)) >> (2 * (e >> 5))) & 3) * i8(v, x + 4 + 16 * j + l);
          }
          dot += (sm & 15) * s;
          mins += (sm >> 4) * v.getInt16(x + 260 + 2 * j, true);
        }
        out.push([dot, mins]);
      }
      return gemm ? out : [[out[0][0] + out[1][0], out[0][1] + out[1][1]]];
    },
    scales: (v, w, x) => [f(h16(v, w + 80) * v.getFloat32(x, true)), f(h16(v, w + 82) * v.getFloat32(x, true))],
  },
];

/** One output in ggml's order: fused steps into one (or two) f32 accumulators, block after block. */
function model(k: Kind, v: DataView, w: number, x: number, nb: number, gemm: boolean): number {
  const acc = [0, 0];
  for (let b = 0; b < nb; b++) {
    const wp = w + b * k.wb, xp = x + b * k.ab;
    const sc = k.scales(v, wp, xp);
    for (const sums of k.steps(v, wp, xp, gemm)) {
      for (let i = 0; i < sums.length; i++) acc[i] = fmaf(f(sums[i]), sc[i], acc[i]);
    }
  }
  return k.name === "q4_0" ? acc[0] : f(acc[0] - acc[1]);
}

const builds = ["simd", "relaxed"].map((build) => {
  const bytes = fs.readFileSync(path.join(REPO, "build", `kvasm-${build}.wasm`));
  return { build, module: new WebAssembly.Module(bytes) };
});

for (const k of KINDS) {
  test(`matmul_${k.name}_ggml: ggml's repacked gemv (T % 4 rows) and gemm (T - T % 4 rows, T > 3) orders, plain and relaxed builds`, () => {
    const memory = new WebAssembly.Memory({ initial: 16 });
    const v = new DataView(memory.buffer);
    const d = 40, Tmax = 9;
    for (const n of k.qk === 256 ? [256, 768] : [256, 96]) {
      const nb = n / k.qk, rowW = nb * k.wb, rowA = nb * k.ab;
      const W = 4096, X = W + d * rowW, OUT = (X + Tmax * rowA + 15) & ~15;
      assert(OUT + Tmax * d * 4 <= memory.buffer.byteLength);
      // row 0 and activation row 0 at their extremes: the largest integer sums (above 2^24
      // for Q4_K, so their conversion to f32 rounds) must stay exact
      for (let r = 0; r < d; r++) for (let b = 0; b < nb; b++) k.weight(v, W + r * rowW + b * k.wb, r === 0);
      for (let t = 0; t < Tmax; t++) {
        for (let b = 0; b < nb; b++) (k.ab === 292 ? q8k : q80)(v, X + t * rowA + b * k.ab, t === 0);
      }
      for (const { build, module } of builds) {
        const e = checkKernelExports(new WebAssembly.Instance(module, { env: { memory } }).exports, build);
        for (const T of [1, 3, 4, 6, 9]) {
          for (const [r0, r1] of [[0, d], [3, 30]]) {
            const out = new Float32Array(memory.buffer, OUT, T * d).fill(NaN);
            e[`matmul_${k.name}_ggml` as const](OUT, X, W, n, d, T, r0, r1);
            for (let t = 0; t < T; t++) {
              for (let r = 0; r < d; r++) {
                const got = out[t * d + r];
                if (r < r0 || r >= r1) {
                  assert(Number.isNaN(got), `${build}: row ${r} outside [${r0}, ${r1}) written`);
                  continue;
                }
                const want = model(k, v, W + r * rowW, X + t * rowA, nb, t < (T & ~3));
                if (!Object.is(got, want)) assertEquals(got, want, `${build} n ${n} T ${T} [${r0}, ${r1}): row ${r}, t ${t}`);
              }
            }
          }
        }
      }
    }
  });
}

test("matmul_{q4_0,q4_k,q2_k}_ggml: weights llama.cpp does not repack (rows % 8 != 0) take vec_dot's order", () => {
  const memory = new WebAssembly.Memory({ initial: 16 });
  const v = new DataView(memory.buffer);
  const d = 36, T = 5, n = 512;
  for (const k of KINDS) {
    const nb = n / k.qk, rowW = nb * k.wb, rowA = nb * k.ab;
    const W = 4096, X = W + d * rowW, A = (X + T * rowA + 15) & ~15, B = A + T * d * 4;
    for (let r = 0; r < d; r++) for (let b = 0; b < nb; b++) k.weight(v, W + r * rowW + b * k.wb, false);
    for (let t = 0; t < T; t++) for (let b = 0; b < nb; b++) (k.ab === 292 ? q8k : q80)(v, X + t * rowA + b * k.ab, false);
    for (const { build, module } of builds) {
      const e = checkKernelExports(new WebAssembly.Instance(module, { env: { memory } }).exports, build);
      e[`matmul_${k.name}_ggml` as const](A, X, W, n, d, T, 0, d);
      e[`matmul_${k.name}_vecdot_ggml` as const](B, X, W, n, d, T, 0, d);
      assertEquals([...new Float32Array(memory.buffer, A, T * d)], [...new Float32Array(memory.buffer, B, T * d)], `${build} ${k.name}`);
    }
  }
});
