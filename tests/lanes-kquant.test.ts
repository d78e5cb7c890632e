/**
 * Q4_K in the lanes layout (assembly/lanes-kquant.ts): weights repacked quad by quad (the d % 4 last rows to
 * KX) and the KX-ordered Q8_K activations give matmul_q4_k's results bit for bit through matmul_q4_k_lanes,
 * Bun's matmul_q4_k_lanes_q1 and V8's matmul_q4_k_lanes_u8 where it applies (T = 1, 3, 5, 37, 128, row ranges
 * split on quad boundaries, each batched row equal to the row alone) and dequantize_q4_k's rows, in both builds;
 * and a loaded Q4_K_M model computes the same logits with the repack as without it, on 1 and 2 threads.
 */
import { assert, assertEquals, sharedPath, test, testShared } from "./harness.ts";
import { type Build, BUILDS, instantiateBuilds, kquantActivations, q4kRows } from "./kernel-builds.ts";
import type { WasmBackend } from "../src/backends/wasm.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { dotAddIsExactU8S8 } from "../src/kernels/wasm.ts";
import { lanesKernel } from "../src/quant/kernels.ts";
import { assertFileRepackedAsNatural, assertRepackedAsNatural, weightOutputs } from "./repacked-weights.ts";

const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
const kernels = instantiateBuilds(memory);
const AB = 292, QB = 144; // Q8_K and Q4_K block bytes

const W = 1 << 16, W2 = 4 << 20, X = 8 << 20, X2 = 9 << 20, XF = 10 << 20, O = 12 << 20, O2 = 14 << 20, TMP = 15 << 20;
const u8 = (at: number, n: number) => new Uint8Array(memory.buffer, at, n);
const u32 = (at: number, n: number) => new Uint32Array(memory.buffer, at, n).slice();

/** Natural Q4_K weights at W, the same repacked into build b's lanes layout at W2. */
function place(b: Build, n: number, d: number, seed: number): void {
  const w = q4kRows(n, d, seed);
  u8(W, w.length).set(w);
  u8(W2, w.length).set(w);
  kernels[b].repack_q4_k_lanes(W2, n, d, TMP);
}

