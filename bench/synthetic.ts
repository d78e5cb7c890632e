/**
 * kvasm's synthetic-model writer: a llama GGUF with real shapes and random
 * weights, for benchmarks (throughput does not depend on the values).
 * Streams one tensor at a time, so a 440 MB F32 file never sits in memory whole.
 *
 *   deno run -A bench/synthetic.ts [out.gguf] [shape]     (shape: stories110M | stories15M | llama-1b | llama3-8b)
 *   deno run -A bench/synthetic.ts --ensure llama3-8b Q4_K_M     (the cached file in bench/models/, written if absent)
 *
 * Shapes too large for an F32 intermediate (llama3-8b: 32 GB of F32) are written quantized directly by
 * writeSyntheticQuantized: each (type, row length, scale) gets a pool of distinct random rows quantized once
 * by kvasm's quantizer, and every tensor's rows are tiled from that pool in a per-tensor pseudo-random order.
 * Quantizing 8 billion floats in JS would take hours; the pool takes seconds and the file is disk-bound
 * (minutes). The bytes are real Q4_K / Q6_K blocks with the types llama.cpp's Q4_K_M picks per tensor.
 */
import { fileSink, type GGUFMetadataEntry, type GGUFTensorToWrite, writeGGUF } from "../src/formats/gguf-writer.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { openModelFile } from "../src/formats/open.ts";
import { chooseTensorType, quantizeModel, quantizeRows, type QuantizeTarget } from "../src/quant/quantize.ts";
import { rowBytes } from "../src/formats/ggml-types.ts";
import { benchArgs, choiceFlag, usageError } from "./cli.ts";

export interface SyntheticShape {
  name: string;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  contextLength: number;
}

export const SHAPES: Record<string, SyntheticShape> = {
  stories15M: { name: "stories15M", dim: 288, hiddenDim: 768, nLayers: 6, nHeads: 6, nKvHeads: 6, vocabSize: 32000, contextLength: 256 },
  stories110M: {
    name: "stories110M",
    dim: 768,
    hiddenDim: 2048,
    nLayers: 12,
    nHeads: 12,
    nKvHeads: 12,
    vocabSize: 32000,
    contextLength: 1024,
  },
  "llama-1b": {
    name: "llama-1b",
    dim: 2048,
    hiddenDim: 8192,
    nLayers: 16,
    nHeads: 32,
    nKvHeads: 8,
    vocabSize: 128256,
    contextLength: 2048,
  },
  // Llama-3-8B's shape (Llama-3.1-8B at Q4_K_M is 4.9 GB): past one 4 GiB WebAssembly memory
  "llama3-8b": {
    name: "llama3-8b",
    dim: 4096,
    hiddenDim: 14336,
    nLayers: 32,
    nHeads: 32,
    nKvHeads: 8,
    vocabSize: 128256,
    contextLength: 8192,
  },
  // attention-bound at long context (bench/topk-attention.ts): two heads of 64, 16k positions and a margin
  "long-context": {
    name: "long-context",
    dim: 128,
    hiddenDim: 384,
    nLayers: 2,
    nHeads: 2,
    nKvHeads: 2,
    vocabSize: 512,
    contextLength: 16512,
  },
};

/** xorshift32 stream of roughly N(0, std) values (sum of uniforms): fast, deterministic, good enough for weights. */
function fillRandom(out: Float32Array, seed: number, std: number): void {
  let s = seed >>> 0 || 1;
  const scale = std * Math.sqrt(3) / 0x80000000; // a uniform in [-1, 1) has std 1/sqrt(3)
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s | 0) * scale;
  }
}

