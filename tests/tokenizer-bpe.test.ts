/**
 * Byte-level BPE (GPT-2) against llama.cpp's test vectors, byte-exact round
 * trips of arbitrary bytes, and Hugging Face tokenizer.json loading: the
 * GGUF vocabularies re-expressed the way Hugging Face writes them must
 * tokenize exactly as llama.cpp does.
 */
import { FileSource } from "../src/io/source.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import type { BpeTokenizer } from "../src/tokenizer/bpe.ts";
import { tokenizerFromGGUF } from "../src/tokenizer/gguf-vocab.ts";
import { tokenizerFromHFJson } from "../src/tokenizer/hf-json.ts";
import { TextStream } from "../src/tokenizer/tokenizer.ts";
import { UnsupportedError } from "../src/errors.ts";
import { assert, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";
import { checkVectors } from "./vocab-vectors.ts";

const GPT2_GGUF = sharedPath("models/tokenizers/ggml-vocab-gpt-2.gguf");
const LLAMA_GGUF = sharedPath("models/tokenizers/ggml-vocab-llama-spm.gguf");

async function ggufMetadata(path: string): Promise<Map<string, unknown>> {
  const src = await FileSource.open(path);
  try {
    return (await readGGUF(src)).metadata as Map<string, unknown>;
  } finally {
    await src.close();
  }
}

testShared("GPT-2 byte-level BPE (GGUF) matches llama.cpp's test vectors and round-trips", [GPT2_GGUF], async () => {
  const tok = tokenizerFromGGUF(await ggufMetadata(GPT2_GGUF), GPT2_GGUF);
  assertEquals([tok.vocabSize, tok.bos, tok.eos, tok.addBos, tok.addSpacePrefix], [50257, 50256, 50256, false, false]);
  checkVectors(tok, GPT2_GGUF);
  assert(tok.isEndOfGeneration(50256), "<|endoftext|> ends generation");
  assertEquals(tok.piece(18435), "ĠHello");
});

testShared("GPT-2: any byte sequence, valid UTF-8 or not, survives encode -> tokenBytes", [GPT2_GGUF], async () => {
  const tok = tokenizerFromGGUF(await ggufMetadata(GPT2_GGUF), GPT2_GGUF) as BpeTokenizer;
  const concat = (ids: number[]) => Uint8Array.from(ids.flatMap((id) => [...tok.tokenBytes(id)]));
  const text = "emoji 🦙🚀👨‍👩‍👧 CJK 我想在apple工作 ½ months\t\n  \r\n";
  assertEquals(tok.decode(tok.encode(text)), text);
  const samples: Uint8Array[] = [
    new TextEncoder().encode(text),
    Uint8Array.of(0xff, 0xfe, 0x41, 0xc3, 0x28, 0xe2, 0x82, 0x20, 0xf0, 0x9f, 0xa6), // invalid and cut-off sequences
    Uint8Array.of(0xed, 0xa0, 0x80, 0x20, 0xc0, 0xaf, 0x80), // encoded surrogate, overlong, lone continuation
    Uint8Array.from({ length: 256 }, (_, i) => i),
  ];
  let seed = 1;
  samples.push(Uint8Array.from({ length: 4000 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24));
  for (const bytes of samples) {
    const ids = tok.encodeBytes(bytes, { addBos: false });
    assertEquals([...concat(ids)], [...bytes], "bytes back");
  }
  // Valid UTF-8 gives the same ids through either door.
  assertEquals(tok.encodeBytes(new TextEncoder().encode(text)), tok.encode(text));
  // A streamed multi-byte character appears only when complete.
  const ids = tok.encode("🦙");
  assert(ids.length > 1, "the llama spans several byte tokens");
  const s = new TextStream(tok);
  const outs = ids.map((id) => s.push(id));
  assertEquals(outs.slice(0, -1).join(""), "");
  assertEquals(outs.at(-1), "🦙");
});

testShared("GPT-2: <|endoftext|> in text is a token only with parseSpecial", [GPT2_GGUF], async () => {
  const tok = tokenizerFromGGUF(await ggufMetadata(GPT2_GGUF), GPT2_GGUF);
  const plain = tok.encode("Hi<|endoftext|>there");
  assert(!plain.includes(50256), "not special by default");
  assertEquals(tok.encode("Hi<|endoftext|>there", { parseSpecial: true }), [...tok.encode("Hi"), 50256, ...tok.encode("there")]);
  assertEquals(tok.decode([...tok.encode("Hi"), 50256]), "Hi", "control tokens render as nothing");
});

testShared("Hugging Face tokenizer.json, byte-level (GPT-2 as HF writes it) matches llama.cpp", [GPT2_GGUF], async () => {
  const md = await ggufMetadata(GPT2_GGUF);
  const tokens = md.get("tokenizer.ggml.tokens") as string[];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    if (i !== 50256) vocab[t] = i;
  });
  const json = {
    version: "1.0",
    added_tokens: [{
      id: 50256,
      content: "<|endoftext|>",
      special: true,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
    }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      vocab,
      merges: md.get("tokenizer.ggml.merges"),
    },
  };
  const tok = tokenizerFromHFJson(json, { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" });
  assertEquals([tok.vocabSize, tok.bos, tok.eos, tok.addBos], [50257, 50256, 50256, false]);
  checkVectors(tok, GPT2_GGUF);
  // Newer exports write merges as pairs; and a Split(Regex) + ByteLevel(use_regex: false) chain is the same GPT-2 split.
  const pairs = (md.get("tokenizer.ggml.merges") as string[]).map((m) => m.split(" "));
  const split = tokenizerFromHFJson({
    ...json,
    model: { ...json.model, merges: pairs },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: { Regex: String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` },
          behavior: "Isolated",
          invert: false,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
  });
  checkVectors(split, GPT2_GGUF);
});

testShared("Hugging Face tokenizer.json, SentencePiece-style BPE (Llama 2 as HF writes it) matches llama.cpp", [LLAMA_GGUF], async () => {
  const md = await ggufMetadata(LLAMA_GGUF);
  const tokens = md.get("tokenizer.ggml.tokens") as string[];
  const scores = md.get("tokenizer.ggml.scores") as ArrayLike<number>;
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  // transformers' SentencePieceExtractor: every split of a piece into two pieces is a merge, ranked by the piece's score.
  const merges: Array<[string, string, number]> = [];
  tokens.forEach((piece, id) => {
    const chars = Array.from(piece);
    const local: Array<[string, string, number]> = [];
    for (let k = 1; k < chars.length; k++) {
      const l = chars.slice(0, k).join(""), r = chars.slice(k).join("");
      if (l in vocab && r in vocab) local.push([l, r, scores[id]]);
    }
    local.sort((a, b) => vocab[a[0]] - vocab[b[0]] || vocab[a[1]] - vocab[b[1]]);
    merges.push(...local);
  });
  merges.sort((a, b) => b[2] - a[2]); // stable
  const json = {
    added_tokens: [
      { id: 0, content: "<unk>", special: true },
      { id: 1, content: "<s>", special: true },
      { id: 2, content: "</s>", special: true },
    ],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }],
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    },
    model: { type: "BPE", unk_token: "<unk>", fuse_unk: true, byte_fallback: true, vocab, merges: merges.map(([l, r]) => `${l} ${r}`) },
  };
  const tok = tokenizerFromHFJson(json);
  assertEquals([tok.bos, tok.eos, tok.addBos, tok.addSpacePrefix], [1, 2, true, true]);
  checkVectors(tok, LLAMA_GGUF);
  assertEquals(tok.encode("Hello world"), [1, 15043, 3186]);
  // The Metaspace spelling of the same tokenizer (newer exports) behaves the same.
  const meta = tokenizerFromHFJson({
    ...json,
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
  });
  checkVectors(meta, LLAMA_GGUF);
});

test("tokenizer.json: unsupported models and pre-tokenizers are UnsupportedError", async () => {
  await assertRejects(() => tokenizerFromHFJson({ model: { type: "WordPiece", vocab: {} } }), UnsupportedError, /WordPiece/);
  await assertRejects(
    () =>
      tokenizerFromHFJson({
        model: { type: "BPE", vocab: { a: 0 }, merges: [] },
        pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Punctuation" }, { type: "ByteLevel" }] },
      }),
    UnsupportedError,
    /Punctuation/,
  );
});

test("tokenizer.json: Llama 3 / Qwen2 patterns with (?i:...) and possessive quantifiers compile and split", () => {
  // A toy byte-level vocabulary: every byte alone, merges none. The split shows in the ids.
  const bytesToChar = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae) ? String.fromCharCode(b) : undefined;
  const vocab: Record<string, number> = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) vocab[bytesToChar(b) ?? String.fromCharCode(256 + extra++)] = b;
  vocab["ĠYOU"] = 256;
  vocab["'RE"] = 257;
  const tok = tokenizerFromHFJson({
    model: { type: "BPE", vocab, merges: [], ignore_merges: true },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: {
            Regex: String
              .raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
          },
          behavior: "Isolated",
          invert: false,
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
  });
  // ignore_merges: a word that is a piece comes out whole with no merges at all
  assertEquals(tok.encode("'RE YOU"), [257, 256]);
  assertEquals(tok.decode(tok.encode("12345 ab")), "12345 ab");
  assertEquals(tok.encode("12345").length, 5, "digits are bytes here");
});
