/**
 * The loader: opens a model file (GGUF, llama2.c, safetensors with its config.json), finds its
 * architecture, checks the tensors against the architecture's table, picks the backend, lays out
 * the one arena (ArenaPlan: weights, KV cache, run state), streams the weights in and hands the
 * pieces to a Model.
 */
import { type Backend, KV_TYPES, type KVType } from "../backends/backend.ts";
import { BACKEND_NAMES, type BackendName, backendNamed, selectBackend } from "../backends/select.ts";
import { openModelFile } from "../formats/open.ts";
import type { HeaderLimits, ModelFile, TensorInfo } from "../formats/types.ts";
import { type ModelInput, resolveModelInput } from "../io/model-input.ts";
import { StreamSource } from "../edge/stream-source.ts";
import { ArenaPlan, MAX_ARENA_BYTES, type Region, RESERVED } from "../memory/arena.ts";
import { checkMemoryBudget } from "../memory/budget.ts";
import { type MemoryPlan, planMemories } from "../memory/memory-plan.ts";
import { MultiMemoryBackend } from "../backends/multi-memory.ts";
import { WasmBackend } from "../backends/wasm.ts";
import { type KVCacheOptions, PagedKVCache } from "../kv/paged-cache.ts";
import { deriveConfig, type DerivedConfig } from "./config.ts";
import { alibiSlopes } from "./alibi.ts";
import { WeightSet } from "./weights.ts";
import { planRunState, type RunShape, runState } from "../architectures/architecture.ts";
import { architectureOf } from "../architectures/registry.ts";
import { checkTensors } from "../architectures/blocks.ts";
import {
  checkOptionNames,
  describeValue,
  FormatError,
  nonNegativeInteger,
  optionalBoolean,
  optionalFunction,
  optionNames,
  ParamError,
  positiveInteger,
  UnsupportedError,
} from "../errors.ts";
import { loadTokenizerFor } from "./tokenizer-for.ts";
import { threadCount } from "../threads/spawn.ts";
import { withHFConfig } from "./hf-config.ts";
import { checkLayerCount, resolveHeaderLimits } from "./file-bounds.ts";
import { Model } from "./model.ts";

