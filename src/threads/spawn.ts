/**
 * Starting one pool thread in whichever Worker the runtime has: the web
 * Worker (Deno, Bun, browsers) or node:worker_threads (Node). The rest of the
 * pool sees only a WorkerHandle.
 */

/** How this runtime starts threads, or undefined where it cannot (edge functions, pages without cross-origin isolation). */
export type ThreadSupport = "web" | "node";

import { ParamError, positiveInteger } from "../errors.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/** Can this runtime run the threaded backend: a Worker to start and shared WebAssembly memory to give it? */
export function threadSupport(): ThreadSupport | undefined {
  if (!sharedMemoryWorks()) return undefined;
  if (typeof g.Worker === "function") return "web";
  // plain Node has no global Worker; Deno and Bun do, and when it is gone there (a sandbox took it) there are no threads
  const isNode = typeof g.process?.versions?.node === "string" && typeof g.Deno === "undefined" && typeof g.Bun === "undefined";
  return isNode ? "node" : undefined;
}

function sharedMemoryWorks(): boolean {
  try {
    return typeof SharedArrayBuffer === "function" && typeof Atomics === "object" &&
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/**
 * The most threads a backend starts. Each Worker instantiates the kernels and keeps its own heap (1000 threads added
 * 9 GiB resident and took seconds to start), and past the core count threads only take turns on the same cores. A
 * fixed bound rather than a multiple of this machine's cores: the same `threads` is valid on every machine (a tuned
 * setting copied to a smaller one runs, oversubscribed, instead of failing), and 256 is above the cores of one
 * socket of today's largest servers while keeping the worst case's memory to about 2 GiB.
 */
export const MAX_THREADS = 256;

/** `threads` where it is an integer in [1, MAX_THREADS]; else a ParamError naming `param` that says the limit. */
export function threadCount(param: string, threads: number): number {
  positiveInteger(param, threads);
  if (threads > MAX_THREADS) {
    throw new ParamError(param, `must be at most ${MAX_THREADS} (each thread is a Worker with its own memory), got ${threads}`);
  }
  return threads;
}

/** Cores of this machine: navigator.hardwareConcurrency, else os.availableParallelism(), else 1. */
export async function coreCount(): Promise<number> {
  const n = g.navigator?.hardwareConcurrency;
  if (Number.isInteger(n) && n > 0) return n;
  try {
    const os = await import("node:os");
    return os.availableParallelism?.() ?? os.cpus().length ?? 1;
  } catch {
    return 1;
  }
}

export interface WorkerEvents {
  message(data: unknown): void;
  /** The thread died or could not start (uncaught error, exit, terminate()). Called at most once. */
  failure(reason: string): void;
}

/** One started thread. terminate() also reports a failure, so a pool never waits on a thread it stopped. */
export interface WorkerHandle {
  post(msg: unknown): void;
  terminate(): void;
  /** Stop this thread from keeping the process alive (Node, Bun). */
  unref(): void;
}

export async function spawnWorker(url: URL | string, kind: ThreadSupport, on: WorkerEvents): Promise<WorkerHandle> {
  let failed = false;
  const failure = (reason: string) => {
    if (failed) return;
    failed = true;
    on.failure(reason);
  };
  if (kind === "web") {
    const w = new g.Worker(url, { type: "module" });
    w.addEventListener("message", (e: MessageEvent) => on.message(e.data));
    w.addEventListener("error", (e: ErrorEvent) => {
      e.preventDefault?.(); // the pool reports it; keep the runtime from treating it as uncaught
      failure(`uncaught error: ${e.message ?? e}`);
    });
    w.addEventListener("messageerror", () => failure("could not receive a message"));
    w.addEventListener("close", () => failure("exited")); // Bun only
    return {
      post: (m) => w.postMessage(m),
      terminate: () => {
        failure("terminated");
        w.terminate();
      },
      unref: () => w.unref?.(),
    };
  }
  const { Worker } = await import("node:worker_threads");
  const w = new Worker(url instanceof URL ? url : new URL(url));
  w.on("message", (m: unknown) => on.message(m));
  w.on("error", (e: Error) => failure(`uncaught error: ${e.message}`));
  w.on("exit", (code: number) => failure(`exited with code ${code}`));
  return {
    post: (m) => w.postMessage(m),
    terminate: () => {
      failure("terminated");
      void w.terminate();
    },
    unref: () => w.unref(),
  };
}
