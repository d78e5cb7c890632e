// src/tokenizer/ owns text to ids and back: SentencePiece and byte-level BPE, vocabularies from tokenizer.bin, .model,
// GGUF and tokenizer.json, and pre-tokenization.
/**
 * Rank-based BPE, in the two shapes tokenizer files use:
 *
 * - byte-level (GPT-2, Llama 3, Qwen2): text is cut into words by a
 *   pre-tokenizer regex chain, each word's UTF-8 bytes are spelled with
 *   GPT-2's bytes_to_unicode alphabet, and merges apply by rank inside each
 *   word. Every byte sequence is representable.
 * - SentencePiece-style (Hugging Face tokenizer.json of Llama 2, Mistral):
 *   spaces become "▁", merges apply by rank over the whole text, and
 *   characters that are not pieces fall back to `<0xNN>` byte tokens.
 *
 * Merging follows llama.cpp's llm_tokenizer_bpe_session: a queue of adjacent
 * pairs ordered by merge rank, ties to the leftmost.
 */
import { FormatError } from "../errors.ts";
import { mergeSymbols } from "./merge-queue.ts";
import { compilePattern, splitByPatterns } from "./pretokenize.ts";
import { SPACE_MARK } from "./spm.ts";
import { byteFallbackIds, pushByteFallback, utf8, type VocabSpec, VocabTokenizer } from "./vocab.ts";

export interface BpeOptions {
  /** Merges in rank order, each as its [left, right] pieces. */
  merges: Array<[string, string]>;
  /** true: GPT-2 byte-level pieces; false: SentencePiece-style pieces with "▁" and `<0xNN>` fallback. */
  byteLevel: boolean;
  /** Byte-level only: the pre-tokenizer pattern chain (JS or tokenizer-file regex sources). */
  patterns?: string[];
  /** Byte-level only (Hugging Face ByteLevel add_prefix_space): a space before text that does not start with one. */
  addPrefixSpace?: boolean;
  /** SentencePiece-style only: put "▁" in front of the text (Metaspace prepend / Prepend normalizer). */
  addSpacePrefix?: boolean;
  /** SentencePiece-style only: cut the text before each "▁" (Metaspace split: true). */
  splitOnSpace?: boolean;
  /** A word that is itself a piece is taken whole (Llama 3's ignore_merges). */
  ignoreMerges?: boolean;
  /** Byte-level only: Unicode NFC before pre-tokenization (Qwen2's normalizer). */
  normalizeNFC?: boolean;
}

/** Merge cache entries kept before the cache is dropped (a long chat touches a few thousand words). */
const WORD_CACHE_LIMIT = 65536;

export class BpeTokenizer extends VocabTokenizer {
  readonly addSpacePrefix: boolean;
  readonly byteLevel: boolean;
  private readonly name: string;
  /** rank of merging (left, right): ranks.get(left).get(right) */
  private readonly ranks = new Map<string, Map<string, number>>();
  private readonly patterns: RegExp[];
  private readonly addPrefixSpace: boolean;
  private readonly splitOnSpace: boolean;
  private readonly ignoreMerges: boolean;
  private readonly normalizeNFC: boolean;
  private readonly byteIds: Int32Array;
  private readonly wordCache = new Map<string, number[]>();

  constructor(spec: VocabSpec, opts: BpeOptions) {
    super(spec);
    this.name = spec.name;
    this.byteLevel = opts.byteLevel;
    this.addSpacePrefix = !opts.byteLevel && (opts.addSpacePrefix ?? false);
    this.addPrefixSpace = opts.byteLevel && (opts.addPrefixSpace ?? false);
    this.splitOnSpace = opts.splitOnSpace ?? false;
    this.ignoreMerges = opts.ignoreMerges ?? false;
    this.normalizeNFC = opts.byteLevel && (opts.normalizeNFC ?? false);
    this.patterns = opts.byteLevel ? (opts.patterns ?? []).map((p) => compilePattern(p, spec.name)) : [];
    opts.merges.forEach(([left, right], rank) => {
      let m = this.ranks.get(left);
      if (m === undefined) this.ranks.set(left, m = new Map());
      if (!m.has(right)) m.set(right, rank);
    });
    // Byte-level vocabularies spell byte b as the single character BYTE_TO_CHAR[b].
    this.byteIds = opts.byteLevel ? Int32Array.from(BYTE_TO_CHAR, (c) => this.pieceId(c)) : byteFallbackIds((p) => this.pieceId(p));
  }

