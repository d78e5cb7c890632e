/**
 * llama2.c's tokenizer.bin: `i32 max_token_length`, then per token
 * `f32 score, i32 len, len bytes`. The file holds no count (the model's
 * config has vocab_size) and no token types. llama2.c's exporter wrote pieces
 * with ' ' where SentencePiece has '▁', and BOS/EOS as "\n<s>\n" / "\n</s>\n";
 * both are undone here so the pieces match the .model and GGUF spellings.
 */
import { FormatError } from "../errors.ts";
import { SPACE_MARK, SpmTokenizer } from "./spm.ts";
import { type Tokenizer, TokenType } from "./tokenizer.ts";

const UNK = 0, BOS = 1, EOS = 2;

export function readLlama2cTokenizer(bytes: Uint8Array, name = "<tokenizer.bin>", vocabSize?: number): Tokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new FormatError(name, `${bytes.length} bytes is too short for a llama2.c tokenizer header`);
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
    throw new FormatError(name, `max_token_length ${maxTokenLength} is not plausible: not a llama2.c tokenizer.bin`);
  }
  if (vocabSize !== undefined && !(Number.isInteger(vocabSize) && vocabSize > 0)) {
    throw new FormatError(name, `vocab size ${vocabSize} is not a positive integer`);
  }

  const decoder = new TextDecoder("utf-8", { fatal: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  let at = 4;
  while (vocabSize === undefined ? at < bytes.length : pieces.length < vocabSize) {
    const i = pieces.length;
    if (at + 8 > bytes.length) {
      throw new FormatError(name, `truncated at token ${i}: header needs 8 bytes at offset ${at}, file has ${bytes.length}`);
    }
    const score = view.getFloat32(at, true);
    const len = view.getInt32(at + 4, true);
    at += 8;
    if (len < 0 || len > maxTokenLength) {
      throw new FormatError(name, `token ${i} has length ${len} (max_token_length is ${maxTokenLength})`);
    }
    if (at + len > bytes.length) {
      throw new FormatError(name, `truncated at token ${i}: ${len} bytes needed at offset ${at}, file has ${bytes.length}`);
    }
    let text: string;
    try {
      text = decoder.decode(bytes.subarray(at, at + len));
    } catch {
      throw new FormatError(name, `token ${i} is not valid UTF-8`);
    }
    at += len;
    pieces.push(text);
    scores.push(score);
  }
  if (pieces.length <= EOS) throw new FormatError(name, `only ${pieces.length} tokens; a llama2.c vocabulary starts with <unk>, <s>, </s>`);
  if (at < bytes.length) {
    // llama2.c reads vocab_size tokens and ignores the rest; a file that goes on is another model's vocabulary (Llama 2's
    // 32000 beside stories260K ran and wrote gibberish), whose first pieces are not this model's
    throw new FormatError(
      name,
      `holds more tokens than the model's vocabulary of ${pieces.length} (${bytes.length - at} bytes follow token ${
        pieces.length - 1
      }): a tokenizer for another model?`,
    );
  }

  const types = new Uint8Array(pieces.length).fill(TokenType.normal);
  types[UNK] = TokenType.unknown;
  types[BOS] = TokenType.control;
  types[EOS] = TokenType.control;
  for (let i = 0; i < pieces.length; i++) {
    if (i <= EOS) {
      pieces[i] = pieces[i].trim();
    } else if (/^<0x[0-9A-F]{2}>$/.test(pieces[i])) {
      types[i] = TokenType.byte;
    } else {
      pieces[i] = pieces[i].replaceAll(" ", SPACE_MARK);
    }
  }

  return new SpmTokenizer(
    { name, pieces, scores, types, bos: BOS, eos: EOS, unk: UNK, addBos: true, addEos: false },
    { addSpacePrefix: true },
  );
}
