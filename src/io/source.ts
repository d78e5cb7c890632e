/**
 * Where model bytes come from. Loaders read headers through `read` and stream
 * tensor data straight into the arena, so a model file is never held twice.
 */
export interface ByteSource {
  /** Name used in error messages (a path, a URL, or "<bytes>"). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Fill `dest` with the bytes at [offset, offset + dest.length). Short reads are errors. */
  read(offset: number, dest: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** A model already in memory (edge functions, tests). */
export class BytesSource implements ByteSource {
  readonly size: number;
  constructor(private readonly bytes: Uint8Array, readonly name = "<bytes>") {
    this.size = bytes.byteLength;
  }
  read(offset: number, dest: Uint8Array): Promise<void> {
    if (offset < 0 || offset + dest.length > this.size) {
      return Promise.reject(new RangeError(`${this.name}: read [${offset}, ${offset + dest.length}) past end ${this.size}`));
    }
    dest.set(this.bytes.subarray(offset, offset + dest.length));
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Whether `path` names a file embedded in a `bun build --compile` executable (`import m from "./m.gguf" with { type: "file" }`
 * gives `/$bunfs/root/m-HASH.gguf`; `B:\~BUN\root\...` on Windows). Bun serves those to statSync and readFileSync but not
 * to openSync (ENOENT, Bun 1.4.5), so they are read whole into memory, a copy the arena's load then reads from.
 */
export function isBunEmbedded(path: string): boolean {
  return path.startsWith("/$bunfs/") || /^[A-Za-z]:[\\/]~BUN[\\/]/.test(path);
}

/**
 * A file on disk, read with node:fs (Deno, Bun and Node all provide it).
 * Imported lazily so bundles for hosts without a file system never touch it.
 */
export class FileSource implements ByteSource {
  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly fd: number,
    private readonly fs: typeof import("node:fs"),
  ) {}

  /** A file on disk; a file embedded in a `bun build --compile` executable is read whole (see isBunEmbedded). */
  static async open(path: string): Promise<ByteSource> {
    const fs = await import("node:fs");
    if (isBunEmbedded(path)) return new BytesSource(fs.readFileSync(path), path);
    const fd = fs.openSync(path, "r");
    const size = fs.fstatSync(fd).size;
    return new FileSource(path, size, fd, fs);
  }

  read(offset: number, dest: Uint8Array): Promise<void> {
    let done = 0;
    while (done < dest.length) {
      // readSync into a view of the destination: bytes land in place (e.g. the arena), no staging copy.
      const n = this.fs.readSync(this.fd, dest, done, dest.length - done, offset + done);
      if (n <= 0) {
        return Promise.reject(new RangeError(`${this.name}: unexpected end of file at byte ${offset + done}`));
      }
      done += n;
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.fs.closeSync(this.fd);
    return Promise.resolve();
  }
}
