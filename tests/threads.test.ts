// The threaded WASM backend: bit-identical logits and ids for 1, 2 and 3
// threads, the automatic single-thread path, and a worker dying mid-run.
import {
  assert,
  assertBitIdentical,
  assertEquals,
  assertRejects,
  assertStepsBitIdentical,
  readJSON,
  sharedPath,
  test,
  testShared,
} from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { selectBackend } from "../src/backends/select.ts";
import { type PoolOptions, ThreadPool } from "../src/threads/pool.ts";
import { CONTROL_BASE, FAILED, MAX_CHUNKS, planChunks, planRowChunks, ROW_CALL_POSITIONS } from "../src/threads/control.ts";
import { threadSupport } from "../src/threads/spawn.ts";
import { kernelModule, pickVariant } from "../src/kernels/wasm.ts";
import { KERNEL_SPEC } from "../src/kernels/spec.ts";
import { generate } from "../src/generate.ts";
import { KvasmError, ParamError } from "../src/errors.ts";
import { type Backend, ROW_FIELDS, ROW_POS, ROW_START } from "../src/backends/backend.ts";
import { argmax } from "../src/sampling/sampler.ts";

const MODELS = sharedPath("models", "stories260K");
const GOLDEN = sharedPath("golden", "stories260K.json");
const golden = (model: string) =>
  readJSON<Array<{ model: string; prompt_ids: number[]; greedy_ids: number[] }>>(GOLDEN).find((r) => r.model === model)!;

/** Every op split, however small: the stories260K shapes then exercise every split path. */
const threaded = (threads: number) => new ThreadedWasmBackend({ threads, minWork: 0 });

/** Greedy decoding by hand, keeping a copy of every logits vector. */
async function greedyRun(model: Model, prompt: number[], steps: number): Promise<{ ids: number[]; logits: Float32Array[] }> {
  const seq = model.newSequence();
  let logits = await model.prefill(seq, prompt);
  const ids: number[] = [], all: Float32Array[] = [];
  for (let i = 0; i < steps; i++) {
    all.push(logits.slice());
    const best = argmax(logits);
    ids.push(best);
    if (i + 1 < steps) logits = await model.decodeOne(seq, best);
  }
  model.releaseSequence(seq);
  return { ids, logits: all };
}

async function withModel<T>(path: string, backend: Backend, fn: (m: Model) => Promise<T>, maxSequences = 1): Promise<T> {
  const model = await loadModel(path, { backend, maxSequences });
  try {
    return await fn(model);
  } finally {
    await model.close();
  }
}

const threads = threadSupport() !== undefined;

for (const file of ["stories260K.gguf", "stories260K-q8_0.gguf"]) {
  const path = sharedPath("models", "stories260K", file);
  testShared(`${file}: greedy ids and every logit bit-identical on 1, 2 and 3 threads`, [path, GOLDEN], async () => {
    assert(threads, "this runtime should have Workers and shared memory");
    const ref = golden(`stories260K/${file}`);
    const one = await withModel(path, new WasmBackend(), (m) => greedyRun(m, ref.prompt_ids, 64));
    assertEquals(one.ids, ref.greedy_ids.slice(0, 64), "1 thread vs llama.cpp");
    for (const n of [2, 3]) {
      const backend = threaded(n);
      const r = await withModel(path, backend, (m) => {
        assertEquals(backend.threads, n, "threads running");
        return greedyRun(m, ref.prompt_ids, 64);
      });
      assertEquals(r.ids, one.ids, `${n} threads: ids`);
      assertStepsBitIdentical(r.logits, one.logits, `${n} threads`);
    }
  });
}

testShared("a batched step over sequences of different lengths is bit-identical on 1 and 3 threads", [MODELS], async () => {
  const path = sharedPath("models", "stories260K", "stories260K.gguf");
  const run = (backend: Backend) =>
    withModel(path, backend, async (m) => {
      const a = m.newSequence(), b = m.newSequence();
      await m.step([{ seq: a, tokens: [1, 403, 407, 261, 378, 432, 383], logits: false }]);
      // one step: a continues at position 7, b is a fresh 3-token prompt: rows attend over different lengths
      const out = await m.step([{ seq: a, tokens: [286, 261] }, { seq: b, tokens: [1, 403, 407] }]);
      return out.map((l) => l.slice());
    }, 2);
  assertStepsBitIdentical(await run(threaded(3)), await run(new WasmBackend()), "batched step");
});

