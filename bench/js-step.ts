/**
 * The JavaScript side of a decode step (issue #16, "JS overhead between calls"): what a step allocates on the
 * JS heap, and how the first tokens after load run while the engine's JIT tiers the kernels up.
 *
 *   deno run -A bench/js-step.ts alloc  [--types F32,Q8_0] [--threads 1,2] [--tokens 256]
 *   bun bench/js-step.ts alloc ...
 *   deno run -A bench/js-step.ts tierup [--types F32,Q8_0,Q4_0,Q4_K_M] [--tokens 200] [--no-warmup]
 *
 * alloc: bytes allocated on the JS heap per decoded token (Deno: V8's sampling heap profiler; Bun: JavaScriptCore's
 * GC log; see sampledBytes and gcLogged), over `--tokens` Model.decodeOne steps after 200 warm steps (V8 runs matmulRows in a tier that allocates for its first ~100 tokens), then the same
 * through model.generate() (greedy, text and events included).
 * tierup: each of the first `--tokens` decode steps' latency right after load (one 8-id prefill first), one fresh
 * load per type; the first step, the mean over steps 2-10, 11-50, 51-100, 101-200, and the steady state (median of
 * the last 50). The models are bench/synthetic.ts's stories110M files.
 */
import { Session } from "node:inspector";
import { ensureSyntheticModel, type SyntheticType } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { benchArgs } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Deno ? `deno ${g.Deno.version.deno}` : g.Bun ? `bun ${g.Bun.version}` : `node ${g.process.version}`;

/**
 * V8's own total_allocated_bytes moved by 3-55 KB a token between windows of one steady run (it counts the
 * collector's copies and the JIT's code too), so under Deno a window is measured by V8's sampling heap profiler
 * (node:inspector), every allocation of a JS object sampled at a 32-byte interval, collected ones included.
 */
