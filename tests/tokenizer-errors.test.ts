/** Bad tokenizer files raise typed errors that name the file or key, never crash. */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FormatError, ParamError, UnsupportedError } from "../src/errors.ts";
import { FileSource } from "../src/io/source.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { tokenizerFromGGUF } from "../src/tokenizer/gguf-vocab.ts";
import { readLlama2cTokenizer } from "../src/tokenizer/llama2c-vocab.ts";
import { readSentencePieceModel } from "../src/tokenizer/sentencepiece-model.ts";
import { SpmTokenizer } from "../src/tokenizer/spm.ts";
import { BpeTokenizer } from "../src/tokenizer/bpe.ts";
import { loadModel } from "../src/model/load.ts";
import { tokenizerFromBytes } from "../src/model/tokenizer-for.ts";
import { compilePattern, KNOWN_PATTERNS, preTokenizerForGGUF } from "../src/tokenizer/pretokenize.ts";
import { patternHazard } from "../src/tokenizer/pattern-check.ts";
import { gpt2TokenizerJson } from "../scripts/fuzz/tokenizer-json.ts";
import { assert, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";

const STORIES_BIN = sharedPath("models/stories260K/tok512.bin");
const STORIES_MODEL = sharedPath("models/stories260K/tok512.model");
const STORIES_GGUF = sharedPath("models/stories260K/stories260K.gguf");

testShared("truncated tokenizer.bin -> FormatError naming the file", [STORIES_BIN], async () => {
  const bytes = fs.readFileSync(STORIES_BIN);
  for (const cut of [0, 3, 4, 10, 100, bytes.length - 1]) {
    await assertRejects(() => readLlama2cTokenizer(bytes.subarray(0, cut), "tok512.bin", 512), FormatError, /^tok512\.bin: /);
  }
  // without a vocab size the reader takes tokens until the end, so a cut inside a token is still caught
  await assertRejects(() => readLlama2cTokenizer(bytes.subarray(0, bytes.length - 1), "tok512.bin"), FormatError, /truncated at token 511/);
  // more tokens asked for than the file holds
  await assertRejects(() => readLlama2cTokenizer(bytes, "tok512.bin", 513), FormatError, /truncated at token 512/);
  assertEquals(readLlama2cTokenizer(bytes, "tok512.bin").vocabSize, 512);
});

const LLAMA2_BIN = sharedPath("models/tokenizers/llama2-tokenizer.bin");
const LLAMA2_MODEL = sharedPath("models/tokenizers/llama2-tokenizer.model");
const STORIES_CKPT = sharedPath("models/stories260K/stories260K.bin");

testShared(
  "another model's larger tokenizer is refused at load, not used for its first pieces",
  [LLAMA2_BIN, LLAMA2_MODEL, STORIES_CKPT],
  async () => {
    // Llama 2's 32000 tokens beside stories260K (512): llama2.c would read the first 512 and write gibberish
    await assertRejects(
      () => readLlama2cTokenizer(fs.readFileSync(LLAMA2_BIN), "llama2-tokenizer.bin", 512),
      FormatError,
      /^llama2-tokenizer\.bin: holds more tokens than the model's vocabulary of 512 \(\d+ bytes follow token 511\): a tokenizer for another model\?/,
    );
    for (const tokenizer of [LLAMA2_BIN, LLAMA2_MODEL]) {
      const re = tokenizer === LLAMA2_BIN
        ? /holds more tokens than the model's vocabulary of 512/
        : /holds 32000 tokens, more than the model's vocabulary of 512/;
      await assertRejects(() => loadModel(STORIES_CKPT, { tokenizer, threads: 1 }), FormatError, re);
    }
    // the model's own, exactly its vocabulary, loads
    const m = await loadModel(STORIES_CKPT, { tokenizer: STORIES_BIN, threads: 1 });
    assertEquals(m.tokenizer.vocabSize, 512);
    await m.close();
  },
);

testShared("truncated or garbled tokenizer.model -> FormatError naming the file", [STORIES_MODEL], async () => {
  const bytes = fs.readFileSync(STORIES_MODEL);
  for (const cut of [0, 1, 2, 50, 3000, bytes.length - 1]) {
    await assertRejects(() => readSentencePieceModel(bytes.subarray(0, cut), "tok512.model"), FormatError, /^tok512\.model: /);
  }
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 16;
  for (let trial = 0; trial < 200; trial++) {
    const garbled = Uint8Array.from(bytes);
    for (let k = 0; k < 8; k++) garbled[rand() % garbled.length] = rand() & 0xff;
    try {
      const tok = readSentencePieceModel(garbled, "tok512.model");
      tok.encode("Once upon a time"); // survived: must still work
    } catch (e) {
      assert(
        e instanceof FormatError || e instanceof UnsupportedError,
        `garbled model threw ${(e as Error)?.constructor?.name}: ${(e as Error).message}`,
      );
    }
  }
  await assertRejects(
    () => readSentencePieceModel(new TextEncoder().encode("not a protobuf at all"), "x.model"),
    FormatError,
    /^x\.model: /,
  );
});

testShared("GGUF vocab without tokenizer.ggml.tokens -> FormatError naming the key", [STORIES_GGUF], async () => {
  const src = await FileSource.open(STORIES_GGUF);
  const md = (await readGGUF(src)).metadata as Map<string, unknown>;
  await src.close();
  const without = (key: string) => new Map([...md].filter(([k]) => k !== key));
  await assertRejects(
    () => tokenizerFromGGUF(without("tokenizer.ggml.tokens"), "stories260K.gguf"),
    FormatError,
    /stories260K\.gguf: tokenizer\.ggml\.tokens is missing/,
  );
  await assertRejects(
    () => tokenizerFromGGUF(without("tokenizer.ggml.scores"), "stories260K.gguf"),
    FormatError,
    /tokenizer\.ggml\.scores/,
  );
  await assertRejects(() => tokenizerFromGGUF(without("tokenizer.ggml.model"), "stories260K.gguf"), FormatError, /tokenizer\.ggml\.model/);
  await assertRejects(() => tokenizerFromGGUF(new Map([...md, ["tokenizer.ggml.model", "t5"]]), "s.gguf"), UnsupportedError, /"t5"/);
  await assertRejects(
    () => tokenizerFromGGUF(new Map([...md, ["tokenizer.ggml.token_type", [1, 2]]]), "s.gguf"),
    FormatError,
    /2 token types for 512 tokens/,
  );
  const tok = tokenizerFromGGUF(md, "stories260K.gguf");
  await assertRejects(() => tok.decode([1, 512]), ParamError, /512/);
  await assertRejects(() => tok.piece(-1), ParamError);
});

test("GGUF byte-level vocab: unknown pre-tokenizer and missing merges are reported", async () => {
  const md = new Map<string, unknown>([
    ["tokenizer.ggml.model", "gpt2"],
    ["tokenizer.ggml.tokens", ["a", "b", "ab"]],
    ["tokenizer.ggml.merges", ["a b"]],
    ["tokenizer.ggml.pre", "no-such-pre"],
  ]);
  await assertRejects(() => tokenizerFromGGUF(md, "v.gguf"), UnsupportedError, /no-such-pre/);
  md.delete("tokenizer.ggml.pre");
  assertEquals(tokenizerFromGGUF(md, "v.gguf").encode("abab"), [2, 2]);
  md.delete("tokenizer.ggml.merges");
  await assertRejects(() => tokenizerFromGGUF(md, "v.gguf"), FormatError, /tokenizer\.ggml\.merges is missing/);
});

test("byte fallback (SentencePiece and SentencePiece-style BPE): <0xNN> tokens, else the unknown token, else a FormatError", async () => {
  // a tiny vocabulary: two pieces, the byte tokens of "é" (0xC3 0xA9) only, and an unknown token when `unk` is set
  const pieces = ["<unk>", "\u2581", "a", "<0xC3>", "<0xA9>"];
  const make = (unk: number | undefined) => [
    new SpmTokenizer({ name: "tiny-spm", pieces, scores: [0, -1, -2, 0, 0], unk, addBos: false, addEos: false }, { addSpacePrefix: false }),
    new BpeTokenizer({ name: "tiny-bpe", pieces, unk, addBos: false, addEos: false }, { merges: [], byteLevel: false }),
  ];
  for (const tok of make(0)) {
    assertEquals(tok.encode("aé"), [2, 3, 4]); // é: its two byte tokens
    assertEquals(tok.encode("a→"), [2, 0, 0, 0]); // →: three bytes without tokens, each the unknown token
  }
  for (const tok of make(undefined)) {
    assertEquals(tok.encode("aé"), [2, 3, 4]);
    await assertRejects(() => tok.encode("a→"), FormatError, /^tiny-(spm|bpe): no byte token <0xE2> and no unknown token$/);
  }
});

// encode()'s options come from callers: a string "false" would be truthy and add BOS, a number text would fail deep in the splitter.
testShared("encode: a non-boolean addBos, addEos or parseSpecial, or a non-string text, is a ParamError naming it", [STORIES_BIN], () => {
  const tok = readLlama2cTokenizer(fs.readFileSync(STORIES_BIN), "tok512.bin", 512);
  const refused = (f: () => unknown, name: string) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    assert(err instanceof ParamError && err.message.includes(name), `${name}: ${String(err)}`);
  };
  refused(() => tok.encode("hi", { addBos: "false" as unknown as boolean }), "addBos");
  refused(() => tok.encode("hi", { addEos: 1 as unknown as boolean }), "addEos");
  refused(() => tok.encode("hi", { parseSpecial: null as unknown as boolean }), "parseSpecial");
  refused(() => tok.encode(42 as unknown as string), "text");
  refused(() => tok.encodeSteps!(undefined as unknown as string).next(), "text");
  assertEquals(tok.encode("hi", { addBos: false }), tok.encode("hi", { addBos: false, addEos: false, parseSpecial: false }));
  assertEquals(tok.encode("hi", { addBos: true })[0], tok.bos);
});

