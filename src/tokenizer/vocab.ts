/**
 * What SentencePiece and BPE tokenizers share: the piece table, special ids,
 * splitting text around special tokens, BOS/EOS handling and decoding.
 * Subclasses supply `encodeFragment` (plain text -> ids) and `pieceBytes`
 * (the bytes one normal piece stands for).
 */
import { checkOptionNames, describeValue, FormatError, optionalBoolean, ParamError } from "../errors.ts";
import { ENCODE_OPTION_NAMES, type EncodeOptions, TextStream, type Tokenizer, TokenType } from "./tokenizer.ts";

/** A vocabulary as a file describes it; loaders (GGUF, tokenizer.bin, .model, tokenizer.json) build one. */
export interface VocabSpec {
  /** File or key the vocabulary came from, for error messages. */
  name: string;
  pieces: string[];
  /** Per-id score (SentencePiece log-probabilities); absent for BPE. */
  scores?: ArrayLike<number>;
  /** Per-id TokenType; absent means every token is normal. */
  types?: ArrayLike<number>;
  bos?: number;
  eos?: number;
  unk?: number;
  pad?: number;
  /** End-of-turn (tokenizer.ggml.eot_token_id), also ends generation. */
  eot?: number;
  /** More ids that end generation (eom, extra eos ids from generation_config.json). */
  extraEndIds?: number[];
  addBos: boolean;
  addEos: boolean;
}

/** Pieces that end a turn in well-known chat formats, when the vocabulary has them as special tokens. */
const END_OF_GENERATION_PIECES = [
  "</s>",
  "<|endoftext|>",
  "<|im_end|>",
  "<|eot_id|>",
  "<|eom_id|>",
  "<|end_of_text|>",
  "<|end|>",
  "<end_of_turn>",
  "<|return|>",
  "<|call|>",
];

type Fragment = string | number;

