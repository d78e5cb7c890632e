/**
 * Cross-row "lanes" weight layouts (src/quant/kernels.ts LANES_KERNELS) and their wiring: Q8_0's kernels
 * (assembly/lanes-q8_0.ts) give matmul_q8_0's and dequantize_q8_0's results bit for bit in both builds (T = 1,
 * 3, 5, 37, row ranges split on quads, rows past the last whole quad left natural); the thread pool's chunks
 * start on a layout's row groups; the WASM backend repacks at load outside ggmlOrder, and a repacked weight
 * gives the natural one's matmul and embedding rows (row counts not a multiple of the group included), on one
 * thread and two; a loaded Q8_0 model's logits are those of the same model without the repack.
 */
import { assert, assertEquals, sharedPath, test, testShared } from "./harness.ts";
import { type Build, BUILDS, instantiateBuilds, xorshift } from "./kernel-builds.ts";
import { ROW_ALIGN } from "../src/kernels/spec.ts";
import { f32ToF16 } from "../src/quant/half.ts";
import { LANES_KERNELS } from "../src/quant/kernels.ts";
import { chunkAlign, planChunks } from "../src/threads/control.ts";
import { threadSupport } from "../src/threads/spawn.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import type { Weight } from "../src/backends/backend.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { rowView } from "../src/architectures/blocks.ts";
import { UnsupportedError } from "../src/errors.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { NaturalLayout, weightOutputs, weightsOf } from "./repacked-weights.ts";

const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
const kernels = instantiateBuilds(memory);
const QB = 34, SB = 40; // Q8_0 and Q8_S block bytes

/** d rows of n Q8_0 weights as llama.cpp's quantizer writes them: values -127..127 (the ends included), small f16 d. */
function q8Rows(n: number, d: number, seed: number): Uint8Array {
  const u = xorshift(seed), out = new Uint8Array((n / 32) * d * QB);
  const v = new DataView(out.buffer);
  for (let p = 0; p < out.length; p += QB) {
    v.setUint16(p, f32ToF16(0.0005 + 0.01 * u()), true);
    for (let j = 0; j < 32; j++) v.setInt8(p + 2 + j, j === 5 ? 127 : j === 6 ? -127 : Math.floor(u() * 255) - 127);
  }
  return out;
}

/** T rows of n activations, one all-zero block, one block whose largest magnitude is negative. */
function activations(n: number, T: number, seed: number): Float32Array {
  const u = xorshift(seed), x = new Float32Array(n * T);
  for (let i = 0; i < x.length; i++) x[i] = (u() - 0.5) * 4;
  x.fill(0, 32, 64);
  if (x.length > 100) x[100] = -9;
  return x;
}

const W = 1 << 16, W2 = 4 << 20, X = 8 << 20, XF = 10 << 20, O = 12 << 20, O2 = 14 << 20, TMP = 15 << 20;
const u8 = (at: number, n: number) => new Uint8Array(memory.buffer, at, n);
const u32 = (at: number, n: number) => new Uint32Array(memory.buffer, at, n).slice();

/** Natural Q8_0 weights at W, the same repacked by build b at W2. */
function place(b: Build, n: number, d: number, seed: number): Uint8Array {
  const w = q8Rows(n, d, seed);
  u8(W, w.length).set(w);
  u8(W2, w.length).set(w);
  kernels[b].repack_q8_0_lanes(W2, n, d, TMP);
  return w;
}

/** Where row r's element k (0..3) of a group goes in its 16-byte vector (assembly/lanes-q8_0.ts; both builds). */
const lanePos = (r: number, k: number) => 4 * r + k;

