/**
 * The Q4_1, Q5_0 and Q5_1 matmuls in ggml's order (assembly/legacy-ggml.ts)
 * against scalar models of llama.cpp's x86 AVX-512 arithmetic, bit for bit, in
 * the plain and relaxed builds, for T = 1 and T >= 2 and several row ranges;
 * and the Q8_1 activations those kernels read (quantize_q8_1) against ggml's
 * x86 quantize_row_q8_1, whose stored s = d * sum feeds Q4_1/Q5_1's min term.
 */
import { assertEquals, REPO, test } from "./harness.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import { f16ToF32, f32ToF16 } from "../src/quant/half.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";
import type { MatmulKernel } from "../src/kernels/spec.ts";

const f = Math.fround;
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
/** An f32's bit pattern as hex (compares -0 and NaN payloads too, unlike JSON). */
const bits = (x: number) => (f32[0] = x, u32[0].toString(16));
const Q4_0 = "q4_0", Q4_1 = "q4_1", Q5_0 = "q5_0", Q5_1 = "q5_1";
type Kind = typeof Q4_0 | typeof Q4_1 | typeof Q5_0 | typeof Q5_1;
/** Q4_0 and Q5_0: value = unsigned - offset, Q8_0 activations, no min term. */
const symmetric = (k: Kind) => k === Q4_0 || k === Q5_0;
/** The kernel under test: Q4_0's vec_dot order is the fallback for weights llama.cpp does not repack. */
const kernel = (k: Kind): MatmulKernel => k === Q4_0 ? "matmul_q4_0_vecdot_ggml" : `matmul_${k}_ggml` as const;
/** Weight block bytes, activation block bytes (Q8_0 for Q5_0, Q8_1 otherwise). */
const WB: Record<Kind, number> = { q4_0: 18, q4_1: 20, q5_0: 22, q5_1: 24 };
const AB: Record<Kind, number> = { q4_0: 34, q4_1: 36, q5_0: 34, q5_1: 36 };

/** The 32 weight values of the block at o: nibble j (low nibbles first, as bytes_from_nibbles_32), plus bit j of qh x 16, minus 16 for Q5_0. */
function weights(kind: Kind, v: DataView, o: number): number[] {
  const qs = o + (kind === Q4_0 ? 2 : kind === Q4_1 ? 4 : kind === Q5_0 ? 6 : 8);
  const qh = kind === Q4_0 || kind === Q4_1 ? 0 : v.getUint32(o + (kind === Q5_0 ? 2 : 4), true);
  const out: number[] = [];
  for (let j = 0; j < 32; j++) {
    const nib = j < 16 ? v.getUint8(qs + j) & 15 : v.getUint8(qs + j - 16) >> 4;
    const hb = ((qh >>> j) & 1) << 4;
    out.push(kind === Q4_0 ? nib - 8 : kind === Q4_1 ? nib : kind === Q5_1 ? nib | hb : (nib | hb) - 16);
  }
  return out;
}

/**
 * ggml_vec_dot_q4_1_q8_1 / _q5_0_q8_0 / _q5_1_q8_1 (arch/x86/quants.c, AVX2
 * branch, VNNI dot; tinyBLAS_Q0_AVX sums Q5_0 the same way for T >= 2): eight
 * f32 lanes, lane l = integer dot of elements 4l..4l+3, acc_l = fma(f32(d_w *
 * d_a), lane, acc_l) per block; hsum_float_8 (upper four onto lower four, then
 * 2,3 onto 0,1, then 1 onto 0); Q4_1/Q5_1 add summs = fma(m_w, s_a, summs)
 * (GCC contracts `summs += m * s`; the f16 x f16 product is exact either way) at the end. fma is modelled as in the kernel:
 * the product is exact in f64, one f64 add, then rounding to f32.
 */
function ggmlDot(kind: Kind, wv: DataView, wo: number, xv: DataView, xo: number, nb: number): number {
  const lanes = new Float64Array(8); // each holds an f32 value
  let summs = 0;
  const qa = symmetric(kind) ? 2 : 4;
  for (let b = 0; b < nb; b++) {
    const w = wo + b * WB[kind], x = xo + b * AB[kind];
    const d = f(f16ToF32(wv.getUint16(w, true)) * f16ToF32(xv.getUint16(x, true)));
    const q = weights(kind, wv, w);
    for (let l = 0; l < 8; l++) {
      let s = 0;
      for (let j = 4 * l; j < 4 * l + 4; j++) s += q[j] * xv.getInt8(x + qa + j);
      lanes[l] = f(d * s + lanes[l]);
    }
    if (!symmetric(kind)) summs = f(f16ToF32(wv.getUint16(w + 2, true)) * f16ToF32(xv.getUint16(x + 2, true)) + summs);
  }
  const r = [0, 1, 2, 3].map((i) => f(lanes[4 + i] + lanes[i]));
  const h = f(f(r[0] + r[2]) + f(r[1] + r[3]));
  return symmetric(kind) ? h : f(h + summs);
}

let seed = 0x9e3779b9;
const rnd = () => ((seed ^= seed << 13, seed ^= seed >>> 17, seed ^= seed << 5) >>> 0) / 2 ** 32;
/** A normal f16 scale of either sign, magnitudes 2^-7 .. 2^-1. */
const scale = (signed: boolean) => (0x2000 + Math.floor(rnd() * 0x1800)) | (signed && rnd() < 0.5 ? 0x8000 : 0);

