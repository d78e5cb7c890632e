// The WebGPU backend: greedy ids of the real stories260K files against llama.cpp's (by the near-tie
// rule of tests/near-tie.ts, the same on every adapter), logits against the WASM backend, selection
// ("auto" falls back where there is no WebGPU: Bun, Node, Deno without a driver), and typed errors.
// Runs on whatever adapter is present (lavapipe, OpenGL, a real GPU) and says which.
import { assert, assertClose, assertEquals, assertRejects, env, readJSON, runtime, sharedPath, test, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { WebGpuBackend, type WebGpuOptions } from "../src/backends/webgpu/backend.ts";
import { type RowForm, rowPlan } from "../src/backends/webgpu/wgsl-matmul.ts";
import { quantQ8_0Kernel } from "../src/backends/webgpu/wgsl-ops.ts";
import { sumSquares } from "../src/backends/webgpu/wgsl-common.ts";
import { autoTileShape, TILE_SHAPES, tileStorageBytes } from "../src/backends/webgpu/wgsl-tiled.ts";
import { requestAdapter, WebGpuError, webgpuStatus } from "../src/backends/webgpu/device.ts";
import { backendByName } from "../src/backends/webgpu/select.ts";
import { ParamError } from "../src/errors.ts";
import { generate, type GenerateOptions, nextRunAhead, RUN_AHEAD_MAX, RUN_AHEAD_MS } from "../src/generate.ts";
import { GREEDY_ROWS } from "../src/architectures/architecture.ts";
import { argmax, Sampler } from "../src/sampling/sampler.ts";
import { Rng } from "../src/sampling/rng.ts";
import type { SamplingParams } from "../src/sampling/params.ts";
import { DeviceSampler } from "../src/backends/webgpu/sample.ts";
import { GGMLType, type GGMLTypeId, rowBytes } from "../src/formats/ggml-types.ts";
import { BytesSource } from "../src/io/source.ts";
import { drain } from "./drain.ts";
import { logDispatches } from "./webgpu-log.ts";
import { adapterKind, compareGreedyIds, greedyAgainst, type ReferenceSteps, referenceSteps } from "./near-tie.ts";

interface GoldenRow {
  model: string;
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
}

const STORIES = (f: string) => sharedPath("models", "stories260K", f);
const GOLDEN = sharedPath("golden", "stories260K.json");
const SYNTH_GOLDEN = sharedPath("golden", "synthetic-quants.json");

const status = await webgpuStatus();
// Deno has WebGPU; under CI it must also have an adapter (.ci/run installs Mesa's software Vulkan)
const gpuExpected = runtime === "deno" && (status.available || env("CI") === "true");
if (runtime === "deno" && !status.available && !gpuExpected) console.warn(`skipping WebGPU model tests: ${status.reason}`);
if (status.available) {
  console.log(`WebGPU adapter: ${status.adapter} (${adapterKind(status.adapter, status.features, status.isFallbackAdapter)})`);
}

/** The reference's margins per file (kvasm's exact mode), computed once. */
const stepsCache = new Map<string, Promise<ReferenceSteps>>();
function stepsFor(path: string, ref: GoldenRow): Promise<ReferenceSteps> {
  const key = `${path}\0${ref.prompt_ids.join(",")}`;
  if (!stepsCache.has(key)) stepsCache.set(key, referenceSteps(path, ref));
  return stepsCache.get(key)!;
}

/** stories260K F32's logits of four greedy decode steps after a 3-id prefill, on a backend made with `opts`. */
async function stories260KDecodeLogits(opts: WebGpuOptions): Promise<Float32Array[]> {
  const model = await loadModel(STORIES("stories260K.gguf"), { backend: new WebGpuBackend(opts), contextLength: 64 });
  try {
    const seq = model.newSequence();
    let token = top2(await model.prefill(seq, [1, 403, 407]))[0];
    const out: Float32Array[] = [];
    for (let i = 0; i < 4; i++) {
      out.push((await model.decodeOne(seq, token)).slice());
      token = top2(out[i])[0];
    }
    return out;
  } finally {
    await model.close();
  }
}

function top2(l: Float32Array): [number, number] {
  let a = 0, b = -1;
  for (let i = 1; i < l.length; i++) {
    if (l[i] > l[a]) [a, b] = [i, a];
    else if (b < 0 || l[i] > l[b]) b = i;
  }
  return [a, b];
}

const gpuTest = (name: string, paths: string[], fn: () => Promise<void>) => {
  if (!gpuExpected) return;
  testShared(`webgpu: ${name}`, paths, async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    await fn();
  });
};

for (const file of ["stories260K.gguf", "stories260K-f16.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"]) {
  gpuTest(`${file} greedy ids equal llama.cpp's`, [STORIES(file), GOLDEN], async () => {
    const ref = readJSON<GoldenRow[]>(GOLDEN).find((r) => r.model === `stories260K/${file}`)!;
    const model = await loadModel(STORIES(file), { backend: "webgpu", contextLength: 256 });
    try {
      assertEquals(model.backend.name, "webgpu");
      assertEquals(model.tokenizer.encode(ref.prompt, { addBos: true }), ref.prompt_ids, "prompt ids");
      const agreed = await greedyAgainst(model, ref, await stepsFor(STORIES(file), ref));
      if (agreed < ref.greedy_ids.length) console.log(`  ${file}: agrees for ${agreed} steps, then a near tie of llama.cpp's own`);
    } finally {
      await model.close();
    }
  });
}

gpuTest("F32 logits agree with the WASM backend within 1e-3 (prefill, decode, batched rows)", [STORIES("stories260K.gguf")], async () => {
  const opts = { contextLength: 128, maxSequences: 2 };
  const gpu = await loadModel(STORIES("stories260K.gguf"), { ...opts, backend: "webgpu" });
  const cpu = await loadModel(STORIES("stories260K.gguf"), { ...opts, backend: new WasmBackend() });
  try {
    const [g1, g2, c1, c2] = [gpu.newSequence(), gpu.newSequence(), cpu.newSequence(), cpu.newSequence()];
    const prompt = [1, 403, 407, 261, 378];
    const check = (a: Float32Array, b: Float32Array, what: string) => {
      let scale = 0;
      for (const v of b) scale = Math.max(scale, Math.abs(v));
      assertClose(a, b, 1e-3, what, scale);
    };
    check(await gpu.prefill(g1, prompt), await cpu.prefill(c1, prompt), "prefill");
    let token = 432;
    for (let i = 0; i < 8; i++) {
      const a = await gpu.decodeOne(g1, token), b = await cpu.decodeOne(c1, token);
      check(a, b, `decode ${i}`);
      token = top2(b)[0];
    }
    // two sequences in one step: different lengths, one batch of rows
    const ga = await gpu.step([{ seq: g1, tokens: [token] }, { seq: g2, tokens: prompt }]);
    const ca = await cpu.step([{ seq: c1, tokens: [token] }, { seq: c2, tokens: prompt }]);
    check(ga[0], ca[0], "batched row 0");
    check(ga[1], ca[1], "batched row 1");
  } finally {
    await gpu.close();
    await cpu.close();
  }
});

// 72 prompt rows: past TILED_FROM and ATTENTION_ROWS_FROM, so every matmul of the prefill runs as workgroup-memory tiles
// (wgsl-tiled.ts) with the fused epilogues (Q/K/V + RoPE + KV write, gate/up + SwiGLU, residual) and attention takes 16
// rows a workgroup (wgsl-attention-rows.ts); the decode after it reads that KV cache
const LONG_PROMPT = Array.from({ length: 72 }, (_, i) => 1 + ((i * 37 + 11) % 500));
// The one-row kernels and the tiles do the same per-block arithmetic (only the order of the blocks' sums differs: the test
// above holds one matmul to 1e-5), so the model's logits agree to 3e-4 for F32, 1e-3 for F16 (its activations are rounded
// to half), and 2e-2 for quantized files, whose activations are quantized to 8 bits before every matmul: where a sum
// order moves a value across a rounding boundary, its 8-bit step carries through the layers (synthq-q4_k_m moved by 9e-3
// on an H200, 0 on lavapipe). Float weights are held to the WASM backend too (1e-3); quantized files' logits on the GPU
// part from WASM's by that much with either kernel (the goldens' near-tie rule above holds them to llama.cpp).
for (
  const [path, wasmToo, rowsTol] of [
    [STORIES("stories260K.gguf"), true, 3e-4],
    [STORIES("stories260K-f16.gguf"), true, 1e-3],
    [STORIES("stories260K-q8_0.gguf"), false, 2e-2],
    [STORIES("stories260K-q4_0.gguf"), false, 2e-2],
    [sharedPath("models", "synthetic-quants", "synthq-q4_k_m.gguf"), false, 2e-2],
  ] as const
) {
  const file = path.split("/").pop()!;
  gpuTest(`${file}: a 72-row prefill (tiled matmuls, many-row attention) agrees with one row at a time${wasmToo ? " and with WASM" : ""}`, [
    path,
  ], async () => {
    const gpu = await loadModel(path, { backend: "webgpu", contextLength: 128, maxSequences: 4 });
    const cpu = await loadModel(path, { backend: new WasmBackend(), contextLength: 128, maxSequences: 3 });
    try {
      const check = (a: Float32Array, b: Float32Array, what: string, tol: number = rowsTol) => {
        let scale = 0;
        for (const v of b) scale = Math.max(scale, Math.abs(v));
        assertClose(a, b, tol, `${file} ${what}`, scale);
      };
      const prompt = LONG_PROMPT.map((t) => t % gpu.vocabSize);
      const [tiled, rows, c] = [gpu.newSequence(), gpu.newSequence(), cpu.newSequence()];
      const a = (await gpu.prefill(tiled, prompt)).slice();
      let b = (await gpu.prefill(rows, prompt.slice(0, 1))).slice();
      for (const t of prompt.slice(1)) b = (await gpu.decodeOne(rows, t)).slice();
      check(a, b, "prefill vs one row at a time");
      const wasm = await cpu.prefill(c, prompt);
      if (wasmToo) check(a, wasm, "prefill vs WASM", 1e-3);
      if (wasmToo) {
        // a step of 36 + 36 rows of two sequences: the many-row attention takes one pass per sequence in a tile
        const [g1, g2, c1, c2] = [gpu.newSequence(), gpu.newSequence(), cpu.newSequence(), cpu.newSequence()];
        const x = prompt.slice(0, 36), y = prompt.slice(36, 72);
        const ga = await gpu.step([{ seq: g1, tokens: x }, { seq: g2, tokens: y }]);
        const ca = await cpu.step([{ seq: c1, tokens: x }, { seq: c2, tokens: y }]);
        check(ga[0], ca[0], "two sequences in one step, row 0", 1e-3);
        check(ga[1], ca[1], "two sequences in one step, row 1", 1e-3);
        for (const s of [g1, g2]) gpu.releaseSequence(s);
        for (const s of [c1, c2]) cpu.releaseSequence(s);
      }
      let token = top2(a)[0];
      for (let i = 0; i < 3; i++) {
        const x = (await gpu.decodeOne(tiled, token)).slice(), y = (await gpu.decodeOne(rows, token)).slice();
        check(x, y, `decode ${i} after the tiled prefill`);
        const w = await cpu.decodeOne(c, token);
        if (wasmToo) check(x, w, `decode ${i} vs WASM`, 1e-3);
        token = top2(y)[0];
      }
    } finally {
      await gpu.close();
      await cpu.close();
    }
  });
}

