/**
 * A real byte-level BPE tokenizer.json (the shape Hugging Face writes for GPT-2), cut from llama.cpp's
 * GPT-2 vocabulary file to its first `nTokens` ids: the 256 byte symbols and the first nTokens - 256
 * merges, whose results are exactly ids 256.. in GPT-2's vocabulary. 512 tokens give a tokenizer the
 * size of stories260K's vocabulary, so the pair loads and runs (its text is nonsense; fuzzing needs
 * a valid file to mutate, not good text).
 */
import { readGGUF } from "../../src/formats/gguf.ts";
import { BytesSource } from "../../src/io/source.ts";

export async function gpt2TokenizerJson(vocabGGUF: Uint8Array, nTokens: number): Promise<Uint8Array> {
  const file = await readGGUF(new BytesSource(vocabGGUF, "ggml-vocab-gpt-2.gguf"));
  const tokens = file.metadata.get("tokenizer.ggml.tokens") as string[];
  const merges = file.metadata.get("tokenizer.ggml.merges") as string[];
  const vocab: Record<string, number> = {};
  for (let i = 0; i < nTokens; i++) vocab[tokens[i]] = i;
  const json = {
    version: "1.0",
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel" },
    model: { type: "BPE", vocab, merges: merges.slice(0, nTokens - 256) },
  };
  return new TextEncoder().encode(JSON.stringify(json));
}
