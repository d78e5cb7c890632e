// src/quant/ owns quantization: ggml block formats written from f32 (quantize.ts), reference dequantizers, the kernels
// each weight type uses, and `kvasm quantize` (this file).
import { openModelFile } from "../formats/open.ts";
import type { ModelFile } from "../formats/types.ts";
import { fileSink, type GGUFMetadataEntry, inferValueType } from "../formats/gguf-writer.ts";
import { withHFConfig } from "../model/hf-config.ts";
import { isHFMapped } from "../convert/hf-to-gguf.ts";
import { quantizeModel, type QuantizeTarget } from "./quantize.ts";
import { ParamError } from "../errors.ts";
import { hfTokenizerFiles, loadTokenizerFor } from "../model/tokenizer-for.ts";
import type { CommandSpec, Flags } from "../cli/flags.ts";

export const QUANTIZE_COMMAND: CommandSpec = {
  name: "quantize",
  summary: "Write a quantized GGUF v3 from an F32/F16/BF16 GGUF, a llama2.c .bin or a Hugging Face checkpoint, tensor by tensor.",
  usage: "kvasm quantize --model IN --out OUT.gguf --type Q8_0|Q4_0|Q4_K|Q4_K_M [--tokenizer PATH]",
  flags: [
    {
      name: "model",
      kind: "string",
      value: "IN",
      help:
        "F32/F16/BF16 GGUF, llama2.c .bin, or a Hugging Face directory (config.json + *.safetensors) or .safetensors beside its config.json",
    },
    { name: "out", kind: "string", value: "OUT.gguf", help: "the quantized file to write" },
    { name: "type", kind: "string", value: "TYPE", help: "Q8_0, Q4_0, Q4_K or Q4_K_M" },
    {
      name: "tokenizer",
      kind: "string",
      value: "PATH",
      help: "tokenizer.bin or SentencePiece tokenizer.model, embedded in the GGUF; needed for a llama2.c .bin, " +
        "and for a Hugging Face directory without its own tokenizer.model",
    },
  ],
};

const TARGETS: QuantizeTarget[] = ["Q8_0", "Q4_0", "Q4_K", "Q4_K_M"];

