/**
 * The engine: many requests over one model, continuously batched. Each
 * scheduler step gathers one decode row from every running sequence plus a
 * chunk of at most one or more waiting prompts (so running sequences keep
 * producing tokens while a long prompt is prefilled), runs them through
 * Model.step as one batch (each weight row read once for all rows), then
 * samples, streams, and retires finished sequences; new requests are admitted
 * between steps. n > 1 samples and beam search fork the prompt's sequence
 * (copy-on-write of its partial last page); full prompt pages go to a prefix
 * cache so a later prompt sharing them skips recomputing them.
 */
import type { Model } from "../model/model.ts";
import type { StepInput } from "../model/model.ts";
import type { Sequence } from "../kv/paged-cache.ts";
import { PrefixCache } from "../kv/prefix-cache.ts";
import { Sampler, type SampleResult } from "../sampling/sampler.ts";
import { StopMatcher } from "../sampling/stop.ts";
import { TextStream } from "../tokenizer/tokenizer.ts";
import { ClosedError, ContextLengthError, KvasmError, OutOfMemoryError, ParamError } from "../errors.ts";
import { BeamSearch } from "./beam.ts";
import { type ChoiceResult, EngineRequest, type FinishReason, type RequestParams, type RequestResult } from "./request.ts";

export interface EngineOptions {
  /** Requests waiting for admission at most; submit() beyond it throws QueueFullError (default 256). */
  maxQueue?: number;
  /** Token rows per scheduler step, decode rows and prompt chunks together (default: the model's maxBatchRows). */
  maxStepRows?: number;
  /** Full prompt pages kept for prefix reuse (least recently used go first); 0 = off. Default: half the KV pages. */
  prefixCachePages?: number;
}

/** submit() was refused because `maxQueue` requests are already waiting. */
export class QueueFullError extends KvasmError {
  constructor(limit: number) {
    super("memory", `the engine's queue is full (${limit} requests waiting)`);
  }
}

/** One sampled continuation (a "choice") and the sequence it runs on. */
interface Choice {
  index: number;
  seq: Sequence | null;
  sampler: Sampler;
  stops: StopMatcher;
  stream: TextStream;
  history: number[];
  tokens: number[];
  text: string;
  logprobs?: ChoiceResult["logprobs"];
  /** The token to feed at the next step, -1 if none. */
  pending: number;
  finishReason?: FinishReason;
  stop?: string;
  /** Beam search: the hypothesis' score. */
  score?: number;
}

interface Active {
  handle: EngineRequest;
  params: RequestParams;
  prompt: number[];
  maxTokens: number;
  n: number;
  /** Sequences the request will hold at once (n, or the beam width). */
  width: number;
  signal?: AbortSignal;
  /** The prompt's sequence while it is prefilled. */
  seq: Sequence | null;
  cachedTokens: number;
  choices: Choice[];
  beam: BeamSearch | null;
  wantLogprobs: boolean;
  base: Sampler;
  ended: boolean;
}

const yieldToEventLoop: () => Promise<void> = typeof (globalThis as { setImmediate?: unknown }).setImmediate === "function"
  ? () => new Promise((r) => (globalThis as unknown as { setImmediate(f: () => void): void }).setImmediate(r))
  : () => new Promise((r) => setTimeout(r, 0));

export class Engine {
  readonly prefixCache: PrefixCache | null;
  private readonly queue: Active[] = [];
  private readonly running: Active[] = [];
  private readonly maxQueue: number;
  private readonly maxStepRows: number;
  /** Sequence slots promised to admitted requests that have not forked yet. */
  private promisedSlots = 0;
  private nextId = 1;
  private loopRunning: Promise<void> | null = null;
  private closed = false;
  /** Scheduler steps run, and token rows they carried (decode + prefill). */
  steps = 0;
  rows = 0;

  constructor(readonly model: Model, opts: EngineOptions = {}) {
    this.maxQueue = opts.maxQueue ?? 256;
    this.maxStepRows = opts.maxStepRows ?? model.state.maxRows;
    if (!(Number.isInteger(this.maxStepRows) && this.maxStepRows > 0)) {
      throw new ParamError("maxStepRows", `must be a positive integer, got ${this.maxStepRows}`);
    }
    const prefixPages = opts.prefixCachePages ?? Math.floor(model.kv.nPages / 2);
    this.prefixCache = prefixPages > 0 ? new PrefixCache(model.kv, prefixPages) : null;
  }

  // ---------------------------------------------------------------- counters

