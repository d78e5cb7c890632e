/**
 * K-quant matmuls in ggml's order (assembly/kquant-ggml.ts) against scalar JS
 * models of llama.cpp's x86 ggml_vec_dot_q{2,3,4,5,6}_K_q8_K (the __AVX2__
 * branch, which the AVX-512 build compiles; every T goes through vec_dot, as
 * tinyBLAS takes no K-quants): bit for bit, in the plain and relaxed builds,
 * for T = 1 and T > 1 and a partial row range.
 *
 * The models read the weights through ggml's reference layout
 * (dequantize_row_q*_K), independently of the kernels' SIMD unpacking, and
 * then sum the way the AVX2 code does:
 *  - eight i32 lanes per superblock: lane l gets, from every 32-element
 *    sub-block, scale * sum of q * a over its elements 4l..4l+3 (maddubs pairs,
 *    madd with the 16-bit scales); Q6_K takes 32 * (sc . bsums) off lane l for
 *    bsums 2l and 2l+1, Q3_K's -4 is inside the products;
 *  - lanes to f32 (cvtdq2ps: rounds above 2^24, which the extreme rows reach),
 *    then acc = fma(d_a * d_w, lane, acc) per superblock; hsum_float_8 at the end;
 *  - mins: Q2_K fuses -d_a * dmin * (mins . bsums pairwise) into the same lanes
 *    before the scales' term; Q4_K keeps four fused lanes (acc_m, lane i: mins
 *    2i, 2i+1 times bsum pairs) folded after; Q5_K one scalar sum, which GCC
 *    contracts into vfmadd231ss (checked in the zen4 binary).
 * The fused multiply-add is modeled in f64 (the f32 product is exact there), as
 * the kernels emulate it.
 */
import { assertEquals, REPO, test } from "./harness.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import { f16ToF32 } from "../src/quant/half.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";
import type { MatmulKernel } from "../src/kernels/spec.ts";

const f = Math.fround;
const fma = (a: number, b: number, c: number) => f(a * b + c);
/** hsum_float_8: upper four onto lower, then lanes 2,3 onto 0,1, then lane 1 onto 0. */
function hsum8(v: number[]): number {
  const r = [0, 1, 2, 3].map((i) => f(v[i + 4] + v[i]));
  return f(f(r[0] + r[2]) + f(r[1] + r[3]));
}

type Kind = "q2_k" | "q3_k" | "q4_k" | "q5_k" | "q6_k";
const WBYTES: Record<Kind, number> = { q2_k: 84, q3_k: 110, q4_k: 144, q5_k: 176, q6_k: 210 };

/** Q4_K/Q5_K get_scale_min_k4: 6-bit scale and min j of the 12 bytes at s. */
function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}
/** Q3_K scale j (signed, -32..31) of the 12 bytes at s. */
function scaleQ3(b: Uint8Array, s: number, j: number): number {
  const low = j < 8 ? b[s + j] & 15 : b[s + j - 8] >> 4;
  return (low | (((b[s + 8 + (j & 3)] >> (2 * (j >> 2))) & 3) << 4)) - 32;
}

/**
 * Weight element e (0..255) of the superblock at w, as ggml's AVX2 code
 * multiplies it (Q6_K without its -32, Q3_K with its -4), and its integer scale.
 */
