// src/model/ holds what every architecture shares: the configuration's common shape (config.ts), the GGUF
// metadata and config.json readers, the Hugging Face mapping's machinery, the weight set, the RoPE and ALiBi
// tables, the tokenizer choice, the loader (load.ts) and the Model that runs a loaded architecture (model.ts).
// What differs between architectures lives in src/architectures/.

/**
 * ALiBi's per-head slopes ("Attention with Linear Biases", Press et al.):
 * head h adds slope_h * (key position - query position) to its scores, so
 * attention fades with distance and no positional embedding is needed.
 *
 * With n2 the largest power of two <= nHeads, m0 = 2^(-maxBias / n2) and
 * m1 = 2^(-maxBias / 2 / n2): heads h < n2 get m0^(h + 1), the rest the odd
 * powers m1^(2 (h - n2) + 1), the interleaved second series. This is
 * llama.cpp's formula (ggml_soft_max_ext / flash_attn_ext, max_bias 8), and
 * it equals BLOOM's build_alibi_tensor (closest power of two, then the odd
 * powers of the next series) and MPT's build_mpt_alibi_tensor (the series of
 * the next power of two, odd then even entries: the same numbers) for any head count.
 */
export function alibiSlopes(nHeads: number, maxBias: number): Float32Array {
  let n2 = 1;
  while (n2 * 2 <= nHeads) n2 *= 2;
  const m0 = Math.fround(Math.pow(2, Math.fround(-maxBias / n2)));
  const m1 = Math.fround(Math.pow(2, Math.fround(-(maxBias / 2) / n2)));
  const out = new Float32Array(nHeads);
  for (let h = 0; h < nHeads; h++) out[h] = h < n2 ? Math.pow(m0, h + 1) : Math.pow(m1, 2 * (h - n2) + 1);
  return out;
}
