/**
 * Thread scaling: decode and 128-token prefill of a stories110M-shaped model
 * on 1 thread (WasmBackend) and on N threads (ThreadedWasmBackend), same file,
 * same tokens. Prints ms per token and the speed-up over one thread.
 *
 *   deno run -A bench/threads.ts [--threads 1,2] [--type F32|F16|Q8_0|Q4_0|Q4_K_M] [--model PATH] [--decode 32] [--prefill 128] [--reps 5]
 *                                [--baseline DIR] [--profile] [--help]
 *   bun bench/threads.ts ...
 *
 * --profile adds, after the timed runs, one prefill and one decode run per thread count with the
 * backend's OpProfile on, and prints µs per token by op class side by side: where a second thread
 * does not halve the time.
 *
 * --joins adds, after the timed runs, --reps prefills per thread count with the pool's statistics on (ThreadPool.recordStats):
 * where a two-thread prefill's time goes, prefill by prefill: each thread's time in chunks, the caller's wait at each op's
 * join by kernel, ops a thread found empty, and each worker's delay from an op's publication to its start, spinning or
 * woken from Atomics.wait. Each is paired with a one-thread prefill run just before it, so its ratio is of the same seconds.
 *
 * --account adds, after the timed runs, --reps rounds of three prefills on each multi-thread model with the pool's
 * statistics on, CPU time by kernel: the calling thread alone, one kernel call an op (ThreadPool.solo "whole": what a
 * single thread does); the calling thread alone through the chunks the op is cut into for every thread ("split": what
 * the cut costs in work, tiles cut at chunk edges and per-chunk calls); every thread ("off": what running on the cores
 * at once costs on top, shared caches and memory). CPU time in chunks, not wall time: a shared host preempts threads,
 * which stretches walls but not (much) the time a thread spends inside a kernel. Then the time outside the pool's chunks
 * on the calling thread (calling-thread ops, ops too small to split, JS) and the caller's join waits.
 *
 * --baseline DIR also loads every thread count from another checkout's src/ (an earlier tree: `git archive main | tar
 * -x -C DIR`, with its build/ and node_modules) and measures both trees interleaved, rep by rep, in this process:
 * old / new ratios of the same minutes, which a loaded host does not skew as it skews runs minutes apart.
 *
 * --type uses bench/synthetic.ts's cached model (quantized types: quantized from the F32
 * one with src/quant/quantize.ts on first use, cached beside it); --model runs
 * any file. Weights are random: speed does not depend on the values.
 */
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { RESERVED } from "../src/memory/arena.ts";
import { decodeBytes, readBandwidth } from "./e2e.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import { benchArgs, choiceFlag, intFlag, intListFlag, median, usageError } from "./cli.ts";
import { schedDelta, taskTimes } from "./sched.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE = `Thread scaling: decode and prefill of a stories110M-shaped model on 1 and N threads, ms per token and speed-up.

  deno run -A bench/threads.ts [options]        bun bench/threads.ts [options]

  --threads LIST   thread counts (default 1,2)
  --type T         F32, F16, Q8_0, Q4_0 or Q4_K_M: bench/synthetic.ts's cached model (default F32)
  --model PATH     any GGUF file instead
  --decode N       decode steps, at most 504 (default 32)
  --prefill N      prompt ids of the prefill, at most 512; with --profile, at most 512 with --decode (default 128)
  --reps N         timed runs, median kept (default 5)
  --baseline DIR   also measure another checkout's tree (DIR/src), interleaved in the same run
  --profile        then one run per thread count with the op profile on: µs per token by op class
  --joins          then --reps prefills per thread count (interleaved with one thread's) with the pool's statistics on:
                   per prefill, each thread's time in chunks, the caller's wait at joins (by kernel), the workers'
                   delay from an op's publication to its start (spinning, or woken from Atomics.wait)
  --gap MS         idle time before each timed run (default 10: another pool's worker falls asleep); at real-time priority
                   (chrt -r 1) a gap of 300-500 lets the kernel's real-time budget (950 ms a second) refill between runs
  --account        then --reps rounds of three prefills per multi-thread model, CPU time by kernel: the calling thread
                   alone in one call an op (as one thread), alone through the chunks of the split, and all threads
                   (ThreadPool.solo): what the split costs in work, and what running at once costs
  -h, --help       this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    threads: { type: "string", default: "1,2" },
    type: { type: "string", default: "F32" },
    model: { type: "string" },
    decode: { type: "string", default: "32" },
    prefill: { type: "string", default: "128" },
    reps: { type: "string", default: "5" },
    baseline: { type: "string" },
    profile: { type: "boolean", default: false },
    joins: { type: "boolean", default: false },
    account: { type: "boolean", default: false },
    gap: { type: "string", default: "10" },
    help: { type: "boolean", short: "h" },
  },
});
const runtime = g.Deno ? "deno" : g.Bun ? "bun" : "node";
const threadCounts = intListFlag(USAGE, "threads", opts.threads);
// in the 512-position context loaded: a timed decode follows an 8-id prefill, and --profile's decode follows the
// whole --prefill on one sequence (a longer run failed on its context after the timed runs had been measured)
const decodeSteps = intFlag(USAGE, "decode", opts.decode, 1, 512 - 8);
const prefillTokens = intFlag(USAGE, "prefill", opts.prefill, 1, 512);
const reps = intFlag(USAGE, "reps", opts.reps);
const profile = opts.profile;
if (profile && prefillTokens + decodeSteps > 512) {
  usageError(`--profile: --prefill ${prefillTokens} and --decode ${decodeSteps} pass the context of 512 (at most 512 together)`, USAGE);
}
const joins = opts.joins;
const gapMs = intFlag(USAGE, "gap", opts.gap, 0);
const type = choiceFlag(USAGE, "type", opts.type, ["F32", "F16", "Q8_0", "Q4_0", "Q4_K_M"] as const);
const path = opts.model ?? await ensureSyntheticModel("stories110M", type);