  /** Sequences holding KV pages for running requests. */
  get activeSequences(): number {
    return this.model.kv.maxSeqs - this.model.kv.freeSequences;
  }
  get freePages(): number {
    return this.model.kv.freePages;
  }
  get positionsComputed(): number {
    return this.model.positionsComputed;
  }
  get queueLength(): number {
    return this.queue.length;
  }
  /** Requests submit() still accepts before QueueFullError. */
  get queueRoom(): number {
    return Math.max(0, this.maxQueue - this.queue.length);
  }
  get runningRequests(): number {
    return this.running.length;
  }

  // ---------------------------------------------------------------- requests

  /**
   * Queues a request. Invalid parameters (ParamError), a prompt longer than
   * the context (ContextLengthError), a full queue (QueueFullError) and a
   * closed engine (ClosedError) throw here; running out of KV pages later
   * rejects only this request's `done`.
   */
  submit(params: RequestParams): EngineRequest {
    if (this.closed) throw new ClosedError("engine");
    const m = this.model, tok = m.tokenizer;
    const maxTokens = params.maxTokens ?? 256;
    if (!Number.isInteger(maxTokens) || maxTokens < 0) {
      throw new ParamError("maxTokens", `must be a non-negative integer, got ${maxTokens}`);
    }
    const beams = params.beams ?? 0;
    if (!Number.isInteger(beams) || beams < 0) throw new ParamError("beams", `must be a non-negative integer, got ${beams}`);
    const n = params.n ?? (beams > 0 ? beams : 1);
    if (!Number.isInteger(n) || n < 1) throw new ParamError("n", `must be a positive integer, got ${n}`);
    if (beams > 0 && n > beams) throw new ParamError("n", `must be at most beams (${beams}), got ${n}`);
    const width = beams > 0 ? beams : n;
    if (width > m.kv.maxSeqs) {
      throw new ParamError(beams > 0 ? "beams" : "n", `${width} sequences exceed the engine's ${m.kv.maxSeqs} (LoadOptions.maxSequences)`);
    }
    const lengthPenalty = params.lengthPenalty ?? 1;
    if (!Number.isFinite(lengthPenalty)) throw new ParamError("lengthPenalty", `must be a finite number, got ${lengthPenalty}`);
    const prompt = typeof params.prompt === "string" ? tok.encode(params.prompt, { addBos: params.addBos }) : Array.from(params.prompt);
    if (prompt.length === 0) throw new ParamError("prompt", "is empty: at least one token (e.g. BOS) is needed");
    for (const t of prompt) {
      if (!Number.isInteger(t) || t < 0 || t >= m.vocabSize) {
        throw new ParamError("prompt", `token id ${t} is outside the vocabulary (0..${m.vocabSize - 1})`);
      }
    }
    if (prompt.length > m.contextLength) throw new ContextLengthError(prompt.length, m.contextLength, "prompt");
    const base = new Sampler(m.vocabSize, params); // validates the sampling fields
    new StopMatcher(params.stop ?? []); // validates the stop strings
    if (this.queue.length >= this.maxQueue) throw new QueueFullError(this.maxQueue);

    const handle = new EngineRequest(this.nextId++, prompt);
    const a: Active = {
      handle,
      params,
      prompt,
      maxTokens,
      n,
      width,
      signal: params.signal,
      seq: null,
      cachedTokens: 0,
      choices: [],
      beam: beams > 0
        ? new BeamSearch({
          width: beams,
          lengthPenalty,
          earlyStopping: params.earlyStopping ?? false,
          maxTokens,
          isEnd: (id) => tok.isEndOfGeneration(id),
        })
        : null,
      wantLogprobs: params.logprobs !== undefined,
      base,
      ended: false,
    };
    this.queue.push(a);
    this.kick();
    return handle;
  }

