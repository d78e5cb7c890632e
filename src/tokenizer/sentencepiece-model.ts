/**
 * SentencePiece's tokenizer.model: a protobuf ModelProto, read by hand
 * (only the fields a BPE tokenizer needs):
 *
 *   ModelProto      1: repeated SentencePiece pieces, 2: TrainerSpec, 3: NormalizerSpec
 *   SentencePiece   1: string piece, 2: float score, 3: Type type (NORMAL=1 .. BYTE=6)
 *   TrainerSpec     3: ModelType model_type (UNIGRAM=1, BPE=2), 35: bool byte_fallback,
 *                   40..43: int32 unk_id, bos_id, eos_id, pad_id
 *   NormalizerSpec  1: string name, 3: bool add_dummy_prefix, 4: bool remove_extra_whitespaces
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import { SpmTokenizer } from "./spm.ts";
import { type Tokenizer, TokenType } from "./tokenizer.ts";

const WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5;

/** A cursor over one protobuf message. Every read checks bounds and throws FormatError naming the file. */
class ProtoReader {
  private at: number;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly name: string,
    private readonly what: string,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.at = start;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.at >= this.end;
  }

  /** A varint as a JS number (low 53 bits suffice for field keys, lengths, enums; int32 negatives are 10 bytes). */
  varint(): number {
    let result = 0, scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) this.fail("truncated varint");
      const b = this.bytes[this.at++];
      if (i < 8) result += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return result;
    }
    this.fail("varint longer than 10 bytes");
  }

  /** int32 fields store negatives as 64-bit two's complement varints; keep the low 32 bits, signed. */
  int32(): number {
    const start = this.at;
    let low = 0;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) this.fail("truncated varint");
      const b = this.bytes[this.at++];
      if (i < 5) low |= (b & 0x7f) << (7 * i);
      if (b < 0x80) return low | 0;
    }
    this.at = start;
    this.fail("varint longer than 10 bytes");
  }

  float(): number {
    if (this.at + 4 > this.end) this.fail("truncated float");
    const v = this.view.getFloat32(this.at, true);
    this.at += 4;
    return v;
  }

  /** A length-delimited field: returns [start, end) of its bytes. */
  span(): [number, number] {
    const len = this.varint();
    if (this.at + len > this.end) this.fail(`field of ${len} bytes runs past the end`);
    const s = this.at;
    this.at += len;
    return [s, s + len];
  }

  key(): { field: number; wire: number } {
    const k = this.varint();
    const field = Math.floor(k / 8), wire = k & 7;
    if (field === 0) this.fail("field number 0");
    return { field, wire };
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_I64) this.advance(8);
    else if (wire === WIRE_LEN) this.span();
    else if (wire === WIRE_I32) this.advance(4);
    else this.fail(`unsupported wire type ${wire}`);
  }

  expect(wire: number, want: number, field: number): void {
    if (wire !== want) this.fail(`field ${field} has wire type ${wire}, expected ${want}`);
  }

  sub(what: string, [s, e]: [number, number]): ProtoReader {
    return new ProtoReader(this.bytes, this.name, what, s, e);
  }

  fail(problem: string): never {
    throw new FormatError(this.name, `${this.what}: ${problem} (byte ${this.at}); not a SentencePiece model or truncated`);
  }

  private advance(n: number): void {
    if (this.at + n > this.end) this.fail("truncated field");
    this.at += n;
  }
}

export function readSentencePieceModel(bytes: Uint8Array, name = "<tokenizer.model>"): Tokenizer {
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  let modelType = 2; // BPE when there is no TrainerSpec at all (kvasm runs nothing else)
  let unk = 0, bos = 1, eos = 2;
  let addDummyPrefix = true, removeExtraWhitespaces = true;
  const text = new TextDecoder("utf-8", { fatal: true });

  const model: ProtoReader = new ProtoReader(bytes, name, "ModelProto");
  if (model.done) model.fail("empty file");
  while (!model.done) {
    const { field, wire } = model.key();
    if (field === 1) {
      model.expect(wire, WIRE_LEN, field);
      const p: ProtoReader = model.sub(`piece ${pieces.length}`, model.span());
      let piece: string | undefined, score = 0, type: number = TokenType.normal;
      while (!p.done) {
        const k = p.key();
        if (k.field === 1) {
          p.expect(k.wire, WIRE_LEN, 1);
          const [s, e] = p.span();
          try {
            piece = text.decode(bytes.subarray(s, e));
          } catch {
            p.fail("piece is not valid UTF-8");
          }
        } else if (k.field === 2) {
          p.expect(k.wire, WIRE_I32, 2);
          score = p.float();
        } else if (k.field === 3) {
          p.expect(k.wire, WIRE_VARINT, 3);
          type = p.varint();
          if (type < TokenType.normal || type > TokenType.byte) p.fail(`unknown piece type ${type}`);
        } else {
          p.skip(k.wire);
        }
      }
      if (piece === undefined) p.fail("piece without text");
      pieces.push(piece);
      scores.push(score);
      types.push(type);
    } else if (field === 2) {
      model.expect(wire, WIRE_LEN, field);
      const t = model.sub("TrainerSpec", model.span());
      while (!t.done) {
        const k = t.key();
        if (k.wire !== WIRE_VARINT) t.skip(k.wire);
        else if (k.field === 3) modelType = t.varint();
        else if (k.field === 40) unk = t.int32();
        else if (k.field === 41) bos = t.int32();
        else if (k.field === 42) eos = t.int32();
        else t.varint();
      }
    } else if (field === 3) {
      model.expect(wire, WIRE_LEN, field);
      const n = model.sub("NormalizerSpec", model.span());
      while (!n.done) {
        const k = n.key();
        if (k.wire !== WIRE_VARINT) n.skip(k.wire);
        else if (k.field === 3) addDummyPrefix = n.varint() !== 0;
        else if (k.field === 4) removeExtraWhitespaces = n.varint() !== 0;
        else n.varint();
      }
    } else {
      model.skip(wire);
    }
  }

  if (pieces.length === 0) throw new FormatError(name, "ModelProto holds no pieces; not a SentencePiece model");
  if (modelType !== 2) {
    const kind = ["", "Unigram", "BPE", "Word", "Char"][modelType] ?? `type ${modelType}`;
    throw new UnsupportedError(`${name}: SentencePiece ${kind} models are not supported (kvasm runs BPE models)`);
  }
  return new SpmTokenizer(
    { name, pieces, scores, types, bos, eos, unk, addBos: bos >= 0, addEos: false },
    { addSpacePrefix: addDummyPrefix, removeExtraWhitespaces },
  );
}
