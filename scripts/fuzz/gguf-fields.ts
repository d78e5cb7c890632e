/**
 * Where each header field of a valid GGUF file lies (counts, metadata values, string and array
 * lengths, tensor dims, types and offsets), so a test or the fuzzer can overwrite one field in
 * place and keep every other byte of the file as it was.
 */

/** One field: its byte offset and width (u32, u64, or a scalar's own size), and what it is. */
export interface GGUFField {
  /** "tensor_count", "metadata llama.block_count", "length of metadata tokenizer.ggml.tokens[3]", "tensor blk.0.attn_q.weight dim 1", ... */
  what: string;
  offset: number;
  bytes: 1 | 2 | 4 | 8;
  /** a count or length (overwriting it changes how the rest of the header is read) or a value */
  kind: "count" | "value";
}

const SCALAR_BYTES = [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8]; // by GGUF type id; 8 = string, 9 = array

/**
 * Walks a GGUF header; `maxArrayFields` caps how many elements of one array are listed. A header
 * that runs past the end of the file (an already mutated one) throws a RangeError.
 */
export function ggufFields(bytes: Uint8Array, maxArrayFields = 4): GGUFField[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const out: GGUFField[] = [];
  let p = 8;
  const u32 = () => (p += 4, dv.getUint32(p - 4, true));
  const u64 = () => (p += 8, Number(dv.getBigUint64(p - 8, true)));
  const str = (what: string) => {
    out.push({ what: `length of ${what}`, offset: p, bytes: 8, kind: "count" });
    const n = u64();
    p += n;
    if (p > bytes.length) throw new RangeError("string runs past the end of the file");
    return dec.decode(bytes.subarray(p - n, p));
  };
  const value = (type: number, what: string, listed: boolean) => {
    if (type === 8) {
      if (listed) str(what);
      else p += 8 + Number(dv.getBigUint64(p, true));
    } else if (type === 9) {
      const of = dv.getUint32(p, true);
      if (listed) out.push({ what: `element type of ${what}`, offset: p, bytes: 4, kind: "value" });
      p += 4;
      if (listed) out.push({ what: `array length of ${what}`, offset: p, bytes: 8, kind: "count" });
      const n = u64();
      const w = SCALAR_BYTES[of];
      if (of !== 8 && of !== 9 && (w === undefined || w === 0)) throw new RangeError(`unknown element type ${of}`);
      if (of !== 8 && of !== 9 && n > maxArrayFields) {
        // fixed-size elements past the listed ones: skip them in one step
        for (let i = 0; i < maxArrayFields; i++) value(of, `${what}[${i}]`, listed);
        p += (n - maxArrayFields) * w;
        if (p > bytes.length) throw new RangeError("array runs past the end of the file");
      } else {
        for (let i = 0; i < n; i++) {
          if (p > bytes.length) throw new RangeError("array runs past the end of the file");
          value(of, `${what}[${i}]`, listed && i < maxArrayFields);
        }
      }
    } else {
      if (SCALAR_BYTES[type] === undefined) throw new RangeError(`unknown value type ${type}`);
      const w = SCALAR_BYTES[type] as 1 | 2 | 4 | 8;
      if (listed) out.push({ what, offset: p, bytes: w, kind: "value" });
      p += w;
    }
  };
  out.push({ what: "version", offset: 4, bytes: 4, kind: "value" });
  out.push({ what: "tensor_count", offset: p, bytes: 8, kind: "count" });
  const tensorCount = u64();
  out.push({ what: "metadata_count", offset: p, bytes: 8, kind: "count" });
  const kvCount = u64();
  for (let i = 0; i < kvCount; i++) {
    if (p > bytes.length) throw new RangeError("metadata runs past the end of the file");
    const key = str(`key ${i}`);
    out.push({ what: `type of metadata ${key}`, offset: p, bytes: 4, kind: "value" });
    const type = u32();
    value(type, `metadata ${key}`, true);
  }
  for (let i = 0; i < tensorCount; i++) {
    if (p > bytes.length) throw new RangeError("tensor table runs past the end of the file");
    const name = str(`tensor name ${i}`);
    out.push({ what: `tensor ${name} n_dims`, offset: p, bytes: 4, kind: "count" });
    const nDims = u32();
    if (p + 8 * nDims > bytes.length) throw new RangeError("tensor dims run past the end of the file");
    for (let d = 0; d < nDims; d++) {
      out.push({ what: `tensor ${name} dim ${d}`, offset: p, bytes: 8, kind: "value" });
      p += 8;
    }
    out.push({ what: `tensor ${name} type`, offset: p, bytes: 4, kind: "value" });
    p += 4;
    out.push({ what: `tensor ${name} offset`, offset: p, bytes: 8, kind: "value" });
    p += 8;
  }
  return out;
}

/** Writes `value` (a bigint, truncated to the field's width) into a copy of `bytes`. */
export function withField(bytes: Uint8Array, field: GGUFField, value: bigint): Uint8Array {
  const copy = new Uint8Array(bytes); // a copy even of a Node Buffer, whose slice() is a view
  setField(copy, field, value);
  return copy;
}

export function setField(bytes: Uint8Array, field: GGUFField, value: bigint): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const v = BigInt.asUintN(field.bytes * 8, value);
  if (field.bytes === 8) dv.setBigUint64(field.offset, v, true);
  else if (field.bytes === 4) dv.setUint32(field.offset, Number(v), true);
  else if (field.bytes === 2) dv.setUint16(field.offset, Number(v), true);
  else dv.setUint8(field.offset, Number(v));
}

/** The field named exactly `what`; throws when the file has none (a test's premise is wrong). */
export function field(bytes: Uint8Array, what: string): GGUFField {
  const f = ggufFields(bytes).find((x) => x.what === what);
  if (!f) throw new Error(`no GGUF field "${what}"`);
  return f;
}
