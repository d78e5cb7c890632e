/**
 * An 8B-class model past one WebAssembly memory's 4 GiB: the synthetic Llama-3-8B-shaped Q4_K_M GGUF
 * (bench/synthetic.ts llama3-8b, 4.9 GB, written by kvasm's own writer and quantizer) in kvasm under Deno and
 * under Bun (the layers spread over several 32-bit memories) and in llama.cpp (node-llama-cpp 3.22.1, the
 * harness of ../shared/peers, installed on demand into bench/peers-install/ as bench/peers.ts does), on the
 * same file in the same run, one process per engine. Reports load seconds, prefill and decode tok/s (the
 * prefill of ../shared/peers/llamacpp.mjs's ids, then greedy steps), their ratios to llama.cpp, and each
 * process's peak resident memory (GNU time's maximum RSS; llama.cpp maps the file, so its pages count too).
 *
 *   deno run -A bench/big-model.ts [--prompt 16] [--decode 8] [--threads 2] [--no-bun] [--no-llamacpp] [--help]
 */
import { ensureSyntheticModel } from "./synthetic.ts";
import { ensurePeers } from "./peers.ts";
import { loadModel } from "../src/model/load.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { MultiMemoryBackend } from "../src/backends/multi-memory.ts";
import { benchArgs, intFlag } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const here = new URL(".", import.meta.url).pathname;
const PEERS_DIR = here + "peers-install/";
const bin = (name: string) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;

interface Measured {
  engine: string;
  threads: number;
  prefillTps: number;
  decodeTps: number;
  loadS?: number;
  memories?: number;
  peakRssGiB?: number;
}

/** llamacpp.mjs's prompt: BOS, then ids from its LCG. */
function promptIds(n: number): number[] {
  let s = 12345;
  const ids = [1];
  while (ids.length < n) {
    s = (s * 1103515245 + 12345) >>> 0;
    ids.push(3 + (s % 31990));
  }
  return ids;
}

/** One kvasm measurement in this process: load, one warm-up step (compile tiers), prefill, greedy decode from ids[5]. */
async function measureKvasm(path: string, threads: number, nPrompt: number, nDecode: number): Promise<Measured> {
  if (!(nPrompt >= 6 && nDecode >= 1)) throw new Error("a prompt of at least 6 ids (decoding starts from id 5) and 1 step");
  let t0 = performance.now();
  const model = await loadModel(path, { contextLength: 512, threads });
  const loadS = (performance.now() - t0) / 1000;
  try {
    const ids = promptIds(nPrompt);
    let seq = model.newSequence();
    await model.decodeOne(seq, ids[1]);
    model.releaseSequence(seq);
    seq = model.newSequence();
    t0 = performance.now();
    let logits = await model.prefill(seq, ids);
    const prefillMs = performance.now() - t0;
    let token = ids[5];
    t0 = performance.now();
    for (let i = 0; i < nDecode; i++) {
      logits = await model.decodeOne(seq, token);
      token = argmax(logits);
    }
    const decodeMs = performance.now() - t0;
    return {
      engine: `kvasm ${g.Deno ? "deno" : "bun"}`,
      threads,
      prefillTps: nPrompt / (prefillMs / 1000),
      decodeTps: nDecode / (decodeMs / 1000),
      loadS,
      memories: model.backend instanceof MultiMemoryBackend ? model.backend.memories : 1,
    };
  } finally {
    await model.close();
  }
}

/** Runs a child under GNU time (its peak RSS), returning its last JSON line with peakRssGiB added. */
async function child(label: string, cmd: string, argv: string[], cwd?: string): Promise<Measured | undefined> {
  const { spawnSync } = await import("node:child_process");
  const fs = await import("node:fs");
  const rssFile = `${here}models/.big-model-rss-${label.replace(/\W+/g, "-")}`;
  const timed = fs.existsSync("/usr/bin/time");
  const r = timed
    ? spawnSync("/usr/bin/time", ["-f", "%M", "-o", rssFile, cmd, ...argv], { cwd, encoding: "utf8", timeout: 60 * 60_000 })
    : spawnSync(cmd, argv, { cwd, encoding: "utf8", timeout: 60 * 60_000 });
  const line = (r.stdout ?? "").trim().split("\n").reverse().find((l) => l.startsWith("{"));
  if (r.status !== 0 || !line) {
    console.error(`${label}: failed (exit ${r.status})\n${(r.stderr ?? "").trim().split("\n").slice(-8).join("\n")}`);
    return undefined;
  }
  const m = JSON.parse(line) as Measured;
  if (timed) {
    const kb = Number(fs.readFileSync(rssFile, "utf8").trim().split("\n").pop());
    if (kb > 0) m.peakRssGiB = kb / 2 ** 20;
    fs.rmSync(rssFile, { force: true });
  }
  console.error(`${label}: ${JSON.stringify(m)}`);
  return m;
}

