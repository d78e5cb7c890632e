/**
 * The fuzz campaign: seeded mutants of real model and tokenizer files (scripts/fuzz/mutate.ts),
 * each loaded in a child process (child.ts) under a watchdog, every outcome classified:
 *
 *   ran        loaded and generated a few tokens
 *   typed      a KvasmError (counted by code: format, unsupported, memory, numerical, ...)
 *   untyped    any other exception (a RangeError, a SyntaxError): a failure
 *   trap       a WebAssembly trap: a failure
 *   hang       no outcome within the watchdog (2 s): the child is killed, a failure
 *   crash      the child died mid-mutant (abort, out-of-memory kill): a failure
 *   memory     the child's resident memory grew during one mutant by more than
 *              MEMORY_MULTIPLE x the mutant's bytes + MEMORY_SLACK: a failure
 *
 * After a hang or a crash a new child resumes at the next mutant. Usage (npm run fuzz -- ...):
 *   deno run -A scripts/fuzz/run.ts [--runtime deno,bun] [--corpus gguf,...|all] [--seed 1]
 *     [--count 10000] [--seconds 900] [--batch 250] [--only INDEX] [--json report.json]
 * `--count` is per corpus, `--seconds` per runtime; a child runs one batch of every corpus per
 * round, so a campaign cut short by time has an even share of each. Exit code 1 on any failure.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { CORPORA, type Corpus } from "./mutate.ts";

export const WATCHDOG_MS = 2000;
/** Resident growth allowed during one mutant: this multiple of its file bytes, plus the slack below. */
export const MEMORY_MULTIPLE = 16;
export const MEMORY_SLACK = 64 << 20;
export const DEFAULT_SEED = 1;

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..", "..");

export type Runtime = "deno" | "bun";
export type OutcomeKind = "ran" | "typed" | "untyped" | "trap" | "hang" | "crash" | "memory";

export interface Outcome {
  corpus: Corpus;
  i: number;
  outcome: OutcomeKind;
  code?: string;
  what?: string;
  message?: string;
  stack?: string;
  bytes?: number;
  /** resident growth during this mutant, bytes */
  growth?: number;
}

export interface FuzzOptions {
  runtime: Runtime;
  corpora?: readonly Corpus[];
  seed?: number;
  /** mutants per corpus */
  count: number;
  /** stop starting batches after this many seconds (the running batch finishes) */
  seconds?: number;
  batch?: number;
  /** first mutant index (to rebuild one mutant: first = I, count = 1) */
  first?: number;
  shared?: string;
  onOutcome?: (o: Outcome) => void;
}

export interface CorpusSummary {
  mutants: number;
  outcomes: Record<string, number>; // "ran", "typed:format", "hang", ...
  /** largest resident growth of one mutant over its bytes */
  maxGrowthRatio: number;
  maxGrowthBytes: number;
}

export interface FuzzSummary {
  runtime: Runtime;
  seed: number;
  seconds: number;
  corpora: Partial<Record<Corpus, CorpusSummary>>;
  failures: Outcome[];
}

const FAILURES: OutcomeKind[] = ["untyped", "trap", "hang", "crash", "memory"];

export function sharedDir(): string {
  return path.resolve(REPO, "..", "shared");
}

function runtimeCommand(runtime: Runtime): [string, string[]] {
  const bin = path.join(REPO, "node_modules", ".bin", runtime);
  const child = path.join(HERE, "child.ts");
  return runtime === "deno" ? [bin, ["run", "-A", "--no-check", child]] : [bin, [child]];
}

/** Resident set size of a process from /proc (Linux); undefined elsewhere. */
function residentBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface Job {
  corpus: Corpus;
  start: number;
  count: number;
}

/**
 * Runs jobs in one child; resolves with the index reached per job when the child ends (done,
 * killed after a hang, or crashed), so the caller can resume after the mutant that stopped it.
 */
