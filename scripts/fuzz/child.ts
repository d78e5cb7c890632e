/**
 * One fuzz worker process: for each job CORPUS:START:COUNT it builds those mutants, loads each as
 * a user would (loadModel, one thread, default options) and, if it loads, generates a few tokens.
 * It prints one JSON line when a mutant starts and one with its outcome, so the parent (run.ts)
 * can pin a hang or a crash on the mutant that caused it and watch its memory.
 *
 *   deno run -A scripts/fuzz/child.ts SEED SHARED_DIR TMP_DIR CORPUS:START:COUNT...
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { KvasmError } from "../../src/errors.ts";
import { loadModel } from "../../src/model/load.ts";
import type { Model } from "../../src/model/model.ts";
import { baseFiles, type Corpus, type FileSet, mutant } from "./mutate.ts";

const args = process.argv.slice(process.argv.findIndex((a) => a.endsWith("child.ts")) + 1);
const [seedArg, shared, tmp, ...jobs] = args;
const seed = Number(seedArg);
const TOKENS = 4;

const say = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + "\n");

/** Loads a file set as the CLI would: safetensors from a directory with its config.json, the rest from bytes. */
async function load(corpus: Corpus, files: FileSet): Promise<Model> {
  const opts = { threads: 1, tokenizer: files.tokenizer };
  if (corpus !== "safetensors") return await loadModel(files.model, opts);
  fs.writeFileSync(path.join(tmp, "model.safetensors"), files.model);
  fs.writeFileSync(path.join(tmp, "config.json"), files.config!);
  return await loadModel(tmp, opts);
}

async function run(corpus: Corpus, files: FileSet): Promise<number> {
  const model = await load(corpus, files);
  let pieces = 0;
  try {
    for await (const _ of model.generate("Once upon a time", { maxTokens: TOKENS, temperature: 0.8, seed: 7 })) pieces++;
  } finally {
    await model.close();
  }
  return pieces;
}

function classify(e: unknown): Record<string, unknown> {
  if (e instanceof KvasmError) return { outcome: "typed", code: e.code, message: e.message.slice(0, 300) };
  const err = e as Error;
  const detail = { message: String(err?.message ?? e).slice(0, 300), stack: String(err?.stack ?? "").slice(0, 1500) };
  if (e instanceof WebAssembly.RuntimeError) return { outcome: "trap", ...detail };
  return { outcome: "untyped", name: err?.name ?? typeof e, ...detail };
}

const bases = await baseFiles(shared);
for (const job of jobs) {
  const [corpus, startArg, countArg] = job.split(":") as [Corpus, string, string];
  const start = Number(startArg), count = Number(countArg);
  const base = bases[corpus];
  // warm up on the unmutated files: compiled kernels and JIT belong to the baseline, not to the first mutant
  await run(corpus, base);
  say({ ready: true, corpus, rss: process.memoryUsage().rss });
  for (let i = start; i < start + count; i++) {
    say({ corpus, i, start: true, rss: process.memoryUsage().rss }); // before the mutant is built: its building is watched too
    const m = mutant(corpus, base, seed, i);
    const bytes = Object.values(m.files).reduce((n, f) => n + (f?.length ?? 0), 0);
    say({ corpus, i, mutant: true, bytes, what: m.what });
    let result: Record<string, unknown>;
    try {
      result = { outcome: "ran", pieces: await run(corpus, m.files) };
    } catch (e) {
      result = classify(e);
    }
    say({ corpus, i, ...result, rss: process.memoryUsage().rss });
  }
}
say({ done: true });
