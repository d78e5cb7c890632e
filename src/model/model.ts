import type { Backend, DeviceSampling } from "../backends/backend.ts";
import { ROW_FIELDS, ROW_PAGE_TABLE, ROW_POS, ROW_START } from "../backends/backend.ts";
import type { ModelFile } from "../formats/types.ts";
import type { PagedKVCache, Sequence } from "../kv/paged-cache.ts";
import type { DerivedConfig } from "./config.ts";
import { KVManager } from "../kv/kv-manager.ts";
import { ropeTable } from "./rope.ts";
import { GREEDY_ROWS, type RunState, type SomeArchitecture } from "../architectures/architecture.ts";
import { ClosedError, ContextLengthError, NumericalError, optionalBoolean, ParamError, positiveInteger } from "../errors.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { generate, type GenerateOptions, type GenerationResult } from "../generate.ts";
import { argmax, type Sampler } from "../sampling/sampler.ts";

export { GREEDY_ROWS } from "../architectures/architecture.ts";
/** RoPE rows written at load; the table then doubles as sequences grow (Model.ensureRope). */
const ROPE_FIRST_ROWS = 1024;
const ONE_ROW = [0];

/** One sequence's input to a forward step: tokens to append at seq.length, and whether its next-token logits are wanted. */
export interface StepInput {
  seq: Sequence;
  tokens: ArrayLike<number>;
  logits?: boolean;
}

