#!/usr/bin/env -S deno run -A
/**
 * kvasm's command line: `generate` text from a model (more commands are
 * registered in COMMANDS). Runs unchanged under `deno run -A src/cli.ts` and
 * `bun src/cli.ts`: output goes to stdout as it is generated, timings to stderr.
 */
import { loadModel, type LoadOptions } from "./model/model.ts";
import { generate } from "./generate.ts";
import { KvasmError, ParamError } from "./errors.ts";
import { loadProgress } from "./io/load-progress.ts";
import { ENGINE_GENERATE_USAGE, engineGenerate, parsePromptIds, usesEngine } from "./engine/cli-generate.ts";
import { cmdServe, SERVE_OPTIONS, SERVE_USAGE } from "./server/cli-serve.ts";
import { cmdQuantize, QUANTIZE_USAGE } from "./quant/cli-quantize.ts";

import type { BackendName } from "./backends/webgpu/select.ts";

type Flags = Map<string, string[]>;

const USAGE = `usage:
  kvasm generate [--model PATH|URL] [--tokenizer PATH] --prompt TEXT [--max-tokens N]
                 [--temperature T] [--top-k K] [--top-p P] [--seed S] [--threads N]

${SERVE_USAGE}${QUANTIZE_USAGE}

options:
  --model PATH|URL    GGUF, llama2.c .bin, or safetensors model: a path or an http(s) URL
                      (default: stories260K, the small story model bundled with kvasm)
  --tokenizer PATH    tokenizer for models without one (llama2.c tokenizer.bin, .model, tokenizer.json)
  --prompt TEXT       text to continue
  --prompt-ids IDS    token ids to continue instead, comma-separated (5,17,42): runs models without a tokenizer
  --max-tokens N      tokens to generate at most (default 256)
  --temperature T     0 = greedy (default 1.0)
  --top-k K           keep the K most likely tokens (0 = off)
  --top-p P           nucleus sampling threshold (1 = off)
  --seed S            random seed (same seed, same tokens in every runtime)
  --context N         positions per sequence (default: the model's)
  --threads N         threads, the calling one included (default: one per core)
  --backend B         wasm (default), webgpu, or auto (WebGPU when there is an adapter the model fits)
  --ggml-order        llama.cpp's CPU arithmetic bit for bit (F16 KV cache, matmuls in ggml's order; slower)
  --attention-top-k K sparse top-k attention: each row's softmax over its K best scores (long contexts; 0 = dense)
${ENGINE_GENERATE_USAGE}

${SERVE_OPTIONS}`;

