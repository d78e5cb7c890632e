/**
 * The memory budget of a load: what the machine has (or the caller allows) against what the layout plan
 * needs, checked before the backend reserves a byte, so a model that cannot fit fails at once with the
 * figures instead of part-way through a multi-GB reservation (or by the OS killing the process).
 */
import { OutOfMemoryError, ParamError } from "../errors.ts";
import { fmtBytes } from "./arena.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

/**
 * Physical memory of the machine in bytes, where the runtime tells: Deno.systemMemoryInfo, node:os totalmem
 * (Node, Bun), or navigator.deviceMemory (browsers, rounded GiB). Undefined where none does (edge hosts).
 */
async function machineMemoryBytes(): Promise<number | undefined> {
  try {
    const total = g.Deno?.systemMemoryInfo?.().total;
    if (typeof total === "number" && total > 0) return total;
  } catch {
    // no --allow-sys: fall through to node:os, which Deno serves without asking
  }
  try {
    const os = await import("node:os");
    const total = os.totalmem();
    if (total > 0) return total;
  } catch {
    // no node:os (browsers, some edge hosts)
  }
  const gib = g.navigator?.deviceMemory;
  return typeof gib === "number" && gib > 0 ? gib * 2 ** 30 : undefined;
}

const UNITS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** "8G", "512MiB", "1.5g", "4096" (bytes) as a byte count; undefined when it is none of those. */
export function parseByteSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const n = Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/**
 * Throws OutOfMemoryError when `needed` bytes (by part: weights, kv, scratch) exceed the caller's limit or the
 * machine's memory; returns the budget that applied (undefined: none known).
 */
export async function checkMemoryBudget(needed: number, parts: Record<string, number>, limit?: number): Promise<number | undefined> {
  if (limit !== undefined && !(Number.isFinite(limit) && limit > 0)) {
    throw new ParamError("memoryLimit", `must be a positive number of bytes, got ${limit}`);
  }
  const machine = await machineMemoryBytes();
  const budget = limit !== undefined && (machine === undefined || limit < machine) ? limit : machine;
  if (budget === undefined || needed <= budget) return budget;
  const what = Object.entries(parts).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${fmtBytes(n)}`).join(", ");
  const there = budget === limit ? `the memory limit is ${fmtBytes(budget)}` : `this machine has ${fmtBytes(budget)} of memory`;
  const fix = budget === limit
    ? "raise memoryLimit (--memory-limit), or use a smaller quantization, a shorter context or fewer sequences"
    : "use a smaller quantization, a shorter context (contextLength, --context) or fewer sequences (maxSequences)";
  throw new OutOfMemoryError(`model needs ${fmtBytes(needed)} (${what}) but ${there}: ${fix}`, { needed, available: budget });
}
