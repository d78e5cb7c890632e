/**
 * The command line of a bench script, through node:util's parseArgs (Deno, Bun and Node alike): `--help` or
 * `-h` prints the script's usage and exits; an unknown flag or a missing value prints what is wrong, then the
 * usage, and exits with status 2, so a mistyped flag never starts a long run with the defaults; intFlag and listFlag
 * hold a flag's value to what the bench can run, the same way. And runStamp,
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
    return usageError(`--${name}: must be an integer ${range}, got ${JSON.stringify(value)}`, usage);
  }
  return n;
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
      return usageError(`--${name}: ${JSON.stringify(it)} is not one of ${allowed.join(", ")}`, usage);
    }
    if (items.indexOf(it) !== i) return usageError(`--${name}: ${it} is listed twice`, usage);
  }
  return items as T[];
}

/**
 * A flag's one value, one of `allowed` (a list is not): anything else prints what is wrong and the usage, and exits with
 * status 2, where a cast passed a misspelt form on to fail after the earlier models' measurements.
 */
export function choiceFlag<T extends string>(usage: string, name: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    return usageError(`--${name}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`, usage);
  }
  return value as T;
}

function usageError(message: string, usage: string): never {
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
