/**
 * Every failure kvasm reports on purpose is a KvasmError with a stable `code`,
 * so callers (the CLI, the HTTP server) can map it without parsing messages.
 */
export type ErrorCode =
  | "format" // a model or tokenizer file is malformed or truncated
  | "unsupported" // well-formed, but an architecture, tensor type or feature kvasm does not run
  | "context" // a sequence would exceed its context window
  | "params" // a caller passed invalid options
  | "memory" // the arena (or KV pages) cannot hold what was asked
  | "closed" // the model or pool was used after close()
  | "worker" // a worker thread died
  | "backend" // a backend (WebGPU) failed: lost device, failed allocation
  | "numerical" // the model computed NaN or infinite values (corrupt weights), or ran past a budget of its own (a chat template)
  | "download" // a model URL could not be fetched (HTTP error status, no connection)
  | "aborted"; // cancelled through an AbortSignal

export class KvasmError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A file is not what it claims to be. The message always names the file. */
export class FormatError extends KvasmError {
  readonly file: string;
  constructor(file: string, problem: string) {
    super("format", `${file}: ${problem}`);
    this.file = file;
  }
}

/** The input is valid but uses something kvasm does not implement (names what). */
export class UnsupportedError extends KvasmError {
  constructor(message: string) {
    super("unsupported", message);
  }
}

/**
 * A kernel build's exports do not match the kernel specification (src/kernels/spec.ts): a stale or foreign
 * build/. Names the kernel; the fix is to rebuild the kernels.
 */
export class KernelBuildError extends UnsupportedError {
  readonly kernel: string;
  constructor(kernel: string, problem: string) {
    super(`kernel ${kernel}: ${problem}; rebuild the kernels (npm run build:kernels)`);
    this.kernel = kernel;
  }
}

export class ContextLengthError extends KvasmError {
  readonly needed: number;
  readonly limit: number;
  constructor(needed: number, limit: number, what = "sequence") {
    super("context", `${what} needs ${needed} positions but the context holds ${limit}`);
    this.needed = needed;
    this.limit = limit;
  }
}

export class ParamError extends KvasmError {
  readonly param: string;
  /** The message without its leading `param: ` (the server answers it under the name the client spelled). */
  readonly problem: string;
  constructor(param: string, problem: string) {
    super("params", `${param}: ${problem}`);
    this.param = param;
    this.problem = problem;
  }
}

/** `value` where it is an integer >= 1; else a ParamError naming `param` ("must be a positive integer, got ..."). */
export function positiveInteger(param: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) throw new ParamError(param, `must be a positive integer, got ${describeValue(value)}`);
  return value;
}

/** `value` where it is an integer >= 0; else a ParamError naming `param` ("must be a non-negative integer, got ..."). */
export function nonNegativeInteger(param: string, value: number): number {
  if (!(Number.isInteger(value) && value >= 0)) throw new ParamError(param, `must be a non-negative integer, got ${describeValue(value)}`);
  return value;
}

/**
 * `value` where it is a boolean, undefined where it is undefined (the caller's default applies); else a ParamError naming
 * `param` ("must be a boolean, got ..."): an option read with `if (opts.x)` would take the string "false" for true.
 */
export function optionalBoolean(param: string, value: unknown): boolean | undefined {
  if (value === undefined || typeof value === "boolean") return value;
  throw new ParamError(param, `must be a boolean, got ${describeValue(value)}`);
}

/**
 * `value` where it is a function, undefined where it is undefined; else a ParamError naming `param` ("must be a
 * function, got ..."): a callback of the wrong type was called mid-load or mid-generation, an untyped TypeError.
 */
// deno-lint-ignore ban-types
export function optionalFunction<F extends Function>(param: string, value: F | undefined): F | undefined {
  if (value === undefined || typeof value === "function") return value;
  throw new ParamError(param, `must be a function, got ${describeValue(value)}`);
}

/**
 * The option names an options interface T takes, as a list: `optionNames<T>()([...])` compiles only where the list
 * names every key of T (and nothing else), so a field added to T without listing it fails to compile rather than
 * becoming an option that checkOptionNames refuses. (Curried: TypeScript infers the list's type only where T is given.)
 */
export function optionNames<T extends object>(): <const N extends ReadonlyArray<keyof T>>(
  names: N & ([Exclude<keyof T, N[number]>] extends [never] ? unknown : { missingOptionNames: Exclude<keyof T, N[number]> }),
) => ReadonlyArray<keyof T> {
  return (names) => names;
}

