/**
 * The quantized WebAssembly kernels (assembly/quant*.ts) against plain JS:
 * activation quantizers bit-exact with ggml's, matmuls against dequantized
 * weights x dequantized activations in float64, tiling/row-range invariance,
 * and relaxed vs plain SIMD builds.
 */
import { assert, assertClose, assertEquals, REPO, test } from "./harness.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import { GGMLType, type GGMLTypeId, ggmlTypeName, rowBytes } from "../src/formats/ggml-types.ts";
import { actRowBytes, QUANT_WEIGHT_TYPES, weightKernel } from "../src/quant/kernels.ts";
import { dequantizeRef } from "../src/quant/dequantize-ref.ts";
import { Q8_S } from "../src/quant/act-formats.ts";
import { f16ToF32, f32ToBf16, f32ToF16 } from "../src/quant/half.ts";
import { assertSupportedWeightType } from "../src/quant/types.ts";
import { UnsupportedError } from "../src/errors.ts";
import { assertRejects } from "./harness.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";
import type { Kernels, QuantizeKernel } from "../src/kernels/spec.ts";

const BUILDS = ["simd", "relaxed"] as const;
const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
const kernels: Record<string, Kernels> = {};
for (const b of BUILDS) {
  const bytes = fs.readFileSync(path.join(REPO, "build", `kvasm-${b}.wasm`));
  kernels[b] = checkKernelExports(new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports, b);
}

// A bump allocator above the reserved first 64 KiB; reset per test.
let top = 65536;
function alloc(bytes: number): number {
  const at = top;
  top += (bytes + 15) & ~15;
  assert(top <= memory.buffer.byteLength, "test arena too small");
  return at;
}
const put = (at: number, data: Uint8Array) => new Uint8Array(memory.buffer, at, data.length).set(data);
const bytesAt = (at: number, n: number) => new Uint8Array(memory.buffer, at, n).slice();
const floatsAt = (at: number, n: number) => new Float32Array(memory.buffer, at, n).slice();

// xorshift32 + Box-Muller: deterministic inputs
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  return { u, normal: () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) };
}

/** Random but valid weight rows: random quant bits, small positive f16 scales. */
function randomWeights(type: GGMLTypeId, n: number, d: number, seed: number): Uint8Array {
  const r = rng(seed);
  const rb = rowBytes(type, n)!;
  const out = new Uint8Array(rb * d);
  if (type === GGMLType.BF16) {
    const v = new DataView(out.buffer);
    for (let i = 0; i < n * d; i++) v.setUint16(2 * i, f32ToBf16(r.normal() * 0.1), true);
    return out;
  }
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(r.u() * 256);
  const v = new DataView(out.buffer);
  const [qk, bs] = type >= GGMLType.Q2_K ? [256, rowBytes(type, 256)!] : [32, rowBytes(type, 32)!];
  const scale = (o: number, x: number) => v.setUint16(o, f32ToF16(x), true);
  for (let b = 0; b < (n / qk) * d; b++) {
    const p = b * bs;
    const s1 = 0.001 + 0.01 * r.u(), s2 = 0.001 + 0.01 * r.u();
    switch (type) {
      case GGMLType.Q8_0:
        scale(p, s1);
        for (let j = 2; j < 34; j++) if (out[p + j] === 0x80) out[p + j] = 0x81; // ggml never writes -128
        break;
      case GGMLType.Q4_0:
      case GGMLType.Q5_0:
        scale(p, s1);
        break;
      case GGMLType.Q4_1:
      case GGMLType.Q5_1:
        scale(p, s1);
        scale(p + 2, -s2);
        break;
      case GGMLType.Q2_K:
        scale(p + 80, s1);
        scale(p + 82, s2);
        break;
      case GGMLType.Q3_K:
        scale(p + 108, s1);
        break;
      case GGMLType.Q4_K:
      case GGMLType.Q5_K:
        scale(p, s1);
        scale(p + 2, s2);
        break;
      case GGMLType.Q6_K:
        scale(p + 208, s1);
        break;
    }
  }
  return out;
}

function randomActs(n: number, T: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n * T);
  for (let i = 0; i < x.length; i++) x[i] = r.normal() * (i % 97 === 0 ? 4 : 1);
  return x;
}