async function orchestrate(opts: CommandLine): Promise<void> {
  // decoding starts from the prompt's id 5, as llamacpp.mjs's does
  const nPrompt = intFlag(USAGE, "prompt", opts.prompt, 6), nDecode = intFlag(USAGE, "decode", opts.decode);
  const threads = intFlag(USAGE, "threads", opts.threads);
  const path = await ensureSyntheticModel("llama3-8b", "Q4_K_M");
  const peers = opts["no-llamacpp"] ? { llamacpp: false } : await ensurePeers(false);
  const started = new Date().toISOString();
  const { hostname, cpus, totalmem, loadavg } = await import("node:os");
  const self = here + "big-model.ts";
  const one = [path, String(threads), String(nPrompt), String(nDecode)];
  const runs: Measured[] = [];
  const push = (m: Measured | undefined) => m && runs.push(m);
  const load0 = loadavg()[0];
  push(await child("kvasm deno", bin("deno"), ["run", "-A", self, "--one", ...one]));
  if (peers.llamacpp) {
    const argv = [PEERS_DIR + "llamacpp.mjs", path, String(nPrompt), String(nDecode), String(threads)];
    push(await child("llama.cpp", "node", argv, PEERS_DIR));
  }
  if (!opts["no-bun"]) push(await child("kvasm bun", bin("bun"), [self, "--one", ...one]));

  const ref = runs.find((m) => m.engine === "llama.cpp");
  const fmt = (x: number | undefined, d = 2) => (x === undefined ? "-" : x.toFixed(d));
  const ratio = (a: number, b: number | undefined) => (b === undefined ? "-" : (a / b).toFixed(2) + "x");
  console.log(
    `\nsynthetic Llama-3-8B shape, Q4_K_M (${path.split("/").pop()}), prefill ${nPrompt} ids + ${nDecode} greedy steps, ` +
      `${threads} threads, one run each; ${hostname()}, ${cpus().length} cores (${cpus()[0]?.model}), ` +
      `${(totalmem() / 2 ** 30).toFixed(1)} GiB, load average ${load0.toFixed(1)} at the start; started ${started}`,
  );
  console.log("| engine | memories | load s | prefill tok/s | decode tok/s | prefill / llama.cpp | decode / llama.cpp | peak RSS GiB |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const m of runs) {
    console.log(
      `| ${m.engine} | ${m.memories ?? "-"} | ${fmt(m.loadS, 1)} | ${fmt(m.prefillTps)} | ${fmt(m.decodeTps)} | ${
        ratio(m.prefillTps, ref?.prefillTps)
      } | ${ratio(m.decodeTps, ref?.decodeTps)} | ${fmt(m.peakRssGiB)} |`,
    );
  }
}

const USAGE = `An 8B-class model past one memory's 4 GiB (synthetic Llama-3-8B-shaped Q4_K_M, 4.9 GB): kvasm under Deno and Bun
against llama.cpp on the same file, one process each: load s, prefill and decode tok/s, ratios, peak resident memory.

  deno run -A bench/big-model.ts [options]

  --prompt N       prompt ids (default 16, at least 6)
  --decode N       greedy steps (default 8)
  --threads N      threads for every engine (default 2)
  --no-bun         kvasm under Deno only
  --no-llamacpp    leave llama.cpp out
  -h, --help       this text

Internal (one measurement in a child process): --one MODEL.gguf THREADS PROMPT DECODE.`;

function parseCommandLine() {
  return benchArgs(USAGE, {
    options: {
      prompt: { type: "string", default: "16" },
      decode: { type: "string", default: "8" },
      threads: { type: "string", default: "2" },
      "no-bun": { type: "boolean", default: false },
      "no-llamacpp": { type: "boolean", default: false },
      one: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
}
type CommandLine = ReturnType<typeof parseCommandLine>["values"];

if (import.meta.main) {
  const { values: opts, positionals } = parseCommandLine();
  if (opts.one !== undefined) {
    const [threads = "", nPrompt = "", nDecode = ""] = positionals;
    const one = [intFlag(USAGE, "THREADS", threads), intFlag(USAGE, "PROMPT", nPrompt, 6), intFlag(USAGE, "DECODE", nDecode)] as const;
    console.log(JSON.stringify(await measureKvasm(opts.one, ...one)));
    g.Deno ? g.Deno.exit(0) : g.process.exit(0);
  } else await orchestrate(opts);
}