/**
 * A loaded model: configuration, tokenizer, weights in the backend's memory,
 * the paged KV cache and the forward pass's scratch. `runRows` runs the
 * transformer over new tokens of sequences whose positions are already
 * reserved (by `sequences`, the KV manager: the engine's scheduler reserves
 * per request); `step`, `prefill`, `decodeOne`, `decodeGreedy` and
 * `decodeSampled` are the single-sequence calls that reserve through the same
 * manager first. Text generation (model.generate, the engine) is built on them.
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
  /** The rows of a pass whose logits are wanted (the first logitRowCount), and a view of each length, made once. */
  private readonly logitRowIdx: Int32Array;
  private logitRowCount = 0;
  private readonly logitRowViews: Int32Array[] = [];
  /**
   * Views made once and reused every step (a view per step was an allocation per token): the host arrays' first T
   * entries, each logit slot.
   */
  private readonly hostViews: { tokens: Int32Array; positions: Int32Array; rows: Int32Array }[] = [];
  private readonly logitViews: Float32Array[] = [];
  /** Several wanted rows' logits read in one go: a view per (first slot, rows), at firstSlot * (maxLogitRows + 1) + rows. */
  private readonly logitSpanViews: Float32Array[] = [];

  private readonly greedyMeta = new Int32Array(GREEDY_ROWS * (1 + ROW_FIELDS));
  /**
   * One decode step's recording in the device loop (runOnDevice): one row, its token, position and row metadata
   * already on the device, so every call records the same ops with the same arguments (what lets a backend with
   * replayForward record it once and replay it). Made once: a closure per token would be an allocation per token.
   */
  private readonly decodeForward = (): void =>
    this.arch.forward(this.backend, this.config, this.weights, this.state, this.kv.layout, 1, ONE_ROW);
  /** decodeSampled's sampler state on the device, made at its first use. */
  private deviceSampler: DeviceSampling | null = null;
  /**
   * RoPE rows written to the backend so far. The table grows with the longest sequence (doubling),
   * so a context of millions of positions, declared by a generous or a hostile header, costs no
   * load time or resident memory until positions are used: loading stays linear in the file.
   */
  private ropeRows = 0;
  private rope: { style: "ggml" | "llama2c"; factors?: Float32Array } = { style: "ggml" };
  /** The one owner of sequences and their pages (create, fork, reserve, release, prefix reuse). */
  readonly sequences: KVManager;

  constructor(
    readonly config: DerivedConfig,
    readonly tokenizer: Tokenizer,
    readonly backend: Backend,
    readonly arch: SomeArchitecture,
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
    this.logitRowIdx = new Int32Array(state.maxRows);
    this.sequences = new KVManager(kv, contextLength);
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  /** Token rows one forward pass takes at most (longer inputs run in several passes). */
  get maxBatchRows(): number {
    return this.state.maxRows;
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
    return this.sequences.create();
  }

  releaseSequence(seq: Sequence): void {
    if (!this.closed) this.sequences.release(seq);
  }

  /**
   * Appends tokens to each sequence and runs the transformer over all of them
   * as one batch of rows (chunked by maxBatchRows): reserves the positions
   * through `sequences`, then runRows. Returns, for each input that asked, a
   * view of its next-token logits, valid until the next step.
   */
  async step(inputs: StepInput[]): Promise<Float32Array[]> {
    this.assertOpen();
    // validate everything before reserving anything
    this.checkInputs(inputs, inputs.length);
    for (const inp of inputs) this.sequences.reserve(inp.seq, inp.seq.length + inp.tokens.length);
    return await this.forward(inputs, inputs.length, []);
  }

  /** Context, vocabulary and logit-row bounds of a step's inputs. */
  private checkInputs(inputs: readonly StepInput[], count: number): void {
    for (let k = 0; k < count; k++) {
      const inp = inputs[k];
      const end = inp.seq.length + inp.tokens.length;
      if (end > this.contextLength) throw new ContextLengthError(end, this.contextLength);
      for (let i = 0; i < inp.tokens.length; i++) this.checkToken(inp.tokens[i]);
    }
    let wantLogits = 0;
    // a string "false" would ask for logits (only false declines them)
    for (let k = 0; k < count; k++) if (optionalBoolean("logits", inputs[k].logits) !== false) wantLogits++;
    if (wantLogits > this.state.maxLogitRows) throw new ParamError("inputs", `at most ${this.state.maxLogitRows} sequences per step`);
  }

  private checkToken(t: number): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) {
      throw new ParamError("tokens", `token id ${t} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  /** Refuses to write positions the KV manager has not reserved (a caller that skipped `sequences.reserve`). */
  private checkReserved(seq: Sequence, end: number): void {
    if (!this.sequences.isReserved(seq, end)) {
      throw new ParamError("seq", `sequence ${seq.id} is not reserved up to position ${end}: reserve it through model.sequences first`);
    }
  }

  /**
   * The forward pass over rows of sequences already reserved up to their new
   * ends (KVManager.reserve): writes their K and V at positions seq.length on,
   * and is the one place a sequence's length grows (here and in the device
   * loop of decodeGreedy / decodeSampled, through the same writeRow). Returns,
   * for each input that asked, a view of its next-token logits, valid until
   * the next step. The first `count` inputs run (all by default), and the
   * views go into `out` (a new array by default): the engine's scheduler
   * passes its own reused arrays, so a step allocates no arrays.
   */
  async runRows(inputs: readonly StepInput[], count = inputs.length, out: Float32Array[] = []): Promise<Float32Array[]> {
    this.assertOpen();
    if (!(Number.isInteger(count) && count >= 0 && count <= inputs.length)) {
      throw new ParamError("count", `must be an integer in [0, ${inputs.length}] (the inputs given), got ${count}`);
    }
    this.checkInputs(inputs, count);
    for (let k = 0; k < count; k++) this.checkReserved(inputs[k].seq, inputs[k].seq.length + inputs[k].tokens.length);
    return await this.forward(inputs, count, out);
  }

  /**
   * runRows' body, for inputs checked and reserved; pushes the logit views to `out`. Allocates nothing of its own
   * per step beyond the promises it awaits (views are made once; the decode step's JS is measured by
   * bench/js-step.ts and bounded by tests/js-step-alloc.test.ts).
   */
  private async forward(inputs: readonly StepInput[], count: number, out: Float32Array[]): Promise<Float32Array[]> {
    let maxEnd = 0;
    for (let k = 0; k < count; k++) maxEnd = Math.max(maxEnd, inputs[k].seq.length + inputs[k].tokens.length);
    this.ensureRope(maxEnd);

    const maxRows = this.state.maxRows;
    let T = 0;
    // the logit slot of the pass's first row whose logits are wanted (-1: none yet)
    let firstSlot = -1;
    let logitSlot = 0;
    this.logitRowCount = 0;

    for (let k = 0; k < count; k++) {
      const inp = inputs[k], seq = inp.seq, n = inp.tokens.length;
      for (let i = 0; i < n; i++) {
        if (T === maxRows) {
          await this.runPass(T, firstSlot);
          T = 0, firstSlot = -1;
        }
        this.stageRow(T, inp.tokens[i], seq);
        if (i === n - 1 && inp.logits !== false) {
          if (firstSlot < 0) firstSlot = logitSlot;
          this.logitRowIdx[this.logitRowCount++] = T;
          out[logitSlot] = this.logitViews[logitSlot] ??= this.logitsHost.subarray(
            logitSlot * this.vocabSize,
            (logitSlot + 1) * this.vocabSize,
          );
          logitSlot++;
        }
        T++;
      }
    }
    await this.runPass(T, firstSlot);
    if (out.length !== logitSlot) out.length = logitSlot; // a reused array keeps its length (and its backing store) step to step
    return out;
  }

  /** Row T of the next pass: `token` at the sequence's next position (which it then takes). */
  private stageRow(T: number, token: number, seq: Sequence): void {
    this.tokensHost[T] = token;
    this.positionsHost[T] = seq.length;
    this.writeRow(this.rowsHost, T * ROW_FIELDS, seq);
  }

  /** One forward pass over the T rows staged in the host arrays; reads the wanted rows' logits into their slots from firstSlot. */
  private runPass(T: number, firstSlot: number): Promise<void> {
    if (T === 0) return Promise.resolve();
    const b = this.backend, s = this.state;
    const views = this.hostViews[T] ??= {
      tokens: this.tokensHost.subarray(0, T),
      positions: this.positionsHost.subarray(0, T),
      rows: this.rowsHost.subarray(0, T * ROW_FIELDS),
    };
    b.write(s.tokens, views.tokens);
    b.write(s.positions, views.positions);
    b.write(s.rows, views.rows);
    const nOut = this.logitRowCount;
    const logitRows = this.logitRowViews[nOut] ??= this.logitRowIdx.subarray(0, nOut);
    this.arch.forward(b, this.config, this.weights, s, this.kv.layout, T, logitRows);
    this.positionsComputed += T;
    this.logitRowCount = 0;
    if (nOut > 0) {
      const n = nOut * this.vocabSize, at = firstSlot * this.vocabSize;
      // one row: its slot's view, made in forward(); several: the span's view, made once per (first slot, rows)
      const span = nOut === 1
        ? this.logitViews[firstSlot]
        : (this.logitSpanViews[firstSlot * (s.maxLogitRows + 1) + nOut] ??= this.logitsHost.subarray(at, at + n));
      return b.read(s.logits, span);
    }
    return b.flush();
  }

  /**
   * One row's metadata (page table, position seq.length, first attended position) at `meta[at..]`, then the
   * sequence grows by that position: the row fill step and the device loop share, and the one place
   * seq.length advances.
   */
  private writeRow(meta: Int32Array, at: number, seq: Sequence): void {
    const pos = seq.length, window = this.config.slidingWindow ?? 0;
    meta[at + ROW_PAGE_TABLE] = seq.pageTablePtr;
    meta[at + ROW_POS] = pos;
    meta[at + ROW_START] = window > 0 ? Math.max(0, pos - window + 1) : 0;
    seq.length = pos + 1;
  }

  /** Prefill: the whole prompt as one batch; returns the logits after its last token. */
  async prefill(seq: Sequence, tokens: ArrayLike<number>): Promise<Float32Array> {
    if (tokens.length === 0) throw new ParamError("prompt", "is empty: at least one token (e.g. BOS) is needed");
    return (await this.step([{ seq, tokens }]))[0];
  }

  /**
   * One decode step: feed one token, get the logits for the next. step() for one token, with nothing allocated
   * in JS but the promise it returns (the step's row staged directly, its logits view made once).
   */
  async decodeOne(seq: Sequence, token: number): Promise<Float32Array> {
    this.assertOpen();
    const end = seq.length + 1;
    if (end > this.contextLength) throw new ContextLengthError(end, this.contextLength);
    this.checkToken(token);
    this.sequences.reserve(seq, end);
    this.ensureRope(end);
    this.stageRow(0, token, seq);
    this.logitRowIdx[0] = 0;
    this.logitRowCount = 1;
    const logits = this.logitViews[0] ??= this.logitsHost.subarray(0, this.vocabSize);
    await this.runPass(1, 0);
    return logits;
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
    positiveInteger("n", n);
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
   * a draw lands on the same token unless it falls within about 1e-5 of a boundary (README "WebGPU (Deno)", docs/webgpu.md).
   * Elsewhere it is decodeOne and sampler.sample, token by token.
   */
  async decodeSampled(seq: Sequence, token: number, n: number, sampler: Sampler, history: ArrayLike<number>): Promise<Int32Array> {
    this.assertOpen();
    positiveInteger("n", n);
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
    return this.backend.samplesOnDevice?.(sampler.params) ?? false;
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
    let ds: DeviceSampling | null = null;
    if (draw) {
      ds = this.deviceSampler ??= b.deviceSampler!(this.vocabSize, G);
      ds.load(draw.sampler, draw.history, s.logits, s.tokens); // validates before anything is reserved
    }
    this.sequences.reserve(seq, end);
    this.ensureRope(end);
    // device scratch: picks (G), then each step's position (G) and row metadata (G x ROW_FIELDS)
    const ids = s.greedy, positions = ids + G * 4, rows = positions + G * 4;
    const meta = this.greedyMeta;
    b.write(s.tokens, Int32Array.of(token));
    // each run's readback is awaited after the next run is recorded and submitted, so the GPU is not left idle
    // while Deno's mapAsync sleeps (10 ms at least) or the host records (the next run's input is on the device)
    let reading: Promise<void> | null = null;
    for (let done = 0; done < n;) {
      const m = Math.min(G, n - done);
      for (let k = 0; k < m; k++) {
        meta[k] = seq.length;
        this.writeRow(meta, G + k * ROW_FIELDS, seq); // advances seq.length
      }
      b.write(positions, meta);
      for (let k = 0; k < m; k++) {
        b.copy(s.positions, positions + k * 4, 4);
        b.copy(s.rows, rows + k * ROW_FIELDS * 4, ROW_FIELDS * 4);
        if (b.replayForward) b.replayForward(this, this.decodeForward);
        else this.decodeForward();
        if (ds) ds.step(k); // writes the pick and the next step's input
        else {
          b.argmax!(ids + k * 4, s.logits, this.vocabSize);
          b.copy(s.tokens, ids + k * 4, 4); // the next step's input
        }
      }
      this.positionsComputed += m;
      const read: Promise<void> = ds
        ? ds.finish(draw!.sampler, out.subarray(done, done + m), m)
        : b.read(ids, new Float32Array(out.buffer, done * 4, m)); // i32 bits, copied as they are
      read.catch(() => {}); // awaited below; a failure is thrown there, not reported as unhandled
      if (reading) await reading;
      reading = read;
      done += m;
    }
    await reading;
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