for (const b of BUILDS) {
  test(`repack_q8_0_lanes (${b}): per quad and block the 4 scales, then vector g = elements 4g..4g+3 of the 4 rows; the last d % 4 rows kept`, () => {
    const n = 96, d = 11, nb = n / 32;
    const w = place(b, n, d, 3), lanes = u8(W2, w.length).slice();
    for (let quad = 0; quad < 2; quad++) {
      for (let blk = 0; blk < nb; blk++) {
        const o = quad * 4 * nb * QB + blk * 4 * QB;
        for (let r = 0; r < 4; r++) {
          const src = (4 * quad + r) * nb * QB + blk * QB;
          assertEquals([lanes[o + 2 * r], lanes[o + 2 * r + 1]], [w[src], w[src + 1]], `scale of row ${4 * quad + r} block ${blk}`);
          for (let e = 0; e < 32; e++) {
            const got = lanes[o + 8 + 16 * (e >> 2) + lanePos(r, e & 3)];
            if (got !== w[src + 2 + e]) assertEquals(got, w[src + 2 + e], `row ${4 * quad + r} block ${blk} element ${e}`);
          }
        }
      }
    }
    assertEquals([...lanes.subarray(8 * nb * QB)], [...w.subarray(8 * nb * QB)], "rows 8..10 stay natural");
  });

  test(`dequantize_q8_0_lanes (${b}): dequantize_q8_0 of the natural row, bit for bit, tail rows included`, () => {
    const k = kernels[b], n = 256, d = 7;
    place(b, n, d, 5);
    for (let r = 0; r < d; r++) {
      k.dequantize_q8_0(O, W + r * (n / 32) * QB, n);
      k.dequantize_q8_0_lanes(O2, W2, n, r, d);
      assertEquals([...u32(O2, n)], [...u32(O, n)], `row ${r}`);
    }
  });

  test(`matmul_q8_0_lanes (${b}): matmul_q8_0's floats bit for bit, T = 1, 3, 5, 37, rows split on quads, natural tail rows`, () => {
    const k = kernels[b];
    const cases = [[64, 16, 1], [256, 37, 1], [768, 64, 3], [512, 23, 5], [256, 52, 37], [96, 3, 2], [1024, 100, 1]];
    for (const [n, d, T] of cases) {
      place(b, n, d, n + d + T);
      new Float32Array(memory.buffer, XF, n * T).set(activations(n, T, T + d));
      k.quantize_q8_s(X, XF, n, T);
      k.matmul_q8_0(O, X, W, n, d, T, 0, d);
      const want = u32(O, d * T);
      k.matmul_q8_0_lanes(O2, X, W2, n, d, T, 0, d);
      assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}`);
      // row ranges as threads take them: on multiples of 16, then of 4 (the quads), the last one to d
      for (const cuts of [[0, 16], [0, 4, 20, 36], [0, 8]]) {
        const ranges = [...cuts.filter((c) => c < d), d];
        u8(O2, d * T * 4).fill(0);
        for (let i = 0; i + 1 < ranges.length; i++) k.matmul_q8_0_lanes(O2, X, W2, n, d, T, ranges[i], ranges[i + 1]);
        assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}, rows split at ${ranges.join(", ")}`);
      }
      if (T > 1) {
        // batch invariance: each activation row alone gives its batched row
        for (let t = 0; t < T; t++) {
          k.matmul_q8_0_lanes(O2, X + t * (n / 32) * SB, W2, n, d, 1, 0, d);
          assertEquals([...u32(O2, d)], [...want.subarray(t * d, (t + 1) * d)], `n ${n} d ${d} row ${t} of ${T} alone`);
        }
      }
    }
  });
}

test("lanes wiring: thread chunks of a matmul start on the row group (the lcm of the split's align and the group)", () => {
  assertEquals(chunkAlign(16, 4), 16);
  assertEquals(chunkAlign(16, 24), 48);
  assertEquals(chunkAlign(16, 3), 48);
  assertEquals(chunkAlign(1, 5), 5);
  for (const lanes of LANES_KERNELS.values()) assertEquals(chunkAlign(ROW_ALIGN, lanes.rowGroup) % lanes.rowGroup, 0);
  for (const group of [1, 3, 4, 8, 24, 32]) {
    for (const total of [3, 100, 1003, 2048, 32000]) {
      for (const threads of [2, 3, 8]) {
        const bounds: number[] = [];
        const n = planChunks(total, chunkAlign(ROW_ALIGN, group), threads, bounds);
        assertEquals(bounds[0], 0);
        assertEquals(bounds[n], total, `group ${group} total ${total}: the last chunk ends at total`);
        for (let i = 1; i < n; i++) {
          assert(
            bounds[i] % group === 0 && bounds[i] > bounds[i - 1],
            `group ${group} total ${total} threads ${threads}: chunk ${i} at ${bounds[i]}`,
          );
        }
      }
    }
  }
});

/**
 * A d x n Q8_0 weight in a fresh backend (its matmul scratch as the loader sizes it), prepared as at load; f32
 * activations at x (T rows) and room for T x d outputs at out.
 */
async function backendWith(backend: WasmBackend, n: number, d: number, T: number) {
  const bytes = (n / 32) * QB * d;
  await backend.init(bytes + 4 * n * T + 4 * d * T + backend.matmulScratchBytes(GGMLType.Q8_0, n, T) + (1 << 20));
  const scratchBytes = backend.matmulScratchBytes(GGMLType.Q8_0, n, T);
  backend.setMatmulScratch(backend.alloc(scratchBytes, "matmul scratch"), scratchBytes);
  const w: Weight = { name: "w", type: GGMLType.Q8_0, cols: n, rows: d, ptr: backend.alloc(bytes, "w"), bytes };
  backend.write(w.ptr, q8Rows(n, d, 77));
  backend.prepareWeight(w);
  const x = backend.alloc(4 * n * T, "x"), out = backend.alloc(4 * d * T, "out"), ids = backend.alloc(4 * d, "ids");
  backend.write(x, activations(n, T, 9));
  backend.write(ids, Int32Array.from({ length: d }, (_, i) => d - 1 - i));
  return { w, x, out, ids };
}

/** A d x n Q8_0 weight (q8Rows' random bytes) through `backend`: its products and rows, see weightOutputs. */
const outputs = (backend: WasmBackend, n: number, d: number, T: number) =>
  weightOutputs(backend, GGMLType.Q8_0, q8Rows(n, d, 77), activations(n, T, 9), n, d, T);

