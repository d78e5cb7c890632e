/**
 * node:http adapter: IncomingMessage to a Web Request (body streamed, signal
 * aborted when the client goes away), and the Response's body piped back
 * chunk by chunk, honouring backpressure, so server-sent events flow.
 * Connections that send nothing, no complete headers, or no next request
 * within the idle timeout are closed (a socket timeout until the first
 * request, headersTimeout, keepAliveTimeout); the handler bounds the body's
 * arrival itself.
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
import type { IncomingMessage, ServerResponse } from "node:http";

export async function serveNode(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  const http = await import("node:http");
  const { Readable } = await import("node:stream");
  const hostname = opts.host ?? DEFAULT_HOST;
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const server = http.createServer({
    ...(idleMs > 0
      ? {
        headersTimeout: idleMs,
        keepAliveTimeout: idleMs,
        // Node checks headersTimeout on this interval; keep it well below the timeout itself
        connectionsCheckingInterval: Math.min(30_000, Math.max(50, idleMs / 4)),
      }
      : {}),
    requestTimeout: 0, // the body's deadline is the handler's; a response may stream for long
  }, (req, res) => {
    // the connection's silence timer is for waiting on a request; a response may go quiet (prefill) for long
    if (idleMs > 0) req.socket.setTimeout(0);
    void respond(handler, req, res, hostname, Readable);
  });
  // headersTimeout starts with a request's first byte: a connection that sends nothing is timed here (Node destroys it)
  if (idleMs > 0) server.on("connection", (socket) => socket.setTimeout(idleMs));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? DEFAULT_PORT, hostname, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return {
    url: urlOf(hostname, port),
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

async function respond(
  handler: FetchHandler,
  req: IncomingMessage,
  res: ServerResponse,
  host: string,
  Readable: typeof import("node:stream").Readable,
): Promise<void> {
  const abort = new AbortController();
  // 'close' on the response fires when it is done or the connection drops; only the latter is a disconnect
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const method = req.method ?? "GET";
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (Array.isArray(v)) { for (const x of v) headers.append(k, x); }
    else if (v !== undefined) headers.set(k, v);
  }
  const hasBody = method !== "GET" && method !== "HEAD";
  const request = new Request(new URL(req.url ?? "/", urlOf(host, req.socket.localPort ?? 0)), {
    method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>) : undefined,
    signal: abort.signal,
    // @ts-ignore: required by Node's fetch for streamed request bodies
    duplex: "half",
  });
  let response: Response;
  try {
    response = await handler(request);
  } catch (e) {
    response = new Response(JSON.stringify({ error: { message: String((e as Error)?.message ?? e), type: "server_error" } }), {
      status: 500,
    });
  }
  res.statusCode = response.status;
  response.headers.forEach((v, k) => res.setHeader(k, v));
  if (!response.body) {
    res.end();
    return;
  }
  res.flushHeaders();
  const reader = response.body.getReader();
  abort.signal.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (!res.write(value)) await new Promise((r) => res.once("drain", r));
    }
    res.end();
  } catch {
    res.destroy();
  }
}
