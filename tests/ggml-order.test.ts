/**
 * Pieces of llama.cpp's x86 CPU arithmetic that kvasm reproduces bit for bit (the
 * golden tests show the sum; these pin each piece): glibc's sinf / cosf / expf on
 * inputs where they differ from the correctly rounded result, and the Q8_0 matmul
 * in ggml's order (eight lanes per output, one fused multiply-add per block,
 * hsum_float_8) against a scalar model of it, in the plain and relaxed builds.
 */
import { assert, assertEquals, REPO, test } from "./harness.ts";
import * as fs from "node:fs";
import * as path from "node:path";
import { cosf, expf, sinf } from "../src/model/libm.ts";
import { f16ToF32 } from "../src/quant/half.ts";
import { checkKernelExports } from "../src/kernels/wasm.ts";

/** A C hex float literal ("-0x1.8p+3"), which JS has no syntax for. */
function h(s: string): number {
  const m = /^(-?)0x1\.([0-9a-f]+)p([+-]\d+)$/.exec(s)!;
  const v = (1 + parseInt(m[2], 16) / 16 ** m[2].length) * 2 ** Number(m[3]);
  return m[1] ? -v : v;
}

// glibc 2.36 results where glibc is not correctly rounded (so Math.fround(Math.cos(x)) gives another f32)
const GLIBC: [string, (x: number) => number, (x: number) => number, number, number][] = [
  ["cosf", cosf, Math.cos, h("0x1.cd9124p+10"), h("0x1.1980dcp-1")],
  ["cosf", cosf, Math.cos, h("0x1.6d6f8ep+9"), h("-0x1.be89a0p-2")],
  ["cosf", cosf, Math.cos, h("0x1.a66ca4p+8"), h("0x1.e9ab06p-4")],
  ["sinf", sinf, Math.sin, h("0x1.169f00p+3"), h("0x1.50c8aap-1")],
  ["sinf", sinf, Math.sin, h("0x1.479ae8p+11"), h("0x1.5df3c2p-1")],
  ["sinf", sinf, Math.sin, h("0x1.00405cp+12"), h("-0x1.eedd1ap-3")],
  ["expf", expf, Math.exp, h("-0x1.57e7dep+3"), h("0x1.68db12p-16")],
  ["expf", expf, Math.exp, h("-0x1.935a3ep+4"), h("0x1.8c44acp-37")],
  ["expf", expf, Math.exp, h("-0x1.ced10ep+4"), h("0x1.34604cp-42")],
];

test("libm: sinf, cosf and expf return glibc's f32 where glibc is not correctly rounded", () => {
  for (const [name, ours, exact, x, glibc] of GLIBC) {
    assert(Math.fround(exact(x)) !== glibc, `${name}(${x}): a case where glibc differs from correct rounding`);
    assertEquals(ours(x), glibc, `${name}(${x})`);
  }
});

const f = Math.fround;
/** ggml_vec_dot_q8_0_q8_0 (AVX2/AVX-512 build) on one row pair, in scalar JS. */
function ggmlDotQ8_0(w: Uint8Array, x: Uint8Array, nb: number): number {
  const lanes = new Float64Array(8); // each holds an f32 value
  const wv = new DataView(w.buffer, w.byteOffset), xv = new DataView(x.buffer, x.byteOffset);
  for (let b = 0; b < nb; b++) {
    const d = f(f16ToF32(wv.getUint16(b * 34, true)) * f16ToF32(xv.getUint16(b * 34, true)));
    for (let l = 0; l < 8; l++) {
      let s = 0;
      for (let j = 4 * l; j < 4 * l + 4; j++) s += wv.getInt8(b * 34 + 2 + j) * xv.getInt8(b * 34 + 2 + j);
      lanes[l] = f(d * s + lanes[l]); // fused: d * s is exact in f64
    }
  }
  const r = [0, 1, 2, 3].map((i) => f(lanes[4 + i] + lanes[i]));
  return f(f(r[0] + r[2]) + f(r[1] + r[3]));
}

test("matmul_q8_0_ggml: every output equals ggml's lane-wise fused sum, plain and relaxed builds, any T and row range", () => {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const u8 = new Uint8Array(memory.buffer);
  const n = 256, d = 37, T = 3, nb = n / 32, rowB = nb * 34;
  let seed = 12345;
  const rnd = () => ((seed ^= seed << 13, seed ^= seed >>> 17, seed ^= seed << 5) >>> 0) / 2 ** 32;
  const block = (p: number) => {
    for (let b = 0; b < nb; b++) {
      const h = 0x2000 + Math.floor(rnd() * 0x1800); // normal f16 scales
      u8[p + b * 34] = h & 0xff;
      u8[p + b * 34 + 1] = h >> 8;
      for (let j = 0; j < 32; j++) u8[p + b * 34 + 2 + j] = (Math.floor(rnd() * 255) - 127) & 0xff; // -127..127
    }
  };
  const W = 65536, X = W + d * rowB, OUT = X + T * rowB;
  for (let r = 0; r < d; r++) block(W + r * rowB);
  for (let t = 0; t < T; t++) block(X + t * rowB);
  for (const build of ["simd", "relaxed"]) {
    const bytes = fs.readFileSync(path.join(REPO, "build", `kvasm-${build}.wasm`));
    const k = checkKernelExports(new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports, build);
    for (const [r0, r1] of [[0, d], [3, 30]]) {
      new Float32Array(memory.buffer, OUT, T * d).fill(NaN);
      k.matmul_q8_0_ggml(OUT, X, W, n, d, T, r0, r1);
      const out = new Float32Array(memory.buffer, OUT, T * d);
      for (let t = 0; t < T; t++) {
        for (let r = r0; r < r1; r++) {
          const want = ggmlDotQ8_0(u8.subarray(W + r * rowB, W + (r + 1) * rowB), u8.subarray(X + t * rowB, X + (t + 1) * rowB), nb);
          assertEquals(out[t * d + r], want, `${build}: row ${r}, t ${t}`);
        }
      }
    }
  }
});
