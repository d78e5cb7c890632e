/**
 * The command line of a bench script, through node:util's parseArgs (Deno, Bun and Node alike): `--help` or
 * `-h` prints the script's usage and exits; an unknown flag or a missing value prints what is wrong, then the
 * usage, and exits with status 2, so a mistyped flag never starts a long run with the defaults. And runStamp,
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
    console.error(`${(e as Error).message}\n\n${usage}`);
    return exit(2);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    return exit(0);
  }
  return parsed;
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
