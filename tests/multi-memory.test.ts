// Models past 4 GiB: the layout planner over several WebAssembly memories, a small model forced into several
// memories giving bit-identical logits to its one-memory run (F32 and Q4_K, one and two threads, prefill,
// batched decode and a forked sequence), and the memory budget failing a load before anything is reserved.
import { assert, assertEquals, assertRejects, assertStepsBitIdentical, sharedPath, test, testShared } from "./harness.ts";
import type { Model } from "../src/model/model.ts";
import { loadModel, type LoadOptions } from "../src/model/load.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import type { Weight } from "../src/backends/backend.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { MultiMemoryBackend } from "../src/backends/multi-memory.ts";
import { planMemories } from "../src/memory/memory-plan.ts";
import { parseByteSize } from "../src/memory/budget.ts";
import { MAX_ARENA_BYTES } from "../src/memory/arena.ts";
import { rowBytes } from "../src/formats/ggml-types.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { OutOfMemoryError, ParamError } from "../src/errors.ts";
import { threadSupport } from "../src/threads/spawn.ts";
import { main } from "../src/cli.ts";
import { Engine } from "../src/engine/engine.ts";

const F32 = sharedPath("models", "stories260K", "stories260K.gguf"); // 5 layers, F32
const Q4K = sharedPath("models", "synthetic-quants", "synthq-q4_k_m.gguf"); // 2 layers, Q4_K with Q6_K output

/**
 * Every logits vector of one scripted run: a prompt (prefill), a fork of it, one step decoding both
 * sequences as a batch (the fork's partial page is copied on write), then two more steps of the child alone.
 */
async function script(path: string, opts: LoadOptions): Promise<{ logits: Float32Array[]; memories: number; layouts: string[] }> {
  const model: Model = await loadModel(path, { contextLength: 64, maxSequences: 2, ...opts });
  try {
    const out: Float32Array[] = [];
    const a = model.newSequence();
    out.push((await model.prefill(a, [1, 403, 407, 261, 378, 308, 300, 350, 365, 259, 270, 280, 290, 300, 310, 320, 330, 340, 350]))
      .slice());
    const b = model.kv.fork(a);
    for (const l of await model.step([{ seq: a, tokens: [290] }, { seq: b, tokens: [311, 312] }])) out.push(l.slice());
    out.push((await model.decodeOne(b, 400)).slice(), (await model.decodeOne(b, 401)).slice());
    out.push((await model.decodeOne(a, 402)).slice());
    return { logits: out, memories: model.backend instanceof MultiMemoryBackend ? model.backend.memories : 1, layouts: layoutsOf(model) };
  } finally {
    await model.close();
  }
}

/** Each weight's "name type layout", for the weights' load-time layouts (prepareWeight) to be compared across memory counts. */
function layoutsOf(m: Model): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (!v || typeof v !== "object") return;
    if ("ptr" in v && "type" in v) {
      const w = v as Weight;
      out.push(`${w.name} ${w.type} ${w.layout ?? "ggml"}`);
    } else for (const x of Object.values(v)) walk(x);
  };
  walk(m.weights);
  return out.sort();
}

for (const [label, path, counts] of [["F32", F32, [2, 3, 5]], ["Q4_K", Q4K, [2]]] as const) {
  testShared(`multi-memory: ${label} in ${counts.join(", ")} memories equals one memory, one thread`, [path], async () => {
    const one = await script(path, { threads: 1 });
    assertEquals(one.memories, 1);
    for (const memories of counts) {
      const many = await script(path, { threads: 1, memories });
      assertEquals(many.memories, memories);
      assertStepsBitIdentical(many.logits, one.logits, `${label}, ${memories} memories`);
      // every memory's weights take the layout one memory gives them (prepareWeight delegated to the weight's memory)
      assertEquals(many.layouts, one.layouts, `${label}, ${memories} memories: weight layouts`);
      // (its Q4_K and Q6_K weights both take the lanes layout now; a weight's d % 4 tail rows are KX inside it)
      if (label === "Q4_K") assert(one.layouts.some((l) => l.endsWith(" lanes")), "the Q4_K file has repacked weights");
    }
  });

  testShared(`multi-memory: ${label} in 2 memories on two threads equals one memory on one`, [path], async () => {
    if (!threadSupport()) return console.warn("skipping: no Worker with shared memory");
    const one = await script(path, { threads: 1 });
    // every op split, however small, in each memory's own pool
    const many = await script(path, { backend: new ThreadedWasmBackend({ threads: 2, minWork: 0 }), memories: 2 });
    assertEquals(many.memories, 2);
    assertStepsBitIdentical(many.logits, one.logits, `${label}, 2 memories, 2 threads`);
    assertEquals(many.layouts, one.layouts, `${label}, 2 memories, 2 threads: weight layouts`);
  });
}

