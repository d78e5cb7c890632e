/**
 * A decode step and a prefill of two configurations in one process: this tree's kernel build against an earlier build
 * (a copy of build/, --baseline), or one build with two KV cache types (--kv against --kv-old), or both. The synthetic
 * stories110M-shaped file (--shape for another) is loaded twice (one WASM backend per side, 1 thread, the lanes kernels this runtime
 * picks); each round prefills a 128-id prompt (--prompt) on both (timed, which side goes first alternating by round), then
 * runs `--steps` greedy decode steps of each in alternation (which one goes first alternates too), so that attention
 * reads the positions after the prompt, as in bench/peers.ts, and both sides meet the same load. An old build from
 * before attention_run runs its rows one at a time (bench/build-backend.ts). Every step is timed by the backend's
 * OpProfile; prints, per op class, the median µs a step of each side and their ratio (old / new), the whole step's
 * median and fastest, and the prefill's median and fastest tok/s. Two builds with one cache type must give the same
 * tokens (the kernels are meant to keep their bits): a differing token fails the run. Two cache types may differ
 * (f16 rounds K and V), so there the count of differing steps is printed only.
 *
 *   deno run -A bench/decode-ab.ts --baseline /tmp/old-build [--types Q4_0,Q4_K_M] [--steps 48] [--rounds 3] [--prompt 128]
 *   deno run -A bench/decode-ab.ts --kv f16 --kv-old f32 [--types F32,Q8_0,Q4_0,Q4_K_M]
 *   bun bench/decode-ab.ts ...
 */
import * as path from "node:path";

import { benchArgs, choiceFlag, intFlag, listFlag, median, runStamp } from "./cli.ts";
import { ensureSyntheticModel, SHAPES, SYNTHETIC_TYPES } from "./synthetic.ts";
import { BackendOn } from "./build-backend.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import { KV_TYPES } from "../src/backends/backend.ts";
import type { GGMLTypeId } from "../src/formats/ggml-types.ts";
import { type LanesKernel, lanesKernel } from "../src/quant/kernels.ts";
import { dotAddIsExactU8S8, hasRelaxedSimd } from "../src/kernels/wasm.ts";