export interface LoadOptions {
  /**
   * Tokenizer file (llama2.c tokenizer.bin, SentencePiece .model, tokenizer.json) as a path, a file: URL (string or
   * URL) or its bytes; GGUF files carry their own.
   */
  tokenizer?: string | URL | Uint8Array;
  /** Positions per sequence; default: the model's context length. */
  contextLength?: number;
  /** Sequences that can hold KV pages at once (the engine's batch); default 1. */
  maxSequences?: number;
  /**
   * Token rows per forward pass: prefill chunk and batched-decode width; default 128, or 512 with
   * ggmlOrder (llama.cpp's ubatch: its kernels' order depends on a batch's row count, so a prompt must be
   * cut where llama.cpp cuts it).
   */
  maxBatchRows?: number;
  /** Positions per KV page; default 16. */
  pageSize?: number;
  /** Total KV pages; default: enough for every sequence at full context. */
  kvPages?: number;
  /**
   * Element type of the KV cache: "f32" (default); "f16" (half the bytes; llama.cpp's default cache type: with ggmlOrder
   * attention is computed as llama.cpp's CPU flash attention does, so logits match llama.cpp's; without it, as the f32
   * cache computes it, on the halves the cache holds); "q8_0" (8-bit blocks with a scale,
   * about a quarter of the bytes); or "u8_asym" (unsigned 8-bit blocks with a scale and a zero point, the seed's
   * asymmetric quantization: x ~ scale * (q - zero_point), a bit over a quarter of the bytes).
   */
  kvCacheType?: KVType;
  /**
   * Attention variants. `topK`: sparse top-k attention, for long contexts: each query row (prompt rows too) keeps
   * its topK highest scores over the cached positions and takes the softmax over those only; the V rows of the
   * others are never read. 0 or absent: dense attention. WASM backend, f32 / q8_0 / u8_asym caches.
   */
  attention?: { topK?: number };
  /** Overrides the model's sliding attention window (positions attended per query); 0 = full causal attention. */
  slidingWindow?: number;
  /** Use the relaxed-SIMD kernels; default: when the runtime validates them. */
  relaxedSimd?: boolean;
  /**
   * WASM backend: matmuls that sum floats exactly as llama.cpp's x86 CPU backend does for each weight type
   * (its vec_dot lanes and fused multiply-adds, tinyBLAS for several rows, the repacked 8x8 gemv/gemm of
   * Q4_0/Q4_K/Q2_K) instead of kvasm's fastest order. With kvCacheType "f16" every op then equals
   * llama.cpp's bit for bit, logits included. Slower (F32 most; see the README). Default: false.
   */
  ggmlOrder?: boolean;
  /**
   * A backend instance, or "wasm" (default: on `threads` threads), "webgpu", or "auto" (WebGPU when an adapter exists
   * and the model fits it).
   */
  backend?: Backend | BackendName;
  /** Told why "auto" did not pick WebGPU. */
  onNotice?: (message: string) => void;
  /**
   * Threads for the default WASM backend, the calling thread included; default: the machine's cores (1 where Workers
   * or shared memory are missing).
   */
  threads?: number;
  /** Told how many of the weights' bytes are in memory (for a URL: downloaded), as they arrive. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Bounds on header metadata beyond what the file's size allows (entries, array lengths, string bytes); see HeaderLimits. */
  limits?: Partial<HeaderLimits>;
  /** Byte length of a ReadableStream model, so it streams into the arena; without it the stream is read into memory first. */
  streamSize?: number;
  /**
   * Bytes the model may take at most (weights, KV cache, scratch); default: the machine's memory. A model that
   * needs more fails with an OutOfMemoryError naming both figures before anything is reserved.
   */
  memoryLimit?: number;
  /**
   * WASM backend: WebAssembly memories to spread the model over (layers in contiguous groups, each memory with
   * its own kernel instance and Workers); default: as few as hold it, so 1 below 4 GiB. Results are
   * bit-identical for any count; more than needed is for tests.
   */
  memories?: number;
}

/** LoadOptions' names: loadModel refuses any other key (`thread: 2` loaded on every core unseen). */
export const LOAD_OPTION_NAMES = optionNames<LoadOptions>()([
  "tokenizer",
  "contextLength",
  "maxSequences",
  "maxBatchRows",
  "pageSize",
  "kvPages",
  "kvCacheType",
  "attention",
  "slidingWindow",
  "relaxedSimd",
  "ggmlOrder",
  "backend",
  "onNotice",
  "threads",
  "onProgress",
  "limits",
  "streamSize",
  "memoryLimit",
  "memories",
]);

/** LoadOptions.attention's names. */
const ATTENTION_OPTION_NAMES = optionNames<NonNullable<LoadOptions["attention"]>>()(["topK"]);

/**
 * Loads a model (GGUF, llama2.c .bin, safetensors) into one arena and prepares it for generation. The model is a
 * path, a `file:` / `http:` / `https:` URL (streamed into the arena; `onProgress` reports the download), bytes, a
 * ReadableStream or Response, or a ByteSource; with none, the small story model bundled with kvasm.
 */
