/**
 * llama.cpp's tokenizer test vectors (test-tokenizer-0: no BOS, special tokens not parsed), shared by the
 * byte-level BPE and the SentencePiece tests: each vocabulary's `.inp`/`.out` pair beside its GGUF file.
 */
import * as fs from "node:fs";
import type { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { assert, assertEquals } from "./harness.ts";

/** llama.cpp's .inp/.out pairs: strings separated by "\n__ggml_vocab_test__\n", one line of ids per string. */
export function readVocabTests(vocabPath: string): Array<{ text: string; ids: number[] }> {
  const raw = fs.readFileSync(vocabPath + ".inp", "utf8");
  const texts = raw.split("\n__ggml_vocab_test__\n");
  if (texts.at(-1) === "") texts.pop();
  const lines = fs.readFileSync(vocabPath + ".out", "utf8").split("\n");
  if (lines.at(-1) === "") lines.pop();
  assertEquals(texts.length, lines.length, "test strings vs expected id lines");
  return texts.map((text, i) => ({ text, ids: lines[i].trim() === "" ? [] : lines[i].trim().split(" ").map(Number) }));
}

/**
 * `tok` encodes every string of the vectors at `vocabPath` to llama.cpp's ids and decodes them back to the string
 * (both tokenizers round-trip these: byte-level BPE any bytes, SentencePiece's normalization here only " " -> "▁").
 */
export function checkVectors(tok: Tokenizer, vocabPath: string): void {
  const tests = readVocabTests(vocabPath);
  assert(tests.length > 40, `only ${tests.length} test strings`);
  const failures: string[] = [];
  for (const { text, ids } of tests) {
    const got = tok.encode(text, { addBos: false });
    if (JSON.stringify(got) !== JSON.stringify(ids)) {
      failures.push(`${JSON.stringify(text)}: expected ${ids.join(" ")}, got ${got.join(" ")}`);
    }
    const back = tok.decode(got);
    if (back !== text) failures.push(`${JSON.stringify(text)} decoded to ${JSON.stringify(back)}`);
  }
  assertEquals(failures, [], "llama.cpp test-tokenizer-0 vectors");
}
