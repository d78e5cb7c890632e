import type { Backend } from "./backend.ts";
import type { TensorInfo } from "../formats/types.ts";
import { WasmBackend } from "./wasm.ts";
import { ThreadedWasmBackend } from "./wasm-threads.ts";
import { coreCount, MAX_THREADS, threadCount, threadSupport } from "../threads/spawn.ts";
import { ParamError, UnsupportedError } from "../errors.ts";

export type BackendName = "wasm" | "webgpu" | "auto";
export const BACKEND_NAMES: readonly BackendName[] = ["wasm", "webgpu", "auto"];

/**
 * What a model asks of a backend before it loads: its weight tensors, and the bytes of the rest (KV pages, scratch)
 * as a probe of that backend sizes them.
 */
export interface BackendNeeds {
  tensors: TensorInfo[];
  stateBytes(probe: Backend): number;
}

/** Picks a backend for `name`: `wasm` is the default WASM backend, to fall back on. */
export type NamedBackend = (
  name: BackendName,
  wasm: () => Promise<Backend>,
  needs: BackendNeeds,
  onNotice?: (message: string) => void,
) => Promise<Backend>;

/**
 * Backends other than WASM register their names when their module is imported
 * (src/backends/webgpu/select.ts: "webgpu", "auto"), so code that loads models
 * does not import them: the edge bundle, which never does, carries no GPU code.
 */
const named = new Map<BackendName, NamedBackend>();

export function registerBackend(names: readonly BackendName[], pick: NamedBackend): void {
  for (const n of names) named.set(n, pick);
}

/** The backend `name` asks for: "wasm" is selectBackend's; another name goes to whichever backend registered it. */
export function backendNamed(
  name: BackendName,
  wasm: () => Promise<Backend>,
  needs: BackendNeeds,
  onNotice?: (message: string) => void,
): Promise<Backend> {
  if (!BACKEND_NAMES.includes(name)) {
    throw new ParamError("backend", `must be one of ${BACKEND_NAMES.join(", ")}, got ${JSON.stringify(name)}`);
  }
  if (name === "wasm") return wasm();
  const pick = named.get(name);
  if (!pick) {
    throw new UnsupportedError(
      `backend "${name}" is not in this build (kvasm/edge runs WASM only); load from "kvasm", which includes WebGPU, or use backend "wasm"`,
    );
  }
  return pick(name, wasm, needs, onNotice);
}

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
  if (explicit) threadCount("threads", opts.threads!);
  const threads = opts.threads ?? Math.min(MAX_THREADS, await coreCount());
  if (threads <= 1 || !threadSupport()) return new WasmBackend({ relaxed: opts.relaxedSimd, ggmlOrder: opts.ggmlOrder });
  return new ThreadedWasmBackend({ threads, relaxed: opts.relaxedSimd, ggmlOrder: opts.ggmlOrder, fallback: !explicit });
}
