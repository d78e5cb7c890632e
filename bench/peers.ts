/**
 * kvasm against its peers, side by side in one run: native llama.cpp (node-llama-cpp 3.22.1's prebuilt CPU
 * build) and wllama 3.13 (llama.cpp compiled to wasm), on the same synthetic stories110M-shaped GGUF files
 * (bench/synthetic.ts: kvasm's own writer and quantizer), 1 thread, prefill of 128 ids (--prompt) then 48 greedy decode
 * steps, one process per measurement. Prints tok/s and the ratios kvasm / llama.cpp and kvasm / wllama, and
 * kvasm's two-thread prefill over its one-thread prefill. Absolute tok/s differ from host to host; the ratios,
 * measured in the same run with the engines interleaved, are what to compare. Each kvasm and llama.cpp process
 * runs --prefills prefills (default 5) and reports its best (bench/peers-llamacpp.mjs: ../shared/peers/llamacpp.mjs
 * with that loop): one prefill per process was a single sample of the host's noise, and its first prefill pays
 * one-time costs in both engines.
 *
 *   deno run -A bench/peers.ts [--types F32,Q8_0,Q4_0,Q4_K_M] [--rounds 3] [--prefills 5] [--kv f32|f16] [--median] [--prompt N]
 *                              [--no-wllama] [--no-bun] [--no-threads] [--cpu N]
 *   npm run bench -- --peers ...                 (the same)
 *   deno run -A bench/peers.ts --profile [--types ...]     decode (and prefill) time per token by op class
 *   deno run -A bench/peers.ts --help
 *
 * The peers install on first use into bench/peers-install/ (git-ignored, never a dependency of kvasm), with
 * the harnesses of ../shared/peers (llamacpp.mjs, wllama.ts) copied beside them; see ../shared/peers/README.md.
 */
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { OpProfile } from "../src/backends/op-profile.ts";
import type { KVType } from "../src/backends/backend.ts";
import { benchArgs, choiceFlag, intFlag, listFlag, median } from "./cli.ts";
import { readBandwidth } from "./e2e.ts";
import { GGMLType, rowBytes } from "../src/formats/ggml-types.ts";
import { schedDelta, taskTimes } from "./sched.ts";
import { noopWasmKernels } from "./noop-kernels.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const here = new URL(".", import.meta.url).pathname;
const PEERS_DIR = here + "peers-install/";
const SHARED_PEERS = new URL("../../shared/peers/", import.meta.url).pathname;
const bin = (name: string) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
const N_DECODE = 48;
/** Prompt ids (--prompt; 128 by default): set from the command line before anything measures. */
let N_PROMPT = 128;
/** The context every engine gets: the prompt and the decode steps, at least the 512 of ../shared/peers/llamacpp.mjs. */
const contextFor = (nPrompt: number) => Math.max(512, nPrompt + N_DECODE + 16);

/** The prompt of ../shared/peers/llamacpp.mjs: BOS, then ids from the same LCG. */
function promptIds(): number[] {
  let s = 12345;
  const ids = [1];
  while (ids.length < N_PROMPT) {
    s = (s * 1103515245 + 12345) >>> 0; // the same float arithmetic as llamacpp.mjs
    ids.push(3 + (s % 31990));
  }
  return ids;
}

interface Measured {
  engine: string;
  /** kvasm: its KV cache's element type (--kv); llama.cpp and wllama keep theirs in F16, their default. */
  kv?: KVType;
  /** The best of prefillRuns (kvasm and peers-llamacpp.mjs alike; wllama's harness measures one). */
  prefillTps: number;
  /** Every prefill of the process in order, tok/s (the first is the process's first prefill of the 128 ids). */
  prefillRuns?: number[];
  /**
   * kvasm, per prefill (Linux): [ms the pool's threads sat runnable without a CPU, ms the process's other threads ran]
   * (bench/sched.ts): where a two-thread prefill lost time to descheduling.
   */
  prefillSched?: [number, number][];
  decodeTps: number;
  threads: number;
  profile?: ProfileReport;
}