testShared("prefill attention split by query rows: long prompts, a continued prompt and a full context, bit-identical on 1, 2, 3 threads", [
  MODELS,
], async () => {
  const path = sharedPath("models", "stories260K", "stories260K.gguf");
  const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((seed + i * 37) % 500));
  // a 64-position context filled to 62: every thread's band of scores is nearly a whole context long
  const run = async (backend: Backend) => {
    const m = await loadModel(path, { backend, contextLength: 64 });
    try {
      const out: Float32Array[] = [];
      const a = m.newSequence();
      out.push((await m.prefill(a, ids(40, 1))).slice());
      // the prompt continued: rows start at position 40 and attend over the cached prefix
      out.push((await m.prefill(a, ids(22, 2))).slice());
      m.releaseSequence(a);
      const b = m.newSequence();
      out.push((await m.prefill(b, ids(9, 3))).slice());
      return out;
    } finally {
      await m.close();
    }
  };
  const one = await run(new WasmBackend());
  for (const n of [2, 3]) assertStepsBitIdentical(await run(threaded(n)), one, `${n} threads`);
});

testShared(
  "a prefill run by the calling thread alone (the split's chunks, or one call an op) or by the workers alone gives the same bits",
  [
    MODELS,
  ],
  async () => {
    // what bench/threads.ts --account compares: every op through the same kernels, only who runs which rows differs
    const path = sharedPath("models", "stories260K", "stories260K-q8_0.gguf");
    const ids = Array.from({ length: 40 }, (_, i) => 3 + ((i * 37) % 500));
    const backend = threaded(2);
    await withModel(path, backend, async (m) => {
      const pool = backend.pool!;
      const run = async (solo: "off" | "split" | "whole" | "workers") => {
        pool.solo = solo;
        try {
          const seq = m.newSequence();
          const logits = (await m.prefill(seq, ids)).slice();
          m.releaseSequence(seq);
          return logits;
        } finally {
          pool.solo = "off";
        }
      };
      const all = await run("off");
      for (const solo of ["split", "whole", "workers"] as const) assertBitIdentical(await run(solo), all, `solo ${solo}`);
      assertBitIdentical(await run("off"), all, "all threads again after solo prefills");
    });
  },
);

// Q4_K_M: layer 1's q and k are Q4_K and its v Q6_K, one op over two kernels (both read Q8_K activations)
const SYNTH_Q4_K_M = sharedPath("models", "synthetic-quants", "synthq-q4_k_m.gguf");

testShared("a prefill's matmuls over one input run as one op (no join between q, k, v or gate, up): the same bits, fewer joins", [
  MODELS,
  SYNTH_Q4_K_M,
], async () => {
  const ids = Array.from({ length: 40 }, (_, i) => 3 + ((i * 37) % 500));
  const paths = [sharedPath("models", "stories260K", "stories260K.gguf"), sharedPath("models", "stories260K", "stories260K-q8_0.gguf")];
  for (const path of [...paths, SYNTH_Q4_K_M]) {
    const file = path.split("/").pop()!;
    // the prompt's logits and the pool's matmul joins (ops) of its prefill, and a decode step's after it
    const run = async (backend: Backend) => {
      const m = await loadModel(path, { backend, contextLength: 64 });
      try {
        const pool = backend instanceof ThreadedWasmBackend ? backend.pool : undefined;
        pool?.recordStats(true);
        const seq = m.newSequence();
        const prompt = (await m.prefill(seq, ids)).slice();
        const joins = Object.entries(pool?.stats().joins ?? {}).reduce((a, [k, v]) => a + (k.startsWith("matmul") ? v.ops : 0), 0);
        pool?.recordStats(false);
        const next = (await m.decodeOne(seq, 7)).slice();
        return { logits: [prompt, next], joins };
      } finally {
        await m.close();
      }
    };
    const one = await run(new WasmBackend());
    const apart = await run(new ThreadedWasmBackend({ threads: 2, minWork: 0, mergeMatmuls: false }));
    const merged = await run(new ThreadedWasmBackend({ threads: 2, minWork: 0 }));
    // and with every join left pending: the held matmuls run from the queue, behind and before the right ops
    const deferred = await run(new ThreadedWasmBackend({ threads: 3, minWork: 0, joinSpinMs: 0 }));
    assertStepsBitIdentical(apart.logits, one.logits, `${file}: 2 threads, matmuls apart`);
    assertStepsBitIdentical(merged.logits, one.logits, `${file}: 2 threads, matmuls merged`);
    assertStepsBitIdentical(deferred.logits, one.logits, `${file}: 3 threads, merged, joins deferred`);
    // per layer q, k, v (3 joins) and gate, up (2) become one each: 3 fewer of the 7 matmul joins a layer
    assert(merged.joins < apart.joins, `${file}: fewer matmul joins merged (${merged.joins}) than apart (${apart.joins})`);
  }
});