/** Deterministic token ids (the vocabulary's made-up pieces; ids do not change the work). */
function tokens(n: number, seed: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(300 + ((seed * 7919 + i * 104729) % 20000));
  return out;
}

/** One timed prefill (ms per prompt token) and one timed decode run (ms per token), each on a fresh sequence. */
async function measureOnce(model: Model, r: number): Promise<{ decodeMs: number; prefillMs: number }> {
  let seq = model.newSequence();
  let t = performance.now();
  await model.prefill(seq, tokens(prefillTokens, r));
  const prefillMs = (performance.now() - t) / prefillTokens;
  model.releaseSequence(seq);
  seq = model.newSequence();
  await model.prefill(seq, tokens(8, r + 100));
  const ids = tokens(decodeSteps, r + 200);
  t = performance.now();
  for (const id of ids) await model.decodeOne(seq, id);
  const decodeMs = (performance.now() - t) / decodeSteps;
  model.releaseSequence(seq);
  return { decodeMs, prefillMs };
}

/** Op classes the threaded backend runs on the calling thread alone, whatever the rows (prefill and decode). */
const SERIAL_OPS = new Set(["embed", "kv store", "copy", "JS between calls"]);

/**
 * The machine's limit for decode: GB/s at which this model's own weights stream
 * through the read_probe kernel on `model`'s threads (split into contiguous
 * ranges, one per claimed chunk), best of 5. Decode reads every weight once per
 * token, so decode speed-up cannot exceed this ratio between thread counts.
 */
function streamBandwidth(model: Model): number {
  const pool = (model.backend as ThreadedWasmBackend).pool;
  if (!pool) return readBandwidth(model);
  const floats = Math.floor(model.weightBytes / 4);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    pool.split("read_probe", "elements", RESERVED, floats);
    best = Math.min(best, performance.now() - t);
  }
  return (floats * 4) / (best / 1000) / 1e9;
}

/** A tree's loader and backends: this checkout's, or --baseline's (its own module graph, Workers and kernel build). */
interface Tree {
  name: string;
  loadModel: typeof loadModel;
  WasmBackend: typeof WasmBackend;
  ThreadedWasmBackend: typeof ThreadedWasmBackend;
}
const trees: Tree[] = [{ name: "this tree", loadModel, WasmBackend, ThreadedWasmBackend }];
if (opts.baseline) {
  const root = new URL(opts.baseline.replace(/\/?$/, "/"), `file://${g.Deno ? g.Deno.cwd() : g.process.cwd()}/`);
  trees.unshift({
    name: `baseline ${opts.baseline}`,
    loadModel: (await import(new URL("src/model/load.ts", root).href)).loadModel,
    WasmBackend: (await import(new URL("src/backends/wasm.ts", root).href)).WasmBackend,
    ThreadedWasmBackend: (await import(new URL("src/backends/wasm-threads.ts", root).href)).ThreadedWasmBackend,
  });
}

