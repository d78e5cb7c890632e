/**
 * What a header may claim, checked against what the file holds before anything is sized by it:
 * the layer count against the layers the tensor table declares (an architecture builds a table of
 * 9 to 13 tensor names per layer, so a forged `block_count` of 2^24 would otherwise cost gigabytes
 * before the first missing tensor is noticed), and the caller's header limits themselves.
 */
import { FormatError, ParamError } from "../errors.ts";
import { type HeaderLimits, headerLimits } from "../formats/types.ts";
import type { ModelFile } from "../formats/types.ts";
import type { ModelConfig } from "./config.ts";

/** LoadOptions.limits over the defaults; each must be a positive integer. */
export function resolveHeaderLimits(given: Partial<HeaderLimits> | undefined): HeaderLimits {
  const limits = headerLimits(given);
  for (const [k, v] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(v) && v > 0)) throw new ParamError(`limits.${k}`, `must be a positive integer, got ${String(v)}`);
  }
  return limits;
}

/**
 * The configuration's layer count is at most the number of distinct layers (`blk.N.`) among the
 * file's tensors: one pass over the tensor names, linear in the header the file already holds.
 */
export function checkLayerCount(c: ModelConfig, file: ModelFile): void {
  const layers = new Set<number>();
  for (const name of file.tensors.keys()) {
    if (!name.startsWith("blk.")) continue;
    const end = name.indexOf(".", 4);
    const n = Number(name.slice(4, end));
    if (end > 4 && Number.isInteger(n)) layers.add(n);
  }
  if (c.nLayers > layers.size) {
    const key = file.metadata.has("kvasm.hf.config") ? "config.json's layer count" : `metadata "${c.arch}.block_count"`;
    throw new FormatError(
      file.source.name,
      `${key} declares ${c.nLayers} layers, but the file holds tensors for ${layers.size}: a corrupt count or a truncated file`,
    );
  }
}
