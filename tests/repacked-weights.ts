/**
 * What the repack tests (KX and lanes layouts) share: a backend that leaves every weight as the file has it, to
 * compare a repacked model against, and a walk to every Weight a model bound, to check which layout each took.
 */
import { WasmBackend } from "../src/backends/wasm.ts";
import type { Weight } from "../src/backends/backend.ts";
import type { Model } from "../src/model/model.ts";

/** A WASM backend that leaves every weight in ggml's layout. */
export class NaturalLayout extends WasmBackend {
  override prepareWeight(_w: Weight): void {}
}

/** Every Weight the architecture bound (objects with a type and a pointer, at any depth). */
export function weightsOf(m: Model): Weight[] {
  const out: Weight[] = [];
  const walk = (v: unknown) => {
    if (!v || typeof v !== "object") return;
    if ("ptr" in v && "type" in v) out.push(v as Weight);
    else for (const x of Object.values(v)) walk(x);
  };
  walk(m.weights);
  return out;
}
