/**
 * Deno.serve adapter. The handler sees a Request whose signal aborts exactly
 * when the client goes away before its response is delivered: while the
 * handler works (no response yet, e.g. a non-streamed completion) Deno's own
 * request signal tells, and afterwards `info.completed` rejecting does. Deno's
 * signal also aborts after every successful response, so it is listened to
 * only until the response exists.
 */
import {
  badTarget,
  clientError,
  DEFAULT_HOST,
  DEFAULT_PORT,
  type FetchHandler,
  FORBIDDEN_METHODS,
  forbiddenMethod,
  type RunningServer,
  type ServeOptions,
  urlOf,
} from "./serve-types.ts";

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
    }, async (req: Request, info: { completed?: Promise<void> }) => {
      const gone = new AbortController();
      let answered = false;
      const beforeResponse = () => {
        if (!answered) gone.abort();
      };
      req.signal.addEventListener("abort", beforeResponse, { once: true });
      info.completed?.catch(() => gone.abort());
      const init = { method: req.method, headers: req.headers, body: req.body, signal: gone.signal, duplex: "half" };
      let request: Request;
      try {
        request = new Request(req.url, init as RequestInit);
      } catch (e) {
        req.signal.removeEventListener("abort", beforeResponse);
        // Deno.serve passes TRACE and TRACK, which Request refuses: this threw, and Deno answered a bare 500
        if (FORBIDDEN_METHODS.has(req.method.toUpperCase())) return forbiddenMethod(req.method);
        if (!URL.canParse(req.url)) return badTarget(req.url);
        return clientError(400, `the request cannot be read: ${(e as Error)?.message ?? e}`, "invalid_request");
      }
      try {
        return await handler(request);
      } finally {
        answered = true;
        req.signal.removeEventListener("abort", beforeResponse);
      }
    });
  });
}
