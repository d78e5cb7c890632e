import type { Backend, KVType } from "../backends/backend.ts";
import { ROW_FIELDS, ROW_PAGE_TABLE, ROW_POS, ROW_START } from "../backends/backend.ts";
import { selectBackend } from "../backends/select.ts";
import { backendByName, type BackendName } from "../backends/webgpu/select.ts";
import { WebGpuBackend } from "../backends/webgpu/backend.ts";
import { openModelFile } from "../formats/open.ts";
import type { HeaderLimits, ModelFile } from "../formats/types.ts";
import { type ModelInput, resolveModelInput } from "../io/model-input.ts";
import { StreamSource } from "../edge/stream-source.ts";
import { ArenaPlan } from "../memory/arena.ts";
import { PagedKVCache, type Sequence } from "../kv/paged-cache.ts";
import { deriveConfig, type DerivedConfig } from "./config.ts";
import { ropeTable } from "./rope.ts";
import { alibiSlopes } from "./alibi.ts";
import { WeightSet } from "./weights.ts";
import type { RunState } from "../models/llama.ts";
import { type Architecture, architectureOf } from "../models/registry.ts";
import { ClosedError, ContextLengthError, FormatError, NumericalError, ParamError, UnsupportedError } from "../errors.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { loadTokenizerFor } from "./tokenizer-for.ts";
import { withHFConfig } from "./hf-config.ts";
import { checkLayerCount, resolveHeaderLimits } from "./file-bounds.ts";
import { generate, type GenerateOptions, type GenerationResult } from "../generate.ts";
import { argmax, type Sampler } from "../sampling/sampler.ts";
import { DeviceSampler } from "../backends/webgpu/sample.ts";

const KV_TYPES: KVType[] = ["f32", "f16", "q8_0", "u8_asym"];

/** Greedy steps Model.decodeGreedy records between two readbacks (the size of its device scratch). */
export const GREEDY_ROWS = 64;
/** RoPE rows written at load; the table then doubles as sequences grow (Model.ensureRope). */
const ROPE_FIRST_ROWS = 1024;
const ONE_ROW = [0];

export interface LoadOptions {
  /** Tokenizer file (llama2.c tokenizer.bin, SentencePiece .model, tokenizer.json); GGUF files carry their own. */
  tokenizer?: string | Uint8Array;
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
   * Element type of the KV cache: "f32" (default); "f16" (half the bytes; llama.cpp's default cache type, with attention
   * computed as llama.cpp's CPU flash attention does, so logits match llama.cpp's); "q8_0" (8-bit blocks with a scale,
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
  /** A backend instance, or "wasm" (default: on `threads` threads), "webgpu", or "auto" (WebGPU when an adapter exists and the model fits it). */
  backend?: Backend | BackendName;
  /** Told why "auto" did not pick WebGPU. */
  onNotice?: (message: string) => void;
  /** Threads for the default WASM backend, the calling thread included; default: the machine's cores (1 where Workers or shared memory are missing). */
  threads?: number;
  /** Told how many of the weights' bytes are in memory (for a URL: downloaded), as they arrive. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Bounds on header metadata beyond what the file's size allows (entries, array lengths, string bytes); see HeaderLimits. */
  limits?: Partial<HeaderLimits>;
  /** Byte length of a ReadableStream model, so it streams into the arena; without it the stream is read into memory first. */
  streamSize?: number;
}

/** One sequence's input to a forward step: tokens to append, and whether its next-token logits are wanted. */
export interface StepInput {
  seq: Sequence;
  tokens: ArrayLike<number>;
  logits?: boolean;
}

/**
 * A loaded model: configuration, tokenizer, weights in the backend's memory,
 * the paged KV cache and the forward pass's scratch. `step` runs the
 * transformer over new tokens of one or more sequences; text generation
 * (model.generate, the engine) is built on it.
 */
export class Model {
  /** Positions computed by forward passes since load (prefix reuse is measured against it). */
  positionsComputed = 0;
  /** Bytes of weights in the backend's memory (what one decode step reads). */
  weightBytes = 0;
  private closed = false;
  private readonly logitsHost: Float32Array;
  private readonly tokensHost: Int32Array;
  private readonly positionsHost: Int32Array;
  private readonly rowsHost: Int32Array;
  private readonly logitRowIdx: number[] = [];
  private readonly greedyMeta = new Int32Array(GREEDY_ROWS * (1 + ROW_FIELDS));
  /** decodeSampled's sampler state on the device, made at its first use. */
  private deviceSampler: DeviceSampler | null = null;
  /**
   * RoPE rows written to the backend so far. The table grows with the longest sequence (doubling),
   * so a context of millions of positions, declared by a generous or a hostile header, costs no
   * load time or resident memory until positions are used: loading stays linear in the file.
   */
  private ropeRows = 0;
  private rope: { style: "ggml" | "llama2c"; factors?: Float32Array } = { style: "ggml" };

