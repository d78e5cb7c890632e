/**
 * Hugging Face checkpoints (config.json + safetensors) as kvasm model files:
 * config.json becomes the GGUF metadata keys llama.cpp would write
 * (`general.architecture`, `{arch}.embedding_length`, ...), and every tensor
 * gets its llama.cpp GGUF name, so the architecture files read one vocabulary
 * whatever the format. Each architecture file holds its own mapping (its
 * model_types' keys and name rules, `Architecture.hf`); this file applies it.
 *
 * Two Hugging Face layouts differ from llama.cpp's, and are rewritten while
 * the bytes stream from the file (a derived ByteSource; the arena receives
 * llama.cpp's layout directly, nothing is copied inside it):
 * - GPT-2's Conv1D stores weights as [in, out]; ggml rows are outputs, so
 *   they are transposed (llama.cpp's converter does the same).
 * - GPT-NeoX's and BLOOM's fused query_key_value is per head: rows [head][q|k|v][headDim].
 *   It is regrouped to [q|k|v][head][headDim] (again as llama.cpp's converter
 *   does), so Q, K and V are then contiguous row ranges, split by views like
 *   GPT-2's c_attn and Phi-3's qkv_proj (src/architectures/blocks.ts rowView).
 * 1-D tensors (norms, biases) stored as F16/BF16 are widened to F32, which the
 * kernels read directly.
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import { GGMLType, type GGMLTypeId } from "../formats/ggml-types.ts";
import type { MetadataValue, ModelFile, TensorInfo } from "../formats/types.ts";
import type { ByteSource } from "../io/source.ts";
import { bf16ToF32, f16ToF32 } from "../quant/half.ts";
import { hfMappingOf, hfModelTypes } from "../architectures/registry.ts";
import { ConfigReader, type HFConfig, type HFTransform } from "./config-json.ts";

export type { HFConfig } from "./config-json.ts";

/** A tensor mapped from a Hugging Face name; `source` set when its bytes are derived (transposed, regrouped, widened). */
export interface HFTensorInfo extends TensorInfo {
  hfName: string;
  source?: ByteSource;
}

/**
 * A safetensors file (or sharded set) read with its config.json, as a ModelFile with
 * llama.cpp's metadata keys and tensor names. Tensors no rule names (rotary caches,
 * attention masks saved as buffers) are left out.
 */
export function hfModelFile(file: ModelFile, config: HFConfig, configName: string): ModelFile {
  const modelType = config.model_type;
  if (typeof modelType !== "string") throw new FormatError(configName, `"model_type" is missing or not a string`);
  const arch = hfMappingOf(modelType);
  if (!arch) {
    throw new UnsupportedError(`${configName}: model_type "${modelType}" is not supported (kvasm runs: ${hfModelTypes().join(", ")})`);
  }
  const c = new ConfigReader(config, configName);
  const metadata = new Map<string, MetadataValue>(file.metadata);
  metadata.set("general.architecture", arch.gguf);
  metadata.set("kvasm.hf.config", configName);
  metadata.set("kvasm.hf.model_type", modelType);
  for (const [k, v] of Object.entries(arch.metadata(c))) metadata.set(k, v);
  for (const k of ["bos_token_id", "eos_token_id"] as const) {
    const v = config[k];
    const id = Array.isArray(v) ? v[0] : v;
    if (typeof id === "number") metadata.set(`tokenizer.ggml.${k}`, id);
  }

  const nHeads = c.count(["num_attention_heads", "n_head", "n_heads"]);
  const tensors = new Map<string, TensorInfo>();
  for (const info of file.tensors.values()) {
    const rule = arch.names.find(([re]) => re.test(info.name));
    if (!rule) continue;
    const [re, template, transform] = rule;
    const name = info.name.replace(re, template);
    if (tensors.has(name)) {
      throw new FormatError(
        file.source.name,
        `tensors "${(tensors.get(name) as HFTensorInfo).hfName}" and "${info.name}" both map to ${name}`,
      );
    }
    tensors.set(name, derive(file, info, name, transform, nHeads));
  }
  return { format: "safetensors", source: file.source, metadata, tensors };
}

/** Reads `config.json` beside a model path (a directory, a .safetensors file or an index); undefined when there is none. */
async function readHFConfig(path: string): Promise<{ config: HFConfig; name: string } | undefined> {
  const fs = await import("node:fs");
  let dir = path;
  try {
    if (!fs.statSync(path).isDirectory()) dir = path.replace(/[^/\\]*$/, "") || ".";
  } catch {
    return undefined;
  }
  const name = dir.endsWith("/") ? dir + "config.json" : `${dir}/config.json`;
  if (!fs.existsSync(name)) return undefined;
  try {
    const json = JSON.parse(fs.readFileSync(name, "utf8"));
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw new Error("not a JSON object");
    return { config: json, name };
  } catch (e) {
    throw new FormatError(name, `is not a valid config.json: ${(e as Error).message}`);
  }
}

/**
 * Maps a safetensors ModelFile through the config.json beside `input`; other
 * formats (and safetensors without a config.json) pass through unchanged.
 */
