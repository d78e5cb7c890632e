/**
 * One entry point for model files: picks the reader from the first bytes
 * (GGUF magic, safetensors header) or, for a directory, from the files in it.
 * llama2.c v0 has no magic, so it is what remains.
 */
import { checkOptionNames, FormatError } from "../errors.ts";
import { type ByteSource, BytesSource, FileSource, isBunEmbedded } from "../io/source.ts";
import { GGUF_MAGIC, readGGUF } from "./gguf.ts";
import { readLlama2c } from "./llama2c.ts";
import { readSafetensors, readSafetensorsIndex } from "./safetensors.ts";
import { DEFAULT_HEADER_LIMITS, HEADER_LIMIT_NAMES, type HeaderLimits, type ModelFile } from "./types.ts";

export type ModelFormat = ModelFile["format"];

/** Which reader a file's first bytes call for. */
async function sniffFormat(source: ByteSource): Promise<ModelFormat> {
  const head = new Uint8Array(Math.min(16, source.size));
  await source.read(0, head);
  const dv = new DataView(head.buffer);
  if (head.length >= 4 && dv.getUint32(0, true) === GGUF_MAGIC) return "gguf";
  if (head.length >= 10) {
    const headerLen = dv.getBigUint64(0, true);
    if (headerLen >= 2n && headerLen <= BigInt(source.size - 8) && head[8] === 0x7b /* '{' */) return "safetensors";
  }
  return "llama2c";
}

/** Reads the header of a model file; the returned ModelFile keeps its source open (close `file.source`). */
export async function openModelFile(
  input: string | Uint8Array | ByteSource,
  limits: HeaderLimits = DEFAULT_HEADER_LIMITS,
): Promise<ModelFile> {
  checkOptionNames("limits", limits, HEADER_LIMIT_NAMES);
  if (input instanceof Uint8Array) return await readBySniffing(new BytesSource(input), limits);
  if (typeof input !== "string") return await readBySniffing(input, limits);

  const fs = await import("node:fs");
  let stat: import("node:fs").Stats;
  try {
    stat = fs.statSync(input);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT" && isBunEmbedded(input)) {
      // a compiled executable holds only the files its sources import with { type: "file" }; the bundled default
      // model (beside the package's dist/, which `bun build --compile` does not follow) is not among them
      throw new FormatError(
        input,
        "is not inside this `bun build --compile` executable: embed the model with " +
          '`import model from "./model.gguf" with { type: "file" }` and pass loadModel(model)',
      );
    }
    throw new FormatError(input, code === "ENOENT" ? "no such file or directory" : `cannot open: ${(e as Error).message}`);
  }
  if (stat.isDirectory()) return await openDirectory(input, fs, limits);
  if (input.endsWith(".index.json")) return await readSafetensorsIndex(input, FileSource.open, limits);

  let source: ByteSource;
  try {
    source = await FileSource.open(input);
  } catch (e) {
    throw new FormatError(input, `cannot open: ${(e as Error).message}`);
  }
  try {
    return await readBySniffing(source, limits);
  } catch (e) {
    await source.close();
    throw e;
  }
}

async function readBySniffing(source: ByteSource, limits: HeaderLimits): Promise<ModelFile> {
  const format = await sniffFormat(source);
  if (format === "gguf") return await readGGUF(source, limits);
  if (format === "safetensors") return await readSafetensors(source, limits);
  try {
    return await readLlama2c(source);
  } catch (e) {
    // The fallback reader's complaint alone would mislead: say what else was tried.
    if (e instanceof FormatError) {
      const problem = e.message.startsWith(`${source.name}: `) ? e.message.slice(source.name.length + 2) : e.message;
      throw new FormatError(source.name, `not GGUF (no "GGUF" magic), not safetensors, and as a llama2.c checkpoint: ${problem}`);
    }
    throw e;
  }
}

async function openDirectory(dir: string, fs: typeof import("node:fs"), limits: HeaderLimits): Promise<ModelFile> {
  const join = (f: string) => (dir.endsWith("/") ? dir + f : `${dir}/${f}`);
  if (fs.existsSync(join("model.safetensors.index.json"))) return await readSafetensorsIndex(dir, FileSource.open, limits);
  if (fs.existsSync(join("model.safetensors"))) {
    const source = await FileSource.open(join("model.safetensors"));
    try {
      return await readSafetensors(source, limits);
    } catch (e) {
      await source.close();
      throw e;
    }
  }
  // a user who named the folder their downloads sit in: say what a directory must hold, and which files here to try
  let files: string[] = [];
  try {
    files = fs.readdirSync(dir).filter((f) => /\.(gguf|bin)$/i.test(f)).sort();
  } catch {
    // unreadable (permissions): the error below still says what to give, without the listing
  }
  const here = files.length === 0
    ? ""
    : `; .gguf and .bin files here: ${files.slice(0, 5).join(", ")}${files.length > 5 ? `, and ${files.length - 5} more` : ""}`;
  throw new FormatError(
    dir,
    "directory holds neither model.safetensors nor model.safetensors.index.json (a Hugging Face model directory); " +
      `give a GGUF or llama2.c .bin file by its path${here}`,
  );
}
