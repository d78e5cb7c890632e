/**
 * Hugging Face tokenizer.json (the `tokenizers` library's serialization), for
 * BPE models in their two common shapes:
 *
 * - byte-level (GPT-2, Llama 3, Qwen2): a ByteLevel pre-tokenizer, optionally
 *   after Split(Regex) / Digits steps that supply the word pattern;
 * - SentencePiece-style (Llama 2, Mistral, TinyLlama): `byte_fallback`, spaces
 *   turned into "▁" by a Prepend+Replace normalizer or a Metaspace pre-tokenizer.
 *
 * added_tokens become control tokens (special: true) or user-defined tokens.
 * BOS/EOS come from `config` (tokenizer_config.json, config.json or
 * generation_config.json: add_bos_token, bos_token, eos_token, *_token_id)
 * and else from the TemplateProcessing post-processor.
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import { BpeTokenizer } from "./bpe.ts";
import { GPT2_PATTERN } from "./pretokenize.ts";
import { SPACE_MARK } from "./spm.ts";
import { type Tokenizer, TokenType } from "./tokenizer.ts";

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * `file` names the file in errors; `minVocabSize` pads the vocabulary with unused ids up to a model's
 * embedding rows (Qwen2 ships 151,665 tokens for 151,936 rows; llama.cpp's converter pads the same way).
 */