testShared("multi-memory: the F16 and Q8_0 caches and the exact mode (ggmlOrder) run across memories alike", [F32, Q4K], async () => {
  for (const opts of [{ kvCacheType: "f16" }, { kvCacheType: "q8_0" }, { kvCacheType: "f16", ggmlOrder: true }] as LoadOptions[]) {
    for (const path of opts.ggmlOrder ? [F32, Q4K] : [F32]) {
      const one = await script(path, { threads: 1, ...opts });
      const many = await script(path, { threads: 1, ...opts, memories: 2 });
      assertStepsBitIdentical(many.logits, one.logits, `${JSON.stringify(opts)} ${path}`);
    }
  }
});

testShared("multi-memory: the engine (batching, n > 1 forks, prefix reuse) gives the same tokens in several memories", [F32], async () => {
  const run = async (memories?: number) => {
    const model = await loadModel(F32, { threads: 1, maxSequences: 4, contextLength: 128, memories });
    const engine = new Engine(model);
    try {
      const prompt = "Once upon a time, there was a little girl named Lily. She";
      const first = await engine.submit({ prompt, temperature: 0, maxTokens: 24 }).done;
      const computed = model.positionsComputed;
      // the same prompt again (its full pages come from the prefix cache), two seeded samples beside it
      const [again, sampled] = await Promise.all([
        engine.submit({ prompt, temperature: 0, maxTokens: 24 }).done,
        engine.submit({ prompt: prompt + " liked", temperature: 0.8, seed: 7, n: 2, maxTokens: 16 }).done,
      ]);
      const reused = model.positionsComputed - computed;
      assert(again.usage.cachedTokens >= 16, `prefix cache hit: ${again.usage.cachedTokens} tokens`);
      assertEquals(first.choices[0].tokens.length, 24);
      assertEquals(sampled.choices.length, 2);
      return { tokens: [first, again, sampled].flatMap((r) => r.choices.map((c) => c.tokens)), reused };
    } finally {
      await engine.close();
      await model.close();
    }
  };
  const one = await run(), many = await run(3);
  assertEquals(JSON.stringify(many.tokens), JSON.stringify(one.tokens));
  assertEquals(many.reused, one.reused, "prefix reuse computed the same positions");
});

/** Llama-3-8B's tensors at Q4_K_M as kvasm's writer lays them out (bench/synthetic.ts llama3-8b). */
function llama3_8bTensors(): Array<{ name: string; bytes: number }> {
  const dim = 4096, hidden = 14336, kvDim = 1024, vocab = 128256;
  const q = (type: number, cols: number, rows: number) => rowBytes(type, cols)! * rows;
  const out = [{ name: "token_embd.weight", bytes: q(GGMLType.Q4_K, dim, vocab) }];
  for (let l = 0; l < 32; l++) {
    const more = l < 4 || l >= 28 || (l - 4) % 3 === 2; // Q4_K_M's use_more_bits
    out.push(
      { name: `blk.${l}.attn_norm.weight`, bytes: dim * 4 },
      { name: `blk.${l}.attn_q.weight`, bytes: q(GGMLType.Q4_K, dim, dim) },
      { name: `blk.${l}.attn_k.weight`, bytes: q(GGMLType.Q4_K, dim, kvDim) },
      { name: `blk.${l}.attn_v.weight`, bytes: q(more ? GGMLType.Q6_K : GGMLType.Q4_K, dim, kvDim) },
      { name: `blk.${l}.attn_output.weight`, bytes: q(GGMLType.Q4_K, dim, dim) },
      { name: `blk.${l}.ffn_norm.weight`, bytes: dim * 4 },
      { name: `blk.${l}.ffn_gate.weight`, bytes: q(GGMLType.Q4_K, dim, hidden) },
      { name: `blk.${l}.ffn_up.weight`, bytes: q(GGMLType.Q4_K, dim, hidden) },
      { name: `blk.${l}.ffn_down.weight`, bytes: q(more ? GGMLType.Q6_K : GGMLType.Q4_K, hidden, dim) },
    );
  }
  out.push({ name: "output_norm.weight", bytes: dim * 4 }, { name: "output.weight", bytes: q(GGMLType.Q6_K, dim, vocab) });
  return out;
}

