/**
 * GGUF reader (v2 and v3, little-endian): metadata and the tensor table.
 * Tensor data is never read here; loaders stream it from `TensorInfo.offset`.
 *
 * Layout (ggml/docs/gguf.md):
 *   magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
 *   kv_count x (string key, u32 value_type, value)
 *   tensor_count x (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
 *   padding to `general.alignment` (default 32) | tensor data
 * A string is a u64 byte length followed by UTF-8 bytes (no terminator).
 */
import { checkOptionNames, FormatError } from "../errors.ts";
import type { ByteSource } from "../io/source.ts";
import { blockGeometry, ggmlTypeName } from "./ggml-types.ts";
import {
  DEFAULT_HEADER_LIMITS,
  HEADER_LIMIT_NAMES,
  type HeaderLimits,
  type MetadataValue,
  type ModelFile,
  type TensorInfo,
} from "./types.ts";

export type GGUFScalar = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "bool" | "string" | "u64" | "i64" | "f64";

/**
 * The declared type of one metadata value. Arrays of arrays are legal GGUF; each
 * inner array carries its own element type, so `inner` lists one type per element.
 */
export type GGUFValueType =
  | { type: GGUFScalar }
  | { type: "array"; of: GGUFScalar }
  | { type: "array"; of: "array"; inner: GGUFValueType[] };

export interface GGUFFile extends ModelFile {
  format: "gguf";
  version: number;
  alignment: number;
  /** Absolute offset of the tensor data section (tensor offsets in the file are relative to it). */
  dataOffset: number;
  metadataTypes: Map<string, GGUFValueType>;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** The largest general.alignment taken (1 GiB; llama.cpp writes 32, and the key is a u32). */
export const MAX_GGUF_ALIGNMENT = 2 ** 30;

/** A power of two from 1 to MAX_GGUF_ALIGNMENT; bounded first, as `&` works on 32 bits (2^32 + 2^31 would pass it). */
export function isGGUFAlignment(a: unknown): a is number {
  return typeof a === "number" && Number.isInteger(a) && a > 0 && a <= MAX_GGUF_ALIGNMENT && (a & (a - 1)) === 0;
}

/** Value type ids as stored in the file (gguf_type in ggml). */
export const GGUF_TYPE_IDS: Record<GGUFScalar | "array", number> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};
const TYPE_BY_ID: (GGUFScalar | "array")[] = [];
for (const [k, v] of Object.entries(GGUF_TYPE_IDS)) TYPE_BY_ID[v] = k as GGUFScalar | "array";

/** Bytes of one fixed-size scalar; strings and arrays are variable (their minimum is used for sanity checks). */
const GGUF_SCALAR_BYTES: Record<GGUFScalar, number> = {
  u8: 1,
  i8: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  bool: 1,
  string: 8,
  u64: 8,
  i64: 8,
  f64: 8,
};

const MAX_DIMS = 4;
const FIRST_CHUNK = 1 << 20;
const MAX_CHUNK = 64 << 20;

/**
 * A forward-only cursor over a ByteSource that keeps a window of the file in
 * memory and refills it (doubling the chunk) when a read runs past it, so a
 * 10 MB vocabulary costs a few reads and the tensor data is never touched.
 */