test("a tokenizer URL is refused by name before the model is opened or fetched", async () => {
  for (const url of ["https://example.com/tok512.bin", "http://127.0.0.1:1/tokenizer.json", "s3://bucket/tok512.bin"]) {
    // the model path does not exist: the tokenizer's error must come first
    await assertRejects(
      () => loadModel("/nonexistent/kvasm/model.bin", { tokenizer: url }),
      ParamError,
      /^tokenizer: takes a file path, a file: URL or the file's bytes, not a URL \(/,
    );
  }
});

testShared("a tokenizer given as a file: URL is read as its path, as the model's is", [STORIES_CKPT, STORIES_BIN], async () => {
  const { pathToFileURL } = await import("node:url");
  const byUrl = await loadModel(STORIES_CKPT, { tokenizer: pathToFileURL(STORIES_BIN).href, threads: 1 });
  const byPath = await loadModel(STORIES_CKPT, { tokenizer: STORIES_BIN, threads: 1 });
  try {
    assertEquals(byUrl.tokenizer.encode("Once upon a time"), byPath.tokenizer.encode("Once upon a time"));
    assert(byUrl.tokenizer.encode("Once upon a time").length > 3, "the text is tokenized");
  } finally {
    await byUrl.close();
    await byPath.close();
  }
});