/** `kvasm quantize`: F32/F16/BF16 GGUF, llama2.c or Hugging Face checkpoint to a quantized GGUF v3, tensor by tensor. */
export async function cmdQuantize(f: Flags, io: { err(s: string): void }): Promise<void> {
  const inPath = f.required("model"), outPath = f.required("out");
  const type = f.string("type")?.toUpperCase() as QuantizeTarget | undefined;
  if (!type || !TARGETS.includes(type)) {
    throw new ParamError("--type", `must be one of ${TARGETS.join(", ")}, got ${JSON.stringify(f.string("type"))}`);
  }
  const t0 = performance.now();
  if (await sameFile(inPath, outPath)) {
    // opened for writing, the input would be emptied before a tensor of it is read (and the model lost)
    throw new ParamError("--out", `${outPath} is the input file (--model): give another path for the quantized file`);
  }
  const opened = await openModelFile(inPath);
  try {
    // a Hugging Face checkpoint is read through its config.json, as loading reads it
    const input = await withHFConfig(opened, inPath);
    const tokenizerMetadata = await vocabularyToEmbed(input, f.string("tokenizer"), outPath, io);
    const output = await outputFile(outPath);
    try {
      await quantizeModel({ input, output, type, tokenizerMetadata });
    } catch (e) {
      // a failure part-way (a tensor it cannot quantize, a full disk) leaves neither its fd open nor a GGUF of a header and
      // some tensors, which would load as a broken model
      try {
        await output.close?.();
      } catch { /* closed already, or the disk's error again: the first error is the one to report */ }
      (await import("node:fs")).rmSync(outPath, { force: true });
      throw e;
    }
  } finally {
    await opened.source.close();
  }
  io.err(`wrote ${outPath} (${type}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

/** Whether both paths name one existing file (through links or another spelling of the path). */
async function sameFile(a: string, b: string): Promise<boolean> {
  const fs = await import("node:fs");
  try {
    const x = fs.statSync(a), y = fs.statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false; // either is missing: openModelFile and outputFile say what is wrong
  }
}

/** The output file, opened for writing; a path that cannot be written is a ParamError on --out, not node:fs's stack trace. */
async function outputFile(path: string) {
  try {
    return await fileSink(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === "ENOENT"
      ? "its directory does not exist"
      : code === "EISDIR"
      ? "it is a directory (give a file name, e.g. DIR/model-q8_0.gguf)"
      : code === "EACCES" || code === "EPERM" || code === "EROFS"
      ? "permission denied"
      : (e as Error).message;
    throw new ParamError("--out", `cannot write ${path}: ${why}`);
  }
}

/**
 * The tokenizer.ggml.* entries the quantized file gets: none where the input
 * carries its vocabulary (a GGUF's is copied), else --tokenizer's or a Hugging
 * Face directory's own. A llama2.c or Hugging Face checkpoint with neither is
 * refused: its tokenizer lives in another file, and without it the output
 * could not encode a prompt.
 */
async function vocabularyToEmbed(
  input: ModelFile,
  explicit: string | undefined,
  outPath: string,
  io: { err(s: string): void },
): Promise<GGUFMetadataEntry[] | undefined> {
  if (input.metadata.has("tokenizer.ggml.model")) return undefined;
  // of the directory's own files, tokenizer.model's scores are what a GGUF vocabulary holds
  const path = explicit ?? (await hfTokenizerFiles(input)).sort((a, b) => Number(b.endsWith(".model")) - Number(a.endsWith(".model")))[0];
  if (path === undefined) {
    if (input.format === "gguf") return undefined; // a GGUF written without a vocabulary stays one, as it came
    const beside = isHFMapped(input) ? " (none sits beside its config.json)" : "";
    throw new ParamError(
      "--tokenizer",
      `${input.source.name} carries no tokenizer${beside}: pass its tokenizer.bin or tokenizer.model to embed in ${outPath}, ` +
        "or the quantized file cannot encode a prompt",
    );
  }
  const tok = await loadTokenizerFor(input, path);
  if (typeof (tok as { score?: unknown }).score !== "function") {
    // a tokenizer.json's BPE vocabulary needs merges and its pre-tokenizer in GGUF, which kvasm does not write yet
    io.err(
      `kvasm: warning: ${path} is a tokenizer.json, which kvasm cannot embed in GGUF yet: ${outPath} is written ` +
        `without a tokenizer; pass --tokenizer ${path} when you run it\n`,
    );
    return undefined;
  }
  // tokens added past the SentencePiece model (a chat model's <|im_start|>) live in tokenizer.json, not here: the
  // embedded vocabulary would miss them, and llama.cpp sizes the embedding by the token list
  const rows = embeddingRows(input);
  if (rows !== undefined && tok.vocabSize < rows) {
    io.err(
      `kvasm: warning: ${path} holds ${tok.vocabSize} tokens but the model's embedding has ${rows} rows: ${outPath} ` +
        `embeds the ${tok.vocabSize}; ids past them (added tokens) cannot be encoded or decoded by name\n`,
    );
  }
  return ggufVocabulary(tok);
}

/** Rows of the input's token embedding (its vocabulary size), where the file names it as kvasm maps it. */
function embeddingRows(input: ModelFile): number | undefined {
  const t = input.tensors.get("token_embd.weight");
  return t && t.shape.length === 2 ? t.shape[1] : undefined;
}

/** A SentencePiece vocabulary as GGUF tokenizer.ggml.* entries (llama2.c's tokenizer.bin carries pieces and scores). */
function ggufVocabulary(tok: Awaited<ReturnType<typeof loadTokenizerFor>>): GGUFMetadataEntry[] {
  const v = tok as unknown as { piece(id: number): string; score?(id: number): number; tokenType?(id: number): number };
  const tokens: string[] = [], scores = new Float32Array(tok.vocabSize), types = new Int32Array(tok.vocabSize);
  for (let i = 0; i < tok.vocabSize; i++) {
    tokens.push(v.piece(i).replaceAll(" ", "\u2581"));
    scores[i] = v.score?.(i) ?? 0;
    types[i] = v.tokenType?.(i) ?? 1;
  }
  const e = (key: string, value: unknown): GGUFMetadataEntry => ({ key, type: inferValueType(value), value });
  return [
    e("tokenizer.ggml.model", "llama"),
    { key: "tokenizer.ggml.tokens", type: { type: "array", of: "string" }, value: tokens },
    { key: "tokenizer.ggml.scores", type: { type: "array", of: "f32" }, value: scores },
    { key: "tokenizer.ggml.token_type", type: { type: "array", of: "i32" }, value: types },
    { key: "tokenizer.ggml.bos_token_id", type: { type: "u32" }, value: Math.max(tok.bos, 0) },
    { key: "tokenizer.ggml.eos_token_id", type: { type: "u32" }, value: Math.max(tok.eos, 0) },
  ];
}
