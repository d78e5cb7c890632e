/**
 * Hugging Face checkpoints (config.json + safetensors) as kvasm model files:
 * config.json becomes the GGUF metadata keys llama.cpp would write
 * (`general.architecture`, `{arch}.embedding_length`, ...), and every tensor
 * gets its llama.cpp GGUF name, so the architecture files read one vocabulary
 * whatever the format.
 *
 * Two Hugging Face layouts differ from llama.cpp's, and are rewritten while
 * the bytes stream from the file (a derived ByteSource; the arena receives
 * llama.cpp's layout directly, nothing is copied inside it):
 * - GPT-2's Conv1D stores weights as [in, out]; ggml rows are outputs, so
 *   they are transposed (llama.cpp's converter does the same).
 * - GPT-NeoX's and BLOOM's fused query_key_value is per head: rows [head][q|k|v][headDim].
 *   It is regrouped to [q|k|v][head][headDim] (again as llama.cpp's converter
 *   does), so Q, K and V are then contiguous row ranges, split by views like
 *   GPT-2's c_attn and Phi-3's qkv_proj (src/models/blocks.ts rowView).
 * 1-D tensors (norms, biases) stored as F16/BF16 are widened to F32, which the
 * kernels read directly.
 */
import { FormatError, UnsupportedError } from "../errors.ts";
import { GGMLType, type GGMLTypeId } from "../formats/ggml-types.ts";
import type { MetadataValue, ModelFile, TensorInfo } from "../formats/types.ts";
import type { ByteSource } from "../io/source.ts";
import { bf16ToF32, f16ToF32 } from "../quant/half.ts";

export type HFConfig = Record<string, unknown>;

/** A tensor mapped from a Hugging Face name; `source` set when its bytes are derived (transposed, regrouped, widened). */
export interface HFTensorInfo extends TensorInfo {
  hfName: string;
  source?: ByteSource;
}

type Transform = "conv1d" | "neox_qkv";

/** [Hugging Face name pattern, GGUF name template, layout rewrite]. */
type NameRule = [RegExp, string, Transform?];

const LLAMA_NAMES: NameRule[] = [
  [/^model\.embed_tokens\.weight$/, "token_embd.weight"],
  [/^model\.norm\.weight$/, "output_norm.weight"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^model\.layers\.(\d+)\.input_layernorm\.weight$/, "blk.$1.attn_norm.weight"],
  [/^model\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(weight|bias)$/, "blk.$1.attn_$2.$3"],
  [/^model\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)$/, "blk.$1.attn_qkv.$2"],
  [/^model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^model\.layers\.(\d+)\.post_attention_layernorm\.weight$/, "blk.$1.ffn_norm.weight"],
  [/^model\.layers\.(\d+)\.mlp\.gate_proj\.weight$/, "blk.$1.ffn_gate.weight"],
  [/^model\.layers\.(\d+)\.mlp\.(?:up|gate_up)_proj\.weight$/, "blk.$1.ffn_up.weight"],
  [/^model\.layers\.(\d+)\.mlp\.down_proj\.weight$/, "blk.$1.ffn_down.weight"],
];