export async function loadModel(input?: ModelInput, opts: LoadOptions = {}): Promise<Model> {
  // the names, then the flags, before the file is opened or fetched (buildModel reads them as checked here)
  checkOptionNames("loadModel", opts, LOAD_OPTION_NAMES);
  checkOptionNames("attention", opts.attention, ATTENTION_OPTION_NAMES);
  optionalBoolean("relaxedSimd", opts.relaxedSimd);
  optionalBoolean("ggmlOrder", opts.ggmlOrder);
  // callbacks, the backend and the tokenizer by type: each failed untyped, some only after the whole download
  optionalFunction("onNotice", opts.onNotice);
  optionalFunction("onProgress", opts.onProgress);
  checkBackendOption(opts.backend);
  if (opts.threads !== undefined) threadCount("threads", opts.threads);
  if (opts.tokenizer instanceof URL) opts = { ...opts, tokenizer: opts.tokenizer.href };
  if (opts.tokenizer !== undefined && typeof opts.tokenizer !== "string" && !(opts.tokenizer instanceof Uint8Array)) {
    throw new ParamError(
      "tokenizer",
      `must be a file path, a file: URL or the file's bytes (a Uint8Array), got ${describeValue(opts.tokenizer)}`,
    );
  }
  if (typeof opts.tokenizer === "string" && /^[a-z][a-z0-9+.-]+:\/\//i.test(opts.tokenizer)) {
    // a tokenizer is read from the file system only: a file: URL is a path, as for the model; any other URL used to
    // fail after the model's whole download, as an ENOENT
    if (!/^file:\/\//i.test(opts.tokenizer)) {
      throw new ParamError(
        "tokenizer",
        `takes a file path, a file: URL or the file's bytes, not a URL (${opts.tokenizer}): download it first, or pass ` +
          "new Uint8Array(await (await fetch(url)).arrayBuffer())",
      );
    }
    const { fileURLToPath } = await import("node:url");
    opts = { ...opts, tokenizer: fileURLToPath(opts.tokenizer) };
  }
  const resolved = await resolveModelInput(input, opts.streamSize);
  let opened: ModelFile;
  try {
    opened = await openModelFile(resolved, resolveHeaderLimits(opts.limits));
  } catch (e) {
    if (typeof resolved === "object" && !(resolved instanceof Uint8Array)) await resolved.close();
    throw e;
  }
  try {
    // a Hugging Face directory: config.json names the architecture and maps the tensor names
    const file = await withHFConfig(opened, resolved);
    const model = await buildModel(file, opts);
    // a stream is read front to back once: what it kept for re-reads is not needed after the load
    if (opened.source instanceof StreamSource) opened.source.release();
    return model;
  } catch (e) {
    await opened.source.close();
    throw e;
  }
}

/**
 * What a Backend object must have (backend.ts; the optional methods aside): `{}` or another object failed at the
 * first call, "backend.supportsWeight is not a function".
 */
const BACKEND_METHODS = [
  "init",
  "alloc",
  "write",
  "upload",
  "read",
  "supportsWeight",
  "matmulScratchBytes",
  "setMatmulScratch",
  "embed",
  "matmul",
  "rmsnorm",
  "rope",
  "add",
  "swiglu",
  "kvStore",
  "attention",
  "layernorm",
  "addBias",
  "gelu",
  "geluErf",
  "copy",
  "flush",
  "close",
] as const satisfies ReadonlyArray<keyof Backend>;

/** LoadOptions.backend: one of the names (backendNamed checks which), or an object with every Backend method. */
function checkBackendOption(backend: unknown): void {
  if (backend === undefined) return;
  if (typeof backend === "string") {
    if (!BACKEND_NAMES.includes(backend as BackendName)) {
      throw new ParamError("backend", `must be one of ${BACKEND_NAMES.join(", ")}, got ${JSON.stringify(backend)}`);
    }
    return;
  }
  if (typeof backend !== "object" || backend === null || Array.isArray(backend)) {
    throw new ParamError("backend", `must be one of ${BACKEND_NAMES.join(", ")} or a Backend object, got ${describeValue(backend)}`);
  }
  const missing = BACKEND_METHODS.filter((m) => typeof (backend as Record<string, unknown>)[m] !== "function");
  if (missing.length > 0) {
    throw new ParamError(
      "backend",
      `is not a Backend: it lacks ${missing.slice(0, 4).join(", ")}${missing.length > 4 ? ` and ${missing.length - 4} more` : ""} ` +
        `(pass one of ${BACKEND_NAMES.join(", ")}, or an instance such as new WasmBackend())`,
    );
  }
}