function quantizeActs(build: string, kernel: QuantizeKernel, actType: GGMLTypeId, x: Float32Array, n: number, T: number): number {
  const xp = alloc(x.length * 4);
  new Float32Array(memory.buffer, xp, x.length).set(x);
  const qp = alloc(actRowBytes(actType, n) * T);
  kernels[build][kernel](qp, xp, n, T);
  return qp;
}

// ------------------------------------------------------------------ JS references for the activation quantizers
const fr = Math.fround;
/** ggml x86 quantize_row_q8_0 / q8_1: d = amax/127, q = round-half-even(x * 127/amax). */
function refQ8(x: Float32Array, _n: number, one: boolean): Uint8Array {
  const bs = one ? 36 : 34, out = new Uint8Array((x.length / 32) * bs), v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = fr(amax / 127), id = amax ? fr(127 / amax) : 0;
    v.setUint16(b * bs, f32ToF16(d), true);
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const q = roundEven(fr(x[b * 32 + j] * id));
      v.setInt8(b * bs + (one ? 4 : 2) + j, q);
      sum += q;
    }
    if (one) v.setUint16(b * bs + 2, f32ToF16(fr(d * sum)), true);
  }
  return out;
}
/** kvasm's Q8_S {f32 d; i32 sum; i8 qs[32]} from Q8_0 blocks: the same d (widened) and qs, and their sum. */
function refQ8S(q8_0: Uint8Array): Uint8Array {
  const nb = q8_0.length / 34, out = new Uint8Array(nb * 40), v = new DataView(out.buffer), src = new DataView(q8_0.buffer);
  for (let b = 0; b < nb; b++) {
    v.setFloat32(b * 40, f16ToF32(src.getUint16(b * 34, true)), true);
    out.set(q8_0.subarray(b * 34 + 2, b * 34 + 34), b * 40 + 8);
    let sum = 0;
    for (let j = 0; j < 32; j++) sum += src.getInt8(b * 34 + 2 + j);
    v.setInt32(b * 40 + 4, sum, true);
  }
  return out;
}
function roundEven(f: number): number {
  const r = Math.round(f);
  return r - f === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
/** ggml quantize_row_q8_K_ref. */
function refQ8K(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 256) * 292), v = new DataView(out.buffer);
  for (let b = 0; b < x.length / 256; b++) {
    let max = 0, amax = 0;
    for (let j = 0; j < 256; j++) {
      const ax = Math.abs(x[b * 256 + j]);
      if (ax > amax) {
        amax = ax;
        max = x[b * 256 + j];
      }
    }
    if (!amax) continue;
    const iscale = fr(-127 / max);
    for (let j = 0; j < 256; j++) v.setInt8(b * 292 + 4 + j, Math.min(127, roundEven(fr(iscale * x[b * 256 + j]))));
    for (let j = 0; j < 16; j++) {
      let s = 0;
      for (let i = 0; i < 16; i++) s += v.getInt8(b * 292 + 4 + 16 * j + i);
      v.setInt16(b * 292 + 260 + 2 * j, s, true);
    }
    v.setFloat32(b * 292, fr(1 / iscale), true);
  }
  return out;
}

for (const build of BUILDS) {
  test(`quant kernels (${build}): activation quantizers are bit-exact with ggml's`, () => {
    top = 65536;
    const n = 512, T = 3;
    const x = randomActs(n, T, 7);
    x[5] = 0;
    x.fill(0, 256, 512); // an all-zero Q8_K block
    x[40] = 2.5 * (127 / 127); // ties are handled by the round-half-even paths
    assertEquals(bytesAt(quantizeActs(build, "quantize_q8_0", GGMLType.Q8_0, x, n, T), 34 * 16 * T), refQ8(x, n, false), "q8_0");
    assertEquals(bytesAt(quantizeActs(build, "quantize_q8_1", GGMLType.Q8_1, x, n, T), 36 * 16 * T), refQ8(x, n, true), "q8_1");
    assertEquals(bytesAt(quantizeActs(build, "quantize_q8_s", Q8_S, x, n, T), 40 * 16 * T), refQ8S(refQ8(x, n, false)), "q8_s");
    assertEquals(bytesAt(quantizeActs(build, "quantize_q8_k", GGMLType.Q8_K, x, n, T), 292 * 2 * T), refQ8K(x), "q8_k");
    const bf = new Uint8Array(2 * n * T), bv = new DataView(bf.buffer);
    x[7] = NaN;
    x[9] = 1 + 2 ** -8;
    x[11] = 1 + 3 * 2 ** -8; // NaN and both tie directions
    for (let i = 0; i < x.length; i++) bv.setUint16(2 * i, f32ToBf16(x[i]), true);
    assertEquals(bytesAt(quantizeActs(build, "quantize_bf16", GGMLType.BF16, x, n, T), 2 * n * T), bf, "bf16");
  });
}

