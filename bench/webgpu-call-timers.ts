import type { Model } from "../src/model/model.ts";

/** Time spent inside a model's forward pass (all of a token's recording), while forwardTimer's wrapper is on. */
export interface ForwardTimes {
  ms: number;
  calls: number;
  /** Puts the architecture's own forward back. */
  restore(): void;
}

/**
 * Wraps the model's architecture's forward with a timer (bench/webgpu.ts, bench/webgpu-host.ts): the host's time
 * per token inside it, against the token's wall time, says whether the host or the GPU bounds decode. Where the
 * backend replays decode steps (Backend.replayForward: Model's device loop), that call is what a step costs the
 * host, recorded or replayed, so it is timed too (a forward it records is counted once, inside it).
 */
export function forwardTimer(model: Model): ForwardTimes {
  const arch = model.arch as unknown as { forward: (...a: unknown[]) => void };
  const forward = arch.forward;
  const b = model.backend;
  const replay = b.replayForward;
  const times: ForwardTimes = {
    ms: 0,
    calls: 0,
    restore: () => {
      arch.forward = forward;
      if (replay) b.replayForward = replay;
    },
  };
  let inReplay = false;
  arch.forward = function (this: unknown, ...a: unknown[]) {
    if (inReplay) return forward.apply(this, a);
    const t = performance.now();
    forward.apply(this, a);
    times.ms += performance.now() - t;
    times.calls++;
  };
  if (replay) {
    b.replayForward = function (this: unknown, key: object, f: () => void) {
      const t = performance.now();
      inReplay = true;
      try {
        replay.call(this, key, f);
      } finally {
        inReplay = false;
      }
      times.ms += performance.now() - t;
      times.calls++;
    };
  }
  return times;
}

/**
 * Wraps the WebGPU methods a decode step calls (recording, finish, submit, writeBuffer) with timers, so
 * bench/webgpu-host.ts can tell Deno's own cost per dispatch from kvasm's bookkeeping around it. Each wrapper
 * adds its own few hundred nanoseconds: compare runs with and without (NOSPLIT=1) before reading the totals.
 * Returns the milliseconds spent per method, keyed "Class.method", updated as the wrapped calls run.
 */
export function splitTimers(): Record<string, number> {
  const g = globalThis as unknown as Record<string, { prototype: Record<string, unknown> }>;
  const t: Record<string, number> = {};
  const wrap = (cls: string, names: string[]) => {
    const proto = g[cls]?.prototype;
    if (!proto) return;
    for (const name of names) {
      const f = proto[name] as (...a: unknown[]) => unknown;
      if (typeof f !== "function") continue;
      const key = `${cls.replace("GPU", "")}.${name}`;
      t[key] = 0;
      proto[name] = function (this: unknown, ...a: unknown[]) {
        const s = performance.now();
        try {
          return f.apply(this, a);
        } finally {
          t[key] += performance.now() - s;
        }
      };
    }
  };
  wrap("GPUComputePassEncoder", ["setPipeline", "setBindGroup", "dispatchWorkgroups", "end"]);
  wrap("GPUCommandEncoder", ["beginComputePass", "finish", "copyBufferToBuffer"]);
  wrap("GPUQueue", ["submit", "writeBuffer"]);
  wrap("GPUDevice", ["createCommandEncoder", "createBindGroup"]);
  return t;
}