async function sampledBytes(body: () => Promise<number>): Promise<number> {
  const session = new Session();
  session.connect();
  const post = (method: string, params: object = {}) =>
    new Promise<Record<string, unknown>>((res, rej) => session.post(method, params, (e, r) => e ? rej(e) : res(r as Record<string, unknown>)));
  try {
    await post("HeapProfiler.enable");
    await post("HeapProfiler.startSampling", {
      samplingInterval: 32,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    const tokens = await body();
    const { profile } = await post("HeapProfiler.stopSampling") as { profile: { head: ProfileNode } };
    return sum(profile.head) / tokens;
  } finally {
    session.disconnect();
  }
}

interface ProfileNode {
  selfSize: number;
  children: ProfileNode[];
}

const sum = (n: ProfileNode): number => n.children.reduce((s, c) => s + sum(c), n.selfSize);

/**
 * JavaScriptCore's total_allocated_bytes (Bun's node:v8) counts heap growth, not allocations (cells reused after a
 * collection go uncounted), so under Bun a window is measured from the collector's own log instead: the script
 * reruns itself with BUN_JSC_logGC=1, each window starts and ends with a full collection (Bun.gc(true)) between
 * markers on stderr, and the bytes a window allocated are the sum over its collections of (heap size at the
 * collection's start - heap size after the previous one), to the kilobyte.
 */
const gcLogged = g.Bun !== undefined;
let windows = 0;

/** Runs `body` (which returns the tokens it decoded) and returns the bytes allocated per token (NaN under Bun: see gcLogged). */
async function perToken(body: () => Promise<number>): Promise<number> {
  if (gcLogged) {
    g.Bun.gc(true);
    console.error(`@@window-begin ${windows}`);
    const tokens = await body();
    console.error(`@@window-end ${windows++} ${tokens}`);
    g.Bun.gc(true);
    return NaN;
  }
  return await sampledBytes(body);
}

/** Bytes per token of each window in a BUN_JSC_logGC=1 child's stderr, in window order. */
function windowsFromGCLog(log: string): number[] {
  const out: number[] = [];
  let after = NaN, open = -1, tokens = 0, bytes = 0, closing = false;
  for (const line of log.split("\n")) {
    const begin = line.match(/^@@window-begin (\d+)/), end = line.match(/^@@window-end (\d+) (\d+)/);
    const start = line.match(/START \w+ (\d+)kb =>/), done = line.match(/=> (\d+)kb, p=[\d.]+ms \(max [\d.]+\), cycle/);
    if (begin) open = Number(begin[1]), bytes = 0, closing = false;
    else if (end) tokens = Number(end[2]), closing = true;
    if (start && open >= 0) bytes += (Number(start[1]) - after) * 1024;
    if (done) {
      after = Number(done[1]);
      // the forced collection after the window's end marker closes it
      if (closing && open >= 0) out[open] = bytes / tokens, open = -1, closing = false;
    }
  }
  return out;
}

/** Bytes allocated per Model.decodeOne step, over `tokens` steps after 32 warm ones. */
export async function stepAllocation(model: Model, tokens: number): Promise<number> {
  const vocab = model.vocabSize;
  const seq = model.newSequence();
  try {
    await model.prefill(seq, [1, 2, 3, 4]);
    let token = 5;
    for (let i = 0; i < 200; i++) token = argmax(await model.decodeOne(seq, 7 + ((token * 31) % (vocab - 7))));
    return await perToken(async () => {
      for (let i = 0; i < tokens; i++) token = argmax(await model.decodeOne(seq, 7 + ((token * 31) % (vocab - 7))));
      return tokens;
    });
  } finally {
    model.releaseSequence(seq);
  }
}

/** Bytes allocated per generated token through model.generate() (greedy; tokens, text, events). */
async function generateAllocation(model: Model, tokens: number): Promise<number> {
  const prompt = [1, 2, 3, 4];
  // warm: the generator, decoder and text paths compiled
  for await (const _ of model.generate(prompt, { maxTokens: 200, temperature: 0 }));
  return await perToken(async () => {
    const it = model.generate(prompt, { maxTokens: tokens, temperature: 0 });
    let r = await it.next();
    while (!r.done) r = await it.next();
    return r.value.tokens.length;
  });
}

/** Each decode step's latency (ms) for the first `tokens` steps after load. */
async function firstTokens(model: Model, tokens: number): Promise<number[]> {
  const vocab = model.vocabSize;
  const seq = model.newSequence();
  const ms: number[] = [];
  try {
    let token = argmax(await model.prefill(seq, [1, 2, 3, 4, 5, 6, 7, 8]));
    for (let i = 0; i < tokens; i++) {
      const t0 = performance.now();
      token = argmax(await model.decodeOne(seq, 7 + ((token * 31) % (vocab - 7))));
      ms.push(performance.now() - t0);
    }
  } finally {
    model.releaseSequence(seq);
  }
  return ms;
}

interface AllocResult {
  runtime: string;
  date: string;
  tokens: number;
  rows: { type: string; threads: number; step: number; generate: number }[];
}

function printAlloc(r: AllocResult, json: boolean): void {
  if (json) return console.log(JSON.stringify(r));
  const how = gcLogged ? "JavaScriptCore's GC log" : "V8's sampling heap profiler";
  console.log(`${r.runtime}, ${r.date}, stories110M synthetic, ${r.tokens} tokens: JS bytes allocated per token (${how})`);
  for (const x of r.rows) {
    const f = (v: number) => v.toFixed(0).padStart(7);
    console.log(`  ${x.type.padEnd(7)} ${x.threads} thread(s): decodeOne ${f(x.step)} B/token   generate() ${f(x.generate)} B/token`);
  }
}

const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / Math.max(1, a.length);
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[s.length >> 1];
};

const USAGE = `The JavaScript side of a decode step: bytes allocated per token, and the first tokens' latency after load.

  deno run -A bench/js-step.ts alloc|tierup [options]        bun bench/js-step.ts alloc|tierup [options]

  --types LIST     synthetic stories110M types (alloc default F32,Q8_0; tierup default F32,Q8_0,Q4_0,Q4_K_M)
  --threads LIST   alloc: thread counts (default 1,2); tierup: one count (default 1)
  --tokens N       steps measured (alloc default 256, tierup default 200)
  --no-warmup      tierup: load with { warmup: false } (the load-time kernel warm-up off)
  --json           one JSON line
  -h, --help       this text`;

if (import.meta.main) {
  const { values: opts, positionals } = benchArgs(USAGE, {
    options: {
      types: { type: "string" },
      threads: { type: "string" },
      tokens: { type: "string" },
      "no-warmup": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  const mode = positionals[0] ?? "alloc";
  const date = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC";
  if (mode === "alloc" && gcLogged && !g.process.env.BUN_JSC_logGC) {
    // measure in a child that logs its collections (see gcLogged), then print its rows with the log's figures
    const { spawnSync } = await import("node:child_process");
    const r = spawnSync(g.process.execPath, [...g.process.argv.slice(1), "--json"], {
      env: { ...g.process.env, BUN_JSC_logGC: "1" },
      encoding: "utf8",
      maxBuffer: 256 << 20,
    });
    if (r.status !== 0) throw new Error(`the measuring child failed (${r.status}): ${r.stderr.slice(-2000)}`);
    const result = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    const perWindow = windowsFromGCLog(r.stderr);
    result.rows.forEach((row: { step: number; generate: number }, i: number) => (row.step = perWindow[2 * i], row.generate = perWindow[2 * i + 1]));
    printAlloc(result, opts.json!);
  } else if (mode === "alloc") {
    const types = (opts.types ?? "F32,Q8_0").split(",");
    const threads = (opts.threads ?? "1,2").split(",").map(Number);
    const tokens = Number(opts.tokens ?? 256);
    const rows: { type: string; threads: number; step: number; generate: number }[] = [];
    for (const type of types) {
      const path = await ensureSyntheticModel("stories110M", type as SyntheticType);
      for (const t of threads) {
        const model = await loadModel(path, { contextLength: 1024, threads: t });
        try {
          rows.push({ type, threads: t, step: await stepAllocation(model, tokens), generate: await generateAllocation(model, tokens) });
        } finally {
          await model.close();
        }
      }
    }
    printAlloc({ runtime, date, tokens, rows }, opts.json!);
  } else if (mode === "tierup") {
    const types = (opts.types ?? "F32,Q8_0,Q4_0,Q4_K_M").split(",");
    const threads = Number(opts.threads ?? 1);
    const tokens = Number(opts.tokens ?? 200);
    const rows: Record<string, unknown>[] = [];
    for (const type of types) {
      const path = await ensureSyntheticModel("stories110M", type as SyntheticType);
      const t0 = performance.now();
      const model = await loadModel(path, { contextLength: 1024, threads, ...(opts["no-warmup"] ? { warmup: false } : {}) });
      const loadMs = performance.now() - t0;
      try {
        const ms = await firstTokens(model, tokens);
        const steady = median(ms.slice(-50));
        rows.push({
          type,
          loadMs,
          first: ms[0],
          "2-10": mean(ms.slice(1, 10)),
          "11-50": mean(ms.slice(10, 50)),
          "51-100": mean(ms.slice(50, 100)),
          "101-200": mean(ms.slice(100, 200)),
          steady,
          slowSteps: ms.filter((x) => x > 1.5 * steady).length,
          excessMs: ms.reduce((s, x) => s + Math.max(0, x - steady), 0),
        });
      } finally {
        await model.close();
      }
    }
    if (opts.json) console.log(JSON.stringify({ runtime, date, threads, tokens, warmup: !opts["no-warmup"], rows }));
    else {
      console.log(`${runtime}, ${date}, ${threads} thread(s), warm-up ${opts["no-warmup"] ? "off" : "on"}: decode step ms after load`);
      console.log("  type     load    first   2-10  11-50 51-100 101-200 steady  >1.5x steady  excess ms");
      for (const r of rows) {
        const f = (k: string) => (r[k] as number).toFixed(1).padStart(6);
        console.log(`  ${String(r.type).padEnd(7)}${f("loadMs")} ${f("first")} ${f("2-10")} ${f("11-50")} ${f("51-100")} ${f("101-200")} ${f("steady")} ${String(r.slowSteps).padStart(8)} ${f("excessMs")}`);
      }
    }
  } else {
    console.error(`unknown mode ${mode}\n\n${USAGE}`);
    g.Deno ? g.Deno.exit(2) : g.process.exit(2);
  }
}