// The register-tiled shapes (wgsl-tiled.ts tiledWideKernel) inside a model: the fused epilogues (Q/K/V + RoPE + KV
// write, gate/up + SwiGLU, the residual add) through a 72-row prefill and the decode after it, against today's tiles.
// Each matmul's products equal today's to 1e-5 (the test above; bit for bit on lavapipe), so the logits are held to the
// quantized files' tolerance of the prefill test above (2e-2: an 8-bit activation a step apart carries through the layers).
for (const path of [STORIES("stories260K-q4_0.gguf"), sharedPath("models", "synthetic-quants", "synthq-q4_k_m.gguf")]) {
  const file = path.split("/").pop()!;
  gpuTest(`${file}: a 72-row prefill with register-tiled matmuls agrees with today's tiles`, [path], async () => {
    const logits = async (tiles: string) => {
      const model = await loadModel(path, { backend: new WebGpuBackend({ tiles }), contextLength: 128 });
      try {
        const seq = model.newSequence();
        const out = [(await model.prefill(seq, LONG_PROMPT.map((t) => t % model.vocabSize))).slice()];
        let token = top2(out[0])[0];
        for (let i = 0; i < 2; i++) {
          out.push((await model.decodeOne(seq, token)).slice());
          token = top2(out[out.length - 1])[0];
        }
        return out;
      } finally {
        await model.close();
      }
    };
    const today = await logits("today");
    for (const tiles of GL ? ["b32x64-t4x4-k2"] : ["b64x64-t8x8-k2", "b128x128-t8x8-k2", "auto"]) {
      const got = await logits(tiles);
      today.forEach((e, i) => {
        let scale = 0;
        for (const v of e) scale = Math.max(scale, Math.abs(v));
        assertClose(got[i], e, 2e-2, `${file} ${tiles} ${i ? `decode ${i}` : "prefill"}`, scale);
      });
    }
  });
}

gpuTest(
  "stories260K.gguf: decode's F32 one-row matmuls at 8, 16 and 64 lanes a row agree with the default's 32 (every fused epilogue, the norm folded)",
  [
    STORIES("stories260K.gguf"),
  ],
  async () => {
    const want = await stories260KDecodeLogits({});
    for (const lanes of [8, 16, 64]) {
      const got = await stories260KDecodeLogits({ f32Lanes: lanes });
      want.forEach((e, i) => {
        let scale = 0;
        for (const v of e) scale = Math.max(scale, Math.abs(v));
        // only which thread adds which units moves: F32 sums in another order
        assertClose(got[i], e, 1e-4, `${lanes} lanes, decode ${i}`, scale);
      });
    }
  },
);

test("webgpu: an unknown rowKernels form is a typed error", async () => {
  await assertRejects(() => new WebGpuBackend({ rowKernels: "rows" as RowForm }), WebGpuError, /unknown rowKernels "rows"/);
});

test("webgpu: f32Lanes other than 8, 16, 32 or 64 is a typed error", async () => {
  for (const f32Lanes of [0, 12, 128, NaN]) {
    await assertRejects(
      () => new WebGpuBackend({ f32Lanes }),
      WebGpuError,
      new RegExp(`f32Lanes must be 8, 16, 32 or 64, got ${f32Lanes}$`),
    );
  }
});

// Checked in the constructor, before any adapter is requested: runs in every runtime, Bun's (no WebGPU) too.
test("webgpu: every constructor option's bad value is a WebGpuError naming the option, the value and what is accepted", async () => {
  // deno-lint-ignore no-explicit-any
  const bad: Array<[string, any, RegExp]> = [
    ["submitEvery", 0, /submitEvery must be an integer >= 1, got 0$/],
    ["submitEvery", -4, /submitEvery must be an integer >= 1, got -4$/],
    ["submitEvery", 1.5, /submitEvery must be an integer >= 1, got 1\.5$/],
    ["submitEvery", NaN, /submitEvery must be an integer >= 1, got NaN$/],
    ["submitEvery", Infinity, /submitEvery must be an integer >= 1, got Infinity$/],
    ["submitEvery", "8", /submitEvery must be an integer >= 1, got "8"$/],
    ["tiledFrom", 0, /tiledFrom must be an integer >= 1 or Infinity, got 0$/],
    ["tiledFrom", NaN, /tiledFrom must be an integer >= 1 or Infinity, got NaN$/],
    ["tiledFrom", 16.5, /tiledFrom must be an integer >= 1 or Infinity, got 16\.5$/],
    ["tiledFrom", -Infinity, /tiledFrom must be an integer >= 1 or Infinity, got -Infinity$/],
    ["tiledFrom", "32", /tiledFrom must be an integer >= 1 or Infinity, got "32"$/],
    ["spreadSampleFrom", -1, /spreadSampleFrom must be an integer >= 0 or Infinity, got -1$/],
    ["spreadSampleFrom", 0.5, /spreadSampleFrom must be an integer >= 0 or Infinity, got 0\.5$/],
    ["spreadSampleFrom", NaN, /spreadSampleFrom must be an integer >= 0 or Infinity, got NaN$/],
    ["spreadSampleFrom", null, /spreadSampleFrom must be an integer >= 0 or Infinity, got null$/],
    ["tileRows", 16, /tileRows must be 32 or 64, got 16$/],
    ["tileRows", 0, /tileRows must be 32 or 64, got 0$/],
    ["tileRows", "64", /tileRows must be 32 or 64, got "64"$/],
    ["fold", "on", /unknown fold "on" \(true, false, layers, auto\)$/],
    ["fold", 1, /unknown fold 1 \(true, false, layers, auto\)$/],
    ["fold", null, /unknown fold null \(true, false, layers, auto\)$/],
    ["profile", "false", /profile must be true or false, got "false"$/],
    ["fuseAttentionQuant", 0, /fuseAttentionQuant must be true or false, got 0$/],
    ["plans", "off", /plans must be true or false, got "off"$/],
    ["plans", null, /plans must be true or false, got null$/],
    ["f32Lanes", "32", /f32Lanes must be 8, 16, 32 or 64, got "32"$/],
    ["rowKernels", 2, /unknown rowKernels 2 \(auto, off, pairs, octets\)$/],
    ["tiles", "toString", /unknown tiles "toString" \(today, auto, b/],
    ["f32Form", {}, /unknown f32Form an object \(today, rows\)$/],
    ["attention", ["wide"], /unknown attention an array \(today, wide\)$/],
    ["adapter", {}, /adapter must be a GPUAdapter \(an object with requestDevice\), got an object$/],
    ["adapter", "gpu", /adapter must be a GPUAdapter \(an object with requestDevice\), got "gpu"$/],
    ["adapter", null, /adapter must be a GPUAdapter \(an object with requestDevice\), got null$/],
  ];
  for (const [name, value, re] of bad) {
    await assertRejects(() => new WebGpuBackend({ [name]: value }), WebGpuError, re);
    // the bad option is named, whatever good ones come with it
    await assertRejects(() => new WebGpuBackend({ tileRows: 32, fold: "layers", plans: false, [name]: value }), WebGpuError, re);
  }
  // a misspelt option would otherwise run the default unseen: the name meant (errors.ts's check), else every name
  await assertRejects(
    () => new WebGpuBackend({ tiledfrom: 1 } as never),
    WebGpuError,
    /unknown option "tiledfrom" \(did you mean "tiledFrom"\?\)$/,
  );
  await assertRejects(
    () => new WebGpuBackend({ batch: 1 } as never),
    WebGpuError,
    /unknown option "batch" \(options: adapter, submitEvery, .*, plans\)$/,
  );
  await assertRejects(() => new WebGpuBackend(null as never), WebGpuError, /options must be an object, got null$/);
  await assertRejects(() => new WebGpuBackend(5 as never), WebGpuError, /options must be an object, got 5$/);
});

test("webgpu: every constructor option's default and accepted values are taken as given", async () => {
  // settings: the options in effect, which init and the recorders read (submitEvery capped to the params slots)
  for (const b of [new WebGpuBackend(), new WebGpuBackend({}), new WebGpuBackend(undefined)]) {
    const f = b.settings;
    assertEquals(
      [f.submitEvery, f.tiledFrom, f.tileRows, f.fold, f.spreadSampleFrom, f.profile, f.fuseAttentionQuant, f.plans],
      [256, 32, 0, "auto", 32000, false, true, true],
    );
    assertEquals([f.rowKernels, f.tiles, f.f32Lanes, f.f32Form, f.attention], ["auto", "auto", 0, "rows", "today"]);
  }
  const good: Array<[keyof WebGpuOptions, unknown[]]> = [
    ["submitEvery", [1, 2, 256, 4096]],
    ["tiledFrom", [1, 16, 64, Infinity]],
    ["tileRows", [32, 64]],
    ["fold", [true, false, "layers", "auto"]],
    ["spreadSampleFrom", [0, 1, 32000, 1e9, Infinity]],
    ["profile", [true, false]],
    ["fuseAttentionQuant", [true, false]],
    ["plans", [true, false]],
    ["rowKernels", ["auto", "off", "pairs", "octets"]],
    ["tiles", ["today", "auto", ...Object.keys(TILE_SHAPES)]],
    ["f32Lanes", [8, 16, 32, 64]],
    ["f32Form", ["today", "rows"]],
    ["attention", ["today", "wide"]],
  ];
  for (const [name, values] of good) {
    for (const value of values) assertEquals(new WebGpuBackend({ [name]: value }).settings[name], value, `${name} ${String(value)}`);
  }
  // above the params slots submitEvery is capped, as documented (at 2048, half the timestamp queries, when profiling)
  assertEquals(new WebGpuBackend({ submitEvery: 10000 }).settings.submitEvery, 4096);
  assertEquals(new WebGpuBackend({ submitEvery: 4096, profile: true }).settings.submitEvery, 2048);
  // where this runtime has an adapter, the real one is taken as it is
  const { adapter } = await requestAdapter();
  if (adapter) assert(new WebGpuBackend({ adapter }).settings.adapter === adapter, "adapter not kept");
});

/** Greedy ids fed back one decodeOne at a time, picked on the host. */
async function hostGreedy(model: Model, prompt: number[], n: number): Promise<{ ids: number[]; next: Float32Array }> {
  const seq = model.newSequence();
  try {
    let t = argmax(await model.prefill(seq, prompt));
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      t = argmax(await model.decodeOne(seq, t));
      ids.push(t);
    }
    return { ids, next: (await model.decodeOne(seq, t)).slice() };
  } finally {
    model.releaseSequence(seq);
  }
}

