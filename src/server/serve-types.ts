import type { CollectorStats } from "./bun-collector.ts";
import { optionNames } from "../errors.ts";

/** What every runtime adapter takes and returns: a fetch handler in, a listening server out. */
export type FetchHandler = (req: Request) => Response | Promise<Response>;

export interface ServeOptions {
  /** Interface to bind (default 127.0.0.1: loopback only; pass 0.0.0.0 to expose it). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /**
   * Milliseconds a connection may sit with no request in progress, its
   * headers not yet complete included (default 30 000; 0: never). Bun and
   * Node; Deno.serve has no such setting.
   */
  idleTimeoutMs?: number;
  /** "node": node:http on any runtime (under Deno, the way to get the idle timeout); default: the runtime's own server. */
  http?: "native" | "node";
  /**
   * Bun only: resident growth (bytes) over the level after the last full garbage collection
   * past which the next one runs (bun-collector.ts; default 16 MiB, 0: leave it to the runtime).
   */
  gcSlackBytes?: number;
}

/** ServeOptions' names: serve() refuses any other key. */
export const SERVE_OPTION_NAMES = optionNames<ServeOptions>()(["host", "port", "idleTimeoutMs", "http", "gcSlackBytes"]);

export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export interface RunningServer {
  /** http://host:port */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, ends open connections, resolves when the socket is closed. */
  close(): Promise<void>;
  /** Bun: the full collections the server ran (bun-collector.ts). */
  readonly collector?: CollectorStats;
}

export const DEFAULT_HOST = "127.0.0.1";
export const DEFAULT_PORT = 8080;

export function urlOf(host: string, port: number): string {
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Methods fetch's Request refuses to carry (the Fetch standard's forbidden methods): an adapter that builds a
 * Request of one throws, so they are answered before the handler sees them, as Bun.serve answers them.
 */
export const FORBIDDEN_METHODS: ReadonlySet<string> = new Set(["CONNECT", "TRACE", "TRACK"]);

/** An OpenAI-style error answer built by an adapter, for a request that cannot reach the handler. */
export function clientError(status: number, message: string, code: string, headers: Record<string, string> = {}): Response {
  const body = { error: { message, type: "invalid_request_error", param: null, code } };
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

/**
 * 405 for a method no route takes (the handler never sees it: see FORBIDDEN_METHODS). The adapter does not know the
 * route, so Allow names the methods the API's routes take between them (handler.ts's 405s name the route's own).
 */
export function forbiddenMethod(method: string): Response {
  return clientError(405, `method ${method.slice(0, 32)} is not supported by this server`, "method_not_allowed", {
    allow: "GET, HEAD, POST",
  });
}

/** 400 for a request target that is no URL ("http://[::1/x"). */
export function badTarget(target: string): Response {
  return clientError(400, `the request target ${JSON.stringify(String(target).slice(0, 200))} is not a valid URL`, "invalid_url");
}