testShared("ops left pending (no join spin) and finished asynchronously give the same bits", [MODELS, GOLDEN], async () => {
  // Q8_0: the split activation quantization can be pending when its matmul is issued
  const path = sharedPath("models", "stories260K", "stories260K-q8_0.gguf");
  const ref = golden("stories260K/stories260K-q8_0.gguf");
  const one = await withModel(path, new WasmBackend(), (m) => greedyRun(m, ref.prompt_ids, 16));
  const deferred = await withModel(
    path,
    new ThreadedWasmBackend({ threads: 2, minWork: 0, joinSpinMs: 0 }),
    (m) => greedyRun(m, ref.prompt_ids, 16),
  );
  assertStepsBitIdentical(deferred.logits, one.logits, "deferred joins");
});

test("chunks start at multiples of the alignment, cover the range once, and shrink towards the end", () => {
  const cases = [[172, 16, 2], [768, 16, 2], [32000, 16, 3], [12, 1, 2], [5, 64, 2], [98304, 64, 8], [1, 1, 2], [4096 * 70, 4096, 64]];
  for (const [total, align, threads] of cases) {
    const bounds: number[] = [];
    const n = planChunks(total, align, threads, bounds);
    const what = `${total} units, align ${align}, ${threads} threads`;
    assert(n >= 1 && n <= MAX_CHUNKS, `${what}: ${n} chunks`);
    assertEquals(bounds.length, n + 1, `${what}: boundaries`);
    assertEquals([bounds[0], bounds[n]], [0, total], `${what}: ends`);
    for (let i = 0; i < n; i++) {
      assert(bounds[i] % align === 0 && bounds[i + 1] > bounds[i], `${what}: chunk ${i} is [${bounds[i]}, ${bounds[i + 1]})`);
      // factoring: sizes never grow (the last chunk takes what is left, so it may be smaller still)
      if (i > 0) assert(bounds[i + 1] - bounds[i] <= bounds[i] - bounds[i - 1], `${what}: chunk ${i} larger than chunk ${i - 1}`);
    }
    // the tail a late thread can leave to the other: at most about a 1 / (2 * threads) share of the op
    if (total >= 16 * align * threads) assert(bounds[n] - bounds[n - 1] <= Math.ceil(total / (2 * threads)), `${what}: last chunk`);
  }
  // two threads over a 768-row matmul: the first chunk is a quarter, the last at most a sixteenth
  const b: number[] = [];
  const n = planChunks(768, 16, 2, b);
  assertEquals(b[1], 192, "first chunk");
  assert(b[n] - b[n - 1] <= 48, `last chunk ${b[n] - b[n - 1]}`);
  // attention's 12 heads at 2 chunks a thread: 4 chunks of 3 heads (each chunk is one kernel call per query row)
  const heads: number[] = [];
  assertEquals(planChunks(12, 1, 2, heads, 0, 2), 4, "attention chunks");
  assertEquals(heads, [0, 3, 6, 9, 12], "attention chunk boundaries");
  // a one-row matmul (splitStreaming): one chunk a thread, the halves
  const halves: number[] = [];
  assertEquals(planChunks(768, 16, 2, halves, 0, 1), 2, "streaming chunks");
  assertEquals(halves, [0, 384, 768], "streaming chunk boundaries");
});