async function buildModel(file: ModelFile, opts: LoadOptions): Promise<Model> {
  const arch = architectureOf(file);
  const config = deriveConfig(arch.config(file));
  checkLayerCount(config, file); // before any table per layer is built
  // loadModel turned a URL object into its string
  const tokenizer = await loadTokenizerFor(file, opts.tokenizer as string | Uint8Array | undefined);
  if (opts.tokenizer !== undefined && tokenizer.vocabSize > config.vocabSize) {
    // a tokenizer given by hand that can spell ids the model has no row for (Llama 2's .model beside stories260K):
    // a prompt failed later on an id "outside the vocabulary", or not at all where every id it used was small
    throw new FormatError(
      typeof opts.tokenizer === "string" ? opts.tokenizer : "<tokenizer bytes>",
      `the tokenizer holds ${tokenizer.vocabSize} tokens, more than the model's vocabulary of ${config.vocabSize}: a tokenizer for another model?`,
    );
  }
  if (tokenizer.vocabSize > 0 && tokenizer.vocabSize < config.vocabSize) {
    // the model could pick ids the tokenizer cannot turn into text: a mismatch of files, found now, not mid-generation
    throw new FormatError(
      typeof opts.tokenizer === "string" ? opts.tokenizer : file.source.name,
      `the tokenizer holds ${tokenizer.vocabSize} tokens, fewer than the model's vocabulary of ${config.vocabSize}: a tokenizer for another model?`,
    );
  }
  // every tensor the graph reads, present with the shape the configuration implies, before any backend starts
  const names = checkTensors(file, arch.tensors(config));

  // attention options before any backend starts
  const topK = nonNegativeInteger("attention.topK", opts.attention?.topK ?? 0);
  const slidingWindow = opts.slidingWindow === undefined ? undefined : nonNegativeInteger("slidingWindow", opts.slidingWindow);
  if (topK > 0 && opts.kvCacheType === "f16") {
    throw new UnsupportedError(
      `sparse top-k attention (attention.topK) runs on the f32, q8_0 and u8_asym caches, not f16 (its flash attention never holds all scores)`,
    );
  }
  // the plan's sizes, each an integer >= 1 before anything is laid out (0, fractions, negatives and NaN made NaN-byte
  // plans, untyped RangeErrors, a memory access out of bounds at the first prefill, or a cache that fits no page)
  const ctx = positiveInteger("contextLength", opts.contextLength ?? config.contextLength);
  const maxSeqs = positiveInteger("maxSequences", opts.maxSequences ?? 1);
  const rows = positiveInteger("maxBatchRows", opts.maxBatchRows ?? (opts.ggmlOrder ? 512 : 128));
  const pageSize = positiveInteger("pageSize", opts.pageSize ?? 16);
  const nPages = positiveInteger("kvPages", opts.kvPages ?? maxSeqs * Math.ceil(ctx / pageSize));
  const logitRows = maxSeqs; // a logits row per sequence (maxSeqs >= 1: checked above)
  const kvType = opts.kvCacheType ?? "f32";
  // a row never attends more than ctx positions: k past that is dense attention, and needs no more scratch
  const kept = Math.min(topK, ctx);
  const kvOpts = { pageSize, nPages, maxSeqs, maxPositions: ctx, kvType };
  const layout = (tensors: TensorInfo[], backend: Backend) =>
    planModel(config, tensors, backend, kvOpts, { rows, logitRows, positions: ctx, attentionBands: backend.attentionBands }, kept);
  const all = [...file.tensors.values()];
  const wasm = () => selectBackend({ threads: opts.threads, relaxedSimd: opts.relaxedSimd, ggmlOrder: opts.ggmlOrder });
  let backend = typeof opts.backend === "object" ? opts.backend : await backendNamed(opts.backend ?? "wasm", wasm, {
    tensors: all,
    stateBytes: (probe) => layout(all.filter((t) => probe.supportsWeight(t.type)), probe).stateBytes,
  }, opts.onNotice);

  try {
    // check every tensor's type before reserving memory
    const tensors = WeightSet.select(file, names, backend);
    if (!KV_TYPES.includes(kvType)) {
      throw new ParamError(
        "kvCacheType",
        `must be one of ${KV_TYPES.map((t) => `"${t}"`).join(", ")}, got ${JSON.stringify(kvType)}`,
      );
    }
    if (topK > 0 && backend.name === "webgpu") {
      throw new UnsupportedError("the WebGPU backend has no sparse top-k attention (attention.topK); use the WASM backend");
    }
    if (slidingWindow !== undefined) config.slidingWindow = slidingWindow || undefined;
    if (kvType !== "f32" && !backend.supportsKV?.(kvType)) {
      throw new UnsupportedError(`the ${backend.name} backend has no ${kvType} KV cache`);
    }

    // the layout pass (weights, ALiBi slopes, top-k scratch, KV pages, run state), then one reservation
    const { plan, regions } = layout(tensors, backend);
    const weightBytes = tensors.reduce((n, t) => n + t.byteLength, 0);
    const kvBytes = regions.kv.pages.bytes + regions.kv.pageTables.bytes;
    const parts = { weights: weightBytes, kv: kvBytes, "run state": plan.bytes - weightBytes - kvBytes };
    await checkMemoryBudget(plan.bytes, parts, opts.memoryLimit); // before anything is reserved
    // past one memory's 4 GiB (or when asked), the WASM backend spreads the layers over several memories
    const wasmBackend = backend instanceof WasmBackend;
    if (opts.memories !== undefined && !wasmBackend) throw new ParamError("memories", `applies to the WASM backend, not ${backend.name}`);
    let allocate: ((r: Region) => number) | undefined;
    if (wasmBackend && (opts.memories ?? (plan.bytes + RESERVED <= MAX_ARENA_BYTES ? 1 : undefined)) !== 1) {
      const memories = planMemories({
        tensors: tensors.map((t) => ({ name: t.name, bytes: t.byteLength })),
        nLayers: config.nLayers,
        kvLayerBytes: regions.kv.pages.bytes / config.nLayers,
        sharedBytes: plan.bytes - weightBytes - regions.kv.pages.bytes,
        memories: opts.memories,
      });
      const total = memories.memoryBytes.reduce((a, b) => a + b, 0);
      await checkMemoryBudget(total, { ...parts, "shared copies": total - plan.bytes }, opts.memoryLimit);
      // the backend chosen (or given) runs the first memory; twins with its options run the others
      const first = backend as WasmBackend;
      const multi = new MultiMemoryBackend([first, ...Array.from({ length: memories.memories - 1 }, () => first.twin())], memories);
      backend = multi;
      allocate = multiMemoryPlacement(multi, memories, tensors, regions.weights, regions.kv.pages, {
        nPages,
        pageBytes: PagedKVCache.pageBytes(config, pageSize, kvType),
        layerBytes: PagedKVCache.pageBytes({ ...config, nLayers: 1 }, pageSize, kvType),
      });
    }
    const at = await plan.place(backend, allocate);
    backend.setMatmulScratch(at(regions.matmulScratch), regions.matmulScratch.bytes);

    const weightSet = await WeightSet.upload(backend, file, tensors.map((t, i) => ({ t, ptr: at(regions.weights[i]) })), opts.onProgress);
    const weights = arch.bind(config, weightSet);
    const attention: { alibiSlopes?: number; topK?: number; topKScratch?: number } = {};
    if (regions.alibiSlopes) {
      attention.alibiSlopes = at(regions.alibiSlopes);
      backend.write(attention.alibiSlopes, alibiSlopes(config.nHeads, config.alibiMaxBias!));
    }
    if (regions.topK) Object.assign(attention, { topK: kept, topKScratch: at(regions.topK) });
    const kvAt = { pages: at(regions.kv.pages), pageTables: at(regions.kv.pageTables) };
    const kv = new PagedKVCache(backend, config, { ...kvOpts, ...attention, at: kvAt });
    const state = runState(regions.run, at, { rows, logitRows, positions: ctx });
    const ropeFactors = await ropeFreqFactors(file, config.ropeDim);
    const model = new Model(config, tokenizer, backend, arch, weights, kv, state, ctx, file);
    model.setRope(config.ropeAngles ?? "ggml", ropeFactors);
    model.weightBytes = weightSet.bytes;
    return model;
  } catch (e) {
    // a load that fails after the backend started (bad tensor, arena too small) frees it: workers, GPU buffers, memory
    if (typeof opts.backend !== "object") await backend.close().catch(() => {});
    else if (backend instanceof MultiMemoryBackend) { for (const p of backend.parts.slice(1)) await p.close().catch(() => {}); }
    throw e;
  }
}

