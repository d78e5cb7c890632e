/**
 * Where the host's time per greedy token goes on WebGPU: is decode bound by the host or the GPU?
 *   deno run -A bench/webgpu-host.ts MODEL.gguf [tokens per call, 100] [submitEvery, 256] [maxBatchRows, default]
 *   deno run -A bench/webgpu-host.ts --help
 * Decodes two calls of `tokens` (Model.decodeGreedy: readbacks overlapped) and prints per token: the wall time, the
 * time inside the architecture's forward (all of a token's recording), the backend's record/dispatch/submit and,
 * unless NOSPLIT=1, each WebGPU call's (bench/webgpu-call-timers.ts). scripts/gpu/device-run.sh split runs it.
 */
import { loadModel } from "../src/model/load.ts";
import { WebGpuBackend } from "../src/backends/webgpu/backend.ts";
import { forwardTimer, splitTimers } from "./webgpu-call-timers.ts";
import { benchArgs, intFlag, usageError } from "./cli.ts";

const USAGE = `Where the host's time per greedy WebGPU token goes (Deno): wall time, forward, the backend's recording and submits,
and each WebGPU call's own time.

  deno run -A bench/webgpu-host.ts MODEL.gguf [TOKENS_PER_CALL] [SUBMIT_EVERY] [MAX_BATCH_ROWS]

  TOKENS_PER_CALL  tokens per decodeGreedy call, two calls timed (default 100)
  SUBMIT_EVERY     the backend's submitEvery (default 256)
  MAX_BATCH_ROWS   the model's maxBatchRows (default: the loader's)
  NOSPLIT=1        (environment) no per-call timers, to see what they cost
  -h, --help       this text`;
const { positionals } = benchArgs(USAGE, { options: { help: { type: "boolean", short: "h" } }, allowPositionals: true });
if (positionals.length === 0) usageError("a MODEL.gguf is needed", USAGE);
// two calls of n greedy tokens after an 8-id prefill and 8 warm tokens, in the 512-position context loaded
const n = intFlag(USAGE, "TOKENS_PER_CALL", positionals[1] ?? "100", 1, (512 - 16) / 2);
const submitEvery = intFlag(USAGE, "SUBMIT_EVERY", positionals[2] ?? "256");
const rows = intFlag(USAGE, "MAX_BATCH_ROWS", positionals[3] ?? "0", 0);
// NOSPLIT=1: no per-call timers (their own cost)
const wrapCalls = !Deno.env.get("NOSPLIT");
const split = wrapCalls ? splitTimers() : {} as Record<string, number>;
const path = positionals[0];
const backend = new WebGpuBackend({ submitEvery });
const model = await loadModel(path, { backend, contextLength: 512, ...(rows ? { maxBatchRows: rows } : {}) });
const forward = forwardTimer(model);
type Methods = Record<string, (...a: unknown[]) => unknown>;
// the backend's op recording, its dispatch recorder's (recorder.ts) and its device memory's (memory.ts) methods
const own = backend as unknown as Methods & { rec: Methods; memory: Methods };
const timers: Record<string, number> = {};
for (const name of !wrapCalls ? [] : ["submit", "dispatch", "record", "pipeline", "bindGroup", "bindGroup3", "stateBuffer"]) {
  const b = name === "record" ? own : name === "stateBuffer" ? own.memory : own.rec;
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
let lastToken = (await model.decodeGreedy(seq, 5, 8))[7];
forward.ms = 0;
forward.calls = 0;
for (const k in timers) timers[k] = 0;
for (const k in split) split[k] = 0;
const d0 = backend.dispatches;
const t = performance.now();
for (let i = 0; i < 2; i++) lastToken = (await model.decodeGreedy(seq, lastToken, n)).at(-1)!;
const wall = performance.now() - t;
const { ms, calls } = forward;
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