test("query-row chunks of attention cover the rows once, in order, and end with little work", () => {
  // T rows at positions pos0 .. pos0 + T - 1 of sequences starting at 0 (a causal prefill), ROW_FIELDS i32 a row
  const rowsOf = (T: number, pos0: number) => {
    const heap = new Int32Array(16 + T * ROW_FIELDS);
    for (let t = 0; t < T; t++) heap[16 + t * ROW_FIELDS + ROW_POS] = pos0 + t, heap[16 + t * ROW_FIELDS + ROW_START] = 0;
    return heap;
  };
  for (const [T, pos0, threads] of [[128, 0, 2], [128, 0, 3], [5, 0, 2], [4, 300, 2], [1, 0, 2], [512, 0, 16], [37, 90, 2]]) {
    const heap = rowsOf(T, pos0), bounds: number[] = [], what = `${T} rows from ${pos0}, ${threads} threads`;
    const n = planRowChunks(heap, 64, T, ROW_FIELDS, ROW_POS, ROW_START, threads, bounds);
    assert(n >= 1 && n <= MAX_CHUNKS, `${what}: ${n} chunks`);
    assertEquals([bounds[0], bounds[n], bounds.length], [0, T, n + 1], `${what}: ends`);
    for (let i = 0; i < n; i++) assert(bounds[i + 1] > bounds[i], `${what}: chunk ${i} is [${bounds[i]}, ${bounds[i + 1]})`);
    // the last chunk: at most a 1 / (2 * threads) share of the work, or a single row
    const work = (t0: number, t1: number) => {
      let w = 0;
      for (let t = t0; t < t1; t++) w += pos0 + t + 1 + ROW_CALL_POSITIONS;
      return w;
    };
    const last = work(bounds[n - 1], T);
    assert(bounds[n] - bounds[n - 1] === 1 || last <= work(0, T) / (2 * threads), `${what}: last chunk's work ${last}`);
  }
  // 128 causal rows on two threads: the first chunk is the fewest rows that make a quarter of the work (about half
  // the rows: the early rows are short)
  const b: number[] = [], work = (t1: number) => (t1 * (t1 + 1)) / 2 + t1 * ROW_CALL_POSITIONS;
  planRowChunks(rowsOf(128, 0), 64, 128, ROW_FIELDS, ROW_POS, ROW_START, 2, b);
  assert(work(b[1]) >= work(128) / 4 && work(b[1] - 1) < work(128) / 4 && b[1] > 50, `first chunk [0, ${b[1]})`);
});

// ---------------------------------------------------------------- no Worker, no shared memory

async function withoutGlobal<T>(name: "Worker" | "SharedArrayBuffer", fn: () => Promise<T>): Promise<T> {
  const g = globalThis as Record<string, unknown>;
  const saved = Object.getOwnPropertyDescriptor(g, name);
  Object.defineProperty(g, name, { value: undefined, configurable: true, writable: true });
  try {
    return await fn();
  } finally {
    if (saved) Object.defineProperty(g, name, saved);
  }
}

for (const missing of ["Worker", "SharedArrayBuffer"] as const) {
  testShared(`without ${missing}, loadModel runs single-threaded unasked and passes the golden`, [MODELS, GOLDEN], async () => {
    const ref = golden("stories260K/stories260K.gguf");
    const path = sharedPath("models", "stories260K", "stories260K.gguf");
    await withoutGlobal(missing, async () => {
      assertEquals(threadSupport(), undefined, "thread support");
      assert((await selectBackend({ threads: 4 })) instanceof WasmBackend, "selectBackend falls back");
      const model = await loadModel(path, { threads: 4 });
      try {
        assertEquals(model.backend.name, "wasm", "backend");
        const r = await greedyRun(model, ref.prompt_ids, 32);
        assertEquals(r.ids, ref.greedy_ids.slice(0, 32), "greedy ids");
      } finally {
        await model.close();
      }
    });
  });
}

test("threads: 1 and bad thread counts", async () => {
  assert((await selectBackend({ threads: 1 })) instanceof WasmBackend, "threads: 1 is the plain backend");
  // the same ParamError from each door, before any Worker or Memory is made
  const message = /^threads: must be a positive integer, got /;
  for (const bad of [0, -1, 1.5, NaN]) {
    await assertRejects(() => selectBackend({ threads: bad }), ParamError, message);
    await assertRejects(() => new ThreadedWasmBackend({ threads: bad }), ParamError, message);
    await assertRejects(() => ThreadPool.start({ threads: bad } as PoolOptions), ParamError, message);
  }
});

// ---------------------------------------------------------------- dying workers

