/**
 * Typed reads of GGUF-style metadata keys (`{arch}.embedding_length`, ...),
 * which every loader produces (GGUF as is, llama2.c and Hugging Face files
 * mapped to the same keys). Which keys an architecture reads, and what they
 * mean for it, is its own file's business (src/architectures/).
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import type { MetadataValue, ModelFile } from "../formats/types.ts";

/** `general.architecture`, checked to be one of `names` (the architecture file's): a FormatError or UnsupportedError otherwise. */
export function architectureName(file: ModelFile, names: readonly string[], name: string = file.source.name): string {
  const arch = file.metadata.get("general.architecture");
  if (arch === undefined) throw new FormatError(name, 'metadata key "general.architecture" is missing');
  if (typeof arch !== "string") throw new FormatError(name, `metadata "general.architecture" must be a string, found ${String(arch)}`);
  if (!names.includes(arch)) {
    throw new UnsupportedError(`${name}: architecture "${arch}" is not supported by this architecture (it reads ${names.join(", ")})`);
  }
  return arch;
}

export class MetadataReader {
  constructor(readonly file: ModelFile, readonly name: string, readonly arch: string) {}

  private fail(problem: string): never {
    throw new FormatError(this.name, problem);
  }

  private value(key: string): MetadataValue | undefined {
    return this.file.metadata.get(key.startsWith(".") ? this.arch + key : key);
  }

  /** A non-negative number; `key` starting with "." is relative to the architecture. */
  number(key: string, fallback?: number): number {
    const full = key.startsWith(".") ? this.arch + key : key;
    const v = this.value(key);
    if (v === undefined) {
      if (fallback === undefined) this.fail(`metadata key "${full}" is missing`);
      return fallback;
    }
    if (typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= 0n) return Number(v);
    if (typeof v !== "number" || !Number.isFinite(v)) {
      if (typeof v === "object") {
        throw new UnsupportedError(`${this.name}: metadata "${full}" is a per-layer array; kvasm needs one value for all layers`);
      }
      this.fail(`metadata "${full}" must be a number, found ${String(v)}`);
    }
    return v;
  }

  /** A string value, or undefined. */
  string(key: string): string | undefined {
    const v = this.value(key);
    return typeof v === "string" ? v : undefined;
  }

  /** A boolean value (GGUF bool, or a number), or the fallback. */
  bool(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (typeof v === "boolean") return v;
    if (typeof v === "number" || typeof v === "bigint") return Number(v) !== 0;
    this.fail(`metadata "${key.startsWith(".") ? this.arch + key : key}" must be a boolean, found ${String(v)}`);
  }

  /** A positive integer (dimensions, counts). */
  count(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v <= 0) {
      this.fail(`metadata "${key.startsWith(".") ? this.arch + key : key}" must be a positive integer, found ${v}`);
    }
    return v;
  }
}
