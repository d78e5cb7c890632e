/**
 * Q6_K and Q4_K in the KX layout (assembly/kquant-decode.ts): the repacked weights and the KX-ordered Q8_K
 * activations give the natural kernels' results bit for bit (matmul for T = 1 and T > 1, row ranges,
 * dequantization), in both builds; and a loaded model repacks its Q6_K and Q4_K weights outside ggmlOrder
 * and computes the same logits as without the repack.
 */
import { assert, assertEquals, sharedPath, test, testShared } from "./harness.ts";
import { type Build, BUILDS, instantiateBuilds, kquantActivations, q4kRows, q6kRows } from "./kernel-builds.ts";
import { loadModel } from "../src/model/load.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { NaturalLayout, promptLogitBits, weightsOf } from "./repacked-weights.ts";

const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
const kernels = instantiateBuilds(memory);
const QB = 210, AB = 292, Q4B = 144; // Q6_K, Q8_K and Q4_K block bytes

const W = 1 << 16, W2 = 4 << 20, X = 8 << 20, X2 = 9 << 20, XF = 10 << 20, O = 12 << 20, O2 = 14 << 20, TMP = 15 << 20;
const u8 = (at: number, n: number) => new Uint8Array(memory.buffer, at, n);
const u32 = (at: number, n: number) => new Uint32Array(memory.buffer, at, n).slice();

/** Natural Q6_K weights at W, the same repacked by build b at W2. */
function place(b: Build, n: number, d: number, seed: number): void {
  const w = q6kRows(n, d, seed);
  u8(W, w.length).set(w);
  u8(W2, w.length).set(w);
  kernels[b].repack_q6_kx(W2, w.length / QB, TMP);
}

/** Natural Q4_K weights at W, the same repacked by build b at W2. */
function place4(b: Build, n: number, d: number, seed: number): void {
  const w = q4kRows(n, d, seed);
  u8(W, w.length).set(w);
  u8(W2, w.length).set(w);
  kernels[b].repack_q4_kx(W2, w.length / Q4B, TMP);
}

/** The natural element of each byte of a KX half's 128 bytes (chunk c, byte j): the order the build documents. */
function kxOrder(b: Build): number[] {
  const out: number[] = [];
  for (let c = 0; c < 8; c++) {
    for (let j = 0; j < 16; j++) out.push(b === "relaxed" ? 16 * (j >> 1) + 2 * c + (j & 1) : 16 * (j & 7) + 2 * c + (j >> 3));
  }
  return out;
}

