/**
 * What a one-thread decode step spends outside its kernels (issue #16, "the JavaScript between calls"), measured
 * without the profiler (the bench for that question; what a step allocates, and the first steps after a load, are
 * bench/js-step.ts's): the same Model.decodeOne + argmax step as bench/peers.ts, in one process, one sample of each
 * variant in turn, `--rounds` x `--steps` times; every step runs at position 128 of a 128-id prompt (the sequence is
 * cut back to 128 before each), so that every sample does the same work:
 *
 * - step: decodeOne and the JS argmax, the real kernels (what peers.ts times);
 * - JS only: the same step with every kernel a JavaScript no-op (the forward pass, the backend's per-op code, the
 *   step's bookkeeping, its promises, the logits copy and the argmax; no kernel work, no call into wasm);
 * - JS + calls: every kernel a no-op WebAssembly function of the kernel's own signature (bench/noop-kernels.ts), so
 *   the JS-to-wasm transitions are paid as in the real step (bench/peers.ts --profile's "JS between calls");
 * - kernels alone: the real kernels called with the arguments one step passed them (recorded at position 128),
 *   back to back from one JS loop: the step's kernel time, plus one direct call each (and with the argmax after);
 * - step, profiled: the step with the backend's OpProfile on, and its wall time less the ops' and the timers'
 *   estimated cost (what bench/peers.ts --profile booked as "JS between calls" until it measured that as below);
 *
 * - generate() a token: model.generate's greedy decode loop, so the Sampler and the engine's decoder (stop strings,
 *   detokenizing, events) on top of the step's JavaScript, with no-op wasm kernels (32 tokens from the 128-id prompt)
 *   and with the real ones (8 tokens from its first 8 ids), each without and with an onToken callback (whose
 *   events carry each pick's logprob: the Sampler's pass of exp over every logit, which generate() skips without it);
 *
 * and the step's pieces on their own: Sampler.sample greedy, the JS argmax over the logits, the backend's logits
 * read (a copy out of the arena), the two awaits of a step (runPass' resolved promise, decodeOne's own).
 *
 *   deno run -A bench/step-overhead.ts [--types Q4_0,Q4_K_M,F32] [--steps 48] [--rounds 5]
 *   bun bench/step-overhead.ts ...
 */
import { benchArgs, intFlag, listFlag, median, runStamp, runtime } from "./cli.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { argmax, Sampler } from "../src/sampling/sampler.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import { KERNEL_NAMES } from "../src/kernels/spec.ts";
import type { Kernels } from "../src/kernels/wasm.ts";
import { noopWasmKernels } from "./noop-kernels.ts";

