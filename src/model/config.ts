/**
 * The hyper-parameters of a decoder, immutable once a loader has produced it.
 * Derived fields (qDim, kvDim, kvMul) are filled in by `deriveConfig`.
 */
export interface ModelConfig {
  arch: string; // "llama", "qwen2", "mistral", "phi3", "gpt2", "gptneox", "bloom", "mpt"
  dim: number; // residual stream width
  hiddenDim: number; // feed-forward inner width
  nLayers: number;
  nHeads: number; // query heads
  nKvHeads: number; // key/value heads (GQA when < nHeads, MQA when 1)
  headDim: number;
  vocabSize: number;
  contextLength: number; // positions the model was trained for
  ropeTheta: number;
  ropeDim: number; // rotated dimensions per head (headDim unless partial rotary)
  /** "interleaved": pairs (x[2i], x[2i+1]) as in GGUF llama and llama2.c; "halves": (x[i], x[i + d/2]) as in Hugging Face (rotate_half). */
  ropeStyle: "interleaved" | "halves";
  /** How the RoPE angles are computed (src/model/rope.ts): llama.cpp's way (default), or run.c's for llama2.c files. */
  ropeAngles?: "ggml" | "llama2c";
  /** Llama 3 style RoPE frequency scaling, when the model declares it. */
  ropeScaling?: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number };
  normEps: number;
  /** Attention reads only the last `slidingWindow` positions (Mistral); undefined = full causal. */
  slidingWindow?: number;
  /** ALiBi (BLOOM, MPT): scores gain slope_h * (key position - query position), slopes from this maximum bias (src/model/alibi.ts). */
  alibiMaxBias?: number;
}

/** The widths every graph computes from the head counts. */
export interface DerivedFields {
  kvDim: number; // nKvHeads * headDim
  qDim: number; // nHeads * headDim
  kvMul: number; // query heads per KV head
}

/** An architecture's own configuration with the derived widths. */
export type Derived<C extends ModelConfig = ModelConfig> = C & DerivedFields;
export type DerivedConfig = Derived<ModelConfig>;

export function deriveConfig<C extends ModelConfig>(c: C): Derived<C> {
  return { ...c, kvDim: c.nKvHeads * c.headDim, qDim: c.nHeads * c.headDim, kvMul: c.nHeads / c.nKvHeads };
}
