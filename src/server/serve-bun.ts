/** Bun.serve adapter. idleTimeout 0: a stream may go quiet while a long prompt is prefilled. */
import { DEFAULT_HOST, DEFAULT_PORT, type FetchHandler, type RunningServer, type ServeOptions, urlOf } from "./serve-types.ts";

// deno-lint-ignore no-explicit-any
declare const Bun: any;

export function serveBun(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  const hostname = opts.host ?? DEFAULT_HOST;
  const server = Bun.serve({ hostname, port: opts.port ?? DEFAULT_PORT, idleTimeout: 0, fetch: handler });
  return Promise.resolve({ url: urlOf(hostname, server.port), port: server.port, close: () => server.stop(true) });
}
