/** Starts a fetch handler on this runtime's own server (Deno.serve, Bun.serve), or on node:http where asked or where there is none. */
import { checkOptionNames, ParamError } from "../errors.ts";
import { DEFAULT_HOST, DEFAULT_PORT, type FetchHandler, type RunningServer, SERVE_OPTION_NAMES, type ServeOptions } from "./serve-types.ts";

export type { FetchHandler, RunningServer, ServeOptions } from "./serve-types.ts";

export async function serve(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  checkOptionNames("serve", opts, SERVE_OPTION_NAMES);
  try {
    return await start(handler, opts);
  } catch (e) {
    throw listenError(e, opts) ?? e;
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
 * `kvasm serve` on a busy port printed their stack traces.
 */
function listenError(e: unknown, opts: ServeOptions): ParamError | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  const at = `${opts.host ?? DEFAULT_HOST}:${opts.port ?? DEFAULT_PORT}`;
  if (code === "EADDRINUSE") {
    return new ParamError("port", `${at} is already in use (another server?): pick another port, or 0 for a free one`);
  }
  if (code === "EACCES" || code === "EPERM") {
    return new ParamError("port", `${at}: permission denied (ports below 1024 need privileges): pick a port from 1024 up`);
  }
  if (code === "EADDRNOTAVAIL") return new ParamError("host", `${at}: this machine has no such address to listen on`);
  return undefined;
}