/** A SentencePiece-style vocabulary: specials, the 256 byte tokens, then made-up pieces. */
function syntheticVocab(n: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens: string[] = ["<unk>", "<s>", "</s>"];
  const types = new Int32Array(n).fill(1);
  types[0] = 2;
  types[1] = types[2] = 3;
  for (let b = 0; b < 256; b++) {
    types[tokens.length] = 6;
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  const letters = "abcdefghijklmnopqrstuvwxyz";
  for (let i = 0; tokens.length < n; i++) {
    let piece = "";
    for (let v = i;; v = Math.floor(v / 26) - 1) {
      piece = letters[v % 26] + piece;
      if (v < 26) break;
    }
    tokens.push(i % 2 === 0 ? "▁" + piece : piece);
  }
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) scores[i] = -i;
  return { tokens, scores, types };
}

function syntheticMetadata(shape: SyntheticShape, fileType: number): GGUFMetadataEntry[] {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize } = shape;
  const headDim = dim / nHeads;
  const vocab = syntheticVocab(vocabSize);
  const md = (key: string, t: string, value: unknown): GGUFMetadataEntry => ({
    key,
    type: { type: t } as GGUFMetadataEntry["type"],
    value,
  });
  return [
    md("general.architecture", "string", "llama"),
    md("general.name", "string", `synthetic ${shape.name}`),
    md("general.file_type", "u32", fileType),
    md("llama.context_length", "u32", shape.contextLength),
    md("llama.embedding_length", "u32", dim),
    md("llama.feed_forward_length", "u32", hiddenDim),
    md("llama.block_count", "u32", nLayers),
    md("llama.attention.head_count", "u32", nHeads),
    md("llama.attention.head_count_kv", "u32", nKvHeads),
    md("llama.rope.dimension_count", "u32", headDim),
    md("llama.rope.freq_base", "f32", 10000),
    md("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
    md("tokenizer.ggml.model", "string", "llama"),
    { key: "tokenizer.ggml.tokens", type: { type: "array", of: "string" }, value: vocab.tokens },
    { key: "tokenizer.ggml.scores", type: { type: "array", of: "f32" }, value: vocab.scores },
    { key: "tokenizer.ggml.token_type", type: { type: "array", of: "i32" }, value: vocab.types },
    md("tokenizer.ggml.bos_token_id", "u32", 1),
    md("tokenizer.ggml.eos_token_id", "u32", 2),
  ];
}

/** The llama tensor list in the writers' order: name, ggml shape, std of its values (0: a norm of ones). */
function syntheticTensorList(shape: SyntheticShape): Array<{ name: string; shape: number[]; std: number }> {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize } = shape;
  const kvDim = nKvHeads * (dim / nHeads);
  const std = 0.02;
  const out = [{ name: "token_embd.weight", shape: [dim, vocabSize], std: 1 }];
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    out.push(
      { name: p + "attn_norm.weight", shape: [dim], std: 0 },
      { name: p + "attn_q.weight", shape: [dim, dim], std },
      { name: p + "attn_k.weight", shape: [dim, kvDim], std },
      { name: p + "attn_v.weight", shape: [dim, kvDim], std },
      { name: p + "attn_output.weight", shape: [dim, dim], std },
      { name: p + "ffn_norm.weight", shape: [dim], std: 0 },
      { name: p + "ffn_gate.weight", shape: [dim, hiddenDim], std },
      { name: p + "ffn_up.weight", shape: [dim, hiddenDim], std },
      { name: p + "ffn_down.weight", shape: [hiddenDim, dim], std },
    );
  }
  out.push({ name: "output_norm.weight", shape: [dim], std: 0 }, { name: "output.weight", shape: [dim, vocabSize], std });
  return out;
}

