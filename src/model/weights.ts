import type { Backend, Weight } from "../backends/backend.ts";
import type { ModelFile, TensorInfo } from "../formats/types.ts";
import { ggmlTypeName } from "../formats/ggml-types.ts";
import { FormatError, UnsupportedError } from "../errors.ts";

/** The weights of a model, by canonical name, as they sit in the backend's memory. */
export class WeightSet {
  private readonly byName = new Map<string, Weight>();

  get(name: string): Weight {
    const w = this.byName.get(name);
    if (!w) throw new FormatError("model", `missing tensor ${name}`);
    return w;
  }

  maybe(name: string): Weight | undefined {
    return this.byName.get(name);
  }

  get bytes(): number {
    let n = 0;
    for (const w of this.byName.values()) n += w.bytes;
    return n;
  }

  /**
   * Checks that every tensor exists and that the backend can use its type,
   * before any memory is reserved (a bad file fails fast and leaks nothing).
   */
  static select(file: ModelFile, names: { required: string[]; optional: string[] }, backend: Backend): TensorInfo[] {
    const out: TensorInfo[] = [];
    for (const name of names.required) {
      const t = file.tensors.get(name);
      if (!t) throw new FormatError(file.source.name, `missing tensor ${name}`);
      out.push(t);
    }
    for (const name of names.optional) {
      const t = file.tensors.get(name);
      if (t) out.push(t);
    }
    for (const t of out) {
      // norms are read directly as f32 vectors; matrices go through a matmul or row-fetch kernel
      const isVector = t.shape.length === 1;
      if (isVector ? t.type !== 0 : !backend.supportsWeight(t.type)) {
        throw new UnsupportedError(
          `${file.source.name}: tensor ${t.name} has type ${ggmlTypeName(t.type)}, which the ${backend.name} backend does not support`,
        );
      }
    }
    return out;
  }

  /** Streams each tensor's bytes from the file to where the arena plan placed it. */
  static async upload(
    backend: Backend,
    file: ModelFile,
    placed: Array<{ t: TensorInfo; ptr: number }>,
    onProgress?: (done: number, total: number) => void,
  ): Promise<WeightSet> {
    const set = new WeightSet();
    const total = placed.reduce((n, p) => n + p.t.byteLength, 0);
    // placed in the architecture's order, read in file order: a network stream
    // (edge functions) is read front to back, never seeking backwards
    const inFileOrder = [...placed].sort((a, b) => a.t.offset - b.t.offset);
    let done = 0;
    for (const { t, ptr } of inFileOrder) {
      await backend.upload(ptr, sourceOf(file, t), t.offset, t.byteLength);
      const rows = t.shape.slice(1).reduce((a, b) => a * b, 1);
      const w: Weight = { name: t.name, type: t.type, cols: t.shape[0], rows, ptr, bytes: t.byteLength };
      backend.prepareWeight?.(w);
      set.byName.set(t.name, w);
      done += t.byteLength;
      onProgress?.(done, total);
    }
    return set;
  }
}

/** Sharded safetensors carry their own source per tensor. */
function sourceOf(file: ModelFile, t: TensorInfo) {
  return (t as TensorInfo & { source?: ModelFile["source"] }).source ?? file.source;
}
