/**
 * Deno.serve adapter. The handler sees a Request whose signal aborts only when
 * the client goes away before the response is delivered (info.completed
 * rejects), not after every successful response as Deno's own signal does.
 */
import { DEFAULT_HOST, DEFAULT_PORT, type FetchHandler, type RunningServer, type ServeOptions, urlOf } from "./serve-types.ts";

// deno-lint-ignore no-explicit-any
declare const Deno: any;

export function serveDeno(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  const hostname = opts.host ?? DEFAULT_HOST;
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname,
      port: opts.port ?? DEFAULT_PORT,
      onListen: ({ port }: { port: number }) => {
        resolve({ url: urlOf(hostname, port), port, close: () => server.shutdown() });
      },
    }, (req: Request, info: { completed?: Promise<void> }) => {
      if (!info.completed) return handler(req);
      const gone = new AbortController();
      info.completed.catch(() => gone.abort());
      // built from parts: copying `req` itself would read its signal and opt into the legacy behaviour
      const init = { method: req.method, headers: req.headers, body: req.body, signal: gone.signal, duplex: "half" };
      return handler(new Request(req.url, init as RequestInit));
    });
  });
}
