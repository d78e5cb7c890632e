/**
 * Where the host's time per greedy token goes on WebGPU (issue 19: is decode bound by the host or the GPU?).
 *   deno run -A bench/webgpu-host.ts MODEL.gguf [tokens per call, 100] [submitEvery, 256] [maxBatchRows, default]
 * Decodes two calls of `tokens` (Model.decodeGreedy: readbacks overlapped) and prints per token: the wall time, the
 * time inside the architecture's forward (all of a token's recording), the backend's record/dispatch/submit and,
 * unless NOSPLIT=1, each WebGPU call's (bench/webgpu-call-timers.ts). scripts/gpu/device-run.sh split runs it.
 */
import { loadModel } from "../src/model/load.ts";
import { WebGpuBackend } from "../src/backends/webgpu/backend.ts";
import { splitTimers } from "./webgpu-call-timers.ts";
// NOSPLIT=1: no per-call timers (their own cost); argument 4: maxBatchRows (the bench loads with 128 or 512)
const wrapCalls = !Deno.env.get("NOSPLIT");
const split = wrapCalls ? splitTimers() : {} as Record<string, number>;
const path = Deno.args[0];
const backend = new WebGpuBackend({ submitEvery: Number(Deno.args[2] ?? 256) });
const rows = Number(Deno.args[3] ?? 0);
const model = await loadModel(path, { backend, contextLength: 512, ...(rows ? { maxBatchRows: rows } : {}) });
const arch = model.arch as unknown as { forward: (...a: unknown[]) => void };
const fwd = arch.forward;
let ms = 0, calls = 0;
arch.forward = function (this: unknown, ...a: unknown[]) {
  const t = performance.now();
  fwd.apply(this, a);
  ms += performance.now() - t;
  calls++;
};
const b = backend as unknown as Record<string, (...a: unknown[]) => unknown>;
const timers: Record<string, number> = {};
for (const name of !wrapCalls ? [] : ["submit", "dispatch", "record", "pipeline", "bindGroup", "bindGroup3", "stateBuffer"]) {
  const f = b[name];
  timers[name] = 0;
  b[name] = function (this: unknown, ...a: unknown[]) {
    const t = performance.now();
    try {
      return f.apply(this, a);
    } finally {
      timers[name] += performance.now() - t;
    }
  };
}
const seq = model.newSequence();
await model.prefill(seq, [1, 2, 3, 4, 5, 6, 7, 8]);
let t0 = (await model.decodeGreedy(seq, 5, 8))[7];
ms = 0;
calls = 0;
for (const k in timers) timers[k] = 0;
for (const k in split) split[k] = 0;
const d0 = backend.dispatches;
const t = performance.now();
const n = Number(Deno.args[1] ?? 100);
for (let i = 0; i < 2; i++) t0 = (await model.decodeGreedy(seq, t0, n)).at(-1)!;
const wall = performance.now() - t;
console.log(JSON.stringify({
  forwardUs: (ms * 1000) / calls,
  calls,
  dispatchesPerToken: (backend.dispatches - d0) / calls,
  wallMsPerToken: wall / calls,
  recordMs: backend.recordMs,
  ...Object.fromEntries(Object.entries(timers).map(([k, v]) => [k + "Us", v * 1000 / calls])),
  ...Object.fromEntries(Object.entries(split).map(([k, v]) => [k, +(v * 1000 / calls).toFixed(1)])),
}));
await model.close();
