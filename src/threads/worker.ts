/**
 * A pool thread. It gets the compiled kernel module and the shared memory in
 * one start message, instantiates the kernels over that memory, answers
 * "ready", and from then on never touches its message port: it waits for the
 * control block's GEN to change (spinning briefly, then Atomics.wait), claims
 * and runs chunks of the op until none are left, adding 1 to DONE for each.
 *
 * Loads as a web Worker (Deno, Bun, browsers) or under node:worker_threads.
 * Imports only ./control.ts, so it bundles into one self-contained script.
 */
import {
  CONTROL_BASE,
  DONE,
  FAILED,
  GEN,
  HAS_PAUSE,
  MSG,
  MSG_BYTES,
  MSG_LEN,
  runShare,
  SLEEPERS,
  SPIN_PAUSE,
  spinHint,
  STAT,
  STAT_FIELDS,
  STAT_MAX_THREADS,
  STAT_THREAD,
  STATS_ON,
  STOP,
  type ThreadView,
  threadView,
} from "./control.ts";

export interface StartMessage {
  type: "start";
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  names: readonly string[];
  index: number;
  /** GEN when the pool started: the first op bumps it past this. */
  gen: number;
  /** Milliseconds a worker spins on GEN before it sleeps in Atomics.wait. */
  spinMs: number;
  /** The per-kernel statistics every thread writes while recording (control.ts kernelStatIndex). */
  kernelStats: SharedArrayBuffer;
}

export type WorkerReply = { type: "ready"; index: number } | { type: "error"; index: number; message: string };

type Port = { post(msg: WorkerReply): void; onMessage(fn: (msg: StartMessage) => void): void };

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

async function port(): Promise<Port> {
  if (typeof g.self?.postMessage === "function") {
    return {
      post: (m) => g.self.postMessage(m),
      onMessage: (fn) => g.self.addEventListener("message", (e: MessageEvent) => fn(e.data)),
    };
  }
  const { parentPort } = await import("node:worker_threads");
  if (!parentPort) throw new Error("kvasm worker: not running in a worker thread");
  return { post: (m) => parentPort.postMessage(m), onMessage: (fn) => parentPort.on("message", fn) };
}

/** The wait-run-report loop; returns when the pool stops or this thread fails. */
function serve(v: ThreadView, index: number, seen: number, spinMs: number): void {
  const c = v.ctl;
  let parked = false;
  for (;;) {
    // spin: between the ops of one forward pass the next op comes within microseconds
    let gen = Atomics.load(c, GEN);
    if (gen === seen) {
      const until = performance.now() + spinMs;
      for (let i = 1; (gen = Atomics.load(c, GEN)) === seen; i++) {
        if (HAS_PAUSE && c[SPIN_PAUSE] === 1) spinHint.pause();
        if ((i & 1023) === 0 && performance.now() > until) break;
      }
      // counted before the wait reads GEN: the caller, which stores GEN and then reads SLEEPERS, either
      // sees this thread counted and notifies, or stored GEN first and the wait returns at once
      while ((gen = Atomics.load(c, GEN)) === seen) {
        Atomics.add(c, SLEEPERS, 1);
        Atomics.wait(c, GEN, seen);
        Atomics.sub(c, SLEEPERS, 1);
        parked = true;
      }
    }
    seen = gen;
    if (Atomics.load(c, STOP)) return;
    if (c[STATS_ON] === 1 && index < STAT_MAX_THREADS) countWake(v, index, parked);
    parked = false;
    try {
      runShare(v, gen);
    } catch (e) {
      fail(v, index, e);
      return;
    }
  }
}

/** Statistics (STATS): how long after its publication this thread saw an op, by whether it had slept in Atomics.wait. */
function countWake(v: ThreadView, index: number, parked: boolean): void {
  const s = v.stats, at = STAT_THREAD + index * STAT_FIELDS;
  const delay = performance.timeOrigin + performance.now() - s[STAT.published];
  if (parked) {
    s[at + STAT.parks]++;
    s[at + STAT.parkedOps]++;
    s[at + STAT.parkedDelayMs] += delay;
  } else {
    s[at + STAT.spunOps]++;
    s[at + STAT.spunDelayMs] += delay;
  }
}

/** Publishes the failure in the control block (the caller's join loop sees it without an event), counts the chunk as done, and stops. */
function fail(v: ThreadView, index: number, e: unknown): void {
  const text = `worker ${index}: ${(e as Error)?.stack ?? String(e)}`;
  const bytes = new TextEncoder().encode(text).subarray(0, MSG_BYTES);
  new Uint8Array(v.heap.buffer, CONTROL_BASE + MSG, MSG_BYTES).set(bytes);
  Atomics.store(v.ctl, MSG_LEN, bytes.length);
  Atomics.compareExchange(v.ctl, FAILED, 0, index);
  Atomics.add(v.ctl, DONE, 1);
  Atomics.notify(v.ctl, DONE);
}

const p = await port();
p.onMessage((msg) => {
  if (msg?.type !== "start") return;
  let view: ThreadView;
  try {
    const instance = new WebAssembly.Instance(msg.module, { env: { memory: msg.memory } });
    view = threadView(msg.memory, instance.exports as Record<string, unknown>, msg.names, msg.index, msg.kernelStats);
    const missing = msg.names.filter((_, i) => typeof view.fns[i] !== "function");
    if (missing.length) throw new Error(`kernel build lacks ${missing.join(", ")}`);
  } catch (e) {
    p.post({ type: "error", index: msg.index, message: (e as Error)?.message ?? String(e) });
    return;
  }
  p.post({ type: "ready", index: msg.index });
  // leave the message handler first, so "ready" is flushed before this thread blocks
  setTimeout(() => serve(view, msg.index, msg.gen, msg.spinMs), 0);
});