interface ProfileReport {
  /** µs per token by op key, decode (one row) and prefill (per prompt token) */
  decode: Record<string, number>;
  prefill: Record<string, number>;
  /** Bytes a decode token reads, by op key where known: each matmul's weight, attention's K and V. */
  decodeBytes: Record<string, number>;
  /** read_probe over the model's weights in the same process, after the measurement (bench/e2e.ts readBandwidth), GB/s. */
  readGBs: number;
}

/**
 * One kvasm measurement in this process, as bench/peers-llamacpp.mjs measures llama.cpp: a warm-up (compile tiers,
 * touch pages; llama.cpp needs none), `prefills` prefills of the 128 ids, each on a new sequence (the last one's
 * kept), then 48 steps each feeding the last step's argmax, starting from ids[5]. With a profile, only the last
 * prefill is profiled.
 */
async function measureKvasm(path: string, threads: number, profile: boolean, prefills = 1, kv: KVType = "f32"): Promise<Measured> {
  const model = await loadModel(path, { contextLength: contextFor(N_PROMPT), threads, kvCacheType: kv });
  try {
    const ids = promptIds();
    let seq = model.newSequence();
    await model.prefill(seq, ids.slice(0, 16));
    for (let i = 0; i < 4; i++) await model.decodeOne(seq, 400 + i);
    model.releaseSequence(seq);

    const prof = profile ? new OpProfile() : null;
    const backend = model.backend instanceof WasmBackend ? model.backend : null;
    if (prof && (!backend || threads !== 1)) throw new Error("--profile needs the one-thread WASM backend");
    const prefillRuns: number[] = [];
    let prefillSched: [number, number][] | undefined;
    let t0 = 0, prefillMs = 0;
    let logits!: Float32Array;
    for (let r = 0; r < prefills; r++) {
      if (r > 0) model.releaseSequence(seq);
      seq = model.newSequence();
      if (backend && r === prefills - 1) backend.profile = prof;
      const before = taskTimes();
      t0 = performance.now();
      logits = await model.prefill(seq, ids);
      prefillMs = performance.now() - t0;
      prefillRuns.push(N_PROMPT / (prefillMs / 1000));
      const sched = schedDelta(before, taskTimes(), threads);
      if (sched) (prefillSched ??= []).push([+sched.waitMs.toFixed(2), +sched.otherCpuMs.toFixed(2)]);
    }
    const prefillProfile = prof ? perToken(prof, prefillMs, N_PROMPT) : undefined;
    prof?.reset();
    let token = ids[5];
    const decodeFrom = seq.length;
    t0 = performance.now();
    for (let i = 0; i < N_DECODE; i++) {
      logits = await model.decodeOne(seq, token);
      token = argmax(logits);
    }
    const decodeMs = performance.now() - t0;
    if (backend) backend.profile = null;
    // the profile's own clock reads and bookkeeping are most of the wall time its ops leave (bench/step-overhead.ts):
    // the same steps with every kernel a no-op wasm function measure what a step costs outside its kernels instead
    let outsideMs: number | undefined;
    if (prof && backend) {
      const real = backend.kernels;
      backend.kernels = noopWasmKernels();
      // at the positions just decoded (their pages reserved: a new page's first use would be timed), after a warm-up
      // pass (the kernels' call sites see new targets, which JavaScriptCore recompiles for over a few dozen steps)
      seq.length = decodeFrom;
      for (let i = 0; i < 32; i++) token = argmax(await model.decodeOne(seq, token));
      seq.length = decodeFrom;
      const t1 = performance.now();
      for (let i = 0; i < N_DECODE; i++) token = argmax(await model.decodeOne(seq, token));
      outsideMs = performance.now() - t1;
      backend.kernels = real;
    }
    const decodeProfile = prof ? perToken(prof, decodeMs, N_DECODE, outsideMs) : undefined;
    let decodeBytes: Record<string, number> = {}, readGBs = 0;
    if (prof) {
      // the 48 steps attend to positions [0, N_PROMPT + i], i = 0..47: K and V of every layer
      const c = model.config, elt = kv === "f16" ? 2 : 4;
      const positions = N_DECODE * (N_PROMPT + 1) + (N_DECODE * (N_DECODE - 1)) / 2;
      decodeBytes = { ...matmulBytes(prof, N_DECODE), attention: (positions / N_DECODE) * c.kvDim * elt * 2 * c.nLayers };
      readGBs = readBandwidth(model);
    }
    model.releaseSequence(seq);
    return {
      engine: "kvasm",
      kv,
      threads,
      prefillTps: Math.max(...prefillRuns),
      prefillRuns,
      prefillSched,
      decodeTps: N_DECODE / (decodeMs / 1000),
      profile: prof ? { decode: decodeProfile!, prefill: prefillProfile!, decodeBytes, readGBs } : undefined,
    };
  } finally {
    await model.close();
  }
}

