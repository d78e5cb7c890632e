/**
 * A decode step on this tree's kernel build against an earlier build (a copy of build/), in one process: the
 * synthetic stories110M-shaped file loaded twice (one WASM backend per build, 1 thread, the lanes kernels this runtime
 * picks), a 128-id prompt, then `--steps` greedy decode steps of each model in alternation (which one goes first
 * alternates too), so that attention reads positions 128 on, as in bench/peers.ts, and both builds meet the same
 * load. Every step is timed by the backend's OpProfile; prints, per op class, the median µs a step of each build
 * and their ratio (old / new), and the whole step's median and fastest. The two builds' tokens must agree (the
 * kernels are meant to keep their bits): a differing token fails the run.
 *
 *   deno run -A bench/decode-ab.ts --baseline /tmp/old-build [--types Q4_0,Q4_K_M] [--steps 48] [--rounds 3]
 *   bun bench/decode-ab.ts --baseline /tmp/old-build ...
 */
import * as path from "node:path";

import { benchArgs, runStamp } from "./cli.ts";
import { ensureSyntheticModel, type SyntheticType } from "./synthetic.ts";
import { BackendOn } from "./build-backend.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import type { KVType } from "../src/backends/backend.ts";
import type { GGMLTypeId } from "../src/formats/ggml-types.ts";
import { type LanesKernel, lanesKernel } from "../src/quant/kernels.ts";
import { dotAddIsExactU8S8, hasRelaxedSimd } from "../src/kernels/wasm.ts";

const { values: opts } = benchArgs(
  `A decode step on this tree's build/ against an earlier build (--baseline DIR, a copy of build/), one process,
1 thread, steps in alternation: median µs a step per op class, old / new.

  deno run -A bench/decode-ab.ts --baseline DIR [options]        bun bench/decode-ab.ts --baseline DIR [options]

  --baseline DIR   the earlier build's folder (kvasm-relaxed.wasm or kvasm-simd.wasm in it)
  --types LIST     synthetic stories110M files (default Q4_0,Q4_K_M; F32, Q8_0, Q4_0, Q4_K_M)
  --steps N        greedy decode steps of each model per round, after a 128-id prompt (default 48)
  --rounds N       rounds, each on new sequences (default 3)
  --kv TYPE        the KV cache's element type (default f32; f16, q8_0, u8_asym: loadModel's kvCacheType)
  -h, --help       this text`,
  {
    options: {
      baseline: { type: "string" },
      types: { type: "string", default: "Q4_0,Q4_K_M" },
      steps: { type: "string", default: "48" },
      rounds: { type: "string", default: "3" },
      kv: { type: "string", default: "f32" },
      help: { type: "boolean", short: "h" },
    },
  },
);
if (!opts.baseline) throw new Error("--baseline DIR is required (a copy of an earlier build/)");
const steps = Number(opts.steps), rounds = Number(opts.rounds);
const variant = hasRelaxedSimd() ? "relaxed" : "simd";
const exact = variant === "relaxed" && dotAddIsExactU8S8();
const root = new URL("..", import.meta.url).pathname;
// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Deno ? `deno ${g.Deno.version.deno}` : g.Bun ? `bun ${g.Bun.version}` : `node ${g.process.version}`;

/** A build's backend with the lanes kernels WasmBackend.init picks here (BackendOn's own init leaves the exact dot-add off). */
class On extends BackendOn {
  override lanesKernelFor(type: GGMLTypeId): LanesKernel | undefined {
    return lanesKernel(type, exact);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length & 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
/** An op key without the kernel name, so that the two builds' keys meet ("matmul Q4_0 2048x768 (…)" -> "matmul Q4_0 2048x768"). */
const opClass = (key: string) => key.replace(/ \(.*\)$/, "");

console.log(
  `${runtime}, ${variant}, ${runStamp()}: ` +
    `this build (new) against ${opts.baseline} (old), ${steps} steps x ${rounds} rounds each, alternating, ${opts.kv} KV cache`,
);
const prompt = Array.from({ length: 128 }, (_, i) => 1 + ((i * 37) % 500));
for (const type of opts.types.split(",")) {
  const file = await ensureSyntheticModel("stories110M", type as SyntheticType);
  const builds = {
    new: new On(path.join(root, "build", `kvasm-${variant}.wasm`), variant),
    old: new On(path.join(opts.baseline, `kvasm-${variant}.wasm`), variant),
  };
  const models = {
    new: await loadModel(file, { backend: builds.new, threads: 1, kvCacheType: opts.kv as KVType }),
    old: await loadModel(file, { backend: builds.old, threads: 1, kvCacheType: opts.kv as KVType }),
  };
  // per build: op class -> µs of each step; "(step)": the whole step's wall time
  const times = { new: new Map<string, number[]>(), old: new Map<string, number[]>() };
  // one profile per build, reset every step: a new one would build every weight's key string again (profileMatmul)
  const profiles = { new: new OpProfile(), old: new OpProfile() };
  const add = (m: Map<string, number[]>, k: string, us: number) => (m.get(k) ?? m.set(k, []).get(k)!).push(us);
  let mismatch = 0;
  for (let r = 0; r < rounds; r++) {
    const seqs = { new: models.new.newSequence(), old: models.old.newSequence() };
    const last = { new: await models.new.prefill(seqs.new, prompt), old: await models.old.prefill(seqs.old, prompt) };
    let tok = { new: argmax(last.new), old: argmax(last.old) };
    for (let s = 0; s < steps; s++) {
      for (const which of (s & 1) ? ["old", "new"] as const : ["new", "old"] as const) {
        const b = builds[which], p = profiles[which];
        p.reset();
        b.profile = p;
        const t0 = performance.now();
        const logits = await models[which].decodeOne(seqs[which], tok[which]);
        const t = performance.now() - t0;
        b.profile = null;
        tok = { ...tok, [which]: argmax(logits) };
        const per = new Map<string, number>();
        for (const [k, e] of p.totals) per.set(opClass(k), (per.get(opClass(k)) ?? 0) + e.ms);
        for (const [k, ms] of per) add(times[which], k, 1000 * ms);
        add(times[which], "(step)", 1000 * t);
      }
      if (tok.new !== tok.old) mismatch++;
    }
    models.new.releaseSequence(seqs.new);
    models.old.releaseSequence(seqs.old);
  }
  console.log(`${type}: median µs a step, old / new${mismatch ? `; ${mismatch} steps' tokens DIFFER` : " (same tokens)"}`);
  const keys = [...times.new.keys()].sort((a, b) => median(times.new.get(b)!) - median(times.new.get(a)!));
  for (const k of keys) {
    const n = median(times.new.get(k)!), o = median(times.old.get(k) ?? [NaN]);
    if (n < 20 && k !== "(step)") continue;
    console.log(`  ${k.padEnd(26)} new ${n.toFixed(0).padStart(6)}  old ${o.toFixed(0).padStart(6)}  ${(o / n).toFixed(3)}x`);
  }
  const fast = (w: "new" | "old") => Math.min(...times[w].get("(step)")!);
  console.log(
    `  (fastest step)             new ${fast("new").toFixed(0).padStart(6)}  old ${fast("old").toFixed(0).padStart(6)}  ${
      (fast("old") / fast("new")).toFixed(3)
    }x`,
  );
  await models.new.close();
  await models.old.close();
  if (mismatch) throw new Error(`${type}: the builds' tokens differ in ${mismatch} steps`);
}