export async function withHFConfig(file: ModelFile, input: unknown): Promise<ModelFile> {
  if (file.format !== "safetensors" || typeof input !== "string") return file;
  const cfg = await readHFConfig(input);
  return cfg ? hfModelFile(file, cfg.config, cfg.name) : file;
}

// ---------------------------------------------------------------- derived tensor bytes

const ELEMENT_BYTES: Partial<Record<GGMLTypeId, number>> = { [GGMLType.F32]: 4, [GGMLType.F16]: 2, [GGMLType.BF16]: 2 };

function derive(file: ModelFile, info: TensorInfo, name: string, transform: HFTransform | undefined, nHeads: number): HFTensorInfo {
  const base = (info as TensorInfo & { source?: ByteSource }).source ?? file.source;
  const elem = ELEMENT_BYTES[info.type];
  const isVector = info.shape.filter((d) => d !== 1).length <= 1;
  const widen = isVector && info.type !== GGMLType.F32;
  if (!transform && !widen) return { ...info, name, hfName: info.name };
  if (elem === undefined) throw new UnsupportedError(`${file.source.name}: tensor "${info.name}" of this dtype cannot be rearranged`);

  let shape = info.shape;
  const steps: Array<(b: Uint8Array) => Uint8Array> = [];
  if (transform === "conv1d") {
    // Conv1D [in, out] row-major is ggml shape [out, in]: rows are inputs. Transpose to rows of outputs.
    if (shape.length !== 2) {
      throw new FormatError(file.source.name, `Conv1D tensor "${info.name}" is not a matrix (shape [${shape.join(", ")}])`);
    }
    const [cols, rows] = shape;
    steps.push((b) => transpose(b, rows, cols, elem));
    shape = [rows, cols];
  } else if (transform === "neox_qkv") {
    const rows = shape.length === 1 ? shape[0] : shape[1], cols = shape.length === 1 ? 1 : shape[0];
    if (rows % (3 * nHeads) !== 0) {
      throw new FormatError(file.source.name, `"${info.name}" has ${rows} rows, not 3 x ${nHeads} heads x head_dim`);
    }
    steps.push((b) => regroupNeoxQKV(b, nHeads, rows / (3 * nHeads), cols * elem));
  }
  let type = info.type, byteLength = info.byteLength;
  if (widen) {
    const from = info.type;
    steps.push((b) => widenToF32(b, from));
    type = GGMLType.F32;
    byteLength = (info.byteLength / elem) * 4;
  }
  const source = new DerivedTensorSource(`${base.name} (${info.name})`, base, info.offset, info.byteLength, byteLength, steps);
  return { name, hfName: info.name, type, shape, offset: 0, byteLength, source };
}

/** (rows, cols) row-major -> (cols, rows) row-major, elements of `elem` bytes. */
export function transpose(src: Uint8Array, rows: number, cols: number, elem: number): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const from = (r * cols + c) * elem, to = (c * rows + r) * elem;
      for (let e = 0; e < elem; e++) out[to + e] = src[from + e];
    }
  }
  return out;
}

/** Rows [head][q|k|v][headDim] -> [q|k|v][head][headDim]; `rowBytes` per row (a bias row is one element). */
function regroupNeoxQKV(src: Uint8Array, nHeads: number, headDim: number, rowBytes: number): Uint8Array {
  const out = new Uint8Array(src.length);
  const block = headDim * rowBytes;
  for (let h = 0; h < nHeads; h++) {
    for (let part = 0; part < 3; part++) {
      const from = (h * 3 + part) * block, to = (part * nHeads + h) * block;
      out.set(src.subarray(from, from + block), to);
    }
  }
  return out;
}

function widenToF32(src: Uint8Array, from: GGMLTypeId): Uint8Array {
  const n = src.length / 2;
  const half = new Uint16Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.length));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = from === GGMLType.BF16 ? bf16ToF32(half[i]) : f16ToF32(half[i]);
  return new Uint8Array(out.buffer);
}

/**
 * The bytes of one tensor after a layout rewrite: the source tensor is read
 * whole on first use and rewritten; reads then copy ranges of the result,
 * which is dropped once its last byte has been read.
 */
class DerivedTensorSource implements ByteSource {
  private result?: Uint8Array;

  constructor(
    readonly name: string,
    private readonly base: ByteSource,
    private readonly offset: number,
    private readonly srcBytes: number,
    readonly size: number,
    private readonly steps: Array<(b: Uint8Array) => Uint8Array>,
  ) {}

  async read(offset: number, dest: Uint8Array): Promise<void> {
    if (offset < 0 || offset + dest.length > this.size) {
      throw new FormatError(this.name, `read of [${offset}, ${offset + dest.length}) lies outside its ${this.size} bytes`);
    }
    if (!this.result) {
      let b: Uint8Array = new Uint8Array(this.srcBytes);
      await this.base.read(this.offset, b);
      for (const step of this.steps) b = step(b);
      this.result = b;
    }
    dest.set(this.result.subarray(offset, offset + dest.length));
    if (offset + dest.length === this.size) this.result = undefined;
  }

  close(): Promise<void> {
    this.result = undefined;
    return Promise.resolve();
  }
}
