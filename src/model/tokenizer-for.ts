import type { ModelFile } from "../formats/types.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { readLlama2cTokenizer } from "../tokenizer/llama2c-vocab.ts";
import { tokenizerFromGGUF } from "../tokenizer/gguf-vocab.ts";
import { FormatError, ParamError } from "../errors.ts";

/**
 * The tokenizer for a model: an explicit file wins (llama2.c tokenizer.bin,
 * SentencePiece .model, Hugging Face tokenizer.json, told apart by content);
 * otherwise the vocabulary inside a GGUF file.
 */
export async function loadTokenizerFor(file: ModelFile, explicit?: string | Uint8Array): Promise<Tokenizer> {
  const arch = String(file.metadata.get("general.architecture") ?? "llama");
  const vocabSize = Number(file.metadata.get(`${arch}.vocab_size`) ?? 0) || undefined;
  if (explicit !== undefined) {
    const name = typeof explicit === "string" ? explicit : "<tokenizer bytes>";
    const bytes = typeof explicit === "string" ? await readFile(explicit) : explicit;
    return await tokenizerFromBytes(bytes, name, vocabSize);
  }
  if (file.metadata.has("tokenizer.ggml.model")) return tokenizerFromGGUF(file.metadata as Map<string, unknown>, file.source.name);
  const hfConfig = file.metadata.get("kvasm.hf.config");
  const [own] = await hfTokenizerFiles(file);
  // the directory's own tokenizer.json may hold fewer ids than the embedding has rows (padding): pad it to match
  if (own) return await tokenizerFromBytes(await readFile(own), own, vocabSize, true);
  // no vocabulary at all (random-weight test models, a GGUF written without one): the model still runs on token ids
  // a Hugging Face directory without its tokenizer files (a partial download) is told where they belong
  const where = typeof hfConfig === "string" ? "; a Hugging Face directory's own tokenizer.json or tokenizer.model beside config.json" : "";
  return new IdOnlyTokenizer(vocabSize ?? 0, file.metadata, file.source.name, where);
}

/**
 * A Hugging Face directory's own tokenizer files, which sit beside its config.json, in the order loading prefers
 * them (tokenizer.json, then tokenizer.model); none for other models.
 */
export async function hfTokenizerFiles(file: ModelFile): Promise<string[]> {
  const hfConfig = file.metadata.get("kvasm.hf.config");
  if (typeof hfConfig !== "string") return [];
  const dir = hfConfig.replace(/[^/\\]*$/, "");
  const fs = await import("node:fs");
  return ["tokenizer.json", "tokenizer.model"].map((name) => dir + name).filter((p) => fs.existsSync(p));
}

/** `padToVocab`: a tokenizer.json shipped beside a model pads its unused ids up to `vocabSize`. */
export async function tokenizerFromBytes(bytes: Uint8Array, name: string, vocabSize?: number, padToVocab = false): Promise<Tokenizer> {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  if (bytes[i] === 0x7b /* { */) {
    const { tokenizerFromHFJson } = await import("../tokenizer/hf-json.ts");
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch (e) {
      throw new FormatError(name, `is not valid UTF-8 JSON (truncated or corrupt tokenizer.json?): ${(e as Error).message}`);
    }
    return tokenizerFromHFJson(json, undefined, name, padToVocab ? vocabSize : 0);
  }
  // tokenizer.bin opens with a small int32 (max_token_length); a SentencePiece protobuf with
  // field 1 (0x0a), a length, then the piece's own field 1: as an int32 that is far larger
  const head = bytes.length >= 4 ? new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) : 0;
  if (name.endsWith(".model") || (bytes[0] === 0x0a && head > 0xffff)) {
    const { readSentencePieceModel } = await import("../tokenizer/sentencepiece-model.ts");
    return readSentencePieceModel(bytes, name);
  }
  return readLlama2cTokenizer(bytes, name, vocabSize);
}

async function readFile(path: string): Promise<Uint8Array> {
  const fs = await import("node:fs");
  try {
    return fs.readFileSync(path);
  } catch (e) {
    throw new FormatError(path, `cannot read tokenizer: ${(e as Error).message}`);
  }
}

/**
 * The tokenizer of a model that ships none: ids in, ids out. Encoding text is
 * an error that says what to do instead; ids decode to no text, and the
 * config's EOS still ends generation.
 */
class IdOnlyTokenizer implements Tokenizer {
  readonly bos: number;
  readonly eos: number;
  readonly addBos = false;
  readonly addSpacePrefix = false;

  constructor(
    readonly vocabSize: number,
    metadata: Map<string, unknown>,
    private readonly modelName: string,
    private readonly hint = "",
  ) {
    const id = (k: string) => (typeof metadata.get(k) === "number" ? metadata.get(k) as number : -1);
    this.bos = id("tokenizer.ggml.bos_token_id");
    this.eos = id("tokenizer.ggml.eos_token_id");
  }

  encode(): number[] {
    throw new ParamError(
      "prompt",
      `${this.modelName} carries no tokenizer; pass one (--tokenizer tokenizer.bin, a .model or tokenizer.json${this.hint}), ` +
        "or token ids (--prompt-ids)",
    );
  }

  tokenBytes(): Uint8Array {
    return new Uint8Array(0);
  }

  decode(): string {
    return "";
  }

  isEndOfGeneration(id: number): boolean {
    return id === this.eos;
  }

  piece(id: number): string {
    return `<${id}>`;
  }

  controlPieces(): readonly string[] {
    return []; // no text to read control tokens in: encode() refuses text
  }
}
