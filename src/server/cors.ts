/**
 * Cross-origin access for browsers (`--cors ORIGIN|*`): the Access-Control-* headers on every answer, and
 * the answer to a preflight (OPTIONS with Access-Control-Request-Method), which carries no credentials and
 * so is answered before the API key is checked.
 */

/** "*" (any origin), or one origin or a comma-separated list of them (https://app.example). */
export type CorsOrigins = string;

const METHODS = "GET, POST, OPTIONS";
const DEFAULT_HEADERS = "authorization, content-type";
const PREFLIGHT_MAX_AGE_S = "86400";

/** Whether `req` is a CORS preflight. */
export function isPreflight(req: Request): boolean {
  return req.method.toUpperCase() === "OPTIONS" && req.headers.has("access-control-request-method");
}

/** The answer to a preflight: 204 with what the API allows (only the origin part when the origin is not allowed). */
export function preflightResponse(req: Request, allowed: CorsOrigins): Response {
  const res = new Response(null, { status: 204 });
  if (!applyCors(res.headers, req, allowed)) return res;
  res.headers.set("access-control-allow-methods", METHODS);
  res.headers.set("access-control-allow-headers", req.headers.get("access-control-request-headers") ?? DEFAULT_HEADERS);
  res.headers.set("access-control-max-age", PREFLIGHT_MAX_AGE_S);
  return res;
}

/** Adds the origin headers to an answer's headers; false when the request's origin is not allowed. */
export function applyCors(headers: Headers, req: Request, allowed: CorsOrigins): boolean {
  const origin = req.headers.get("origin");
  if (allowed.trim() === "*") {
    headers.set("access-control-allow-origin", "*");
  } else {
    // a list cannot go in the header: echo the request's origin when it is one of them, and say the answer varies by it
    headers.append("vary", "Origin");
    if (origin === null || !allowed.split(",").map((o) => o.trim()).includes(origin)) return false;
    headers.set("access-control-allow-origin", origin);
  }
  // a browser script may read Retry-After of a 429 too
  headers.set("access-control-expose-headers", "retry-after");
  return true;
}
