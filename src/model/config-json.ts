/**
 * Typed reads of a Hugging Face config.json, and the shape of an
 * architecture's Hugging Face mapping (its model_types' metadata keys and
 * tensor-name rules). The architecture files (src/architectures/) hold the
 * mappings; src/model/hf-config.ts applies them.
 */
import { FormatError } from "../errors.ts";
import type { MetadataValue } from "../formats/types.ts";

export type HFConfig = Record<string, unknown>;

/** Layout rewrites of Hugging Face tensors into llama.cpp's (src/model/hf-config.ts applies them as bytes stream). */
export type HFTransform = "conv1d" | "neox_qkv";

/** [Hugging Face name pattern, GGUF name template, layout rewrite]. */
export type NameRule = [RegExp, string, HFTransform?];

/** One Hugging Face model_type: the GGUF architecture it becomes, its metadata keys and its tensor names. */
export interface HFMapping {
  gguf: string;
  names: NameRule[];
  metadata(c: ConfigReader): Record<string, MetadataValue>;
}

/** Typed reads of config.json, each failure a FormatError naming the key. */
export class ConfigReader {
  constructor(readonly json: HFConfig, readonly name: string) {}

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  number(key: string | string[], fallback?: number): number {
    for (const k of Array.isArray(key) ? key : [key]) {
      const v = this.json[k];
      if (v === undefined || v === null) continue;
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new FormatError(this.name, `"${k}" must be a number, found ${JSON.stringify(v)}`);
      }
      return v;
    }
    if (fallback === undefined) throw new FormatError(this.name, `"${Array.isArray(key) ? key.join('" or "') : key}" is missing`);
    return fallback;
  }

  count(key: string | string[], fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v <= 0) {
      throw new FormatError(this.name, `"${Array.isArray(key) ? key[0] : key}" must be a positive integer, found ${v}`);
    }
    return v;
  }

  /** rope_parameters (transformers 5) or rope_scaling (4.x), whichever is there. */
  rope(): Record<string, unknown> {
    const r = this.json.rope_parameters ?? this.json.rope_scaling;
    return typeof r === "object" && r !== null ? (r as Record<string, unknown>) : {};
  }

  ropeTheta(fallback = 10000): number {
    const r = this.rope().rope_theta;
    return typeof r === "number" ? r : this.number(["rope_theta", "rotary_emb_base"], fallback);
  }

  partialRotary(): number {
    const r = this.rope().partial_rotary_factor;
    return typeof r === "number" ? r : this.number(["partial_rotary_factor", "rotary_pct"], 1);
  }
}

export function headDimOf(c: ConfigReader, dim: number, nHeads: number): number {
  if (c.has("head_dim")) return c.count("head_dim");
  if (dim % nHeads !== 0) throw new FormatError(c.name, `num_attention_heads ${nHeads} does not divide hidden_size ${dim}`);
  return dim / nHeads;
}

export function ropeDimOf(c: ConfigReader, headDim: number): number {
  const d = Math.floor(headDim * c.partialRotary());
  if (d <= 0 || d % 2 !== 0) {
    throw new FormatError(c.name, `rotary dimensions ${d} (head_dim ${headDim} x partial rotary factor) must be even and positive`);
  }
  return d;
}