  constructor(
    readonly config: DerivedConfig,
    readonly tokenizer: Tokenizer,
    readonly backend: Backend,
    readonly arch: Architecture<unknown>,
    readonly weights: unknown,
    readonly kv: PagedKVCache,
    readonly state: RunState,
    readonly contextLength: number,
    readonly file: ModelFile,
  ) {
    this.logitsHost = new Float32Array(state.maxLogitRows * config.vocabSize);
    this.tokensHost = new Int32Array(state.maxRows);
    this.positionsHost = new Int32Array(state.maxRows);
    this.rowsHost = new Int32Array(state.maxRows * ROW_FIELDS);
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** How the RoPE table is computed (set once at load, before the first step). */
  setRope(style: "ggml" | "llama2c", factors?: Float32Array): void {
    this.rope = { style, factors };
    this.ropeRows = 0;
    this.ensureRope(Math.min(this.contextLength, ROPE_FIRST_ROWS));
  }

  /** Writes RoPE rows up to position `end` (exclusive) if they are not there yet. */
  private ensureRope(end: number): void {
    if (end <= this.ropeRows) return;
    const to = Math.min(this.contextLength, Math.max(end, 2 * this.ropeRows));
    const rows = ropeTable(this.config, to, this.rope.style, this.rope.factors, this.ropeRows);
    this.backend.write(this.state.ropeTable + this.ropeRows * this.config.ropeDim * 4, rows);
    this.ropeRows = to;
  }

  /** A new, empty sequence with its own page table. */
  newSequence(): Sequence {
    this.assertOpen();
    return this.kv.create();
  }

  releaseSequence(seq: Sequence): void {
    if (!this.closed) this.kv.release(seq);
  }

  /**
   * Appends tokens to each sequence and runs the transformer over all of them
   * as one batch of rows (chunked by maxBatchRows). Returns, for each input
   * that asked, a view of its next-token logits, valid until the next step.
   */
  async step(inputs: StepInput[]): Promise<Float32Array[]> {
    this.assertOpen();
    // validate and reserve everything first: a failure leaves no sequence half-extended
    for (const inp of inputs) {
      const end = inp.seq.length + inp.tokens.length;
      if (end > this.contextLength) throw new ContextLengthError(end, this.contextLength);
      for (let i = 0; i < inp.tokens.length; i++) {
        const t = inp.tokens[i];
        if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) {
          throw new ParamError("tokens", `token id ${t} is outside the vocabulary (0..${this.vocabSize - 1})`);
        }
      }
    }
    const wantLogits = inputs.filter((i) => i.logits !== false).length;
    if (wantLogits > this.state.maxLogitRows) throw new ParamError("inputs", `at most ${this.state.maxLogitRows} sequences per step`);
    let maxEnd = 0;
    for (const inp of inputs) {
      maxEnd = Math.max(maxEnd, inp.seq.length + inp.tokens.length);
      this.kv.reserve(inp.seq, inp.seq.length + inp.tokens.length);
    }
    this.ensureRope(maxEnd);

    const out: Float32Array[] = [];
    const maxRows = this.state.maxRows;
    const window = this.config.slidingWindow ?? 0;
    let T = 0;
    const pending: Array<{ slot: number; logitsIndex: number }> = [];
    let logitSlot = 0;
    this.logitRowIdx.length = 0;

    const run = async () => {
      if (T === 0) return;
      const b = this.backend, s = this.state;
      b.write(s.tokens, this.tokensHost.subarray(0, T));
      b.write(s.positions, this.positionsHost.subarray(0, T));
      b.write(s.rows, this.rowsHost.subarray(0, T * ROW_FIELDS));
      this.arch.forward(b, this.config, this.weights, s, this.kv.layout, T, this.logitRowIdx);
      this.positionsComputed += T;
      if (this.logitRowIdx.length > 0) {
        const n = this.logitRowIdx.length * this.vocabSize;
        await b.read(
          s.logits,
          this.logitsHost.subarray(pending[0].logitsIndex * this.vocabSize, pending[0].logitsIndex * this.vocabSize + n),
        );
      } else {
        await b.flush();
      }
      T = 0;
      this.logitRowIdx.length = 0;
      pending.length = 0;
    };

    for (const inp of inputs) {
      const seq = inp.seq;
      for (let i = 0; i < inp.tokens.length; i++) {
        if (T === maxRows) await run();
        const pos = seq.length;
        this.tokensHost[T] = inp.tokens[i];
        this.positionsHost[T] = pos;
        const r = T * ROW_FIELDS;
        this.rowsHost[r + ROW_PAGE_TABLE] = seq.pageTablePtr;
        this.rowsHost[r + ROW_POS] = pos;
        this.rowsHost[r + ROW_START] = window > 0 ? Math.max(0, pos - window + 1) : 0;
        seq.length++;
        if (i === inp.tokens.length - 1 && inp.logits !== false) {
          if (pending.length === 0) pending.push({ slot: T, logitsIndex: logitSlot });
          this.logitRowIdx.push(T);
          out.push(this.logitsHost.subarray(logitSlot * this.vocabSize, (logitSlot + 1) * this.vocabSize));
          logitSlot++;
        }
        T++;
      }
    }
    await run();
    return out;
  }

