// src/convert/ owns turning other checkpoints into GGUF (Hugging Face safetensors + config.json, with llama.cpp's names).
/**
 * Hugging Face checkpoint (config.json + safetensors) -> GGUF, with llama.cpp's
 * metadata keys and tensor names for each architecture, written by
 * `writeGGUF`. The tensor bytes come from the same mapping the loader uses
 * (src/model/hf-config.ts: GPT-2's Conv1D transposed, GPT-NeoX's per-head QKV
 * regrouped), so one set of layout rules serves both paths. What differs from
 * loading: llama/Mistral Q and K rows are permuted back from Hugging Face's
 * rotate_half order to interleaved pairs (llama.cpp's `permute`), and Llama 3
 * RoPE scaling becomes llama.cpp's `rope_freqs.weight` tensor of divisors.
 * Tensors keep their element type (F32, F16, BF16); no tokenizer is embedded.
 * `kvasm quantize` reads the same contents (hfGGUFContents) and quantizes them.
 */
import { openModelFile } from "../formats/open.ts";
import type { MetadataValue, ModelFile, TensorInfo } from "../formats/types.ts";
import {
  type ByteSink,
  fileSink,
  type GGUFContents,
  type GGUFMetadataEntry,
  type GGUFTensorToWrite,
  writeGGUF,
} from "../formats/gguf-writer.ts";
import type { GGUFValueType } from "../formats/gguf.ts";
import { rowBytes } from "../formats/ggml-types.ts";
import { withHFConfig } from "../model/hf-config.ts";
import { FormatError } from "../errors.ts";

/** Metadata keys that describe the Hugging Face source, not the model: not written. */
const SOURCE_ONLY = /^(kvasm\.|safetensors\.)|\.rope\.scaling\./;

/** Keys llama.cpp reads as f32 (a JS integer like 10000 would otherwise be typed u32). */
const FLOAT_KEYS = /(freq_base|epsilon|factor|max_alibi_bias)$/;

/** Writes the GGUF form of an HF-mapped model file (see hfModelFile) to `sink`, tensors in their own element type. */
export async function writeHFModelAsGGUF(file: ModelFile, sink: ByteSink, name?: string): Promise<void> {
  const { metadata, tensors } = hfGGUFContents(file, name);
  await writeGGUF(sink, metadata, tensors);
}

/**
 * What the GGUF form of an HF-mapped model file holds: llama.cpp's metadata
 * entries and its tensors, each read (and Q/K rows permuted) only when its
 * `data` is called. writeHFModelAsGGUF writes it as it is; the quantizer
 * (src/quant/quantize.ts) quantizes the same tensors, so both share one layout.
 */
export function hfGGUFContents(file: ModelFile, name?: string): GGUFContents {
  const arch = file.metadata.get("general.architecture");
  if (typeof arch !== "string" || !isHFMapped(file)) {
    throw new FormatError(file.source.name, "is not a Hugging Face checkpoint mapped through its config.json");
  }
  const metadata: GGUFMetadataEntry[] = [
    { key: "general.architecture", type: { type: "string" }, value: arch },
    { key: "general.name", type: { type: "string" }, value: name ?? String(file.metadata.get("kvasm.hf.model_type")) },
  ];
  for (const [key, value] of file.metadata) {
    if (key === "general.architecture" || SOURCE_ONLY.test(key)) continue;
    metadata.push({ key, type: valueType(key, value), value });
  }

  const tensors: GGUFTensorToWrite[] = [];
  const permuteQK = arch === "llama"; // llama.cpp's llama graph rotates interleaved pairs
  const nHeads = Number(file.metadata.get(`${arch}.attention.head_count`));
  const nKvHeads = Number(file.metadata.get(`${arch}.attention.head_count_kv`) ?? nHeads);
  for (const t of file.tensors.values()) {
    const heads = /\.attn_q\./.test(t.name) ? nHeads : /\.attn_k\./.test(t.name) ? nKvHeads : 0;
    tensors.push({
      name: t.name,
      type: t.type,
      shape: t.shape,
      data: async () => {
        const bytes = await readTensor(file, t);
        return permuteQK && heads > 0 ? halvesToInterleaved(bytes, heads, t) : bytes;
      },
    });
  }
  const scaling = llama3Factors(file, arch);
  if (scaling) {
    tensors.push({ name: "rope_freqs.weight", type: 0, shape: [scaling.length], data: new Uint8Array(scaling.buffer) });
  }
  return { metadata, tensors };
}

/** Whether `file` is a safetensors checkpoint mapped through its config.json (withHFConfig), so hfGGUFContents takes it. */
export function isHFMapped(file: ModelFile): boolean {
  return file.metadata.has("kvasm.hf.config");
}

/** Converts the Hugging Face directory (or .safetensors beside a config.json) at `input` to a GGUF file at `output`. */
export async function convertHFToGGUF(input: string, output: string): Promise<void> {
  const opened = await openModelFile(input);
  try {
    const file = await withHFConfig(opened, input);
    await writeHFModelAsGGUF(file, await fileSink(output));
  } finally {
    await opened.source.close();
  }
}

async function readTensor(file: ModelFile, t: TensorInfo): Promise<Uint8Array> {
  const bytes = new Uint8Array(t.byteLength);
  await ((t as TensorInfo & { source?: ModelFile["source"] }).source ?? file.source).read(t.offset, bytes);
  return bytes;
}

/**
 * Rows of each head from rotate_half order (first halves, then second halves
 * of the pairs) back to interleaved pairs: interleaved row 2i + s is HF row
 * s * headDim/2 + i. A bias permutes the same way, one element per row.
 */
function halvesToInterleaved(src: Uint8Array, nHeads: number, t: { name: string; type: number; shape: number[] }): Uint8Array {
  const isBias = t.shape.length === 1;
  const rows = isBias ? t.shape[0] : t.shape[1];
  const rowLen = isBias ? 4 : rowBytes(t.type, t.shape[0])!;
  const headDim = rows / nHeads, half = headDim / 2;
  const out = new Uint8Array(src.length);
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * headDim + s * half + i) * rowLen, to = (h * headDim + 2 * i + s) * rowLen;
        out.set(src.subarray(from, from + rowLen), to);
      }
    }
  }
  return out;
}

/**
 * Llama 3 scaling as llama.cpp stores it: one divisor per rotated pair
 * (1 for high frequencies, `factor` for low ones, a blend between).
 */
function llama3Factors(file: ModelFile, arch: string): Float32Array | undefined {
  const m = file.metadata;
  if (m.get(`${arch}.rope.scaling.type`) !== "llama3") return undefined;
  const num = (k: string) => Number(m.get(`${arch}.rope.scaling.${k}`));
  const factor = num("factor"), low = num("low_freq_factor"), high = num("high_freq_factor"), orig = num("original_context_length");
  const base = Number(m.get(`${arch}.rope.freq_base`)), dim = Number(m.get(`${arch}.rope.dimension_count`));
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.pow(base, (2 * i) / dim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < orig / high) out[i] = 1;
    else if (wavelen > orig / low) out[i] = factor;
    else {
      const smooth = (orig / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

function valueType(key: string, value: MetadataValue): GGUFValueType {
  if (typeof value === "string") return { type: "string" };
  if (typeof value === "boolean") return { type: "bool" };
  if (typeof value === "number") return { type: FLOAT_KEYS.test(key) || !Number.isInteger(value) ? "f32" : value < 0 ? "i32" : "u32" };
  throw new FormatError(key, `metadata value ${String(value)} has no GGUF type here`);
}
