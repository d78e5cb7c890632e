/**
 * Karpathy's llama2.c checkpoints, exposed under GGUF tensor names and keys.
 *
 * v0 ("legacy", run.c): 7 x i32 header (dim, hidden_dim, n_layers, n_heads,
 *   n_kv_heads, vocab_size, seq_len; vocab_size < 0 means an unshared classifier),
 *   then f32 arrays stacked over layers: token_embedding, rms_att, wq, wk, wv, wo,
 *   rms_ffn, w1, w2, w3, rms_final, freq_cis_real, freq_cis_imag, [wcls].
 * v1 (export.py version1_export): 256-byte header (u32 magic "ak42", i32 version,
 *   the 7 ints, u8 shared_classifier, zero padding), then rms_att, rms_ffn,
 *   rms_final, token_embedding, wq, wk, wv, wo, w1, w2, w3, [wcls]; no freq_cis.
 * v2 (export.py int8 Q8_0 with per-group scales) is not read.
 *
 * Weights are PyTorch Linear matrices [out, in] row-major, i.e. ggml shape
 * [in, out]; llama2.c's RoPE rotates interleaved pairs, which is GGUF llama's
 * convention, so the tensors map one to one (layer slices of the stacked arrays).
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { ByteSource } from "../io/source.ts";
import { GGMLType } from "./ggml-types.ts";
import type { MetadataValue, ModelFile, TensorInfo } from "./types.ts";

export const LLAMA2C_MAGIC = 0x616b3432; // "ak42"
const V1_HEADER_BYTES = 256;
const V0_HEADER_BYTES = 28;
const F32 = 4;

export interface Llama2cHeader {
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  sharedClassifier: boolean;
}

async function readHeader(source: ByteSource): Promise<Llama2cHeader> {
  const fail: (problem: string) => never = (problem) => {
    throw new FormatError(source.name, problem);
  };
  if (source.size < V0_HEADER_BYTES) fail(`file is ${source.size} bytes, too short for a llama2.c header (${V0_HEADER_BYTES} bytes)`);
  const head = new Uint8Array(Math.min(source.size, V1_HEADER_BYTES));
  await source.read(0, head);
  const dv = new DataView(head.buffer);
  if (dv.getUint32(0, true) === LLAMA2C_MAGIC) {
    const version = dv.getInt32(4, true);
    if (version === 2) {
      throw new UnsupportedError(
        `${source.name}: llama2.c version 2 (int8 Q8_0) checkpoints are not supported; export with version 1 (fp32) or convert to GGUF`,
      );
    }
    if (version !== 1) {
      throw new UnsupportedError(
        `${source.name}: llama2.c checkpoint version ${version} is not supported (kvasm reads the legacy format and version 1)`,
      );
    }
    if (source.size < V1_HEADER_BYTES) fail(`file is ${source.size} bytes, too short for a llama2.c v1 header (${V1_HEADER_BYTES} bytes)`);
    const ints = Array.from({ length: 7 }, (_, i) => dv.getInt32(8 + 4 * i, true));
    const shared = dv.getUint8(36);
    if (shared > 1) fail(`shared_classifier flag is ${shared}, expected 0 or 1`);
    return checkHeader(source.name, 1, ints, shared === 1);
  }
  const ints = Array.from({ length: 7 }, (_, i) => dv.getInt32(4 * i, true));
  // v0 marks an unshared classifier with a negative vocab_size.
  const shared = ints[5] > 0;
  ints[5] = Math.abs(ints[5]);
  return checkHeader(source.name, 0, ints, shared);
}

function checkHeader(file: string, version: 0 | 1, ints: number[], sharedClassifier: boolean): Llama2cHeader {
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen] = ints;
  const names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
  // Limits far above any real model; they reject random bytes read as a header.
  const limits = [1 << 16, 1 << 18, 1 << 10, 1 << 10, 1 << 10, 1 << 22, 1 << 22];
  const bad = ints.findIndex((v, i) => !(v > 0 && v <= limits[i]));
  const fail: (problem: string) => never = (problem) => {
    throw new FormatError(
      file,
      `not a valid llama2.c checkpoint: ${problem} (header: ${names.map((n, i) => `${n}=${ints[i]}`).join(", ")})`,
    );
  };
  if (bad >= 0) fail(`${names[bad]} = ${ints[bad]} is out of range`);
  if (dim % nHeads !== 0) fail(`n_heads ${nHeads} does not divide dim ${dim}`);
  if (nHeads % nKvHeads !== 0) fail(`n_kv_heads ${nKvHeads} does not divide n_heads ${nHeads}`);
  if ((dim / nHeads) % 2 !== 0) fail(`head size ${dim / nHeads} is odd; RoPE needs pairs`);
  return { version, dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, sharedClassifier };
}

/** One stacked array of the checkpoint: element count per layer (or in total when not per-layer). */
interface Block {
  key: string;
  count: number;
  perLayer: boolean;
}