// every tree and thread count loaded at once and measured in turn, rep by rep, so a noisy
// neighbour slows all of them alike instead of skewing one
const models: Model[] = [];
const labels: string[] = [];
for (const tree of trees) {
  for (const n of threadCounts) {
    const backend = n === 1 ? new tree.WasmBackend() : new tree.ThreadedWasmBackend({ threads: n });
    models.push(await tree.loadModel(path, { backend, contextLength: 512 }));
    labels.push(trees.length > 1 ? `${tree.name}, ${n}` : `${n}`);
  }
}
try {
  const runs = models.map(() => ({ decode: [] as number[], prefill: [] as number[] }));
  for (let r = -1; r < reps; r++) {
    for (let i = 0; i < models.length; i++) {
      // another pool's worker spins 5 ms after its last op (PoolOptions.spinMs), holding a core: let it fall asleep
      await new Promise((res) => setTimeout(res, gapMs));
      const m = await measureOnce(models[i], r + 1);
      if (r < 0) continue; // warm-up: page in the weights, tier up the JIT
      runs[i].decode.push(m.decodeMs);
      runs[i].prefill.push(m.prefillMs);
    }
  }
  const bw: number[] = [];
  for (const m of models) {
    await new Promise((res) => setTimeout(res, 10)); // the previous pool's worker asleep (see above)
    bw.push(streamBandwidth(m));
  }
  console.log(`# ${runtime}, ${path.split("/").pop()}, decode ${decodeSteps} tokens, prefill ${prefillTokens} tokens, median of ${reps}`);
  console.log(
    "| threads | decode ms/token | decode speed-up | weight stream GB/s (limit) | decode GB/s (of limit) | prefill ms/token | prefill speed-up |",
  );
  console.log("|---|---|---|---|---|---|---|");
  models.forEach((model, i) => {
    // speed-ups over the same tree's first thread count
    const first = i - (i % threadCounts.length);
    const d0 = median(runs[first].decode), p0 = median(runs[first].prefill);
    const d = median(runs[i].decode), p = median(runs[i].prefill);
    const gbs = decodeBytes(model) / (d / 1000) / 1e9;
    console.log(
      `| ${labels[i]} | ${d.toFixed(2)} | ${(d0 / d).toFixed(2)}x | ${bw[i].toFixed(1)} (${(bw[i] / bw[first]).toFixed(2)}x) | ${
        gbs.toFixed(1)
      } (${((100 * gbs) / bw[i]).toFixed(0)}%) | ${p.toFixed(2)} | ${(p0 / p).toFixed(2)}x |`,
    );
  });
  if (trees.length > 1) {
    // each rep's old / new prefill time, paired: the pair ran within the same second or two
    const n = threadCounts.length;
    for (let j = 0; j < n; j++) {
      const ratios = runs[j].prefill.map((old, r) => old / runs[n + j].prefill[r]);
      console.log(`prefill ${threadCounts[j]} threads, baseline / this tree time per rep: ${ratios.map((x) => x.toFixed(2)).join(" ")}`);
    }
  }
  if (profile) await printProfiles();
  if (joins) await printJoins();
  if (opts.account) await printAccount();
} finally {
  for (const m of models) await m.close();
}