/** The same through Model.decodeGreedy, in runs of the given lengths. */
async function deviceGreedy(model: Model, prompt: number[], runs: number[]): Promise<{ ids: number[]; next: Float32Array }> {
  const seq = model.newSequence();
  try {
    let t = argmax(await model.prefill(seq, prompt));
    const ids: number[] = [];
    for (const n of runs) {
      const picks = await model.decodeGreedy(seq, t, n);
      ids.push(...picks);
      t = picks[n - 1];
      assertEquals(seq.length, prompt.length + ids.length, "positions fed");
    }
    return { ids, next: (await model.decodeOne(seq, t)).slice() };
  } finally {
    model.releaseSequence(seq);
  }
}

gpuTest("decodeGreedy picks on the device the ids a host argmax picks, across readbacks, and leaves the same cache", [
  STORIES("stories260K.gguf"),
], async () => {
  const model = await loadModel(STORIES("stories260K.gguf"), { backend: "webgpu", contextLength: 128 });
  try {
    const prompt = [1, 403, 407, 261, 378];
    const host = await hostGreedy(model, prompt, 70);
    const before = model.positionsComputed;
    const dev = await deviceGreedy(model, prompt, [1, 69]); // 69 > GREEDY_ROWS: two readbacks
    assertEquals(model.positionsComputed - before, prompt.length + 70 + 1);
    assertEquals(dev.ids, host.ids);
    assertClose(dev.next, host.next, 1e-5, "logits after the run", 1);
    await assertRejects(() => model.decodeGreedy(model.newSequence(), 0, 129), Error, /context/i);
  } finally {
    await model.close();
  }
});

for (const file of ["stories260K.gguf", "stories260K-q4_0.gguf"]) {
  gpuTest(`${file}: a replayed decode plan gives a freshly recorded step's picks and logits, bit for bit`, [STORIES(file)], async () => {
    // plans: false records every step (the architecture's forward, fused afresh); plans: true records the device
    // loop's step once and replays it: across positions, readbacks, a released and a new sequence, a prefill between
    // and each backend's adapter logs what it is asked (tests/webgpu-log.ts): a replay asks the GPU for exactly the calls a fresh step does
    const opts = { contextLength: 128, maxSequences: 2 };
    const { adapter } = await requestAdapter();
    const freshLog = logDispatches(adapter), plannedLog = logDispatches(adapter);
    const fresh = new WebGpuBackend({ plans: false, adapter: freshLog.adapter });
    const planned = new WebGpuBackend({ plans: true, adapter: plannedLog.adapter });
    const a = await loadModel(STORIES(file), { ...opts, backend: fresh });
    const b = await loadModel(STORIES(file), { ...opts, backend: planned });
    const bits = (l: Float32Array) => Array.from(new Uint32Array(l.buffer, l.byteOffset, l.length));
    try {
      for (const [prompt, runs] of [[[1, 403, 407, 261, 378], [1, 69]], [[1, 32, 7], [5, 3, 40]]] as [number[], number[]][]) {
        const d0 = [fresh.dispatches, planned.dispatches];
        const x = await deviceGreedy(a, prompt, runs), y = await deviceGreedy(b, prompt, runs);
        assertEquals(y.ids, x.ids, "greedy ids");
        assertEquals(bits(y.next), bits(x.next), "logits after the run");
        assertEquals(planned.dispatches - d0[1], fresh.dispatches - d0[0], "dispatches");
      }
      // sampled on the device: the same draws from the same seed
      const params = { temperature: 0.9, topP: 0.95, repeatPenalty: 1.2, seed: 11 }, prompt = [1, 403, 407];
      const draws: number[][] = [];
      for (const m of [a, b]) {
        const seq = m.newSequence(), sampler = new Sampler(m.vocabSize, params);
        const first = sampler.sample(await m.prefill(seq, prompt), prompt).id;
        assert(m.sampledOnDevice(sampler), "sampled on the device");
        draws.push([first, ...await m.decodeSampled(seq, first, 20, sampler, [...prompt, first])]);
        m.releaseSequence(seq);
      }
      assertEquals(draws[1], draws[0], "sampled ids");
      assertEquals(fresh.replays, 0);
      assert(planned.replays > 100, `replayed ${planned.replays} steps`);
      const calls = [freshLog.log, plannedLog.log], at = calls[0].findIndex((line, i) => calls[1][i] !== line);
      assert(calls[0].filter((line) => line.startsWith("dispatch ")).length > 1000, "dispatches logged");
      assertEquals([at, calls[1].length], [-1, calls[0].length], `first differing GPU call: ${calls[0][at]} against ${calls[1][at]}`);
      assertEquals(plannedLog.shaders, freshLog.shaders, "the pipelines' WGSL");
    } finally {
      await a.close();
      await b.close();
    }
  });
}

test("generate's run-ahead calls double up to one device run, then on up to four while they come back fast", () => {
  assertEquals(RUN_AHEAD_MAX, 4 * GREEDY_ROWS);
  const grow = (ms: number) => {
    let chunk = 4;
    const seen = [chunk];
    for (let i = 0; i < 8; i++) seen.push(chunk = nextRunAhead(chunk, ms));
    return seen;
  };
  assertEquals(grow(RUN_AHEAD_MS / 2), [4, 8, 16, 32, 64, 128, 256, 256, 256]);
  // slow calls (a slow device): one run per readback as before, so text is not held back longer
  assertEquals(grow(RUN_AHEAD_MS), [4, 8, 16, 32, 64, 64, 64, 64, 64]);
  assertEquals(nextRunAhead(128, 10 * RUN_AHEAD_MS), 128);
});

gpuTest(
  "generate at temperature 0 runs ahead on the device and ends where per-token decoding ends",
  [STORIES("stories260K.gguf"), GOLDEN],
  async () => {
    const ref = readJSON<GoldenRow[]>(GOLDEN).find((r) => r.model === "stories260K/stories260K.gguf")!;
    const model = await loadModel(STORIES("stories260K.gguf"), { backend: "webgpu", contextLength: 256 });
    try {
      const ahead = await drain(generate(model, ref.prompt_ids, { temperature: 0, maxTokens: ref.greedy_ids.length }));
      compareGreedyIds(ahead.tokens, await stepsFor(STORIES("stories260K.gguf"), ref));
      // each call is 4 tokens, then the last one's length or twice it (nextRunAhead), or what is left of maxTokens
      const calls: number[] = [];
      const decodeGreedy = model.decodeGreedy.bind(model);
      model.decodeGreedy = (seq, token, n) => (calls.push(n), decodeGreedy(seq, token, n));
      // a stop string mid-run, maxTokens inside a run, and a long run: the same tokens, text and reason as token by token (onToken keeps generate on that path)
      for (const opts of [{ stop: [" park"] }, { maxTokens: 11 }, { maxTokens: 90 }] as GenerateOptions[]) {
        calls.length = 0;
        const fast = await drain(generate(model, ref.prompt, { temperature: 0, maxTokens: 40, ...opts }));
        assertEquals(calls[0], 4);
        for (let i = 1; i < calls.length; i++) {
          assert(
            calls[i] <= RUN_AHEAD_MAX && [calls[i - 1], 2 * calls[i - 1]].includes(calls[i]) || i === calls.length - 1,
            `calls ${calls}`,
          );
        }
        const slow = await drain(generate(model, ref.prompt, { temperature: 0, maxTokens: 40, ...opts, onToken: () => {} }));
        assertEquals(fast.tokens, slow.tokens, JSON.stringify(opts));
        assertEquals(fast.text, slow.text);
        assertEquals(fast.finishReason, slow.finishReason);
        if (opts.maxTokens !== 90) assertEquals(fast.finishReason, opts.stop ? "stop" : "length"); // 90 may end at EOS
      }
    } finally {
      await model.close();
    }
  },
);

testShared("decodeGreedy on the WASM backend is decodeOne with the Sampler's argmax", [STORIES("stories260K.gguf")], async () => {
  const model = await loadModel(STORIES("stories260K.gguf"), { backend: new WasmBackend(), contextLength: 64 });
  try {
    const prompt = [1, 403, 407, 261, 378];
    const host = await hostGreedy(model, prompt, 12);
    const dev = await deviceGreedy(model, prompt, [5, 7]);
    assertEquals(dev.ids, host.ids);
    assertClose(dev.next, host.next, 0, "logits after the run", 1);
    await assertRejects(() => model.decodeGreedy(model.newSequence(), 1, 0), ParamError);
  } finally {
    await model.close();
  }
});

// synthq-q8_0 and synthq-q4_0 are not held to llama.cpp's greedy ids here, and no WebGPU kernel is why: teacher-forced
// along those ids, the WASM backend (kvasm's own order, F32 cache) departs at the same steps by the same gaps as WebGPU
// (q8_0 "Once upon a time" step 30, llama.cpp's margin 0.17; q4_0 "The cat" step 2, margin 0.12), and WebGPU's logits
// follow WASM's at every step (the test below: within 2.3e-5 on lavapipe; 1.6e-3 of the logit scale on an H200, whose
// sum order rounds a few 8-bit activations a step apart, hence 2e-2 as for the 72-row prefills of quantized files above).
// The rule cannot hold on these two files for any arithmetic but
// llama.cpp's own: its references use an F16 cache (an F32 cache moves their logits by ~1 in ~90 at every step), and
// their activations are re-quantized to 8 bits before every matmul, where one value on the other side of a rounding step
// moves the logits by 0.5-1 (with the F16 cache too, WASM in kvasm's sum order departs at q8_0 step 31, margin 0.39).
// Only llama.cpp's arithmetic bit for bit meets it there (ggmlOrder + F16 cache, tests/generate-quant-golden.test.ts).
for (const file of ["synthq-q8_0.gguf", "synthq-q4_0.gguf"]) {
  const path = sharedPath("models", "synthetic-quants", file);
  gpuTest(`${file}: teacher-forced along llama.cpp's greedy ids, the logits follow the WASM backend's (2e-2)`, [
    path,
    SYNTH_GOLDEN,
  ], async () => {
    const refs = readJSON<GoldenRow[]>(SYNTH_GOLDEN).filter((r) => r.model.endsWith(file));
    assertEquals(refs.length, 2, "references");
    const gpu = await loadModel(path, { backend: "webgpu", contextLength: 128 });
    const cpu = await loadModel(path, { backend: new WasmBackend(), contextLength: 128 });
    try {
      for (const ref of refs) {
        const [g, c] = [gpu.newSequence(), cpu.newSequence()];
        let a = await gpu.prefill(g, ref.prompt_ids), b = await cpu.prefill(c, ref.prompt_ids);
        for (let i = 0; i < ref.greedy_ids.length; i++) {
          let scale = 0;
          for (const v of b) scale = Math.max(scale, Math.abs(v));
          assertClose(a, b, 2e-2, `${file} "${ref.prompt}" step ${i}`, scale);
          a = await gpu.decodeOne(g, ref.greedy_ids[i]);
          b = await cpu.decodeOne(c, ref.greedy_ids[i]);
        }
        gpu.releaseSequence(g);
        cpu.releaseSequence(c);
      }
    } finally {
      await gpu.close();
      await cpu.close();
    }
  });
}