export function tokenizerFromHFJson(json: unknown, config?: unknown, file = "tokenizer.json", minVocabSize = 0): Tokenizer {
  const FILE = file;
  if (!isObject(json) || !isObject(json.model)) throw new FormatError(FILE, "no `model` object: not a Hugging Face tokenizer.json");
  const model = json.model;
  const type = model.type ?? (model.merges !== undefined ? "BPE" : undefined);
  if (type !== "BPE") {
    throw new UnsupportedError(`${FILE}: model type ${JSON.stringify(type)} is not supported (kvasm runs BPE tokenizers)`);
  }
  if (!isObject(model.vocab)) throw new FormatError(FILE, "model.vocab is missing or not an object");
  if (!Array.isArray(model.merges)) throw new FormatError(FILE, "model.merges is missing or not an array");

  // ---- pieces: the BPE vocabulary plus added tokens
  const entries: Array<[string, number, number]> = []; // piece, id, type
  for (const [piece, id] of Object.entries(model.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) throw new FormatError(FILE, `model.vocab[${JSON.stringify(piece)}] is not a token id`);
    entries.push([piece, id as number, TokenType.normal]);
  }
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new FormatError(FILE, "added_tokens is not an array");
  for (const [i, t] of added.entries()) {
    if (!isObject(t) || typeof t.content !== "string" || !Number.isInteger(t.id)) {
      throw new FormatError(FILE, `added_tokens[${i}] needs "id" and "content"`);
    }
    entries.push([t.content, t.id as number, t.special === true ? TokenType.control : TokenType.userDefined]);
  }
  const size = Math.max(entries.reduce((m, [, id]) => Math.max(m, id + 1), 0), minVocabSize);
  if (size > 4 * entries.length + 1024) throw new FormatError(FILE, `token ids reach ${size - 1} for ${entries.length} tokens`);
  const pieces: string[] = new Array(size).fill("");
  const types = new Uint8Array(size).fill(TokenType.unused); // ids no entry names stay unused and empty
  for (const [piece, id, t] of entries) {
    pieces[id] = piece;
    types[id] = t;
  }

  const merges: Array<[string, string]> = model.merges.map((m, i): [string, string] => {
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") return [m[0], m[1]];
    const at = typeof m === "string" ? m.indexOf(" ", 1) : -1;
    if (at < 0) throw new FormatError(FILE, `model.merges[${i}] is not "left right": ${JSON.stringify(m)}`);
    return [(m as string).slice(0, at), (m as string).slice(at + 1)];
  });

  // ---- which of the two shapes
  const pre = flatten(json.pre_tokenizer, FILE);
  const norm = flatten(json.normalizer, FILE);
  const byteLevel = pre.some((s) => s.type === "ByteLevel");
  const byteFallback = model.byte_fallback === true;
  if (typeof model.unk_token === "string") {
    const unkId = pieces.indexOf(model.unk_token);
    if (unkId >= 0 && types[unkId] !== TokenType.userDefined) types[unkId] = TokenType.unknown;
  }

  let bpeOptions: ConstructorParameters<typeof BpeTokenizer>[1];
  if (byteLevel) {
    const patterns: string[] = [];
    let addPrefixSpace = false;
    for (const step of pre) {
      if (step.type === "ByteLevel") {
        if (step.use_regex !== false) patterns.push(GPT2_PATTERN);
        addPrefixSpace = step.add_prefix_space === true;
      } else if (step.type === "Split") {
        if (step.behavior !== "Isolated" || step.invert === true) {
          throw new UnsupportedError(
            `${FILE}: Split pre-tokenizer with behavior ${JSON.stringify(step.behavior)}${
              step.invert ? " (inverted)" : ""
            } is not supported`,
          );
        }
        const p = step.pattern as Json | undefined;
        if (typeof p?.Regex === "string") patterns.push(p.Regex);
        else if (typeof p?.String === "string") patterns.push(p.String.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&"));
        else throw new FormatError(FILE, "Split pre-tokenizer without a pattern");
      } else if (step.type === "Digits") {
        patterns.push(step.individual_digits === true ? String.raw`\p{N}` : String.raw`\p{N}+`);
      } else {
        throw new UnsupportedError(`${FILE}: pre-tokenizer ${JSON.stringify(step.type)} is not supported with byte-level BPE`);
      }
    }
    for (const n of norm) {
      if (n.type !== "NFC") {
        throw new UnsupportedError(`${FILE}: normalizer ${JSON.stringify(n.type)} is not supported with byte-level BPE`);
      }
    }
    bpeOptions = {
      merges,
      byteLevel: true,
      patterns,
      addPrefixSpace,
      ignoreMerges: model.ignore_merges === true,
      normalizeNFC: norm.length > 0,
    };
  } else {
    // SentencePiece-style: "▁" for spaces comes from the normalizer (old exports) or a Metaspace pre-tokenizer (new ones).
    let addSpacePrefix = false, replacesSpace = false, splitOnSpace = false;
    for (const n of norm) {
      if (n.type === "Prepend" && n.prepend === SPACE_MARK) addSpacePrefix = true;
      else if (n.type === "Replace" && (n.pattern as Json | undefined)?.String === " " && n.content === SPACE_MARK) replacesSpace = true;
      else throw new UnsupportedError(`${FILE}: normalizer ${JSON.stringify(n.type)} is not supported with SentencePiece-style BPE`);
    }
    for (const p of pre) {
      if (p.type !== "Metaspace") {
        throw new UnsupportedError(`${FILE}: pre-tokenizer ${JSON.stringify(p.type)} is not supported with SentencePiece-style BPE`);
      }
      if ((p.replacement ?? SPACE_MARK) !== SPACE_MARK) {
        throw new UnsupportedError(`${FILE}: Metaspace replacement ${JSON.stringify(p.replacement)} is not supported`);
      }
      replacesSpace = true;
      addSpacePrefix = p.prepend_scheme !== undefined ? p.prepend_scheme !== "never" : p.add_prefix_space !== false;
      splitOnSpace = p.split === true;
    }
    if (!replacesSpace && !byteFallback) {
      throw new UnsupportedError(
        `${FILE}: a BPE tokenizer that is neither byte-level nor SentencePiece-style (no ByteLevel, Metaspace or byte_fallback)`,
      );
    }
    for (let id = 0; id < size; id++) {
      if (types[id] === TokenType.normal && /^<0x[0-9A-F]{2}>$/.test(pieces[id])) types[id] = TokenType.byte;
    }
    bpeOptions = { merges, byteLevel: false, addSpacePrefix, splitOnSpace, ignoreMerges: model.ignore_merges === true };
  }

  // ---- BOS / EOS
  const cfg = isObject(config) ? config : {};
  const idOf = (v: unknown): number | undefined => {
    const content = typeof v === "string" ? v : isObject(v) && typeof v.content === "string" ? v.content : undefined;
    const id = content === undefined ? -1 : pieces.indexOf(content);
    return id >= 0 ? id : undefined;
  };
  const ids = (v: unknown): number[] => (Array.isArray(v) ? v : [v]).filter((x): x is number => Number.isInteger(x) && x >= 0 && x < size);
  const template = templateSpecials(json.post_processor, idOf);
  const eosIds = ids(cfg.eos_token_id);
  const bos = idOf(cfg.bos_token) ?? ids(cfg.bos_token_id)[0] ?? template.bos ??
    firstPresent(pieces, ["<s>", "<|begin_of_text|>", "<bos>"]);
  const eos = idOf(cfg.eos_token) ?? eosIds[0] ?? template.eos ??
    firstPresent(pieces, ["</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"]);
  const addBos = typeof cfg.add_bos_token === "boolean" ? cfg.add_bos_token : template.bos !== undefined;
  const addEos = typeof cfg.add_eos_token === "boolean" ? cfg.add_eos_token : template.eos !== undefined;
  const unk = typeof model.unk_token === "string" ? idOf(model.unk_token) : undefined;

  return new BpeTokenizer(
    { name: FILE, pieces, types, bos, eos, unk, pad: idOf(cfg.pad_token), extraEndIds: eosIds, addBos, addEos },
    bpeOptions,
  );
}

/** A normalizer / pre-tokenizer as a flat list of steps (Sequence nodes opened, null -> []). */
function flatten(node: unknown, FILE: string): Json[] {
  if (node === null || node === undefined) return [];
  if (!isObject(node)) throw new FormatError(FILE, `expected an object, found ${JSON.stringify(node)}`);
  if (node.type === "Sequence") {
    const inner = node.normalizers ?? node.pretokenizers ?? node.pre_tokenizers;
    if (!Array.isArray(inner)) throw new FormatError(FILE, "Sequence without steps");
    return inner.flatMap((n) => flatten(n, FILE));
  }
  return [node];
}

/** BOS/EOS that a TemplateProcessing post-processor wraps single sequences in. */
function templateSpecials(node: unknown, idOf: (v: unknown) => number | undefined): { bos?: number; eos?: number } {
  if (!isObject(node)) return {};
  if (node.type === "Sequence" && Array.isArray(node.processors)) {
    for (const p of node.processors) {
      const t = templateSpecials(p, idOf);
      if (t.bos !== undefined || t.eos !== undefined) return t;
    }
    return {};
  }
  if (node.type !== "TemplateProcessing" || !Array.isArray(node.single)) return {};
  const special = (item: unknown) => (isObject(item) && isObject(item.SpecialToken) ? idOf(item.SpecialToken.id) : undefined);
  const single = node.single;
  return { bos: special(single[0]), eos: single.length > 1 ? special(single[single.length - 1]) : undefined };
}

function firstPresent(pieces: string[], candidates: string[]): number | undefined {
  for (const c of candidates) {
    const id = pieces.indexOf(c);
    if (id >= 0) return id;
  }
  return undefined;
}
