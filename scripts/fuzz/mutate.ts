/**
 * Seeded mutants of real model and tokenizer files. Mutant `index` of a corpus under `seed` is a
 * pure function of the three (its own Rng, seeded from them), so any mutant a campaign reports can
 * be rebuilt alone (`npm run fuzz -- --seed S --corpus C --only I`), and the short run in the test
 * suite draws from the same generator as the long one.
 *
 * Mutations: bit flips, boundary values (0, 1, 2^20, 2^24, 2^31-1, 2^32-1, 2^63, -1) written as
 * u32/u64 at a random offset or into a named header field (GGUF fields, llama2.c header ints, JSON
 * numbers of a safetensors header, config.json or tokenizer.json), truncations, insertions,
 * deletions, duplicated chunks, and JSON edits (a value replaced, a key dropped). Offsets favour
 * the header: the tensor data of a 1 MB model is mostly floats, where a flip only changes a weight.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { Rng } from "../../src/sampling/rng.ts";
import { ggufFields, setField } from "./gguf-fields.ts";
import { gpt2TokenizerJson } from "./tokenizer-json.ts";

export const CORPORA = ["gguf", "gguf-q4_0", "safetensors", "llama2c", "tokenizer-json"] as const;
export type Corpus = typeof CORPORA[number];

/** The files one load reads: a model (bytes, or a directory's model.safetensors), a config.json, a tokenizer. */
export interface FileSet {
  model: Uint8Array;
  config?: Uint8Array;
  tokenizer?: Uint8Array;
}

export interface Mutant {
  files: FileSet;
  /** What was done, for the report ("model: u64 2^63 at 24 (metadata_count)"). */
  what: string;
}

export const BOUNDARIES: [string, bigint][] = [
  ["0", 0n],
  ["1", 1n],
  ["2^20", 1n << 20n],
  ["2^24", 1n << 24n],
  ["2^31-1", (1n << 31n) - 1n],
  ["2^32-1", (1n << 32n) - 1n],
  ["2^63", 1n << 63n],
  ["-1", -1n],
];

/** The unmutated files of every corpus, read from ../shared (`shared` is its path). */
export async function baseFiles(shared: string): Promise<Record<Corpus, FileSet>> {
  // plain Uint8Arrays: a Node Buffer's slice() is a view, and mutants must never write into the base
  const m = (...p: string[]) => new Uint8Array(fs.readFileSync(path.join(shared, "models", ...p)));
  const bin = m("stories260K", "stories260K.bin");
  return {
    "gguf": { model: m("stories260K", "stories260K.gguf") },
    "gguf-q4_0": { model: m("stories260K", "stories260K-q4_0.gguf") },
    // the hf/ directory ships no tokenizer; tok512.model is its SentencePiece vocabulary (left unmutated)
    "safetensors": {
      model: m("stories260K", "hf", "model.safetensors"),
      config: m("stories260K", "hf", "config.json"),
      tokenizer: m("stories260K", "tok512.model"),
    },
    "llama2c": { model: bin, tokenizer: m("stories260K", "tok512.bin") },
    "tokenizer-json": { model: bin, tokenizer: await gpt2TokenizerJson(m("tokenizers", "ggml-vocab-gpt-2.gguf"), 512) },
  };
}

/** Every base file that exists, for a caller that must skip without ../shared. */
export function sharedFilesNeeded(shared: string): string[] {
  const m = (...p: string[]) => path.join(shared, "models", ...p);
  return [
    m("stories260K", "stories260K.gguf"),
    m("stories260K", "stories260K-q4_0.gguf"),
    m("stories260K", "hf", "model.safetensors"),
    m("stories260K", "hf", "config.json"),
    m("stories260K", "stories260K.bin"),
    m("stories260K", "tok512.bin"),
    m("stories260K", "tok512.model"),
    m("tokenizers", "ggml-vocab-gpt-2.gguf"),
  ];
}

