/**
 * Hugging Face safetensors: u64 little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}),
 * then the data; offsets are relative to the byte after the header.
 *
 * Tensor names stay the Hugging Face names (mapping to GGUF names belongs to the
 * architecture). Shapes are reversed into ggml order: a row-major [out, in]
 * matrix becomes shape [in, out]. `__metadata__` entries appear as
 * `safetensors.metadata.<key>` so they cannot collide with GGUF keys.
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { ByteSource } from "../io/source.ts";
import { GGMLType, type GGMLTypeId } from "./ggml-types.ts";
import { DEFAULT_HEADER_LIMITS, type HeaderLimits, type MetadataValue, type ModelFile, type TensorInfo } from "./types.ts";

/** Element size of every safetensors dtype, and the ggml type it maps to (undefined: ggml has none). */
const DTYPES: Record<string, [bytes: number, ggml: GGMLTypeId | undefined]> = {
  F32: [4, GGMLType.F32],
  F16: [2, GGMLType.F16],
  BF16: [2, GGMLType.BF16],
  F64: [8, GGMLType.F64],
  I8: [1, GGMLType.I8],
  I16: [2, GGMLType.I16],
  I32: [4, GGMLType.I32],
  I64: [8, GGMLType.I64],
  U8: [1, undefined],
  U16: [2, undefined],
  U32: [4, undefined],
  U64: [8, undefined],
  BOOL: [1, undefined],
  F8_E4M3: [1, undefined],
  F8_E5M2: [1, undefined],
};

/** Headers above this are not real (the format's own reader caps them at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;
/**
 * Header bytes allowed per entry of LoadOptions.limits.maxMetadataEntries (a real tensor entry takes about 100), so
 * a header too big to hold that many entries is refused before it is read and parsed (parsing takes about 15 times
 * its size in memory); never less than HEADER_BYTES_FLOOR.
 */
const HEADER_BYTES_PER_ENTRY = 256;
const HEADER_BYTES_FLOOR = 1 << 20;
/**
 * Keys a valid header holds per entry allowed: a tensor's name and its dtype, shape and data_offsets (4), and the
 * __metadata__ entries (at most as many again, 1 each).
 */
const KEYS_PER_ENTRY = 5;