  protected encodeFragment(text: string, atStart: boolean, out: number[]): void {
    if (!this.byteLevel) {
      const s = ((this.addSpacePrefix && atStart ? " " : "") + text).replaceAll(" ", SPACE_MARK);
      if (!this.splitOnSpace) return this.encodeWord(s, out);
      // Metaspace split: each word starts at a ▁
      let from = 0;
      for (let at = s.indexOf(SPACE_MARK, 1); at > 0; at = s.indexOf(SPACE_MARK, at + 1)) {
        if (at > from) this.encodeWord(s.slice(from, at), out);
        from = at;
      }
      return this.encodeWord(s.slice(from), out);
    }
    for (const _ of this.byteLevelSteps(text, atStart, out, Infinity));
  }

  protected override *encodeFragmentSteps(text: string, atStart: boolean, out: number[], stepChars: number): Iterable<void> {
    if (!this.byteLevel) return this.encodeFragment(text, atStart, out);
    yield* this.byteLevelSteps(text, atStart, out, stepChars);
  }

  /** Byte-level BPE never crosses a pre-tokenizer span, so the spans are worked through in steps of `stepChars`. */
  private *byteLevelSteps(text: string, atStart: boolean, out: number[], stepChars: number): Generator<void, void> {
    if (this.normalizeNFC) text = text.normalize("NFC");
    const s = this.addPrefixSpace && atStart && !text.startsWith(" ") ? " " + text : text;
    const spans = splitByPatterns(s, this.patterns);
    let since = 0;
    for (let i = 0; i < spans.length; i += 2) {
      this.encodeWord(byteLevelSpelling(utf8.encode(s.slice(spans[i], spans[i + 1]))), out);
      since += spans[i + 1] - spans[i];
      if (since >= stepChars && i + 2 < spans.length) {
        since = 0;
        yield;
      }
    }
  }

  /**
   * Byte-level only: tokenizes raw bytes, valid UTF-8 or not. Invalid bytes
   * take part in pre-tokenization as U+FFFD but keep their own value, so
   * concatenating tokenBytes of the result gives `bytes` back exactly.
   * Special tokens are not matched.
   */
  encodeBytes(bytes: Uint8Array, opts?: { addBos?: boolean }): number[] {
    if (!this.byteLevel) throw new FormatError(this.name, "encodeBytes needs a byte-level BPE vocabulary");
    const out: number[] = [];
    if (opts?.addBos ?? this.addBos) out.push(this.bos);
    const { text, byteAt } = decodeUtf8Lossless(bytes);
    const prefix = this.addPrefixSpace && bytes.length > 0 && bytes[0] !== 0x20;
    const s = prefix ? " " + text : text;
    const spans = splitByPatterns(s, this.patterns);
    for (let i = 0; i < spans.length; i += 2) {
      const a = spans[i] - (prefix ? 1 : 0), b = spans[i + 1] - (prefix ? 1 : 0);
      const word = a < 0 ? Uint8Array.of(0x20, ...bytes.subarray(0, byteAt[b])) : bytes.subarray(byteAt[a], byteAt[b]);
      this.encodeWord(byteLevelSpelling(word), out);
    }
    return out;
  }

  /** BPE over one word (spelled in the vocabulary's alphabet), through the cache. */
  private encodeWord(word: string, out: number[]): void {
    if (word.length === 0) return;
    let ids = this.wordCache.get(word);
    if (ids === undefined) {
      ids = this.mergeWord(word);
      if (this.wordCache.size >= WORD_CACHE_LIMIT) this.wordCache.clear();
      this.wordCache.set(word, ids);
    }
    for (const id of ids) out.push(id);
  }

  private mergeWord(word: string): number[] {
    if (this.ignoreMerges) {
      const whole = this.pieceToId.get(word);
      if (whole !== undefined) return [whole];
    }
    const ids: number[] = [];
    for (const piece of mergeSymbols(word, (at, l, r) => this.ranks.get(word.substr(at, l))?.get(word.substr(at + l, r)))) {
      const id = this.pieceToId.get(piece);
      if (id !== undefined) ids.push(id);
      else this.pushFallback(piece, ids);
    }
    return ids;
  }

