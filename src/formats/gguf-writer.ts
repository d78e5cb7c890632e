/**
 * Streaming GGUF v3 writer. The header (metadata and tensor table) is built in
 * memory; tensor data goes to the sink one tensor at a time, produced lazily, so
 * a multi-GB file never exists in memory at once.
 */
import { ParamError } from "../errors.ts";
import { type GGMLTypeId, ggmlTypeName, rowBytes } from "./ggml-types.ts";
import {
  alignUp,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_TYPE_IDS,
  type GGUFFile,
  type GGUFScalar,
  type GGUFValueType,
  isGGUFAlignment,
  MAX_GGUF_ALIGNMENT,
} from "./gguf.ts";

export interface GGUFTensorToWrite {
  name: string;
  type: GGMLTypeId;
  /** ggml order: shape[0] is the row length. */
  shape: number[];
  /** Exactly rowBytes(type, shape[0]) * rows bytes; a function is called when the tensor's turn comes. */
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

export interface GGUFMetadataEntry {
  key: string;
  type: GGUFValueType;
  value: unknown;
}

/** A GGUF file's contents before writing: what writeGGUF takes, and what the quantizer reads its input as. */
export interface GGUFContents {
  metadata: GGUFMetadataEntry[];
  tensors: GGUFTensorToWrite[];
}

export interface ByteSink {
  write(chunk: Uint8Array): void | Promise<void>;
  close?(): void | Promise<void>;
}

/** Writes to a file (created or truncated). node:fs is imported lazily. */
export async function fileSink(path: string): Promise<ByteSink> {
  const fs = await import("node:fs");
  const fd = fs.openSync(path, "w");
  return {
    write(chunk: Uint8Array) {
      let done = 0;
      while (done < chunk.length) done += fs.writeSync(fd, chunk, done, chunk.length - done);
    },
    close() {
      fs.closeSync(fd);
    },
  };
}

/** Collects everything in memory (tests, small files). */
export class BytesSink implements ByteSink {
  private chunks: Uint8Array[] = [];
  private length = 0;
  write(chunk: Uint8Array): void {
    // Copy: callers may reuse their buffer for the next tensor.
    this.chunks.push(chunk.slice());
    this.length += chunk.length;
  }
  bytes(): Uint8Array {
    if (this.chunks.length !== 1) {
      const out = new Uint8Array(this.length);
      let at = 0;
      for (const c of this.chunks) {
        out.set(c, at);
        at += c.length;
      }
      this.chunks = [out];
    }
    return this.chunks[0] ?? new Uint8Array(0);
  }
}

/** Grows a little-endian byte buffer for the header. */
class HeaderBuilder {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private readonly encoder = new TextEncoder();

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.length + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  u8(v: number) {
    const at = this.room(1); // room() may swap the buffer: take the view after it
    this.view.setUint8(at, v);
  }
  i8(v: number) {
    const at = this.room(1); // room() may swap the buffer: take the view after it
    this.view.setInt8(at, v);
  }
  u16(v: number) {
    const at = this.room(2); // room() may swap the buffer: take the view after it
    this.view.setUint16(at, v, true);
  }
  i16(v: number) {
    const at = this.room(2); // room() may swap the buffer: take the view after it
    this.view.setInt16(at, v, true);
  }
  u32(v: number) {
    const at = this.room(4); // room() may swap the buffer: take the view after it
    this.view.setUint32(at, v, true);
  }
  i32(v: number) {
    const at = this.room(4); // room() may swap the buffer: take the view after it
    this.view.setInt32(at, v, true);
  }
  f32(v: number) {
    const at = this.room(4); // room() may swap the buffer: take the view after it
    this.view.setFloat32(at, v, true);
  }
  f64(v: number) {
    const at = this.room(8); // room() may swap the buffer: take the view after it
    this.view.setFloat64(at, v, true);
  }
  u64(v: bigint) {
    const at = this.room(8); // room() may swap the buffer: take the view after it
    this.view.setBigUint64(at, v, true);
  }
  i64(v: bigint) {
    const at = this.room(8); // room() may swap the buffer: take the view after it
    this.view.setBigInt64(at, v, true);
  }
  string(s: string) {
    const b = this.encoder.encode(s);
    this.u64(BigInt(b.length));
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  zeros(n: number) {
    this.buf.fill(0, this.room(n), this.length);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

const INT_RANGE: Partial<Record<GGUFScalar, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

function writeScalar(h: HeaderBuilder, t: GGUFScalar, v: unknown, key: string): void {
  const bad: () => never = () => {
    throw new ParamError(`metadata "${key}"`, `value ${describe(v)} does not fit GGUF type ${t}`);
  };
  switch (t) {
    case "string":
      if (typeof v !== "string") bad();
      return h.string(v as string);
    case "bool":
      if (typeof v !== "boolean") bad();
      return h.u8(v ? 1 : 0);
    case "f32":
    case "f64":
      if (typeof v !== "number") bad();
      return t === "f32" ? h.f32(v as number) : h.f64(v as number);
    case "u64":
    case "i64": {
      if (typeof v !== "bigint" && !(typeof v === "number" && Number.isSafeInteger(v))) bad();
      const b = BigInt(v as number | bigint);
      if (t === "u64" ? b < 0n || b >= 1n << 64n : b < -(1n << 63n) || b >= 1n << 63n) bad();
      return t === "u64" ? h.u64(b) : h.i64(b);
    }
    default: {
      const [lo, hi] = INT_RANGE[t]!;
      if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) bad();
      h[t](v as number);
    }
  }
}

function writeValue(h: HeaderBuilder, type: GGUFValueType, v: unknown, key: string): void {
  if (type.type !== "array") return writeScalar(h, type.type, v, key);
  if (typeof v !== "object" || v === null || typeof (v as ArrayLike<unknown>).length !== "number") {
    throw new ParamError(`metadata "${key}"`, `expected an array, got ${describe(v)}`);
  }
  const items = v as ArrayLike<unknown>;
  h.u32(GGUF_TYPE_IDS[type.of]);
  h.u64(BigInt(items.length));
  if (type.of === "array") {
    if (!("inner" in type) || type.inner.length !== items.length) {
      throw new ParamError(`metadata "${key}"`, "an array of arrays needs one inner type per element");
    }
    for (let i = 0; i < items.length; i++) {
      const inner = type.inner[i];
      if (inner.type !== "array") throw new ParamError(`metadata "${key}"`, `inner type ${i} must be an array type`);
      writeValue(h, inner, items[i], `${key}[${i}]`);
    }
    return;
  }
  for (let i = 0; i < items.length; i++) writeScalar(h, type.of, items[i], key);
}

function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "..." : v);
  if (typeof v === "object" && v !== null) return v.constructor?.name ?? "object";
  return String(v);
}

/** A GGUF value type for a JS value, for callers that do not care about exact widths. */
export function inferValueType(value: unknown): GGUFValueType {
  switch (typeof value) {
    case "string":
      return { type: "string" };
    case "boolean":
      return { type: "bool" };
    case "bigint":
      return { type: value < 0n ? "i64" : "u64" };
    case "number":
      return { type: scalarForNumbers([value]) };
  }
  if (value instanceof Float32Array) return { type: "array", of: "f32" };
  if (value instanceof Float64Array) return { type: "array", of: "f64" };
  if (value instanceof Int32Array) return { type: "array", of: "i32" };
  if (value instanceof Uint32Array) return { type: "array", of: "u32" };
  if (value instanceof Int16Array) return { type: "array", of: "i16" };
  if (value instanceof Uint16Array) return { type: "array", of: "u16" };
  if (value instanceof Int8Array) return { type: "array", of: "i8" };
  if (value instanceof Uint8Array) return { type: "array", of: "u8" };
  if (value instanceof BigInt64Array) return { type: "array", of: "i64" };
  if (value instanceof BigUint64Array) return { type: "array", of: "u64" };
  if (Array.isArray(value)) {
    if (value.length === 0) throw new ParamError("value", "cannot infer the element type of an empty array; give its GGUF type");
    if (value.every((x) => typeof x === "string")) return { type: "array", of: "string" };
    if (value.every((x) => typeof x === "boolean")) return { type: "array", of: "bool" };
    if (value.every((x) => typeof x === "number")) return { type: "array", of: scalarForNumbers(value) };
    if (value.every((x) => typeof x === "bigint")) return { type: "array", of: value.some((x) => x < 0n) ? "i64" : "u64" };
    if (value.every((x) => typeof x === "object" && x !== null && typeof x.length === "number" && typeof x !== "string")) {
      return { type: "array", of: "array", inner: value.map((x) => inferValueType(x)) };
    }
  }
  throw new ParamError("value", `cannot infer a GGUF type for ${describe(value)}`);
}

function scalarForNumbers(values: number[]): GGUFScalar {
  if (!values.every(Number.isInteger)) return "f32";
  const min = Math.min(...values), max = Math.max(...values);
  if (min >= 0) return max <= 0xffffffff ? "u32" : "u64";
  return min >= -0x80000000 && max <= 0x7fffffff ? "i32" : "i64";
}

/** A file's metadata as entries in file order, types exactly as declared: the quantizer copies them verbatim. */
export function metadataEntries(file: GGUFFile): GGUFMetadataEntry[] {
  const out: GGUFMetadataEntry[] = [];
  for (const [key, value] of file.metadata) {
    const type = file.metadataTypes.get(key);
    if (!type) throw new ParamError("file", `metadata "${key}" has no recorded type`);
    out.push({ key, type, value });
  }
  return out;
}

/** Byte size of a tensor, or a ParamError naming it. */
function tensorByteLength(t: { name: string; type: GGMLTypeId; shape: number[] }): number {
  if (t.shape.length < 1 || t.shape.length > 4 || !t.shape.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new ParamError(`tensor "${t.name}"`, `shape [${t.shape.join(", ")}] must have 1 to 4 non-negative integer dimensions`);
  }
  const row = rowBytes(t.type, t.shape[0]);
  if (row === undefined) {
    throw new ParamError(`tensor "${t.name}"`, `rows of ${t.shape[0]} elements cannot be stored as ${ggmlTypeName(t.type)}`);
  }
  return row * t.shape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * Writes a GGUF v3 file: header, metadata, tensor table, then each tensor's data
 * padded to `alignment`. `alignment` defaults to the file's `general.alignment`
 * entry if there is one, else 32; a non-default alignment is recorded in
 * `general.alignment`. The sink is closed at the end.
 */
export async function writeGGUF(
  sink: ByteSink,
  metadata: GGUFMetadataEntry[],
  tensors: GGUFTensorToWrite[],
  alignment?: number,
): Promise<void> {
  const declared = metadata.find((e) => e.key === "general.alignment");
  const align = alignment ?? (typeof declared?.value === "number" ? declared.value : GGUF_DEFAULT_ALIGNMENT);
  if (!isGGUFAlignment(align)) {
    throw new ParamError("alignment", `must be a power of two from 1 to ${MAX_GGUF_ALIGNMENT}, got ${align}`);
  }
  if (declared && declared.value !== align) {
    throw new ParamError("alignment", `${align} contradicts the general.alignment entry (${String(declared.value)})`);
  }
  const entries = [...metadata];
  if (!declared && align !== GGUF_DEFAULT_ALIGNMENT) entries.push({ key: "general.alignment", type: { type: "u32" }, value: align });
  const keys = new Set<string>();
  for (const e of entries) {
    if (keys.has(e.key)) throw new ParamError("metadata", `duplicate key "${e.key}"`);
    keys.add(e.key);
  }
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new ParamError("tensors", `duplicate tensor name "${t.name}"`);
    names.add(t.name);
  }

  const h = new HeaderBuilder();
  h.u32(GGUF_MAGIC);
  h.u32(3);
  h.u64(BigInt(tensors.length));
  h.u64(BigInt(entries.length));
  for (const e of entries) {
    h.string(e.key);
    h.u32(GGUF_TYPE_IDS[e.type.type]);
    writeValue(h, e.type, e.value, e.key);
  }
  const sizes = tensors.map(tensorByteLength);
  let offset = 0;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    h.string(t.name);
    h.u32(t.shape.length);
    for (const n of t.shape) h.u64(BigInt(n));
    h.u32(t.type);
    h.u64(BigInt(offset));
    offset = alignUp(offset + sizes[i], align);
  }
  h.zeros(alignUp(h.length, align) - h.length);
  await sink.write(h.bytes());

  const padding = new Uint8Array(align);
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    const data = typeof t.data === "function" ? await t.data() : t.data;
    if (!(data instanceof Uint8Array) || data.length !== sizes[i]) {
      const got = data instanceof Uint8Array ? `${data.length} bytes` : describe(data);
      throw new ParamError(
        `tensor "${t.name}"`,
        `data must be ${sizes[i]} bytes (${ggmlTypeName(t.type)} [${t.shape.join(", ")}]), got ${got}`,
      );
    }
    await sink.write(data);
    const pad = alignUp(sizes[i], align) - sizes[i];
    if (pad > 0) await sink.write(padding.subarray(0, pad));
  }
  await sink.close?.();
}