/** One profiled prefill and decode run per thread count; µs per token by op class, and each class's speed-up over one thread. */
async function printProfiles(): Promise<void> {
  const phases = { prefill: [] as Map<string, number>[], decode: [] as Map<string, number>[] };
  for (const m of models) {
    await new Promise((res) => setTimeout(res, 10)); // the previous pool's worker asleep (see above)
    const backend = m.backend as WasmBackend, prof = new OpProfile();
    for (const phase of ["prefill", "decode"] as const) {
      backend.profile = prof;
      prof.reset();
      let seq = m.newSequence();
      let t = performance.now(), tokensRun = prefillTokens;
      if (phase === "prefill") await m.prefill(seq, tokens(prefillTokens, 7));
      else {
        backend.profile = null;
        m.releaseSequence(seq);
        seq = m.newSequence();
        await m.prefill(seq, tokens(prefillTokens, 8));
        backend.profile = prof;
        t = performance.now();
        for (const id of tokens(decodeSteps, 9)) await m.decodeOne(seq, id);
        tokensRun = decodeSteps;
      }
      const wall = performance.now() - t;
      backend.profile = null;
      m.releaseSequence(seq);
      const row = new Map<string, number>();
      let sum = 0;
      for (const [k, e] of prof.totals) {
        row.set(k, (1000 * e.ms) / tokensRun);
        sum += e.ms;
      }
      row.set("JS between calls", (1000 * (wall - sum)) / tokensRun);
      row.set("(wall)", (1000 * wall) / tokensRun);
      phases[phase].push(row);
    }
  }
  for (const phase of ["prefill", "decode"] as const) {
    const rows = phases[phase];
    const n = threadCounts.length, others = labels.map((_, i) => i).filter((i) => i % n !== 0);
    console.log(`\n${phase}: µs per token by op class (${labels.join(" / ")} threads; speed-up over the same tree's ${threadCounts[0]})`);
    console.log(
      `| op | ${labels.map((l) => `${l}t µs`).join(" | ")} | ${others.map((i) => `${labels[i]}t speed-up`).join(" | ")} | share |`,
    );
    const keys = [...new Set(rows.flatMap((r) => [...r.keys()]))];
    const wall0 = rows[0].get("(wall)")!;
    let serial = 0;
    for (const k of keys) {
      const v = rows.map((r) => r.get(k) ?? 0);
      if (SERIAL_OPS.has(k)) serial += v[0];
      console.log(
        `| ${k} | ${v.map((x) => x.toFixed(1)).join(" | ")} | ${
          others.map((i) => (v[i - (i % n)] / v[i]).toFixed(2) + "x").join(" | ")
        } | ${k === "(wall)" ? "" : ((100 * v[0]) / wall0).toFixed(1) + "%"} |`,
      );
    }
    // Amdahl: the calling thread's ops alone (SERIAL_OPS) cap every thread count's speed-up, whatever the split ops reach
    const s = serial / wall0;
    console.log(
      `serial (${[...SERIAL_OPS].join(", ")}): ${(100 * s).toFixed(1)}% of ${labels[0]}'s wall; Amdahl's bound on 2 threads ${
        (1 / (s + (1 - s) / 2)).toFixed(2)
      }x`,
    );
  }
}

