/**
 * Everything loadModel accepts as "the model", turned into what the format
 * readers take (a path, bytes, or a ByteSource):
 * - nothing: the model bundled with kvasm (src/model/default-model.ts);
 * - a path, or a `file:` URL (a URL object or a string starting `file://`);
 * - an `http:` / `https:` URL (URL object or string): fetched and streamed
 *   front to back into the arena (StreamSource), never held whole beside it;
 *   an error status or no connection is a DownloadError naming the URL;
 * - a fetch Response (streamed the same way when it carries Content-Length);
 * - bytes (Uint8Array, ArrayBuffer);
 * - a ReadableStream of bytes: streamed when its size is given
 *   (`LoadOptions.streamSize`), else read into memory first;
 * - any ByteSource.
 */
import { DownloadError, ParamError } from "../errors.ts";
import { StreamSource } from "../edge/stream-source.ts";
import { defaultModel } from "../model/default-model.ts";
import type { ByteSource } from "./source.ts";

export type ModelInput = string | URL | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | Response | ByteSource;

/** Strings that are URLs rather than paths: a scheme loadModel fetches or maps to a path. */
const URL_STRING = /^(https?|file):\/\//i;

export async function resolveModelInput(input: ModelInput | undefined, streamSize?: number): Promise<string | Uint8Array | ByteSource> {
  if (input === undefined) input = defaultModel();
  if (typeof input === "string") {
    if (!URL_STRING.test(input)) return input;
    input = new URL(input);
  }
  if (input instanceof URL) return await fromUrl(input);
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (typeof Response !== "undefined" && input instanceof Response) return await fromResponse(input, input.url || "<response>");
  if (typeof ReadableStream !== "undefined" && input instanceof ReadableStream) return await fromStream(input, streamSize, "<stream>");
  if (typeof (input as ByteSource).read === "function" && typeof (input as ByteSource).size === "number") return input as ByteSource;
  throw new ParamError("model", "must be a path, a file:/http:/https: URL, bytes, a ReadableStream, a Response or a ByteSource");
}

async function fromUrl(url: URL): Promise<string | ByteSource> {
  if (url.protocol === "file:") {
    const { fileURLToPath } = await import("node:url");
    return fileURLToPath(url);
  }
  if (url.protocol === "http:" || url.protocol === "https:") return await StreamSource.fromUrl(url.href);
  throw new ParamError("model", `${url.href}: only file:, http: and https: URLs are loaded`);
}

async function fromResponse(res: Response, name: string): Promise<Uint8Array | ByteSource> {
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => {});
    throw new DownloadError(name, res.status, `the response is ${res.status} ${res.statusText}`.trimEnd());
  }
  const length = res.headers.get("content-length");
  return await fromStream(res.body, length === null ? undefined : Number(length), name);
}

async function fromStream(body: ReadableStream<Uint8Array>, size: number | undefined, name: string): Promise<Uint8Array | ByteSource> {
  if (size !== undefined) {
    if (!Number.isSafeInteger(size) || size <= 0) throw new ParamError("streamSize", `must be a positive integer (bytes), got ${size}`);
    return StreamSource.fromStream(body, size, name);
  }
  // size unknown: the readers need it up front (they check tensor offsets against it), so read it all
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (const reader = body.getReader();;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}
