/**
 * Bun.serve adapter. Bun's idleTimeout closes a connection that sends
 * nothing (no headers, or no next request) for that long; once a request's
 * headers are in it is switched off for that request, because a stream may
 * go quiet while a long prompt is prefilled (the handler bounds the body's
 * arrival itself).
 */
import { DEFAULT_HOST, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_PORT, type FetchHandler, type RunningServer, type ServeOptions, urlOf } from "./serve-types.ts";

// deno-lint-ignore no-explicit-any
declare const Bun: any;

export function serveBun(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  const hostname = opts.host ?? DEFAULT_HOST;
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  // Bun counts whole seconds, at most 255
  const idleTimeout = idleMs <= 0 ? 0 : Math.min(255, Math.max(1, Math.ceil(idleMs / 1000)));
  const server = Bun.serve({
    hostname,
    port: opts.port ?? DEFAULT_PORT,
    idleTimeout,
    // deno-lint-ignore no-explicit-any
    fetch(req: Request, srv: any) {
      srv.timeout?.(req, 0);
      return handler(req);
    },
  });
  return Promise.resolve({ url: urlOf(hostname, server.port), port: server.port, close: () => server.stop(true) });
}
