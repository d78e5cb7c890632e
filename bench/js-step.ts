/**
 * The JavaScript side of a decode step (issue #16) in two questions of its own: what a step allocates on the JS heap,
 * and how the first tokens after load run while the engine's JIT tiers the kernels up. How long a steady-state step
 * spends outside its kernels (the step against the same step with no-op kernels, alternated) is
 * bench/step-overhead.ts's question, not this one's: tierup's steady column is only where the first steps settle.
 *
 *   deno run -A bench/js-step.ts alloc  [--types F32,Q8_0] [--threads 1,2] [--tokens 256]
 *   bun bench/js-step.ts alloc ...
 *   deno run -A bench/js-step.ts tierup [--types F32,Q8_0,Q4_0,Q4_K_M] [--tokens 200]
 *
 * alloc: bytes allocated on the JS heap per decoded token (Deno: V8's sampling heap profiler; Bun: JavaScriptCore's
 * GC log; see tests/js-alloc.ts), over `--tokens` Model.decodeOne steps after 200 warm ones, then through
 * model.generate() (greedy, text and events included), then through the engine's scheduler (four greedy requests
 * batched, output included), in a child per type and thread count
 * (tests/js-step-alloc-child.ts, the measuring child of tests/js-step-alloc.test.ts).
 * tierup: each of the first `--tokens` decode steps' latency right after load (one 8-id prefill first), one fresh
 * load per type; the first step, the mean over steps 2-10, 11-50, 51-100, 101-200, and the steady state (median of
 * the last 50). The models are bench/synthetic.ts's stories110M files.
 */
import { measureInChild } from "../tests/js-alloc.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { benchArgs, choiceFlag, intFlag, intListFlag, listFlag, median, runtime, usageError } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

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
  rows: { type: string; threads: number; step: number; generate: number; engine: number }[];
}

function printAlloc(r: AllocResult, json: boolean): void {
  if (json) return console.log(JSON.stringify(r));
  const how = g.Bun ? "JavaScriptCore's GC log" : "V8's sampling heap profiler";
  console.log(`${r.runtime}, ${r.date}, stories110M synthetic, ${r.tokens} tokens: JS bytes allocated per token (${how})`);
  for (const x of r.rows) {
    const f = (v: number) => v.toFixed(0).padStart(7);
    console.log(
      `  ${x.type.padEnd(7)} ${x.threads} thread(s): decodeOne ${f(x.step)} B/token   generate() ${
        f(x.generate)
      } B/token   engine (4 requests) ${f(x.engine)} B/token`,
    );
  }
}

const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / Math.max(1, a.length);

const USAGE = `The JavaScript side of a decode step: bytes allocated per token, and the first tokens' latency after load
(the time a steady step spends outside its kernels: bench/step-overhead.ts).

  deno run -A bench/js-step.ts [MODE] [options]        bun bench/js-step.ts [MODE] [options]

  MODE             alloc (default): JS heap bytes a token, decodeOne, generate() and the engine, a child process each;
                   tierup: each of the first steps' latency after a fresh load

  --types LIST     synthetic stories110M types (alloc default F32,Q8_0; tierup default F32,Q8_0,Q4_0,Q4_K_M)
  --threads LIST   alloc: thread counts (default 1,2); tierup: one count (default 1)
  --tokens N       steps measured (alloc default 256, tierup default 200)
  --json           one JSON line
  -h, --help       this text`;

if (import.meta.main) {
  const { values: opts, positionals } = benchArgs(USAGE, {
    options: {
      types: { type: "string" },
      threads: { type: "string" },
      tokens: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  const mode = choiceFlag(USAGE, "MODE", positionals[0] ?? "alloc", ["alloc", "tierup"]);
  if (positionals.length > 1) usageError(`one MODE, got ${positionals.join(" ")}`, USAGE);
  const alloc = mode === "alloc";
  const types = listFlag(USAGE, "types", opts.types ?? (alloc ? "F32,Q8_0" : "F32,Q8_0,Q4_0,Q4_K_M"), SYNTHETIC_TYPES);
  // tierup: one 8-id prefill, then the steps, in a context of 1024
  const tokens = intFlag(USAGE, "tokens", opts.tokens ?? (alloc ? "256" : "200"), 1, alloc ? Number.MAX_SAFE_INTEGER : 1024 - 8);
  const threadList = alloc ? intListFlag(USAGE, "threads", opts.threads ?? "1,2") : [intFlag(USAGE, "threads", opts.threads ?? "1")];
  const date = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC";
  if (alloc) {
    const child = new URL("../tests/js-step-alloc-child.ts", import.meta.url).pathname;
    const rows: AllocResult["rows"] = [];
    for (const type of types) {
      const path = await ensureSyntheticModel("stories110M", type);
      for (const t of threadList) {
        const r = measureInChild<{ windows: number[]; tokens: number; generated: number; engineTokens: number }>(child, [
          path,
          String(t),
          String(tokens),
        ]);
        rows.push({
          type,
          threads: t,
          step: r.windows[0] / r.tokens,
          generate: r.windows[1] / r.generated,
          engine: r.windows[2] / r.engineTokens,
        });
      }
    }
    printAlloc({ runtime, date, tokens, rows }, opts.json!);
  } else {
    const threads = threadList[0];
    const rows: Record<string, unknown>[] = [];
    for (const type of types) {
      const path = await ensureSyntheticModel("stories110M", type);
      const t0 = performance.now();
      const model = await loadModel(path, { contextLength: 1024, threads });
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
    if (opts.json) console.log(JSON.stringify({ runtime, date, threads, tokens, rows }));
    else {
      console.log(`${runtime}, ${date}, ${threads} thread(s): decode step ms after load (one 8-id prefill first)`);
      console.log("  type     load    first   2-10  11-50 51-100 101-200 steady  >1.5x steady  excess ms");
      for (const r of rows) {
        const f = (k: string) => (r[k] as number).toFixed(1).padStart(6);
        console.log(
          `  ${String(r.type).padEnd(7)}${f("loadMs")} ${f("first")} ${f("2-10")} ${f("11-50")} ${f("51-100")} ${f("101-200")} ${
            f("steady")
          } ${String(r.slowSteps).padStart(8)} ${f("excessMs")}`,
        );
      }
    }
  }
}