  /** Prefill: the whole prompt as one batch; returns the logits after its last token. */
  async prefill(seq: Sequence, tokens: ArrayLike<number>): Promise<Float32Array> {
    if (tokens.length === 0) throw new ParamError("prompt", "is empty: at least one token (e.g. BOS) is needed");
    return (await this.step([{ seq, tokens }]))[0];
  }

  /** One decode step: feed one token, get the logits for the next. */
  async decodeOne(seq: Sequence, token: number): Promise<Float32Array> {
    return (await this.step([{ seq, tokens: [token] }]))[0];
  }

  /**
   * Greedy decoding of `n` steps: feeds `token`, then each step's argmax as
   * the next step's token, and returns the n picks. Afterwards the sequence
   * holds `token` and the first n-1 picks (the last is not fed yet): the state
   * n decodeOne calls with the Sampler's argmax between them leave, with the
   * same ids. On a backend with `argmax` (WebGPU) the pick never leaves the
   * device: up to GREEDY_ROWS steps are recorded back to back and their ids
   * come back in one readback, since a GPU readback has a fixed latency
   * (about 10 ms in Deno) that would otherwise be paid per token. Elsewhere
   * it is that decodeOne loop.
   */
  async decodeGreedy(seq: Sequence, token: number, n: number): Promise<Int32Array> {
    this.assertOpen();
    if (!(Number.isInteger(n) && n >= 1)) throw new ParamError("n", `must be a positive integer, got ${n}`);
    const b = this.backend;
    const noPick = () => new NumericalError("no token to pick: every logit is NaN (corrupt weights)", this.file.source.name);
    if (!b.argmax) {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        token = argmax(await this.decodeOne(seq, token));
        if (token < 0) throw noPick();
        out[i] = token;
      }
      return out;
    }
    const out = new Int32Array(n);
    await this.runOnDevice(seq, token, n, out, null);
    if (out.includes(-1)) throw noPick();
    return out;
  }