for (const file of ["synthq-q4_k_m.gguf"]) {
  const path = sharedPath("models", "synthetic-quants", file);
  gpuTest(`${file} (Q4_K with Q6_K) greedy ids equal llama.cpp's`, [path, SYNTH_GOLDEN], async () => {
    const refs = readJSON<Array<GoldenRow & { top1_margins: number[] }>>(SYNTH_GOLDEN).filter((r) => r.model.endsWith(file));
    assert(refs.length > 0, "references");
    // the F32 cache, and the F16 cache the references were made with (ggml's flash-attention arithmetic)
    for (const kvCacheType of ["f32", "f16"] as const) {
      const model = await loadModel(path, { backend: "webgpu", contextLength: 128, kvCacheType });
      try {
        for (const ref of refs) await greedyAgainst(model, ref, await stepsFor(path, ref));
      } finally {
        await model.close();
      }
    }
  });
}

for (const file of ["synthq-q8_0.gguf", "synthq-q4_0.gguf"]) {
  const path = sharedPath("models", "synthetic-quants", file);
  gpuTest(
    `${file}: attention quantizing its output for the output projection is bit-identical to a quantize dispatch (both attention forms)`,
    [
      path,
    ],
    async () => {
      const run = async (fuseAttentionQuant: boolean, attention: "today" | "wide") => {
        // fold: false, else the output projection's matmul would quantize the unquantized output itself (no dispatch either way)
        const backend = new WebGpuBackend({ fuseAttentionQuant, fold: false, attention });
        const model = await loadModel(path, { backend, contextLength: 64 });
        try {
          const seq = model.newSequence();
          const out = [(await model.prefill(seq, [1, 403, 407, 261])).slice()];
          const before = backend.dispatches;
          for (const t of [378, 432, 261]) out.push((await model.decodeOne(seq, t)).slice());
          return { out, dispatches: backend.dispatches - before };
        } finally {
          await model.close();
        }
      };
      const wanted: Float32Array[][] = [];
      for (const attention of ["today", "wide"] as const) {
        const fused = await run(true, attention), apart = await run(false, attention);
        // headDim 32: one Q8_0 block a head; one quantize dispatch fewer per layer and token (2 layers, 3 tokens)
        assertEquals(apart.dispatches - fused.dispatches, 2 * 3);
        fused.out.forEach((o, i) => assertClose(o, apart.out[i], 0, `${file} ${attention} step ${i}`, 1));
        wanted.push(fused.out);
      }
      // the wide kernel's sums in another order: its logits near today's
      wanted[1].forEach((o, i) => {
        let scale = 0;
        for (const v of wanted[0][i]) scale = Math.max(scale, Math.abs(v));
        assertClose(o, wanted[0][i], 1e-3, `${file} wide against today, step ${i}`, scale);
      });
    },
  );
}

/** kvStore and attention over an F16 (or F32) cache of `positions` positions on one backend; the output of `queries` and the pages. */
async function f16Attention(
  backend: WasmBackend | WebGpuBackend,
  shape: { headDim: number; nHeads: number; nKvHeads: number; positions: number; alibi: boolean },
  queries: number[],
  kvType: "f16" | "f32" = "f16",
): Promise<{ out: Float32Array; pages: Uint32Array }> {
  const { headDim, nHeads, nKvHeads, positions } = shape;
  const pageSize = 16, kvDim = nKvHeads * headDim, nPages = Math.ceil(positions / pageSize);
  const pageBytes = 2 * pageSize * kvDim * (kvType === "f16" ? 2 : 4);
  await backend.init(1 << 22);
  const kv = {
    base: backend.alloc(nPages * pageBytes, "kv"),
    pageSize,
    pageBytes,
    kvDim,
    nHeads,
    nKvHeads,
    headDim,
    nLayers: 1,
    kvType,
    qBlock: 0,
    alibiSlopes: shape.alibi ? backend.alloc(nHeads * 4, "slopes") : undefined,
  };
  if (kv.alibiSlopes) backend.write(kv.alibiSlopes, Float32Array.from({ length: nHeads }, (_, h) => 2 ** -(h + 1)));
  const pageTable = backend.alloc(nPages * 4, "page table");
  backend.write(pageTable, Int32Array.from({ length: nPages }, (_, i) => nPages - 1 - i)); // pages in reverse
  const rng = new Rng(7);
  const values = (n: number, s: number) => Float32Array.from({ length: n }, () => (rng.nextFloat() * 2 - 1) * s);
  const rowsOf = (pos: number[], start: (i: number) => number) =>
    Int32Array.from({ length: pos.length * 4 }, (_, i) => [pageTable, pos[i >> 2], start(i >> 2), 0][i % 4]);
  const k = backend.alloc(positions * kvDim * 4, "k"), v = backend.alloc(positions * kvDim * 4, "v");
  backend.write(k, values(positions * kvDim, 3));
  backend.write(v, values(positions * kvDim, 2));
  const storeRows = backend.alloc(positions * 16, "store rows");
  backend.write(storeRows, rowsOf(Array.from({ length: positions }, (_, i) => i), () => 0));
  backend.kvStore(kv, 0, k, v, storeRows, positions);
  const T = queries.length, qDim = nHeads * headDim;
  const rows = backend.alloc(T * 16, "rows");
  backend.write(rows, rowsOf(queries, (i) => (i === 1 ? 5 : 0))); // the second row attends from position 5 (a window)
  const q = backend.alloc(T * qDim * 4, "q"), out = backend.alloc(T * qDim * 4, "out");
  backend.write(q, values(T * qDim, 2));
  backend.attention(out, q, kv, 0, rows, T, backend.alloc(1 << 16, "scratch"));
  const o = new Float32Array(T * qDim), pages = new Float32Array(nPages * pageBytes / 4);
  await backend.read(out, o);
  await backend.read(kv.base, pages);
  return { out: o, pages: new Uint32Array(pages.buffer) };
}

gpuTest("reads in flight together each return the memory as it was when they were issued", [], async () => {
  const backend = new WebGpuBackend();
  await backend.init(0);
  try {
    const at = backend.alloc(4096, "scratch");
    const first = new Float32Array(1000).map((_, i) => i),
      second = first.map((x) => -x),
      back = [new Float32Array(1000), new Float32Array(10)];
    backend.write(at, first);
    const a = backend.read(at, back[0]); // not awaited: the copy is already submitted
    backend.write(at, second);
    const b = backend.read(at + 4, back[1]);
    await Promise.all([a, b]);
    assertEquals(Array.from(back[0]), Array.from(first));
    assertEquals(Array.from(back[1]), Array.from(second.subarray(1, 11)));
  } finally {
    await backend.close();
  }
});

gpuTest("the F16 cache: pages bit-identical to the WASM backend's, attention equal to its ggml flash attention", [], async () => {
  for (
    const shape of [
      { headDim: 32, nHeads: 8, nKvHeads: 2, positions: 70, alibi: false }, // leftover products only; two chunks of 64
      { headDim: 64, nHeads: 4, nKvHeads: 2, positions: 150, alibi: false }, // AVX-512's 4 x 16 lanes
      { headDim: 128, nHeads: 2, nKvHeads: 1, positions: 40, alibi: true },
      { headDim: 8, nHeads: 8, nKvHeads: 4, positions: 20, alibi: false },
    ]
  ) {
    const queries = [shape.positions - 1, shape.positions >> 1, 0];
    const cpu = await f16Attention(new WasmBackend({ ggmlOrder: true }), shape, queries); // attention_f16: ggml's one-chunk path
    const backend = new WebGpuBackend();
    const gpu = await f16Attention(backend, shape, queries).finally(() => backend.close());
    assertEquals(gpu.pages, cpu.pages, `headDim ${shape.headDim}: the halves stored`);
    // the running output is the same halves; exp is the GPU's, not glibc's expf, so the running sum and the output
    // may differ by a few f32 ulps (a half's rounding boundary would show as 5e-4)
    assertClose(gpu.out, cpu.out, 2e-6, `headDim ${shape.headDim}: attention`);
  }
});

gpuTest(
  "one token row's attention, 'wide' (256 threads) equal to today's kernel (1e-5) at ragged lengths, windows, GQA and ALiBi",
  [],
  async () => {
    // positions past one chunk of 256 (257, 600: the online softmax's second and third chunks), fewer than a V group's 8
    // positions a step (12 positions: the second query attends 5 to 6, the third 0 alone), and not a multiple of the groups
    // (70, 255); head sizes 32 (32 groups), 64 (16), 128 (8), 8 (128)
    for (
      const shape of [
        { headDim: 64, nHeads: 4, nKvHeads: 2, positions: 600, alibi: false },
        { headDim: 64, nHeads: 2, nKvHeads: 2, positions: 257, alibi: false },
        { headDim: 32, nHeads: 8, nKvHeads: 2, positions: 70, alibi: false },
        { headDim: 128, nHeads: 2, nKvHeads: 1, positions: 255, alibi: true },
        { headDim: 8, nHeads: 4, nKvHeads: 4, positions: 12, alibi: false },
      ]
    ) {
      // one query a dispatch (the per-row kernel's T = 1 of decode), then three at once (rows of one dispatch)
      for (const queries of [[shape.positions - 1], [shape.positions - 1, shape.positions >> 1, 0]]) {
        const run = async (attention: "today" | "wide") => {
          const backend = new WebGpuBackend({ attention });
          return await f16Attention(backend, shape, queries, "f32").finally(() => backend.close());
        };
        const today = await run("today"), wide = await run("wide");
        const what = `headDim ${shape.headDim}, ${shape.positions} positions, ${queries.length} queries`;
        assertEquals(wide.pages, today.pages, `${what}: the pages`);
        let scale = 0;
        for (const v of today.out) scale = Math.max(scale, Math.abs(v));
        assert(scale > 0, `${what}: all zero`);
        assertClose(wide.out, today.out, 1e-5, what, scale);
      }
    }
  },
);

test("webgpu: an unknown attention form is a typed error", async () => {
  await assertRejects(() => new WebGpuBackend({ attention: "split" as "wide" }), WebGpuError, /unknown attention "split" \(today, wide\)/);
});