for (const build of BUILDS) {
  // 5b01c75 and 6f4a51c replaced trunc_sat(nearest()) by the 1.5 * 2^23 add with a NaN mask, and Q8_K's scalar search
  // for its largest magnitude by a four-lane one; their argument is that the bytes stay ggml's in every case, held here
  // where random activations never go: ties at id = 1, NaN lanes, infinities, magnitude ties of opposite sign, all-NaN
  test(`quant kernels (${build}): the activation quantizers' ties, NaN and infinite blocks are ggml's`, () => {
    top = 65536;
    const n = 1024, T = 2;
    const x = randomActs(n, T, 11);
    // Q8_0 blocks (32): ties to even at id = 1 (amax 127), a NaN (the block's amax is NaN: all zero), +inf and -inf
    // (id = 0), -0s beside the ties
    x.set([127, 2.5, -3.5, 0.5, -0.5, 1.5, -1.5, 126.5, -126.5, 63.5, -0, 0, -2.5, 3.5], 0);
    x[32 + 5] = NaN;
    x[64 + 9] = Infinity;
    x[96 + 31] = -Infinity;
    // Q8_K blocks (256) of the second row: NaN lanes before and after the largest magnitude, which is reached first by
    // -5 and then by +5 (mx is the first: -5); an all-NaN block; a block whose largest magnitude is an infinity
    const r = n;
    x.fill(0.25, r, r + 256);
    x[r + 3] = NaN;
    x[r + 10] = -5;
    x[r + 20] = 5;
    x[r + 250] = NaN;
    x.fill(NaN, r + 256, r + 512);
    x[r + 512 + 77] = -Infinity;
    // Q8_K ties at iscale = 1 (mx = -127) in the last block
    x.set([-127, 2.5, -3.5, 0.5, -0.5, 1.5, 126.5, -126.5], r + 768);
    // a block with a NaN has a NaN d (and Q8_1's s = d * sum) whose sign and payload neither side defines: NaN on both
    // sides, then the rest byte for byte (its values are 0). Q8_S's f32 d is the f16 d widened exactly: NaN for those
    // blocks (so the matmul's output is NaN, not the block's zero values' 0), +inf for the infinite ones
    const nanD = (got: Uint8Array, want: Uint8Array, bs: number, offsets: number[], f32: boolean, what: string) => {
      const g = new DataView(got.buffer, got.byteOffset), w = new DataView(want.buffer);
      const read = (v: DataView, at: number) => f32 ? v.getFloat32(at, true) : f16ToF32(v.getUint16(at, true));
      for (let b = 0; b < want.length / bs; b++) {
        for (const o of offsets) {
          const at = b * bs + o;
          if (!Number.isNaN(read(w, at))) continue;
          assert(Number.isNaN(read(g, at)), `${what}: block ${b}'s NaN at ${o}`);
          got.set(want.subarray(at, at + (f32 ? 4 : 2)), at);
        }
      }
    };
    const q80 = bytesAt(quantizeActs(build, "quantize_q8_0", GGMLType.Q8_0, x, n, T), 34 * 32 * T), want80 = refQ8(x, n, false);
    nanD(q80, want80, 34, [0], false, "q8_0");
    assertEquals(q80, want80, "q8_0");
    const q81 = bytesAt(quantizeActs(build, "quantize_q8_1", GGMLType.Q8_1, x, n, T), 36 * 32 * T), want81 = refQ8(x, n, true);
    nanD(q81, want81, 36, [0, 2], false, "q8_1");
    assertEquals(q81, want81, "q8_1");
    const q8s = bytesAt(quantizeActs(build, "quantize_q8_s", Q8_S, x, n, T), 40 * 32 * T), want8s = refQ8S(refQ8(x, n, false));
    nanD(q8s, want8s, 40, [0], true, "q8_s");
    assertEquals(q8s, want8s, "q8_s");
    assertEquals(bytesAt(quantizeActs(build, "quantize_q8_k", GGMLType.Q8_K, x, n, T), 292 * 4 * T), refQ8K(x), "q8_k");
  });
}