export async function readSafetensors(source: ByteSource, limits: HeaderLimits = DEFAULT_HEADER_LIMITS): Promise<ModelFile> {
  const fail: (problem: string) => never = (problem) => {
    throw new FormatError(source.name, problem);
  };
  if (source.size < 8) fail(`file is ${source.size} bytes, too short for a safetensors header length`);
  const lenBytes = new Uint8Array(8);
  await source.read(0, lenBytes);
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(source.size - 8, MAX_HEADER_BYTES))) {
    fail(`safetensors header length ${headerLen} is larger than the file (${source.size} bytes) allows`);
  }
  const maxHeader = Math.max(HEADER_BYTES_FLOOR, limits.maxMetadataEntries * HEADER_BYTES_PER_ENTRY);
  if (headerLen > BigInt(maxHeader)) {
    fail(
      `safetensors header length ${headerLen} is over the limit of ${maxHeader} bytes (${HEADER_BYTES_PER_ENTRY} a header entry: LoadOptions.limits.maxMetadataEntries)`,
    );
  }
  const headerBytes = new Uint8Array(Number(headerLen));
  await source.read(8, headerBytes);
  const over = (what: string, n: number, limit: number, option: keyof HeaderLimits) =>
    fail(`${what} ${n} is over the limit of ${limit} (LoadOptions.limits.${option})`);
  // counted before parsing: JSON.parse of millions of small entries takes seconds and hundreds of MiB
  const keys = countJsonKeys(headerBytes);
  if (keys.top > limits.maxMetadataEntries) over("header entry count", keys.top, limits.maxMetadataEntries, "maxMetadataEntries");
  if (keys.all > KEYS_PER_ENTRY * limits.maxMetadataEntries) {
    over("header key count", keys.all, KEYS_PER_ENTRY * limits.maxMetadataEntries, "maxMetadataEntries");
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    fail(`safetensors header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) fail("safetensors header is not a JSON object");

  const dataStart = 8 + Number(headerLen);
  const dataSize = source.size - dataStart;
  const metadata = new Map<string, MetadataValue>();
  const tensors = new Map<string, TensorInfo>();
  const spans: { name: string; begin: number; end: number }[] = [];

  const entries = Object.entries(header as Record<string, unknown>);
  if (entries.length > limits.maxMetadataEntries) {
    over("header entry count", entries.length, limits.maxMetadataEntries, "maxMetadataEntries");
  }
  for (const [name, entry] of entries) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail("__metadata__ is not a JSON object");
      const meta = Object.entries(entry as Record<string, unknown>);
      if (meta.length > limits.maxMetadataEntries) {
        over("__metadata__ entry count", meta.length, limits.maxMetadataEntries, "maxMetadataEntries");
      }
      for (const [k, v] of meta) {
        if (typeof v !== "string") fail(`__metadata__ entry "${k}" is not a string`);
        if (v.length > limits.maxStringBytes) {
          over(`length of __metadata__ entry "${k}"`, v.length, limits.maxStringBytes, "maxStringBytes");
        }
        metadata.set(`safetensors.metadata.${k}`, v as string);
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) fail(`tensor "${name}": entry is not a JSON object`);
    const { dtype, shape, data_offsets: offsets } = e;
    if (typeof dtype !== "string") fail(`tensor "${name}": dtype is missing or not a string`);
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((n) => Number.isSafeInteger(n) && n >= 0)) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
    }
    const dims = shape as number[];
    const [begin, end] = offsets as number[];
    const kind = Object.hasOwn(DTYPES, dtype as string) ? DTYPES[dtype as string] : undefined; // never "constructor"
    if (!kind) fail(`tensor "${name}": unknown dtype "${dtype}"`);
    const [elemBytes, ggml] = kind;
    if (begin > end) fail(`tensor "${name}": data_offsets [${begin}, ${end}] begin after they end`);
    if (end > dataSize) {
      fail(
        `tensor "${name}": data_offsets [${begin}, ${end}] extend past the end of the file (data section is ${dataSize} bytes, file is ${source.size})`,
      );
    }
    const elements = dims.reduce((a, b) => a * b, 1);
    if (elements * elemBytes !== end - begin) {
      fail(`tensor "${name}": ${dtype} [${dims.join(", ")}] needs ${elements * elemBytes} bytes but data_offsets span ${end - begin}`);
    }
    if (ggml === undefined) throw new UnsupportedError(`${source.name}: tensor "${name}" has dtype ${dtype}, which kvasm cannot hold`);
    // ggml order is the reverse of row-major; a scalar becomes a 1-element vector.
    const ggmlShape = dims.length === 0 ? [1] : [...dims].reverse();
    tensors.set(name, { name, type: ggml, shape: ggmlShape, offset: dataStart + begin, byteLength: end - begin });
    spans.push({ name, begin, end });
  }

  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1], cur = spans[i];
    if (cur.begin < prev.end && cur.end > cur.begin) {
      fail(`tensors "${prev.name}" [${prev.begin}, ${prev.end}) and "${cur.name}" [${cur.begin}, ${cur.end}) overlap`);
    }
  }
  return { format: "safetensors", source, metadata, tensors };
}

/**
 * Keys in a JSON text without parsing it: `top` at the outermost object's level, `all` at any depth (a colon outside a
 * string is a key's end). Malformed JSON gives some count; JSON.parse refuses it next.
 */
function countJsonKeys(json: Uint8Array): { top: number; all: number } {
  const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a;
  let top = 0, all = 0, depth = 0, inString = false;
  for (let i = 0; i < json.length; i++) {
    const b = json[i];
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === 0x7b || b === 0x5b) depth++; // { [
    else if (b === 0x7d || b === 0x5d) depth--; // } ]
    else if (b === COLON) {
      all++;
      if (depth === 1) top++;
    }
  }
  return { top, all };
}

export interface ShardedTensorInfo extends TensorInfo {
  /** The shard holding this tensor's bytes (`offset` is within it). */
  source: ByteSource;
}

export interface ShardedModelFile extends ModelFile {
  format: "safetensors";
  /**
   * Reads the index file, and its close() closes every shard too, so closing a
   * model works as for one file. Tensor data lives in each tensor's own `source`.
   */
  source: ByteSource;
  tensors: Map<string, ShardedTensorInfo>;
  /** One per shard, in first-use order. */
  shards: ModelFile[];
}

/**
 * A sharded checkpoint: `model.safetensors.index.json` maps tensor names to shard
 * files in the same directory. `path` is the index file or the directory holding it;
 * `open` turns a path into a ByteSource (FileSource.open on disk).
 */
export async function readSafetensorsIndex(
  path: string,
  open: (path: string) => Promise<ByteSource>,
  limits: HeaderLimits = DEFAULT_HEADER_LIMITS,
): Promise<ShardedModelFile> {
  const indexPath = path.endsWith(".json") ? path : joinPath(path, "model.safetensors.index.json");
  const dir = indexPath.replace(/[^/\\]*$/, "");
  const index = await open(indexPath);
  const fail: (problem: string) => never = (problem) => {
    throw new FormatError(index.name, problem);
  };
  const bytes = new Uint8Array(index.size);
  await index.read(0, bytes);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    fail(`safetensors index is not valid JSON: ${(e as Error).message}`);
  }
  const weightMap = (json as { weight_map?: unknown })?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) fail('safetensors index has no "weight_map" object');

  const metadata = new Map<string, MetadataValue>();
  const indexMeta = (json as { metadata?: unknown }).metadata;
  if (typeof indexMeta === "object" && indexMeta !== null) {
    for (const [k, v] of Object.entries(indexMeta)) {
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") metadata.set(`safetensors.index.${k}`, v);
    }
  }

  const shards = new Map<string, ModelFile>();
  const tensors = new Map<string, ShardedTensorInfo>();
  try {
    for (const [name, shardFile] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shardFile !== "string" || shardFile.includes("/") || shardFile.includes("\\") || shardFile === "..") {
        fail(`weight_map entry "${name}" names ${JSON.stringify(shardFile)}, not a file beside the index`);
      }
      let shard = shards.get(shardFile as string);
      if (!shard) {
        const src = await open(dir + shardFile);
        try {
          shard = await readSafetensors(src, limits);
        } catch (e) {
          await src.close();
          throw e;
        }
        shards.set(shardFile as string, shard);
        for (const [k, v] of shard.metadata) if (!metadata.has(k)) metadata.set(k, v);
      }
      const info = shard.tensors.get(name);
      if (!info) fail(`weight_map puts tensor "${name}" in ${shardFile}, which does not hold it`);
      tensors.set(name, { ...info, source: shard.source });
    }
  } catch (e) {
    for (const s of shards.values()) await s.source.close();
    await index.close();
    throw e;
  }
  const shardList = [...shards.values()];
  const source: ByteSource = {
    name: index.name,
    size: index.size,
    read: (offset, dest) => index.read(offset, dest),
    async close() {
      for (const s of shardList) await s.source.close();
      await index.close();
    },
  };
  return { format: "safetensors", source, metadata, tensors, shards: shardList };
}

function joinPath(dir: string, file: string): string {
  return dir.endsWith("/") || dir.endsWith("\\") ? dir + file : `${dir}/${file}`;
}
