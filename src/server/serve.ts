/** Starts a fetch handler on this runtime's own server (Deno.serve, Bun.serve), or on node:http where asked or where there is none. */
import { checkOptionNames, ParamError } from "../errors.ts";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  type FetchHandler,
  type RunningServer,
  SERVE_OPTION_NAMES,
  type ServeOptions,
  urlOf,
} from "./serve-types.ts";

export type { FetchHandler, RunningServer, ServeOptions } from "./serve-types.ts";

export async function serve(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  checkOptionNames("serve", opts, SERVE_OPTION_NAMES);
  try {
    return await start(handler, opts);
  } catch (e) {
    throw (await listenError(e, opts)) ?? e;
  }
}

function start(handler: FetchHandler, opts: ServeOptions): Promise<RunningServer> {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (opts.http === "node") return import("./serve-node.ts").then((m) => m.serveNode(handler, opts));
  if (g.Deno) return import("./serve-deno.ts").then((m) => m.serveDeno(handler, opts));
  if (g.Bun) return import("./serve-bun.ts").then((m) => m.serveBun(handler, opts));
  return import("./serve-node.ts").then((m) => m.serveNode(handler, opts));
}

/**
 * An address the server cannot listen on, as a ParamError that says what to do: the three runtimes' own errors
 * (Deno's AddrInUse, Bun's "Failed to start server", node:net's EADDRINUSE) all carry the same `code`, and
 * `kvasm serve` on a busy port printed their stack traces. A host name that does not resolve is told so first: Bun.serve
 * reports it as EADDRINUSE ("Is port 8080 in use?", Bun 1.4.5), which read as a busy port, and Deno's error has no code.
 */
async function listenError(e: unknown, opts: ServeOptions): Promise<ParamError | undefined> {
  const code = (e as { code?: unknown } | null)?.code;
  const host = opts.host ?? DEFAULT_HOST;
  const at = urlOf(host, opts.port ?? DEFAULT_PORT).slice("http://".length);
  const local = "127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of this machine's own addresses";
  if (await unresolvable(host)) return new ParamError("host", `${host} is not an address or a name that resolves to one: give ${local}`);
  if (code === "EADDRINUSE") {
    return new ParamError("port", `${at} is already in use (another server?): pick another port, or 0 for a free one`);
  }
  if (code === "EACCES" || code === "EPERM") {
    return new ParamError("port", `${at}: permission denied (ports below 1024 need privileges): pick a port from 1024 up`);
  }
  if (code === "EADDRNOTAVAIL") return new ParamError("host", `${at}: this machine has no such address to listen on: give ${local}`);
  return undefined;
}

/**
 * Whether `host` is a name that does not resolve (an IP literal never is); a lookup that takes over 3 s counts as
 * resolving, so that a slow resolver leaves the runtime's own error as it was rather than delaying it further.
 */
async function unresolvable(host: string): Promise<boolean> {
  const { isIP } = await import("node:net");
  if (isIP(host) !== 0) return false;
  const { lookup } = await import("node:dns/promises");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const slow = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 3000));
  try {
    return await Promise.race([lookup(host).then(() => false, () => true), slow]);
  } finally {
    clearTimeout(timer);
  }
}
