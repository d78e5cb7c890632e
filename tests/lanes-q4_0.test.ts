/**
 * Q4_0 in the lanes layout (assembly/lanes-q4_0.ts): the repacked weights give matmul_q4_0's results bit for bit through
 * matmul_q4_0_lanes and Bun's matmul_q4_0_lanes_q1 (T = 1, 3, 5, 37, row ranges split on 16-row chunk boundaries, row counts that leave a natural tail;
 * the two agree for every f16 scale pattern), each batched row
 * equals the row alone, dequantize of any row equals dequantize_q4_0 of
 * the natural row, the repack puts each byte where the header says, in both builds; and a loaded model repacks its
 * Q4_0 weights outside ggmlOrder (Deno and Bun) and computes the same logits as without the repack, on 1 and 2 threads.
 */
import { assert, assertEquals, sharedPath, test, testShared } from "./harness.ts";
import { type Build, BUILDS, instantiateBuilds, xorshift } from "./kernel-builds.ts";
import { f32ToF16 } from "../src/quant/half.ts";
import { loadModel } from "../src/model/load.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { NaturalLayout, promptLogitBits, weightsOf } from "./repacked-weights.ts";

const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
const kernels = instantiateBuilds(memory);
const WB = 18, AB = 40; // Q4_0 and Q8_S block bytes

/** d rows of n Q4_0 weights: every nibble value, f16 scales of both signs (a few zero). */
function q4Rows(n: number, d: number, seed: number): Uint8Array {
  const u = xorshift(seed), out = new Uint8Array((n / 32) * d * WB);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(u() * 256);
  const v = new DataView(out.buffer);
  for (let p = 0; p < out.length; p += WB) {
    const r = u();
    v.setUint16(p, r < 0.02 ? 0 : f32ToF16((r < 0.5 ? -1 : 1) * (0.001 + 0.05 * u())), true);
  }
  return out;
}

/** T rows of n activations, with an all-zero block and one whose largest magnitude is positive. */
function activations(n: number, T: number, seed: number): Float32Array {
  const u = xorshift(seed), x = new Float32Array(n * T);
  for (let i = 0; i < x.length; i++) x[i] = (u() - 0.5) * 4;
  x.fill(0, 32, 64);
  if (n * T >= 1024) x[700] = 9;
  return x;
}

const W = 1 << 16, W2 = 4 << 20, X = 8 << 20, XF = 10 << 20, O = 12 << 20, O2 = 14 << 20, TMP = 15 << 20;
const u8 = (at: number, n: number) => new Uint8Array(memory.buffer, at, n);
const u32 = (at: number, n: number) => new Uint32Array(memory.buffer, at, n).slice();

/** Natural Q4_0 weights at W, the same repacked by build b at W2; returns the natural bytes. */
function place(b: Build, n: number, d: number, seed: number): Uint8Array {
  const w = q4Rows(n, d, seed);
  u8(W, w.length).set(w);
  u8(W2, w.length).set(w);
  kernels[b].repack_q4_0_lanes(W2, n, d, TMP);
  return w;
}

/** Byte offset in a quad's block of row r's qs[j] (header of assembly/lanes-q4_0.ts): vector j >> 2, the build's order. */
function lanesByte(b: Build, r: number, j: number): number {
  const k = j & 3;
  return 8 + 16 * (j >> 2) + 4 * r + (b === "relaxed" ? k : [0, 2, 1, 3][k]);
}

// matmul_q4_0_lanes_q1: the same with T = 1 one quad per pass (Bun's kernel, src/quant/kernels.ts)
const MATMULS = ["matmul_q4_0_lanes", "matmul_q4_0_lanes_q1"] as const;

