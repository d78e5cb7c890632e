import type { ByteSource } from "../io/source.ts";
import type { GGMLTypeId } from "./ggml-types.ts";

/**
 * One tensor as a loader found it in a file. Shapes are in ggml order:
 * `shape[0]` is the length of a row (the contiguous dimension), so a
 * Linear layer from n inputs to d outputs has shape [n, d].
 */
export interface TensorInfo {
  /** kvasm's canonical name: llama.cpp's GGUF names (`token_embd.weight`, `blk.3.attn_q.weight`, ...). */
  name: string;
  type: GGMLTypeId;
  shape: number[];
  /** Absolute byte offset of the data in the source. */
  offset: number;
  byteLength: number;
}

export type MetadataValue = string | number | bigint | boolean | MetadataValue[] | ArrayLike<number>;

/** What every loader hands over: names and where their bytes are; nothing is read yet. */
export interface ModelFile {
  format: "gguf" | "llama2c" | "safetensors";
  source: ByteSource;
  /** GGUF metadata keys verbatim; other formats translate their headers into the same keys. */
  metadata: Map<string, MetadataValue>;
  tensors: Map<string, TensorInfo>;
}
