/**
 * What a header may claim, checked against what the file holds before anything is sized by it:
 * the layer count against the layers the tensor table declares (an architecture builds a table of
 * 9 to 13 tensor names per layer, so a forged `block_count` of 2^24 would otherwise cost gigabytes
 * before the first missing tensor is noticed), and the caller's header limits themselves.
 */
import { checkOptionNames, FormatError, ParamError } from "../errors.ts";
import { HEADER_LIMIT_NAMES, type HeaderLimits, headerLimits } from "../formats/types.ts";
import type { ModelFile } from "../formats/types.ts";
import type { ModelConfig } from "./config.ts";

/** LoadOptions.limits over the defaults; each must be a positive integer, and no other key may be given. */
export function resolveHeaderLimits(given: Partial<HeaderLimits> | undefined): HeaderLimits {
  checkOptionNames("limits", given, HEADER_LIMIT_NAMES);
  const limits = headerLimits(given);
  for (const [k, v] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(v) && v > 0)) throw new ParamError(`limits.${k}`, `must be a positive integer, got ${String(v)}`);
  }
  return limits;
}

/**
 * Every layer has tensors of its own, so the layer count is at most the number of tensors the file
 * declares; then the per-layer tables an architecture builds are linear in the header already read.
 * (A count just above the layers present passes here and fails on the first missing tensor, by name.)
 */
export function checkLayerCount(c: ModelConfig, file: ModelFile): void {
  if (c.nLayers > file.tensors.size) {
    const key = file.metadata.has("kvasm.hf.config") ? "config.json's layer count" : `metadata "${c.arch}.block_count"`;
    throw new FormatError(
      file.source.name,
      `${key} declares ${c.nLayers} layers, but the file holds only ${file.tensors.size} tensors: a corrupt count or a truncated file`,
    );
  }
}
