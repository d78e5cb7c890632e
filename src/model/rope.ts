import type { ModelConfig } from "./config.ts";
import { cosf, sinf } from "./libm.ts";

/**
 * The (cos, sin) table for rotary embeddings: (maxPos, ropeDim/2) pairs,
 * computed once at load so no kernel evaluates a transcendental per token.
 *
 * Angles follow the reference each model came from, so f32 results match it:
 * - "ggml" (GGUF, llama.cpp): as ggml_rope_cache_init: theta starts at pos and is
 *   multiplied by base^(-2/d) in f32 once per pair (divided by the pair's
 *   frequency factor where the file has them), and cos / sin are the C
 *   library's cosf / sinf (glibc's algorithm, src/model/libm.ts), so the table
 *   is llama.cpp's to the bit;
 * - "llama2c": freq_i = 1 / base^(2i/d) in f32, then pos * freq_i (run.c).
 * Llama 3 frequency scaling divides the low frequencies by `factor` and blends the band between.
 */
export function ropeTable(
  c: ModelConfig,
  maxPos: number,
  style: "ggml" | "llama2c" = "ggml",
  /** Per-pair divisors of the frequency (llama.cpp's rope_freqs.weight: Llama 3 scaling baked into the file). */
  freqFactors?: Float32Array,
  /** First position: the table returned holds rows [from, maxPos); each row depends on its position only. */
  from = 0,
): Float32Array {
  const half = c.ropeDim / 2;
  const table = new Float32Array((maxPos - from) * half * 2);
  const f = Math.fround;
  if (style === "ggml" && !c.ropeScaling) {
    const thetaScale = f(Math.pow(c.ropeTheta, f(-2 / c.ropeDim)));
    for (let p = from; p < maxPos; p++) {
      let theta = f(p);
      const row = (p - from) * half;
      for (let i = 0; i < half; i++) {
        const t = freqFactors ? f(theta / freqFactors[i]) : theta;
        table[(row + i) * 2] = cosf(t);
        table[(row + i) * 2 + 1] = sinf(t);
        theta = f(theta * thetaScale);
      }
    }
    return table;
  }
  const freqs = new Float64Array(half);
  if (style === "llama2c") {
    for (let i = 0; i < half; i++) freqs[i] = f(1 / f(Math.pow(c.ropeTheta, f((2 * i) / c.ropeDim))));
  } else {
    const scale = f(Math.pow(c.ropeTheta, -2 / c.ropeDim));
    let s = 1;
    for (let i = 0; i < half; i++) {
      freqs[i] = s;
      s = f(s * scale);
    }
  }
  if (c.ropeScaling) applyLlama3Scaling(freqs, c.ropeScaling);
  if (freqFactors) { for (let i = 0; i < half; i++) freqs[i] = Math.fround(freqs[i] / freqFactors[i]); }
  for (let p = from; p < maxPos; p++) {
    const row = (p - from) * half;
    for (let i = 0; i < half; i++) {
      const theta = f(p * freqs[i]);
      table[(row + i) * 2] = Math.cos(theta);
      table[(row + i) * 2 + 1] = Math.sin(theta);
    }
  }
  return table;
}

function applyLlama3Scaling(freqs: Float64Array, s: NonNullable<ModelConfig["ropeScaling"]>): void {
  const lowWavelen = s.originalContext / s.lowFreqFactor;
  const highWavelen = s.originalContext / s.highFreqFactor;
  for (let i = 0; i < freqs.length; i++) {
    const wavelen = (2 * Math.PI) / freqs[i];
    if (wavelen < highWavelen) continue;
    if (wavelen > lowWavelen) {
      freqs[i] = Math.fround(freqs[i] / s.factor);
      continue;
    }
    const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    freqs[i] = Math.fround((1 - smooth) * (freqs[i] / s.factor) + smooth * freqs[i]);
  }
}
