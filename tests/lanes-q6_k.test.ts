/**
 * Q6_K in the lanes layout (assembly/lanes-q6_k.ts): weights repacked quad by quad (the d % 4 last rows to KX)
 * and the KX-ordered Q8_K activations give matmul_q6_k's results bit for bit through matmul_q6_k_lanes and Bun's
 * matmul_q6_k_lanes_q1 (T = 1, 3, 5, 37, row ranges split on quad boundaries, each batched row equal to the row
 * alone) and dequantize_q6_k's rows, in both builds; and
 * loaded models (synthq-q6_k, synthq-q4_k_m, synthq-q4_0: a Q6_K classifier) compute the same logits with the
 * repack as without it, on 1 and 2 threads.
 */
import { assertEquals, sharedPath, test, testShared } from "./harness.ts";
import { type Build, BUILDS, instantiateBuilds, kquantActivations, q6kRows } from "./kernel-builds.ts";
import type { WasmBackend } from "../src/backends/wasm.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { assertFileRepackedAsNatural, assertRepackedAsNatural, weightOutputs } from "./repacked-weights.ts";

const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
const kernels = instantiateBuilds(memory);
const AB = 292, QB = 210; // Q8_K and Q6_K block bytes

const W = 1 << 16, W2 = 4 << 20, X = 8 << 20, X2 = 9 << 20, XF = 10 << 20, O = 12 << 20, O2 = 14 << 20, TMP = 15 << 20;
const u8 = (at: number, n: number) => new Uint8Array(memory.buffer, at, n);
const u32 = (at: number, n: number) => new Uint32Array(memory.buffer, at, n).slice();

/** Natural Q6_K weights at W, the same repacked into build b's lanes layout at W2. */
function place(b: Build, n: number, d: number, seed: number): void {
  const w = q6kRows(n, d, seed);
  u8(W, w.length).set(w);
  u8(W2, w.length).set(w);
  kernels[b].repack_q6_k_lanes(W2, n, d, TMP);
}

/** The 256 values (0..63) of the natural Q6_K block at bytes[p], as dequantize_q6_k unpacks them. */
function q6Values(bytes: Uint8Array, p: number): number[] {
  const out: number[] = [];
  for (let e = 0; e < 256; e++) {
    const n = e >> 7, l = e & 31, m = (e >> 5) & 3;
    const ql = bytes[p + 64 * n + l + 32 * (m & 1)], qh = bytes[p + 128 + 32 * n + l];
    out.push(((m >= 2 ? ql >> 4 : ql) & 15) | (((qh >> (2 * m)) & 3) << 4));
  }
  return out;
}

// matmul_q6_k_lanes_q1: the same with the fourth chunk by byte averages instead of shifts (Bun's kernel, src/quant/kernels.ts)
const MATMULS = ["matmul_q6_k_lanes", "matmul_q6_k_lanes_q1"] as const;

