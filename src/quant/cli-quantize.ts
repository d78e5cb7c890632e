// src/quant/ owns quantization: ggml block formats written from f32 (quantize.ts), reference dequantizers, the kernels
// each weight type uses, and `kvasm quantize` (this file).
import { openModelFile } from "../formats/open.ts";
import { fileSink, type GGUFMetadataEntry, inferValueType } from "../formats/gguf-writer.ts";
import { quantizeModel, type QuantizeTarget } from "./quantize.ts";
import { ParamError } from "../errors.ts";
import { loadTokenizerFor } from "../model/tokenizer-for.ts";
import type { CommandSpec, Flags } from "../cli/flags.ts";

export const QUANTIZE_COMMAND: CommandSpec = {
  name: "quantize",
  summary: "Write a quantized GGUF v3 from an F32/F16 GGUF or a llama2.c .bin, tensor by tensor.",
  usage: "kvasm quantize --model IN --out OUT.gguf --type Q8_0|Q4_0|Q4_K|Q4_K_M [--tokenizer PATH]",
  flags: [
    { name: "model", kind: "string", value: "IN", help: "F32/F16 GGUF or llama2.c .bin" },
    { name: "out", kind: "string", value: "OUT.gguf", help: "the quantized file to write" },
    { name: "type", kind: "string", value: "TYPE", help: "Q8_0, Q4_0, Q4_K or Q4_K_M" },
    { name: "tokenizer", kind: "string", value: "PATH", help: "a llama2.c model's tokenizer.bin, embedded in the GGUF" },
  ],
};

const TARGETS: QuantizeTarget[] = ["Q8_0", "Q4_0", "Q4_K", "Q4_K_M"];

/** `kvasm quantize`: F32/F16 GGUF or llama2.c checkpoint to a quantized GGUF v3, tensor by tensor. */
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
  const input = await openModelFile(inPath);
  try {
    let tokenizerMetadata: GGUFMetadataEntry[] | undefined;
    const tokPath = f.string("tokenizer");
    if (!input.metadata.has("tokenizer.ggml.model") && tokPath) {
      tokenizerMetadata = ggufVocabulary(await loadTokenizerFor(input, tokPath));
    }
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
    await input.source.close();
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