  /** Ends every request ("abort") and waits for the scheduler to stop. The model stays open (its owner closes it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const a of [...this.queue, ...this.running]) a.handle.cancel();
    this.kick();
    await this.loopRunning;
    this.prefixCache?.clear();
    if (this.model.kv.reclaimer === this.prefixCache) this.model.kv.reclaimer = undefined;
  }

  // ---------------------------------------------------------------- the scheduler

  private kick(): void {
    if (this.loopRunning) return;
    this.loopRunning = this.loop().finally(() => {
      this.loopRunning = null;
      if (this.queue.length > 0 || this.running.length > 0) this.kick();
    });
  }

  private async loop(): Promise<void> {
    while (this.queue.length > 0 || this.running.length > 0) {
      this.reapCancelled();
      this.admit();
      if (this.running.length === 0) {
        if (this.queue.length === 0) break;
        await yieldToEventLoop();
        continue;
      }
      try {
        await this.step();
      } catch (e) {
        // a failure of the forward pass itself: nothing more can run
        for (const a of [...this.running]) this.fail(a, e);
        for (const a of this.queue.splice(0)) a.handle.fail(e);
        return;
      }
      await yieldToEventLoop();
    }
  }

  private isCancelled(a: Active): boolean {
    return this.closed || a.handle.cancelled || (a.signal?.aborted ?? false);
  }

  private reapCancelled(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const a = this.queue[i];
      if (!this.isCancelled(a)) continue;
      this.queue.splice(i, 1);
      a.handle.finish(this.result(a, Array.from({ length: a.n }, (_, k) => emptyChoice(k, "abort"))));
    }
    for (const a of [...this.running]) {
      if (!this.isCancelled(a)) continue;
      if (a.beam) a.beam.abort(this.seqOps);
      for (const c of a.choices) if (!c.finishReason) this.finishChoice(a, c, "abort");
      this.retire(a);
    }
  }

  /** Moves waiting requests into the running set while sequence slots and pages allow, in arrival order. */
  private admit(): void {
    const kv = this.model.kv;
    while (this.queue.length > 0) {
      const a = this.queue[0];
      if (kv.freeSequences - this.promisedSlots < a.width) return;
      const P = kv.layout.pageSize;
      const pages = this.prefixCache?.lookup(a.prompt, a.prompt.length - 1) ?? [];
      const needed = Math.ceil((a.prompt.length + 1) / P) - pages.length;
      if (needed > kv.nPages) {
        this.queue.shift();
        a.handle.fail(
          new OutOfMemoryError(`KV cache full: the prompt needs ${needed} pages of ${P} positions, the cache has ${kv.nPages}`),
        );
        continue;
      }
      // wait for pages to be freed, unless nothing runs that could free them
      if (needed > kv.freePages + (this.prefixCache?.size ?? 0) && this.running.length > 0) return;
      this.queue.shift();
      const seq = kv.create();
      if (pages.length > 0) kv.adoptPrefix(seq, pages);
      a.seq = seq;
      a.cachedTokens = seq.length;
      this.promisedSlots += a.width - 1;
      this.running.push(a);
    }
  }

  private readonly seqOps = {
    fork: (seq: Sequence) => this.model.kv.fork(seq),
    release: (seq: Sequence) => this.model.releaseSequence(seq),
  };

  /** Rows of one request in this step. */
  private gather(a: Active, budget: number, inputs: StepInput[], owners: Array<{ a: Active; c: Choice | null; beam: number }>): number {
    if (a.seq) {
      // prefill: the next chunk of the prompt
      const from = a.seq.length;
      const take = Math.min(a.prompt.length - from, budget);
      if (take <= 0) return 0;
      const last = from + take === a.prompt.length;
      inputs.push({ seq: a.seq, tokens: a.prompt.slice(from, from + take), logits: last });
      owners.push({ a, c: null, beam: -1 });
      return take;
    }
    let rows = 0;
    if (a.beam) {
      a.beam.live.forEach((b, i) => {
        inputs.push({ seq: b.seq, tokens: [b.pending], logits: true });
        owners.push({ a, c: null, beam: i });
        rows++;
      });
      return rows;
    }
    for (const c of a.choices) {
      if (c.finishReason || c.pending < 0) continue;
      inputs.push({ seq: c.seq!, tokens: [c.pending], logits: true });
      owners.push({ a, c, beam: -1 });
      rows++;
    }
    return rows;
  }