/**
 * Weight bytes a token reads by matmul key: the key's weight ("matmul Q6_K 32000x768 (...)": rows x cols of that
 * type) times its calls a token (every layer's weights of one type and shape share a key).
 */
function matmulBytes(prof: OpProfile, tokens: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, e] of prof.totals) {
    const m = /^matmul (\w+) (\d+)x(\d+)/.exec(k);
    const type = m ? (GGMLType as Record<string, number>)[m[1]] : undefined;
    const row = type === undefined ? undefined : rowBytes(type, Number(m![3]));
    if (row !== undefined) out[k] = (Number(m![2]) * row * e.calls) / tokens;
  }
  return out;
}

/**
 * µs per token by op key. "JS between calls": with `outsideMs` (decode), the same steps' wall time with every kernel
 * a no-op (the forward pass's and the backend's JavaScript, the calls into wasm, the logits read, the argmax), and
 * "(profiler, unaccounted)" the wall time left after the ops, that and the timers' estimate: the profiler's own
 * bookkeeping, mostly. Without it (prefill), "JS between calls" is that whole remainder, as every profile before
 * 2026-12-05 18:00 UTC booked it (5-8% of a quantized decode step where the step's JavaScript is 1%).
 */
function perToken(prof: OpProfile, wallMs: number, tokens: number, outsideMs?: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, e] of prof.totals) out[k] = (1000 * e.ms) / tokens;
  const { ms, calls } = prof.sum();
  const timers = calls * prof.timerCost();
  const left = Math.max(0, wallMs - ms - timers);
  if (outsideMs === undefined) out["JS between calls"] = (1000 * left) / tokens;
  else {
    out["JS between calls"] = (1000 * outsideMs) / tokens;
    out["(profiler, unaccounted)"] = (1000 * Math.max(0, left - outsideMs)) / tokens;
  }
  out["(profiler timers)"] = (1000 * timers) / tokens;
  out["(wall)"] = (1000 * wallMs) / tokens;
  return out;
}

// ------------------------------------------------------------------ orchestration (one process per measurement)