class HeaderCursor {
  pos = 0;
  /** What is being read, for error messages ("key of metadata entry 3", ...). */
  what = "header";
  private window = new Uint8Array(0);
  private view = new DataView(this.window.buffer);
  private windowStart = 0;
  private chunk = FIRST_CHUNK;
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });

  constructor(readonly source: ByteSource, readonly limits: HeaderLimits) {}

  fail(problem: string): never {
    throw new FormatError(this.source.name, problem);
  }

  get remaining(): number {
    return this.source.size - this.pos;
  }

  /** Makes [pos, pos + n) available in the window; returns the window-relative offset. */
  private async need(n: number): Promise<number> {
    const end = this.pos + n;
    if (end > this.source.size) {
      this.fail(`unexpected end of file at byte ${this.source.size} while reading ${this.what} (needed bytes up to ${end})`);
    }
    if (this.pos >= this.windowStart && end <= this.windowStart + this.window.length) return this.pos - this.windowStart;
    const size = Math.min(Math.max(n, this.chunk), this.source.size - this.pos);
    this.chunk = Math.min(this.chunk * 2, MAX_CHUNK);
    this.window = new Uint8Array(size);
    this.view = new DataView(this.window.buffer);
    this.windowStart = this.pos;
    try {
      await this.source.read(this.pos, this.window);
    } catch (e) {
      if (e instanceof FormatError) throw e;
      this.fail(`read failed at byte ${this.pos} while reading ${this.what}: ${(e as Error).message}`);
    }
    return 0;
  }

  async u8(): Promise<number> {
    const at = await this.need(1);
    this.pos += 1;
    return this.view.getUint8(at);
  }
  async u32(): Promise<number> {
    const at = await this.need(4);
    this.pos += 4;
    return this.view.getUint32(at, true);
  }
  /** A u64 that must be a count, length, dimension or offset: beyond 2^53 it cannot be real. */
  async size(what: string): Promise<number> {
    const at = await this.need(8);
    this.pos += 8;
    const v = this.view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is absurd (file is ${this.source.size} bytes)`);
    return Number(v);
  }

  /** Bytes [pos, pos + n) as a fresh, aligned copy. */
  async bytes(n: number): Promise<Uint8Array> {
    const at = await this.need(n);
    this.pos += n;
    return this.window.slice(at, at + n);
  }

  async string(): Promise<string> {
    const len = await this.size(`length of ${this.what}`);
    if (len > this.remaining) {
      this.fail(
        `string length ${len} in ${this.what} is more than the rest of the file (${this.remaining} bytes): a corrupt length or a truncated file`,
      );
    }
    if (len > this.limits.maxStringBytes) {
      this.fail(
        `string length ${len} in ${this.what} is over the limit of ${this.limits.maxStringBytes} bytes (LoadOptions.limits.maxStringBytes)`,
      );
    }
    const at = await this.need(len);
    this.pos += len;
    return this.decoder.decode(this.window.subarray(at, at + len));
  }

  async scalar(t: GGUFScalar): Promise<MetadataValue> {
    if (t === "string") return await this.string();
    const at = await this.need(GGUF_SCALAR_BYTES[t]);
    this.pos += GGUF_SCALAR_BYTES[t];
    const v = this.view;
    switch (t) {
      case "u8":
        return v.getUint8(at);
      case "i8":
        return v.getInt8(at);
      case "u16":
        return v.getUint16(at, true);
      case "i16":
        return v.getInt16(at, true);
      case "u32":
        return v.getUint32(at, true);
      case "i32":
        return v.getInt32(at, true);
      case "f32":
        return v.getFloat32(at, true);
      case "f64":
        return v.getFloat64(at, true);
      case "bool": {
        const b = v.getUint8(at);
        if (b > 1) this.fail(`bool value ${b} in ${this.what} is neither 0 nor 1`);
        return b === 1;
      }
      case "u64":
        return safeNumber(v.getBigUint64(at, true));
      case "i64":
        return safeNumber(v.getBigInt64(at, true));
    }
  }

  /** Reads a metadata value type id. */
  async typeId(): Promise<GGUFScalar | "array"> {
    const id = await this.u32();
    const t = TYPE_BY_ID[id];
    if (t === undefined) this.fail(`unknown metadata value type ${id} in ${this.what}`);
    return t;
  }

  /** An array body (element type and count already known to follow). Returns value and declared type. */
  async array(depth: number): Promise<[MetadataValue, GGUFValueType]> {
    const of = await this.typeId();
    const count = await this.size(`array length in ${this.what}`);
    // Smallest possible encoding of one element: a fixed scalar's size, 8 for a string, 12 for an empty array.
    const minBytes = of === "array" ? 12 : GGUF_SCALAR_BYTES[of];
    if (count * minBytes > this.remaining) {
      this.fail(
        `array length ${count} in ${this.what} is more than the rest of the file (${this.remaining} bytes) could hold: a corrupt length or a truncated file`,
      );
    }
    if (count > this.limits.maxArrayLength) {
      this.fail(
        `array length ${count} in ${this.what} is over the limit of ${this.limits.maxArrayLength} (LoadOptions.limits.maxArrayLength)`,
      );
    }
    if (of === "array") {
      if (depth >= 8) this.fail(`arrays nested deeper than 8 levels in ${this.what}`);
      const values: MetadataValue[] = [];
      const inner: GGUFValueType[] = [];
      for (let i = 0; i < count; i++) {
        const [v, t] = await this.array(depth + 1);
        values.push(v);
        inner.push(t);
      }
      return [values, { type: "array", of: "array", inner }];
    }
    const type: GGUFValueType = { type: "array", of };
    if (of === "string") {
      const out: string[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = await this.string();
      return [out, type];
    }
    if (of === "bool") {
      const raw = await this.bytes(count);
      const out: boolean[] = new Array(count);
      for (let i = 0; i < count; i++) {
        if (raw[i] > 1) this.fail(`bool value ${raw[i]} at index ${i} of ${this.what} is neither 0 nor 1`);
        out[i] = raw[i] === 1;
      }
      return [out, type];
    }
    if (of === "u64" || of === "i64") {
      const raw = await this.bytes(count * 8);
      const dv = new DataView(raw.buffer);
      const out: (number | bigint)[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = safeNumber(of === "u64" ? dv.getBigUint64(i * 8, true) : dv.getBigInt64(i * 8, true));
      return [out, type];
    }
    // Numeric arrays become typed arrays over a fresh copy. GGUF is little-endian and so is
    // every host kvasm runs on (x86-64, arm64, wasm), so the bytes can be viewed as they are.
    const raw = await this.bytes(count * GGUF_SCALAR_BYTES[of]);
    return [typedArray(of, raw.buffer as ArrayBuffer, count), type];
  }
}

function typedArray(of: GGUFScalar, buf: ArrayBuffer, count: number): ArrayLike<number> {
  switch (of) {
    case "u8":
      return new Uint8Array(buf, 0, count);
    case "i8":
      return new Int8Array(buf, 0, count);
    case "u16":
      return new Uint16Array(buf, 0, count);
    case "i16":
      return new Int16Array(buf, 0, count);
    case "u32":
      return new Uint32Array(buf, 0, count);
    case "i32":
      return new Int32Array(buf, 0, count);
    case "f32":
      return new Float32Array(buf, 0, count);
    case "f64":
      return new Float64Array(buf, 0, count);
    default:
      throw new Error(`typedArray: ${of} is not a fixed-size numeric type`);
  }
}

/** u64/i64 values become numbers when exact, bigints otherwise. */
function safeNumber(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

export async function readGGUF(source: ByteSource, limits: HeaderLimits = DEFAULT_HEADER_LIMITS): Promise<GGUFFile> {
  checkOptionNames("limits", limits, HEADER_LIMIT_NAMES);
  const c: HeaderCursor = new HeaderCursor(source, limits);

  // ---- fixed header
  c.what = "the magic";
  if (source.size < 4) c.fail(`file is ${source.size} bytes, too short to be GGUF (no "GGUF" magic)`);
  const magic = await c.u32();
  if (magic !== GGUF_MAGIC) c.fail(`bad magic: expected "GGUF", found ${describeMagic(magic)}`);
  c.what = "the version";
  const version = await c.u32();
  if (version !== 2 && version !== 3) {
    const hint = version === 1
      ? " (GGUF v1 used 32-bit lengths; re-convert the model with a current llama.cpp)"
      : (version & 0xffff) === 0 && version >>> 16 !== 0
      ? " (a big-endian GGUF? kvasm reads little-endian files)"
      : "";
    c.fail(`unsupported GGUF version ${version}${hint}; kvasm reads versions 2 and 3`);
  }
  c.what = "the tensor count";
  const tensorCount = await c.size("tensor count");
  c.what = "the metadata count";
  const kvCount = await c.size("metadata entry count");
  // Smallest possible tensor info: empty name (8), n_dims (4), one dim (8), type (4), offset (8).
  if (tensorCount * 32 > c.remaining) {
    c.fail(
      `tensor count ${tensorCount} is more than the rest of the file (${c.remaining} bytes) could hold: a corrupt count or a truncated file`,
    );
  }
  // Smallest possible entry: empty key (8), type (4), a u8 value (1).
  if (kvCount * 13 > c.remaining) {
    c.fail(
      `metadata entry count ${kvCount} is more than the rest of the file (${c.remaining} bytes) could hold: a corrupt count or a truncated file`,
    );
  }
  if (kvCount > limits.maxMetadataEntries) {
    c.fail(`metadata entry count ${kvCount} is over the limit of ${limits.maxMetadataEntries} (LoadOptions.limits.maxMetadataEntries)`);
  }

  // ---- metadata
  const metadata = new Map<string, MetadataValue>();
  const metadataTypes = new Map<string, GGUFValueType>();
  for (let i = 0; i < kvCount; i++) {
    c.what = `the key of metadata entry ${i}`;
    const key = await c.string();
    if (metadata.has(key)) c.fail(`duplicate metadata key "${key}"`);
    c.what = `metadata "${key}"`;
    const t = await c.typeId();
    if (t === "array") {
      const [value, type] = await c.array(0);
      metadata.set(key, value);
      metadataTypes.set(key, type);
    } else {
      metadata.set(key, await c.scalar(t));
      metadataTypes.set(key, { type: t });
    }
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  if (metadata.has("general.alignment")) {
    const a = metadata.get("general.alignment");
    if (!isGGUFAlignment(a)) {
      c.fail(`general.alignment must be a power of two from 1 to ${MAX_GGUF_ALIGNMENT}, found ${String(a)}`);
    }
    alignment = a;
  }

  // ---- tensor table
  const tensors = new Map<string, TensorInfo>();
  const relative: { name: string; offset: number; byteLength: number }[] = [];
  for (let i = 0; i < tensorCount; i++) {
    c.what = `the name of tensor ${i}`;
    const name = await c.string();
    c.what = `tensor info of "${name}"`;
    if (tensors.has(name)) c.fail(`duplicate tensor name "${name}"`);
    const nDims = await c.u32();
    if (nDims < 1 || nDims > MAX_DIMS) c.fail(`tensor "${name}" has ${nDims} dimensions; GGUF allows 1 to ${MAX_DIMS}`);
    const shape: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const n = await c.size(`dimension ${d} of tensor "${name}"`);
      shape.push(n);
      elements *= n;
    }
    if (elements > Number.MAX_SAFE_INTEGER) c.fail(`tensor "${name}" has an absurd shape [${shape.join(", ")}]`);
    const type = await c.u32();
    const offset = await c.size(`data offset of tensor "${name}"`);
    const geometry = blockGeometry(type);
    if (!geometry) c.fail(`tensor "${name}" has unknown ggml type id ${type}`);
    const [blockElems, blockBytes] = geometry;
    if (shape[0] % blockElems !== 0) {
      c.fail(`tensor "${name}" (${ggmlTypeName(type)}) has rows of ${shape[0]} elements, not a multiple of the block size ${blockElems}`);
    }
    if (offset % alignment !== 0) c.fail(`tensor "${name}" data offset ${offset} is not a multiple of the alignment ${alignment}`);
    const byteLength = (elements / blockElems) * blockBytes;
    tensors.set(name, { name, type, shape, offset, byteLength });
    relative.push({ name, offset, byteLength });
  }

  const dataOffset = alignUp(c.pos, alignment);

  // ---- tensor data bounds: inside the file, no two tensors sharing bytes
  for (const t of tensors.values()) {
    t.offset += dataOffset;
    const end = t.offset + t.byteLength;
    if (end > source.size) {
      c.fail(
        `tensor "${t.name}" data [${t.offset}, ${end}) extends past the end of the file (ends at byte ${end}, file is ${source.size} bytes)`,
      );
    }
  }
  relative.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < relative.length; i++) {
    const prev = relative[i - 1], cur = relative[i];
    if (cur.offset < prev.offset + prev.byteLength && cur.byteLength > 0 && prev.byteLength > 0) {
      c.fail(`tensors "${prev.name}" and "${cur.name}" overlap (relative offsets ${prev.offset}+${prev.byteLength} and ${cur.offset})`);
    }
  }

  return { format: "gguf", source, version, alignment, dataOffset, metadata, metadataTypes, tensors };
}

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}

function describeMagic(magic: number): string {
  const bytes = [magic & 0xff, (magic >>> 8) & 0xff, (magic >>> 16) & 0xff, magic >>> 24];
  const text = bytes.every((b) => b >= 0x20 && b < 0x7f) ? `"${String.fromCharCode(...bytes)}" ` : "";
  return `${text}(bytes ${bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ")})`;
}