/** float64 reference: dequantized weights x dequantized activations; also a per-output magnitude for tolerances. */
function reference(type: GGMLTypeId, w: Uint8Array, aq: Uint8Array, n: number, d: number, T: number) {
  const k = weightKernel(type);
  const wf = dequantizeRef(type, w, n * d), af = dequantizeRef(k.actType, aq, n * T);
  const out = new Float64Array(T * d), mag = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < d; r++) {
      let s = 0, m = 0;
      for (let i = 0; i < n; i++) {
        const p = wf[r * n + i] * af[t * n + i];
        s += p;
        m += Math.abs(p);
      }
      if (k.actType === GGMLType.Q8_1) {
        // ggml adds m_w * s_a with s_a = f16(d_a * Σq_a) stored in the block: model that rounding
        const wv = new DataView(w.buffer, w.byteOffset), av = new DataView(aq.buffer, aq.byteOffset);
        const wb = rowBytes(type, 32)!;
        for (let b = 0; b < n / 32; b++) {
          const mw = f16ToF32(wv.getUint16((r * n / 32 + b) * wb + 2, true));
          const sa = f16ToF32(av.getUint16((t * n / 32 + b) * 36 + 2, true));
          let asum = 0;
          for (let i = 0; i < 32; i++) asum += af[t * n + b * 32 + i];
          s += mw * (sa - asum);
        }
      }
      out[t * d + r] = s;
      mag[t * d + r] = m;
    }
  }
  return { out, mag };
}

function runMatmul(build: string, type: GGMLTypeId, wp: number, qp: number, n: number, d: number, T: number, ranges: [number, number][]) {
  const op = alloc(T * d * 4);
  new Float32Array(memory.buffer, op, T * d).fill(NaN);
  for (const [r0, r1] of ranges) kernels[build][weightKernel(type).matmul](op, qp, wp, n, d, T, r0, r1);
  return floatsAt(op, T * d);
}

for (const type of QUANT_WEIGHT_TYPES) {
  const name = ggmlTypeName(type);
  test(`quant kernels: matmul_${name.toLowerCase()} matches the JS reference (both builds, odd sizes, split rows)`, () => {
    const k = weightKernel(type);
    const n = type >= GGMLType.Q2_K && type <= GGMLType.Q6_K ? 512 : 96;
    const d = 7;
    for (const T of [1, 2, 3, 5, 16]) {
      top = 65536;
      const w = randomWeights(type, n, d, 1000 + type * 31 + T);
      const wp = alloc(w.length);
      put(wp, w);
      const x = randomActs(n, T, 99 + T);
      const results: Float32Array[] = [];
      for (const build of BUILDS) {
        const qp = quantizeActs(build, k.quantize, k.actType, x, n, T);
        const aq = bytesAt(qp, actRowBytes(k.actType, n) * T);
        const full = runMatmul(build, type, wp, qp, n, d, T, [[0, d]]);
        const split = runMatmul(build, type, wp, qp, n, d, T, [[0, 2], [2, 3], [3, 7]]);
        assertEquals(Array.from(split), Array.from(full), `${name} ${build} T=${T}: split rows`);
        const { out, mag } = reference(type, w, aq, n, d, T);
        for (let i = 0; i < out.length; i++) {
          const err = Math.abs(full[i] - out[i]) / Math.max(mag[i], 1e-30);
          assert(err <= 2e-6, `${name} ${build} T=${T} [${i}]: ${full[i]} vs ${out[i]} (rel. to magnitude ${err})`);
        }
        // against unquantized activations: within the activation quantization error
        const wf = dequantizeRef(type, w, n * d);
        for (let t = 0; t < T; t++) {
          for (let r = 0; r < d; r++) {
            let s = 0, m = 0;
            for (let i = 0; i < n; i++) {
              s += wf[r * n + i] * x[t * n + i];
              m += Math.abs(wf[r * n + i] * x[t * n + i]);
            }
            const tol = type === GGMLType.BF16 ? 1e-2 : 2e-2;
            assert(Math.abs(full[t * d + r] - s) <= tol * m, `${name} ${build} T=${T}: ${full[t * d + r]} vs f32 activations ${s}`);
          }
        }
        results.push(full);
      }
      assertEquals(Array.from(results[1]), Array.from(results[0]), `${name} T=${T}: relaxed vs plain`);
    }
  });
}