function layout(h: Llama2cHeader): Block[] {
  const headDim = h.dim / h.nHeads;
  const kvDim = h.nKvHeads * headDim;
  const L = (key: string, count: number): Block => ({ key, count, perLayer: true });
  const G = (key: string, count: number): Block => ({ key, count, perLayer: false });
  const emb = G("token_embd", h.vocabSize * h.dim);
  const rmsAtt = L("attn_norm", h.dim), rmsFfn = L("ffn_norm", h.dim), rmsFinal = G("output_norm", h.dim);
  const matrices = [
    L("attn_q", h.dim * h.dim),
    L("attn_k", h.dim * kvDim),
    L("attn_v", h.dim * kvDim),
    L("attn_output", h.dim * h.dim),
  ];
  const ffn = [L("ffn_gate", h.dim * h.hiddenDim), L("ffn_down", h.hiddenDim * h.dim), L("ffn_up", h.dim * h.hiddenDim)];
  const cls = h.sharedClassifier ? [] : [G("output", h.vocabSize * h.dim)];
  if (h.version === 1) return [rmsAtt, rmsFfn, rmsFinal, emb, ...matrices, ...ffn, ...cls];
  const freq = G("", (h.seqLen * headDim) / 2); // freq_cis_real / _imag: skipped, kvasm computes RoPE itself
  return [emb, rmsAtt, ...matrices, rmsFfn, ...ffn, rmsFinal, freq, freq, ...cls];
}

/** ggml shape of each canonical tensor (shape[0] = row length). */
function shapeOf(key: string, h: Llama2cHeader): number[] {
  const kvDim = h.nKvHeads * (h.dim / h.nHeads);
  switch (key) {
    case "token_embd":
    case "output":
      return [h.dim, h.vocabSize];
    case "attn_q":
    case "attn_output":
      return [h.dim, h.dim];
    case "attn_k":
    case "attn_v":
      return [h.dim, kvDim];
    case "ffn_gate":
    case "ffn_up":
      return [h.dim, h.hiddenDim];
    case "ffn_down":
      return [h.hiddenDim, h.dim];
    default:
      return [h.dim]; // norms
  }
}

export async function readLlama2c(source: ByteSource): Promise<ModelFile> {
  const h = await readHeader(source);
  const blocks = layout(h);
  let offset = h.version === 1 ? V1_HEADER_BYTES : V0_HEADER_BYTES;
  const expected = blocks.reduce((n, b) => n + b.count * F32 * (b.perLayer ? h.nLayers : 1), offset);
  if (source.size < expected) {
    throw new FormatError(
      source.name,
      `truncated llama2.c checkpoint: expected ${expected} bytes for this header, file is ${source.size} bytes`,
    );
  }
  if (source.size > expected) {
    throw new FormatError(
      source.name,
      `llama2.c checkpoint is ${source.size} bytes, expected exactly ${expected} for this header (${
        source.size - expected
      } bytes extra: a different format or a wrong header?)`,
    );
  }

  const tensors = new Map<string, TensorInfo>();
  const add = (name: string, key: string, at: number, count: number) => {
    tensors.set(name, { name, type: GGMLType.F32, shape: shapeOf(key, h), offset: at, byteLength: count * F32 });
  };
  for (const b of blocks) {
    if (b.key === "") {
      offset += b.count * F32;
    } else if (b.perLayer) {
      for (let l = 0; l < h.nLayers; l++) add(`blk.${l}.${b.key}.weight`, b.key, offset + l * b.count * F32, b.count);
      offset += h.nLayers * b.count * F32;
    } else {
      add(`${b.key}.weight`, b.key, offset, b.count);
      offset += b.count * F32;
    }
  }

  const baseName = source.name.split(/[\\/]/).pop()!.replace(/\.bin$/, "");
  const metadata = new Map<string, MetadataValue>([
    ["general.architecture", "llama"],
    ["general.name", baseName],
    ["general.file_type", 0], // all F32
    ["llama.embedding_length", h.dim],
    ["llama.feed_forward_length", h.hiddenDim],
    ["llama.block_count", h.nLayers],
    ["llama.attention.head_count", h.nHeads],
    ["llama.attention.head_count_kv", h.nKvHeads],
    ["llama.context_length", h.seqLen],
    ["llama.vocab_size", h.vocabSize],
    ["llama.rope.freq_base", 10000],
    ["llama.rope.dimension_count", h.dim / h.nHeads],
    ["llama.attention.layer_norm_rms_epsilon", 1e-5],
    ["llama2c.version", h.version],
  ]);
  return { format: "llama2c", source, metadata, tensors };
}
