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
