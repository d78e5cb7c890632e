/**
 * One test API for Deno and Bun: `test(name, fn)` registers with Deno.test or
 * bun:test, and the assertions below throw plain Errors, so every test file
 * runs unchanged under both runners.
 */
type TestFn = () => void | Promise<void>;
// deno-lint-ignore no-explicit-any
declare const Deno: any;

export const runtime: "deno" | "bun" | "node" = typeof Deno !== "undefined"
  ? "deno"
  : typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"
  ? "bun"
  : "node";

const TIMEOUT_MS = 300_000;

let register: (name: string, fn: TestFn, opts?: { skip?: boolean }) => void;
if (runtime === "deno") {
  register = (name, fn, opts) => Deno.test({ name, fn, ignore: opts?.skip ?? false, sanitizeResources: false, sanitizeOps: false });
} else {
  const bun = await import("bun:test");
  register = (name, fn, opts) => (opts?.skip ? bun.test.skip(name, fn) : bun.test(name, fn, TIMEOUT_MS));
}

export function test(name: string, fn: TestFn): void {
  register(name, fn);
}

/** A test that needs ../shared: skipped with a message outside CI, a failure under CI=true. */
export function testShared(name: string, paths: string[], fn: TestFn): void {
  const missing = paths.filter((p) => !exists(p));
  if (missing.length === 0) return register(name, fn);
  if (env("CI") === "true") {
    return register(name, () => {
      throw new Error(`shared test data missing under CI: ${missing.join(", ")}`);
    });
  }
  console.warn(`skipping "${name}": shared test data not found (${missing[0]})`);
  register(name, fn, { skip: true });
}

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { ModelFile } from "../src/formats/types.ts";
import type { ByteSource } from "../src/io/source.ts";

/** Absolute path of ../shared relative to the repository root. */
export const SHARED = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..", "shared");
export const sharedPath = (...p: string[]) => path.join(SHARED, ...p);
export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

export function exists(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

export function env(name: string): string | undefined {
  return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env[name];
}

export function readJSON<T = unknown>(p: string): T {
  return JSON.parse(fs.readFileSync(p, "utf8")) as T;
}

/** Polls `cond` every 5 ms until it holds: the milliseconds that took, or -1 once `ms` have passed without it. */
export async function waitFor(cond: () => boolean, ms: number): Promise<number> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) return -1;
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - t0;
}

/** The bytes of a file's tensor `name`, read from `source` (a sharded file's shard; default the file's own source). */
export async function tensorBytes(file: ModelFile, name: string, source: ByteSource = file.source): Promise<Uint8Array> {
  const info = file.tensors.get(name);
  assert(info, `tensor ${name} missing`);
  const out = new Uint8Array(info.byteLength);
  await source.read(info.offset, out);
  return out;
}

/** A copy of a fixture directory (its config.json, edited, and its safetensors files) in a new temporary directory. */
export function editedFixture<C = Record<string, unknown>>(dir: string, edit: (config: C) => void): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), `kvasm-${path.basename(dir)}-`));
  const config = readJSON<C>(path.join(dir, "config.json"));
  edit(config);
  fs.writeFileSync(path.join(out, "config.json"), JSON.stringify(config));
  for (const f of fs.readdirSync(dir)) {
    if (f.includes("safetensors")) fs.copyFileSync(path.join(dir, f), path.join(out, f));
  }
  return out;
}

// ---------------------------------------------------------------- assertions

export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

/**
 * Structural equality: same type and prototype, arrays and typed arrays element by element, Maps and Sets by
 * their entries, plain objects by their own enumerable keys (a key holding undefined differs from a missing
 * key). Numbers compare by value: NaN equals only NaN (so `assertEquals(NaN, null)` fails, as it did not when
 * this compared JSON.stringify output), and 0 equals -0.
 */
export function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const where = firstDifference(actual, expected, "");
  if (where === null) return;
  throw new Error(
    `${msg ? msg + ": " : ""}${where ? `at ${where}: ` : ""}expected ${show(expected).slice(0, 2000)}\n     got ${
      show(actual).slice(0, 2000)
    }`,
  );
}

/** The path of the first difference between two values ("" = the values themselves), or null when they are equal. */
function firstDifference(a: unknown, b: unknown, at: string): string | null {
  if (a === b) return null;
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b) ? null : at;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return at;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return at;
  if (Array.isArray(a) || ArrayBuffer.isView(a)) {
    const x = a as ArrayLike<unknown>, y = b as ArrayLike<unknown>;
    if (x.length !== y.length) return `${at}.length`;
    for (let i = 0; i < x.length; i++) {
      const d = firstDifference(x[i], y[i], `${at}[${i}]`);
      if (d !== null) return d;
    }
    return null;
  }
  if (a instanceof Map || a instanceof Set) {
    const x = [...(a as Map<unknown, unknown>).entries()], y = [...(b as Map<unknown, unknown>).entries()];
    return firstDifference(x, y, at);
  }
  if (a instanceof Date) return a.getTime() === (b as Date).getTime() ? null : at;
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return `${at} (keys ${ka.join(",")} vs ${kb.join(",")})`;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return `${at}.${k}`;
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`);
    if (d !== null) return d;
  }
  return null;
}

/** A value for a failure message: JSON where it says what the value is, else the runtime's own rendering. */
function show(v: unknown): string {
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "undefined" || typeof v === "symbol") return String(v);
  if (v instanceof Map || v instanceof Set) return `${v.constructor.name}(${JSON.stringify([...v.entries()])})`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}[${Array.from(v as unknown as ArrayLike<number>).join(",")}]`;
  try {
    return JSON.stringify(v, (_, x) => (typeof x === "number" && !Number.isFinite(x) ? String(x) : x === undefined ? "undefined" : x)) ??
      String(v);
  } catch {
    return String(v);
  }
}

/** The same f32 bits element for element (NaN payloads and -0 included); names the first element that differs. */
export function assertBitIdentical(actual: Float32Array, expected: Float32Array, what: string): void {
  const x = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const y = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  assertEquals(x.length, y.length, `${what}: length`);
  for (let j = 0; j < x.length; j++) {
    if (x[j] !== y[j]) throw new Error(`${what}: logit ${j} differs: ${actual[j]} vs ${expected[j]} (${actual[j] - expected[j]})`);
  }
}

/** assertBitIdentical step by step over two runs' logits (one array per step), and as many steps. */
export function assertStepsBitIdentical(actual: Float32Array[], expected: Float32Array[], what: string): void {
  assertEquals(actual.length, expected.length, `${what}: steps`);
  actual.forEach((a, i) => assertBitIdentical(a, expected[i], `${what}: step ${i}`));
}

/** Max |a-b| / max(scale, |b|) over all elements must be <= tol. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, msg = "", scale = 0): void {
  if (actual.length !== expected.length) throw new Error(`${msg}: length ${actual.length} != ${expected.length}`);
  let worst = 0, at = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]) / Math.max(scale, Math.abs(expected[i]), 1e-30);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  if (!(worst <= tol)) {
    throw new Error(`${msg ? msg + ": " : ""}relative error ${worst} > ${tol} at [${at}]: ${actual[at]} vs ${expected[at]}`);
  }
}

/** Runs fn, asserts it throws (or rejects) an instance of `cls` whose message matches `re`. */
export async function assertRejects(fn: () => unknown, cls: new (...a: never[]) => Error, re?: RegExp): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof cls)) throw new Error(`expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    if (re && !re.test(e.message)) throw new Error(`error message ${JSON.stringify(e.message)} does not match ${re}`);
    return e;
  }
  throw new Error(`expected ${cls.name} to be thrown`);
}