for (const b of BUILDS) {
  test(`quantize_q8_kx (${b}): quantize_q8_k's d, bsums and values, the values in the build's KX order`, () => {
    const k = kernels[b], n = 768, T = 2;
    new Float32Array(memory.buffer, XF, n * T).set(kquantActivations(n, T, 7));
    k.quantize_q8_k(X, XF, n, T);
    k.quantize_q8_kx(X2, XF, n, T);
    const nat = u8(X, AB * 6).slice(), kx = u8(X2, AB * 6).slice(), order = kxOrder(b);
    for (let blk = 0; blk < 6; blk++) {
      const p = blk * AB;
      assertEquals([...kx.subarray(p, p + 4)], [...nat.subarray(p, p + 4)], `d of block ${blk}`);
      assertEquals([...kx.subarray(p + 260, p + AB)], [...nat.subarray(p + 260, p + AB)], `bsums of block ${blk}`);
      for (let h = 0; h < 2; h++) {
        for (let i = 0; i < 128; i++) {
          const got = kx[p + 4 + 128 * h + i], want = nat[p + 4 + 128 * h + order[i]];
          if (got !== want) assertEquals(got, want, `block ${blk} half ${h} byte ${i}`);
        }
      }
    }
    assert(nat.subarray(AB + 4, AB + 260).every((v) => v === 0), "the all-zero superblock quantizes to zeros");
  });

  test(`dequantize_q6_kx (${b}): dequantize_q6_k of the natural bytes, bit for bit`, () => {
    const k = kernels[b], n = 1024;
    place(b, n, 3, 11);
    for (let r = 0; r < 3; r++) {
      k.dequantize_q6_k(O, W + r * 4 * QB, n);
      k.dequantize_q6_kx(O2, W2 + r * 4 * QB, n);
      assertEquals([...u32(O2, n)], [...u32(O, n)], `row ${r}`);
    }
  });

  test(`matmul_q6_kx (${b}): matmul_q6_k's floats bit for bit, T = 1 and T > 1, any row range`, () => {
    const k = kernels[b];
    for (const [n, d, T] of [[256, 7, 1], [768, 37, 1], [768, 64, 3], [512, 9, 5], [768, 21, 37]]) {
      place(b, n, d, n + d + T);
      new Float32Array(memory.buffer, XF, n * T).set(kquantActivations(n, T, T));
      k.quantize_q8_k(X, XF, n, T);
      k.quantize_q8_kx(X2, XF, n, T);
      k.matmul_q6_k(O, X, W, n, d, T, 0, d);
      const want = u32(O, d * T);
      k.matmul_q6_kx(O2, X2, W2, n, d, T, 0, d);
      assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}`);
      u8(O2, d * T * 4).fill(0);
      k.matmul_q6_kx(O2, X2, W2, n, d, T, 0, 16 < d ? 16 : d);
      if (d > 16) k.matmul_q6_kx(O2, X2, W2, n, d, T, 16, d);
      assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}, rows split at 16`);
    }
  });

  test(`repack_q4_kx (${b}): each half's chunks in the build's KX order, chunk 2k in the low nibbles of byte vector k, scales kept`, () => {
    const n = 512, order = kxOrder(b);
    place4(b, n, 1, 5);
    const nat = u8(W, 2 * Q4B).slice(), kx = u8(W2, 2 * Q4B).slice();
    for (let blk = 0; blk < 2; blk++) {
      const p = blk * Q4B;
      assertEquals([...kx.subarray(p, p + 16)], [...nat.subarray(p, p + 16)], `d, dmin, scales of block ${blk}`);
      // natural element e: byte 16 + 32 (e >> 6) + (e & 31), high nibble when e & 32
      const natural = (e: number) => (nat[p + 16 + 32 * (e >> 6) + (e & 31)] >> (e & 32 ? 4 : 0)) & 15;
      for (let h = 0; h < 2; h++) {
        for (let i = 0; i < 128; i++) {
          const c = i >> 4, got = (kx[p + 16 + 64 * h + 16 * (c >> 1) + (i & 15)] >> (4 * (c & 1))) & 15;
          const want = natural(128 * h + order[i]);
          if (got !== want) assertEquals(got, want, `block ${blk} half ${h} chunk ${c} byte ${i & 15}`);
        }
      }
    }
  });

  test(`dequantize_q4_kx (${b}): dequantize_q4_k of the natural bytes, bit for bit`, () => {
    const k = kernels[b], n = 1024;
    place4(b, n, 3, 13);
    for (let r = 0; r < 3; r++) {
      k.dequantize_q4_k(O, W + r * 4 * Q4B, n);
      k.dequantize_q4_kx(O2, W2 + r * 4 * Q4B, n);
      assertEquals([...u32(O2, n)], [...u32(O, n)], `row ${r}`);
    }
  });

  test(`matmul_q4_kx (${b}): matmul_q4_k's floats bit for bit, T = 1, 3, 5, 37, any row range; T > 1 rows as T = 1`, () => {
    const k = kernels[b];
    for (const [n, d, T] of [[256, 7, 1], [768, 37, 1], [768, 64, 3], [512, 9, 5], [768, 21, 37]]) {
      place4(b, n, d, 3 * n + d + T);
      const x = kquantActivations(n, T, T + 100);
      new Float32Array(memory.buffer, XF, n * T).set(x);
      k.quantize_q8_k(X, XF, n, T);
      k.quantize_q8_kx(X2, XF, n, T);
      k.matmul_q4_k(O, X, W, n, d, T, 0, d);
      const want = u32(O, d * T);
      k.matmul_q4_kx(O2, X2, W2, n, d, T, 0, d);
      assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}`);
      u8(O2, d * T * 4).fill(0);
      k.matmul_q4_kx(O2, X2, W2, n, d, T, 0, 16 < d ? 16 : d);
      if (d > 16) k.matmul_q4_kx(O2, X2, W2, n, d, T, 16, d);
      assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}, rows split at 16`);
      if (T > 1) {
        // batch invariance: each activation row alone gives its batched row
        for (let t = 0; t < T; t++) {
          k.matmul_q4_kx(O2, X2 + t * (n / 256) * AB, W2, n, d, 1, 0, d);
          assertEquals([...u32(O2, d)], [...want.subarray(t * d, (t + 1) * d)], `n ${n} d ${d} row ${t} of ${T} alone`);
        }
      }
    }
  });
}

for (const file of ["synthq-q6_k.gguf", "synthq-q4_k_m.gguf"]) {
  const at = sharedPath("models", "synthetic-quants", file);
  testShared(`${file}: Q6_K and Q4_K repacked to lanes at load (not ggmlOrder), logits as without the repack`, [at], async () => {
    const kx = new WasmBackend(), natural = new NaturalLayout();
    const a = await loadModel(at, { backend: kx, threads: 1 });
    const n = await loadModel(at, { backend: natural, threads: 1 });
    const exact = await loadModel(at, { threads: 1, ggmlOrder: true });
    try {
      const q6 = weightsOf(a).filter((w) => w.type === GGMLType.Q6_K);
      // (the lanes layout replaced KX for Q6_K too: tests/lanes-q6_k.test.ts; KX stays for its d % 4 tail rows)
      assert(q6.length > 0 && q6.every((w) => w.layout === "lanes"), "every Q6_K weight is repacked (lanes)");
      const q4 = weightsOf(a).filter((w) => w.type === GGMLType.Q4_K);
      // (the lanes layout replaced KX for Q4_K: tests/lanes-kquant.test.ts)
      assert(q4.every((w) => w.layout === "lanes"), "every Q4_K weight is repacked (lanes)");
      if (file.includes("q4_k")) assert(q4.length > 0, `${file} has Q4_K weights`);
      assert(weightsOf(exact).every((w) => w.layout === undefined), "ggmlOrder keeps ggml's layout");
      for (const ids of [[1, 50, 60, 70, 80, 90, 100], [1, 7]]) {
        assertEquals(await promptLogitBits(a, ids), await promptLogitBits(n, ids));
      }
    } finally {
      await a.close();
      await n.close();
      await exact.close();
    }
  });
}
