/**
 * How long a process's threads sat runnable without a CPU (Linux's /proc/self/task/TID/schedstat: ns on a CPU, ns
 * waiting on a run queue): a thread of the pool descheduled mid-op, by another process or by the runtime's own helper
 * threads (the JIT's, the collector's), holds the others at that op's join. bench/threads.ts --joins and bench/peers.ts
 * (two-thread prefills) print it per prefill. Elsewhere than Linux both functions give undefined.
 */
import fs from "node:fs";
/** Each thread of this process: [ns on a CPU, ns runnable but waiting for one] (Linux's /proc schedstat), or undefined elsewhere. */
export function taskTimes(): Map<string, [number, number]> | undefined {
  try {
    const out = new Map<string, [number, number]>();
    for (const tid of fs.readdirSync("/proc/self/task")) {
      const [cpu, wait] = fs.readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
      out.set(tid, [cpu, wait]);
    }
    return out;
  } catch {
    return undefined;
  }
}

/**
 * Between two taskTimes(): the `threads` threads that ran most (the pool's: caller and workers) and how long they sat
 * runnable without a CPU (descheduled: preempted by another process or by this runtime's own helper threads), and what
 * the process's other threads (the JIT's and the collector's) ran meanwhile.
 */
export function schedDelta(
  a: Map<string, [number, number]> | undefined,
  b: Map<string, [number, number]> | undefined,
  threads: number,
): { waitMs: number; otherCpuMs: number } | undefined {
  if (!a || !b) return undefined;
  const d = [...b].map(([tid, [cpu, wait]]) => [cpu - (a.get(tid)?.[0] ?? 0), wait - (a.get(tid)?.[1] ?? 0)]).sort((x, y) => y[0] - x[0]);
  const pool = d.slice(0, threads), other = d.slice(threads);
  return { waitMs: pool.reduce((s, x) => s + x[1], 0) / 1e6, otherCpuMs: other.reduce((s, x) => s + x[0], 0) / 1e6 };
}