/** The mutant `index` of `corpus` under `seed`. */
export function mutant(corpus: Corpus, base: FileSet, seed: number, index: number): Mutant {
  const rng = new Rng(mix(seed, CORPORA.indexOf(corpus), index));
  const files: FileSet = { ...base };
  // which file of the set: the one the corpus is about, sometimes its companion
  let which: keyof FileSet = "model";
  if (corpus === "tokenizer-json") which = "tokenizer";
  else if (corpus === "safetensors" && rng.nextFloat() < 0.35) which = "config";
  else if (corpus === "llama2c" && rng.nextFloat() < 0.3) which = "tokenizer";
  const kind = fileKind(corpus, which);
  const n = 1 + (rng.nextFloat() < 0.2 ? below(rng, 3) : 0); // mostly one mutation, sometimes a few stacked
  const what: string[] = [];
  let bytes = files[which]!;
  for (let k = 0; k < n; k++) {
    const [next, did] = mutateOnce(rng, bytes, kind);
    bytes = next;
    what.push(did);
  }
  files[which] = bytes;
  return { files, what: `${which}: ${what.join("; ")}` };
}

type FileKind = "gguf" | "safetensors" | "json" | "llama2c" | "tokenizer.bin";

function fileKind(corpus: Corpus, which: keyof FileSet): FileKind {
  if (which === "config" || (which === "tokenizer" && corpus === "tokenizer-json")) return "json";
  if (which === "tokenizer") return "tokenizer.bin";
  if (corpus === "safetensors") return "safetensors";
  if (corpus === "llama2c") return "llama2c";
  return "gguf";
}

function mutateOnce(rng: Rng, b: Uint8Array, kind: FileKind): [Uint8Array, string] {
  const r = rng.nextFloat();
  if (r < 0.3) return fieldEdit(rng, b, kind);
  if (r < 0.5) {
    const out = b.slice();
    const flips = 1 + below(rng, 8);
    const at: number[] = [];
    for (let i = 0; i < flips; i++) {
      const p = offset(rng, b.length, kind);
      out[p] ^= 1 << below(rng, 8);
      at.push(p);
    }
    return [out, `bit flips at ${at.join(",")}`];
  }
  if (r < 0.65) {
    const [name, v] = BOUNDARIES[below(rng, BOUNDARIES.length)];
    const width = rng.nextFloat() < 0.5 ? 4 : 8;
    const p = Math.min(offset(rng, b.length, kind), Math.max(0, b.length - width));
    const out = b.slice();
    writeInt(out, p, width, v);
    return [out, `u${width * 8} ${name} at ${p}`];
  }
  if (r < 0.75) {
    const cut = rng.nextFloat() < 0.7 ? offset(rng, b.length, kind) : below(rng, b.length + 1);
    return [b.slice(0, cut), `truncated to ${cut}`];
  }
  if (r < 0.85) {
    const p = offset(rng, b.length, kind), len = 1 + below(rng, 64);
    const ins = new Uint8Array(len);
    const fill = rng.nextFloat() < 0.5 ? -1 : below(rng, 256);
    for (let i = 0; i < len; i++) ins[i] = fill < 0 ? below(rng, 256) : fill;
    return [concat(b.subarray(0, p), ins, b.subarray(p)), `inserted ${len} bytes at ${p}`];
  }
  if (r < 0.93) {
    const p = offset(rng, b.length, kind), len = 1 + below(rng, 64);
    return [concat(b.subarray(0, p), b.subarray(Math.min(b.length, p + len))), `deleted ${len} bytes at ${p}`];
  }
  const p = offset(rng, b.length, kind), len = 1 + below(rng, 256);
  const chunk = b.subarray(p, Math.min(b.length, p + len));
  return [concat(b.subarray(0, p), chunk, b.subarray(p)), `duplicated ${chunk.length} bytes at ${p}`];
}

