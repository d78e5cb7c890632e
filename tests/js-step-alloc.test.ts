/**
 * A decode step allocates (next to) nothing on the JS heap: the bytes allocated per Model.decodeOne step, measured
 * after a warm-up in a child process by tests/js-alloc.ts (V8's sampling heap profiler in Deno, JavaScriptCore's GC
 * log in Bun), stay under a bound, on one thread and on two with every op split over the Workers (minWork 0),
 * where the deferred ops' closures, the pool's rest arrays and the workers' argument arrays used to allocate. No
 * timing: what is counted is bytes. Measured on stories260K (2026-12-04): before this bound, 6.6 KB (one thread) and
 * 77 KB (two threads) a token in Deno, 1.9 KB and 35 KB in Bun; now 0.6-0.8 KB in Deno (the step's promises) and
 * under 0.2 KB in Bun. The engine's batched step is bounded too (ENGINE_BOUND).
 */
import { assert, sharedPath, testShared } from "./harness.ts";
import { measureInChild } from "./js-alloc.ts";

// deno-lint-ignore no-explicit-any
const isBun = (globalThis as any).Bun !== undefined;

const CHILD = new URL("./js-step-alloc-child.ts", import.meta.url).pathname;
/** Bytes a decode step may allocate: its promises (under 1 KB), with room for a JIT that tiers up late on a loaded host. */
const STEP_BOUND = 2048;
const TOKENS = "256";
/**
 * Bytes the engine may allocate a token, four greedy requests batched: its output (each token's event, text piece
 * and result entry) and the step's promises, none of its own row records, arrays or maps (reused step to step).
 * Measured on stories260K (2026-12-05): 1.46 KB in Deno and 0.33 KB in Bun; before the rows were reused, 2.63 KB
 * and 0.64 KB.
 */
const ENGINE_BOUND = isBun ? 512 : 2048;

for (
  const [file, threads, minWork] of [
    ["stories260K.gguf", "1", undefined],
    ["stories260K-q8_0.gguf", "2", "0"],
  ] as const
) {
  const path = sharedPath("models", "stories260K", file);
  testShared(`decode step allocates under ${STEP_BOUND} B a token: ${file}, ${threads} thread(s)`, [path], () => {
    const r = measureInChild<{ windows: number[]; tokens: number; generated: number; engineTokens: number }>(
      CHILD,
      [path, threads, TOKENS, ...(minWork === undefined ? [] : [minWork])],
    );
    // (the child's second window, generate(), allocates its output and varies with the JIT: bench/js-step.ts reports it)
    const step = r.windows[0] / r.tokens;
    assert(Number.isFinite(step), `no measurement: ${JSON.stringify(r)}`);
    assert(step < STEP_BOUND, `Model.decodeOne allocated ${step.toFixed(0)} B a token (bound ${STEP_BOUND}): ${JSON.stringify(r)}`);
    // (two threads, not bounded: Deno's engine run allocates 1.7 KB a token, too near the bound on a loaded host (6.7 KB before
    // the sampler's weight loop became a function of its own, src/sampling/sampler.ts expWeights); Bun 0.35-0.39 KB)
    if (threads !== "1") return;
    const engine = r.windows[2] / r.engineTokens;
    assert(r.engineTokens > r.tokens && Number.isFinite(engine), `no engine measurement: ${JSON.stringify(r)}`);
    assert(engine < ENGINE_BOUND, `the engine allocated ${engine.toFixed(0)} B a token (bound ${ENGINE_BOUND}): ${JSON.stringify(r)}`);
  });
}
