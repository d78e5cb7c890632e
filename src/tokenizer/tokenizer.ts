/**
 * What the rest of kvasm sees of a tokenizer: text to ids, ids to bytes, and
 * a streaming detokenizer that never splits a UTF-8 character.
 */
import { checkOptionNames, optionNames } from "../errors.ts";

/** Token kinds, numbered as in SentencePiece's ModelProto and GGUF's tokenizer.ggml.token_type. */
export const TokenType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

export interface EncodeOptions {
  /** Prepend BOS; defaults to the tokenizer's `addBos`. */
  addBos?: boolean;
  /** Append EOS; defaults to the file's add_eos_token (false for almost every chat model). */
  addEos?: boolean;
  /**
   * Match control tokens (`<s>`, `<|im_end|>`, ...) written in the text. Off by
   * default so user text cannot inject them; chat templates turn it on.
   * User-defined tokens are always matched, as llama.cpp does.
   */
  parseSpecial?: boolean;
}

/** EncodeOptions' names: encode refuses any other key (`addBOS: false` prepended BOS unseen). */
export const ENCODE_OPTION_NAMES = optionNames<EncodeOptions>()(["addBos", "addEos", "parseSpecial"]);

/** TextStream's options' names. */
const TEXT_STREAM_OPTION_NAMES = optionNames<{ skipLeadingSpace?: boolean }>()(["skipLeadingSpace"]);

export interface Tokenizer {
  readonly vocabSize: number;
  /** -1 if none. */
  readonly bos: number;
  /** -1 if none. */
  readonly eos: number;
  /** Whether encode() adds BOS by default (tokenizer.ggml.add_bos_token; true for llama SPM). */
  readonly addBos: boolean;
  /**
   * SentencePiece's add_dummy_prefix: encode() puts a space before the text, so
   * decoding drops the leading space of the first piece (and of the piece after BOS).
   * False for byte-level BPE.
   */
  readonly addSpacePrefix: boolean;
  encode(text: string, opts?: EncodeOptions): number[];
  /**
   * encode() in steps of about `stepChars` characters, yielding the ids so far
   * between them (where the vocabulary allows exact cuts); returns encode()'s ids.
   */
  encodeSteps?(text: string, opts?: EncodeOptions, stepChars?: number): Generator<readonly number[], number[]>;
  /** The raw bytes this token stands for (byte-fallback tokens give their byte; control tokens give nothing). */
  tokenBytes(id: number): Uint8Array;
  /** Decoding a whole id sequence; the leading space of the first piece (after BOS) is dropped for SPM vocabularies. */
  decode(ids: ArrayLike<number>): string;
  /** End-of-generation: eos, eot, <|im_end|> etc. */
  isEndOfGeneration(id: number): boolean;
  /** Piece string for id as the vocabulary spells it (for debugging / logprob display). */
  piece(id: number): string;
  /** The texts encode() with `parseSpecial` reads as control tokens (`<|im_start|>`, `</s>`), longest first. */
  controlPieces(): readonly string[];
}

/**
 * Streaming detokenizer: push ids one by one and get text that never holds half
 * of a multi-byte UTF-8 character (byte-fallback tokens arrive a byte at a time).
 *
 * The leading-space rule: the piece right after BOS loses its leading space
 * (llama2.c's `decode`). With `skipLeadingSpace` the very first piece loses it
 * too, which is what `Tokenizer.decode` does for a whole sequence. Leave it off
 * when streaming a continuation of a prompt: the first generated piece's space
 * is real text there.
 */
export class TextStream {
  private readonly decoder = new TextDecoder("utf-8");
  private stripNext: boolean;

  constructor(private readonly tokenizer: Tokenizer, opts?: { skipLeadingSpace?: boolean }) {
    checkOptionNames("TextStream", opts, TEXT_STREAM_OPTION_NAMES);
    this.stripNext = tokenizer.addSpacePrefix && (opts?.skipLeadingSpace ?? false);
  }

  push(id: number): string {
    if (id === this.tokenizer.bos) {
      this.stripNext = this.tokenizer.addSpacePrefix;
      return "";
    }
    let bytes = this.tokenizer.tokenBytes(id);
    if (this.stripNext && bytes.length > 0 && bytes[0] === 0x20) bytes = bytes.subarray(1);
    this.stripNext = false;
    return this.decoder.decode(bytes, { stream: true });
  }

  /** Whatever is still buffered: an incomplete character comes out as U+FFFD. */
  flush(): string {
    return this.decoder.decode();
  }
}
