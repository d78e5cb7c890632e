/**
 * The architectures kvasm runs. Adding one is its file (architecture.ts says
 * what it provides) plus one line here.
 */
import type { ModelFile } from "../formats/types.ts";
import type { HFMapping } from "../model/config-json.ts";
import { UnsupportedError } from "../errors.ts";
import type { SomeArchitecture } from "./architecture.ts";
import { llama } from "./llama.ts";
import { qwen2 } from "./qwen2.ts";
import { phi3 } from "./phi3.ts";
import { gpt2 } from "./gpt2.ts";
import { gptneox } from "./gptneox.ts";
import { bloom, mpt } from "./bloom-mpt.ts";

const ARCHITECTURES: readonly SomeArchitecture[] = [llama, qwen2, phi3, gpt2, gptneox, bloom, mpt];

/** The architecture a file's `general.architecture` names (llama when absent: llama2.c files, old GGUFs). */
export function architectureOf(file: ModelFile): SomeArchitecture {
  const name = String(file.metadata.get("general.architecture") ?? "llama");
  const arch = ARCHITECTURES.find((a) => a.names.includes(name));
  if (!arch) {
    throw new UnsupportedError(
      `${file.source.name}: architecture "${name}" is not supported (kvasm runs: ${ARCHITECTURES.flatMap((a) => a.names).join(", ")})`,
    );
  }
  return arch;
}

/** The Hugging Face mapping of a config.json `model_type`, from whichever architecture declares it. */
export function hfMappingOf(modelType: string): HFMapping | undefined {
  for (const a of ARCHITECTURES) if (Object.hasOwn(a.hf, modelType)) return a.hf[modelType];
  return undefined;
}

/** Every config.json `model_type` kvasm maps. */
export function hfModelTypes(): string[] {
  return ARCHITECTURES.flatMap((a) => Object.keys(a.hf));
}