testShared(
  "a worker terminated mid-generation fails the pending call with a worker error; a new model loads after",
  [MODELS, GOLDEN],
  async () => {
    const path = sharedPath("models", "stories260K", "stories260K.gguf");
    const backend = threaded(2);
    const model = await loadModel(path, { backend });
    let produced = 0;
    const err = await assertRejects(
      async () => {
        const gen = generate(model, "Once upon a time", { temperature: 0, maxTokens: 100 });
        for (let r = await gen.next(); !r.done; r = await gen.next()) {
          if (++produced === 5) backend.pool!.workers[0].terminate();
        }
      },
      KvasmError,
      /worker/,
    );
    assertEquals((err as KvasmError).code, "worker", "error code");
    assert(produced >= 5 && produced < 100, `stopped after the kill (${produced} pieces)`);
    await assertRejects(() => model.prefill(model.newSequence(), [1, 403]), KvasmError, /worker/);
    await model.close();

    const ref = golden("stories260K/stories260K.gguf");
    const again = await withModel(path, threaded(2), (m) => greedyRun(m, ref.prompt_ids, 32));
    assertEquals(again.ids, ref.greedy_ids.slice(0, 32), "greedy ids after reloading");
  },
);

test("a worker that traps inside an op fails the call with its message instead of hanging", async () => {
  const backend = new WasmBackend({ shared: true });
  await backend.init(1 << 20);
  const module = await kernelModule(pickVariant({ shared: true }));
  // the calling thread's "kernel" is harmless and holds its chunk until the worker has failed (or 5 s),
  // so the worker surely claims one; the worker's real matmul_f32 writes past the end of the memory and traps
  const ctl = new Int32Array(backend.arena.memory.buffer, CONTROL_BASE, 64);
  const slow = (..._a: number[]) => {
    const until = performance.now() + 5000;
    while (Atomics.load(ctl, FAILED) === 0 && performance.now() < until) { /* hold the chunk */ }
  };
  const pool = await ThreadPool.start({
    threads: 2,
    kind: threadSupport()!,
    cores: 2,
    module,
    memory: backend.arena.memory,
    exports: { matmul_f32: slow },
    kernelNames: ["matmul_f32"],
  });
  try {
    const beyond = backend.arena.capacity - 64;
    const err = await assertRejects(
      async () => {
        if (!pool.split("matmul_f32", "rows", beyond, 1 << 16, 1 << 16, 16, 256, 1, 0, 256)) await pool.settle();
      },
      KvasmError,
      /worker 1 failed during an op: .*(out of bounds|RuntimeError)/i,
    );
    assertEquals((err as KvasmError).code, "worker", "error code");
    await assertRejects(() => pool.split("matmul_f32", "rows", 0, 0, 0, 16, 16, 1, 0, 16), KvasmError, /died|failed/);
  } finally {
    pool.close();
    await backend.close();
  }
});