export abstract class VocabTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly unk: number;
  readonly addBos: boolean;
  readonly addEos: boolean;
  abstract readonly addSpacePrefix: boolean;

  protected readonly pieces: string[];
  protected readonly types: Uint8Array;
  protected readonly pieceToId = new Map<string, number>();
  private readonly bytesCache: (Uint8Array | undefined)[];
  private readonly endIds = new Set<number>();
  /** Control/unknown tokens, longest first: matched in text only with parseSpecial. */
  private readonly controlTokens: number[] = [];
  private controlPieceTexts?: readonly string[];
  /** User-defined tokens, longest first: always matched in text. */
  private readonly userTokens: number[] = [];

  constructor(spec: VocabSpec) {
    const n = spec.pieces.length;
    if (n === 0) throw new FormatError(spec.name, "the vocabulary is empty");
    if (spec.scores && spec.scores.length !== n) {
      throw new FormatError(spec.name, `${spec.scores.length} scores for ${n} tokens`);
    }
    if (spec.types && spec.types.length !== n) {
      throw new FormatError(spec.name, `${spec.types.length} token types for ${n} tokens`);
    }
    this.vocabSize = n;
    this.pieces = spec.pieces;
    this.types = new Uint8Array(n).fill(TokenType.normal);
    if (spec.types) { for (let i = 0; i < n; i++) this.types[i] = spec.types[i]; }
    this.bytesCache = new Array(n);
    // Later duplicates do not shadow earlier ids (llama.cpp keeps the first too).
    for (let i = n - 1; i >= 0; i--) this.pieceToId.set(spec.pieces[i], i);

    const valid = (id: number | undefined) => (id !== undefined && Number.isInteger(id) && id >= 0 && id < n ? id : -1);
    this.bos = valid(spec.bos);
    this.eos = valid(spec.eos);
    this.unk = valid(spec.unk);
    this.addBos = spec.addBos && this.bos >= 0;
    this.addEos = spec.addEos && this.eos >= 0;

    for (const id of [this.eos, valid(spec.eot), ...(spec.extraEndIds ?? []).map(valid)]) if (id >= 0) this.endIds.add(id);
    for (const p of END_OF_GENERATION_PIECES) {
      const id = this.pieceToId.get(p);
      if (id !== undefined && (this.types[id] === TokenType.control || this.types[id] === TokenType.userDefined)) this.endIds.add(id);
    }

    for (let i = 0; i < n; i++) {
      if (this.pieces[i].length === 0) continue;
      const t = this.types[i];
      if (t === TokenType.control || t === TokenType.unknown) this.controlTokens.push(i);
      else if (t === TokenType.userDefined) this.userTokens.push(i);
    }
    const longestFirst = (a: number, b: number) => this.pieces[b].length - this.pieces[a].length || a - b;
    this.controlTokens.sort(longestFirst);
    this.userTokens.sort(longestFirst);
  }

  /** Tokenize text that holds no special tokens. `atStart`: first fragment, or right after a special token. */
  protected abstract encodeFragment(text: string, atStart: boolean, out: number[]): void;

  /** The bytes of a normal (or unused) piece. */
  protected abstract pieceBytes(piece: string): Uint8Array;

  /**
   * encodeFragment in steps: yields after about `stepChars` characters of work
   * wherever the fragment can be cut without changing its ids (a subclass
   * knows where); by default the fragment is one step.
   */
  protected encodeFragmentSteps(text: string, atStart: boolean, out: number[], _stepChars: number): Iterable<void> {
    this.encodeFragment(text, atStart, out);
    return [];
  }

  encode(text: string, opts?: EncodeOptions): number[] {
    const steps = this.encodeSteps(text, opts, Infinity);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * encode() as a generator that yields the ids so far after every piece of
   * about `stepChars` characters (where the vocabulary allows a cut), so a
   * caller can let other work run between pieces, or stop once it has seen
   * enough ids. Run to its end it returns exactly encode()'s ids.
   */
  *encodeSteps(text: string, opts?: EncodeOptions, stepChars = 4096): Generator<readonly number[], number[]> {
    // a caller's wrong type would otherwise be truthy ("false") or fail deep in the splitter
    if (typeof text !== "string") throw new ParamError("text", `must be a string, got ${describeValue(text)}`);
    checkOptionNames("encode", opts, ENCODE_OPTION_NAMES);
    optionalBoolean("addBos", opts?.addBos);
    optionalBoolean("addEos", opts?.addEos);
    optionalBoolean("parseSpecial", opts?.parseSpecial);
    const out: number[] = [];
    if (opts?.addBos ?? this.addBos) {
      if (this.bos < 0) throw new ParamError("addBos", "this vocabulary has no BOS token");
      out.push(this.bos);
    }
    let atStart = true;
    for (const f of this.splitSpecial(text, opts?.parseSpecial ?? false)) {
      if (typeof f === "number") {
        out.push(f);
        atStart = true;
      } else {
        for (const _ of this.encodeFragmentSteps(f, atStart, out, stepChars)) yield out;
        atStart = false;
      }
    }
    if (opts?.addEos ?? this.addEos) {
      if (this.eos < 0) throw new ParamError("addEos", "this vocabulary has no EOS token");
      out.push(this.eos);
    }
    return out;
  }

  /** Cuts text into plain fragments and special-token ids, longest special first (llama.cpp's tokenizer_st_partition). */
  private splitSpecial(text: string, parseSpecial: boolean): Fragment[] {
    let frags: Fragment[] = text.length > 0 ? [text] : [];
    const specials = parseSpecial ? [...this.controlTokens, ...this.userTokens] : this.userTokens;
    if (parseSpecial) specials.sort((a, b) => this.pieces[b].length - this.pieces[a].length || a - b);
    for (const id of specials) {
      const piece = this.pieces[id];
      let hit = false;
      for (const f of frags) if (typeof f === "string" && f.includes(piece)) hit = true;
      if (!hit) continue;
      const next: Fragment[] = [];
      for (const f of frags) {
        if (typeof f === "number") {
          next.push(f);
          continue;
        }
        let from = 0;
        for (let at = f.indexOf(piece); at >= 0; at = f.indexOf(piece, from)) {
          if (at > from) next.push(f.slice(from, at));
          next.push(id);
          from = at + piece.length;
        }
        if (from < f.length) next.push(f.slice(from));
      }
      frags = next;
    }
    return frags;
  }

  tokenBytes(id: number): Uint8Array {
    this.checkId(id);
    let b = this.bytesCache[id];
    if (b === undefined) {
      b = this.computeTokenBytes(id);
      this.bytesCache[id] = b;
    }
    return b;
  }

  private computeTokenBytes(id: number): Uint8Array {
    const piece = this.pieces[id];
    switch (this.types[id]) {
      case TokenType.control:
        return new Uint8Array(0);
      case TokenType.userDefined:
        return utf8.encode(piece);
      case TokenType.unknown:
        return utf8.encode("\u2585"); // llama.cpp renders unknown tokens as ▅
      case TokenType.byte: {
        const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
        if (m) return Uint8Array.of(parseInt(m[1], 16));
        return this.pieceBytes(piece); // byte-level BPE marks single-byte pieces as bytes in some conversions
      }
      default:
        return this.pieceBytes(piece);
    }
  }

  decode(ids: ArrayLike<number>): string {
    const stream = new TextStream(this, { skipLeadingSpace: true });
    let text = "";
    for (let i = 0; i < ids.length; i++) text += stream.push(ids[i]);
    return text + stream.flush();
  }

  isEndOfGeneration(id: number): boolean {
    return this.endIds.has(id);
  }

  piece(id: number): string {
    this.checkId(id);
    return this.pieces[id];
  }

  /** Id of a piece spelled as the vocabulary spells it, or -1. */
  pieceId(piece: string): number {
    return this.pieceToId.get(piece) ?? -1;
  }

  controlPieces(): readonly string[] {
    return this.controlPieceTexts ??= this.controlTokens.map((id) => this.pieces[id]);
  }

  tokenType(id: number): number {
    this.checkId(id);
    return this.types[id];
  }

  private checkId(id: number): void {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      throw new ParamError("id", `token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }
}

export const utf8 = new TextEncoder();

/** Id of the `<0xNN>` byte-fallback token for each byte value (-1 where the vocabulary lacks one). */
export function byteFallbackIds(pieceToId: (piece: string) => number): Int32Array {
  const ids = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    ids[b] = pieceToId(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  return ids;
}

/**
 * A piece that is not a token, as its UTF-8 bytes' `<0xNN>` tokens (`byteIds`, from byteFallbackIds) appended to
 * `out`; a byte without one becomes the unknown token, and where there is none either, a FormatError names the vocabulary.
 */
export function pushByteFallback(piece: string, byteIds: Int32Array, unk: number, name: string, out: number[]): void {
  for (const b of utf8.encode(piece)) {
    const id = byteIds[b] >= 0 ? byteIds[b] : unk;
    if (id < 0) throw new FormatError(name, `no byte token <0x${b.toString(16).toUpperCase().padStart(2, "0")}> and no unknown token`);
    out.push(id);
  }
}
