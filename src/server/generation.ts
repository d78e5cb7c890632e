/**
 * What the HTTP layer needs from a text generator: start a request for `n`
 * choices over prompt ids, receive per-choice text deltas (with the tokens
 * behind them, for logprobs) and finish reasons, and cancel through a signal.
 * `EngineGenerator` (engine-generator.ts) implements it over the batching
 * Engine; the handler never sees which.
 */
import type { SamplingParams } from "../sampling/params.ts";
import type { TokenLogprob } from "../sampling/sampler.ts";

export interface GenerationRequest {
  promptIds: number[];
  /** undefined: until end of generation or the context is full. */
  maxTokens: number | undefined;
  sampling: SamplingParams;
  stop: string[];
  n: number;
  signal: AbortSignal;
}

export interface GeneratedTokenInfo {
  id: number;
  /** The token's own text (bytes as UTF-8, lossy for partial characters). */
  piece: string;
  logprob: number;
  top: TokenLogprob[];
}

export type FinishReason = "stop" | "length" | "abort";

export type GenerationEvent =
  /** Text of choice `index` that is final (clear of stop strings), and the tokens sampled since the last delta. */
  | { type: "delta"; index: number; text: string; tokens: GeneratedTokenInfo[] }
  | { type: "finish"; index: number; finishReason: FinishReason };

export interface GenerationUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface GenerationHandle extends AsyncIterable<GenerationEvent> {
  /** Resolves after the last event with exact token counts; rejects with the request's error. */
  readonly done: Promise<GenerationUsage>;
}

export interface Generator {
  start(req: GenerationRequest): GenerationHandle;
  /** Requests started and not yet finished (admitted work, for the 429 bound). */
  readonly inFlight: number;
  /** Sequences holding KV memory right now (tests assert cancelled requests give theirs back). */
  readonly activeSequences: number;
  /** Generations start() accepts right now (undefined: no bound); a request needing more is refused before any starts. */
  readonly capacity?: number;
  /** Generations waiting to be scheduled (for /metrics). */
  readonly waiting?: number;
  /** KV cache pages free, kept by the prefix cache, and in all (for /metrics). */
  readonly freeKvPages?: number;
  readonly cachedKvPages?: number;
  readonly totalKvPages?: number;
}

/** A push queue read as an async iterable: producers push, one consumer iterates; end() or fail() closes it. */
export class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private failWaiting: ((e: unknown) => void) | null = null;
  private ended = false;
  private error: unknown = undefined;

  push(item: T): void {
    if (this.ended) return;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = this.failWaiting = null;
      w({ value: item, done: false });
    } else this.items.push(item);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = this.failWaiting = null;
      w({ value: undefined, done: true });
    }
  }

  fail(e: unknown): void {
    if (this.ended) return;
    this.error = e ?? new Error("generation failed");
    this.ended = true;
    if (this.failWaiting) {
      const f = this.failWaiting;
      this.waiting = this.failWaiting = null;
      f(this.error);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.error !== undefined) return Promise.reject(this.error);
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.failWaiting = reject;
        });
      },
    };
  }
}