test("the pool's statistics count every chunk once, each join by kernel and each op a worker saw; off, they count nothing", async () => {
  const backend = new WasmBackend({ shared: true });
  await backend.init(4 << 20);
  const module = await kernelModule(pickVariant({ shared: true }));
  // a short spin: the worker sleeps in Atomics.wait between the ops below, so its wake-ups are counted as such
  const pool = await ThreadPool.start({
    threads: 2,
    kind: threadSupport()!,
    cores: 2,
    module,
    memory: backend.arena.memory,
    exports: backend.kernels as unknown as Record<string, unknown>,
    kernelNames: ["add"],
    spinMs: 0.05,
  });
  try {
    const n = 1 << 16, bytes = 4 * n;
    const a = backend.alloc(bytes, "a"), b = backend.alloc(bytes, "b"), out = backend.alloc(bytes, "out");
    const f32 = (p: number) => new Float32Array(backend.arena.memory.buffer, p, n);
    for (let i = 0; i < n; i++) f32(a)[i] = i, f32(b)[i] = 2 * i;
    const ops = 4, perOp = planChunks(n, KERNEL_SPEC.add.split!.elements.align, 2, []);
    const counted = () => {
      const [caller, worker] = pool.stats().threads;
      return { caller, worker, chunks: caller.chunks + worker.chunks, seen: worker.spunOps + worker.parkedOps };
    };
    pool.recordStats(true);
    for (let r = 0; r < ops; r++) {
      await new Promise((res) => setTimeout(res, 20)); // the worker asleep
      if (!pool.split("add", "elements", out, a, b, n)) await pool.settle();
    }
    // the worker adds its op's counts after its last chunk's DONE: wait for them (5 s at most)
    for (const until = performance.now() + 5000; performance.now() < until;) {
      const c = counted();
      if (c.chunks === ops * perOp && c.seen === ops) break;
      await new Promise((res) => setTimeout(res, 5));
    }
    const c = counted(), st = pool.stats();
    assertEquals(c.chunks, ops * perOp, "every chunk of every op counted once, by the thread that ran it");
    assertEquals(st.joins.add?.ops, ops, "one join per op, under its kernel");
    assert(st.joins.add.waitMs >= 0 && st.joins.add.maxMs <= st.joins.add.waitMs, "the longest join is one of the summed ones");
    assertEquals(c.seen, ops, "the worker saw every op once (spinning or woken)");
    assert(c.worker.parkedOps >= 1 && c.worker.parkedDelayMs > 0, `the worker slept before an op: ${JSON.stringify(c.worker)}`);
    for (const t of [c.caller, c.worker]) assertEquals(t.busyMs > 0, t.chunks > 0, `time in chunks when it ran any: ${JSON.stringify(t)}`);
    assertEquals(c.caller.spunOps + c.caller.parkedOps, 0, "the caller publishes ops, it does not wait for them");
    for (let i = 0; i < n; i += 4099) assertEquals(f32(out)[i], 3 * i, `out[${i}]`);
    // by kernel: the same chunks, each op's units once, time on the threads that ran chunks
    const k = st.kernels.add;
    assertEquals(k.chunks, [c.caller.chunks, c.worker.chunks], "each thread's chunks of the kernel");
    assertEquals(k.units[0] + k.units[1], ops * n, "every element of every op counted once");
    for (const i of [0, 1]) assertEquals(k.busyMs[i] > 0, k.chunks[i] > 0, `thread ${i}: time in the kernel when it ran chunks`);

    // solo: the calling thread alone, through the op's chunks ("split") or in one call ("whole"); the worker never sees the op
    for (const [solo, chunks] of [["split", perOp], ["whole", 1]] as const) {
      pool.recordStats(true);
      pool.solo = solo;
      try {
        assert(pool.split("add", "elements", out, a, a, n), "a solo op is never left pending");
      } finally {
        pool.solo = "off";
      }
      await new Promise((res) => setTimeout(res, 20));
      const s = pool.stats();
      assertEquals(s.kernels.add.chunks, [chunks, 0], `${solo}: chunks on the caller, none on the worker`);
      assertEquals(s.kernels.add.units, [n, 0], `${solo}: every element once`);
      assertEquals(s.threads[1].spunOps + s.threads[1].parkedOps, 0, `${solo}: the worker was not told of the op`);
      for (let i = 0; i < n; i += 4099) assertEquals(f32(out)[i], 2 * i, `${solo}: out[${i}]`);
    }
    // and the next op, after solo ones, reaches the worker again
    pool.recordStats(true);
    await new Promise((res) => setTimeout(res, 20));
    if (!pool.split("add", "elements", out, a, b, n)) await pool.settle();
    for (const until = performance.now() + 5000; performance.now() < until && counted().seen < 1;) {
      await new Promise((res) => setTimeout(res, 5));
    }
    assertEquals(counted().seen, 1, "the worker saw the op after the solo ones");
    assertEquals(f32(out)[4099], 3 * 4099, "after solo: out[4099]");

    pool.recordStats(false);
    if (!pool.split("add", "elements", out, b, b, n)) await pool.settle();
    await new Promise((res) => setTimeout(res, 20));
    const off = pool.stats();
    assertEquals(off.threads.map((t) => t.chunks + t.spunOps + t.parkedOps), [0, 0], "nothing counted while off");
    assertEquals(Object.keys(off.joins).length, 0, "no joins while off");
    assertEquals(Object.keys(off.kernels).length, 0, "no kernel counts while off");
    assertEquals(f32(out)[4099], 4 * 4099, "the op still ran");
  } finally {
    pool.close();
    await backend.close();
  }
});

test("a worker script that cannot start is an error with explicit threads, and single-threaded with the fallback", async () => {
  const bad = "data:text/javascript,throw new Error('no kernels here')";
  const path = sharedPath("models", "stories260K", "stories260K.gguf");
  await assertRejects(
    () => loadModel(path, { backend: new ThreadedWasmBackend({ threads: 2, workerURL: bad }) }),
    KvasmError,
    /could not start/,
  );
  const backend = new ThreadedWasmBackend({ threads: 2, workerURL: bad, fallback: true });
  await withModel(path, backend, async (m) => {
    assertEquals(backend.threads, 1, "fell back to the calling thread");
    const logits = await m.prefill(m.newSequence(), [1, 403, 407]);
    assert(logits.every(Number.isFinite), "logits");
  });
});
