// src/edge/ owns what kvasm/edge needs beyond the library: model bytes from a fetch body, read front to back.
/**
 * A ByteSource over an HTTP response body, read front to back: the model is
 * never held whole in memory beside the arena. Bytes pulled from the stream
 * are kept only from the start of the latest read onward (the GGUF header
 * reader re-reads a little of what it looked at before), so memory beyond the
 * arena is about one read.
 *
 * Reads must come in non-decreasing offsets. One that goes back behind the
 * kept bytes re-opens the body at that offset with an HTTP Range request when
 * the source was opened from a URL (`StreamSource.fromUrl`), and is a
 * FormatError for a plain stream, which cannot rewind. A URL that cannot be
 * fetched (an HTTP error status, no connection) is a DownloadError.
 */
import { DownloadError, FormatError } from "../errors.ts";
import type { ByteSource } from "../io/source.ts";

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

export class StreamSource implements ByteSource {
  /** Pulled bytes not yet dropped, in order, starting at `keptFrom`. */
  private kept: Uint8Array[] = [];
  private keptFrom = 0;
  private pulled = 0;
  private reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Most bytes held at once (tests and the README's memory claim check this). */
  peakKeptBytes = 0;
  /** Range requests made to go back (0 when reads came in order). */
  rewinds = 0;

  private constructor(
    readonly name: string,
    readonly size: number,
    body: ReadableStream<Uint8Array>,
    private readonly reopen?: (offset: number) => Promise<ReadableStream<Uint8Array>>,
  ) {
    this.reader = body.getReader();
  }

  /** A stream of known total size (e.g. a Response with Content-Length). No rewinding. */
  static fromStream(body: ReadableStream<Uint8Array>, size: number, name = "<stream>"): StreamSource {
    if (!Number.isSafeInteger(size) || size < 0) throw new FormatError(name, `stream size must be known, got ${size}`);
    return new StreamSource(name, size, body);
  }

  /** GETs `url`; a read that goes back re-opens it with `Range: bytes=offset-`. */
  static async fromUrl(url: string, opts: { fetch?: FetchFn; headers?: Record<string, string> } = {}): Promise<StreamSource> {
    const doFetch = opts.fetch ?? ((u, i) => fetch(u, i));
    let res: Response;
    try {
      res = await doFetch(url, { headers: opts.headers });
    } catch (e) {
      throw new DownloadError(url, 0, `GET failed: ${(e as Error).message}`, { cause: e });
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError(url, res.status, `GET answered ${res.status} ${res.statusText}`.trimEnd());
    }
    const size = Number(res.headers.get("content-length"));
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new FormatError(url, "the response has no Content-Length; the model's size must be known");
    }
    return new StreamSource(url, size, res.body, async (offset) => {
      const r = await doFetch(url, { headers: { ...opts.headers, range: `bytes=${offset}-` } });
      if (r.status !== 206 || !r.body) {
        throw new FormatError(url, `a read went back to byte ${offset} and the server does not answer Range requests (status ${r.status})`);
      }
      return r.body;
    });
  }

  async read(offset: number, dest: Uint8Array): Promise<void> {
    const end = offset + dest.length;
    if (offset < 0 || end > this.size) throw new RangeError(`${this.name}: read [${offset}, ${end}) past end ${this.size}`);
    if (offset < this.keptFrom) await this.rewind(offset);
    // drop what lies wholly before this read: later reads start here or after
    while (this.kept.length > 0 && this.keptFrom + this.kept[0].length <= offset) {
      this.keptFrom += this.kept[0].length;
      this.kept.shift();
    }
    if (this.kept.length === 0 && this.pulled < offset) await this.skip(offset - this.pulled);
    while (this.pulled < end) {
      const { value, done } = await this.reader.read();
      if (done) throw new FormatError(this.name, `stream ended at byte ${this.pulled}, expected ${this.size}`);
      if (this.kept.length === 0) this.keptFrom = this.pulled;
      this.kept.push(value);
      this.pulled += value.length;
      this.peakKeptBytes = Math.max(this.peakKeptBytes, this.pulled - this.keptFrom);
    }
    // copy [offset, end) out of the kept chunks
    let at = this.keptFrom;
    for (const c of this.kept) {
      const lo = Math.max(offset, at), hi = Math.min(end, at + c.length);
      if (lo < hi) dest.set(c.subarray(lo - at, hi - at), lo - offset);
      at += c.length;
      if (at >= end) break;
    }
  }

  /** Reads past bytes nobody asked for without keeping them. */
  private async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const { value, done } = await this.reader.read();
      if (done) throw new FormatError(this.name, `stream ended at byte ${this.pulled}, expected ${this.size}`);
      if (value.length > left) {
        // keep the tail that is past the skip
        this.keptFrom = this.pulled + left;
        this.kept = [value.subarray(left)];
        this.pulled += value.length;
        return;
      }
      left -= value.length;
      this.pulled += value.length;
    }
    this.keptFrom = this.pulled;
  }

  private async rewind(offset: number): Promise<void> {
    if (!this.reopen) {
      throw new FormatError(
        this.name,
        `read at byte ${offset} goes back behind byte ${this.keptFrom}; a stream can only be read front to back`,
      );
    }
    await this.reader.cancel().catch(() => {});
    this.reader = (await this.reopen(offset)).getReader();
    this.kept = [];
    this.keptFrom = this.pulled = offset;
    this.rewinds++;
  }

  /** Drops kept bytes (after loading, nothing reads the source again). */
  release(): void {
    this.kept = [];
    this.keptFrom = this.pulled;
  }

  async close(): Promise<void> {
    this.kept = [];
    await this.reader.cancel().catch(() => {});
  }
}