/** --account: see the file's comment. */
async function printAccount(): Promise<void> {
  const modes = ["whole", "split", "off", "workers"] as const;
  type Round = {
    kernels: Map<string, { ms: number[]; chunks: number; units: number[] }>;
    wall: number;
    busy: number;
    join: number;
    runnableMs: number;
    migrations: number;
    preemptions: number;
  };
  for (let i = 0; i < models.length; i++) {
    const pool = (models[i].backend as ThreadedWasmBackend).pool;
    if (!pool) continue;
    const rounds: Round[][] = modes.map(() => []);
    // the same tree's first thread count (one thread: WasmBackend on its own, unshared build), its wall in each round
    const single = models[i - (i % threadCounts.length)], singleWalls: number[] = [];
    for (let r = -1; r < reps; r++) {
      if (single !== models[i]) {
        await new Promise((res) => setTimeout(res, 10));
        const seq = single.newSequence(), t = performance.now();
        await single.prefill(seq, tokens(prefillTokens, 70 + r));
        if (r >= 0) singleWalls.push(performance.now() - t);
        single.releaseSequence(seq);
      }
      for (const [m, mode] of modes.entries()) {
        await new Promise((res) => setTimeout(res, 10));
        pool.solo = mode;
        const seq = models[i].newSequence();
        pool.recordStats(true);
        const before = taskTimes();
        const t = performance.now();
        try {
          await models[i].prefill(seq, tokens(prefillTokens, 70 + r));
        } finally {
          pool.solo = "off";
        }
        const wall = performance.now() - t;
        const sched = schedDelta(before, taskTimes(), pool.threads);
        await new Promise((res) => setTimeout(res, 1)); // the workers' last counts written
        const st = pool.stats();
        pool.recordStats(false);
        models[i].releaseSequence(seq);
        if (r < 0) continue; // warm-up
        const round: Round = {
          kernels: new Map(),
          wall,
          busy: st.threads[0].busyMs,
          join: 0,
          runnableMs: sched?.waitMs ?? NaN,
          migrations: sched?.migrations ?? NaN,
          preemptions: sched?.preemptions ?? NaN,
        };
        for (const v of Object.values(st.joins)) round.join += v.waitMs;
        for (const [k, v] of Object.entries(st.kernels)) {
          round.kernels.set(k, { ms: v.busyMs, chunks: v.chunks.reduce((a, b) => a + b, 0), units: v.units });
        }
        rounds[m].push(round);
      }
    }
    // each figure is its least disturbed round's (fastest): load only adds time, and a shared host adds it unevenly
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const least = (m: number, f: (r: Round) => number) => Math.min(...rounds[m].map(f));
    const cpu = (m: number, k: string) => least(m, (r) => sum(r.kernels.get(k)?.ms ?? [NaN]));
    const fmt = (x: number) => x.toFixed(2);
    console.log(`\nCPU time by kernel, ${labels[i]} threads, ms per prefill of ${prefillTokens} (fastest of ${reps} rounds each)`);
    console.log(
      "| kernel | one call an op, 1 thread | the split's chunks, 1 thread (x) | all threads, CPU in chunks (x) | per thread (that round) |" +
        " pace per thread, x of one call's (that round) | the workers alone (x) | chunks |",
    );
    console.log("|---|---|---|---|---|---|---|---|");
    const names = [...rounds[0][0].kernels.keys()].sort((a, b) => cpu(0, b) - cpu(0, a));
    // the workers alone (the caller publishing and joining): their pace on their own cores, against the caller's one call
    const workersAlone = (k: string) => (cpu(3, k) / cpu(0, k)).toFixed(3);
    for (const k of names) {
      const w0 = cpu(0, k), s0 = cpu(1, k), a0 = cpu(2, k);
      const best = rounds[2].reduce((b, r) => (sum(r.kernels.get(k)?.ms ?? [Infinity]) < sum(b.kernels.get(k)?.ms ?? [Infinity]) ? r : b));
      const e = best.kernels.get(k),
        one = rounds[0].reduce((b, r) => (sum(r.kernels.get(k)?.ms ?? [Infinity]) < sum(b.kernels.get(k)?.ms ?? [Infinity]) ? r : b));
      const onePace = sum(one.kernels.get(k)?.ms ?? [NaN]) / sum(one.kernels.get(k)?.units ?? [NaN]);
      // each thread's ms per unit against the one-call round's: above 1, that thread ran slower per unit of work
      const pace = e ? e.ms.map((ms, j) => (e.units[j] ? (ms / e.units[j] / onePace).toFixed(2) : "-")).join(" / ") : "-";
      console.log(
        `| ${k} | ${fmt(w0)} | ${fmt(s0)} (${(s0 / w0).toFixed(3)}) | ${fmt(a0)} (${(a0 / w0).toFixed(3)}) | ${
          e?.ms.map(fmt).join(" / ") ?? "-"
        } | ${pace} | ${workersAlone(k)} | ${rounds[1][0].kernels.get(k)?.chunks ?? 0} |`,
      );
    }
    const inK = (m: number) => least(m, (r) => sum([...r.kernels.values()].map((e) => sum(e.ms))));
    const wall = (m: number) => least(m, (r) => r.wall);
    const outside = (m: number) => least(m, (r) => r.wall - r.busy - r.join);
    console.log(
      `all kernels, CPU ms: ${fmt(inK(0))} / ${fmt(inK(1))} / ${fmt(inK(2))} (${(inK(1) / inK(0)).toFixed(3)}x, ${
        (inK(2) / inK(0)).toFixed(3)
      }x); ` +
        `wall ms: ${fmt(wall(0))} / ${fmt(wall(1))} / ${fmt(wall(2))} (all threads ${
          (wall(0) / wall(2)).toFixed(2)
        }x one call's); workers alone ${fmt(wall(3))}; ` +
        `the caller outside chunks and joins (calling-thread ops, unsplit ops, JS): ${fmt(outside(0))} / ${fmt(outside(1))} / ${
          fmt(outside(2))
        }; ` +
        `all threads' join waits ${fmt(least(2, (r) => r.join))}; pool threads runnable, not running: ${
          rounds.map((_, m) => fmt(least(m, (r) => r.runnableMs))).join(" / ")
        } ms, moved between CPUs: ${rounds.map((_, m) => least(m, (r) => r.migrations)).join(" / ")}, preempted: ${
          rounds.map((_, m) => least(m, (r) => r.preemptions)).join(" / ")
        } (fewest of the rounds)`,
    );
    if (singleWalls.length) {
      const w1 = Math.min(...singleWalls);
      console.log(
        `${labels[i - (i % threadCounts.length)]} thread(s) on its own backend and build, same rounds: wall ${fmt(w1)} ms (all threads ${
          (w1 / wall(2)).toFixed(2)
        }x; its one-call wall ${(w1 / wall(0)).toFixed(3)}x of this)`,
      );
    }
  }
}

