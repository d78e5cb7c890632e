/**
 * What the repack tests (KX and lanes layouts) share: a backend that leaves every weight as the file has it, to
 * compare a repacked model against, a walk to every Weight a model bound, to check which layout each took, and the
 * bits to compare: one weight's products and rows, a model's prompt logits and decode steps, a whole file's.
 */
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { assert, assertEquals } from "./harness.ts";
import type { Weight } from "../src/backends/backend.ts";
import { type GGMLTypeId, ggmlTypeName } from "../src/formats/ggml-types.ts";
import type { Model } from "../src/model/model.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";

/** A WASM backend that leaves every weight in ggml's layout. */
export class NaturalLayout extends WasmBackend {
  override prepareWeight(_w: Weight): void {}
}

/** Every Weight the architecture bound (objects with a type and a pointer, at any depth). */
export function weightsOf(m: Model): Weight[] {
  const out: Weight[] = [];
  const walk = (v: unknown) => {
    if (!v || typeof v !== "object") return;
    if ("ptr" in v && "type" in v) out.push(v as Weight);
    else for (const x of Object.values(v)) walk(x);
  };
  walk(m.weights);
  return out;
}

/**
 * One d x n weight of `type` (its ggml bytes) prepared by `backend` (repacked or not), then its matmul of `x` (T rows of
 * n) and all its rows through embedding lookups in reverse order, as bits, with the layout the weight took. Closes the
 * backend.
 */
export async function weightOutputs(
  backend: WasmBackend,
  type: GGMLTypeId,
  weightBytes: Uint8Array,
  x: Float32Array,
  n: number,
  d: number,
  T: number,
): Promise<{ layout: Weight["layout"]; logits: Uint32Array; rows: Uint32Array }> {
  const bytes = weightBytes.length, scratchBytes = backend.matmulScratchBytes(type, n, T);
  await backend.init(bytes + 4 * n * T + 4 * d * T + 4 * n * d + scratchBytes + (1 << 20));
  try {
    backend.setMatmulScratch(backend.alloc(scratchBytes, "matmul scratch"), scratchBytes);
    const w: Weight = { name: "w", type, cols: n, rows: d, ptr: backend.alloc(bytes, "w"), bytes };
    backend.write(w.ptr, weightBytes);
    backend.prepareWeight(w);
    const xp = backend.alloc(4 * n * T, "x"), out = backend.alloc(4 * d * T, "out"), ids = backend.alloc(4 * d, "ids");
    const emb = backend.alloc(4 * n * d, "embeddings");
    backend.write(xp, x);
    backend.write(ids, Int32Array.from({ length: d }, (_, i) => d - 1 - i));
    const logits = new Float32Array(d * T), rows = new Float32Array(n * d);
    backend.matmul(out, xp, w, T);
    await backend.read(out, logits);
    backend.embed(emb, w, ids, d);
    await backend.read(emb, rows);
    return { layout: w.layout, logits: new Uint32Array(logits.buffer), rows: new Uint32Array(rows.buffer) };
  } finally {
    await backend.close();
  }
}

/** The bits of a model's logits after a prefill of `ids` into a new sequence (released after). */
export async function promptLogitBits(model: Model, ids: number[]): Promise<number[]> {
  const seq = model.newSequence();
  try {
    return [...new Uint32Array((await model.prefill(seq, ids)).slice().buffer)];
  } finally {
    model.releaseSequence(seq);
  }
}

/** The logits' bits of two greedy decode steps after a 3-id prompt (T = 1 through the one-row kernels). */
async function decodeStepBits(m: Model): Promise<number[]> {
  const seq = m.newSequence(), all: number[] = [];
  try {
    let logits = await m.prefill(seq, [1, 50, 60]);
    for (let step = 0; step < 2; step++) {
      const best = argmax(logits);
      logits = await m.decodeOne(seq, best);
      all.push(...new Uint32Array(logits.slice().buffer));
    }
    return all;
  } finally {
    m.releaseSequence(seq);
  }
}

/**
 * The model file at `at` loaded by the default backend (one thread, and two with every op split): each of its `type`
 * weights takes `layout`, and its prompt logits (7 and 2 ids) and two greedy decode steps are the natural layout's,
 * bit for bit.
 */
export async function assertFileRepackedAsNatural(at: string, type: GGMLTypeId, layout: Weight["layout"]): Promise<void> {
  const natural = await loadModel(at, { backend: new NaturalLayout(), threads: 1 });
  const one = await loadModel(at, { threads: 1 });
  const two = await loadModel(at, { backend: new ThreadedWasmBackend({ threads: 2, minWork: 0 }) });
  try {
    for (const m of [one, two]) {
      const ws = weightsOf(m).filter((w) => w.type === type);
      assert(
        ws.length > 0 && ws.every((w) => w.layout === layout),
        `every ${ggmlTypeName(type)} weight is repacked into the ${layout} layout`,
      );
    }
    for (const ids of [[1, 50, 60, 70, 80, 90, 100], [1, 7]]) {
      const want = await promptLogitBits(natural, ids);
      assertEquals(await promptLogitBits(one, ids), want, `1 thread, ${ids.length} ids`);
      assertEquals(await promptLogitBits(two, ids), want, `2 threads, ${ids.length} ids`);
    }
    const want = await decodeStepBits(natural);
    assertEquals(await decodeStepBits(one), want, "decode steps, 1 thread");
    assertEquals(await decodeStepBits(two), want, "decode steps, 2 threads");
  } finally {
    await natural.close();
    await one.close();
    await two.close();
  }
}

type Outputs = (backend: WasmBackend, n: number, d: number, T: number) => ReturnType<typeof weightOutputs>;

/**
 * A d x n weight repacked at load (by one thread's backend and by two threads, every op split) gives the natural
 * layout's products (T = 1 and 5) and embedding rows bit for bit, and ggmlOrder leaves it unrepacked.
 */
export async function assertRepackedAsNatural(outputs: Outputs, n: number, d: number, layout: Weight["layout"]): Promise<void> {
  for (const T of [1, 5]) {
    const natural = await outputs(new NaturalLayout(), n, d, T);
    const one = await outputs(new WasmBackend(), n, d, T);
    const two = await outputs(new ThreadedWasmBackend({ threads: 2, minWork: 0 }), n, d, T);
    assertEquals(natural.layout, undefined);
    for (const [name, got] of [["1 thread", one], ["2 threads", two]] as const) {
      assertEquals(got.layout, layout, name);
      assertEquals([...got.logits], [...natural.logits], `${name}: matmul, T = ${T}`);
      assertEquals([...got.rows], [...natural.rows], `${name}: embedding rows`);
    }
  }
  const exact = await outputs(new WasmBackend({ ggmlOrder: true }), n, d, 1);
  assertEquals(exact.layout, undefined, "ggmlOrder keeps ggml's layout");
}