for (const file of ["stories260K.gguf", "stories260K-q8_0.gguf", "stories260K-q4_0.gguf"]) {
  gpuTest(
    `${file}: a decode step is 5 fused dispatches per layer, bit-identical with its norms and quantizers apart, no op records made`,
    [
      STORIES(file),
    ],
    async () => {
      const run = async (fold: boolean | "layers") => {
        const backend = new WebGpuBackend({ fold });
        const model = await loadModel(STORIES(file), { backend, contextLength: 64 });
        try {
          const seq = model.newSequence();
          const out = [(await model.prefill(seq, [1, 403, 407])).slice()];
          const before = backend.dispatches;
          let opRecordsFirst = 0;
          for (const t of [261, 378, 432]) {
            out.push((await model.decodeOne(seq, t)).slice());
            opRecordsFirst ||= backend.opRecords; // the queue's records come from its pool from here on
          }
          return {
            out,
            perToken: (backend.dispatches - before) / 3,
            layers: model.config.nLayers,
            opRecords: backend.opRecords,
            opRecordsFirst,
          };
        } finally {
          await model.close();
        }
      };
      const folded = await run(true), layers = await run("layers"), apart = await run(false);
      assertEquals(folded.opRecords, folded.opRecordsFirst, "op records made after the first decode step");
      // per layer: rmsnorm + q|k|v + RoPE + KV write, attention, output projection + residual, rmsnorm + gate|up + SwiGLU,
      // down + residual; then the embedding and the final norm in the classifier. Apart: the final norm is a dispatch,
      // and for Q8_0/Q4_0 each layer's two RMSNorm + quantize dispatches and the down projection's quantize dispatch too;
      // the default ("layers") keeps only the final norm apart.
      assertEquals(folded.perToken, 5 * folded.layers + 2, "dispatches per token");
      assertEquals(layers.perToken, 5 * layers.layers + 3, "dispatches per token, the final norm apart (the default)");
      assertEquals(apart.perToken, (file === "stories260K.gguf" ? 5 : 8) * apart.layers + 3, "dispatches per token, apart");
      folded.out.forEach((o, i) => assertClose(o, apart.out[i], 0, `${file} step ${i}`, 1));
      layers.out.forEach((o, i) => assertClose(o, apart.out[i], 0, `${file} step ${i}, layers`, 1));
    },
  );
}

if (gpuExpected) {
  test("webgpu: argmax on the device over several 4096-logit chunks picks what the host argmax picks (ties, NaN, -Infinity)", async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    const b = new WebGpuBackend();
    await b.init(0);
    const n = 3 * 4096 + 100;
    const x = b.alloc(n * 4, "logits"), out = b.alloc(16, "pick");
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const cases: Array<[string, (v: Float32Array) => void]> = [
      ["random", (v) => v.forEach((_, i) => (v[i] = rnd() * 10 - 5))],
      ["a tie across chunks goes to the lower index", (v) => (v.forEach((_, i) => (v[i] = rnd())), v[9000] = 7, v[5000] = 7, v[12300] = 7)],
      ["NaN is never picked", (v) => (v.forEach((_, i) => (v[i] = rnd())), v[100] = NaN, v[8200] = NaN, v[4097] = 3)],
      ["all -Infinity but NaNs: the first -Infinity", (v) => (v.fill(-Infinity), v[0] = NaN, v[4096] = NaN)],
      ["all NaN: -1", (v) => v.fill(NaN)],
    ];
    try {
      for (const [what, fill] of cases) {
        const v = new Float32Array(n);
        fill(v);
        b.write(x, v);
        b.argmax(out, x, n);
        const r = new Float32Array(1);
        await b.read(out, r);
        assertEquals(new Int32Array(r.buffer)[0], argmax(v), what);
      }
    } finally {
      await b.close();
    }
  });
}

/**
 * Random weight rows of a type, with sane scales: F16 halves of modest exponent, and each block's f16 scale
 * fields (Q8_0/Q4_0 d, Q4_K d and dmin, Q6_K d) set to about 5e-4.
 */
function randomWeights(type: GGMLTypeId, cols: number, rows: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(rowBytes(type, cols)! * rows);
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8;
  for (let i = 0; i < bytes.length; i++) bytes[i] = next() & 0xff;
  const dv = new DataView(bytes.buffer);
  if (type === GGMLType.F32) { for (let o = 0; o < bytes.length; o += 4) dv.setFloat32(o, (next() / 2 ** 24 - 0.5) * 0.1, true); }
  if (type === GGMLType.F16) {
    for (let o = 0; o < bytes.length; o += 2) dv.setUint16(o, (next() & 0x83ff) | ((8 + (next() % 6)) << 10), true);
  }
  const scales: Record<number, [number, number[]]> = {
    [GGMLType.Q8_0]: [34, [0]],
    [GGMLType.Q4_0]: [18, [0]],
    [GGMLType.Q4_K]: [144, [0, 2]],
    [GGMLType.Q6_K]: [210, [208]],
  };
  const sc = scales[type];
  if (sc) { for (let b = 0; b < bytes.length; b += sc[0]) for (const o of sc[1]) dv.setUint16(b + o, 0x1019, true); }
  return bytes;
}

if (gpuExpected) {
  test("webgpu: a matmul of 40 token rows (tiles in workgroup memory) equals 40 one-row matmuls, every weight type", async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    const b = new WebGpuBackend();
    await b.init(0);
    // 512 columns: several K steps of every kernel; 70 rows: a partial tile; 40 tokens (past TILED_FROM): a partial token tile
    const cols = 512, rows = 70, T = 40;
    try {
      const x = b.alloc(T * cols * 4, "x");
      b.setMatmulScratch(b.alloc(T * cols * 4, "matmul scratch"), T * cols * 4);
      const tiled = b.alloc(T * rows * 4, "tiled out"), single = b.alloc(T * rows * 4, "one-row out");
      const xs = new Float32Array(T * cols).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
      b.write(x, xs);
      for (const type of [GGMLType.F32, GGMLType.F16, GGMLType.Q8_0, GGMLType.Q4_0, GGMLType.Q4_K, GGMLType.Q6_K]) {
        const bytes = randomWeights(type, cols, rows, 17 + type);
        const ptr = b.alloc(bytes.length, `weight test ${type}`);
        await b.upload(ptr, new BytesSource(bytes), 0, bytes.length);
        const w = { name: `test ${type}`, type, cols, rows, ptr, bytes: bytes.length };
        b.matmul(tiled, x, w, T);
        // one row at a time: each row's activation is quantized alone, as the tiled matmul's rows were
        for (let t = 0; t < T; t++) b.matmul(single + t * rows * 4, x + t * cols * 4, w, 1);
        const a = new Float32Array(T * rows), e = new Float32Array(T * rows);
        await b.read(tiled, a);
        await b.read(single, e);
        let scale = 0;
        for (const v of e) scale = Math.max(scale, Math.abs(v));
        assert(scale > 0, `type ${type}: all-zero products`);
        assertClose(a, e, 1e-5, `type ${type}`, scale);
      }
    } finally {
      await b.close();
    }
  });
}

// Mesa's OpenGL path compiles the register-tiled kernels' straight-line code slowly (measured on llvmpipe: 12-16 s for
// one 8 x 4 or 8 x 8 shape and type, against 0.1 s for 4 x 4; Mesa caches them after): there, the tests take one small
// and one 8 x 8 shape (the same code with other constants), every Vulkan or GPU adapter all of them.
const GL = /OpenGL/.test(adapterKind(status.adapter, status.features ?? []));
const GL_TILES = ["b32x64-t4x4-k2", "b64x64-t8x8-k2"];

if (gpuExpected) {
  test("webgpu: prefill's register-tiled matmul shapes give today's tiled products (1e-5), every quantized type, ragged rows, tokens and K", async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    // 70 weight rows: a partial tile of 64 and of 128 columns; 72 tokens: a partial tile of 32, 64 and 128 rows;
    // Q8_0/Q4_0 at 544 columns: 17 units, a partial K step for every ku above 1; Q4_K/Q6_K at 768: 3 super-blocks
    const rows = 70, T = 72;
    const cases: Array<[GGMLTypeId, number]> = [[GGMLType.Q8_0, 544], [GGMLType.Q4_0, 544], [GGMLType.Q4_K, 768], [GGMLType.Q6_K, 768]];
    const run = async (tiles: string) => {
      const b = new WebGpuBackend({ tiles });
      await b.init(0);
      // the shape runs unless the adapter lacks its workgroup memory (Mesa's GL path: 16 KiB), where today's tiles stand in
      const fits = tiles === "today" || tileStorageBytes(TILE_SHAPES[tiles]) <= (status.limits?.maxComputeWorkgroupStorageSize ?? 16384);
      assertEquals(b.tiles, fits ? tiles : "today", `${tiles}: the form in effect`);
      const got: Float32Array[] = [];
      try {
        for (const [type, cols] of cases) {
          const x = b.alloc(T * cols * 4, "x"), out = b.alloc(T * rows * 4, "out");
          b.setMatmulScratch(b.alloc(T * cols * 4, "matmul scratch"), T * cols * 4);
          b.write(x, new Float32Array(T * cols).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 7))));
          const bytes = randomWeights(type, cols, rows, 23 + type);
          const ptr = b.alloc(bytes.length, `weight test ${type}`);
          await b.upload(ptr, new BytesSource(bytes), 0, bytes.length);
          b.matmul(out, x, { name: `test ${type}`, type, cols, rows, ptr, bytes: bytes.length }, T);
          const o = new Float32Array(T * rows);
          await b.read(out, o);
          got.push(o);
        }
      } finally {
        await b.close();
      }
      return got;
    };
    const today = await run("today");
    for (const name of GL ? GL_TILES : Object.keys(TILE_SHAPES)) {
      const got = await run(name);
      today.forEach((e, i) => {
        let scale = 0;
        for (const v of e) scale = Math.max(scale, Math.abs(v));
        assert(scale > 0, `type ${cases[i][0]}: all-zero products`);
        assertClose(got[i], e, 1e-5, `${name}, type ${cases[i][0]}`, scale);
      });
    }
  });
}

test("webgpu: tiles 'auto' takes the shape the H200's GEMM bench measured fastest for the tile count", () => {
  // the 1B's gate/up at 512 rows: 256 x 8 tiles of 64 x 64, so 4 x 8 sums; its Q/K/V at 128 rows: 48 x 2 = 96, so
  // 4 x 4; its output projection at 128 rows (32 x 2 = 64) and stories110M's (12 x 2): 32-token tiles
  assertEquals(autoTileShape(512, 16384, 49152), "b64x64-t4x8-k2");
  assertEquals(autoTileShape(128, 3072, 49152), "b64x64-t4x4-k2");
  assertEquals(autoTileShape(128, 2048, 49152), "b32x64-t4x4-k2");
  assertEquals(autoTileShape(128, 768, 49152), "b32x64-t4x4-k2");
  // batched decode's few token rows keep today's tiles; so does a device without 9 KiB of workgroup memory
  assertEquals(autoTileShape(16, 16384, 49152), null);
  assertEquals(autoTileShape(512, 16384, 10240), "b32x64-t4x4-k2");
  assertEquals(autoTileShape(512, 16384, 4096), null);
});