/**
 * Where each region of the plan goes in a multi-memory layout: a weight to its layer's memory, the KV pages
 * striped over the memories holding layers, everything else (run state, page tables, slopes) shared.
 */
function multiMemoryPlacement(
  multi: MultiMemoryBackend,
  memories: MemoryPlan,
  tensors: TensorInfo[],
  weights: Region[],
  kvPages: Region,
  kv: { nPages: number; pageBytes: number; layerBytes: number },
): (r: Region) => number {
  const weightOf = new Map(weights.map((r, i) => [r, tensors[i]]));
  return (r) => {
    const t = weightOf.get(r);
    if (t) return multi.allocIn(memories.memoryOf(t.name), r.bytes, r.what, r.align);
    if (r === kvPages) return multi.allocKVPages(kv.nPages, kv.pageBytes, kv.layerBytes);
    return multi.alloc(r.bytes, r.what, r.align);
  };
}

/**
 * The one layout of a model's memory: every weight (in the architecture's order), ALiBi slopes, top-k
 * scratch, KV pages and page tables, the backend's matmul scratch (as large as its widest weight needs),
 * and the run state. `stateBytes` is what is not weights (a GPU's state binding).
 */
function planModel(
  c: DerivedConfig,
  tensors: TensorInfo[],
  backend: Backend,
  kvOpts: KVCacheOptions,
  shape: RunShape,
  topK: number,
) {
  let matmulScratch = 64;
  for (const t of tensors) {
    if (t.shape.length < 2) continue;
    matmulScratch = Math.max(matmulScratch, backend.matmulScratchBytes(t.type, t.shape[0], Math.max(shape.rows, shape.logitRows)));
  }
  const plan = new ArenaPlan();
  const weights = tensors.map((t) => plan.add(`weight ${t.name}`, t.byteLength));
  const weightBytes = plan.bytes;
  const regions = {
    weights,
    alibiSlopes: c.alibiMaxBias ? plan.add("alibi slopes", c.nHeads * 4) : undefined,
    topK: topK > 0 ? plan.add("top-k selection", c.nHeads * topK * 8) : undefined,
    kv: PagedKVCache.plan(plan, c, kvOpts),
    matmulScratch: plan.add("matmul scratch", matmulScratch),
    run: planRunState(plan, c, shape),
  };
  return { plan, regions, stateBytes: plan.bytes - weightBytes };
}

/** llama.cpp's Llama 3 GGUFs carry RoPE frequency scaling as `rope_freqs.weight`: one divisor per rotated pair. */
async function ropeFreqFactors(file: ModelFile, ropeDim: number): Promise<Float32Array | undefined> {
  const t = file.tensors.get("rope_freqs.weight");
  if (!t) return undefined;
  if (t.type !== 0 || t.byteLength !== (ropeDim / 2) * 4) {
    throw new FormatError(
      file.source.name,
      `tensor "rope_freqs.weight" must be ${ropeDim / 2} f32 values, found ${t.byteLength} bytes of type ${t.type}`,
    );
  }
  const bytes = new Uint8Array(t.byteLength);
  await ((t as { source?: ModelFile["source"] }).source ?? file.source).read(t.offset, bytes);
  return new Float32Array(bytes.buffer);
}