function instances(memory: WebAssembly.Memory) {
  return ["simd", "relaxed"].map((build) => {
    const bytes = fs.readFileSync(path.join(REPO, "build", `kvasm-${build}.wasm`));
    const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports;
    return [build, checkKernelExports(exports, build)] as const;
  });
}

for (const kind of [Q4_0, Q4_1, Q5_0, Q5_1] as Kind[]) {
  test(`${kernel(kind)}: every output equals ggml's lane-wise fused sum (+ min term), plain and relaxed builds, T = 1 and >= 2, any row range`, () => {
    const memory = new WebAssembly.Memory({ initial: 64 });
    const u8 = new Uint8Array(memory.buffer), view = new DataView(memory.buffer);
    const n = 256, d = 37, nb = n / 32, wRow = nb * WB[kind], aRow = nb * AB[kind];
    const W = 65536, X = W + d * wRow, OUT = X + 5 * aRow + 64;
    for (let r = 0; r < d; r++) {
      for (let b = 0; b < nb; b++) {
        const o = W + r * wRow + b * WB[kind];
        for (let i = 0; i < WB[kind]; i++) u8[o + i] = Math.floor(rnd() * 256); // qs and qh: any bits
        view.setUint16(o, scale(false), true); // d
        if (!symmetric(kind)) view.setUint16(o + 2, scale(true), true); // m (Q4_1 and Q5_1 mins are often negative)
      }
    }
    for (let t = 0; t < 5; t++) {
      for (let b = 0; b < nb; b++) {
        const o = X + t * aRow + b * AB[kind];
        view.setUint16(o, scale(false), true);
        if (!symmetric(kind)) view.setUint16(o + 2, scale(true), true); // s: any value works for the arithmetic
        for (let j = 0; j < 32; j++) view.setInt8(o + AB[kind] - 32 + j, Math.floor(rnd() * 255) - 127); // -127..127
      }
    }
    for (const [build, k] of instances(memory)) {
      for (const T of [1, 2, 5]) {
        // [3, 30): an odd count (the row-pair loop's last pair is one row); [5, 6): a single row
        for (const [r0, r1] of [[0, d], [3, 30], [5, 6]]) {
          new Float32Array(memory.buffer, OUT, T * d).fill(NaN);
          k[kernel(kind)](OUT, X, W, n, d, T, r0, r1);
          const out = new Float32Array(memory.buffer, OUT, T * d);
          for (let t = 0; t < T; t++) {
            for (let r = 0; r < d; r++) {
              if (r < r0 || r >= r1) {
                assertEquals(Number.isNaN(out[t * d + r]), true, `${build}: row ${r} outside [${r0}, ${r1}) untouched`);
                continue;
              }
              const want = ggmlDot(kind, view, W + r * wRow, view, X + t * aRow, nb);
              assertEquals(bits(out[t * d + r]), bits(want), `${build} T ${T}: row ${r}, t ${t} (${out[t * d + r]} vs ${want})`);
            }
          }
        }
      }
    }
  });
}

/**
 * ggml's x86 quantize_row_q8_1 (AVX2 branch): d = amax / 127 (f32), id = 127 / amax,
 * q = round-half-even(x * id), stored d = fp16(d), s = fp16(f32(d * Σq)) with the
 * f32 d (not the f16 one): two roundings, f32 then f16.
 */
function ggmlQ8_1(x: Float32Array): Uint8Array {
  const out = new Uint8Array(36), v = new DataView(out.buffer);
  const amax = x.reduce((m, e) => Math.max(m, Math.abs(e)), 0);
  const d = f(amax / 127), id = amax !== 0 ? f(127 / amax) : 0;
  let sum = 0;
  for (let j = 0; j < 32; j++) {
    const p = f(x[j] * id);
    let q = Math.round(p);
    if (q - p === 0.5 && q % 2 !== 0) q -= 1; // half to even
    sum += q;
    v.setInt8(4 + j, q);
  }
  v.setUint16(0, f32ToF16(d), true);
  v.setUint16(2, f32ToF16(f(d * sum)), true);
  return out;
}

test("quantize_q8_1 equals ggml's x86 quantize_row_q8_1 (d, s = d * sum, qs), plain and relaxed builds", () => {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const n = 256, T = 6, nb = n / 32, X = 65536, OUT = X + T * n * 4;
  const x = new Float32Array(memory.buffer, X, T * n);
  for (let i = 0; i < x.length; i++) {
    const t = Math.floor(i / n);
    // magnitudes from 1e-4 to 10 by row, a few outliers, one all-zero block, and in row 2
    // blocks with amax = 127 (id = 1) and halves elsewhere, where rounding is to even
    x[i] = (rnd() * 2 - 1) * 10 ** (t - 4) * (rnd() < 0.1 ? 9 : 1);
    if (t === 1 && i % n < 32) x[i] = 0;
    if (t === 2) x[i] = i % 32 === 0 ? 127 : (Math.floor(rnd() * 509) - 254) / 2;
  }
  for (const [build, k] of instances(memory)) {
    new Uint8Array(memory.buffer, OUT, T * nb * 36).fill(0xaa);
    k.quantize_q8_1(OUT, X, n, T);
    const got = new Uint8Array(memory.buffer, OUT, T * nb * 36);
    for (let b = 0; b < T * nb; b++) {
      const want = ggmlQ8_1(x.subarray(b * 32, b * 32 + 32));
      assertEquals(Array.from(got.subarray(b * 36, b * 36 + 36)), Array.from(want), `${build}: block ${b}`);
    }
  }
});