for (const b of BUILDS) {
  test(`repack_q4_0_lanes (${b}): per quad and block the four f16 scales, then qs interleaved in the build's order; tail rows kept`, () => {
    const n = 64, d = 6, nb = n / 32, ws = nb * WB;
    const nat = place(b, n, d, 3), lanes = u8(W2, nat.length).slice();
    for (let blk = 0; blk < nb; blk++) {
      const p = 72 * blk;
      for (let r = 0; r < 4; r++) {
        const s = r * ws + blk * WB;
        assertEquals([lanes[p + 2 * r], lanes[p + 2 * r + 1]], [nat[s], nat[s + 1]], `scale of row ${r} block ${blk}`);
        for (let j = 0; j < 16; j++) {
          if (lanes[p + lanesByte(b, r, j)] !== nat[s + 2 + j]) {
            assertEquals(lanes[p + lanesByte(b, r, j)], nat[s + 2 + j], `row ${r} qs ${j}`);
          }
        }
      }
    }
    assertEquals([...lanes.subarray(4 * ws)], [...nat.subarray(4 * ws)], "rows 4 and 5 (d % 4) stay natural");
  });

  test(`dequantize_q4_0_lanes (${b}): dequantize_q4_0 of the natural row, bit for bit, every row (tail included)`, () => {
    const k = kernels[b], n = 256, d = 11, ws = (n / 32) * WB;
    place(b, n, d, 5);
    for (let r = 0; r < d; r++) {
      k.dequantize_q4_0(O, W + r * ws, n);
      k.dequantize_q4_0_lanes(O2, W2, n, r, d);
      assertEquals([...u32(O2, n)], [...u32(O, n)], `row ${r}`);
    }
  });

  test(`matmul_q4_0_lanes (${b}): matmul_q4_0's floats bit for bit, T = 1, 3, 5, 37, any 16-aligned row range; T > 1 rows as T = 1`, () => {
    const k = kernels[b];
    for (
      const [n, d, T] of [[32, 4, 1], [256, 3, 1], [768, 70, 1], [768, 64, 3], [512, 36, 5], [768, 52, 37], [2048, 48, 1], [64, 13, 37]]
    ) {
      place(b, n, d, n + d + T);
      new Float32Array(memory.buffer, XF, n * T).set(activations(n, T, T + 100));
      k.quantize_q8_s(X, XF, n, T);
      k.matmul_q4_0(O, X, W, n, d, T, 0, d);
      const want = u32(O, d * T);
      for (const m of MATMULS) {
        u8(O2, d * T * 4).fill(0);
        k[m](O2, X, W2, n, d, T, 0, d);
        assertEquals([...u32(O2, d * T)], [...want], `${m} n ${n} d ${d} T ${T}`);
        u8(O2, d * T * 4).fill(0);
        for (let r0 = 0; r0 < d; r0 += 16) k[m](O2, X, W2, n, d, T, r0, Math.min(d, r0 + 16));
        assertEquals([...u32(O2, d * T)], [...want], `${m} n ${n} d ${d} T ${T}, rows in chunks of 16`);
        if (T > 1) {
          // batch invariance: each activation row alone gives its batched row
          for (let t = 0; t < T; t++) {
            k[m](O2, X + t * (n / 32) * AB, W2, n, d, 1, 0, d);
            assertEquals([...u32(O2, d)], [...want.subarray(t * d, (t + 1) * d)], `${m} n ${n} d ${d} row ${t} of ${T} alone`);
          }
        }
      }
    }
  });
  test(`matmul_q4_0_lanes_q1 (${b}): every f16 scale (subnormals, infinities, NaNs, both zeros) gives matmul_q4_0_lanes's bits, T = 1 and 2`, () => {
    // Bun's forms convert the scales by a multiply (f16quadMul), V8's by two shifts: all 65536 patterns, one per block
    const k = kernels[b], n = 256, d = 8192, nb = n / 32;
    const w = q4Rows(n, d, 11), v = new DataView(w.buffer);
    for (let blk = 0; blk < nb * d; blk++) v.setUint16(blk * WB, blk, true);
    u8(W2, w.length).set(w);
    k.repack_q4_0_lanes(W2, n, d, TMP);
    for (const T of [1, 2]) {
      new Float32Array(memory.buffer, XF, n * T).set(activations(n, T, 40 + T));
      k.quantize_q8_s(X, XF, n, T);
      k.matmul_q4_0_lanes(O, X, W2, n, d, T, 0, d);
      k.matmul_q4_0_lanes_q1(O2, X, W2, n, d, T, 0, d);
      const want = u32(O, d * T), got = u32(O2, d * T);
      const bad = want.findIndex((x, i) => x !== got[i]);
      assertEquals(bad, -1, `T ${T}: first differing output ${bad}`);
    }
  });
}

const synthq = sharedPath("models", "synthetic-quants", "synthq-q4_0.gguf");
testShared(
  "synthq-q4_0: Q4_0 weights (the embedding table too) repacked to lanes at load, logits as without, 1 and 2 threads",
  [synthq],
  async () => {
    const natural = await loadModel(synthq, { backend: new NaturalLayout(), threads: 1 });
    const exact = await loadModel(synthq, { threads: 1, ggmlOrder: true });
    try {
      assert(weightsOf(exact).every((w) => w.layout === undefined), "ggmlOrder keeps ggml's layout");
      const prompts = [[1, 50, 60, 70, 80, 90, 100], [1, 7]];
      const want = [];
      for (const ids of prompts) want.push(await promptLogitBits(natural, ids));
      for (const threads of [1, 2]) {
        const lanes = await loadModel(synthq, { threads });
        try {
          const q4 = weightsOf(lanes).filter((w) => w.type === GGMLType.Q4_0);
          assert(q4.length > 0 && q4.every((w) => w.layout === "lanes"), `every Q4_0 weight in the lanes layout (${threads} threads)`);
          for (let i = 0; i < prompts.length; i++) {
            assertEquals(await promptLogitBits(lanes, prompts[i]), want[i], `prompt ${i}, ${threads} threads`);
          }
        } finally {
          await lanes.close();
        }
      }
    } finally {
      await natural.close();
      await exact.close();
    }
  },
);