const USAGE = `What a one-thread decode step spends outside its kernels: the step, the step with no-op kernels (JS, wasm), the
kernels alone, argmax, the logits read, the awaits; variants alternated in one process, µs a step (bytes a step
allocates and the first steps after load: bench/js-step.ts).

  deno run -A bench/step-overhead.ts [options]        bun bench/step-overhead.ts [options]

  --types LIST   synthetic stories110M files (default Q4_0,Q4_K_M,F32)
  --steps N      (with --rounds) samples of each variant (default 48)
  --rounds N     rounds x steps samples of each variant, one step of each in turn (default 5)
  -h, --help     this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      types: { type: "string", default: "Q4_0,Q4_K_M,F32" },
      steps: { type: "string", default: "48" },
      rounds: { type: "string", default: "5" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const steps = intFlag(USAGE, "steps", opts.steps), rounds = intFlag(USAGE, "rounds", opts.rounds);
const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
const N_PROMPT = 128;
/** Tokens each generate() sample decodes (with no-op kernels, from the last real step's logits). */
const GENERATED = 32;

function noopJsKernels(): Kernels {
  const k: Record<string, () => number> = {};
  for (const n of KERNEL_NAMES) k[n] = () => 0;
  return k as unknown as Kernels;
}

/** The kernels with every call noted (function, arguments) into `calls`. */
function recordingKernels(real: Kernels, calls: [(...a: number[]) => unknown, number[]][]): Kernels {
  const k: Record<string, (...a: number[]) => unknown> = {};
  for (const n of KERNEL_NAMES) {
    const f = (real as unknown as Record<string, (...a: number[]) => unknown>)[n];
    k[n] = (...a: number[]) => (calls.push([f, a]), f(...a));
  }
  return k as unknown as Kernels;
}

/** Calls the recorded kernels in order, each with its arguments spelled out (no spread, no apply). */
function replay(calls: [(...a: number[]) => unknown, number[]][]): void {
  for (let i = 0; i < calls.length; i++) {
    const [f, a] = calls[i];
    switch (a.length) {
      case 3:
        f(a[0], a[1], a[2]);
        break;
      case 4:
        f(a[0], a[1], a[2], a[3]);
        break;
      case 5:
        f(a[0], a[1], a[2], a[3], a[4]);
        break;
      case 6:
        f(a[0], a[1], a[2], a[3], a[4], a[5]);
        break;
      case 8:
        f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        break;
      default:
        f(...a);
    }
  }
}

// ------------------------------------------------------------------ the measurement

function promptIds(): number[] {
  let s = 12345;
  const ids = [1];
  while (ids.length < N_PROMPT) {
    s = (s * 1103515245 + 12345) >>> 0;
    ids.push(3 + (s % 31990));
  }
  return ids;
}

async function measure(model: Model): Promise<void> {
  const b = model.backend;
  if (!(b instanceof WasmBackend)) throw new Error("the one-thread WASM backend is needed");
  const real = b.kernels, noJs = noopJsKernels(), noWasm = noopWasmKernels();
  const seq = model.newSequence();
  const first = argmax(await model.prefill(seq, promptIds()));
  // warm-up at the position measured, and the recording of one step's kernel calls (position 128)
  for (let i = 0; i < 8; i++) {
    seq.length = N_PROMPT;
    await model.decodeOne(seq, first);
  }
  const calls: [(...a: number[]) => unknown, number[]][] = [];
  seq.length = N_PROMPT;
  b.kernels = recordingKernels(real, calls);
  await model.decodeOne(seq, first);
  b.kernels = real;
  const logits = await model.decodeOne(seq, first);
  const logitsPtr = model.state.logits;
  const prof = new OpProfile();
  const prompt = promptIds(), greedy = new Sampler(model.vocabSize, { temperature: 0 });
  const logitsCopy = new Float32Array(logits.length);
  let generated = 0;
  const timerCost = prof.timerCost();

  // every step at position 128 (the sequence cut back before each), so that each variant's steps do the same work
  const step = async (k: Kernels): Promise<number> => {
    b.kernels = k;
    seq.length = N_PROMPT;
    const t0 = performance.now();
    sink += argmax(await model.decodeOne(seq, first));
    const us = 1000 * (performance.now() - t0);
    b.kernels = real;
    return us;
  };
  /**
   * model.generate's greedy decode loop, µs a token: the step, the Sampler and the engine's decoder (stop matching,
   * detokenizing, events); with `onToken`, whose events carry each pick's logprob, the Sampler's exp pass too. With
   * no-op kernels every token comes from the logits the last real step left.
   */
  const generateToken = async (k: Kernels, ids: number[], tokens: number, onToken: boolean): Promise<number> => {
    b.kernels = k;
    const gen = model.generate(ids, { maxTokens: tokens, temperature: 0, onToken: onToken ? (t) => (sink += t.logprob) : undefined });
    const t0 = performance.now();
    let r = await gen.next();
    while (!r.done) r = await gen.next();
    const us = (1000 * (performance.now() - t0 - r.value.prefillMs)) / r.value.tokens.length;
    b.kernels = real;
    generated += r.value.tokens.length;
    return us;
  };
  const timed = (reps: number, f: () => unknown): number => {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    return (1000 * (performance.now() - t0)) / reps;
  };
  let sink = 0;
  let profJs = 0;
  const variants: [string, () => Promise<number> | number][] = [
    ["step (decodeOne + argmax)", () => step(real)],
    ["kernels alone (recorded calls)", () => timed(1, () => replay(calls))],
    ["kernels alone + argmax", () => timed(1, () => (replay(calls), sink += argmax(logits)))],
    ["step, profiled (OpProfile on)", async () => {
      prof.reset();
      b.profile = prof;
      const us = await step(real);
      b.profile = null;
      const { ms, calls } = prof.sum();
      // what bench/peers.ts --profile booked as "JS between calls" before it measured that with no-op kernels
      profJs = Math.max(0, us - 1000 * (ms + calls * timerCost));
      return us;
    }],
    ["  its wall - ops - timers", () => profJs],
    ["JS only (kernels JS no-ops)", () => step(noJs)],
    ["JS + calls (kernels wasm no-ops)", () => step(noWasm)],
    ["generate() a token, no-op wasm kernels", () => generateToken(noWasm, prompt, GENERATED, false)],
    ["  with onToken (logprobs made), no-op", () => generateToken(noWasm, prompt, GENERATED, true)],
    ["generate() a token, real kernels", () => generateToken(real, prompt.slice(0, 8), 8, false)],
    ["  with onToken (logprobs made), real", () => generateToken(real, prompt.slice(0, 8), 8, true)],
    ["Sampler.sample, greedy (32000 logits)", () => {
      logitsCopy.set(logits); // sample() may change its logits (bias, penalties: none here)
      return timed(1, () => (sink += greedy.sample(logitsCopy).id));
    }],
    ["argmax (JS, 32000 logits)", () => timed(1, () => (sink += argmax(logits)))],
    ["logits read (backend.read)", () => timed(1, () => b.read(logitsPtr, logits))],
    ["two awaits", async () => {
      const t0 = performance.now();
      await Promise.resolve();
      await (async () => {})();
      return 1000 * (performance.now() - t0);
    }],
  ];
  const got = new Map<string, number[]>(variants.map(([n]) => [n, []]));
  for (let r = 0; r < rounds * steps; r++) {
    for (const [n, f] of variants) got.get(n)!.push(await f());
  }
  model.releaseSequence(seq);
  if (sink === -1) console.log(sink);
  console.log(
    `  (generate(): ${(generated / (rounds * steps)).toFixed(1)} tokens a round of four calls, of at most ${2 * GENERATED + 16})`,
  );
  const med = (i: number) => median(got.get(variants[i][0])!);
  for (const [n] of variants) {
    const xs = [...got.get(n)!].sort((x, y) => x - y);
    const q = (f: number) => xs[Math.floor(f * (xs.length - 1))].toFixed(1);
    console.log(`  ${n.padEnd(40)} ${median(xs).toFixed(1).padStart(8)} µs  (quartiles ${q(0.25)}, ${q(0.75)})`);
  }
  const pairs = got.get(variants[0][0])!.map((x, i) => x - got.get(variants[2][0])![i]);
  console.log(
    `  ${calls.length} kernel calls a step; step - (kernels alone + argmax): median of pairs ${median(pairs).toFixed(1)} µs ` +
      `(${(100 * median(pairs) / med(0)).toFixed(1)}% of the step); the profiler's cost (profiled - step): ${
        (med(3) - med(0)).toFixed(1)
      } µs, ` +
      `timers taken out ${(calls.length * timerCost * 1000).toFixed(1)} µs`,
  );
}

console.log(
  `bench/step-overhead.ts, ${runtime}, ${runStamp()}, 1 thread, ${
    rounds * steps
  } samples of each variant, one of each in turn, every step at position 128 (medians)`,
);
for (const type of types) {
  const path = await ensureSyntheticModel("stories110M", type);
  const model = await loadModel(path, { contextLength: 512, threads: 1, maxSequences: 2 });
  try {
    console.log(`${type}:`);
    await measure(model);
  } finally {
    await model.close();
  }
}
console.log(`done ${runStamp()}`);
