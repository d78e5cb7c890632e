/**
 * The one per-choice decoder of every generation path (generate() and the engine): the prompt turned into
 * checked ids, then, per sampled token, end-of-generation, the text stream (primed with the prompt), stop
 * matching, maxTokens and the context bound, and at the end the flush of held-back text. It reports through
 * TokenEvent / FinishEvent (events.ts); the caller runs the model and owns the sequence.
 */
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { TextStream } from "../tokenizer/tokenizer.ts";
import type { Sampler, SampleResult, TokenLogprob } from "../sampling/sampler.ts";
import { StopMatcher } from "../sampling/stop.ts";
import { ContextLengthError, describeValue, nonNegativeInteger, ParamError } from "../errors.ts";
import type { EngineEvent, FinishReason } from "./events.ts";

/** What the decoder needs of a model. */
export interface DecoderModel {
  readonly tokenizer: Tokenizer;
  readonly vocabSize: number;
  readonly contextLength: number;
}

/** A prompt (text, or ids) as ids, checked: not empty, every id in the vocabulary, no longer than the context. */
export function promptIds(model: DecoderModel, prompt: string | ArrayLike<number>, addBos?: boolean): number[] {
  if (typeof prompt !== "string" && typeof (prompt as { length?: unknown } | null)?.length !== "number") {
    // undefined, a number or a plain object: Array.from() said "undefined is not iterable" or made an empty prompt
    throw new ParamError("prompt", `must be a string or an array of token ids, got ${describeValue(prompt)}`);
  }
  // an array-like's length is its claim to be that long: past the context it is refused before Array.from copies it
  // ({ length: 2 ** 32 } was a RangeError, { length: 3e7 } 231 MiB and 2.7 s before the error)
  if (typeof prompt !== "string" && !(prompt.length <= model.contextLength)) {
    if (!(Number.isSafeInteger(prompt.length) && prompt.length >= 0)) {
      throw new ParamError("prompt", `an array of token ids must have a length that is an integer >= 0, got ${prompt.length}`);
    }
    throw new ContextLengthError(prompt.length, model.contextLength, "prompt");
  }
  const ids = typeof prompt === "string" ? model.tokenizer.encode(prompt, { addBos }) : Array.from(prompt);
  if (ids.length === 0) throw new ParamError("prompt", "is empty: at least one token (e.g. BOS) is needed");
  for (const t of ids) {
    if (!Number.isInteger(t) || t < 0 || t >= model.vocabSize) {
      throw new ParamError("prompt", `token id ${t} is outside the vocabulary (0..${model.vocabSize - 1})`);
    }
  }
  if (ids.length > model.contextLength) throw new ContextLengthError(ids.length, model.contextLength, "prompt");
  return ids;
}

/** maxTokens, defaulted (256) and checked. */
export function maxTokensOf(maxTokens: number | undefined): number {
  return nonNegativeInteger("maxTokens", maxTokens ?? 256);
}

export interface DecoderOptions {
  /** The choice's index in its request (the events' `choice`). */
  index: number;
  prompt: readonly number[];
  sampler: Sampler;
  stop: readonly string[];
  maxTokens: number;
  /** Keep every token's logprob and alternatives in `logprobs`. */
  logprobs: boolean;
  /**
   * Whether anything reads the token events' `logprob` (default true). False (generate() without onToken, engine
   * requests that say so): every event carries NaN, and a greedy pick skips computing it (Sampler.sample's
   * `logprob`). `logprobs` true keeps them.
   */
  tokenLogprobs?: boolean;
  emit: (ev: EngineEvent) => void;
}

export class ChoiceDecoder {
  readonly index: number;
  readonly sampler: Sampler;
  /** The prompt and every token generated so far (the penalties look back over it). */
  readonly history: number[];
  readonly tokens: number[] = [];
  text = "";
  readonly logprobs?: Array<{ id: number; logprob: number; top: TokenLogprob[] }>;
  finishReason: FinishReason | null = null;
  /** Which stop string ended it, if any. */
  stop?: string;
  private readonly stops: StopMatcher;
  private readonly stream: TextStream;
  private readonly maxTokens: number;
  private readonly emit: (ev: EngineEvent) => void;
  /** Whether a pick's logprob is read (its events', or `logprobs`). */
  private readonly wantsLogprob: boolean;

  constructor(private readonly model: DecoderModel, opts: DecoderOptions) {
    this.index = opts.index;
    this.wantsLogprob = opts.logprobs || (opts.tokenLogprobs ?? true);
    this.sampler = opts.sampler;
    this.maxTokens = opts.maxTokens;
    this.emit = opts.emit;
    this.history = [...opts.prompt];
    this.stops = new StopMatcher(opts.stop);
    this.stream = new TextStream(model.tokenizer);
    // prime the stream with the prompt so the first piece's leading space is handled as in the reference
    for (const id of opts.prompt) this.stream.push(id);
    if (opts.logprobs) this.logprobs = [];
    if (this.maxTokens === 0) this.finish("length");
  }

  get finished(): boolean {
    return this.finishReason !== null;
  }

  /** Samples the next token from `logits` (edited in place by the sampler) and takes it (see take). */
  sample(logits: Float32Array): boolean {
    return this.take(this.sampler.sample(logits, this.history, this.wantsLogprob));
  }

  /**
   * Takes a drawn token: end-of-generation finishes the choice ("stop"); any other token is reported (a
   * TokenEvent, after stop matching), and then a completed stop string, maxTokens or a full context (the
   * positions before this token: the prompt and the tokens fed so far) finish it. Returns whether the token
   * is to be fed to the model for the next step.
   */
  take(pick: SampleResult): boolean {
    if (this.model.tokenizer.isEndOfGeneration(pick.id)) {
      this.finish("stop");
      return false;
    }
    this.tokens.push(pick.id);
    this.history.push(pick.id);
    this.logprobs?.push({ id: pick.id, logprob: pick.logprob, top: pick.top });
    const { emit, stopped } = this.stops.push(this.stream.push(pick.id));
    this.text += emit;
    // NaN whatever the pick carries when no logprob was asked for: a draw computes it anyway, a greedy pick does not,
    // and a caller that asked for none should not find it in some events and not in others
    const logprob = this.wantsLogprob ? pick.logprob : NaN;
    this.emit({ type: "token", choice: this.index, id: pick.id, text: emit, logprob, top: pick.top });
    if (stopped) {
      this.stop = this.stops.matched ?? undefined;
      this.finish("stop");
      return false;
    }
    if (this.tokens.length >= this.maxTokens || this.history.length - 1 >= this.model.contextLength) {
      this.finish("length");
      return false;
    }
    return true;
  }

  /** Ends the choice: releases held-back text (none after a stop string) and reports the finish. */
  finish(reason: FinishReason): void {
    if (this.finishReason !== null) return;
    this.finishReason = reason;
    const rest = this.stops.stopped ? "" : this.stops.push(this.stream.flush()).emit + this.stops.flush();
    this.text += rest;
    this.emit({ type: "finish", choice: this.index, reason, text: rest });
  }
}