for (const b of BUILDS) {
  test(`repack_q4_k_lanes (${b}): the same bytes rearranged, quads interleaved, the last d % 4 rows as repack_q4_kx writes them`, () => {
    const k = kernels[b], n = 512, d = 7;
    place(b, n, d, 3);
    const nat = u8(W, d * 2 * QB).slice(), lanes = u8(W2, d * 2 * QB).slice();
    // a quad superblock holds its four rows' nibbles: the same multiset of values
    const count = (bytes: Uint8Array) => {
      const c = new Array(16).fill(0);
      for (const v of bytes) c[v & 15]++, c[v >> 4]++;
      return c.join();
    };
    for (let blk = 0; blk < 2; blk++) {
      const mine = lanes.subarray(blk * 576 + 64, blk * 576 + 576);
      const theirs = [0, 1, 2, 3].flatMap((r) => [...nat.subarray((2 * r + blk) * QB + 16, (2 * r + blk + 1) * QB)]);
      assertEquals(count(mine), count(new Uint8Array(theirs)), `quad 0 superblock ${blk}: the same nibbles`);
      for (let r = 0; r < 4; r++) {
        const dAt = (2 * r + blk) * QB;
        assertEquals([...lanes.subarray(blk * 576 + 2 * r, blk * 576 + 2 * r + 2)], [...nat.subarray(dAt, dAt + 2)], `d of row ${r}`);
        assertEquals([...lanes.subarray(blk * 576 + 8 + 2 * r, blk * 576 + 10 + 2 * r)], [...nat.subarray(dAt + 2, dAt + 4)], `dmin`);
      }
    }
    u8(W2 + 4 * 2 * QB, 3 * 2 * QB).set(nat.subarray(4 * 2 * QB));
    k.repack_q4_kx(W2 + 4 * 2 * QB, 3 * 2, TMP);
    const tail = u8(W2 + 4 * 2 * QB, 3 * 2 * QB).slice();
    place(b, n, d, 3);
    assertEquals([...u8(W2 + 4 * 2 * QB, 3 * 2 * QB)], [...tail], "rows 4..6 in the KX layout");
  });

  test(`dequantize_q4_k_lanes (${b}): every row as dequantize_q4_k gives it from the natural bytes, bit for bit`, () => {
    const k = kernels[b], n = 768;
    for (const d of [4, 7, 9]) {
      place(b, n, d, 13 + d);
      for (let r = 0; r < d; r++) {
        k.dequantize_q4_k(O, W + r * 3 * QB, n);
        k.dequantize_q4_k_lanes(O2, W2, n, r, d);
        assertEquals([...u32(O2, n)], [...u32(O, n)], `d ${d} row ${r}`);
      }
    }
  });

  // matmul_q4_k_lanes_q1: the same with T = 1 one quad per pass (Bun's kernel, src/quant/kernels.ts); matmul_q4_k_lanes_u8:
  // T = 1 through the dot-add, exact only where it is a u8 x s8 product (dotAddIsExactU8S8: V8 with VNNI), so in the relaxed
  // build only there (the plain build's is matmul_q4_k_lanes)
  const u8Runs = b === "simd" || dotAddIsExactU8S8();
  for (const matmul of ["matmul_q4_k_lanes", "matmul_q4_k_lanes_q1", ...(u8Runs ? ["matmul_q4_k_lanes_u8" as const] : [])] as const) {
    test(`${matmul} (${b}): matmul_q4_k's floats bit for bit, T = 1, 3, 5, 37, 128, quad-aligned row ranges; T > 1 rows as T = 1`, () => {
      const k = kernels[b], lanes = k[matmul];
      const cases = [[256, 7, 1], [768, 37, 1], [512, 64, 1], [768, 64, 3], [512, 9, 5], [768, 21, 37], [256, 44, 6]];
      // prefill: pairs of quads over activation chunks four rows at a time (tile24), a last quad (tile), a KX tail row;
      // decode: 2 x 16 rows in four bands, a last quad, 3 KX tail rows (matmul_q4_k_lanes); 9 single quads (_q1)
      cases.push([768, 24, 128], [512, 13, 128], [1024, 39, 1]);
      for (const [n, d, T] of cases) {
        place(b, n, d, 3 * n + d + T);
        new Float32Array(memory.buffer, XF, n * T).set(kquantActivations(n, T, T + 100));
        k.quantize_q8_k(X, XF, n, T);
        k.quantize_q8_kx(X2, XF, n, T);
        k.matmul_q4_k(O, X, W, n, d, T, 0, d);
        const want = u32(O, d * T);
        lanes(O2, X2, W2, n, d, T, 0, d);
        assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}`);
        // row ranges on quad boundaries (as the thread pool's aligned chunks), the last one ending at d
        for (const cuts of [[0, 4, d], [0, 16, d], [0, 4, 12, 24, d]]) {
          if (cuts.some((c, i) => i > 0 && c <= cuts[i - 1])) continue;
          u8(O2, d * T * 4).fill(0);
          for (let i = 0; i + 1 < cuts.length; i++) lanes(O2, X2, W2, n, d, T, cuts[i], cuts[i + 1]);
          assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}, rows split at ${cuts.join(", ")}`);
        }
        if (T > 1) {
          // batch invariance: each activation row alone gives its batched row
          for (let t = 0; t < T; t++) {
            lanes(O2, X2 + t * (n / 256) * AB, W2, n, d, 1, 0, d);
            assertEquals([...u32(O2, d)], [...want.subarray(t * d, (t + 1) * d)], `n ${n} d ${d} row ${t} of ${T} alone`);
          }
        }
      }
    });
  }
}

test("Q4_K's matmul: matmul_q4_k_lanes_u8 only where the dot-add is an exact u8 x s8 product (lanesKernel)", () => {
  assertEquals(lanesKernel(GGMLType.Q4_K, true)?.matmul, "matmul_q4_k_lanes_u8");
  assert(lanesKernel(GGMLType.Q4_K, false)?.matmul !== "matmul_q4_k_lanes_u8", "a saturating dot-add keeps the lanes kernel");
});

/** A d x n Q4_K weight (q4kRows's random bytes) through `backend`: its products and rows, see weightOutputs. */
const outputs = (backend: WasmBackend, n: number, d: number, T: number) =>
  weightOutputs(backend, GGMLType.Q4_K, q4kRows(n, d, 77), kquantActivations(n, T, 9), n, d, T);

test("a 103x512 Q4_K weight repacked at load (3 KX tail rows): the natural layout's matmul (T = 1, 5) and embedding rows, 1 and 2 threads", async () => {
  await assertRepackedAsNatural(outputs, 512, 103, "lanes");
});

{
  const at = sharedPath("models", "synthetic-quants", "synthq-q4_k_m.gguf");
  testShared(
    "synthq-q4_k_m.gguf: Q4_K weights in the lanes layout, logits as ggml's layout gives them, 1 and 2 threads",
    [at],
    () => assertFileRepackedAsNatural(at, GGMLType.Q4_K, "lanes"),
  );
}