const STORIES_HF = sharedPath("models/stories260K/hf");

testShared("a Hugging Face directory without its tokenizer says where the tokenizer belongs", [STORIES_HF], async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-hf-notok-"));
  try {
    for (const f of ["config.json", "model.safetensors"]) fs.copyFileSync(path.join(STORIES_HF, f), path.join(dir, f));
    const model = await loadModel(dir, { threads: 1 });
    try {
      await assertRejects(
        () => model.generate("Once").next(),
        ParamError,
        /model\.safetensors carries no tokenizer; pass one \(.*; a Hugging Face directory's own tokenizer\.json or tokenizer\.model beside config\.json\), or token ids/,
      );
    } finally {
      await model.close();
    }
    // a lone checkpoint gets no such hint
    const bin = await loadModel(STORIES_CKPT, { threads: 1 });
    try {
      const e = await assertRejects(() => bin.generate("Once").next(), ParamError, /carries no tokenizer/);
      assert(!/Hugging Face/.test((e as Error).message), (e as Error).message);
    } finally {
      await bin.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const GPT2_GGUF = sharedPath("models/tokenizers/ggml-vocab-gpt-2.gguf");

let gpt2Json: string | undefined;

/** The GPT-2 tokenizer.json cut to 512 tokens, with `steps` put before its ByteLevel pre-tokenizer. */
async function gpt2JsonWith(steps: unknown[]): Promise<Uint8Array> {
  gpt2Json ??= new TextDecoder().decode(await gpt2TokenizerJson(fs.readFileSync(GPT2_GGUF), 512));
  const json = JSON.parse(gpt2Json);
  json.pre_tokenizer = { type: "Sequence", pretokenizers: [...steps, json.pre_tokenizer] };
  return new TextEncoder().encode(JSON.stringify(json));
}

const split = (regex: string) => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });

testShared("tokenizer.json: a Split pattern that could backtrack catastrophically is refused at load", [GPT2_GGUF], async () => {
  const hostile: Array<[string, RegExp]> = [
    // the reviewer's: "a" * 26 + "!" took 6.4 s to encode, doubling with each letter
    [String.raw`(\p{L}|\p{L})+$`, /repeats a group that holds an alternation or a quantifier/],
    [String.raw`(a+)+b`, /repeats a group/],
    [String.raw`(?:\s?\p{L}*){2,}`, /repeats a group/],
    [String.raw`(\p{L})\1+`, /uses a backreference/],
    [String.raw`(?<w>\p{L})\k<w>`, /uses a backreference/],
    [String.raw`\p{L}(?=\p{L}*!)`, /lookaround holding an unbounded quantifier/],
    [String.raw`(?<!\s+)x`, /lookaround holding an unbounded quantifier/],
    // polynomial: the letters can be shared out between the three repeats in ~n^2 ways per start
    [String.raw`\p{L}*\p{L}*\p{L}*!`, /two quantified items in one sequence that can match the same characters/],
    ["a?a?a?a?a?aaaaa", /two quantified items/],
    // a group ending the pattern gets no pass for being last: it can fail after the two have traded letters (cubic)
    [String.raw`\p{L}*(?:\p{L}+x)`, /two quantified items/],
    [String.raw`(?i:a*A+!)`, /two quantified items/],
  ];
  for (const [regex, why] of hostile) {
    const json = await gpt2JsonWith([split(regex)]);
    await assertRejects(() => tokenizerFromBytes(json, "dir/tokenizer.json"), UnsupportedError, why);
    await assertRejects(
      () => tokenizerFromBytes(json, "dir/tokenizer.json"),
      UnsupportedError,
      /^dir\/tokenizer\.json: pre-tokenizer pattern ".*" is refused: it /,
    );
  }
  // a custom pattern of a safe shape loads and splits as written (DeepSeek V3's, whose \s*[\r\n]+ ends its alternative)
  const deepseek = String
    .raw`[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_` + "`" + String
    .raw`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  for (const regex of [String.raw`\p{N}{1,3}`, deepseek, String.raw`[\p{L}]+|\p{N}+x`, "-"]) {
    const tok = await tokenizerFromBytes(await gpt2JsonWith([split(regex)]), "tokenizer.json");
    assertEquals(tok.decode(tok.encode("Hello 12345 world-wide!\n")), "Hello 12345 world-wide!\n", regex);
  }
  // a Split by a literal String (escaped into a regex) loads too, "-" included
  const byString = await gpt2JsonWith([{ type: "Split", pattern: { String: "a-b.c" }, behavior: "Isolated" }]);
  assertEquals((await tokenizerFromBytes(byString, "tokenizer.json")).vocabSize, 512);
});

test("pre-tokenizer patterns: every known one is accepted; the check refuses none of them for the exponential shapes", () => {
  // the Llama 3 pattern as tokenizer.json spells it (with (?i:...)) is among the known
  assert(
    KNOWN_PATTERNS.has(
      String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    ),
  );
  for (const p of KNOWN_PATTERNS) {
    const hazard = patternHazard(p);
    // GPT-4o's and Tekken's [...]*[...]+ pairs overlap in \p{M}: refused by the polynomial rule alone, trusted by name
    assert(hazard === undefined || /two quantified items in one sequence/.test(hazard), `${p}: ${hazard}`);
    assert(compilePattern(p, "known") instanceof RegExp);
  }
  for (const pre of ["gpt-2", "llama3", "qwen2", "deepseek-r1-qwen", "gpt-4o", "tekken", "bloom", undefined]) {
    for (const p of preTokenizerForGGUF(pre).patterns) assert(KNOWN_PATTERNS.has(p), `${pre}: ${p}`);
  }
});

testShared("GGUF: tokenizer.ggml.pre naming an Object.prototype key is an UnsupportedError, not a TypeError", [GPT2_GGUF], async () => {
  const file = await readGGUF(await FileSource.open(GPT2_GGUF));
  try {
    for (const pre of ["constructor", "__proto__", "valueOf", "toString", "hasOwnProperty"]) {
      assertThrowsTyped(() => preTokenizerForGGUF(pre), UnsupportedError, `"${pre}" is not a pre-tokenizer kvasm knows`);
      const metadata = new Map(file.metadata).set("tokenizer.ggml.pre", pre);
      assertThrowsTyped(() => tokenizerFromGGUF(metadata, "v.gguf"), UnsupportedError, `tokenizer.ggml.pre "${pre}"`);
    }
  } finally {
    await file.source.close();
  }
});

function assertThrowsTyped(fn: () => unknown, type: new (...args: never[]) => Error, includes: string): void {
  try {
    fn();
  } catch (e) {
    assert(e instanceof type, `expected ${type.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert((e as Error).message.includes(includes), (e as Error).message);
    return;
  }
  throw new Error(`expected ${type.name}, nothing was thrown`);
}
