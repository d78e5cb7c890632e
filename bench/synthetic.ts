/**
 * kvasm's synthetic-model writer: a llama GGUF with real shapes and random
 * weights, for benchmarks (throughput does not depend on the values).
 * Streams one tensor at a time, so a 440 MB F32 file never sits in memory whole.
 *
 *   deno run -A bench/synthetic.ts [out.gguf] [shape]     (shape: stories110M | stories15M | llama-1b)
 */
import { fileSink, type GGUFMetadataEntry, type GGUFTensorToWrite, writeGGUF } from "../src/formats/gguf-writer.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { openModelFile } from "../src/formats/open.ts";
import { quantizeModel } from "../src/quant/quantize.ts";

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

export async function writeSyntheticModel(path: string, shape: SyntheticShape, type: number = GGMLType.F32): Promise<void> {
  if (type !== GGMLType.F32 && type !== GGMLType.F16) {
    throw new Error("the synthetic writer makes F32 or F16 models; quantize them with kvasm quantize");
  }
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize } = shape;
  const headDim = dim / nHeads;
  const kvDim = nKvHeads * headDim;
  const vocab = syntheticVocab(vocabSize);
  const md = (key: string, t: string, value: unknown): GGUFMetadataEntry => ({
    key,
    type: { type: t } as GGUFMetadataEntry["type"],
    value,
  });
  const metadata: GGUFMetadataEntry[] = [
    md("general.architecture", "string", "llama"),
    md("general.name", "string", `synthetic ${shape.name}`),
    md("general.file_type", "u32", type === GGMLType.F32 ? 0 : 1),
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
  const tensors: GGUFTensorToWrite[] = [tensor("token_embd.weight", [dim, vocabSize], 1)];
  const std = 0.02;
  for (let l = 0; l < nLayers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      tensor(p + "attn_norm.weight", [dim], 0, true),
      tensor(p + "attn_q.weight", [dim, dim], std),
      tensor(p + "attn_k.weight", [dim, kvDim], std),
      tensor(p + "attn_v.weight", [dim, kvDim], std),
      tensor(p + "attn_output.weight", [dim, dim], std),
      tensor(p + "ffn_norm.weight", [dim], 0, true),
      tensor(p + "ffn_gate.weight", [dim, hiddenDim], std),
      tensor(p + "ffn_up.weight", [dim, hiddenDim], std),
      tensor(p + "ffn_down.weight", [hiddenDim, dim], std),
    );
  }
  tensors.push(tensor("output_norm.weight", [dim], 0, true), tensor("output.weight", [dim, vocabSize], std));
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

export type SyntheticType = "F32" | "F16" | "Q8_0" | "Q4_0" | "Q4_K" | "Q4_K_M";

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
  // deno-lint-ignore no-explicit-any
  const args: string[] = (globalThis as any).Deno?.args ?? (globalThis as any).process.argv.slice(2);
  const shape = SHAPES[args[1] ?? "stories110M"];
  await writeSyntheticModel(args[0] ?? "synthetic.gguf", shape);
}
