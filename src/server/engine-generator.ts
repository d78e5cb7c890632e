/**
 * The server's Generator over kvasm's Engine: every HTTP request becomes one
 * engine request, so concurrent clients share forward passes (continuous
 * batching), each on its own sequences. Token events become text deltas with
 * their token; a choice's finish carries any text released only at the end.
 */
import type { Engine } from "../engine/engine.ts";
import { QueueFullError } from "../engine/engine.ts";
import type { FinishReason as EngineFinish } from "../engine/request.ts";
import {
  EventQueue,
  type FinishReason,
  type GenerationEvent,
  type GenerationHandle,
  type GenerationRequest,
  type Generator,
} from "./generation.ts";
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
    return this.engine.model.kv.nPages;
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
        // the engine reports logprobs whenever the field is present
        ...(logprobs !== undefined ? { logprobs } : {}),
        signal: req.signal,
      });
    } catch (e) {
      if (e instanceof QueueFullError) {
        throw new HttpError(429, e.message, "rate_limit_error", null, "queue_full", { "Retry-After": "1" });
      }
      throw e;
    }
    this.started++;
    const events = new EventQueue<GenerationEvent>();
    const request = r;
    const done = (async () => {
      try {
        for await (const ev of request) {
          if (ev.type === "token") {
            events.push({
              type: "delta",
              index: ev.choice,
              text: ev.text,
              tokens: [{ id: ev.id, piece: ev.text, logprob: ev.logprob, top: ev.top }],
            });
          } else {
            if (ev.text) events.push({ type: "delta", index: ev.choice, text: ev.text, tokens: [] });
            events.push({ type: "finish", index: ev.choice, finishReason: finish(ev.reason) });
          }
        }
        const result = await request.done;
        const failed = result.choices.find((c) => c.error);
        if (failed?.error) throw failed.error;
        events.end();
        return { promptTokens: result.usage.promptTokens, completionTokens: result.usage.completionTokens };
      } catch (e) {
        events.fail(e);
        throw e;
      } finally {
        this.started--;
      }
    })();
    done.catch(() => {}); // seen through the events by the consumer
    return { done, [Symbol.asyncIterator]: () => events[Symbol.asyncIterator]() };
  }
}

function finish(r: EngineFinish): FinishReason {
  return r === "error" ? "abort" : r;
}