export async function writeSyntheticModel(path: string, shape: SyntheticShape, type: number = GGMLType.F32): Promise<void> {
  if (type !== GGMLType.F32 && type !== GGMLType.F16) {
    throw new Error("the synthetic writer makes F32 or F16 models; quantize them with kvasm quantize");
  }
  const metadata = syntheticMetadata(shape, type === GGMLType.F32 ? 0 : 1);
  let seed = 1;
  const tensor = (name: string, shapeGG: number[], std: number, norm = false): GGUFTensorToWrite => {
    const mySeed = seed++;
    const isMatrix = shapeGG.length > 1 && !norm;
    const ttype = isMatrix ? type : GGMLType.F32;
    return {
      name,
      type: ttype,
      shape: shapeGG,
      data: () => {
        const n = shapeGG.reduce((a, b) => a * b, 1);
        const f = new Float32Array(n);
        if (norm) f.fill(1);
        else fillRandom(f, mySeed * 2654435761, std);
        return ttype === GGMLType.F16 ? toF16(f) : new Uint8Array(f.buffer);
      },
    };
  };
  const tensors = syntheticTensorList(shape).map((t) => tensor(t.name, t.shape, t.std, t.std === 0));
  await writeGGUF(await fileSink(path), metadata, tensors);
}

/** Distinct random rows per (type, row length, std) in writeSyntheticQuantized's pools. */
const POOL_ROWS = 256;
const QUANT_FILE_TYPE: Record<QuantizeTarget, number> = { Q8_0: 7, Q4_0: 2, Q4_K: 14, Q4_K_M: 15 };

/**
 * A quantized synthetic model written directly, without an F32 file (see the file comment): tensor types as
 * kvasm's quantizer (llama.cpp's llama_tensor_get_type) picks them for `target`, each matrix's rows tiled from
 * a pool of POOL_ROWS rows quantized once. One tensor is in memory at a time (the largest, llama3-8b's Q6_K
 * output.weight, 431 MB).
 */
export async function writeSyntheticQuantized(path: string, shape: SyntheticShape, target: QuantizeTarget): Promise<void> {
  const list = syntheticTensorList(shape);
  const metadata = syntheticMetadata(shape, QUANT_FILE_TYPE[target]);
  metadata.push({ key: "general.quantization_version", type: { type: "u32" }, value: 2 });
  const nAttnV = list.filter((t) => t.name.includes("attn_v.weight")).length;
  const nFfnDown = list.filter((t) => t.name.includes("ffn_down")).length;
  const ctx = { hasOutput: true, iAttnV: 0, nAttnV, iFfnDown: 0, nFfnDown };
  const pools = new Map<string, Uint8Array>();
  const pool = (type: number, n: number, std: number, seed: number): Uint8Array => {
    const key = `${type}/${n}/${std}`;
    let p = pools.get(key);
    if (!p) {
      const f = new Float32Array(POOL_ROWS * n);
      fillRandom(f, seed * 2654435761, std);
      pools.set(key, p = quantizeRows(type, f, n));
    }
    return p;
  };
  let seed = 1;
  const tensors: GGUFTensorToWrite[] = list.map((t) => {
    const mySeed = seed++;
    const type = t.std === 0 ? GGMLType.F32 : chooseTensorType(target, t, ctx);
    if (t.name.includes("attn_v.weight")) ctx.iAttnV++;
    if (t.name.includes("ffn_down")) ctx.iFfnDown++;
    return {
      name: t.name,
      type,
      shape: t.shape,
      data: () => {
        if (t.std === 0) return new Uint8Array(new Float32Array(t.shape[0]).fill(1).buffer);
        const n = t.shape[0], rows = t.shape[1], rb = rowBytes(type, n)!;
        const src = pool(type, n, t.std, mySeed), out = new Uint8Array(rows * rb);
        // xorshift picks a pool row per row: no two tensors (or neighbouring rows) repeat the same pattern
        let s = (mySeed * 0x9e3779b1) >>> 0 || 1;
        for (let r = 0; r < rows; r++) {
          s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
          const from = ((s >>> 0) % POOL_ROWS) * rb;
          out.set(src.subarray(from, from + rb), r * rb);
        }
        return out;
      },
    };
  });
  await writeGGUF(await fileSink(path), metadata, tensors);
}