function runChild(
  runtime: Runtime,
  seed: number,
  shared: string,
  tmp: string,
  jobs: Job[],
  record: (o: Outcome) => void,
): Promise<Map<Corpus, number>> {
  const [cmd, args] = runtimeCommand(runtime);
  const child = spawn(cmd, [...args, String(seed), shared, tmp, ...jobs.map((j) => `${j.corpus}:${j.start}:${j.count}`)], {
    stdio: ["ignore", "pipe", "pipe"],
    cwd: REPO,
  });
  const reached = new Map<Corpus, number>(jobs.map((j) => [j.corpus, j.start]));
  let current: { corpus: Corpus; i: number; what: string; bytes: number; rssAtStart: number; peak: number } | null = null;
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  let hung = false;
  let stderr = "";
  let buffered = "";

  const poll = setInterval(() => {
    if (!current || child.pid === undefined) return;
    const rss = residentBytes(child.pid);
    if (rss !== undefined && rss > current.peak) current.peak = rss;
  }, 20);

  const onLine = (line: string) => {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line);
    } catch {
      return; // a runtime's own chatter
    }
    if (o.start) {
      const rss = Number(o.rss);
      current = { corpus: o.corpus as Corpus, i: Number(o.i), what: "(not built yet)", bytes: 0, rssAtStart: rss, peak: rss };
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        hung = true;
        child.kill("SIGKILL");
      }, WATCHDOG_MS);
    } else if (o.mutant && current) {
      current.what = String(o.what);
      current.bytes = Number(o.bytes);
    } else if (o.outcome && current) {
      clearTimeout(watchdog);
      const peak = Math.max(current.peak, Number(o.rss));
      const growth = Math.max(0, peak - current.rssAtStart);
      const out: Outcome = {
        corpus: current.corpus,
        i: current.i,
        outcome: o.outcome as OutcomeKind,
        what: current.what,
        bytes: current.bytes,
        growth,
      };
      if (o.code) out.code = String(o.code);
      if (o.outcome !== "ran" && o.outcome !== "typed") {
        out.message = `${o.name ? `${o.name}: ` : ""}${o.message}`;
        out.stack = o.stack as string;
      }
      if (out.outcome !== "untyped" && out.outcome !== "trap" && growth > MEMORY_MULTIPLE * current.bytes + MEMORY_SLACK) {
        out.outcome = "memory";
        out.message = `resident memory grew ${(growth / 2 ** 20).toFixed(0)} MiB for ${(current.bytes / 2 ** 20).toFixed(2)} MiB of files`;
      }
      record(out);
      reached.set(current.corpus, current.i + 1);
      current = null;
    }
  };

  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });

  return new Promise((resolve) => {
    child.on("close", (code, signal) => {
      clearInterval(poll);
      clearTimeout(watchdog);
      if (current) {
        // the mutant in progress never reported: it hung (we killed it) or took the process down
        record({
          corpus: current.corpus,
          i: current.i,
          outcome: hung ? "hang" : "crash",
          what: current.what,
          bytes: current.bytes,
          growth: Math.max(0, current.peak - current.rssAtStart),
          message: hung ? `no outcome within ${WATCHDOG_MS} ms` : `child exited (${signal ?? code}): ${stderr.slice(-1500)}`,
        });
        reached.set(current.corpus, current.i + 1);
      } else if (code !== 0) {
        // died outside a mutant (warm-up on the base files, startup): report it rather than loop
        const j = jobs.find((j) => (reached.get(j.corpus) ?? j.start) < j.start + j.count) ?? jobs[0];
        record({
          corpus: j.corpus,
          i: -1,
          outcome: "crash",
          message: `child exited (${signal ?? code}) outside a mutant: ${stderr.slice(-1500)}`,
        });
        for (const jj of jobs) reached.set(jj.corpus, jj.start + jj.count);
      }
      resolve(reached);
    });
  });
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzSummary> {
  const seed = opts.seed ?? DEFAULT_SEED;
  const corpora = opts.corpora ?? CORPORA;
  const batch = opts.batch ?? 250;
  const shared = opts.shared ?? sharedDir();
  const first = opts.first ?? 0;
  const t0 = Date.now();
  const deadline = opts.seconds === undefined ? Infinity : t0 + opts.seconds * 1000;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-fuzz-"));
  const summary: FuzzSummary = { runtime: opts.runtime, seed, seconds: 0, corpora: {}, failures: [] };
  for (const c of corpora) summary.corpora[c] = { mutants: 0, outcomes: {}, maxGrowthRatio: 0, maxGrowthBytes: 0 };
  const record = (o: Outcome) => {
    const s = summary.corpora[o.corpus]!;
    if (o.i >= 0) s.mutants++;
    const key = o.outcome === "typed" ? `typed:${o.code}` : o.outcome;
    s.outcomes[key] = (s.outcomes[key] ?? 0) + 1;
    if (o.growth !== undefined && o.bytes) {
      s.maxGrowthBytes = Math.max(s.maxGrowthBytes, o.growth);
      s.maxGrowthRatio = Math.max(s.maxGrowthRatio, o.growth / o.bytes);
    }
    if (FAILURES.includes(o.outcome)) summary.failures.push(o);
    opts.onOutcome?.(o);
  };
  try {
    const next = new Map<Corpus, number>(corpora.map((c) => [c, first]));
    const end = first + opts.count;
    // a round is one batch of every corpus, in one child (one start-up); after a hang or a
    // crash, a new child takes the rest of the round from the mutant after the one that stopped it
    while (Date.now() < deadline) {
      const pending = corpora.filter((c) => next.get(c)! < end);
      if (pending.length === 0) break;
      const roundEnd = new Map(pending.map((c) => [c, Math.min(next.get(c)! + batch, end)]));
      for (;;) {
        const jobs = pending.filter((c) => next.get(c)! < roundEnd.get(c)!).map((c) => ({
          corpus: c,
          start: next.get(c)!,
          count: roundEnd.get(c)! - next.get(c)!,
        }));
        if (jobs.length === 0) break;
        const reached = await runChild(opts.runtime, seed, shared, tmp, jobs, record);
        for (const [c, i] of reached) next.set(c, i);
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  summary.seconds = (Date.now() - t0) / 1000;
  return summary;
}

export function formatSummary(s: FuzzSummary): string {
  const lines = [
    `${s.runtime}: seed ${s.seed}, ${s.seconds.toFixed(0)} s, failures: ${s.failures.length} ` +
    `(watchdog ${WATCHDOG_MS} ms; memory bound per mutant ${MEMORY_MULTIPLE} x its file bytes + ${MEMORY_SLACK / 2 ** 20} MiB)`,
  ];
  for (const [c, v] of Object.entries(s.corpora)) {
    const outcomes = Object.entries(v!.outcomes).sort().map(([k, n]) => `${k} ${n}`).join(", ");
    lines.push(
      `  ${c.padEnd(15)} ${String(v!.mutants).padStart(6)} mutants: ${outcomes}; largest growth of one mutant ${
        (v!.maxGrowthBytes / 2 ** 20).toFixed(1)
      } MiB`,
    );
  }
  for (const f of s.failures.slice(0, 20)) {
    lines.push(`  FAIL ${f.outcome} ${f.corpus} #${f.i} (${f.what}): ${f.message}${f.stack ? `\n${f.stack}` : ""}`);
  }
  return lines.join("\n");
}

if (
  import.meta.main ??
    (typeof process !== "undefined" && process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]))
) {
  const { values: opt } = parseArgs({
    args: process.argv.slice(2),
    options: {
      runtime: { type: "string", default: "deno,bun" },
      corpus: { type: "string", default: "all" },
      seed: { type: "string", default: String(DEFAULT_SEED) },
      count: { type: "string", default: "10000" },
      seconds: { type: "string" },
      batch: { type: "string", default: "250" },
      only: { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (opt.help) {
    console.log(`Usage: deno run -A scripts/fuzz/run.ts [options]   (npm run fuzz -- [options])
Loads seeded mutants of real model and tokenizer files, each in a child process under a watchdog, and
classifies every outcome (ran, typed error; failures: untyped error, trap, hang, crash, memory growth).
  --runtime LIST   deno,bun (default both)
  --corpus LIST    ${CORPORA.join(",")} or all (default all)
  --seed N         mutation seed (default ${DEFAULT_SEED})
  --count N        mutants per corpus (default 10000)
  --seconds S      stop starting batches after S seconds per runtime
  --batch N        mutants per corpus a child runs per round (default 250)
  --only INDEX     rebuild and run one mutant, printing its outcome
  --json FILE      write the summaries as JSON
Exit code 1 on any failure.`);
    process.exit(0);
  }
  /** A flag's value as a non-negative integer, or a clear error naming the flag. */
  const whole = (name: string, v: string) => {
    const n = Number(v);
    if (Number.isInteger(n) && n >= 0) return n;
    console.error(`--${name}: expected a non-negative integer, got "${v}" (see --help)`);
    process.exit(2);
  };
  const corpora = opt.corpus === "all" ? CORPORA : opt.corpus.split(",") as Corpus[];
  for (const c of corpora) if (!CORPORA.includes(c)) throw new Error(`--corpus: "${c}" is not one of ${CORPORA.join(", ")}`);
  const only = opt.only === undefined ? undefined : whole("only", opt.only);
  const runtimes = opt.runtime.split(",") as Runtime[];
  for (const r of runtimes) if (r !== "deno" && r !== "bun") throw new Error(`--runtime: "${r}" is not deno or bun`);
  let failed = false;
  const report: FuzzSummary[] = [];
  for (const runtime of runtimes) {
    const s = await fuzz({
      runtime,
      corpora,
      seed: whole("seed", opt.seed),
      count: only !== undefined ? 1 : whole("count", opt.count),
      first: only ?? 0,
      seconds: opt.seconds === undefined ? undefined : whole("seconds", opt.seconds),
      batch: Math.max(1, whole("batch", opt.batch)),
      onOutcome: only !== undefined ? (o) => console.log(JSON.stringify(o)) : undefined,
    });
    console.log(formatSummary(s));
    report.push(s);
    if (s.failures.length > 0) failed = true;
  }
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(report, null, 1));
  process.exit(failed ? 1 : 0);
}