  /** A symbol that is not a piece: one token per byte (byte-level: per character of the byte alphabet). */
  private pushFallback(piece: string, ids: number[]): void {
    if (this.byteLevel) {
      for (let i = 0; i < piece.length; i++) {
        const id = this.byteIds[CHAR_TO_BYTE[piece.charCodeAt(i)]];
        if (id >= 0) ids.push(id);
        else if (this.unk >= 0) ids.push(this.unk);
        else {throw new FormatError(
            this.name,
            `the byte-level vocabulary lacks the piece for byte 0x${CHAR_TO_BYTE[piece.charCodeAt(i)].toString(16)}`,
          );}
      }
      return;
    }
    pushByteFallback(piece, this.byteIds, this.unk, this.name, ids);
  }

  protected pieceBytes(piece: string): Uint8Array {
    if (!this.byteLevel) return utf8.encode(piece.replaceAll(SPACE_MARK, " "));
    const bytes = new Uint8Array(piece.length);
    for (let i = 0; i < piece.length; i++) {
      const c = piece.charCodeAt(i);
      const b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
      // A piece outside the byte alphabet (some converters store added tokens raw): its UTF-8 text.
      if (b < 0) return utf8.encode(piece);
      bytes[i] = b;
    }
    return bytes;
  }
}

// ------------------------------------------------------------ byte alphabet

/**
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
 * other 68 bytes map to U+0100.. in byte order, so every byte is one visible
 * character and no piece holds a space or control character.
 */
const BYTE_TO_CHAR: string[] = (() => {
  const chars: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return chars;
})();

/** Inverse of BYTE_TO_CHAR by char code (-1: not in the alphabet). */
const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(256 + 68).fill(-1);
  BYTE_TO_CHAR.forEach((c, b) => (t[c.charCodeAt(0)] = b));
  return t;
})();

function byteLevelSpelling(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]];
  return s;
}

/**
 * Strict UTF-8 decoding that keeps the byte offset of every UTF-16 unit:
 * `byteAt[i]` is where unit i starts and `byteAt[text.length] = bytes.length`.
 * Each invalid byte becomes one U+FFFD standing for that byte alone.
 */
function decodeUtf8Lossless(bytes: Uint8Array): { text: string; byteAt: Int32Array } {
  const units: number[] = [];
  const byteAt = new Int32Array(bytes.length * 2 + 1);
  let i = 0;
  const emit = (unit: number, at: number) => {
    byteAt[units.length] = at;
    units.push(unit);
  };
  while (i < bytes.length) {
    const b0 = bytes[i];
    let need = 0, cp = 0, min = 0;
    if (b0 < 0x80) [need, cp] = [0, b0];
    else if (b0 >= 0xc2 && b0 < 0xe0) [need, cp, min] = [1, b0 & 0x1f, 0x80];
    else if (b0 >= 0xe0 && b0 < 0xf0) [need, cp, min] = [2, b0 & 0x0f, 0x800];
    else if (b0 >= 0xf0 && b0 < 0xf5) [need, cp, min] = [3, b0 & 0x07, 0x10000];
    else need = -1;
    let ok = need === 0 || (need > 0 && i + need < bytes.length);
    for (let k = 1; ok && k <= need; k++) {
      const b = bytes[i + k];
      if ((b & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (b & 0x3f);
    }
    if (ok && need > 0 && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))) ok = false;
    if (!ok) {
      emit(0xfffd, i);
      i += 1;
      continue;
    }
    if (cp >= 0x10000) {
      emit(0xd800 + ((cp - 0x10000) >> 10), i);
      emit(0xdc00 + ((cp - 0x10000) & 0x3ff), i); // never a span boundary: the regexes match code points
    } else {
      emit(cp, i);
    }
    i += need + 1;
  }
  byteAt[units.length] = bytes.length;
  let text = "";
  for (let k = 0; k < units.length; k += 4096) text += String.fromCharCode(...units.slice(k, k + 4096));
  return { text, byteAt: byteAt.subarray(0, units.length + 1) };
}
