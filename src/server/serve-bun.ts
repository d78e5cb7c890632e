/**
 * Bun.serve adapter. Bun's idleTimeout closes a connection that sends
 * nothing (no next request) for that long; it is switched off while a
 * request is served, because a stream may go quiet while a long prompt is
 * prefilled (the handler bounds the body's arrival itself), and switched back
 * on when its response is handed over (an event stream: when it ends). Bun (uWS) counts it in 4 s ticks
 * and closes a connection whose headers never complete after about 10 s.
 * Each request also lets a ResidentCollector (bun-collector.ts) check
 * resident memory, since JavaScriptCore's own schedule of full collections
 * cannot see the native memory dead requests pin.
 */
import {
  DEFAULT_HOST,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_PORT,
  type FetchHandler,
  type RunningServer,
  type ServeOptions,
  urlOf,
} from "./serve-types.ts";
import { ResidentCollector } from "./bun-collector.ts";

// deno-lint-ignore no-explicit-any
declare const Bun: any;

export function serveBun(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  const hostname = opts.host ?? DEFAULT_HOST;
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  // Bun counts whole seconds, at most 255
  const idleTimeout = idleMs <= 0 ? 0 : Math.min(255, Math.max(1, Math.ceil(idleMs / 1000)));
  const collector = new ResidentCollector(() => process.memoryUsage.rss(), () => Bun.gc(true), { slackBytes: opts.gcSlackBytes });
  const server = Bun.serve({
    hostname,
    port: opts.port ?? DEFAULT_PORT,
    idleTimeout,
    // deno-lint-ignore no-explicit-any
    async fetch(req: Request, srv: any) {
      collector.check();
      if (idleTimeout === 0 || typeof srv.timeout !== "function") return handler(req);
      srv.timeout(req, 0);
      const rearm = () => srv.timeout(req, idleTimeout);
      const res = await handler(req);
      // only an event stream can go quiet mid-body; any other response is re-armed at once (and keeps its length)
      if (!res.body || !(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
        rearm();
        return res;
      }
      const body = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ flush: rearm }));
      return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
    },
  });
  return Promise.resolve({ url: urlOf(hostname, server.port), port: server.port, close: () => server.stop(true), collector });
}
