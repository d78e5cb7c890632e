import type { Backend } from "./backend.ts";
import { WasmBackend } from "./wasm.ts";
import { ThreadedWasmBackend } from "./wasm-threads.ts";
import { coreCount, threadSupport } from "../threads/spawn.ts";
import { ParamError } from "../errors.ts";

export interface BackendChoice {
  /** Threads in all, the calling thread included; default: the machine's cores. 1 = the single-thread backend. */
  threads?: number;
  relaxedSimd?: boolean;
  ggmlOrder?: boolean;
}

/**
 * The backend loadModel runs on when none is given: WASM on `threads` threads
 * (default: one per core), or on the calling thread alone where the runtime
 * has no Worker or no shared WebAssembly memory (edge functions, pages without
 * cross-origin isolation), without being asked. Defaulted threads whose
 * Workers then fail to start also fall back; an explicit `threads` > 1 whose
 * Workers fail to start is an error.
 */
export async function selectBackend(opts: BackendChoice = {}): Promise<Backend> {
  const explicit = opts.threads !== undefined;
  if (explicit && !(Number.isInteger(opts.threads) && opts.threads! >= 1)) {
    throw new ParamError("threads", `must be a positive integer, got ${opts.threads}`);
  }
  const threads = opts.threads ?? await coreCount();
  if (threads <= 1 || !threadSupport()) return new WasmBackend({ relaxed: opts.relaxedSimd, ggmlOrder: opts.ggmlOrder });
  return new ThreadedWasmBackend({ threads, relaxed: opts.relaxedSimd, ggmlOrder: opts.ggmlOrder, fallback: !explicit });
}
