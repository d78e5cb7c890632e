/**
 * Bytes a stretch of JS allocates on the heap, in Deno and in Bun alike (tests/js-step-alloc.test.ts and
 * bench/js-step.ts). A measuring script calls `allocWindow` around each stretch and prints its result as the last
 * line of stdout; `measureInChild` runs that script in a child of the same runtime and returns each window's bytes.
 *
 * - Deno: V8's sampling heap profiler (node:inspector), every JS object allocation sampled at a 32-byte interval,
 *   collected ones included. (node:v8's total_allocated_bytes moved by 3-55 KB a token between windows of one
 *   steady decode run: it counts the collector's copies and the JIT's code too.)
 * - Bun: JavaScriptCore's total_allocated_bytes counts heap growth, not allocations (cells reused after a collection
 *   go uncounted), so the child runs with BUN_JSC_logGC=1; each window starts and ends with a full collection
 *   (Bun.gc(true)) between markers on stderr, and its bytes are the sum over its collections of (heap size at the
 *   collection's start - heap size after the previous one), to the kilobyte, on the main thread's heap only (the
 *   Workers' heaps log too). The two forced collections' own accounting adds about 1.4 MB whatever the window
 *   holds, so every window's bytes are given less those of an empty window measured first.
 */
import { Session } from "node:inspector";
import { spawnSync } from "node:child_process";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const isBun = g.Bun !== undefined;
let windows = 0;

interface ProfileNode {
  selfSize: number;
  children: ProfileNode[];
}

const sum = (n: ProfileNode): number => n.children.reduce((s, c) => s + sum(c), n.selfSize);

/** Runs `body` as one measured window: its bytes under Deno; under Bun NaN here (measureInChild reads them from the GC log). */
export async function allocWindow(body: () => Promise<void>): Promise<number> {
  if (isBun) {
    if (windows === 0) await bunWindow(() => Promise.resolve()); // the empty window the others are measured against
    await bunWindow(body);
    return NaN;
  }
  const session = new Session();
  session.connect();
  const post = (method: string, params: object = {}) =>
    new Promise<Record<string, unknown>>((res, rej) =>
      session.post(method, params, (e, r) => e ? rej(e) : res(r as Record<string, unknown>))
    );
  try {
    await post("HeapProfiler.enable");
    await post("HeapProfiler.startSampling", {
      samplingInterval: 32,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await body();
    const { profile } = await post("HeapProfiler.stopSampling") as { profile: { head: ProfileNode } };
    return sum(profile.head);
  } finally {
    session.disconnect();
  }
}

async function bunWindow(body: () => Promise<void>): Promise<void> {
  g.Bun.gc(true);
  console.error(`@@window-begin ${windows}`);
  await body();
  console.error(`@@window-end ${windows++}`);
  g.Bun.gc(true);
}

/**
 * Runs `script` (with `args`) in a child of this runtime and returns the JSON of its last stdout line, its
 * `windows` (each allocWindow's bytes, in order) filled in from the GC log under Bun.
 */
export function measureInChild<T extends { windows: number[] }>(script: string, args: string[]): T {
  const [cmd, argv] = g.Deno ? [g.Deno.execPath(), ["run", "-A", script, ...args]] : [g.process.execPath, [script, ...args]];
  const r = spawnSync(cmd, argv, {
    env: { ...g.process.env, ...(isBun ? { BUN_JSC_logGC: "1" } : {}), NO_COLOR: "1" },
    encoding: "utf8",
    maxBuffer: 256 << 20,
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`${script} failed (status ${r.status}): ${String(r.stderr).slice(-3000)}`);
  const result = JSON.parse(String(r.stdout).trim().split("\n").at(-1)!) as T;
  if (isBun) {
    const bytes = windowsFromGCLog(String(r.stderr));
    result.windows = result.windows.map((_, i) => bytes[i + 1] - bytes[0]);
  }
  return result;
}

/** Each window's bytes from a BUN_JSC_logGC=1 log (see the module comment), window 0 the empty one. */
function windowsFromGCLog(log: string): number[] {
  const out: number[] = [];
  const after = new Map<string, number>();
  let lastHeap = "", main = "", open = -1, bytes = 0, closing = false;
  for (const line of log.split("\n")) {
    const begin = line.match(/^@@window-begin (\d+)/), end = line.match(/^@@window-end (\d+)/);
    if (begin) open = Number(begin[1]), bytes = 0, closing = false, main = lastHeap;
    else if (end) closing = true;
    const heap = line.match(/^\[GC<(\w+)>/)?.[1];
    if (!heap) continue;
    lastHeap = heap;
    const start = line.match(/START \w+ (\d+)kb =>/), done = line.match(/=> (\d+)kb, p=[\d.]+ms \(max [\d.]+\), cycle/);
    if (start && open >= 0 && heap === main) bytes += (Number(start[1]) - after.get(heap)!) * 1024;
    if (done) {
      after.set(heap, Number(done[1]));
      // the forced collection after the window's end marker closes it
      if (closing && open >= 0 && heap === main) out[open] = bytes, open = -1, closing = false;
    }
  }
  return out;
}