for (const b of BUILDS) {
  test(`repack_q6_k_lanes (${b}): the same values rearranged, each quad's scales and d, the last d % 4 rows as repack_q6_kx writes them`, () => {
    const k = kernels[b], n = 512, d = 7;
    place(b, n, d, 3);
    const nat = u8(W, d * 2 * QB).slice(), lanes = u8(W2, d * 2 * QB).slice();
    const hist = (values: number[]) => {
      const c = new Array(64).fill(0);
      for (const v of values) c[v]++;
      return c.join();
    };
    for (let blk = 0; blk < 2; blk++) {
      const at = blk * 4 * QB;
      // 48 bytes A, B, C per four chunks: the low 6 bits of each and the fourth chunk's pieces on top
      const mine: number[] = [];
      for (let v = at + 64; v < at + 832; v += 48) {
        for (let i = 0; i < 16; i++) {
          const A = lanes[v + i], B = lanes[v + 16 + i], C = lanes[v + 32 + i];
          mine.push(A & 63, B & 63, C & 63, (C >> 6) | ((B >> 6) << 2) | ((A >> 6) << 4));
        }
      }
      const theirs = [0, 1, 2, 3].flatMap((r) => q6Values(nat, (2 * r + blk) * QB));
      assertEquals(hist(mine), hist(theirs), `quad 0 superblock ${blk}: the same weights`);
      for (let r = 0; r < 4; r++) {
        const src = (2 * r + blk) * QB;
        assertEquals([...lanes.subarray(at + 832 + 2 * r, at + 834 + 2 * r)], [...nat.subarray(src + 208, src + 210)], `d of row ${r}`);
        for (let g = 0; g < 16; g++) assertEquals(lanes[at + 8 * (g >> 1) + 2 * r + (g & 1)], nat[src + 192 + g], `row ${r} scale ${g}`);
      }
    }
    u8(W2 + 4 * 2 * QB, 3 * 2 * QB).set(nat.subarray(4 * 2 * QB));
    k.repack_q6_kx(W2 + 4 * 2 * QB, 3 * 2, TMP);
    const tail = u8(W2 + 4 * 2 * QB, 3 * 2 * QB).slice();
    place(b, n, d, 3);
    assertEquals([...u8(W2 + 4 * 2 * QB, 3 * 2 * QB)], [...tail], "rows 4..6 in the KX layout");
  });

  test(`dequantize_q6_k_lanes (${b}): every row as dequantize_q6_k gives it from the natural bytes, bit for bit`, () => {
    const k = kernels[b], n = 768;
    for (const d of [4, 7, 9]) {
      place(b, n, d, 13 + d);
      for (let r = 0; r < d; r++) {
        k.dequantize_q6_k(O, W + r * 3 * QB, n);
        k.dequantize_q6_k_lanes(O2, W2, n, r, d);
        assertEquals([...u32(O2, n)], [...u32(O, n)], `d ${d} row ${r}`);
      }
    }
  });

  for (const mm of MATMULS) {
    test(`${mm} (${b}): matmul_q6_k's floats bit for bit, T = 1, 3, 5, 37, quad-aligned row ranges; T > 1 rows as T = 1`, () => {
      const k = kernels[b], matmul = k[mm];
      for (const [n, d, T] of [[256, 7, 1], [768, 37, 1], [512, 64, 1], [768, 64, 3], [512, 9, 5], [768, 21, 37], [256, 44, 6]]) {
        place(b, n, d, 3 * n + d + T);
        new Float32Array(memory.buffer, XF, n * T).set(kquantActivations(n, T, T + 100));
        k.quantize_q8_k(X, XF, n, T);
        k.quantize_q8_kx(X2, XF, n, T);
        k.matmul_q6_k(O, X, W, n, d, T, 0, d);
        const want = u32(O, d * T);
        matmul(O2, X2, W2, n, d, T, 0, d);
        assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}`);
        // row ranges on quad boundaries (as the thread pool's aligned chunks), the last one ending at d
        for (const cuts of [[0, 4, d], [0, 16, d], [0, 4, 12, 24, d]]) {
          if (cuts.some((c, i) => i > 0 && c <= cuts[i - 1])) continue;
          u8(O2, d * T * 4).fill(0);
          for (let i = 0; i + 1 < cuts.length; i++) matmul(O2, X2, W2, n, d, T, cuts[i], cuts[i + 1]);
          assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}, rows split at ${cuts.join(", ")}`);
        }
        if (T > 1) {
          // batch invariance: each activation row alone gives its batched row
          for (let t = 0; t < T; t++) {
            matmul(O2, X2 + t * (n / 256) * AB, W2, n, d, 1, 0, d);
            assertEquals([...u32(O2, d)], [...want.subarray(t * d, (t + 1) * d)], `n ${n} d ${d} row ${t} of ${T} alone`);
          }
        }
      }
    });
  }
}

/** A d x n Q6_K weight (q6kRows's random bytes) through `backend`: its products and rows, see weightOutputs. */
const outputs = (backend: WasmBackend, n: number, d: number, T: number) =>
  weightOutputs(backend, GGMLType.Q6_K, q6kRows(n, d, 77), kquantActivations(n, T, 9), n, d, T);

test("a 103x512 Q6_K weight repacked at load (3 KX tail rows): the natural layout's matmul (T = 1, 5) and embedding rows, 1 and 2 threads", async () => {
  await assertRepackedAsNatural(outputs, 512, 103, "lanes");
});

for (const file of ["synthq-q6_k.gguf", "synthq-q4_k_m.gguf", "synthq-q4_0.gguf"]) {
  const at = sharedPath("models", "synthetic-quants", file);
  testShared(
    `${file}: Q6_K weights in the lanes layout, logits and decode steps as ggml's layout gives them, 1 and 2 threads`,
    [at],
    () => assertFileRepackedAsNatural(at, GGMLType.Q6_K, "lanes"),
  );
}