for (const [n, d] of [[256, 64], [512, 103]]) {
  test(`lanes wiring: a ${d}x${n} Q8_0 weight repacked at load gives the natural layout's matmul (T = 1, 5) and embedding rows`, async () => {
    for (const T of [1, 5]) {
      const lanes = await outputs(new WasmBackend(), n, d, T), natural = await outputs(new NaturalLayout(), n, d, T);
      assertEquals(lanes.layout, "lanes");
      assertEquals(natural.layout, undefined);
      assertEquals([...lanes.logits], [...natural.logits], `matmul, T = ${T}`);
      assertEquals([...lanes.rows], [...natural.rows], "embedding rows");
    }
    const exact = await outputs(new WasmBackend({ ggmlOrder: true }), n, d, 1);
    assertEquals(exact.layout, undefined, "ggmlOrder keeps ggml's layout");
  });
}

test("lanes wiring: two threads, every op split, give one thread's matmul over a repacked weight (1003 rows: a natural tail)", async () => {
  assert(threadSupport() !== undefined, "this runtime should have Workers and shared memory");
  for (const T of [1, 7]) {
    const one = await outputs(new NaturalLayout(), 256, 1003, T);
    const two = await outputs(new ThreadedWasmBackend({ threads: 2, minWork: 0 }), 256, 1003, T);
    assertEquals(two.layout, "lanes");
    assertEquals([...two.logits], [...one.logits], `T = ${T}`);
    assertEquals([...two.rows], [...one.rows], "embedding rows");
  }
});

test("lanes wiring: row views of a repacked weight (fused QKV, gate|up) keep the layout on group boundaries and compute as natural views", async () => {
  const n = 256, d = 103, T = 3;
  const run = async (backend: WasmBackend) => {
    const { w, x, out } = await backendWith(backend, n, d, T);
    try {
      const views = [rowView(w, 0, 48, "q"), rowView(w, 48, 32, "k"), rowView(w, 80, 23, "v")];
      const got: number[][] = [];
      for (const v of views) {
        backend.matmul(out, x, v, T);
        const o = new Float32Array(v.rows * T);
        await backend.read(out, o);
        got.push([...new Uint32Array(o.buffer)]);
      }
      let error: unknown;
      try {
        rowView(w, 2, 40, "misaligned");
      } catch (e) {
        error = e;
      }
      return { layouts: views.map((v) => v.layout), got, error };
    } finally {
      await backend.close();
    }
  };
  const lanes = await run(new WasmBackend()), natural = await run(new NaturalLayout());
  assertEquals(lanes.layouts, ["lanes", "lanes", "lanes"], "views on quad boundaries (the last one to the end) keep the layout");
  assertEquals(lanes.got, natural.got, "each view's matmul");
  assert(lanes.error instanceof UnsupportedError && /ggmlOrder/.test(lanes.error.message), "a view across a quad is a typed error");
  assertEquals(natural.error, undefined, "any view of a natural weight");
});

/** The prompt's logits, then those of two greedy steps. */
async function run(model: Model, ids: number[]): Promise<number[]> {
  const seq = model.newSequence();
  try {
    const all: number[] = [];
    let logits = await model.prefill(seq, ids);
    for (let step = 0; step < 3; step++) {
      all.push(...new Uint32Array(logits.slice().buffer));
      if (step === 2) break;
      const best = argmax(logits);
      logits = await model.decodeOne(seq, best);
    }
    return all;
  } finally {
    model.releaseSequence(seq);
  }
}

const SYNTH_Q8 = sharedPath("models", "synthetic-quants", "synthq-q8_0.gguf");
testShared(
  "synthq-q8_0.gguf: every Q8_0 weight repacked to lanes at load (not under ggmlOrder), logits as without the repack, 1 and 2 threads",
  [
    SYNTH_Q8,
  ],
  async () => {
    const models = [
      await loadModel(SYNTH_Q8, { backend: new NaturalLayout(), threads: 1 }),
      await loadModel(SYNTH_Q8, { backend: new WasmBackend(), threads: 1 }),
    ];
    assert(threadSupport() !== undefined, "this runtime should have Workers and shared memory");
    models.push(await loadModel(SYNTH_Q8, { backend: new ThreadedWasmBackend({ threads: 2, minWork: 0 }) }));
    const exact = await loadModel(SYNTH_Q8, { threads: 1, ggmlOrder: true });
    try {
      const q8 = weightsOf(models[1]).filter((w) => w.type === GGMLType.Q8_0);
      assert(q8.length > 0 && q8.every((w) => w.layout === "lanes"), "every Q8_0 weight is repacked (the token embeddings included)");
      assert(weightsOf(models[0]).every((w) => w.layout === undefined), "the natural backend keeps ggml's layout");
      assert(weightsOf(exact).every((w) => w.layout === undefined), "ggmlOrder keeps ggml's layout");
      for (const ids of [[1, 50, 60, 70, 80, 90, 100, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], [1, 7]]) {
        const want = await run(models[0], ids);
        for (const m of models.slice(1)) assertEquals(await run(m, ids), want, `${m.backend.name}, prompt of ${ids.length}`);
      }
    } finally {
      for (const m of [...models, exact]) await m.close();
    }
  },
);
