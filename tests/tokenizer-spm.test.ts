/**
 * SentencePiece BPE against llama.cpp's own test vectors (test-tokenizer-0:
 * no BOS, special tokens not parsed) and the stories260K vocabulary in its
 * three spellings (tokenizer.bin, GGUF, tokenizer.model).
 */
import * as fs from "node:fs";
import { FileSource } from "../src/io/source.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { tokenizerFromGGUF } from "../src/tokenizer/gguf-vocab.ts";
import { readLlama2cTokenizer } from "../src/tokenizer/llama2c-vocab.ts";
import { readSentencePieceModel } from "../src/tokenizer/sentencepiece-model.ts";
import { TextStream, type Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { assert, assertEquals, readJSON, sharedPath, testShared } from "./harness.ts";
import { checkVectors } from "./vocab-vectors.ts";

const LLAMA_GGUF = sharedPath("models/tokenizers/ggml-vocab-llama-spm.gguf");
const LLAMA_BIN = sharedPath("models/tokenizers/llama2-tokenizer.bin");
const LLAMA_MODEL = sharedPath("models/tokenizers/llama2-tokenizer.model");
const STORIES_GGUF = sharedPath("models/stories260K/stories260K.gguf");
const STORIES_BIN = sharedPath("models/stories260K/tok512.bin");
const STORIES_MODEL = sharedPath("models/stories260K/tok512.model");
const GOLDEN = sharedPath("golden/stories260K.json");

async function ggufTokenizer(path: string): Promise<Tokenizer> {
  const src = await FileSource.open(path);
  try {
    const file = await readGGUF(src);
    return tokenizerFromGGUF(file.metadata as Map<string, unknown>, path);
  } finally {
    await src.close();
  }
}

testShared("llama SPM vocab (GGUF) matches llama.cpp's test vectors and round-trips", [LLAMA_GGUF], async () => {
  const tok = await ggufTokenizer(LLAMA_GGUF);
  assertEquals([tok.vocabSize, tok.bos, tok.eos, tok.addBos, tok.addSpacePrefix], [32000, 1, 2, true, true]);
  checkVectors(tok, LLAMA_GGUF);
});

testShared("Llama 2 tokenizer.bin and tokenizer.model agree with the GGUF vocab", [LLAMA_GGUF, LLAMA_BIN, LLAMA_MODEL], () => {
  const bin = readLlama2cTokenizer(fs.readFileSync(LLAMA_BIN), LLAMA_BIN, 32000);
  const model = readSentencePieceModel(fs.readFileSync(LLAMA_MODEL), LLAMA_MODEL);
  // llama2-tokenizer.model has remove_extra_whitespaces off, so it must match llama.cpp exactly too.
  checkVectors(bin, LLAMA_GGUF);
  checkVectors(model, LLAMA_GGUF);
  assertEquals(bin.piece(15043), "▁Hello");
  assertEquals(model.piece(15043), "▁Hello");
});

testShared("stories260K: 'Once upon a time' is [1, 403, 407, 261, 378] via tok512.bin, GGUF and tok512.model", [
  STORIES_BIN,
  STORIES_GGUF,
  STORIES_MODEL,
  GOLDEN,
], async () => {
  const golden = readJSON<Array<{ model: string; prompt: string; prompt_ids: number[] }>>(GOLDEN)
    .find((g) => g.model === "stories260K/stories260K.gguf")!;
  assertEquals(golden.prompt_ids, [1, 403, 407, 261, 378]);
  const toks: Array<[string, Tokenizer]> = [
    ["tok512.bin", readLlama2cTokenizer(fs.readFileSync(STORIES_BIN), STORIES_BIN, 512)],
    ["stories260K.gguf", await ggufTokenizer(STORIES_GGUF)],
    ["tok512.model", readSentencePieceModel(fs.readFileSync(STORIES_MODEL), STORIES_MODEL)],
  ];
  for (const [what, tok] of toks) {
    assertEquals(tok.vocabSize, 512, what);
    assertEquals(tok.encode(golden.prompt), golden.prompt_ids, what);
    assertEquals(tok.encode(golden.prompt, { addBos: false }), golden.prompt_ids.slice(1), what);
    assertEquals(tok.decode(golden.prompt_ids), golden.prompt, what);
    assert(tok.isEndOfGeneration(2) && !tok.isEndOfGeneration(1), `${what}: EOS ends generation, BOS does not`);
  }
});

testShared("stories260K: the golden greedy ids decode to llama.cpp's text", [STORIES_GGUF, GOLDEN], async () => {
  const tok = await ggufTokenizer(STORIES_GGUF);
  const golden = readJSON<Array<{ model: string; prompt_ids: number[]; greedy_ids: number[]; text: string }>>(GOLDEN)
    .find((g) => g.model === "stories260K/stories260K.gguf")!;
  const all = [...golden.prompt_ids, ...golden.greedy_ids];
  assertEquals(tok.decode(all), golden.text);
  // Streaming the continuation after the prompt gives the same text, piece by piece.
  const stream = new TextStream(tok);
  let text = tok.decode(golden.prompt_ids);
  for (const id of golden.greedy_ids) text += stream.push(id);
  assertEquals(text + stream.flush(), golden.text);
});

testShared(
  "tok512.model keeps SentencePiece's remove_extra_whitespaces; tok512.bin (llama2.c) does not",
  [STORIES_BIN, STORIES_MODEL],
  () => {
    const bin = readLlama2cTokenizer(fs.readFileSync(STORIES_BIN), STORIES_BIN, 512);
    const model = readSentencePieceModel(fs.readFileSync(STORIES_MODEL), STORIES_MODEL);
    assertEquals(model.encode("  Once  upon a time "), model.encode("Once upon a time"));
    assert(bin.encode("  Once  upon").length > bin.encode("Once upon").length, "llama2.c keeps every space");
  },
);

testShared("streaming: an emoji spelled as four byte tokens comes out only when complete", [LLAMA_GGUF], async () => {
  const tok = await ggufTokenizer(LLAMA_GGUF);
  const ids = tok.encode("🦙", { addBos: true });
  // BOS, "▁", then <0xF0> <0x9F> <0xA6> <0x99>: the llama is not in the vocabulary
  assertEquals(ids, [1, 29871, 243, 162, 169, 156]);
  const stream = new TextStream(tok);
  const outs = ids.map((id) => stream.push(id));
  assertEquals(outs, ["", "", "", "", "", "🦙"], "nothing until the fourth byte, then exactly the character");
  assertEquals(stream.flush(), "");
  // Without BOS and with skipLeadingSpace the dummy-prefix space is dropped as well.
  const s2 = new TextStream(tok, { skipLeadingSpace: true });
  assertEquals(ids.slice(1).map((id) => s2.push(id)).join(""), "🦙");
  // A cut-off character is flushed as U+FFFD rather than lost.
  const s3 = new TextStream(tok);
  assertEquals(s3.push(243) + s3.push(162), "");
  assertEquals(s3.flush(), "\uFFFD");
});

testShared("the piece after BOS loses its leading space; later pieces keep theirs", [STORIES_BIN], () => {
  const tok = readLlama2cTokenizer(fs.readFileSync(STORIES_BIN), STORIES_BIN, 512);
  const ids = tok.encode("Once upon", { addBos: false });
  assertEquals(tok.decode(ids), "Once upon");
  const s = new TextStream(tok);
  assertEquals(ids.map((id) => s.push(id)).join(""), " Once upon", "a continuation keeps its space");
  assertEquals(tok.piece(ids[0]), "▁Once");
  assertEquals(new TextDecoder().decode(tok.tokenBytes(ids[0])), " Once");
  assertEquals(tok.tokenBytes(1).length, 0, "BOS renders as nothing");
  assertEquals([...tok.tokenBytes(13)], [0x0a], "<0x0A> is a newline byte");
});

testShared("parseSpecial matches control tokens in text only when asked", [LLAMA_GGUF], async () => {
  const tok = await ggufTokenizer(LLAMA_GGUF);
  const plain = tok.encode("a</s>b", { addBos: false });
  assert(!plain.includes(2), "</s> in user text is not EOS by default");
  const special = tok.encode("a</s>b", { addBos: false, parseSpecial: true });
  // after a special token the dummy prefix comes back, as llama.cpp does
  assertEquals(special, [...tok.encode("a", { addBos: false }), 2, ...tok.encode("b", { addBos: false })]);
  assertEquals(tok.encode("", { addBos: true }), [1]);
  assertEquals(tok.encode(""), [1]);
  assertEquals(tok.encode("", { addBos: false }), []);
});