// OpenAI's own gpt2 checkpoints have no "transformer." prefix; transformers' do
const GPT2_NAMES: NameRule[] = [
  [/^(?:transformer\.)?wte\.weight$/, "token_embd.weight"],
  [/^(?:transformer\.)?wpe\.weight$/, "position_embd.weight"],
  [/^(?:transformer\.)?ln_f\.(weight|bias)$/, "output_norm.$1"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^(?:transformer\.)?h\.(\d+)\.ln_1\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_attn\.weight$/, "blk.$1.attn_qkv.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_attn\.bias$/, "blk.$1.attn_qkv.bias"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_proj\.weight$/, "blk.$1.attn_output.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.attn\.c_proj\.bias$/, "blk.$1.attn_output.bias"],
  [/^(?:transformer\.)?h\.(\d+)\.ln_2\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_fc\.weight$/, "blk.$1.ffn_up.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_fc\.bias$/, "blk.$1.ffn_up.bias"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_proj\.weight$/, "blk.$1.ffn_down.weight", "conv1d"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.c_proj\.bias$/, "blk.$1.ffn_down.bias"],
];

const NEOX_NAMES: NameRule[] = [
  [/^gpt_neox\.embed_in\.weight$/, "token_embd.weight"],
  [/^gpt_neox\.final_layer_norm\.(weight|bias)$/, "output_norm.$1"],
  [/^embed_out\.weight$/, "output.weight"],
  [/^gpt_neox\.layers\.(\d+)\.input_layernorm\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^gpt_neox\.layers\.(\d+)\.attention\.query_key_value\.(weight|bias)$/, "blk.$1.attn_qkv.$2", "neox_qkv"],
  [/^gpt_neox\.layers\.(\d+)\.attention\.dense\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^gpt_neox\.layers\.(\d+)\.post_attention_layernorm\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^gpt_neox\.layers\.(\d+)\.mlp\.dense_h_to_4h\.(weight|bias)$/, "blk.$1.ffn_up.$2"],
  [/^gpt_neox\.layers\.(\d+)\.mlp\.dense_4h_to_h\.(weight|bias)$/, "blk.$1.ffn_down.$2"],
];

// BLOOM: bigscience's own checkpoints have no "transformer." prefix; transformers' do. Its QKV is per head, as NeoX's.
const BLOOM_NAMES: NameRule[] = [
  [/^(?:transformer\.)?word_embeddings\.weight$/, "token_embd.weight"],
  [/^(?:transformer\.)?word_embeddings_layernorm\.(weight|bias)$/, "token_embd_norm.$1"],
  [/^(?:transformer\.)?ln_f\.(weight|bias)$/, "output_norm.$1"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^(?:transformer\.)?h\.(\d+)\.input_layernorm\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.self_attention\.query_key_value\.(weight|bias)$/, "blk.$1.attn_qkv.$2", "neox_qkv"],
  [/^(?:transformer\.)?h\.(\d+)\.self_attention\.dense\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.post_attention_layernorm\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.dense_h_to_4h\.(weight|bias)$/, "blk.$1.ffn_up.$2"],
  [/^(?:transformer\.)?h\.(\d+)\.mlp\.dense_4h_to_h\.(weight|bias)$/, "blk.$1.ffn_down.$2"],
];

// MPT: Wqkv is [q|k|v] already; with no_bias there are no bias tensors to map
const MPT_NAMES: NameRule[] = [
  [/^transformer\.wte\.weight$/, "token_embd.weight"],
  [/^transformer\.norm_f\.(weight|bias)$/, "output_norm.$1"],
  [/^lm_head\.weight$/, "output.weight"],
  [/^transformer\.blocks\.(\d+)\.norm_1\.(weight|bias)$/, "blk.$1.attn_norm.$2"],
  [/^transformer\.blocks\.(\d+)\.attn\.Wqkv\.(weight|bias)$/, "blk.$1.attn_qkv.$2"],
  [/^transformer\.blocks\.(\d+)\.attn\.out_proj\.(weight|bias)$/, "blk.$1.attn_output.$2"],
  [/^transformer\.blocks\.(\d+)\.norm_2\.(weight|bias)$/, "blk.$1.ffn_norm.$2"],
  [/^transformer\.blocks\.(\d+)\.ffn\.up_proj\.(weight|bias)$/, "blk.$1.ffn_up.$2"],
  [/^transformer\.blocks\.(\d+)\.ffn\.down_proj\.(weight|bias)$/, "blk.$1.ffn_down.$2"],
];

/** One Hugging Face model_type: the GGUF architecture it becomes, its metadata and its names. */
interface HFArchitecture {
  gguf: string;
  names: NameRule[];
  metadata(c: ConfigReader): Record<string, MetadataValue>;
}

const HF_ARCHITECTURES: Record<string, HFArchitecture> = {
  llama: { gguf: "llama", names: LLAMA_NAMES, metadata: (c) => llamaKeys(c, "llama") },
  // llama.cpp converts Mistral to "llama"; the window rides along as llama.attention.sliding_window
  mistral: { gguf: "llama", names: LLAMA_NAMES, metadata: (c) => llamaKeys(c, "llama") },
  qwen2: { gguf: "qwen2", names: LLAMA_NAMES, metadata: (c) => llamaKeys(c, "qwen2") },
  phi3: { gguf: "phi3", names: LLAMA_NAMES, metadata: (c) => llamaKeys(c, "phi3") },
  gpt2: { gguf: "gpt2", names: GPT2_NAMES, metadata: gpt2Keys },
  gpt_neox: { gguf: "gptneox", names: NEOX_NAMES, metadata: neoxKeys },
  bloom: { gguf: "bloom", names: BLOOM_NAMES, metadata: bloomKeys },
  mpt: { gguf: "mpt", names: MPT_NAMES, metadata: mptKeys },
};

/** Typed reads of config.json, each failure a FormatError naming the key. */
class ConfigReader {
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

function headDimOf(c: ConfigReader, dim: number, nHeads: number): number {
  if (c.has("head_dim")) return c.count("head_dim");
  if (dim % nHeads !== 0) throw new FormatError(c.name, `num_attention_heads ${nHeads} does not divide hidden_size ${dim}`);
  return dim / nHeads;
}

function ropeDimOf(c: ConfigReader, headDim: number): number {
  const d = Math.floor(headDim * c.partialRotary());
  if (d <= 0 || d % 2 !== 0) {
    throw new FormatError(c.name, `rotary dimensions ${d} (head_dim ${headDim} x partial rotary factor) must be even and positive`);
  }
  return d;
}

function llamaKeys(c: ConfigReader, a: string): Record<string, MetadataValue> {
  const dim = c.count("hidden_size"), nHeads = c.count("num_attention_heads");
  const headDim = headDimOf(c, dim, nHeads);
  const act = c.json.hidden_act ?? "silu";
  if (act !== "silu") throw new UnsupportedError(`${c.name}: hidden_act "${String(act)}" is not supported for ${a} (kvasm runs silu)`);
  if (c.json.use_sliding_window === true) {
    throw new UnsupportedError(
      `${c.name}: use_sliding_window with max_window_layers (windowed attention in some layers only) is not supported`,
    );
  }
  const keys: Record<string, MetadataValue> = {
    [`${a}.context_length`]: c.count("max_position_embeddings"),
    [`${a}.embedding_length`]: dim,
    [`${a}.feed_forward_length`]: c.count("intermediate_size"),
    [`${a}.block_count`]: c.count("num_hidden_layers"),
    [`${a}.attention.head_count`]: nHeads,
    [`${a}.attention.head_count_kv`]: c.count("num_key_value_heads", nHeads),
    [`${a}.attention.key_length`]: headDim,
    [`${a}.attention.value_length`]: headDim,
    [`${a}.rope.dimension_count`]: ropeDimOf(c, headDim),
    [`${a}.rope.freq_base`]: c.ropeTheta(),
    [`${a}.attention.layer_norm_rms_epsilon`]: c.number("rms_norm_eps", 1e-6),
    [`${a}.vocab_size`]: c.count("vocab_size"),
  };
  const window = c.json.sliding_window;
  if (typeof window === "number" && window > 0 && c.json.use_sliding_window !== false) keys[`${a}.attention.sliding_window`] = window;
  const rope = c.rope();
  const type = rope.rope_type ?? rope.type;
  if (type === "llama3") {
    const num = (k: string) => {
      const v = rope[k];
      if (typeof v !== "number") throw new FormatError(c.name, `llama3 rope scaling needs a number "${k}", found ${JSON.stringify(v)}`);
      return v;
    };
    keys[`${a}.rope.scaling.type`] = "llama3";
    keys[`${a}.rope.scaling.factor`] = num("factor");
    keys[`${a}.rope.scaling.low_freq_factor`] = num("low_freq_factor");
    keys[`${a}.rope.scaling.high_freq_factor`] = num("high_freq_factor");
    keys[`${a}.rope.scaling.original_context_length`] = num("original_max_position_embeddings");
  } else if (type !== undefined && type !== "default") {
    throw new UnsupportedError(`${c.name}: rope scaling "${String(type)}" is not supported (kvasm runs default and llama3)`);
  }
  return keys;
}

function gpt2Keys(c: ConfigReader): Record<string, MetadataValue> {
  const dim = c.count(["n_embd", "hidden_size"]);
  return {
    "gpt2.context_length": c.count(["n_positions", "max_position_embeddings"]),
    "gpt2.embedding_length": dim,
    "gpt2.feed_forward_length": c.count("n_inner", 4 * dim),
    "gpt2.block_count": c.count(["n_layer", "num_hidden_layers"]),
    "gpt2.attention.head_count": c.count(["n_head", "num_attention_heads"]),
    "gpt2.attention.layer_norm_epsilon": c.number("layer_norm_epsilon", 1e-5),
    "gpt2.vocab_size": c.count("vocab_size"),
    "gpt2.hidden_act": String(c.json.activation_function ?? "gelu_new"),
  };
}

function neoxKeys(c: ConfigReader): Record<string, MetadataValue> {
  const dim = c.count("hidden_size"), nHeads = c.count("num_attention_heads");
  return {
    "gptneox.context_length": c.count("max_position_embeddings"),
    "gptneox.embedding_length": dim,
    "gptneox.feed_forward_length": c.count("intermediate_size"),
    "gptneox.block_count": c.count("num_hidden_layers"),
    "gptneox.attention.head_count": nHeads,
    "gptneox.rope.dimension_count": ropeDimOf(c, headDimOf(c, dim, nHeads)),
    "gptneox.rope.freq_base": c.ropeTheta(),
    "gptneox.attention.layer_norm_epsilon": c.number("layer_norm_eps", 1e-5),
    "gptneox.use_parallel_residual": c.json.use_parallel_residual !== false,
    "gptneox.vocab_size": c.count("vocab_size"),
    "gptneox.hidden_act": String(c.json.hidden_act ?? "gelu"),
  };
}

/**
 * BLOOM's config.json names no context length (ALiBi has no position table): `seq_length` where a
 * checkpoint gives one, else the 2048 positions BLOOM was trained on. The slopes' maximum bias is 8,
 * fixed by BLOOM (and by llama.cpp for "bloom"), so no key is written for it.
 */
function bloomKeys(c: ConfigReader): Record<string, MetadataValue> {
  const dim = c.count(["hidden_size", "n_embed"]);
  if (c.json.apply_residual_connection_post_layernorm === true) {
    throw new UnsupportedError(`${c.name}: apply_residual_connection_post_layernorm (residual taken after the LayerNorm) is not supported`);
  }
  return {
    "bloom.context_length": c.count("seq_length", 2048),
    "bloom.embedding_length": dim,
    "bloom.feed_forward_length": 4 * dim,
    "bloom.block_count": c.count(["n_layer", "num_hidden_layers"]),
    "bloom.attention.head_count": c.count(["n_head", "num_attention_heads"]),
    "bloom.attention.layer_norm_epsilon": c.number("layer_norm_epsilon", 1e-5),
    "bloom.vocab_size": c.count("vocab_size"),
    "bloom.hidden_act": "gelu_new", // bloom_gelu_forward: the tanh approximation
  };
}

/** MPT with ALiBi (attn_config.alibi); the options kvasm does not run are refused by name. */
function mptKeys(c: ConfigReader): Record<string, MetadataValue> {
  const raw = c.json.attn_config ?? {};
  if (typeof raw !== "object" || raw === null) throw new FormatError(c.name, `"attn_config" must be an object`);
  const attn = new ConfigReader(raw as HFConfig, `${c.name} (attn_config)`);
  if (attn.json.alibi !== true) throw new UnsupportedError(`${c.name}: MPT without ALiBi (learned position embeddings) is not supported`);
  // options that change the math: clipped Q/K/V, a custom softmax scale, LayerNorm on Q and K, prefix-LM masking
  for (const key of ["clip_qkv", "softmax_scale", "qk_ln", "prefix_lm"]) {
    const v = attn.json[key];
    if (v !== undefined && v !== null && v !== false) {
      throw new UnsupportedError(`${c.name}: MPT with attn_config.${key} = ${JSON.stringify(v)} is not supported`);
    }
  }
  const type = attn.json.attn_type ?? "multihead_attention";
  if (type !== "multihead_attention") {
    throw new UnsupportedError(`${c.name}: MPT attn_type "${String(type)}" is not supported (kvasm runs multihead_attention)`);
  }
  if (c.has("logit_scale")) throw new UnsupportedError(`${c.name}: MPT with logit_scale is not supported`);
  const dim = c.count("d_model");
  const ffn = c.json.ffn_config as Record<string, unknown> | undefined;
  const hidden = typeof ffn?.ffn_hidden_size === "number" ? ffn.ffn_hidden_size : c.count("expansion_ratio", 4) * dim;
  if (typeof ffn?.ffn_act_fn === "object" && ffn.ffn_act_fn !== null && (ffn.ffn_act_fn as { name?: unknown }).name !== "gelu") {
    throw new UnsupportedError(`${c.name}: MPT ffn activation ${JSON.stringify(ffn.ffn_act_fn)} is not supported (kvasm runs gelu)`);
  }
  return {
    "mpt.context_length": c.count("max_seq_len"),
    "mpt.embedding_length": dim,
    "mpt.feed_forward_length": hidden,
    "mpt.block_count": c.count("n_layers"),
    "mpt.attention.head_count": c.count("n_heads"),
    "mpt.attention.layer_norm_epsilon": c.number("layer_norm_epsilon", 1e-5),
    "mpt.attention.max_alibi_bias": attn.number("alibi_bias_max", 8),
    "mpt.vocab_size": c.count("vocab_size"),
    "mpt.hidden_act": "gelu", // nn.GELU(approximate="none")
  };
}

/** The model_types kvasm maps (config.json "model_type"). */
export const HF_MODEL_TYPES = Object.keys(HF_ARCHITECTURES);

/**
 * A safetensors file (or sharded set) read with its config.json, as a ModelFile with
 * llama.cpp's metadata keys and tensor names. Tensors no rule names (rotary caches,
 * attention masks saved as buffers) are left out.
 */
export function hfModelFile(file: ModelFile, config: HFConfig, configName: string): ModelFile {
  const modelType = config.model_type;
  if (typeof modelType !== "string") throw new FormatError(configName, `"model_type" is missing or not a string`);
  const arch = HF_ARCHITECTURES[modelType];
  if (!arch) {
    throw new UnsupportedError(`${configName}: model_type "${modelType}" is not supported (kvasm runs: ${HF_MODEL_TYPES.join(", ")})`);
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
export async function readHFConfig(path: string): Promise<{ config: HFConfig; name: string } | undefined> {
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

function derive(file: ModelFile, info: TensorInfo, name: string, transform: Transform | undefined, nHeads: number): HFTensorInfo {
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
export function regroupNeoxQKV(src: Uint8Array, nHeads: number, headDim: number, rowBytes: number): Uint8Array {
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