for (const type of QUANT_WEIGHT_TYPES) {
  test(`quant kernels: T>1 results equal T=1 results row by row (${ggmlTypeName(type)})`, () => {
    const k = weightKernel(type);
    // n = 4096: an activation row is >= 4 KiB, so the T > 1 kernels take the activation rows
    // in chunks of 4 (gemmChunk) and T = 11 ends in a partial chunk and a partial tile;
    // d = 9 with split rows ends in a partial tile of weight rows
    for (const [n, T] of [[256, 6], [4096, 11]]) {
      for (const build of BUILDS) {
        top = 65536;
        const d = 9;
        const w = randomWeights(type, n, d, 5 + type);
        const wp = alloc(w.length);
        put(wp, w);
        const x = randomActs(n, T, 3);
        const qp = quantizeActs(build, k.quantize, k.actType, x, n, T);
        const all = runMatmul(build, type, wp, qp, n, d, T, [[0, 5], [5, d]]);
        const ab = actRowBytes(k.actType, n);
        for (let t = 0; t < T; t++) {
          const one = runMatmul(build, type, wp, qp + t * ab, n, d, 1, [[0, d]]);
          assertEquals(Array.from(all.subarray(t * d, t * d + d)), Array.from(one), `${build} n=${n} t=${t}`);
        }
      }
    }
  });
}

for (const type of QUANT_WEIGHT_TYPES) {
  test(`quant kernels: dequantize_${ggmlTypeName(type).toLowerCase()} equals the JS reference bit for bit`, () => {
    top = 65536;
    const n = 512;
    const w = randomWeights(type, n, 2, 77 + type);
    const wp = alloc(w.length), op = alloc(n * 4);
    put(wp, w);
    for (const build of BUILDS) {
      kernels[build][weightKernel(type).dequantize](op, wp + rowBytes(type, n)!, n);
      assertEquals(Array.from(floatsAt(op, n)), Array.from(dequantizeRef(type, w.subarray(rowBytes(type, n)!), n)), build);
    }
  });
}

test("quant kernels: unsupported weight types are named in the error", async () => {
  await assertRejects(
    () => assertSupportedWeightType(GGMLType.IQ4_XS, "blk.0.ffn_up.weight"),
    UnsupportedError,
    /blk\.0\.ffn_up\.weight.*IQ4_XS/,
  );
  await assertRejects(() => assertSupportedWeightType(GGMLType.TQ2_0, "output.weight"), UnsupportedError, /TQ2_0/);
  await assertRejects(() => weightKernel(GGMLType.IQ4_NL), UnsupportedError, /IQ4_NL/);
  assertSupportedWeightType(GGMLType.Q4_K, "x"); // does not throw
  assertClose([actRowBytes(GGMLType.Q8_K, 512)], [584], 0);
});

test("quant kernels: the Q8_S reference names a row that does not split into blocks, and a short source", async () => {
  await assertRejects(() => dequantizeRef(Q8_S, new Uint8Array(80), 48), UnsupportedError, /Q8_S: 48 elements do not split/);
  await assertRejects(() => dequantizeRef(Q8_S, new Uint8Array(79), 64), RangeError, /Q8_S: need 80 bytes for 64 elements, got 79/);
  assertEquals(dequantizeRef(Q8_S, new Uint8Array(80), 64).length, 64);
});
