/**
 * The server's Generator over kvasm's Engine: every HTTP request becomes one
 * engine request, so concurrent clients share forward passes (continuous
 * batching), each on its own sequences. The handler reads the engine
 * request's own events; only the usage counts are reshaped.
 */
import type { Engine } from "../engine/engine.ts";
import { QueueFullError } from "../engine/engine.ts";
import type { GenerationHandle, GenerationRequest, Generator } from "./generation.ts";
import { HttpError } from "./http-error.ts";

export class EngineGenerator implements Generator {
  private started = 0;

  constructor(readonly engine: Engine) {}

  get inFlight(): number {
    return this.started;
  }

  get activeSequences(): number {
    return this.engine.activeSequences;
  }

  get capacity(): number {
    return this.engine.queueRoom;
  }

  get waiting(): number {
    return this.engine.queueLength;
  }

  get freeKvPages(): number {
    return this.engine.freePages;
  }

  get cachedKvPages(): number {
    return this.engine.prefixCache?.size ?? 0;
  }

  get totalKvPages(): number {
    return this.engine.totalPages;
  }

  start(req: GenerationRequest): GenerationHandle {
    const { logprobs, ...sampling } = req.sampling;
    let r;
    try {
      r = this.engine.submit({
        ...sampling,
        prompt: req.promptIds,
        maxTokens: req.maxTokens,
        stop: req.stop,
        n: req.n,
        // the engine reports logprobs whenever the field is present; without it no event's logprob is read
        ...(logprobs !== undefined ? { logprobs } : { tokenLogprobs: false }),
        signal: req.signal,
      });
    } catch (e) {
      if (e instanceof QueueFullError) {
        throw new HttpError(429, e.message, "rate_limit_error", null, "queue_full", { "Retry-After": "1" });
      }
      throw e;
    }
    this.started++;
    const request = r;
    const done = request.done.then(
      (result) => ({ promptTokens: result.usage.promptTokens, completionTokens: result.usage.completionTokens }),
    ).finally(() => this.started--);
    done.catch(() => {}); // seen through the events by the consumer
    return { done, [Symbol.asyncIterator]: () => request[Symbol.asyncIterator]() };
  }
}
