/**
 * The tokenizer a GGUF file carries in its tokenizer.ggml.* metadata:
 * "llama" is SentencePiece BPE (scores), "gpt2" is byte-level BPE (merges +
 * the tokenizer.ggml.pre pre-tokenizer).
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import { BpeTokenizer } from "./bpe.ts";
import { preTokenizerForGGUF } from "./pretokenize.ts";
import { SpmTokenizer } from "./spm.ts";
import type { Tokenizer } from "./tokenizer.ts";
import type { VocabSpec } from "./vocab.ts";

export function tokenizerFromGGUF(metadata: Map<string, unknown>, name = "<gguf>"): Tokenizer {
  const model = metadata.get("tokenizer.ggml.model");
  if (model === undefined) throw new FormatError(name, "tokenizer.ggml.model is missing: the file carries no tokenizer");
  if (typeof model !== "string") throw new FormatError(name, "tokenizer.ggml.model is not a string");

  const tokens = metadata.get("tokenizer.ggml.tokens");
  if (tokens === undefined) throw new FormatError(name, "tokenizer.ggml.tokens is missing");
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string")) {
    throw new FormatError(name, "tokenizer.ggml.tokens is not an array of strings");
  }
  const scores = numbers(metadata, "tokenizer.ggml.scores", name);
  const types = numbers(metadata, "tokenizer.ggml.token_type", name);
  const id = (key: string) => integer(metadata, `tokenizer.ggml.${key}`, name);
  const flag = (key: string) => boolean(metadata, `tokenizer.ggml.${key}`, name);

  const spec = (defaults: { bos?: number; eos?: number; unk?: number; addBos: boolean }): VocabSpec => ({
    name,
    pieces: tokens as string[],
    scores,
    types,
    bos: id("bos_token_id") ?? defaults.bos,
    eos: id("eos_token_id") ?? defaults.eos,
    unk: id("unknown_token_id") ?? defaults.unk,
    pad: id("padding_token_id"),
    eot: id("eot_token_id"),
    extraEndIds: [id("eom_token_id")].filter((x): x is number => x !== undefined),
    addBos: flag("add_bos_token") ?? defaults.addBos,
    addEos: flag("add_eos_token") ?? false,
  });

  switch (model) {
    case "llama": {
      if (scores === undefined) throw new FormatError(name, "tokenizer.ggml.scores is missing (a SentencePiece vocabulary needs them)");
      // llama.cpp's defaults for SentencePiece vocabularies
      return new SpmTokenizer(spec({ bos: 1, eos: 2, unk: 0, addBos: true }), {
        addSpacePrefix: flag("add_space_prefix") ?? true,
      });
    }
    case "gpt2": {
      const merges = metadata.get("tokenizer.ggml.merges");
      if (merges === undefined) throw new FormatError(name, "tokenizer.ggml.merges is missing (a BPE vocabulary needs them)");
      if (!Array.isArray(merges)) throw new FormatError(name, "tokenizer.ggml.merges is not an array of strings");
      const pre = metadata.get("tokenizer.ggml.pre");
      const preSpec = preTokenizerForGGUF(typeof pre === "string" ? pre : undefined);
      return new BpeTokenizer(spec({ addBos: preSpec.addBosDefault }), {
        merges: merges.map((m, i) => splitMerge(m, i, name)),
        byteLevel: true,
        patterns: preSpec.patterns,
        ignoreMerges: preSpec.ignoreMerges,
      });
    }
    default:
      throw new UnsupportedError(
        `${name}: tokenizer.ggml.model "${model}" is not supported (kvasm runs "llama" SentencePiece and "gpt2" byte-level BPE)`,
      );
  }
}

/** "left right", split at the first space after the first character (a piece may itself start with a space). */
function splitMerge(m: unknown, i: number, name: string): [string, string] {
  const at = typeof m === "string" ? m.indexOf(" ", 1) : -1;
  if (at < 0) throw new FormatError(name, `tokenizer.ggml.merges[${i}] is not "left right": ${JSON.stringify(m)}`);
  return [(m as string).slice(0, at), (m as string).slice(at + 1)];
}

function numbers(md: Map<string, unknown>, key: string, name: string): ArrayLike<number> | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView) && typeof (v as unknown as ArrayLike<unknown>)[0] !== "bigint") {
    return v as unknown as ArrayLike<number>;
  }
  if (Array.isArray(v) && v.every((x) => typeof x === "number")) return v;
  throw new FormatError(name, `${key} is not an array of numbers`);
}

/** An id key; GGUF writes "none" as u32 -1 (4294967295), which means absent here. */
function integer(md: Map<string, unknown>, key: string, name: string): number | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n)) throw new FormatError(name, `${key} is not an integer`);
  return n < 0 || n >= 0xffffffff ? undefined : n;
}

function boolean(md: Map<string, unknown>, key: string, name: string): boolean | undefined {
  const v = md.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") throw new FormatError(name, `${key} is not a boolean`);
  return v;
}
