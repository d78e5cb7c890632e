import type { ByteSource } from "../io/source.ts";
import type { GGMLTypeId } from "./ggml-types.ts";
import { optionNames } from "../errors.ts";

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

/**
 * Bounds on what a header may declare, on top of what the file's size allows: a count or length
 * that fits the file can still cost far more memory as JS objects than as bytes (an array of 2^27
 * empty strings is 1 GB on disk and several in a heap). LoadOptions.limits overrides them.
 */
export interface HeaderLimits {
  /** Metadata entries (GGUF key-value pairs, safetensors header entries); default 65,536. */
  maxMetadataEntries: number;
  /** Elements of one metadata array (a vocabulary, its merges); default 2^24 (Gemma's 256K vocabulary is 2^18). */
  maxArrayLength: number;
  /** Bytes of one string (a key, a token, a chat template, an embedded tokenizer.json); default 64 MiB. */
  maxStringBytes: number;
}

/** HeaderLimits' names: LoadOptions.limits refuses any other key. */
export const HEADER_LIMIT_NAMES = optionNames<HeaderLimits>()(["maxMetadataEntries", "maxArrayLength", "maxStringBytes"]);

export const DEFAULT_HEADER_LIMITS: HeaderLimits = { maxMetadataEntries: 1 << 16, maxArrayLength: 1 << 24, maxStringBytes: 64 << 20 };

/**
 * `given` over the defaults, each a positive integer (a ParamError is the caller's; checked where loading starts). A
 * field given as undefined keeps its default (a spread put undefined over it, refused as "got undefined"); null is
 * kept, for that check to refuse (`??` took it for the default unseen).
 */
export function headerLimits(given?: Partial<HeaderLimits>): HeaderLimits {
  const out = { ...DEFAULT_HEADER_LIMITS };
  for (const k of HEADER_LIMIT_NAMES) if (given?.[k] !== undefined) out[k] = given[k];
  return out;
}
