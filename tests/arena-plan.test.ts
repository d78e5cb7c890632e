// The one arena plan: offsets handed out at planning time are where the regions land, with no slack;
// the run state comes from it, every buffer a region of its own.
import { assert, assertEquals, sharedPath, test, testShared } from "./harness.ts";
import { ArenaPlan, RESERVED } from "../src/memory/arena.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { planRunState, type RunBuffer, type RunShape, runState, runStateBytes } from "../src/architectures/architecture.ts";
import { PagedKVCache } from "../src/kv/paged-cache.ts";
import { deriveConfig } from "../src/model/config.ts";
import { loadModel } from "../src/model/load.ts";

const MODEL = sharedPath("models", "stories260K", "stories260K.gguf");

test("ArenaPlan: each region lands at RESERVED + its planned offset, and the arena holds exactly the plan", async () => {
  const plan = new ArenaPlan();
  // odd sizes and alignments: padding is the plan's, not slack added afterwards
  const regions = [plan.add("a", 3), plan.add("b", 100, 16), plan.add("c", 1, 1), plan.add("d", 65, 64), plan.add("e", 7, 4)];
  assertEquals(regions.map((r) => r.offset), [0, 16, 116, 128, 196]);
  assertEquals(plan.bytes, 203);
  const backend = new WasmBackend();
  const at = await plan.place(backend);
  assertEquals(regions.map(at), regions.map((r) => RESERVED + r.offset));
  assertEquals(backend.arena.used, RESERVED + plan.bytes);
  // a region of another plan has no address here
  let threw = false;
  try {
    at(new ArenaPlan().add("stranger", 4));
  } catch {
    threw = true;
  }
  assert(threw, "a foreign region was given an address");
  await backend.close();
});

test("run state: every buffer is its own region, sized by runStateBytes, none at address 0", async () => {
  const c = deriveConfig({
    arch: "llama",
    dim: 64,
    hiddenDim: 172,
    nLayers: 2,
    nHeads: 8,
    nKvHeads: 4,
    headDim: 8,
    vocabSize: 512,
    contextLength: 256,
    ropeTheta: 10000,
    ropeDim: 8,
    ropeStyle: "interleaved",
    normEps: 1e-5,
  });
  const shape: RunShape = { rows: 16, logitRows: 2, positions: 256 };
  const plan = new ArenaPlan();
  const kv = PagedKVCache.plan(plan, c, { pageSize: 16, nPages: 16, maxSeqs: 1, maxPositions: 256 });
  const regions = planRunState(plan, c, shape);
  const backend = new WasmBackend();
  const at = await plan.place(backend);
  const s = runState(regions, at, shape);
  const bytes = runStateBytes(c, shape);
  const buffers = Object.keys(bytes) as RunBuffer[];
  assertEquals([s.maxRows, s.maxLogitRows], [16, 2]);
  assertEquals(bytes.x, 16 * 64 * 4);
  assertEquals(bytes.logits, 2 * 512 * 4);
  // disjoint, in order, after the KV cache's regions
  let end = at(kv.pageTables) + kv.pageTables.bytes;
  for (const b of buffers) {
    assert(s[b] >= end, `${b} overlaps the buffer before it`);
    end = s[b] + bytes[b];
  }
  assertEquals(end, RESERVED + plan.bytes);
  await backend.close();
});

testShared("loadModel: the arena is the plan's size, no slack past it", [MODEL], async () => {
  const model = await loadModel(MODEL, { threads: 1, contextLength: 128 });
  const backend = model.backend as WasmBackend;
  // the last region the plan placed (RunState.greedy) ends where the arena's bump pointer stopped
  assertEquals(
    backend.arena.used,
    model.state.greedy + runStateBytes(model.config, {
      rows: model.state.maxRows,
      logitRows: model.state.maxLogitRows,
      positions: 128,
    }).greedy,
  );
  // and the memory reserved is that, rounded up to whole 64 KiB WebAssembly pages
  assert(backend.arena.capacity - backend.arena.used < 65536, `${backend.arena.capacity - backend.arena.used} bytes unused`);
  await model.close();
});
