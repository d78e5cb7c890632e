// ALiBi on WebGPU: bloom-alibi and mpt-alibi (../shared/fixtures/seed-variants) on the WebGPU backend
// against transformers' logits and greedy ids, on whatever adapter is present (skipped with a message
// where there is none: Bun, Node, Deno without a driver; under CI an adapter is required).
import * as path from "node:path";
import { assert, assertClose, assertEquals, env, readJSON, runtime, sharedPath, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import { webgpuStatus } from "../src/backends/webgpu/device.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { WebGpuBackend } from "../src/backends/webgpu/backend.ts";
import "../src/backends/webgpu/select.ts"; // registers the "webgpu" backend name
import { UnsupportedError } from "../src/errors.ts";

interface Reference {
  input_ids: number[];
  logits: number[][];
  greedy_ids: number[];
}

const status = await webgpuStatus();
const gpuExpected = runtime === "deno" && (status.available || env("CI") === "true");
if (!gpuExpected) console.warn(`skipping WebGPU ALiBi tests: ${runtime === "deno" ? status.reason : `no WebGPU in ${runtime}`}`);

const scaleOf = (row: ArrayLike<number>) => Array.from(row).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

for (const name of ["bloom-alibi", "mpt-alibi"]) {
  const dir = sharedPath("fixtures", "seed-variants", name);
  if (!gpuExpected) break;
  testShared(`webgpu: ${name} matches transformers' logits and greedy ids`, [path.join(dir, "model.safetensors")], async () => {
    assert(status.available, `no WebGPU adapter: ${status.reason}`);
    const ref = readJSON<Reference>(path.join(dir, "reference.json"));
    const m = await loadModel(dir, { backend: "webgpu" });
    try {
      assertEquals(m.backend.name, "webgpu");
      const seq = m.newSequence();
      for (let p = 0; p < ref.input_ids.length; p++) {
        assertClose(
          await m.decodeOne(seq, ref.input_ids[p]),
          ref.logits[p],
          1e-4,
          `${name} on WebGPU: position ${p}`,
          scaleOf(ref.logits[p]),
        );
      }
      m.releaseSequence(seq);
      const s2 = m.newSequence();
      const first = await m.prefill(s2, ref.input_ids);
      assertClose(first, ref.logits.at(-1)!, 1e-4, `${name} on WebGPU: prefill`, scaleOf(ref.logits.at(-1)!));
      let best = 0;
      for (let j = 1; j < first.length; j++) if (first[j] > first[best]) best = j;
      const ids = [best, ...(await m.decodeGreedy(s2, best, ref.greedy_ids.length - 1))];
      assertEquals(ids, ref.greedy_ids, `${name} on WebGPU: greedy ids`);
      // the same through a replayed decode step (plans: LayerNorm, biases, GELU, ALiBi, a fused QKV's row views)
      const planned = new WebGpuBackend({ plans: true });
      const mp = await loadModel(dir, { backend: planned });
      try {
        const s3 = mp.newSequence();
        await mp.prefill(s3, ref.input_ids);
        assertEquals([best, ...(await mp.decodeGreedy(s3, best, ref.greedy_ids.length - 1))], ids, `${name}: replayed greedy ids`);
        assertEquals(planned.replays, ref.greedy_ids.length - 2, `${name}: steps replayed (the first is recorded)`);
      } finally {
        await mp.close();
      }
      // 70 rows: past 64, so the many-row kernels (tiled matmuls, attention 16 rows a workgroup, ALiBi in its scores)
      // run; held to the WASM backend's logits
      const long = Array.from({ length: 5 }, () => ref.input_ids).flat();
      const cpu = await loadModel(dir, { backend: new WasmBackend() });
      try {
        const want = await cpu.prefill(cpu.newSequence(), long);
        m.releaseSequence(s2);
        assertClose(await m.prefill(m.newSequence(), long), want, 1e-3, `${name} on WebGPU: 70-row prefill vs WASM`, scaleOf(want));
      } finally {
        await cpu.close();
      }
    } finally {
      await m.close();
    }
    // sparse top-k attention is a WASM kernel: refused by name on WebGPU
    let err: unknown;
    await loadModel(dir, { backend: "webgpu", attention: { topK: 4 } }).then((x) => x.close(), (e) => (err = e));
    assert(err instanceof UnsupportedError && /top-k/.test(err.message), `top-k on WebGPU: ${err}`);
  });
}