  /**
   * Sampled decoding of `n` steps: feeds `token`, then each step's draw by `sampler` (its params and RNG
   * stream; `history` is every token so far, ending with `token`, for the penalties) as the next step's
   * token, and returns the n draws; the sequence is left as decodeGreedy leaves it. On the WebGPU backend
   * the draw runs on the device (backends/webgpu/sample.ts), up to GREEDY_ROWS steps per readback, and the
   * sampler's RNG continues from where the device left it. Its arithmetic is f32 where the Sampler's is f64:
   * a draw lands on the same token unless it falls within about 1e-5 of a boundary (README, WebGPU).
   * Elsewhere it is decodeOne and sampler.sample, token by token.
   */
  async decodeSampled(seq: Sequence, token: number, n: number, sampler: Sampler, history: ArrayLike<number>): Promise<Int32Array> {
    this.assertOpen();
    if (!(Number.isInteger(n) && n >= 1)) throw new ParamError("n", `must be a positive integer, got ${n}`);
    const out = new Int32Array(n);
    if (!this.sampledOnDevice(sampler)) {
      const h = new Int32Array(history.length + n);
      h.set(Array.from(history));
      for (let i = 0; i < n; i++) {
        token = sampler.sample(await this.decodeOne(seq, token), h.subarray(0, history.length + i)).id;
        out[i] = h[history.length + i] = token;
      }
      return out;
    }
    await this.runOnDevice(seq, token, n, out, { sampler, history });
    if (out.includes(-1)) {
      throw new NumericalError("no token to sample: every logit is NaN or -Infinity after bias and penalties", this.file.source.name);
    }
    return out;
  }

  /** Whether decodeSampled draws on the device for this sampler (WebGPU, a draw at a temperature, no logprobs). */
  sampledOnDevice(sampler: Sampler): boolean {
    return this.backend instanceof WebGpuBackend && DeviceSampler.supports(sampler.params);
  }