test("webgpu: rowPlan 'auto' takes the form the H200's matvec bench measured fastest; the first rule stays for pairs and octets", () => {
  // the 1B's gate/up, Q/K/V and classifier (2048 columns: 32 paired units) 16 lanes x 2 units; its down projection
  // (8192: 128 units) 16 x 4; stories110M's 768 columns (12 units) 8 x 2 (one round, ragged); never octets
  for (const type of [GGMLType.Q4_0, GGMLType.Q8_0]) {
    for (const rows of [16384, 3072, 128256]) assertEquals(rowPlan(type, 2048, "auto", rows), { lanes: 16, unroll: 2, octets: false });
    assertEquals(rowPlan(type, 8192, "auto", 2048), { lanes: 16, unroll: 4, octets: false });
    assertEquals(rowPlan(type, 768, "auto", 32000), { lanes: 8, unroll: 2, octets: false });
  }
  // the first rule: the fewest lanes that still give 256 workgroups (the classifier 2 lanes and 2 octets a thread)
  assertEquals(rowPlan(GGMLType.Q4_0, 2048, "octets", 128256), { lanes: 2, unroll: 2, octets: true });
  assertEquals(rowPlan(GGMLType.Q4_0, 2048, "pairs", 16384), { lanes: 4, unroll: 4, octets: false });
  // matmulKernel's: off, other types, rows of an odd block count
  assertEquals(rowPlan(GGMLType.Q4_0, 2048, "off", 16384), null);
  assertEquals(rowPlan(GGMLType.Q4_K, 2048, "auto", 16384), null);
  assertEquals(rowPlan(GGMLType.Q8_0, 1056, "auto", 70), null);
});

test("webgpu: the norm's sum of squares keeps RMSNORM's order with its loads written out, and a width it was not built for is an error", async () => {
  // elements li, li + 256, ... added in order: for 2112 columns 8 in a loop of 1 and the ragged ninth guarded
  const code = sumSquares(2112, "xr");
  assert(code.includes("for (var c = 0u; c < 1u; c++)") && code.includes("if (li + 2048u + 0u < 2112u)"), code);
  assert(sumSquares(768, "xr").split("ldf(").length - 1 === 3, "768 columns: 3 loads a thread");
  await assertRejects(() => quantQ8_0Kernel(true, 0), Error, /multiple of 32, got 0/);
});

if (gpuExpected) {
  test("webgpu: RMSNorm built for its row width (sumSquares) equals the f32 reference to 1e-6 at widths below, at and past 256", async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    const b = new WebGpuBackend();
    await b.init(0);
    try {
      for (const n of [100, 768, 2112]) {
        const T = 3, eps = 1e-5;
        const x = new Float32Array(T * n).map((_, i) => Math.sin(i * 0.61) * (1 + (i % 5)));
        const wv = new Float32Array(n).map((_, i) => 0.5 + (i % 9) / 8);
        const xa = b.alloc(T * n * 4, "x"), out = b.alloc(T * n * 4, "out");
        const wa = b.alloc(n * 4, `weight test norm ${n}`);
        b.write(xa, x);
        await b.upload(wa, new BytesSource(new Uint8Array(wv.buffer)), 0, n * 4);
        b.rmsnorm(out, xa, { name: `norm ${n}`, type: GGMLType.F32, cols: n, rows: 1, ptr: wa, bytes: n * 4 }, n, eps, T);
        const got = new Float32Array(T * n);
        await b.read(out, got);
        const want = new Float32Array(T * n);
        for (let t = 0; t < T; t++) {
          let ss = 0;
          for (let i = 0; i < n; i++) ss += x[t * n + i] ** 2;
          const scale = 1 / Math.sqrt(ss / n + eps);
          for (let i = 0; i < n; i++) want[t * n + i] = x[t * n + i] * scale * wv[i];
        }
        assertClose(got, want, 1e-6, `${n} columns`, want.reduce((m, v) => Math.max(m, Math.abs(v)), 0));
      }
    } finally {
      await b.close();
    }
  });
}

test("webgpu: an unknown tile shape is a typed error", async () => {
  await assertRejects(() => new WebGpuBackend({ tiles: "b64x64" }), WebGpuError, /unknown tiles "b64x64"/);
});

if (gpuExpected) {
  test("webgpu: decode's row kernels (paired units, octets of blocks as vec4 loads) give matmulKernel's one-row products (1e-5), with the residual add, every row form", async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    // 512 and 4096 columns: octets (2 and 16 a row); 768: 3 octets (a row not a multiple of the lanes' stride); 2112: 33 paired
    // units (no octets: ragged pairs); 70 rows: a partial workgroup in every form
    const shapes = [512, 768, 2112, 4096], rows = 70;
    const run = async (form: RowForm) => {
      const b = new WebGpuBackend({ rowKernels: form });
      await b.init(0);
      const got: Float32Array[] = [];
      try {
        for (const type of [GGMLType.Q8_0, GGMLType.Q4_0]) {
          for (const cols of shapes) {
            const x = b.alloc(cols * 4, "x"), out = b.alloc(rows * 4, "out"), resid = b.alloc(rows * 4, "resid");
            b.setMatmulScratch(b.alloc(cols * 4, "matmul scratch"), cols * 4);
            b.write(x, new Float32Array(cols).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 7))));
            b.write(resid, new Float32Array(rows).map((_, i) => i - 30));
            const bytes = randomWeights(type, cols, rows, 41 + type + cols);
            const ptr = b.alloc(bytes.length, `weight test ${type} ${cols}`);
            await b.upload(ptr, new BytesSource(bytes), 0, bytes.length);
            const w = { name: `test ${type} ${cols}`, type, cols, rows, ptr, bytes: bytes.length };
            b.matmul(out, x, w, 1);
            b.add(resid, resid, out, rows); // fused: the residual epilogue
            const o = new Float32Array(rows), r = new Float32Array(rows);
            await b.read(out, o);
            await b.read(resid, r);
            got.push(o, r);
          }
        }
      } finally {
        await b.close();
      }
      return got;
    };
    const off = await run("off");
    for (const form of ["pairs", "octets", "auto"] as RowForm[]) {
      const got = await run(form);
      for (let i = 0; i < off.length; i++) {
        const what = `${form}: ${i < 8 ? "Q8_0" : "Q4_0"} ${shapes[Math.floor(i / 2) % 4]} columns, ${i % 2 ? "residual" : "products"}`;
        let scale = 0;
        for (const v of off[i]) scale = Math.max(scale, Math.abs(v));
        assert(scale > 0, `${what}: all zero`);
        assertClose(got[i], off[i], 1e-5, what, scale);
      }
    }
  });
}

if (gpuExpected) {
  test("webgpu: one-row matmuls that norm and quantize their input themselves equal the dispatches apart, bit for bit (the normed row left in memory to 2^-21 of its largest value)", async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    // 1056 columns: 33 Q8_0 blocks (unpaired), two rounds of 1024; 2112: 66 (paired), three rounds, the last partial
    const run = async (fold: boolean, type: GGMLTypeId, cols: number, rowKernels: RowForm) => {
      const b = new WebGpuBackend({ fold, rowKernels });
      await b.init(0);
      try {
        const rows = 70; // 9 workgroups of 8 rows share the writes of the normed row's blocks
        const x = b.alloc(cols * 4, "x"), xn = b.alloc(cols * 4, "normed"), resid = b.alloc(rows * 4, "resid");
        const scratch = b.alloc(cols * 4, "matmul scratch");
        b.setMatmulScratch(scratch, cols * 4);
        const out = b.alloc(rows * 4, "out"), out2 = b.alloc(rows * 4, "out2");
        b.write(x, new Float32Array(cols).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 7))));
        b.write(resid, new Float32Array(rows).map((_, i) => i - 30));
        const upload = async (t: GGMLTypeId, c: number, r: number, seed: number) => {
          const bytes = randomWeights(t, c, r, seed);
          const ptr = b.alloc(bytes.length, `weight test ${t} ${seed}`);
          await b.upload(ptr, new BytesSource(bytes), 0, bytes.length);
          return { name: `test ${t}`, type: t, cols: c, rows: r, ptr, bytes: bytes.length };
        };
        const normW = await upload(GGMLType.F32, cols, 1, 5), w = await upload(type, cols, rows, 23 + type);
        b.rmsnorm(xn, x, normW, cols, 1e-5, 1);
        b.matmul(out, xn, w, 1); // folded: the norm (and quantizer) in the matmul's prologue
        b.matmul(out2, x, w, 1);
        b.add(resid, resid, out2, rows); // folded: the quantizer in the residual matmul's prologue
        const read = async (at: number, n: number) => {
          const f = new Float32Array(n);
          await b.read(at, f);
          return f;
        };
        const blocks = type === GGMLType.F32 ? 0 : (cols / 32) * 9;
        const got = {
          out: await read(out, rows),
          resid: await read(resid, rows),
          normed: await read(xn, cols),
          blocks: new Uint32Array((await read(scratch, blocks)).buffer),
        };
        return { ...got, dispatches: b.dispatches }; // the queue is recorded by the first read
      } finally {
        await b.close();
      }
    };
    // 2048 (Q4_0): the row kernel's octets; 2112: its paired units
    for (
      const [type, cols] of [[GGMLType.Q8_0, 1056], [GGMLType.Q8_0, 2112], [GGMLType.Q4_0, 2112], [GGMLType.Q4_0, 2048], [
        GGMLType.F32,
        1056,
      ]]
    ) {
      // every kernel form that folds: matmulKernel's ("off"), the row kernels' plan ("auto", the default: 16 lanes,
      // paired units; 2112 columns 33 units, ragged) and (2048 Q4_0 columns) octets, each against itself apart
      const forms: RowForm[] = type === GGMLType.F32 ? ["off"] : cols === 2048 ? ["off", "octets", "auto"] : ["off", "auto"];
      for (const form of forms) {
        const folded = await run(true, type, cols, form), apart = await run(false, type, cols, form);
        const what = `type ${type}, ${cols} columns, rows ${form}`;
        // apart: rmsnorm(+quantize), matmul, quantize (Q8_0/Q4_0 only), matmul + add; folded: two matmuls
        assertEquals([folded.dispatches, apart.dispatches], [2, type === GGMLType.F32 ? 3 : 4], what);
        assert(folded.out.some((v) => v !== 0), `${what}: all-zero products`);
        assertClose(folded.out, apart.out, 0, `${what}: normed products`, 1);
        assertClose(folded.resid, apart.resid, 0, `${what}: residual`, 1);
        // The normed row written out (memory left as the dispatches apart leave it; nothing downstream reads it when folded) may
        // differ in the last bits: a GPU's shader compiler may contract the norm's multiplies into FMAs in one kernel and not the
        // other (WGSL allows it), as NVIDIA's did on an H200 at 2112 columns (3 ulps at a value near zero). So it is held to
        // 2^-21 of the row's largest value; the products above, which the fold computes from the same values, stay bit for bit.
        const largest = apart.normed.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        assertClose(folded.normed, apart.normed, 2 ** -21, `${what}: the normed row`, largest);
        // the blocks left in scratch are the last quantizer's (of x), as the dispatches apart leave them
        assertEquals(Array.from(folded.blocks), Array.from(apart.blocks), `${what}: the quantized blocks`);
      }
    }
  });
}

