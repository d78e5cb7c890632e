/**
 * What a generation reports, for generate(), the engine and the server alike: one token event per generated
 * token (after stop matching), one finish event per choice, one FinishReason, and the one push queue that
 * carries them to an async consumer.
 */
import type { TokenLogprob } from "../sampling/sampler.ts";

/** "stop": end-of-generation token or a stop string; "length": maxTokens or the context is full; "abort": cancelled. */
export type FinishReason = "stop" | "length" | "abort";

/**
 * One generated token of one choice, reported after stop matching: `text` is the text it releases (clear of
 * stop strings and whole UTF-8; "" while held back). The token that completes a stop string is reported too,
 * with the text before the stop string; an end-of-generation token is not (it ends the choice instead).
 */
export interface TokenEvent {
  type: "token";
  choice: number;
  id: number;
  text: string;
  logprob: number;
  /** The top alternatives (when `logprobs` > 0), descending. */
  top: TokenLogprob[];
}

/** A choice ended. `text` is any text released only now (held back for a stop string that did not complete). */
export interface FinishEvent {
  type: "finish";
  choice: number;
  reason: FinishReason;
  text: string;
}

export type EngineEvent = TokenEvent | FinishEvent;

/** A push queue read as an async iterable: producers push, one consumer iterates; end() or fail() closes it. */
export class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private head = 0;
  private waiting: ((r: IteratorResult<T>) => void) | null = null;
  private failWaiting: ((e: unknown) => void) | null = null;
  private ended = false;
  private failed = false;
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
    this.wake();
  }

  /** Ends the queue with an error: the consumer gets the items pushed before it, then the error. */
  fail(e: unknown): void {
    if (this.ended) return;
    this.ended = this.failed = true;
    this.error = e;
    this.wake();
  }

  private wake(): void {
    if (!this.waiting) return;
    const w = this.waiting, f = this.failWaiting!;
    this.waiting = this.failWaiting = null;
    if (this.failed) f(this.error);
    else w({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.head < this.items.length) {
          const item = this.items[this.head];
          // drop consumed items in batches, so a long stream neither shifts per item nor keeps what was read
          if (++this.head === this.items.length || this.head > 1024) {
            this.items.splice(0, this.head);
            this.head = 0;
          }
          return Promise.resolve({ value: item, done: false });
        }
        if (this.failed) return Promise.reject(this.error);
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.waiting = resolve;
          this.failWaiting = reject;
        });
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }
}