  /** decodeGreedy's and decodeSampled's device loop: n steps, GREEDY_ROWS per readback, picks into out. */
  private async runOnDevice(
    seq: Sequence,
    token: number,
    n: number,
    out: Int32Array,
    draw: { sampler: Sampler; history: ArrayLike<number> } | null,
  ): Promise<void> {
    const b = this.backend;
    const end = seq.length + n;
    if (end > this.contextLength) throw new ContextLengthError(end, this.contextLength);
    if (!(Number.isInteger(token) && token >= 0 && token < this.vocabSize)) {
      throw new ParamError("tokens", `token id ${token} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    const s = this.state, G = GREEDY_ROWS;
    let ds: DeviceSampler | null = null;
    if (draw) {
      ds = this.deviceSampler ??= new DeviceSampler(b as WebGpuBackend, this.vocabSize, G);
      ds.load(draw.sampler, draw.history, s.logits, s.tokens); // validates before anything is reserved
    }
    this.kv.reserve(seq, end);
    this.ensureRope(end);
    const window = this.config.slidingWindow ?? 0;
    // device scratch: picks (G), then each step's position (G) and row metadata (G x ROW_FIELDS)
    const ids = s.greedy, positions = ids + G * 4, rows = positions + G * 4;
    const meta = this.greedyMeta;
    b.write(s.tokens, Int32Array.of(token));
    for (let done = 0; done < n;) {
      const m = Math.min(G, n - done);
      for (let k = 0; k < m; k++) {
        const pos = seq.length + k, r = G + k * ROW_FIELDS;
        meta[k] = pos;
        meta[r + ROW_PAGE_TABLE] = seq.pageTablePtr;
        meta[r + ROW_POS] = pos;
        meta[r + ROW_START] = window > 0 ? Math.max(0, pos - window + 1) : 0;
      }
      b.write(positions, meta);
      for (let k = 0; k < m; k++) {
        b.copy(s.positions, positions + k * 4, 4);
        b.copy(s.rows, rows + k * ROW_FIELDS * 4, ROW_FIELDS * 4);
        this.arch.forward(b, this.config, this.weights, s, this.kv.layout, 1, ONE_ROW);
        if (ds) ds.step(k); // writes the pick and the next step's input
        else {
          b.argmax!(ids + k * 4, s.logits, this.vocabSize);
          b.copy(s.tokens, ids + k * 4, 4); // the next step's input
        }
      }
      seq.length += m;
      this.positionsComputed += m;
      if (ds) await ds.finish(draw!.sampler, out.subarray(done, done + m), m);
      else await b.read(ids, new Float32Array(out.buffer, done * 4, m)); // i32 bits, copied as they are
      done += m;
    }
  }

  /** Streams a continuation of `prompt` (see generate()). */
  generate(prompt: string | ArrayLike<number>, opts?: GenerateOptions): AsyncGenerator<string, GenerationResult> {
    return generate(this, prompt, opts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.backend.close();
    await this.file.source.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError("model");
  }
}

/**
 * Loads a model (GGUF, llama2.c .bin, safetensors) into one arena and prepares it for generation. The model is a
 * path, a `file:` / `http:` / `https:` URL (streamed into the arena; `onProgress` reports the download), bytes, a
 * ReadableStream or Response, or a ByteSource; with none, the small story model bundled with kvasm.
 */
export async function loadModel(input?: ModelInput, opts: LoadOptions = {}): Promise<Model> {
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

async function buildModel(file: ModelFile, opts: LoadOptions): Promise<Model> {
  const arch = architectureOf(file);
  const config = deriveConfig(arch.config(file));
  checkLayerCount(config, file); // before any table per layer is built
  const tokenizer = await loadTokenizerFor(file, opts.tokenizer);
  if (tokenizer.vocabSize > 0 && tokenizer.vocabSize < config.vocabSize) {
    // the model could pick ids the tokenizer cannot turn into text: a mismatch of files, found now, not mid-generation
    throw new FormatError(
      typeof opts.tokenizer === "string" ? opts.tokenizer : file.source.name,
      `the tokenizer holds ${tokenizer.vocabSize} tokens, fewer than the model's vocabulary of ${config.vocabSize}: a tokenizer for another model?`,
    );
  }

  // attention options before any backend starts
  const topK = opts.attention?.topK ?? 0;
  if (!(Number.isInteger(topK) && topK >= 0)) throw new ParamError("attention.topK", `must be a non-negative integer, got ${topK}`);
  if (topK > 0 && opts.kvCacheType === "f16") {
    throw new UnsupportedError(
      `sparse top-k attention (attention.topK) runs on the f32, q8_0 and u8_asym caches, not f16 (its flash attention never holds all scores)`,
    );
  }
  const ctx = opts.contextLength ?? config.contextLength;
  if (!(Number.isInteger(ctx) && ctx > 0)) throw new ParamError("contextLength", `must be a positive integer, got ${ctx}`);
  const maxSeqs = opts.maxSequences ?? 1;
  const maxRows = opts.maxBatchRows ?? (opts.ggmlOrder ? 512 : 128);
  const pageSize = opts.pageSize ?? 16;
  const nPages = opts.kvPages ?? maxSeqs * Math.ceil(ctx / pageSize);
  const maxLogitRows = Math.max(maxSeqs, 1);
  const wasm = () => selectBackend({ threads: opts.threads, relaxedSimd: opts.relaxedSimd, ggmlOrder: opts.ggmlOrder });
  const backend = typeof opts.backend === "object" ? opts.backend : await backendByName(opts.backend ?? "wasm", wasm, () => {
    // what a GPU would hold: every tensor, and KV pages + scratch in its one state binding
    const gpu = new WebGpuBackend();
    const all = [...file.tensors.values()];
    const kvBytes = PagedKVCache.bytes(config, { pageSize, nPages, maxSeqs, maxPositions: ctx, kvType: "f32" });
    const scratch = scratchSizes(config, all.filter((t) => gpu.supportsWeight(t.type)), gpu, maxRows, maxLogitRows, ctx);
    return { tensors: all, stateBytes: kvBytes + Object.values(scratch).reduce((a, b) => a + b + 64, 0) };
  }, opts.onNotice);

  try {
    // check every tensor before reserving memory
    const tensors = WeightSet.select(file, arch.tensors(config, file), backend);

    // the layout pass: weights, KV pages, scratch; then one reservation
    const plan = new ArenaPlan();
    for (const t of tensors) plan.add(`weights:${t.name}`, t.byteLength);
    const kvType = opts.kvCacheType ?? "f32";
    if (!KV_TYPES.includes(kvType)) {
      throw new ParamError(
        "kvCacheType",
        `must be one of ${KV_TYPES.map((t) => `"${t}"`).join(", ")}, got ${JSON.stringify(kvType)}`,
      );
    }
    if (topK > 0 && backend instanceof WebGpuBackend) {
      throw new UnsupportedError("the WebGPU backend has no sparse top-k attention (attention.topK); use the WASM backend");
    }
    if (opts.slidingWindow !== undefined) {
      if (!(Number.isInteger(opts.slidingWindow) && opts.slidingWindow >= 0)) {
        throw new ParamError("slidingWindow", `must be a non-negative integer, got ${opts.slidingWindow}`);
      }
      config.slidingWindow = opts.slidingWindow || undefined;
    }
    if (kvType !== "f32" && !backend.supportsKV?.(kvType)) {
      throw new UnsupportedError(`the ${backend.name} backend has no ${kvType} KV cache`);
    }
    const kvOpts = { pageSize, nPages, maxSeqs, maxPositions: ctx, kvType };
    plan.add("kv", PagedKVCache.bytes(config, kvOpts));
    if (config.alibiMaxBias) plan.add("alibi slopes", config.nHeads * 4);
    // a row never attends more than ctx positions: k past that is dense attention, and needs no more scratch
    const kept = Math.min(topK, ctx);
    if (kept > 0) plan.add("top-k selection", config.nHeads * kept * 8);
    const scratch = { ...scratchSizes(config, tensors, backend, maxRows, maxLogitRows, ctx), ...arch.extraScratch?.(config, maxRows) };
    for (const [what, bytes] of Object.entries(scratch)) plan.add(`scratch:${what}`, bytes);
    await backend.init(plan.bytes);

    const weightSet = await WeightSet.upload(backend, file, tensors, opts.onProgress);
    const weights = arch.bind(config, weightSet);
    const attention: { alibiSlopes?: number; topK?: number; topKScratch?: number } = {};
    if (config.alibiMaxBias) {
      attention.alibiSlopes = backend.alloc(config.nHeads * 4, "alibi slopes");
      backend.write(attention.alibiSlopes, alibiSlopes(config.nHeads, config.alibiMaxBias));
    }
    if (kept > 0) Object.assign(attention, { topK: kept, topKScratch: backend.alloc(config.nHeads * kept * 8, "top-k selection") });
    const kv = new PagedKVCache(backend, config, { ...kvOpts, ...attention });
    const state: RunState = { maxRows, maxLogitRows } as RunState;
    for (const [what, bytes] of Object.entries(scratch)) {
      (state as unknown as Record<string, number>)[what] = backend.alloc(bytes, `scratch ${what}`);
    }
    const ropeFactors = await ropeFreqFactors(file, config.ropeDim);
    const model = new Model(config, tokenizer, backend, arch, weights, kv, state, ctx, file);
    model.setRope(file.format === "llama2c" ? "llama2c" : "ggml", ropeFactors);
    model.weightBytes = weightSet.bytes;
    return model;
  } catch (e) {
    // a load that fails after the backend started (bad tensor, arena too small) frees it: workers, GPU buffers, memory
    if (typeof opts.backend !== "object") await backend.close().catch(() => {});
    throw e;
  }
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

function scratchSizes(
  c: DerivedConfig,
  tensors: Array<{ type: number; shape: number[] }>,
  backend: Backend,
  T: number,
  L: number,
  ctx: number,
): Record<string, number> {
  const f = 4;
  let mm = 0;
  for (const t of tensors) {
    if (t.shape.length < 2) continue;
    mm = Math.max(mm, backend.matmulScratchBytes(t.type, t.shape[0], Math.max(T, L)));
  }
  return {
    x: T * c.dim * f,
    xb: T * Math.max(c.dim, c.qDim) * f,
    xb2: T * c.dim * f,
    q: T * c.qDim * f,
    k: T * c.kvDim * f,
    v: T * c.kvDim * f,
    hb: T * c.hiddenDim * f,
    hb2: T * c.hiddenDim * f,
    xLast: L * c.dim * f,
    logits: L * c.vocabSize * f,
    tokens: T * 4,
    positions: T * 4,
    rows: T * ROW_FIELDS * 4,
    attScratch: c.nHeads * ctx * f,
    mmScratch: Math.max(mm, 64),
    ropeTable: ctx * c.ropeDim * f,
    greedy: GREEDY_ROWS * (2 + ROW_FIELDS) * 4,
  };
}
