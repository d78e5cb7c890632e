/**
 * SentencePiece BPE (Llama 1/2, TinyLlama, the llama2.c stories models), as
 * llama.cpp's llm_tokenizer_spm and llama2.c's `encode` run it: spaces become
 * "▁" (with one put in front when add_dummy_prefix is on), the text is cut
 * into characters, and the adjacent pair whose concatenation is a piece with
 * the highest score merges first (ties: leftmost), until no pair is a piece.
 * Characters that never became a piece fall back to `<0xNN>` byte tokens.
 */
import { FormatError } from "../errors.ts";
import { mergeSymbols } from "./merge-queue.ts";
import { byteFallbackIds, pushByteFallback, utf8, type VocabSpec, VocabTokenizer } from "./vocab.ts";

export const SPACE_MARK = "\u2581"; // ▁

export class SpmTokenizer extends VocabTokenizer {
  readonly addSpacePrefix: boolean;
  /** SentencePiece's remove_extra_whitespaces: trim spaces and collapse runs (llama.cpp ignores it; Llama 2's model has it off). */
  readonly removeExtraWhitespaces: boolean;
  private readonly name: string;
  private readonly scores: Float32Array;
  private readonly byteIds: Int32Array;

  constructor(spec: VocabSpec, opts: { addSpacePrefix: boolean; removeExtraWhitespaces?: boolean }) {
    super(spec);
    if (!spec.scores) throw new FormatError(spec.name, "a SentencePiece vocabulary needs token scores");
    this.name = spec.name;
    this.addSpacePrefix = opts.addSpacePrefix;
    this.removeExtraWhitespaces = opts.removeExtraWhitespaces ?? false;
    this.scores = Float32Array.from(spec.scores);
    this.byteIds = byteFallbackIds((p) => this.pieceId(p));
  }

  private cutsAtSpaces: boolean | undefined;

  /**
   * Whether a fragment may be tokenized in pieces cut before a space that
   * follows another character: true when no piece has a space after another
   * character (so no merge can cross such a cut) and spaces are not collapsed.
   */
  private canCutAtSpaces(): boolean {
    if (this.cutsAtSpaces !== undefined) return this.cutsAtSpaces;
    let ok = !this.removeExtraWhitespaces;
    for (let id = 0; ok && id < this.vocabSize; id++) {
      const p = this.pieces[id];
      for (let i = 1; i < p.length; i++) {
        if (p[i] === SPACE_MARK && p[i - 1] !== SPACE_MARK) {
          ok = false;
          break;
        }
      }
    }
    return this.cutsAtSpaces = ok;
  }

  protected override *encodeFragmentSteps(text: string, atStart: boolean, out: number[], stepChars: number): Iterable<void> {
    if (text.length <= stepChars || !this.canCutAtSpaces()) return this.encodeFragment(text, atStart, out);
    let from = 0;
    while (from < text.length) {
      let cut = -1;
      for (let i = from + stepChars; i < text.length; i++) {
        if (text[i] === " " && text[i - 1] !== " ") {
          cut = i;
          break;
        }
      }
      // a piece after a cut starts with its space, spelled "▁" as inside the text
      this.encodeFragment(text.slice(from, cut < 0 ? text.length : cut), atStart && from === 0, out);
      if (cut < 0) return;
      from = cut;
      yield;
    }
  }

  protected encodeFragment(text: string, atStart: boolean, out: number[]): void {
    if (this.removeExtraWhitespaces) text = text.replace(/ {2,}/g, " ").replace(/^ | $/g, "");
    if (text.length === 0) return;
    const s = ((this.addSpacePrefix && atStart ? " " : "") + text).replaceAll(" ", SPACE_MARK);

    // the pair whose concatenation is the piece of highest score first
    const pieces = mergeSymbols(s, (at, l, r) => {
      const id = this.pieceToId.get(s.substr(at, l + r));
      return id === undefined ? undefined : -this.scores[id];
    });
    for (const piece of pieces) {
      const id = this.pieceToId.get(piece);
      if (id !== undefined) out.push(id);
      else pushByteFallback(piece, this.byteIds, this.unk, this.name, out);
    }
  }

  protected pieceBytes(piece: string): Uint8Array {
    return utf8.encode(piece.replaceAll(SPACE_MARK, " "));
  }

  /** The score of a piece (SentencePiece log-probability). */
  score(id: number): number {
    this.tokenType(id); // range check
    return this.scores[id];
  }
}