function toF16(f: Float32Array): Uint8Array {
  const out = new Uint16Array(f.length);
  const buf = new Float32Array(1), bits = new Uint32Array(buf.buffer);
  for (let i = 0; i < f.length; i++) {
    buf[0] = f[i];
    const x = bits[0];
    const sign = (x >>> 16) & 0x8000;
    const e = ((x >>> 23) & 0xff) - 127 + 15;
    const m = x & 0x7fffff;
    if (e <= 0) out[i] = sign; // tiny: flush (random weights never land here meaningfully)
    else if (e >= 31) out[i] = sign | 0x7c00;
    else {
      let h = sign | (e << 10) | (m >>> 13);
      const rest = m & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
      out[i] = h;
    }
  }
  return new Uint8Array(out.buffer);
}

/** The types ensureSyntheticModel writes (a bench's --types are checked against these). */
export const SYNTHETIC_TYPES = ["F32", "F16", "Q8_0", "Q4_0", "Q4_K", "Q4_K_M"] as const;
export type SyntheticType = typeof SYNTHETIC_TYPES[number];

/**
 * The path of a cached synthetic model, written on first use: F32/F16 by the
 * writer above, quantized types by kvasm's quantizer from the F32 file.
 */
export async function ensureSyntheticModel(shapeName: string, type: SyntheticType = "F32"): Promise<string> {
  const fs = await import("node:fs");
  const dir = new URL("./models/", import.meta.url).pathname;
  fs.mkdirSync(dir, { recursive: true });
  const path = `${dir}synthetic-${shapeName}-${type.toLowerCase()}.gguf`;
  if (fs.existsSync(path)) return path;
  if (type === "F32" || type === "F16") {
    const shape = SHAPES[shapeName];
    if (!shape) throw new Error(`unknown shape ${shapeName}; known: ${Object.keys(SHAPES).join(", ")}`);
    console.error(`writing ${path} ...`);
    await writeSyntheticModel(path + ".tmp", shape, type === "F32" ? GGMLType.F32 : GGMLType.F16);
  } else if (shapeName === "llama3-8b" || shapeName === "llama-1b") {
    // no F32 intermediate (5 GB for llama-1b, 32 GB for llama3-8b)
    console.error(`writing ${path} (rows tiled from quantized pools) ...`);
    await writeSyntheticQuantized(path + ".tmp", SHAPES[shapeName], type);
  } else {
    const f32 = await ensureSyntheticModel(shapeName, "F32");
    console.error(`quantizing ${f32} to ${type} ...`);
    const input = await openModelFile(f32);
    try {
      await quantizeModel({ input, output: await fileSink(path + ".tmp"), type });
    } finally {
      await input.source.close();
    }
  }
  fs.renameSync(path + ".tmp", path);
  return path;
}

if (import.meta.main) {
  const USAGE = `kvasm's synthetic-model writer: a llama GGUF with real shapes and random weights.

  deno run -A bench/synthetic.ts [OUT.gguf] [SHAPE]          F32 (SHAPE: ${Object.keys(SHAPES).join(" | ")}; default stories110M)
  deno run -A bench/synthetic.ts --ensure SHAPE [TYPE]      the cached file in bench/models/ (written if absent), its path printed
  -h, --help                                                 this text`;
  const { values: opts, positionals: args } = benchArgs(
    USAGE,
    { options: { ensure: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } }, allowPositionals: true },
  );
  const shapes = Object.keys(SHAPES);
  if (opts.ensure) {
    if (args[0] === undefined) usageError("--ensure: a SHAPE is needed", USAGE);
    const shape = choiceFlag(USAGE, "SHAPE", args[0], shapes), type = choiceFlag(USAGE, "TYPE", args[1] ?? "F32", SYNTHETIC_TYPES);
    console.log(await ensureSyntheticModel(shape, type));
    // deno-lint-ignore no-explicit-any
    (globalThis as any).Deno?.exit(0);
  } else {
    const shape = SHAPES[choiceFlag(USAGE, "SHAPE", args[1] ?? "stories110M", shapes)];
    await writeSyntheticModel(args[0] ?? "synthetic.gguf", shape);
  }
}
