/**
 * What the HTTP layer needs from a text generator: start a request for `n`
 * choices over prompt ids, receive the engine's events (engine/events.ts: a
 * token with the text it releases, then each choice's finish) and cancel
 * through a signal. `EngineGenerator` (engine-generator.ts) implements it
 * over the batching Engine; the handler never sees which.
 */
import type { SamplingParams } from "../sampling/params.ts";
import type { EngineEvent } from "../engine/events.ts";

export interface GenerationRequest {
  promptIds: number[];
  /** undefined: until end of generation or the context is full. */
  maxTokens: number | undefined;
  sampling: SamplingParams;
  stop: string[];
  n: number;
  signal: AbortSignal;
}

export interface GenerationUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface GenerationHandle extends AsyncIterable<EngineEvent> {
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
