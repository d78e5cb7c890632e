/**
 * The command line of a bench script, through node:util's parseArgs (Deno, Bun and Node alike): `--help` or
 * `-h` prints the script's usage and exits; an unknown flag or a missing value prints what is wrong, then the
 * usage, and exits with status 2, so a mistyped flag never starts a long run with the defaults; intFlag, intListFlag,
 * floatFlag, listFlag, choiceFlag and shapeListFlag hold a flag's value to what the bench can run the same way, before
 * any model is loaded. And runStamp,
 * the when, where and how loaded that every measurement is printed with; runtime, what ran it; and median, the one
 * every printed median is.
 */
import { hostname, loadavg } from "node:os";
import { parseArgs, type ParseArgsConfig } from "node:util";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;

export function benchArgs<T extends ParseArgsConfig>(usage: string, config: T): ReturnType<typeof parseArgs<T>> {
  const args: string[] = g.Deno?.args ?? g.process.argv.slice(2);
  let parsed: ReturnType<typeof parseArgs<T>>;
  try {
    parsed = parseArgs({ ...config, args }) as ReturnType<typeof parseArgs<T>>;
  } catch (e) {
    return usageError((e as Error).message, usage);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    return exit(0);
  }
  return parsed;
}

/**
 * A flag's value as an integer in [min, max] (decimal digits only): anything else prints what is wrong and the usage,
 * and exits with status 2. Number() took "" and " " for 0, "1e3" for 1000 and "4x" for NaN, and a run of NaN or 0
 * steps printed NaN medians after loading its models.
 */
export function intFlag(usage: string, name: string, value: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    return usageError(`${flagName(name)}: must be an integer ${range}, got ${JSON.stringify(value)}`, usage);
  }
  return n;
}

/**
 * A comma-separated flag's integers, each in [min, max] as intFlag holds one, none twice (at least one): where
 * `.split(",").map(Number)` ran a misspelt entry as NaN rows or threads after the earlier entries' measurements.
 */
export function intListFlag(usage: string, name: string, value: string, min = 1, max = Number.MAX_SAFE_INTEGER): number[] {
  const items = value.split(",");
  const ns = items.map((it) => intFlag(usage, name, it, min, max));
  for (let i = 0; i < ns.length; i++) {
    if (ns.indexOf(ns[i]) !== i) return usageError(`${flagName(name)}: ${ns[i]} is listed twice`, usage);
  }
  return ns;
}

/**
 * A flag's value as a positive decimal number ("3350", "0.5"; no sign, exponent or unit): anything else prints what
 * is wrong and the usage, and exits with status 2.
 */
export function floatFlag(usage: string, name: string, value: string): number {
  const n = /^(\d+\.?\d*|\.\d+)$/.test(value) ? Number(value) : NaN;
  if (!(n > 0 && n < Infinity)) {
    return usageError(`${flagName(name)}: must be a positive number, got ${JSON.stringify(value)}`, usage);
  }
  return n;
}

/**
 * A comma-separated list of matrix shapes OUTxIN ("2048x768,768x2048"), each side an integer >= 1, none twice: where
 * `.split("x").map(Number)` let "2048x" or "2048*768" through as NaN sizes to fail inside a kernel's placement.
 */
export function shapeListFlag(usage: string, name: string, value: string): [number, number][] {
  const items = value.split(",");
  for (let i = 0; i < items.length; i++) {
    const m = /^([1-9]\d*)x([1-9]\d*)$/.exec(items[i]);
    if (!m || !(Number(m[1]) <= 2 ** 31 && Number(m[2]) <= 2 ** 31)) {
      return usageError(`${flagName(name)}: ${JSON.stringify(items[i])} is not OUTxIN (two integers >= 1, e.g. 2048x768)`, usage);
    }
    if (items.indexOf(items[i]) !== i) return usageError(`${flagName(name)}: ${items[i]} is listed twice`, usage);
  }
  return items.map((it) => it.split("x").map(Number) as [number, number]);
}

/**
 * A comma-separated flag's entries, each one of `allowed` and none twice (at least one): anything else prints what is
 * wrong and the usage, and exits with status 2, where a cast let a misspelt entry through to fail (or run something
 * else) after the earlier entries' measurements.
 */
export function listFlag<T extends string>(usage: string, name: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(",");
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (!(allowed as readonly string[]).includes(it)) {
      return usageError(`${flagName(name)}: ${JSON.stringify(it)} is not one of ${allowed.join(", ")}`, usage);
    }
    if (items.indexOf(it) !== i) return usageError(`${flagName(name)}: ${it} is listed twice`, usage);
  }
  return items as T[];
}

/**
 * A flag's one value, one of `allowed` (a list is not): anything else prints what is wrong and the usage, and exits with
 * status 2, where a cast passed a misspelt form on to fail after the earlier models' measurements.
 */
export function choiceFlag<T extends string>(usage: string, name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    return usageError(`${flagName(name)}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`, usage);
  }
  return value as T;
}

/**
 * How a message names what was given: "--steps" for a flag's name, and as it stands for a positional argument's or an
 * environment variable's (names of two or more capitals: "TOKENS", "BENCH_STEPS"; --T is a flag), as the usage
 * spells those.
 */
function flagName(name: string): string {
  return /^[A-Z][A-Z_]+$/.test(name) ? name : `--${name}`;
}

/** Prints `message` and the usage, and exits with status 2: a flag a bench requires, or flags that do not go together. */
export function usageError(message: string, usage: string): never {
  console.error(`${message}\n\n${usage}`);
  return exit(2);
}

function exit(code: number): never {
  g.Deno ? g.Deno.exit(code) : g.process.exit(code);
  throw new Error("unreachable");
}

/** The runtime and its version, as benches print it: "deno 2.9.6", "bun 1.4.5", "node v24.1.0". */
export const runtime: string = g.Deno ? `deno ${g.Deno.version.deno}` : g.Bun ? `bun ${g.Bun.version}` : `node ${g.process.version}`;

/** When (UTC), on which host and under what load a bench ran: "2026-12-05T13:20:49.744Z, host, load average 3.7 4.7 3.8". */
export function runStamp(): string {
  return `${new Date().toISOString()}, ${hostname()}, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`;
}

/**
 * The median of xs: the middle value, or the mean of the two middle ones for an even count (NaN for none). One
 * definition for every bench, where some took the upper of the two middle values and some their mean; xs is not
 * reordered.
 */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b), h = s.length >> 1;
  return s.length & 1 ? s[h] : (s[h - 1] + s[h]) / 2;
}