/**
 * --joins: prefills on each multi-thread model with the pool recording, each after a one-thread prefill of the same
 * tree; one line per prefill, then the caller's join waits by kernel summed over them.
 */
async function printJoins(): Promise<void> {
  for (let i = 0; i < models.length; i++) {
    const pool = (models[i].backend as ThreadedWasmBackend).pool;
    if (!pool) continue;
    const single = models[i - (i % threadCounts.length)];
    console.log(
      `\njoins, ${labels[i]} threads: ms per prefill of ${prefillTokens} (1t: the same tree's ${threadCounts[0]} thread(s), just before)`,
    );
    console.log(
      "| rep | 1t ms | wall ms | speed-up | caller busy | workers busy | caller join wait | empty ops (caller, workers) | woken ops, µs each |" +
        " spun ops, µs each | pool threads runnable, not running (ms) | other threads' CPU ms |",
    );
    console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
    const byKernel = new Map<string, { ops: number; waitMs: number; maxMs: number }>();
    for (let r = 0; r < reps; r++) {
      await new Promise((res) => setTimeout(res, 10));
      let seq = single.newSequence();
      let t = performance.now();
      await single.prefill(seq, tokens(prefillTokens, 50 + r));
      const oneMs = performance.now() - t;
      single.releaseSequence(seq);
      seq = models[i].newSequence();
      pool.recordStats(true);
      const before = taskTimes();
      t = performance.now();
      await models[i].prefill(seq, tokens(prefillTokens, 50 + r));
      const wall = performance.now() - t;
      const sched = schedDelta(before, taskTimes(), pool.threads);
      await new Promise((res) => setTimeout(res, 1)); // the workers' last counts written
      const st = pool.stats();
      pool.recordStats(false);
      models[i].releaseSequence(seq);
      const [caller, ...workers] = st.threads;
      const sum = (f: (t: typeof caller) => number) => workers.reduce((a, w) => a + f(w), 0);
      let joinMs = 0;
      for (const [k, v] of Object.entries(st.joins)) {
        joinMs += v.waitMs;
        const e = byKernel.get(k) ?? { ops: 0, waitMs: 0, maxMs: 0 };
        e.ops += v.ops, e.waitMs += v.waitMs, e.maxMs = Math.max(e.maxMs, v.maxMs);
        byKernel.set(k, e);
      }
      const woken = sum((w) => w.parkedOps), spun = sum((w) => w.spunOps);
      console.log(
        `| ${r} | ${oneMs.toFixed(1)} | ${wall.toFixed(1)} | ${(oneMs / wall).toFixed(2)}x | ${caller.busyMs.toFixed(1)} | ${
          sum((w) => w.busyMs).toFixed(1)
        } | ${joinMs.toFixed(2)} | ${caller.emptyOps}, ${sum((w) => w.emptyOps)} | ${woken}, ${
          woken ? ((1000 * sum((w) => w.parkedDelayMs)) / woken).toFixed(1) : "-"
        } | ${spun}, ${spun ? ((1000 * sum((w) => w.spunDelayMs)) / spun).toFixed(2) : "-"} | ${sched?.waitMs.toFixed(2) ?? "-"} | ${
          sched?.otherCpuMs.toFixed(1) ?? "-"
        } |`,
      );
    }
    console.log(`caller's join waits by kernel, summed over ${reps} prefills: ms (ops)`);
    for (const [k, v] of [...byKernel].sort((a, b) => b[1].waitMs - a[1].waitMs)) {
      console.log(
        `  ${k.padEnd(28)} ${v.waitMs.toFixed(2).padStart(8)} ms (${v.ops} ops, ${
          ((1000 * v.waitMs) / v.ops).toFixed(1)
        } µs each, longest ${(1000 * v.maxMs).toFixed(0)} µs)`,
      );
    }
  }
}
