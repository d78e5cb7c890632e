/**
 * The model kvasm loads when given none: stories260K from llama2.c (MIT; see
 * models/LICENSE), 379 KB of Q8_0 GGUF shipped in the package. Found beside
 * the code: from source (a checkout, or JSR, where the URL is an https: one
 * that loadModel streams) it is ../../models/ from here; the bundles swap this
 * module for one pointing from dist/ to ../models/, and the compiled
 * executable for one that carries the bytes (scripts/build-bundle.mjs).
 */
export const DEFAULT_MODEL_NAME = "stories260K-q8_0.gguf";

export function defaultModel(): URL | Uint8Array {
  return new URL(`../../models/${DEFAULT_MODEL_NAME}`, import.meta.url);
}
