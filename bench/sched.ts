/**
 * How long a process's threads sat runnable without a CPU (Linux's /proc/self/task/TID/schedstat: ns on a CPU, ns
 * waiting on a run queue): a thread of the pool descheduled mid-op, by another process or by the runtime's own helper
 * threads (the JIT's, the collector's), holds the others at that op's join. bench/threads.ts --joins and bench/peers.ts
 * (two-thread prefills) print it per prefill. Elsewhere than Linux both functions give undefined.
 */
import fs from "node:fs";
/**
 * Each thread of this process: [ns on a CPU, ns runnable but waiting for one] (Linux's /proc schedstat), then its
 * migrations between CPUs and its involuntary context switches (/proc .../sched, where the kernel has it: else 0), or
 * undefined elsewhere than Linux.
 */
export function taskTimes(): Map<string, [number, number, number, number]> | undefined {
  try {
    const out = new Map<string, [number, number, number, number]>();
    for (const tid of fs.readdirSync("/proc/self/task")) {
      const [cpu, wait] = fs.readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
      out.set(tid, [cpu, wait, ...schedCounts(tid)]);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** A thread's migrations between CPUs and involuntary context switches so far ([0, 0] where /proc lacks them). */
function schedCounts(tid: string): [number, number] {
  try {
    const text = fs.readFileSync(`/proc/self/task/${tid}/sched`, "utf8");
    const field = (name: string) => Number(text.match(new RegExp(`^${name}\\s*:\\s*(\\d+)`, "m"))?.[1] ?? 0);
    return [field("se\\.nr_migrations"), field("nr_involuntary_switches")];
  } catch {
    return [0, 0];
  }
}

/**
 * Between two taskTimes(): the `threads` threads that ran most (the pool's: caller and workers) and how long they sat
 * runnable without a CPU (descheduled: preempted by another process or by this runtime's own helper threads), and what
 * the process's other threads (the JIT's and the collector's) ran meanwhile.
 */
export function schedDelta(
  a: Map<string, [number, number, number, number]> | undefined,
  b: Map<string, [number, number, number, number]> | undefined,
  threads: number,
): { waitMs: number; otherCpuMs: number; migrations: number; preemptions: number } | undefined {
  if (!a || !b) return undefined;
  const d = [...b].map(([tid, now]) => now.map((x, i) => x - (a.get(tid)?.[i] ?? 0))).sort((x, y) => y[0] - x[0]);
  const pool = d.slice(0, threads), other = d.slice(threads);
  return {
    waitMs: pool.reduce((s, x) => s + x[1], 0) / 1e6,
    otherCpuMs: other.reduce((s, x) => s + x[0], 0) / 1e6,
    // the pool threads' moves between CPUs (each leaves its L1 and L2 behind) and involuntary switches (preemptions)
    migrations: pool.reduce((s, x) => s + x[2], 0),
    preemptions: pool.reduce((s, x) => s + x[3], 0),
  };
}