/**
 * Throws a ParamError naming `param` (the function or options object) for the first key of `opts` that `names` does
 * not list, with the listed name it probably meant where one is within two edits ("unknown option \"temprature\"
 * (did you mean \"temperature\"?)"), else the names it takes: a misspelt option ran with the default and said nothing.
 * Undefined `opts` passes (the caller's defaults apply), and so do known keys whose value is undefined; null, an array
 * or a primitive is refused (any other object is read by its own enumerable keys: a Map passes with none). Reads the
 * keys only.
 */
export function checkOptionNames<T extends object>(param: string, opts: T | undefined, names: ReadonlyArray<keyof T>): void {
  if (opts === undefined) return;
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) {
    throw new ParamError(param, `options must be an object, got ${describeValue(opts)}`);
  }
  const unknown = unknownOption(opts, names);
  if (unknown !== undefined) throw new ParamError(param, unknown);
}

/**
 * What checkOptionNames says of the first key of `opts` that `names` does not list ("unknown option \"temprature\" (did
 * you mean \"temperature\"?)"), or undefined where every key is listed: for a caller whose refusal is another error
 * type (WebGpuBackend's WebGpuError). `opts` must be an object; reads its keys only.
 */
export function unknownOption(opts: object, names: ReadonlyArray<PropertyKey>): string | undefined {
  const known = names as ReadonlyArray<string>;
  for (const key of Object.keys(opts)) {
    if (known.includes(key)) continue;
    const near = nearestName(key, known);
    const hint = near !== undefined ? `did you mean ${JSON.stringify(near)}?` : `options: ${known.join(", ")}`;
    return `unknown option ${JSON.stringify(key)} (${hint})`;
  }
  return undefined;
}

/**
 * The name in `names` closest to `key` (optimal string alignment distance, letter case ignored: a swap of two
 * letters is one edit), where that is at most `maxEdits` and under half the longer name's length (a one-letter key
 * suggests nothing); the first listed on a tie. The option checks here and the CLI's flag and command names use it.
 */
export function nearestName(key: string, names: ReadonlyArray<string>, maxEdits = 2): string | undefined {
  let best: string | undefined, bestD = maxEdits + 1;
  const a = key.toLowerCase();
  for (const name of names) {
    const d = editDistance(a, name.toLowerCase(), maxEdits);
    if (d < bestD && 2 * d < Math.max(a.length, name.length)) [best, bestD] = [name, d];
  }
  return best;
}

/** Optimal string alignment distance (insertions, deletions, substitutions, adjacent swaps), or bound + 1 past bound. */
function editDistance(a: string, b: string, bound: number): number {
  if (Math.abs(a.length - b.length) > bound) return bound + 1;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * A caller's wrong value, for a message: strings quoted, no object or function spelled out (String() of either can throw
 * or run to pages).
 */
export function describeValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === null) return "null";
  if (typeof v === "object") return Array.isArray(v) ? "an array" : "an object";
  if (typeof v === "function") return "a function";
  return String(v);
}

export class OutOfMemoryError extends KvasmError {
  /** Bytes that were asked for and bytes there were, where the thrower knows them (a load over its budget). */
  readonly needed?: number;
  readonly available?: number;
  constructor(message: string, sizes?: { needed: number; available: number }) {
    super("memory", message);
    this.needed = sizes?.needed;
    this.available = sizes?.available;
  }
}

export class ClosedError extends KvasmError {
  constructor(what: string) {
    super("closed", `${what} was used after close()`);
  }
}

/**
 * The model itself failed while running: NaN or infinite logits from corrupt weights, or its
 * chat template running past its time, step or output budget. Never the caller's fault (a
 * server answers it as a 500); it names the model file where the thrower knows it.
 */
export class NumericalError extends KvasmError {
  readonly file?: string;
  constructor(problem: string, file?: string) {
    super("numerical", file === undefined ? problem : `${file}: ${problem}`);
    this.file = file;
  }
}

/** A model URL could not be fetched. The message names the URL and the HTTP status (`status` 0: no response at all). */
export class DownloadError extends KvasmError {
  readonly url: string;
  readonly status: number;
  constructor(url: string, status: number, problem: string, options?: { cause?: unknown }) {
    super("download", `${url}: ${problem}`, options);
    this.url = url;
    this.status = status;
  }
}
