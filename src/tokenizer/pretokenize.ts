/**
 * Pre-tokenization for byte-level BPE: the regexes that cut text into words
 * before merges run. A pre-tokenizer is a chain of patterns applied in turn,
 * each one cutting every span the previous ones left into matched and
 * unmatched parts (llama.cpp's unicode_regex_split), so no text is ever lost.
 */
import { UnsupportedError } from "../errors.ts";
import { patternHazard } from "./pattern-check.ts";

const GPT2 = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
// The original Llama 3 / Qwen2 patterns use (?i:...), which older JS engines lack; spelled out here as llama.cpp does.
const CONTRACTIONS = String.raw`(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])`;
const LLAMA3 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN2 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const QWEN35 = String.raw`${CONTRACTIONS}|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const GPT4O = String
  .raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+${CONTRACTIONS}?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*${CONTRACTIONS}?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const TEKKEN = String
  .raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;

/** A pre-tokenizer by name: the pattern chain and whether whole words found in the vocabulary skip merging. */
export interface PreTokenizerSpec {
  patterns: string[];
  /** Llama 3's `ignore_merges`: a pre-token that is itself a token is taken whole. */
  ignoreMerges: boolean;
  /** Default for add_bos_token when the file does not say (llama.cpp sets it for these families). */
  addBosDefault: boolean;
}

const spec = (patterns: string[], ignoreMerges = false, addBosDefault = false): PreTokenizerSpec => ({
  patterns,
  ignoreMerges,
  addBosDefault,
});

const BY_KIND = {
  gpt2: spec([GPT2]),
  // llama.cpp's fallback for unnamed BPE vocabularies
  default: spec([String.raw`[\p{P}\$\+<=>\^~\|]+`, GPT2, String.raw`\p{N}+`, "[0-9][0-9][0-9]"]),
  llama3: spec([LLAMA3], true, true),
  qwen2: spec([QWEN2]),
  qwen35: spec([QWEN35]),
  starcoder: spec([String.raw`\p{N}`, GPT2]),
  falcon: spec([String.raw`[\p{P}\$\+<=>\^~\|\x60]+`, GPT2, "[0-9][0-9][0-9]"]),
  gpt4o: spec([GPT4O]),
  tekken: spec([TEKKEN], true, true),
  bloom: spec([String.raw` ?[^(\s|.,!?…。，、।۔،)]+`]),
};

/** tokenizer.ggml.pre values (as llama.cpp's converter writes them) -> pattern family. */
const GGUF_PRE_NAMES: Record<string, keyof typeof BY_KIND> = {
  "default": "default",
  "gpt-2": "gpt2",
  "gpt2": "gpt2",
  "phi-2": "gpt2",
  "mpt": "gpt2",
  "olmo": "gpt2",
  "jais": "gpt2",
  "trillion": "gpt2",
  "jina-es": "gpt2",
  "jina-de": "gpt2",
  "jina-v1-en": "gpt2",
  "jina-v2-es": "gpt2",
  "jina-v2-de": "gpt2",
  "gigachat": "gpt2",
  "mellum": "gpt2",
  "llama3": "llama3",
  "llama-v3": "llama3",
  "llama-bpe": "llama3",
  "falcon3": "llama3",
  "falcon-h1": "llama3",
  "pixtral": "llama3",
  "dbrx": "llama3",
  "smaug-bpe": "llama3",
  "chatglm-bpe": "llama3",
  "lfm2": "llama3",
  "qwen2": "qwen2",
  "deepseek-r1-qwen": "qwen2",
  "stablelm2": "qwen2",
  "megrez": "qwen2",
  "hunyuan": "qwen2",
  "qwen35": "qwen35",
  "starcoder": "starcoder",
  "refact": "starcoder",
  "command-r": "starcoder",
  "smollm": "starcoder",
  "codeshell": "starcoder",
  "exaone": "starcoder",
  "minerva-7b": "starcoder",
  "falcon": "falcon",
  "gpt-4o": "gpt4o",
  "tekken": "tekken",
  "bloom": "bloom",
  "poro-chat": "bloom",
  "gpt3-finnish": "bloom",
};

/** The pre-tokenizer a GGUF's tokenizer.ggml.pre names (absent -> llama.cpp's "default"). */
export function preTokenizerForGGUF(pre: string | undefined): PreTokenizerSpec {
  // own keys only: the file's string may be "constructor" or "__proto__"
  const kind = Object.hasOwn(GGUF_PRE_NAMES, pre ?? "default") ? GGUF_PRE_NAMES[pre ?? "default"] : undefined;
  if (kind === undefined) throw new UnsupportedError(`tokenizer.ggml.pre "${pre}" is not a pre-tokenizer kvasm knows`);
  const s = BY_KIND[kind];
  // llama.cpp's "llama3" family also sets ignore_merges; "chatglm-bpe" and friends only share the regex.
  return kind === "llama3" && !["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "lfm2", "falcon-h1"].includes(pre ?? "")
    ? { ...s, ignoreMerges: false, addBosDefault: false }
    : s;
}

export const GPT2_PATTERN = GPT2;

/** The case-insensitive contractions group as Hugging Face tokenizer.json files spell it (Llama 3, Qwen2, GPT-4o). */
const HF_CONTRACTIONS = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";

/**
 * Every pattern of the families above, as written here and as tokenizer.json files spell them, plus the Digits
 * pre-tokenizer's two: these are trusted as they are (pattern-check.ts refuses some of them for their shape alone,
 * GPT-4o's `[...]*[...]+` pairs, though each alternative of theirs matches in linear time).
 */
export const KNOWN_PATTERNS: ReadonlySet<string> = new Set(
  [...Object.values(BY_KIND).flatMap((s) => s.patterns), String.raw`\p{N}+`].flatMap((
    p,
  ) => [p, p.replaceAll(CONTRACTIONS, HF_CONTRACTIONS)]),
);

/** Longest pattern quoted in an error message. */
const QUOTED_PATTERN_CHARS = 200;

/**
 * Compiles a pattern from a tokenizer file for JS. Rewrites the constructs JS
 * lacks: `(?i:'s|'t|...)` case-insensitive groups, possessive quantifiers
 * (`?+`, `++`, `*+`: taken as greedy, as llama.cpp does). A pattern that is not
 * one of KNOWN_PATTERNS must pass pattern-check.ts first (JS regexes backtrack:
 * a hostile pattern could take exponential time), else UnsupportedError.
 */
export function compilePattern(source: string, where: string): RegExp {
  const hazard = KNOWN_PATTERNS.has(source) ? undefined : patternHazard(source);
  if (hazard !== undefined) {
    const quoted = JSON.stringify(source.length > QUOTED_PATTERN_CHARS ? source.slice(0, QUOTED_PATTERN_CHARS) + "..." : source);
    throw new UnsupportedError(`${where}: pre-tokenizer pattern ${quoted} is refused: it ${hazard}`);
  }
  let src = source.replace(/\(\?i:([^()]*)\)/g, (_, body: string) => "(?:" + caseFold(body) + ")");
  src = src.replace(/([^\\])([?+*])\+/g, "$1$2");
  try {
    return new RegExp(src, "gu");
  } catch (e) {
    throw new UnsupportedError(`${where}: pre-tokenizer pattern ${JSON.stringify(source)} is not supported (${(e as Error).message})`);
  }
}

/** Spells out case-insensitivity of the letters in a pattern fragment: `s` -> `[sS]` (`sS` inside a class). */
function caseFold(body: string): string {
  let out = "", inClass = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === "\\") {
      out += c + (body[++i] ?? "");
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    const lo = c.toLowerCase(), up = c.toUpperCase();
    out += lo === up ? c : inClass ? lo + up : `[${lo}${up}]`;
  }
  return out;
}

/**
 * Runs a pattern chain over text. Returns span boundaries as [start0, end0,
 * start1, end1, ...] in UTF-16 units, covering the whole text in order.
 */
export function splitByPatterns(text: string, patterns: RegExp[]): number[] {
  let spans: number[] = text.length > 0 ? [0, text.length] : [];
  for (const re of patterns) {
    const next: number[] = [];
    for (let i = 0; i < spans.length; i += 2) {
      const start = spans[i], end = spans[i + 1];
      // Each span is matched on its own: lookaheads see the span's end, as in llama.cpp.
      const part = start === 0 && end === text.length ? text : text.slice(start, end);
      let from = 0;
      re.lastIndex = 0;
      for (let m = re.exec(part); m !== null; m = re.exec(part)) {
        const len = m[0].length;
        if (len === 0) {
          re.lastIndex++;
          continue;
        }
        if (m.index > from) next.push(start + from, start + m.index);
        next.push(start + m.index, start + m.index + len);
        from = m.index + len;
      }
      if (from < part.length) next.push(start + from, end);
    }
    spans = next;
  }
  return spans;
}