const USAGE = `A decode step and a prefill (128 ids, --prompt) of two configurations, one process, 1 thread, in alternation: this tree's
build/ against an earlier build (--baseline DIR, a copy of build/), and/or a KV cache type against another (--kv,
--kv-old); median µs a step per op class, old / new, and the prefill's tok/s.

  deno run -A bench/decode-ab.ts --baseline DIR [options]        bun bench/decode-ab.ts --baseline DIR [options]
  deno run -A bench/decode-ab.ts --kv f16 --kv-old f32 [options]

  --baseline DIR   the old side's build folder (kvasm-relaxed.wasm or kvasm-simd.wasm in it; default this tree's build/)
  --types LIST     synthetic model files (default Q4_0,Q4_K_M; F32, Q8_0, Q4_0, Q4_K_M)
  --shape NAME     their shape (default stories110M; llama-1b: Llama 3.2 1B's, grouped-query attention)
  --steps N        greedy decode steps of each model per round, after the prompt (default 48)
  --prompt N       prompt ids each round prefills (default 128; at most 8192)
  --rounds N       rounds, each on new sequences (default 3)
  --kv TYPE        the new side's KV cache element type (default f32; f16, q8_0, u8_asym: loadModel's kvCacheType)
  --kv-old TYPE    the old side's (default: --kv's)
  -h, --help       this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      baseline: { type: "string" },
      types: { type: "string", default: "Q4_0,Q4_K_M" },
      shape: { type: "string", default: "stories110M" },
      steps: { type: "string", default: "48" },
      prompt: { type: "string", default: "128" },
      rounds: { type: "string", default: "3" },
      kv: { type: "string", default: "f32" },
      "kv-old": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const kv = { new: choiceFlag(USAGE, "kv", opts.kv, KV_TYPES), old: choiceFlag(USAGE, "kv-old", opts["kv-old"] ?? opts.kv, KV_TYPES) };
const steps = intFlag(USAGE, "steps", opts.steps), rounds = intFlag(USAGE, "rounds", opts.rounds);
const promptIds = intFlag(USAGE, "prompt", opts.prompt, 1, 8192);
const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
const shape = choiceFlag(USAGE, "shape", opts.shape, Object.keys(SHAPES));
const variant = hasRelaxedSimd() ? "relaxed" : "simd";
const exact = variant === "relaxed" && dotAddIsExactU8S8();
const root = new URL("..", import.meta.url).pathname;
const oldBuild = opts.baseline ?? path.join(root, "build");
// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Deno ? `deno ${g.Deno.version.deno}` : g.Bun ? `bun ${g.Bun.version}` : `node ${g.process.version}`;

/** A build's backend with the lanes kernels WasmBackend.init picks here (BackendOn's own init leaves the exact dot-add off). */
class On extends BackendOn {
  override lanesKernelFor(type: GGMLTypeId): LanesKernel | undefined {
    return lanesKernel(type, exact);
  }
}

/** An op key without the kernel name, so that the two builds' keys meet ("matmul Q4_0 2048x768 (…)" -> "matmul Q4_0 2048x768"). */
const opClass = (key: string) => key.replace(/ \(.*\)$/, "");

console.log(
  `${runtime}, ${variant}, ${runStamp()}: ` +
    `this build, ${kv.new} KV cache (new) against ${opts.baseline ?? "this build"}, ${kv.old} KV cache (old), ` +
    `${steps} steps x ${rounds} rounds each, alternating`,
);
const prompt = Array.from({ length: promptIds }, (_, i) => 1 + ((i * 37) % 500));
const contextLength = Math.max(512, promptIds + steps + 16);
for (const type of types) {
  const file = await ensureSyntheticModel(shape, type);
  const builds = {
    new: new On(path.join(root, "build", `kvasm-${variant}.wasm`), variant),
    old: new On(path.join(oldBuild, `kvasm-${variant}.wasm`), variant),
  };
  const models = {
    new: await loadModel(file, { backend: builds.new, threads: 1, kvCacheType: kv.new, contextLength }),
    old: await loadModel(file, { backend: builds.old, threads: 1, kvCacheType: kv.old, contextLength }),
  };
  // per build: op class -> µs of each decode step (and of each prefill); "(step)": the whole call's wall time
  const times = { new: new Map<string, number[]>(), old: new Map<string, number[]>() };
  const prefillTimes = { new: new Map<string, number[]>(), old: new Map<string, number[]>() };
  // one profile per build, reset every call: a new one would build every weight's key string again (profileMatmul)
  const profiles = { new: new OpProfile(), old: new OpProfile() };
  const add = (m: Map<string, number[]>, k: string, us: number) => (m.get(k) ?? m.set(k, []).get(k)!).push(us);
  /** One call of a model under its build's profile; its op classes' µs and its wall time go into `into`. */
  const profiled = async <R>(which: "new" | "old", into: Map<string, number[]>, call: () => Promise<R>): Promise<R> => {
    const b = builds[which], p = profiles[which];
    p.reset();
    b.profile = p;
    const t0 = performance.now();
    const result = await call();
    const t = performance.now() - t0;
    b.profile = null;
    const per = new Map<string, number>();
    for (const [k, e] of p.totals) per.set(opClass(k), (per.get(opClass(k)) ?? 0) + e.ms);
    for (const [k, ms] of per) add(into, k, 1000 * ms);
    add(into, "(step)", 1000 * t);
    return result;
  };
  let mismatch = 0;
  for (let r = 0; r < rounds; r++) {
    const seqs = { new: models.new.newSequence(), old: models.old.newSequence() };
    const last: Record<"new" | "old", Float32Array> = { new: new Float32Array(0), old: new Float32Array(0) };
    for (const which of (r & 1) ? ["old", "new"] as const : ["new", "old"] as const) {
      last[which] = await profiled(which, prefillTimes[which], () => models[which].prefill(seqs[which], prompt));
    }
    let tok = { new: argmax(last.new), old: argmax(last.old) };
    for (let s = 0; s < steps; s++) {
      for (const which of (s & 1) ? ["old", "new"] as const : ["new", "old"] as const) {
        const logits = await profiled(which, times[which], () => models[which].decodeOne(seqs[which], tok[which]));
        tok = { ...tok, [which]: argmax(logits) };
      }
      if (tok.new !== tok.old) mismatch++;
    }
    models.new.releaseSequence(seqs.new);
    models.old.releaseSequence(seqs.old);
  }
  const differ = kv.new === kv.old ? "DIFFER" : `differ (${kv.new} and ${kv.old} round K and V apart)`;
  console.log(`${type}: median µs a step, old / new${mismatch ? `; ${mismatch} steps' tokens ${differ}` : " (same tokens)"}`);
  /** Each op class's median µs a call, new against old (classes under `floor` µs left out), then the fastest call. */
  const table = (t: typeof times, floor: number) => {
    const keys = [...t.new.keys()].sort((a, b) => median(t.new.get(b)!) - median(t.new.get(a)!));
    for (const k of keys) {
      const n = median(t.new.get(k)!), o = median(t.old.get(k) ?? [NaN]);
      if (n < floor && k !== "(step)") continue;
      console.log(`  ${k.padEnd(26)} new ${n.toFixed(0).padStart(6)}  old ${o.toFixed(0).padStart(6)}  ${(o / n).toFixed(3)}x`);
    }
    const fast = (w: "new" | "old") => Math.min(...t[w].get("(step)")!);
    console.log(
      `  (fastest)                  new ${fast("new").toFixed(0).padStart(6)}  old ${fast("old").toFixed(0).padStart(6)}  ${
        (fast("old") / fast("new")).toFixed(3)
      }x`,
    );
  };
  table(times, 20);
  // the prefill: the same table per prefill, and its rate
  const tps = (w: "new" | "old", f: (xs: number[]) => number) => (prompt.length / (f(prefillTimes[w].get("(step)")!) / 1e6)).toFixed(1);
  const least = (xs: number[]) => Math.min(...xs);
  console.log(
    `${type}: prefill(${prompt.length}), median µs a prefill, old / new; tok/s median new ${tps("new", median)}, old ${
      tps("old", median)
    }; fastest new ${tps("new", least)}, old ${tps("old", least)}`,
  );
  table(prefillTimes, 1000);
  await models.new.close();
  await models.old.close();
  // two cache types round K and V differently, so their tokens may part; two builds on one cache type may not
  if (mismatch && kv.new === kv.old) throw new Error(`${type}: the builds' tokens differ in ${mismatch} steps`);
}