test("multi-memory: the planner puts the 8B shape in two memories of contiguous layers, each under 4 GiB", () => {
  const tensors = llama3_8bTensors();
  const weights = tensors.reduce((n, t) => n + t.bytes, 0);
  assert(weights > 4.5e9 && weights < 5e9, `Q4_K_M 8B weights: ${weights}`);
  // 2048 positions of f32 K and V per layer in 16-position pages, 64 MiB of scratch
  const kvLayerBytes = 128 * 16 * 2 * 1024 * 4;
  const plan = planMemories({ tensors, nLayers: 32, kvLayerBytes, sharedBytes: 64 << 20 });
  assertEquals(plan.memories, 2);
  for (const b of plan.memoryBytes) assert(b <= MAX_ARENA_BYTES - 65536, `memory of ${b} bytes`);
  for (let l = 1; l < 32; l++) assert(plan.layerMemory[l] >= plan.layerMemory[l - 1], "layers in order");
  assertEquals(plan.memoryOf("token_embd.weight"), 0);
  assertEquals(plan.memoryOf("output.weight"), 1);
  assertEquals(plan.memoryOf("blk.0.attn_q.weight"), 0);
  assertEquals(plan.memoryOf("blk.31.ffn_down.weight"), 1);
  // balanced by bytes: neither memory holds more than 60% of the model
  const placed = plan.memoryBytes.map((b) => b - (64 << 20));
  assert(Math.max(...placed) < 0.6 * placed.reduce((a, b) => a + b), `unbalanced: ${placed}`);
});

test("multi-memory: the planner opens memories as needed and refuses a layer larger than one memory", () => {
  const tensors = Array.from({ length: 6 }, (_, l) => ({ name: `blk.${l}.ffn_up.weight`, bytes: 1000 }));
  const small = { tensors, nLayers: 6, kvLayerBytes: 0, sharedBytes: 100, memoryBytes: 65536 + (1 << 20) + 100 + 2300 };
  const plan = planMemories(small);
  assertEquals(plan.memories, 3);
  assertEquals([...plan.layerMemory], [0, 0, 1, 1, 2, 2]);
  assertRejects(
    () => planMemories({ ...small, tensors: [{ name: "blk.0.ffn_up.weight", bytes: 5000 }, ...tensors.slice(1)] }),
    OutOfMemoryError,
    /layer 0 needs .* more than one WebAssembly memory holds/,
  );
  assertRejects(() => planMemories({ ...small, memories: 7 }), ParamError, /memories: must be an integer from 1 to the model's 6 layers/);
});

test("memory budget: a load over memoryLimit fails with both figures before the backend reserves anything", async () => {
  const backend = new WasmBackend();
  const e = await assertRejects(
    () => loadModel(undefined, { backend, memoryLimit: 100_000 }),
    OutOfMemoryError,
    /model needs [\d.]+ (KiB|MiB) \(weights .*\) but the memory limit is 97\.7 KiB: raise memoryLimit/,
  ) as OutOfMemoryError;
  assert(e.needed! > 100_000, `needed ${e.needed}`);
  assertEquals(e.available, 100_000);
  assertEquals(backend.arena, undefined, "the backend never reserved its memory");
  await assertRejects(() => loadModel(undefined, { memoryLimit: -1 }), ParamError, /memoryLimit: must be a positive number/);
  // a limit it fits under loads as before
  const model = await loadModel(undefined, { threads: 1, memoryLimit: 1 << 30 });
  await model.close();
});

test("memory budget: more than the machine has fails likewise (a context of 2^27 positions)", async () => {
  await assertRejects(
    () => loadModel(undefined, { threads: 1, contextLength: 1 << 27 }),
    OutOfMemoryError,
    /model needs [\d.]+ GiB \(.*kv [\d.]+ GiB.*\) but this machine has [\d.]+ GiB of memory/,
  );
});

test("memory budget: --memory-limit parses sizes and fails the load with exit code 1", async () => {
  assertEquals(parseByteSize("6G"), 6 * 2 ** 30);
  assertEquals(parseByteSize("512MiB"), 512 * 2 ** 20);
  assertEquals(parseByteSize("4096"), 4096);
  assertEquals(parseByteSize("lots"), undefined);
  const io = {
    stdout: "",
    stderr: "",
    out: (s: string) => void (io.stdout += s),
    err: (s: string) => void (io.stderr += s),
    errIsTTY: false,
  };
  assertEquals(await main(["generate", "--prompt", "x", "--memory-limit", "64K"], io), 1);
  assert(/kvasm: OutOfMemoryError: model needs .* but the memory limit is 64\.0 KiB/.test(io.stderr), io.stderr);
  io.stderr = "";
  assertEquals(await main(["generate", "--prompt", "x", "--memory-limit", "six gigs"], io), 1);
  assert(/ParamError: --memory-limit: must be a size/.test(io.stderr), io.stderr);
});
