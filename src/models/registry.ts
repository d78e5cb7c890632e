import type { Backend, KVLayout } from "../backends/backend.ts";
import type { ModelFile } from "../formats/types.ts";
import type { DerivedConfig, ModelConfig } from "../model/config.ts";
import type { WeightSet } from "../model/weights.ts";
import { UnsupportedError } from "../errors.ts";
import type { RunState } from "./llama.ts";
import { llama } from "./llama.ts";
import { qwen2 } from "./qwen2.ts";
import { phi3 } from "./phi3.ts";
import { gpt2 } from "./gpt2.ts";
import { gptneox } from "./gptneox.ts";
import { bloom, mpt } from "./bloom-mpt.ts";

/**
 * What an architecture file provides: how to read its hyper-parameters, which
 * tensors it needs, how to bind them, and its forward pass over a batch of rows.
 * Adding an architecture is one file plus one line in ARCHITECTURES.
 */
export interface Architecture<W = unknown> {
  /** general.architecture values this file runs. */
  names: string[];
  config(file: ModelFile): ModelConfig;
  tensors(c: DerivedConfig, file: ModelFile): { required: string[]; optional: string[] };
  bind(c: DerivedConfig, w: WeightSet): W;
  /** Extra scratch buffers beyond RunState's (name -> bytes for `rows` token rows). */
  extraScratch?(c: DerivedConfig, rows: number): Record<string, number>;
  forward(b: Backend, c: DerivedConfig, w: W, s: RunState, kv: KVLayout, T: number, logitRows: ArrayLike<number>): void;
}

const ARCHITECTURES: Architecture<any>[] = [llama, qwen2, phi3, gpt2, gptneox, bloom, mpt];

export function architectureOf(file: ModelFile): Architecture<unknown> {
  const name = String(file.metadata.get("general.architecture") ?? "llama");
  const arch = ARCHITECTURES.find((a) => a.names.includes(name));
  if (!arch) {
    throw new UnsupportedError(
      `${file.source.name}: architecture "${name}" is not supported (kvasm runs: ${ARCHITECTURES.flatMap((a) => a.names).join(", ")})`,
    );
  }
  return arch;
}
