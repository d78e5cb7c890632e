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
  badTarget,
  DEFAULT_HOST,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_PORT,
  type FetchHandler,
  FORBIDDEN_METHODS,
  forbiddenMethod,
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
    // nothing may reject unhandled (Deno and Node end the process on it): a failure past respond's own catch closes this connection
    respond(handler, req, res, hostname, Readable).catch(() => res.destroy());
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
  let response: Response;
  try {
    // a target that is no URL ("http://[::1/x") or a method fetch forbids (TRACE, CONNECT) throws here: the client's error
    const request = requestOf(req, method, host, headers, hasBody, abort.signal, Readable);
    response = request instanceof Response ? request : await handler(request);
  } catch (e) {
    response = new Response(JSON.stringify({ error: { message: String((e as Error)?.message ?? e), type: "server_error" } }), {
      status: 500,
      headers: { "content-type": "application/json" },
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

/**
 * The Web Request of a node:http request, or the client error it is when it cannot be one: Node's parser passes
 * methods that fetch's Request forbids (TRACE, TRACK, CONNECT: 405, as Bun.serve answers them) and targets that are no
 * URL (400), both of which threw out of respond and ended the process.
 */
function requestOf(
  req: IncomingMessage,
  method: string,
  host: string,
  headers: Headers,
  hasBody: boolean,
  signal: AbortSignal,
  Readable: typeof import("node:stream").Readable,
): Request | Response {
  let url: URL;
  try {
    url = new URL(req.url ?? "/", urlOf(host, req.socket.localPort ?? 0));
  } catch {
    return badTarget(String(req.url));
  }
  try {
    return new Request(url, {
      method,
      headers,
      body: hasBody ? (Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>) : undefined,
      signal,
      // @ts-ignore: required by Node's fetch for streamed request bodies
      duplex: "half",
    });
  } catch (e) {
    if (FORBIDDEN_METHODS.has(method.toUpperCase())) return forbiddenMethod(method);
    throw e;
  }
}