function parseFlags(args: string[]): Flags {
  const flags: Flags = new Map();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) throw new ParamError("arguments", `unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf("=");
    const [key, value] = eq > 0 ? [a.slice(2, eq), a.slice(eq + 1)] : [a.slice(2), args[i + 1]];
    if (eq < 0) {
      if (value === undefined || value.startsWith("--")) {
        flags.set(key, [...(flags.get(key) ?? []), "true"]);
        continue;
      }
      i++;
    }
    flags.set(key, [...(flags.get(key) ?? []), value]);
  }
  return flags;
}

function str(f: Flags, key: string): string | undefined {
  const v = f.get(key);
  return v?.[v.length - 1];
}

function num(f: Flags, key: string): number | undefined {
  const v = str(f, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ParamError(`--${key}`, `must be a number, got ${JSON.stringify(v)}`);
  return n;
}

function required(f: Flags, key: string): string {
  const v = str(f, key);
  if (v === undefined) throw new ParamError(`--${key}`, "is required");
  return v;
}

interface Io {
  out(s: string): void;
  err(s: string): void;
  errIsTTY: boolean;
}

async function cmdGenerate(f: Flags, io: Io): Promise<void> {
  const modelPath = str(f, "model"); // none: the model bundled with kvasm
  // --ggml-order: the F16 cache (flash attention as ggml computes it) and matmuls summed in ggml's order
  const ggml: LoadOptions = f.has("ggml-order") ? { ggmlOrder: true, kvCacheType: "f16" } : {};
  const topK = num(f, "attention-top-k");
  if (topK !== undefined) ggml.attention = { topK };
  if (usesEngine(f)) return engineGenerate(f, io, { ...ggml, tokenizer: str(f, "tokenizer"), contextLength: num(f, "context"), threads: num(f, "threads") });
  // token ids run models that ship no tokenizer (and skip tokenization when comparing with a reference)
  const prompt = parsePromptIds(str(f, "prompt-ids")) ?? required(f, "prompt");
  const t0 = performance.now();
  const model = await loadModel(modelPath, {
    ...ggml,
    tokenizer: str(f, "tokenizer"),
    contextLength: num(f, "context"),
    threads: num(f, "threads"),
    backend: str(f, "backend") as BackendName | undefined,
    onNotice: (m) => io.err(`${m}\n`),
    onProgress: loadProgress(modelPath, io.err, io.errIsTTY),
  });
  const loadMs = performance.now() - t0;
  try {
    const gen = generate(model, prompt, {
      maxTokens: num(f, "max-tokens"),
      temperature: num(f, "temperature"),
      topK: num(f, "top-k"),
      topP: num(f, "top-p"),
      seed: num(f, "seed"),
    });
    if (typeof prompt === "string") io.out(prompt);
    let r = await gen.next();
    while (!r.done) {
      io.out(r.value);
      r = await gen.next();
    }
    io.out("\n");
    const s = r.value;
    const prefillTps = s.promptTokens.length / (s.prefillMs / 1000);
    const decodeTps = s.tokens.length > 1 ? (s.tokens.length - 1) / (s.decodeMs / 1000) : 0;
    io.err(
      `${model.backend.name} | load ${loadMs.toFixed(0)} ms | prefill ${s.promptTokens.length} tokens, ${prefillTps.toFixed(1)} tok/s | ` +
        `decode ${s.tokens.length} tokens, ${decodeTps.toFixed(1)} tok/s | ${s.finishReason}\n`,
    );
  } finally {
    await model.close();
  }
}

export const COMMANDS: Record<string, (f: Flags, io: Io) => Promise<void>> = {
  generate: cmdGenerate,
  quantize: (f, io) => cmdQuantize((k) => str(f, k), io),
  serve: cmdServe,
};

/** Runs the CLI with `args`; returns the exit code. */
export async function main(args: string[], io: Io = defaultIo()): Promise<number> {
  const [cmd, ...rest] = args;
  if (!cmd || cmd === "help" || cmd === "--help" || cmd === "-h") {
    io.out(USAGE);
    return cmd ? 0 : 2;
  }
  const run = COMMANDS[cmd];
  if (!run) {
    io.err(`kvasm: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
    return 2;
  }
  try {
    await run(parseFlags(rest), io);
    return 0;
  } catch (e) {
    if (e instanceof KvasmError) {
      io.err(`kvasm: ${e.name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

function defaultIo(): Io {
  const enc = new TextEncoder();
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (g.Deno) {
    const writeAll = (f: { writeSync(b: Uint8Array): number }, s: string) => {
      let b = enc.encode(s);
      while (b.length > 0) b = b.subarray(f.writeSync(b));
    };
    return {
      out: (s) => writeAll(g.Deno.stdout, s),
      err: (s) => writeAll(g.Deno.stderr, s),
      errIsTTY: g.Deno.stderr.isTerminal(),
    };
  }
  return {
    out: (s) => g.process.stdout.write(s),
    err: (s) => g.process.stderr.write(s),
    errIsTTY: Boolean(g.process.stderr.isTTY),
  };
}

function argv(): string[] {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return g.Deno ? g.Deno.args : g.process.argv.slice(2);
}

/** Deno and Bun set import.meta.main; Node (running the bundle) does not, so compare the entry script's URL. */
async function isEntryPoint(): Promise<boolean> {
  if (import.meta.main !== undefined) return import.meta.main;
  // deno-lint-ignore no-explicit-any
  const entry = (globalThis as any).process?.argv?.[1];
  if (!entry) return false;
  const { pathToFileURL } = await import("node:url");
  const { realpathSync } = await import("node:fs");
  return pathToFileURL(realpathSync(entry)).href === import.meta.url;
}

if (await isEntryPoint()) {
  const code = await main(argv());
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (g.Deno) g.Deno.exit(code);
  else g.process.exit(code);
}
