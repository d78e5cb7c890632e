// src/server/ owns the OpenAI-compatible API: one fetch handler (handler.ts) with its limits, metrics and chat
// templates, and the Deno, Bun and node:http adapters around it.
/**
 * Reading a request body under a byte limit: a Content-Length over the limit
 * is refused before reading, and a chunked body is counted as it arrives, so
 * an oversized upload costs at most `limit` bytes of memory. The whole body
 * must arrive within a deadline: a client trickling it gets 408 instead of
 * holding a connection (and, before this, an admission slot) for as long as
 * it likes.
 */
import { HttpError } from "./http-error.ts";

export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

export async function readJsonBody(req: Request, limit: number, timeoutMs = Infinity): Promise<unknown> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge(limit);
  const bytes = await readLimited(req, limit, timeoutMs);
  const text = new TextDecoder("utf-8").decode(bytes);
  if (text.trim() === "") {
    throw new HttpError(400, "request body is empty; expected a JSON object", "invalid_request_error", null, "invalid_json");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `request body is not valid JSON: ${(e as Error).message}`, "invalid_request_error", null, "invalid_json");
  }
}

async function readLimited(req: Request, limit: number, timeoutMs: number): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array(0);
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = Number.isFinite(timeoutMs)
    ? new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(tooSlow(timeoutMs)), timeoutMs);
    })
    : null;
  late?.catch(() => {});
  try {
    for (;;) {
      const { value, done } = late ? await Promise.race([reader.read(), late]) : await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) throw tooLarge(limit);
      parts.push(value);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function tooSlow(ms: number): HttpError {
  return new HttpError(408, `the request body did not arrive within ${ms / 1000} s`, "invalid_request_error", null, "request_timeout");
}

function tooLarge(limit: number): HttpError {
  return new HttpError(
    413,
    `request body is larger than the server's limit of ${limit} bytes`,
    "invalid_request_error",
    null,
    "request_too_large",
  );
}