async function sh(cmd: string, argv: string[], cwd?: string): Promise<{ status: number; stdout: string; stderr: string }> {
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(cmd, argv, { cwd, encoding: "utf8", maxBuffer: 64 << 20, timeout: 30 * 60_000 });
  return { status: r.status ?? 1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** The last JSON line a child printed, or undefined (with its stderr shown) when it failed. */
async function child(label: string, cmd: string, argv: string[], cwd?: string): Promise<Measured | undefined> {
  const r = await sh(cmd, argv, cwd);
  const line = r.stdout.trim().split("\n").reverse().find((l) => l.startsWith("{"));
  if (r.status !== 0 || !line) {
    console.error(`${label}: failed (exit ${r.status})\n${r.stderr.trim().split("\n").slice(-8).join("\n")}`);
    return undefined;
  }
  return JSON.parse(line) as Measured;
}

/** Installs the peers into bench/peers-install/ on first use; returns which are there. */
export async function ensurePeers(wantWllama: boolean): Promise<{ llamacpp: boolean; wllama: boolean }> {
  const fs = await import("node:fs");
  if (!fs.existsSync(SHARED_PEERS + "llamacpp.mjs")) {
    console.error(`no peer harnesses at ${SHARED_PEERS} (../shared/peers beside the project): measuring kvasm alone`);
    return { llamacpp: false, wllama: false };
  }
  fs.mkdirSync(PEERS_DIR + "wllama", { recursive: true });
  fs.copyFileSync(SHARED_PEERS + "llamacpp.mjs", PEERS_DIR + "llamacpp.mjs");
  // the shared harness, measuring several prefills per process as kvasm's child does (see the file)
  fs.copyFileSync(here + "peers-llamacpp.mjs", PEERS_DIR + "peers-llamacpp.mjs");
  // wllama takes only text: its harness prompts BOS + "the" x 127, which the synthetic vocabulary spells in
  // several tokens each; "a" is one token there ("▁a"), so the mirror differs from the original in that word
  const wl = fs.readFileSync(SHARED_PEERS + "wllama.ts", "utf8");
  if (!wl.includes(".fill('the')")) console.error("../shared/peers/wllama.ts changed: its prompt word is not replaced");
  fs.writeFileSync(PEERS_DIR + "wllama.ts", wl.replace(".fill('the')", ".fill('a')"));
  const npm = async (dir: string, pkg: string) => {
    if (!fs.existsSync(dir + "package.json")) fs.writeFileSync(dir + "package.json", '{ "private": true }\n');
    console.error(`installing ${pkg} into ${dir} ...`);
    const r = await sh("npm", ["install", "--no-audit", "--no-fund", "--no-save", pkg], dir);
    if (r.status !== 0) console.error(r.stderr.trim().split("\n").slice(-5).join("\n"));
  };
  if (!fs.existsSync(PEERS_DIR + "node_modules/node-llama-cpp/package.json")) await npm(PEERS_DIR, "node-llama-cpp@3.22.1");
  const wllamaPath = PEERS_DIR + "wllama/node_modules/@wllama/wllama/package.json";
  if (wantWllama && !fs.existsSync(wllamaPath)) await npm(PEERS_DIR + "wllama/", "@wllama/wllama@3.13.0");
  return {
    llamacpp: fs.existsSync(PEERS_DIR + "node_modules/node-llama-cpp/package.json"),
    wllama: wantWllama && fs.existsSync(wllamaPath),
  };
}

/**
 * --cpu N: every one-thread process (kvasm, llama.cpp, wllama) runs under `taskset -c N`. On these 2-vCPU VMs one
 * vCPU at times runs the same cache-resident kernel 1.6x slower than the other (72 against 43 µs, pinned, within
 * 20 s), so a round whose engines land on different vCPUs compares the vCPUs, not the engines; pinned, they share
 * one. Two-thread runs stay unpinned (they need both), so their ratio to a pinned one-thread run reads low when
 * the other vCPU is the slow one. Pinned, a JavaScript runtime's own compiler and collector threads share the vCPU
 * with kvasm's kernels (llama.cpp has none): on a quiet host (2026-12-05 10:48 and 10:56 UTC) kvasm's quantized decode
 * read 0.83-0.92x its unpinned rate while llama.cpp's moved 0.97-1.05x, so a pinned run is a second view, not the fairer one.
 */
async function pinTo(cpu: string | undefined): Promise<(cmd: string, argv: string[]) => [string, string[]]> {
  if (cpu === undefined) return (cmd, argv) => [cmd, argv];
  if (!/^\d+$/.test(cpu)) throw new Error(`--cpu: a CPU number (as taskset -c takes it), got ${cpu}`);
  const probe = await sh("taskset", ["-c", cpu, "true"]);
  if (probe.status !== 0) throw new Error(`--cpu ${cpu}: taskset -c ${cpu} failed (${probe.stderr.trim() || "no taskset?"}); Linux only`);
  return (cmd, argv) => ["taskset", ["-c", cpu, cmd, ...argv]];
}

const fmt = (x: number | undefined, d = 1) => (x === undefined ? "-" : x.toFixed(d));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? "-" : (a / b).toFixed(2) + "x");
/**
 * The best of the rounds: on a machine shared with other work, load only ever slows a run down, so each
 * engine's fastest run is the closest to its unloaded speed (--median: the median instead).
 */
function pickOf(useMedian: boolean): (xs: number[]) => number | undefined {
  return (xs) => {
    if (xs.length === 0) return undefined;
    return useMedian ? median(xs) : Math.max(...xs);
  };
}

async function orchestrate(opts: CommandLine): Promise<void> {
  // every flag before anything installs or runs
  const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
  const rounds = intFlag(USAGE, "rounds", opts.rounds);
  const useMedian = opts.median, pick = pickOf(useMedian);
  const withBun = !opts["no-bun"];
  const withThreads = !opts["no-threads"];
  const kvType = kvTypeOf(opts.kv);
  const prefills = intFlag(USAGE, "prefills", opts.prefills);
  if (opts.cpu !== undefined) intFlag(USAGE, "cpu", opts.cpu, 0);
  if (N_PROMPT !== 128 && !opts["no-wllama"]) console.error(`--prompt ${N_PROMPT}: wllama's harness prompts 128 words; wllama is left out`);
  const peers = await ensurePeers(!opts["no-wllama"] && N_PROMPT === 128);
  const pin = await pinTo(opts.cpu);
  const kvasm = (runtime: "deno" | "bun", path: string, threads: number) => {
    const [cmd, argv] = kvasmCommand(runtime, [
      path,
      String(threads),
      "--prefills",
      String(prefills),
      "--kv",
      kvType,
      "--prompt",
      String(N_PROMPT),
    ]);
    return child(`kvasm ${runtime} ${threads}t`, ...(threads === 1 ? pin(cmd, argv) : [cmd, argv] as const));
  };

  const started = new Date().toISOString();
  const rows: Array<{ type: string; runs: Record<string, Measured[]> }> = [];
  for (const type of types) {
    const path = await ensureSyntheticModel("stories110M", type);
    const runs: Record<string, Measured[]> = {};
    const push = (k: string, m: Measured | undefined) => m && (runs[k] ??= []).push(m);
    for (let r = 0; r < rounds; r++) {
      // interleaved, so that load from other processes falls on every engine alike
      push("deno", await kvasm("deno", path, 1));
      if (peers.llamacpp) {
        push(
          "llama.cpp",
          await child(
            "llama.cpp",
            ...pin("node", [PEERS_DIR + "peers-llamacpp.mjs", path, String(N_PROMPT), String(N_DECODE), "1", String(prefills)]),
            PEERS_DIR,
          ),
        );
      }
      if (withBun) push("bun", await kvasm("bun", path, 1));
      if (withThreads) push("deno 2t", await kvasm("deno", path, 2));
      if (withThreads && withBun) push("bun 2t", await kvasm("bun", path, 2));
    }
    if (peers.wllama && N_PROMPT === 128) {
      push(
        "wllama",
        await child("wllama", ...pin(bin("deno"), ["run", "-A", PEERS_DIR + "wllama.ts", path, "1", "1", "--warmup=0"]), PEERS_DIR),
      );
    }
    rows.push({ type, runs });
    console.error(
      `${type}, kvasm's KV cache ${kvType}: ${
        JSON.stringify(Object.fromEntries(
          Object.entries(runs).map(([k, v]) => [
            k,
            v.map((m) => [
              +m.decodeTps.toFixed(1),
              (m.prefillRuns ?? [m.prefillTps]).map((x) => +x.toFixed(1)),
              ...(m.prefillSched ? [m.prefillSched] : []),
            ]),
          ]),
        ))
      }`,
    );
  }

  // --median: each process's median prefill too (its best otherwise, as the harnesses report it)
  const one = (m: Measured, f: "decodeTps" | "prefillTps") =>
    f === "prefillTps" && useMedian && m.prefillRuns ? pick(m.prefillRuns)! : m[f];
  const med = (runs: Record<string, Measured[]>, k: string, f: "decodeTps" | "prefillTps") => pick((runs[k] ?? []).map((m) => one(m, f)));
  console.log(
    `\nstories110M shape, synthetic weights, prefill ${N_PROMPT} ids + ${N_DECODE} greedy steps, 1 thread unless marked; ` +
      `${useMedian ? "medians" : "best"} of ${rounds} interleaved round(s), prefill: each process's best of ${prefills} ` +
      `(kvasm and llama.cpp alike; wllama one); kvasm's KV cache ${kvType} (llama.cpp's and wllama's: F16)${
        opts.cpu === undefined ? "" : `; one-thread runs pinned to CPU ${opts.cpu}`
      }; started ${started}`,
  );
  console.log(
    "| type | engine | decode tok/s | prefill tok/s | decode / llama.cpp | prefill / llama.cpp | decode / wllama | prefill / wllama | prefill 2 threads / 1 |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const { type, runs } of rows) {
    const lD = med(runs, "llama.cpp", "decodeTps"), lP = med(runs, "llama.cpp", "prefillTps");
    const wD = med(runs, "wllama", "decodeTps"), wP = med(runs, "wllama", "prefillTps");
    for (const rt of ["deno", "bun"]) {
      if (!runs[rt]) continue;
      const d = med(runs, rt, "decodeTps"), p = med(runs, rt, "prefillTps");
      const p2 = med(runs, rt + " 2t", "prefillTps");
      console.log(
        `| ${type} | kvasm ${rt} | ${fmt(d)} | ${fmt(p)} | ${ratio(d, lD)} | ${ratio(p, lP)} | ${ratio(d, wD)} | ${ratio(p, wP)} | ${
          ratio(p2, p)
        } |`,
      );
    }
    if (lD !== undefined) console.log(`| ${type} | llama.cpp | ${fmt(lD)} | ${fmt(lP)} | | | | | |`);
    if (wD !== undefined) console.log(`| ${type} | wllama | ${fmt(wD)} | ${fmt(wP)} | | | | | |`);
  }
}

/** --profile: decode and prefill µs per token by op class, one process per type (Deno, then Bun unless --no-bun). */
async function profileAll(opts: CommandLine): Promise<void> {
  const types = listFlag(USAGE, "types", opts.types, SYNTHETIC_TYPES);
  const runtimes = opts["no-bun"] ? ["deno"] : ["deno", "bun"];
  const kvType = kvTypeOf(opts.kv); // before any file is written
  for (const type of types) {
    const path = await ensureSyntheticModel("stories110M", type);
    for (const rt of runtimes) {
      const m = await child(
        `profile ${rt}`,
        ...kvasmCommand(rt, [path, "1", "--with-profile", "--kv", kvType, "--prompt", String(N_PROMPT)]),
      );
      if (!m?.profile) continue;
      for (const phase of ["decode", "prefill"] as const) {
        const p = m.profile[phase];
        const wall = p["(wall)"];
        console.log(
          `\n${type}, kvasm ${rt}, ${m.kv} KV cache, ${phase}: ${fmt(wall, 0)} µs per token (${
            fmt(phase === "decode" ? m.decodeTps : m.prefillTps)
          } tok/s)`,
        );
        const keys = Object.keys(p).filter((k) => k !== "(wall)").sort((a, b) => p[b] - p[a]);
        // decode: what each op reads a token, at what rate, against read_probe in the same process
        const rate = (k: string) => {
          const bytes = phase === "decode" ? m.profile!.decodeBytes[k] : undefined;
          if (bytes === undefined) return "";
          const gbs = bytes / (p[k] * 1000);
          return `  ${fmt(bytes / 1e6, 1).padStart(6)} MB at ${fmt(gbs, 1).padStart(5)} GB/s = ${
            fmt(gbs / m.profile!.readGBs, 2)
          } of read_probe`;
        };
        if (phase === "decode") console.log(`  read_probe over the weights, same process: ${fmt(m.profile.readGBs, 1)} GB/s`);
        for (const k of keys) {
          console.log(`  ${k.padEnd(28)} ${fmt(p[k], 1).padStart(8)} µs  ${fmt((100 * p[k]) / wall, 1).padStart(5)}%${rate(k)}`);
        }
      }
    }
  }
}

const USAGE = `kvasm against native llama.cpp and wllama on the same synthetic stories110M-shaped GGUF files, one run.

  deno run -A bench/peers.ts [options]        (or: npm run bench -- --peers [options])

  --types LIST   weight types to compare (default F32,Q8_0,Q4_0,Q4_K_M)
  --rounds N     interleaved rounds per type (default 3)
  --median       report each engine's median round, not its best (and each process's median prefill)
  --prefills N   prefills of the prompt's ids in each process, kvasm and llama.cpp alike, each on an empty sequence
                 (default 5); a process's prefill figure is its best one. The first prefill of a process pays
                 one-time costs (llama.cpp's first ran 0.85x its later ones; kvasm's commits its KV pages then),
                 and one prefill of 0.1-0.3 s is a single sample of the host's noise, the more so on two threads,
                 where either thread descheduled holds the other at a join. --prefills 1 measures as before.
  --kv TYPE      kvasm's KV cache element type in every kvasm process: f32 (default; kvasm's own default, whose
                 attention is llama.cpp's up to its rounding) or f16 (llama.cpp's and wllama's default cache type,
                 half the bytes of f32). The table's header and each type's stderr line say which.
  --prompt N     prompt ids each prefill takes (default 128; at most 8192): kvasm and llama.cpp get a context of the
                 prompt, the 48 decode steps and 16 more (at least 512). wllama's harness prompts 128 words, so it
                 runs only at 128.
  --no-wllama    leave wllama out
  --no-bun       kvasm under Deno only
  --no-threads   no two-thread kvasm runs
  --cpu N        run every one-thread process (kvasm, llama.cpp, wllama) pinned to CPU N (taskset -c N, Linux), so
                 that a round's engines share one vCPU: on these VMs one vCPU at times runs 1.6x slower than the
                 other, which moves an unpinned ratio more than most kernel changes do. Two-thread runs stay unpinned.
  --profile      instead: kvasm's decode and prefill time per token by op class, per type and runtime
  -h, --help     this text

The peers install on first use into bench/peers-install/ (git-ignored); see ../shared/peers/README.md.
Internal (one measurement in a child process): --one MODEL.gguf THREADS [--prefills N] [--kv TYPE] [--prompt N] [--with-profile].`;

/** The command (and its arguments) that runs one kvasm measurement, `--one ...args`, in a child process of `runtime`. */
function kvasmCommand(runtime: string, args: string[]): [string, string[]] {
  const self = here + "peers.ts";
  return runtime === "deno" ? [bin("deno"), ["run", "-A", self, "--one", ...args]] : [bin("bun"), [self, "--one", ...args]];
}

/** --kv's value: the cache types llama.cpp keeps too (f32, f16). */
function kvTypeOf(v: string): KVType {
  return choiceFlag(USAGE, "kv", v, ["f32", "f16"]);
}

/** The command line; parsed only when this file runs, not when big-model.ts imports ensurePeers. */
function parseCommandLine() {
  return benchArgs(USAGE, {
    options: {
      types: { type: "string", default: "F32,Q8_0,Q4_0,Q4_K_M" },
      rounds: { type: "string", default: "3" },
      prefills: { type: "string", default: "5" },
      prompt: { type: "string", default: "128" },
      kv: { type: "string", default: "f32" },
      median: { type: "boolean", default: false },
      "no-wllama": { type: "boolean", default: false },
      "no-bun": { type: "boolean", default: false },
      "no-threads": { type: "boolean", default: false },
      cpu: { type: "string" },
      profile: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      one: { type: "string" },
      "with-profile": { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
}
type CommandLine = ReturnType<typeof parseCommandLine>["values"];

if (import.meta.main) {
  const { values: opts, positionals } = parseCommandLine();
  N_PROMPT = intFlag(USAGE, "prompt", opts.prompt, 2, 8192);
  if (opts.one !== undefined) {
    const threads = intFlag(USAGE, "THREADS", positionals[0] ?? "1"), prefills = intFlag(USAGE, "prefills", opts.prefills);
    const m = await measureKvasm(opts.one, threads, opts["with-profile"], prefills, kvTypeOf(opts.kv));
    console.log(JSON.stringify(m));
    g.Deno ? g.Deno.exit(0) : g.process.exit(0);
  } else if (opts.profile) await profileAll(opts);
  else await orchestrate(opts);
}