/** A named field of the format set to a boundary value (or a JSON value replaced or dropped). */
function fieldEdit(rng: Rng, b: Uint8Array, kind: FileKind): [Uint8Array, string] {
  const [name, v] = BOUNDARIES[below(rng, BOUNDARIES.length)];
  if (kind === "gguf") {
    let fields;
    try {
      fields = ggufFields(b);
    } catch {
      return [b, "no field edit (header already broken)"];
    }
    // half the edits go to scalar metadata values (block_count, context_length, embedding_length, ...):
    // few fields, but the ones a loader sizes things by
    const scalars = fields.filter((x) => x.kind === "value" && x.what.startsWith("metadata ") && !x.what.includes("["));
    const pool = scalars.length > 0 && rng.nextFloat() < 0.5 ? scalars : fields;
    const f = pool[below(rng, pool.length)];
    const out = b.slice();
    setField(out, f, v);
    return [out, `${f.what} = ${name}`];
  }
  if (kind === "llama2c" || kind === "tokenizer.bin") {
    const i = below(rng, kind === "llama2c" ? 7 : 1);
    const out = b.slice();
    writeInt(out, 4 * i, 4, v);
    return [out, `${kind === "llama2c" ? "header int" : "max_token_length"} ${i} = ${name}`];
  }
  if (kind === "safetensors") {
    const len = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + len)));
    } catch {
      return [b, "no field edit (header already broken)"];
    }
    const did = editJson(rng, header, name, v);
    const enc = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + enc.length + (b.length - 8 - len));
    new DataView(out.buffer).setBigUint64(0, BigInt(enc.length), true);
    out.set(enc, 8);
    out.set(b.subarray(8 + len), 8 + enc.length);
    return [out, `header ${did}`];
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(b));
  } catch {
    return [b, "no field edit (JSON already broken)"];
  }
  const did = editJson(rng, json, name, v);
  return [new TextEncoder().encode(JSON.stringify(json)), did];
}

/** Replaces one value somewhere in `root` (an object or array) in place; returns what it did. */
function editJson(rng: Rng, root: unknown, name: string, v: bigint): string {
  // walk down a random path, preferring to stop at numbers (the counts and shapes that matter)
  let node = root as Record<string, unknown>;
  let at = "";
  for (let depth = 0; depth < 6; depth++) {
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const k = keys[below(rng, keys.length)];
    const child = node[k];
    if (typeof child === "object" && child !== null && rng.nextFloat() < 0.8) {
      node = child as Record<string, unknown>;
      at += `.${k}`;
      continue;
    }
    at += `.${k}`;
    const r = rng.nextFloat();
    if (r < 0.6) {
      node[k] = Number(v);
      return `${at} = ${name}`;
    }
    const others: [string, unknown][] = [["null", null], ['""', ""], ["[]", []], ["{}", {}], ["-0.5", -0.5], ["1e308", 1e308], [
      '"x"',
      "x",
    ]];
    if (r < 0.9) {
      const [label, value] = others[below(rng, others.length)];
      node[k] = value;
      return `${at} = ${label}`;
    }
    if (Array.isArray(node)) node.splice(Number(k), 1);
    else delete node[k];
    return `${at} removed`;
  }
  return "no JSON edit (empty)";
}

/** A byte offset favouring the header region (first 4 KiB; a JSON file is all header). */
function offset(rng: Rng, size: number, kind: FileKind): number {
  if (size === 0) return 0;
  const head = kind === "json" || kind === "tokenizer.bin" ? size : Math.min(size, 4096);
  return rng.nextFloat() < 0.75 ? below(rng, head) : below(rng, size);
}

function writeInt(b: Uint8Array, p: number, width: number, v: bigint): void {
  if (p + width > b.length) return;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (width === 8) dv.setBigUint64(p, BigInt.asUintN(64, v), true);
  else dv.setUint32(p, Number(BigInt.asUintN(32, v)), true);
}

function below(rng: Rng, n: number): number {
  return n <= 1 ? 0 : Math.floor(rng.nextFloat() * n);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** One u32 seed from (seed, corpus, index): murmur3's finalizer over a running mix. */
function mix(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}