  private async step(): Promise<void> {
    const m = this.model, kv = m.kv;
    const inputs: StepInput[] = [];
    const owners: Array<{ a: Active; c: Choice | null; beam: number }> = [];
    // decode rows first (they are what keeps running sequences streaming), then prompt chunks
    let rows = 0;
    for (const a of this.running) if (!a.seq) rows += this.gather(a, 0, inputs, owners);
    for (const a of this.running) {
      if (!a.seq) continue;
      const budget = Math.max(this.maxStepRows - rows, rows === 0 ? 1 : 0);
      if (budget <= 0) break;
      rows += this.gather(a, budget, inputs, owners);
    }

    // reserve pages request by request: running out fails only the request that asked
    const failed = new Map<Active, unknown>();
    for (let i = 0; i < inputs.length; i++) {
      const a = owners[i].a;
      if (failed.has(a)) continue;
      try {
        kv.reserve(inputs[i].seq, inputs[i].seq.length + inputs[i].tokens.length);
      } catch (e) {
        failed.set(a, e);
      }
    }
    if (failed.size > 0) {
      const keep = inputs.map((_, i) => !failed.has(owners[i].a));
      for (const [a, err] of failed) this.fail(a, err);
      for (let i = inputs.length - 1; i >= 0; i--) {
        if (!keep[i]) {
          inputs.splice(i, 1);
          owners.splice(i, 1);
        }
      }
      if (inputs.length === 0) return;
    }

    const logits = await m.step(inputs);
    this.steps++;
    this.rows += inputs.reduce((s, x) => s + x.tokens.length, 0);

    // hand each logits view to its owner; beam requests collect theirs first
    const beamLogits = new Map<Active, Float32Array[]>();
    let li = 0;
    for (let i = 0; i < inputs.length; i++) {
      if (inputs[i].logits === false) continue;
      const { a, c, beam } = owners[i];
      const l = logits[li++];
      if (a.ended) continue;
      if (beam >= 0) {
        const list = beamLogits.get(a) ?? [];
        list[beam] = l;
        beamLogits.set(a, list);
      } else if (c) {
        this.accept(a, c, c.sampler.sample(l, c.history));
      } else {
        this.promptDone(a, l);
      }
    }
    for (const [a, list] of beamLogits) {
      const live = a.beam!.live;
      a.beam!.step(list, this.seqOps, live[0].seq.length >= m.contextLength);
      if (a.beam!.isDone) this.finishBeams(a);
    }

    // sliding window: pages no later query can attend go back to the pool
    const W = m.config.slidingWindow ?? 0;
    if (W > 0) {
      for (const a of this.running) {
        for (const s of this.sequencesOf(a)) kv.releaseBefore(s, s.length - W + 1);
      }
    }
    for (const a of [...this.running]) if (this.allFinished(a)) this.retire(a);
  }

  /** The prompt is in the cache and its last logits are here: fork the choices (or start the beams). */
  private promptDone(a: Active, logits: Float32Array): void {
    const m = this.model, kv = m.kv, seq = a.seq!;
    a.seq = null;
    this.prefixCache?.insert(a.prompt, seq.pages.subarray(0, seq.nPages));
    if (a.beam) {
      this.promisedSlots -= a.width - 1;
      a.beam.start(seq);
      a.beam.step([logits], this.seqOps, seq.length >= m.contextLength);
      if (a.beam.isDone) this.finishBeams(a);
      return;
    }
    const seeds = choiceSeeds(a.base.params.seed, a.n);
    for (let k = 0; k < a.n; k++) {
      const s = k === 0 ? seq : kv.fork(seq);
      if (k > 0) this.promisedSlots--;
      const stream = new TextStream(m.tokenizer);
      // prime the stream with the prompt so the first piece's leading space is handled as in the reference
      for (const id of a.prompt) stream.push(id);
      a.choices.push({
        index: k,
        seq: s,
        sampler: k === 0 ? a.base : new Sampler(m.vocabSize, { ...a.params, seed: seeds[k] }),
        stops: new StopMatcher(a.params.stop ?? []),
        stream,
        history: [...a.prompt],
        tokens: [],
        text: "",
        logprobs: a.wantLogprobs ? [] : undefined,
        pending: -1,
      });
    }
    for (const c of a.choices) {
      if (a.maxTokens === 0) {
        this.finishChoice(a, c, "length");
        continue;
      }
      // each choice samples from its own copy: the sampler edits logits in place
      const l = a.n > 1 ? logits.slice() : logits;
      this.accept(a, c, c.sampler.sample(l, c.history));
    }
  }

  /** A choice drew a token: stream it and decide whether it goes on. */
  private accept(a: Active, c: Choice, pick: SampleResult): void {
    const tok = this.model.tokenizer;
    if (tok.isEndOfGeneration(pick.id)) return this.finishChoice(a, c, "stop");
    c.tokens.push(pick.id);
    c.history.push(pick.id);
    c.logprobs?.push({ id: pick.id, logprob: pick.logprob, top: pick.top });
    const piece = c.stream.push(pick.id);
    const { emit, stopped } = c.stops.push(piece);
    c.text += emit;
    a.handle.emit({ type: "token", choice: c.index, id: pick.id, text: emit, logprob: pick.logprob, top: pick.top });
    if (stopped) {
      c.stop = c.stops.matched ?? undefined;
      return this.finishChoice(a, c, "stop");
    }
    if (c.tokens.length >= a.maxTokens || c.seq!.length >= this.model.contextLength) return this.finishChoice(a, c, "length");
    c.pending = pick.id;
  }

