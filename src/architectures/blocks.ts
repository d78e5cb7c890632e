/**
 * Building blocks the architecture files share: views into fused weights,
 * a Linear layer with an optional bias, and the shape check of a tensor set
 * against the configuration (a contradiction is a FormatError naming the tensor).
 */
import type { Backend, Weight, WeightLayout } from "../backends/backend.ts";
import { rowBytes } from "../formats/ggml-types.ts";
import type { ModelFile, TensorInfo } from "../formats/types.ts";
import { LANES_KERNELS } from "../quant/kernels.ts";
import { FormatError, UnsupportedError } from "../errors.ts";

/**
 * Rows [r0, r0 + n) of a weight as a weight of its own: same bytes, no copy.
 * Rows are contiguous in ggml layout, so a row range of a fused [q|k|v] (or
 * [gate|up]) matrix is a sub-matrix at an offset. A vector (a bias) is one
 * row of `cols` values; its view is the element range [r0, r0 + n).
 */
export function rowView(w: Weight, r0: number, n: number, name: string): Weight {
  if (w.rows === 1) {
    // a vector: elements, not rows (biases are f32)
    if (r0 + n > w.cols) throw new FormatError(w.name, `view [${r0}, ${r0 + n}) lies past its ${w.cols} values`);
    return { name, type: w.type, cols: n, rows: 1, ptr: w.ptr + r0 * 4, bytes: n * 4 };
  }
  if (r0 + n > w.rows) throw new FormatError(w.name, `view of rows [${r0}, ${r0 + n}) lies past its ${w.rows} rows`);
  const stride = rowBytes(w.type, w.cols)!;
  return { name, type: w.type, cols: w.cols, rows: n, ptr: w.ptr + r0 * stride, bytes: n * stride, ...viewLayout(w, r0, n) };
}

/**
 * The layout (Weight.layout) a view of rows [r0, r0 + n) of w keeps: a row-local one (KX) as it is; a cross-row one
 * (lanes) where the view starts on a row group and ends on one or where w ends, so that its whole groups are whole
 * groups of w and its natural tail is w's. A view cutting across a group has no layout its bytes are in: an error.
 */
function viewLayout(w: Weight, r0: number, n: number): { layout?: WeightLayout } {
  if (w.layout !== "lanes") return w.layout ? { layout: w.layout } : {};
  const group = LANES_KERNELS.get(w.type)?.rowGroup ?? 1;
  if (r0 % group === 0 && (n % group === 0 || r0 + n === w.rows)) return { layout: w.layout };
  throw new UnsupportedError(
    `${w.name}: rows [${r0}, ${
      r0 + n
    }) cut across the ${group}-row groups it was repacked in at load; load with ggmlOrder: true to keep ggml's layout`,
  );
}

/** Splits a fused weight (matrix or bias) into consecutive row ranges of the given sizes. */
export function splitRows(w: Weight, sizes: number[], names: string[]): Weight[] {
  const out: Weight[] = [];
  let r = 0;
  for (let i = 0; i < sizes.length; i++) {
    out.push(rowView(w, r, sizes[i], names[i]));
    r += sizes[i];
  }
  const total = w.rows === 1 ? w.cols : w.rows;
  if (r !== total) throw new FormatError(w.name, `holds ${total} rows, but its parts need ${r}`);
  return out;
}

/** out (T, w.rows) = x @ W^T (+ bias). sameInput: as Backend.matmul (x unchanged since the previous matmul). */
export function linear(b: Backend, out: number, x: number, w: Weight, bias: Weight | undefined, T: number, sameInput = false): void {
  b.matmul(out, x, w, T, sameInput);
  if (bias) b.addBias(out, bias, T, w.rows);
}

/** Tensor name -> ggml shape ([row length, rows]) that the configuration implies; `optional` may be absent. */
export interface ExpectedTensors {
  required: Map<string, number[]>;
  optional: Map<string, number[]>;
}

/**
 * Checks that every required tensor is present and every present tensor has
 * the implied shape; returns the names to load. Where the file was mapped
 * from Hugging Face names, the message names the original tensor and config.json.
 */
export function checkTensors(file: ModelFile, expected: ExpectedTensors): { required: string[]; optional: string[] } {
  const origin = (t: string) => {
    const hf = (file.tensors.get(t) as (TensorInfo & { hfName?: string }) | undefined)?.hfName;
    return hf ? `tensor "${t}" (${hf})` : `tensor "${t}"`;
  };
  const by = file.metadata.has("kvasm.hf.config") ? "config.json" : "the metadata";
  const check = (name: string, shape: number[], required: boolean) => {
    const info = file.tensors.get(name);
    if (!info) {
      if (required) throw new FormatError(file.source.name, `tensor "${name}" is missing (expected shape [${shape.join(", ")}])`);
      return;
    }
    if (!sameShape(info.shape, shape)) {
      throw new FormatError(
        file.source.name,
        `${origin(name)} has shape [${info.shape.join(", ")}], but ${by} implies [${shape.join(", ")}]`,
      );
    }
  };
  for (const [n, s] of expected.required) check(n, s, true);
  for (const [n, s] of expected.optional) check(n, s, false);
  return { required: [...expected.required.keys()], optional: [...expected.optional.keys()] };
}

/** Equal up to trailing 1s (a [n] vector and an [n, 1] matrix hold the same bytes). */
function sameShape(a: number[], b: number[]): boolean {
  const trim = (s: number[]) => {
    const t = [...s];
    while (t.length > 1 && t[t.length - 1] === 1) t.pop();
    return t;
  };
  const x = trim(a), y = trim(b);
  return x.length === y.length && x.every((n, i) => n === y[i]);
}