function weight(kind: Kind, b: Uint8Array, w: number, e: number): [number, number] {
  const n = e >> 7, l = e & 31;
  switch (kind) {
    case "q6_k": {
      const k = (e >> 5) & 3;
      const lo = (b[w + 64 * n + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 15;
      const hi = (b[w + 128 + 32 * n + l] >> (2 * k)) & 3;
      return [lo | (hi << 4), (b[w + 192 + (e >> 4)] << 24) >> 24];
    }
    case "q5_k": {
      const lo = (b[w + 48 + 32 * (e >> 6) + l] >> (4 * ((e >> 5) & 1))) & 15;
      return [lo | (((b[w + 16 + l] >> (e >> 5)) & 1) << 4), scaleMinK4(b, w + 4, e >> 5)[0]];
    }
    case "q4_k":
      return [(b[w + 16 + 32 * (e >> 6) + l] >> (4 * ((e >> 5) & 1))) & 15, scaleMinK4(b, w + 4, e >> 5)[0]];
    case "q3_k": {
      const j = (e >> 5) & 3;
      const q = (b[w + 32 + 32 * n + l] >> (2 * j)) & 3;
      return [q - ((b[w + l] >> (4 * n + j)) & 1 ? 0 : 4), scaleQ3(b, w + 96, e >> 4)];
    }
    case "q2_k":
      return [(b[w + 16 + 32 * n + l] >> (2 * ((e >> 5) & 3))) & 3, b[w + (e >> 4)] & 15];
  }
}

/** ggml_vec_dot_<kind>_q8_K on one row pair (nb superblocks at w and x), in scalar JS. */
function ggmlDot(kind: Kind, b: Uint8Array, w: number, x: number, nb: number): number {
  const v = new DataView(b.buffer, b.byteOffset);
  const acc = new Array(8).fill(0), accM = new Array(4).fill(0);
  let summs = 0;
  for (let i = 0; i < nb; i++, w += WBYTES[kind], x += 292) {
    const da = v.getFloat32(x, true);
    const bs = (j: number) => v.getInt16(x + 260 + 2 * j, true);
    const dOff = kind === "q2_k" ? 80 : kind === "q3_k" ? 108 : kind === "q6_k" ? 208 : 0;
    const d = f(da * f16ToF32(v.getUint16(w + dOff, true)));
    const lanes = new Array(8).fill(0);
    for (let c = 0; c < 8; c++) {
      for (let l = 0; l < 8; l++) {
        for (let k = 0; k < 4; k++) {
          const e = 32 * c + 4 * l + k;
          const [q, sc] = weight(kind, b, w, e);
          lanes[l] += sc * q * v.getInt8(x + 4 + e);
        }
      }
    }
    if (kind === "q6_k") {
      for (let l = 0; l < 8; l++) lanes[l] -= 32 * (v.getInt8(w + 192 + 2 * l) * bs(2 * l) + v.getInt8(w + 193 + 2 * l) * bs(2 * l + 1));
    }
    if (kind === "q2_k") {
      const dmin = f(-da * f16ToF32(v.getUint16(w + 82, true)));
      for (let l = 0; l < 8; l++) acc[l] = fma(dmin, f((b[w + 2 * l] >> 4) * bs(2 * l) + (b[w + 2 * l + 1] >> 4) * bs(2 * l + 1)), acc[l]);
    }
    if (kind === "q4_k" || kind === "q5_k") {
      const dmin = f(-da * f16ToF32(v.getUint16(w + 2, true)));
      const m = (j: number) => scaleMinK4(b, w + 4, j)[1];
      const q8s = (j: number) => bs(2 * j) + bs(2 * j + 1);
      const prod = [0, 1, 2, 3].map((k) => m(2 * k) * q8s(2 * k) + m(2 * k + 1) * q8s(2 * k + 1));
      if (kind === "q4_k") { for (let k = 0; k < 4; k++) accM[k] = fma(dmin, f(prod[k]), accM[k]); }
      else summs = fma(dmin, f(prod[0] + prod[1] + prod[2] + prod[3]), summs);
    }
    for (let l = 0; l < 8; l++) acc[l] = fma(d, f(lanes[l]), acc[l]);
  }
  const s = hsum8(acc);
  if (kind === "q5_k") return f(s + summs);
  if (kind === "q4_k") return f(s + f(f(accM[0] + accM[2]) + f(accM[1] + accM[3])));
  return s;
}

const KERNELS: [Kind, MatmulKernel][] = [
  ["q6_k", "matmul_q6_k_ggml"],
  ["q5_k", "matmul_q5_k_ggml"],
  ["q3_k", "matmul_q3_k_ggml"],
  ["q4_k", "matmul_q4_k_vecdot_ggml"],
  ["q2_k", "matmul_q2_k_vecdot_ggml"],
];

for (const [kind, name] of KERNELS) {
  test(`${name}: every output equals ggml's vec_dot order (lanes, fused per superblock, hsum_float_8), plain and relaxed, T = 1 and 4`, () => {
    const memory = new WebAssembly.Memory({ initial: 64 });
    const u8 = new Uint8Array(memory.buffer);
    const n = 512, nb = n / 256, d = 19, rowW = nb * WBYTES[kind], rowA = nb * 292;
    let seed = 20240607 + kind.charCodeAt(1);
    const rnd = () => ((seed ^= seed << 13, seed ^= seed >>> 17, seed ^= seed << 5) >>> 0) / 2 ** 32;
    const W = 65536, X = W + d * rowW, OUT = X + 4 * rowA;
    const dv = new DataView(memory.buffer);
    // weights: random bits (every scale and min byte pattern), normal f16 d / dmin; the
    // last two rows near the top of the range (all-ones bits; Q6_K: q 48..63, scales 100..127)
    for (let r = 0; r < d; r++) {
      for (let b = 0; b < nb; b++) {
        const p = W + r * rowW + b * WBYTES[kind];
        for (let i = 0; i < WBYTES[kind]; i++) u8[p + i] = Math.floor(rnd() * 256);
        if (r >= d - 2) {
          if (kind !== "q6_k") u8.fill(0xff, p, p + WBYTES[kind]);
          else {
            u8.fill(0xff, p + 128, p + 192);
            for (let i = 192; i < 208; i++) u8[p + i] = 100 + Math.floor(rnd() * 28);
          } // q 48..63, scales 100..127
        }
        const dOff = kind === "q2_k" ? 80 : kind === "q3_k" ? 108 : kind === "q6_k" ? 208 : 0;
        dv.setUint16(p + dOff, 0x1000 + Math.floor(rnd() * 0x2800), true);
        if (kind === "q2_k" || kind === "q4_k" || kind === "q5_k") dv.setUint16(p + dOff + 2, 0x1000 + Math.floor(rnd() * 0x2800), true);
      }
    }
    // activations: Q8_K blocks (-127..127, bsums = sums of 16); row 3 saturated, +127 on the
    // first four of every 32 elements and -127 elsewhere: lane 0 and the bsums terms pull
    // apart, so Q6_K's lanes pass 2^24 against the all-ones rows
    for (let t = 0; t < 4; t++) {
      for (let b = 0; b < nb; b++) {
        const q = X + t * rowA + b * 292;
        dv.setFloat32(q, (rnd() - 0.5) * 0.05, true);
        for (let j = 0; j < 256; j++) {
          dv.setInt8(q + 4 + j, t === 3 ? ((j & 31) < 4 ? 127 : -127) * (b & 1 ? -1 : 1) : Math.floor(rnd() * 255) - 127);
        }
        for (let j = 0; j < 16; j++) {
          let s = 0;
          for (let i = 0; i < 16; i++) s += dv.getInt8(q + 4 + 16 * j + i);
          dv.setInt16(q + 260 + 2 * j, s, true);
        }
      }
    }
    const want = new Float32Array(4 * d);
    for (let t = 0; t < 4; t++) for (let r = 0; r < d; r++) want[t * d + r] = ggmlDot(kind, u8, W + r * rowW, X + t * rowA, nb);
    for (const build of ["simd", "relaxed"]) {
      const bytes = fs.readFileSync(path.join(REPO, "build", `kvasm-${build}.wasm`));
      const k = checkKernelExports(new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports, build);
      for (const [T, r0, r1, x] of [[1, 0, d, X + 3 * rowA], [1, 2, 15, X], [4, 0, d, X], [4, 5, 18, X]]) {
        const out = new Float32Array(memory.buffer, OUT, T * d);
        out.fill(NaN);
        k[name](OUT, x, W, n, d, T, r0, r1);
        const t0 = (x - X) / rowA;
        for (let t = 0; t < T; t++) {
          for (let r = 0; r < d; r++) {
            const inRange = r >= r0 && r < r1;
            assertEquals(out[t * d + r], inRange ? want[(t0 + t) * d + r] : NaN, `${build} T=${T} rows ${r0}..${r1}: row ${r}, t ${t}`);
          }
        }
      }
    }
  });
}