  private finishChoice(a: Active, c: Choice, reason: FinishReason): void {
    c.finishReason = reason;
    c.pending = -1;
    let rest = "";
    if (!c.stops.stopped) rest = c.stops.push(c.stream.flush()).emit + c.stops.flush();
    c.text += rest;
    if (c.seq) {
      this.model.releaseSequence(c.seq);
      c.seq = null;
    }
    a.handle.emit({ type: "finish", choice: c.index, reason, text: rest });
  }

  /** Beam search ended: the best hypotheses become the choices, streamed whole. */
  private finishBeams(a: Active): void {
    const tok = this.model.tokenizer;
    a.beam!.best(a.n).forEach((h, k) => {
      const stream = new TextStream(tok);
      for (const id of a.prompt) stream.push(id);
      let text = "";
      h.tokens.forEach((id, i) => {
        const piece = stream.push(id);
        text += piece;
        a.handle.emit({ type: "token", choice: k, id, text: piece, logprob: h.logprobs[i], top: [] });
      });
      const rest = stream.flush();
      text += rest;
      a.handle.emit({ type: "finish", choice: k, reason: h.reason, text: rest });
      a.choices.push({
        index: k,
        seq: null,
        sampler: a.base,
        stops: new StopMatcher([]),
        stream,
        history: [],
        tokens: h.tokens,
        text,
        logprobs: h.tokens.map((id, i) => ({ id, logprob: h.logprobs[i], top: [] })),
        pending: -1,
        finishReason: h.reason,
        score: h.score,
      });
    });
  }

  private allFinished(a: Active): boolean {
    if (a.seq) return false;
    if (a.beam) return a.beam.isDone;
    return a.choices.every((c) => c.finishReason !== undefined);
  }

  private sequencesOf(a: Active): Sequence[] {
    if (a.seq) return [a.seq];
    if (a.beam) return a.beam.live.map((b) => b.seq);
    return a.choices.flatMap((c) => (c.seq ? [c.seq] : []));
  }

  /** Takes a request out of the running set, frees what it holds, and resolves it. */
  private retire(a: Active): void {
    this.release(a);
    const choices: ChoiceResult[] = a.choices.map((c) => ({
      index: c.index,
      tokens: c.tokens,
      text: c.text,
      finishReason: c.finishReason ?? "abort",
      ...(c.logprobs ? { logprobs: c.logprobs } : {}),
      ...(c.score !== undefined ? { score: c.score } : {}),
      ...(c.stop !== undefined ? { stop: c.stop } : {}),
    }));
    for (let k = choices.length; k < a.n; k++) choices.push(emptyChoice(k, "abort"));
    a.handle.finish(this.result(a, choices));
  }

  private fail(a: Active, e: unknown): void {
    this.release(a);
    a.handle.fail(e);
  }

  private release(a: Active): void {
    if (a.ended) return;
    a.ended = true;
    const i = this.running.indexOf(a);
    if (i >= 0) this.running.splice(i, 1);
    if (a.seq) {
      this.model.releaseSequence(a.seq);
      a.seq = null;
      this.promisedSlots -= a.width - 1;
    }
    if (a.beam && !a.beam.isDone) a.beam.abort(this.seqOps);
    for (const c of a.choices) {
      if (c.seq) {
        this.model.releaseSequence(c.seq);
        c.seq = null;
      }
    }
  }

  private result(a: Active, choices: ChoiceResult[]): RequestResult {
    return {
      id: a.handle.id,
      promptTokens: a.prompt,
      choices,
      usage: {
        promptTokens: a.prompt.length,
        completionTokens: choices.reduce((s, c) => s + c.tokens.length, 0),
        cachedTokens: a.cachedTokens,
      },
    };
  }
}

function emptyChoice(index: number, reason: FinishReason): ChoiceResult {
  return { index, tokens: [], text: "", finishReason: reason };
}

/** Seeds of the n choices: choice 0 gets the request's seed (so n = 1 matches a single generation), the others a fixed mix of it. */
export function choiceSeeds(seed: number, n: number): number[] {
  const out = [seed >>> 0];
  for (let k = 1; k < n; k++) {
    let h = (seed ^ Math.imul(k, 0x9e3779b9)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    out.push((h ^ (h >>> 16)) >>> 0);
  }
  return out;
}
