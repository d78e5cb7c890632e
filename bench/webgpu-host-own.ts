/**
 * The host's time per greedy WebGPU decode token, with and without replayed plans (WebGpuBackend's plans option),
 * alternated in one process: two models on one file, `calls` rounds of `tokens` each, in turn.
 *   deno run -A bench/webgpu-host-own.ts MODEL.gguf [tokens per call, 200] [rounds, 5] [own]
 * Prints per token, for each: the time inside the forward pass (Model's device loop: the architecture's forward or
 * its replay) and the wall time. With `own`, the three recording calls (setPipeline, setBindGroup,
 * dispatchWorkgroups) are no-ops while the timed calls run, so the forward's time is kvasm's own (fusion,
 * bookkeeping, params) without Deno's; the tokens are then meaningless (nothing runs) and the wall time is not the
 * GPU's. Runs on any adapter: lavapipe and Mesa's GL path time the host as well as a GPU does (compare the ratio).
 */
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WebGpuBackend } from "../src/backends/webgpu/backend.ts";
import { benchArgs, choiceFlag, intFlag, median, usageError } from "./cli.ts";

const USAGE = `The host's time per greedy WebGPU decode token, with and without replayed plans (WebGpuBackend's plans option),
alternated in one process: per token, the time inside the forward pass and the wall time, and plan / record ratios
(Deno; any adapter, lavapipe included: compare the ratio).

  deno run -A bench/webgpu-host-own.ts MODEL.gguf [TOKENS_PER_CALL] [ROUNDS] [own]

  TOKENS_PER_CALL  greedy tokens a timed call (default 200)
  ROUNDS           rounds, one timed call of each side in turn (default 5)
  own              the three recording calls (setPipeline, setBindGroup, dispatchWorkgroups) no-ops while timed:
                   kvasm's own host time without Deno's (the tokens are then meaningless)
  -h, --help       this text`;
const { positionals } = benchArgs(USAGE, { options: { help: { type: "boolean", short: "h" } }, allowPositionals: true });
const [path, perCallArg = "200", roundsArg = "5", mode] = positionals;
if (!path) usageError("a MODEL.gguf is needed", USAGE);
if (positionals.length > 4) usageError(`at most four arguments, got ${positionals.length}`, USAGE);
const perCall = intFlag(USAGE, "TOKENS_PER_CALL", perCallArg), rounds = intFlag(USAGE, "ROUNDS", roundsArg);
const own = mode !== undefined && choiceFlag(USAGE, "OWN", mode, ["own"]) === "own";
const proto = (globalThis as unknown as Record<string, { prototype: Record<string, unknown> }>).GPUComputePassEncoder.prototype;
const names = ["setPipeline", "setBindGroup", "dispatchWorkgroups"];
const real = names.map((n) => proto[n]);
const noop = () => {};
const setCalls = (on: boolean) => names.forEach((n, i) => proto[n] = on ? real[i] : noop);

/** Wraps the backend's replayForward (what Model's device loop calls each step) with a timer. */
function timed(plans: boolean) {
  return (async () => {
    const backend = new WebGpuBackend({ plans });
    const model = await loadModel(path, { backend, contextLength: Math.max(512, perCall + 16) });
    const t = { ms: 0, calls: 0, model, backend };
    const f = backend.replayForward.bind(backend);
    backend.replayForward = (key, forward) => {
      const s = performance.now();
      f(key, forward);
      t.ms += performance.now() - s;
      t.calls++;
    };
    return t;
  })();
}
const sides = { record: await timed(false), plan: await timed(true) };
const results: Record<string, { forwardUs: number[]; wallUs: number[]; dispatches: number }> = {};
async function round(name: keyof typeof sides) {
  const side = sides[name], m: Model = side.model;
  const seq = m.newSequence();
  await m.prefill(seq, [1, 2, 3, 4]);
  await m.decodeGreedy(seq, 1, 4); // the plan's recording (and the kernels' compile) outside the timing
  side.ms = side.calls = 0;
  const d0 = side.backend.dispatches;
  if (own) setCalls(false);
  const t = performance.now();
  await m.decodeGreedy(seq, 1, perCall);
  const wall = performance.now() - t;
  if (own) setCalls(true);
  m.releaseSequence(seq);
  const r = results[name] ??= { forwardUs: [], wallUs: [], dispatches: 0 };
  r.forwardUs.push(+((side.ms * 1000) / side.calls).toFixed(1));
  r.wallUs.push(+((wall * 1000) / perCall).toFixed(1));
  r.dispatches = (side.backend.dispatches - d0) / side.calls;
}
for (let i = 0; i < rounds; i++) {
  await round("record");
  await round("plan");
}
console.log(JSON.stringify({
  mode: own ? "own" : "with Deno's calls",
  adapter: sides.plan.backend.adapterName,
  ...results,
  forwardRatio: +(median(results.plan.forwardUs) / median(results.record.forwardUs)).toFixed(3),
  wallRatio: +(median(results.plan.wallUs) / median(results.record.wallUs)).toFixed(3),
  replays: sides.plan.backend.replays,
}));
await sides.record.model.close();
await sides.plan.model.close();