if (gpuExpected) {
  test("webgpu: decode's F32 row kernel (f32Form rows) gives matmulKernel's one-row products (1e-5) on every stories110M matrix, norm folded and not, with the residual add", async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    // stories110M's F32 matrices (columns x rows): Q/K/V and the output projection, gate/up, down, the classifier (its
    // 32000 rows: 1000 workgroups at the default 32 lanes); 200 columns: 50 units, ragged at every lane count (a partial round)
    const shapes: Array<[number, number]> = [[768, 768], [768, 2048], [2048, 768], [768, 32000], [200, 70]];
    const weights = shapes.map(([cols, rows], i) => randomWeights(GGMLType.F32, cols, rows, 71 + i));
    const norms = shapes.map(([cols]) => new Float32Array(cols).map((_, i) => 0.5 + ((i * 37) % 11) / 10));
    const run = async (f32Form: "today" | "rows", f32Lanes?: number) => {
      const b = new WebGpuBackend({ f32Form, f32Lanes, fold: true });
      await b.init(0);
      const got: Float32Array[] = [];
      try {
        for (let s = 0; s < shapes.length; s++) {
          const [cols, rows] = shapes[s];
          const x = b.alloc(cols * 4, "x"), xn = b.alloc(cols * 4, "normed"), resid = b.alloc(rows * 4, "resid");
          const out = b.alloc(rows * 4, "out"), outN = b.alloc(rows * 4, "normed out");
          b.setMatmulScratch(b.alloc(cols * 4, "matmul scratch"), cols * 4);
          b.write(x, new Float32Array(cols).map((_, i) => Math.sin(i * 0.37) * (1 + (i % 7))));
          b.write(resid, new Float32Array(rows).map((_, i) => i - 30));
          const up = async (bytes: Uint8Array, r: number, name: string) => {
            const ptr = b.alloc(bytes.length, name);
            await b.upload(ptr, new BytesSource(bytes), 0, bytes.length);
            return { name, type: GGMLType.F32, cols, rows: r, ptr, bytes: bytes.length };
          };
          const w = await up(weights[s], rows, `weight test ${cols}x${rows}`);
          const normW = await up(new Uint8Array(norms[s].buffer), 1, `weight test norm ${cols}`);
          b.matmul(out, x, w, 1);
          b.add(resid, resid, out, rows); // fused: the residual epilogue
          b.rmsnorm(xn, x, normW, cols, 1e-5, 1);
          b.matmul(outN, xn, w, 1); // folded: the norm in the matmul's prologue
          for (const at of [out, resid, outN, xn]) {
            const f = new Float32Array(at === xn ? cols : rows);
            await b.read(at, f);
            got.push(f);
          }
        }
      } finally {
        await b.close();
      }
      return got;
    };
    const today = await run("today"), PARTS = ["products", "residual", "normed products", "normed row"];
    // Mesa's GL path takes ~30 s a run here (the classifier's 98 MB): the default lanes alone there
    for (const lanes of GL ? [undefined] : [undefined, 64, 16, 8]) {
      const got = await run("rows", lanes);
      for (let i = 0; i < today.length; i++) {
        const [cols, rows] = shapes[Math.floor(i / 4)];
        const what = `rows at ${lanes ?? "default"} lanes: ${cols} x ${rows}, ${PARTS[i % 4]}`;
        let scale = 0;
        for (const v of today[i]) scale = Math.max(scale, Math.abs(v));
        assert(scale > 0, `${what}: all zero`);
        // a thread's units add in matmulKernel's order; only the reduction's order moves (and the normed row's last bits
        // where a compiler contracts its multiplies, as in the fold's test above)
        assertClose(got[i], today[i], 1e-5, what, scale);
      }
    }
  });
}

gpuTest(
  "stories260K.gguf: decode with the F32 row kernel (f32Form rows) agrees with matmulKernel's (every fused epilogue, the norm folded)",
  [STORIES("stories260K.gguf")],
  async () => {
    const want = await stories260KDecodeLogits({ f32Form: "today" });
    for (const lanes of [undefined, 16]) {
      const got = await stories260KDecodeLogits({ f32Form: "rows", f32Lanes: lanes });
      want.forEach((e, i) => {
        let scale = 0;
        for (const v of e) scale = Math.max(scale, Math.abs(v));
        assertClose(got[i], e, 1e-4, `rows at ${lanes ?? "default"} lanes, decode ${i}`, scale);
      });
    }
  },
);

test("webgpu: an unknown f32Form is a typed error", async () => {
  await assertRejects(() => new WebGpuBackend({ f32Form: "tiles" as "rows" }), WebGpuError, /unknown f32Form "tiles" \(today, rows\)/);
});

gpuTest("a lost device is a typed error, and the model reloads on WASM", [STORIES("stories260K.gguf")], async () => {
  const model = await loadModel(STORIES("stories260K.gguf"), { backend: "webgpu", contextLength: 64 });
  const seq = model.newSequence();
  await model.prefill(seq, [1, 403]);
  (model.backend as WebGpuBackend).device.destroy();
  await new Promise((r) => setTimeout(r, 50));
  const err = await assertRejects(() => model.decodeOne(seq, 407), WebGpuError);
  assertEquals((err as WebGpuError).code, "backend");
  await model.close();
  const again = await loadModel(STORIES("stories260K.gguf"), { backend: "wasm", contextLength: 64 });
  assert(again.backend.name.startsWith("wasm"), again.backend.name);
  assertEquals((await again.prefill(again.newSequence(), [1, 403])).length, again.vocabSize);
  await again.close();
});

gpuTest(
  "a model past the adapter's binding limit is refused by 'webgpu' and put on WASM by 'auto'",
  [STORIES("stories260K.gguf")],
  async () => {
    const huge = () => ({ tensors: [], stateBytes: status.limits!.maxStorageBufferBindingSize + 1 });
    const wasm = () => Promise.resolve(new WasmBackend());
    await assertRejects(() => backendByName("webgpu", wasm, huge), WebGpuError, /maxStorageBufferBindingSize/);
    const notes: string[] = [];
    const b = await backendByName("auto", wasm, huge, (m) => notes.push(m));
    assertEquals(b.name, "wasm");
    assert(/maxStorageBufferBindingSize/.test(notes[0] ?? ""), notes.join());
    const fits = await backendByName("auto", wasm, () => ({ tensors: [], stateBytes: 1 << 20 }));
    assertEquals(fits.name, "webgpu");
  },
);

if (!gpuExpected) {
  test(`webgpu: unavailable in ${runtime} is reported, and 'auto' runs on WASM`, async () => {
    assertEquals(status.available, false);
    assert(typeof status.reason === "string" && status.reason.length > 0, "a reason");
    await assertRejects(
      () => backendByName("webgpu", () => Promise.resolve(new WasmBackend()), () => ({ tensors: [], stateBytes: 0 })),
      WebGpuError,
    );
  });
  testShared("webgpu: loadModel with backend 'auto' runs on WASM and says why", [STORIES("stories260K.gguf")], async () => {
    const notes: string[] = [];
    const model = await loadModel(STORIES("stories260K.gguf"), { backend: "auto", contextLength: 64, onNotice: (m) => notes.push(m) });
    try {
      assert(model.backend.name.startsWith("wasm"), model.backend.name);
      assert(/WebGPU not used/.test(notes[0] ?? ""), notes.join());
      const [first] = top2(await model.prefill(model.newSequence(), [1, 403, 407, 261, 378]));
      assertEquals(first, 432);
    } finally {
      await model.close();
    }
    await assertRejects(() => loadModel(STORIES("stories260K.gguf"), { backend: "webgpu" }), WebGpuError);
  });
}

test("webgpu: an unknown backend name is a parameter error", async () => {
  await assertRejects(
    () => backendByName("cuda" as "wasm", () => Promise.resolve(new WasmBackend()), () => ({ tensors: [], stateBytes: 0 })),
    ParamError,
  );
});

// ---------------------------------------------------------------- sampling on the device

/** Logits with a few strong candidates over noise; `step` > 0 rounds them to multiples of it, so ties occur. */
function syntheticLogits(V: number, rng: Rng, step = 0): Float32Array {
  const out = new Float32Array(V);
  for (let i = 0; i < V; i++) {
    const g = Math.sqrt(-2 * Math.log(1 - rng.nextFloat())) * Math.cos(2 * Math.PI * rng.nextFloat());
    out[i] = 2 * g + (rng.nextFloat() < 0.01 ? 6 : 0);
  }
  if (step > 0) { for (let i = 0; i < V; i++) out[i] = Math.round(out[i] / step) * step; }
  return out;
}

/**
 * The tolerance rule for a device draw that differs from the CPU sampler's (f32 against f64 arithmetic):
 * the CPU's own pick must change when its uniform moves by 1e-5 (a draw within 1e-5 of the kept mass of a
 * boundary between two tokens), or topP or minP by a relative 1e-5 (a cut within that of a token's weight).
 */
function nearBoundary(logits: Float32Array, history: number[], params: SamplingParams, u: number, pick: number): boolean {
  const d = 1e-5;
  const variants: Array<[SamplingParams, number]> = [[params, u - d], [params, u + d]];
  if ((params.topP ?? 1) < 1) {
    variants.push([{ ...params, topP: params.topP! * (1 - d) }, u], [{ ...params, topP: Math.min(1, params.topP! * (1 + d)) }, u]);
  }
  if (params.minP) variants.push([{ ...params, minP: params.minP * (1 - d) }, u], [{ ...params, minP: params.minP * (1 + d) }, u]);
  return variants.some(([p, v]) => {
    const probe = new Sampler(logits.length, p);
    (probe as unknown as { rng: { nextFloat(): number } }).rng = { nextFloat: () => Math.min(Math.max(v, 0), 1 - 2 ** -24) };
    return probe.sample(logits.slice(), history).id !== pick;
  });
}

gpuTest("the device sampler's top-p search over many workgroups draws what its one-workgroup search draws, bit for bit", [], async () => {
  // spreadSampleFrom 0: every step in three kernels (the search 3 passes of 128 workgroups); Infinity: SAMPLE alone
  const draw = async (spreadSampleFrom: number, V: number, params: SamplingParams, step?: number) => {
    const backend = new WebGpuBackend({ spreadSampleFrom });
    await backend.init(0);
    try {
      const RUN = 3, gen = new Rng(V);
      const logitsAt = backend.alloc(V * 4, "logits"), nextAt = backend.alloc(4, "next token");
      const ds = new DeviceSampler(backend, V, RUN), host = new Sampler(V, params);
      const picks = new Int32Array(RUN), state = new Uint32Array(4);
      ds.load(host, [3, 3, 17, 42], logitsAt, nextAt);
      for (let k = 0; k < RUN; k++) {
        backend.write(logitsAt, syntheticLogits(V, gen, step));
        ds.step(k);
      }
      await ds.finish(host, picks, RUN);
      host.rng.getState(state);
      const dispatches = backend.dispatches;
      // the last step's weights, those past the top-k/top-p/min-p cuts zeroed (sample.ts's block: 17 words, the picks, 3 V-word vectors)
      const weights = new Float32Array(V);
      await backend.read(ds.ptr + (17 + RUN + 3 * V) * 4, weights);
      // nothing finite to draw from: -1 either way
      ds.load(host, [], logitsAt, nextAt);
      backend.write(logitsAt, new Float32Array(V).fill(-Infinity));
      ds.step(0);
      const empty = new Int32Array(1);
      await ds.finish(host, empty, 1);
      return { picks: [...picks, empty[0]], state: Array.from(state), dispatches, weights };
    } finally {
      await backend.close();
    }
  };
  const configs: Array<{ params: SamplingParams; step?: number }> = [
    { params: { temperature: 0.8, topP: 0.9, seed: 1 } },
    { params: { temperature: 1.2, topK: 40, topP: 0.95, minP: 0.05, seed: 2 } },
    { params: { temperature: 0.9, topP: 0.8, repeatPenalty: 1.3, repeatLastN: 8, seed: 4 }, step: 0.25 }, // ties at the cut
    { params: { temperature: 1, topK: 7, seed: 3 }, step: 0.5 }, // ties at the top-k cut
  ];
  // 5003: not a multiple of 256; 128256: Llama 3's vocabulary
  for (const V of [5003, 128256]) {
    for (const { params, step } of configs) {
      const whole = await draw(Infinity, V, params, step), spread = await draw(0, V, params, step);
      const what = `V ${V} ${JSON.stringify(params)}`;
      // each of 3 steps: the head, three passes and the tail; with a top-k the head in two around four passes of its own
      assertEquals(spread.dispatches - whole.dispatches, 3 * (params.topK ? 9 : 4), `${what}: dispatches`);
      assertEquals(spread.picks, whole.picks, `${what}: picks`);
      assertEquals(spread.state, whole.state, `${what}: RNG state`);
      const kept = whole.weights.filter((w) => w > 0).length;
      assert(kept > 1 && kept < V / 2, `${what}: ${kept} ids kept: the cut is not exercised`);
      assertClose(spread.weights, whole.weights, 0, `${what}: the kept weights (the same cut)`, 1);
      assertEquals(spread.picks[3], -1, `${what}: nothing finite`);
    }
  }
});

gpuTest(
  "the device sampler draws the CPU sampler's tokens for the same logits and seed (tolerance: draws within 1e-5 of a boundary)",
  [],
  async () => {
    const backend = new WebGpuBackend();
    await backend.init(0);
    try {
      // V not a multiple of 256 (the last threads' chunks are short or empty) and over 8 * 256 with a remainder: the
      // kernel's passes load 8 ids a thread at a time, so a pass ends part way through its last round
      const V = 5003, RUN = 8, RUNS = 5;
      const logitsAt = backend.alloc(V * 4, "logits"), nextAt = backend.alloc(4, "next token");
      const ds = new DeviceSampler(backend, V, RUN);
      const configs: Array<{ params: SamplingParams; step?: number }> = [
        { params: { temperature: 0.8, topP: 0.9, seed: 1 } },
        { params: { temperature: 1.2, topK: 40, topP: 0.95, minP: 0.05, seed: 2 } },
        { params: { temperature: 1, topK: 7, seed: 3 }, step: 0.5 }, // ties at the top-k cut and in the nucleus
        { params: { temperature: 0.9, topP: 0.8, seed: 4 }, step: 0.25 },
        {
          params: {
            temperature: 0.7,
            minP: 0.02,
            repeatPenalty: 1.25,
            repeatLastN: 16,
            presencePenalty: 0.5,
            frequencyPenalty: 0.25,
            logitBias: { 3: 2.5, 5: -Infinity, 5002: 4 },
            seed: 5,
          },
        },
      ];
      const gen = new Rng(99);
      let compared = 0, tolerated = 0;
      for (const { params, step } of configs) {
        const cpu = new Sampler(V, params), host = new Sampler(V, params);
        const history = [3, 3, 17, 5002, 42, 3];
        for (let run = 0; run < RUNS; run++) {
          ds.load(host, history, logitsAt, nextAt);
          const steps: Array<{ logits: Float32Array; u: number; pick: number; history: number[] }> = [];
          for (let k = 0; k < RUN; k++) {
            const logits = syntheticLogits(V, gen, step);
            backend.write(logitsAt, logits);
            ds.step(k);
            const u = cpu.rng.clone().nextFloat();
            const before = history.slice();
            const pick = cpu.sample(logits.slice(), history).id;
            steps.push({ logits, u, pick, history: before });
            history.push(pick);
          }
          const dev = new Int32Array(RUN);
          await ds.finish(host, dev, RUN);
          const a = new Uint32Array(4), b = new Uint32Array(4);
          cpu.rng.getState(a);
          host.rng.getState(b);
          assertEquals(Array.from(b), Array.from(a), "the RNG continues where the device left it, one draw per token");
          for (let k = 0; k < RUN; k++) {
            compared++;
            if (dev[k] === steps[k].pick) continue;
            const s = steps[k];
            assert(
              nearBoundary(s.logits, s.history, params, s.u, s.pick),
              `${JSON.stringify(params)} run ${run} step ${k}: device drew ${dev[k]}, the CPU ${s.pick}, not near a boundary`,
            );
            tolerated++;
            break; // the device's history now differs: the next run starts again from the CPU's
          }
        }
      }
      assert(tolerated <= compared / 20, `${tolerated} of ${compared} draws differ (near boundaries): too many to be rounding`);
      // nothing finite to draw from: -1, which decodeSampled reports as a NumericalError
      const host = new Sampler(V, { temperature: 1, seed: 1 });
      ds.load(host, [], logitsAt, nextAt);
      backend.write(logitsAt, new Float32Array(V).fill(-Infinity));
      ds.step(0);
      const dev = new Int32Array(1);
      await ds.finish(host, dev, 1);
      assertEquals(dev[0], -1);
      assert(!DeviceSampler.supports(new Sampler(V, { temperature: 1, logprobs: 2 }).params), "logprobs need the logits on the host");
      const loadError = (sampler: Sampler, history: number[]): unknown => {
        try {
          ds.load(sampler, history, logitsAt, nextAt);
        } catch (e) {
          return e;
        }
        return null;
      };
      const greedy = loadError(new Sampler(V, { temperature: 0 }), []);
      assert(greedy instanceof ParamError && /temperature/.test(greedy.message), `greedy params: ${greedy}`);
      const badHistory = loadError(new Sampler(V, { temperature: 1, repeatPenalty: 1.1 }), [1, V]);
      assert(badHistory instanceof ParamError && /history/.test(badHistory.message), `history id ${V}: ${badHistory}`);
    } finally {
      await backend.close();
    }
  },
);

gpuTest("sampled generate runs ahead on the device and gives the text of per-token sampling on the same backend", [
  STORIES("stories260K.gguf"),
], async () => {
  const model = await loadModel(STORIES("stories260K.gguf"), { backend: "webgpu", contextLength: 256 });
  try {
    let calls = 0;
    const decodeSampled = model.decodeSampled.bind(model);
    model.decodeSampled = (...a) => (calls++, decodeSampled(...a));
    const prompt = "Once upon a time";
    for (
      const opts of [
        { temperature: 0.8, topP: 0.9, seed: 42, maxTokens: 70 }, // runs of 4, 8, 16, 32, then the rest: five readbacks
        {
          temperature: 1.1,
          topK: 40,
          minP: 0.02,
          repeatPenalty: 1.3,
          presencePenalty: 0.2,
          frequencyPenalty: 0.1,
          logitBias: { 13: -Infinity, 400: 1.5 },
          seed: 7,
          maxTokens: 30,
        },
        { temperature: 0.9, seed: 3, maxTokens: 30, stop: [" the"] },
      ] as GenerateOptions[]
    ) {
      const before = calls;
      const fast = await drain(generate(model, prompt, opts));
      assert(calls > before, "decodeSampled ran");
      const slow = await drain(generate(model, prompt, { ...opts, onToken: () => {} })); // onToken keeps generate on the per-token path
      assertEquals(fast.tokens, slow.tokens, JSON.stringify(opts));
      assertEquals(fast.text, slow.text);
      assertEquals(fast.finishReason, slow.finishReason);
    }
  } finally {
    await model.close();
  }
});

gpuTest("decodeSampled of 150 tokens in one call (readbacks overlapped with the next run) equals runs of 64, 64 and 22", [
  STORIES("stories260K.gguf"),
], async () => {
  const model = await loadModel(STORIES("stories260K.gguf"), { backend: "webgpu", contextLength: 256 });
  try {
    const prompt = [1, 403, 407, 261, 378];
    const params = { temperature: 0.9, topP: 0.95, repeatPenalty: 1.1, seed: 11 };
    const draw = async (runs: number[]) => {
      const seq = model.newSequence(), sampler = new Sampler(model.vocabSize, params);
      try {
        const history = [...prompt];
        let t = argmax(await model.prefill(seq, prompt));
        history.push(t);
        for (const n of runs) {
          const ids = await model.decodeSampled(seq, t, n, sampler, history);
          history.push(...ids);
          t = ids[n - 1];
        }
        const rng = new Uint32Array(4);
        sampler.rng.getState(rng);
        return { ids: history.slice(prompt.length + 1), rng: Array.from(rng), length: seq.length };
      } finally {
        model.releaseSequence(seq);
      }
    };
    const whole = await draw([150]), runs = await draw([64, 64, 22]);
    assertEquals(whole.ids.length, 150);
    assertEquals(whole.ids, runs.ids);
    assertEquals(whole.rng, runs.rng, "the sampler's RNG ends where the last run left it");
    assertEquals(whole.length, prompt.length + 150);
  } finally {
    await model.close();
  }
});

testShared("decodeSampled on the WASM backend is decodeOne with Sampler.sample", [STORIES("stories260K.gguf")], async () => {
  const model = await loadModel(STORIES("stories260K.gguf"), { backend: new WasmBackend(), contextLength: 64, maxSequences: 2 });
  try {
    const prompt = [1, 403, 407, 261, 378], params = { temperature: 0.9, topP: 0.95, repeatPenalty: 1.2, seed: 11 };
    const a = model.newSequence(), b = model.newSequence();
    const sa = new Sampler(model.vocabSize, params), sb = new Sampler(model.vocabSize, params);
    const history = [...prompt];
    let logits = await model.prefill(a, prompt);
    const host: number[] = [];
    for (let i = 0; i < 10; i++) {
      const id = sa.sample(logits, history).id;
      host.push(id);
      history.push(id);
      logits = await model.decodeOne(a, id);
    }
    const first = sb.sample(await model.prefill(b, prompt), prompt).id;
    const dev = await model.decodeSampled(b, first, 9, sb, [...prompt, first]);
    assertEquals([first, ...dev], host);
    assert(!model.sampledOnDevice(sb));
  } finally {
    await model.close();
  }
});
