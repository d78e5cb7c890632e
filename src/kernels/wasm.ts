import { kernelBytes, type KernelVariant } from "./binaries.ts";
import { KERNEL_NAMES, KERNEL_SPEC, type Kernels } from "./spec.ts";
import { KernelBuildError } from "../errors.ts";

export type { Kernels };

/** Does this runtime run relaxed SIMD? Validating a tiny module answers without compiling the kernels. */
export function hasRelaxedSimd(): boolean {
  // (module (func (result v128) v128.const i32x4 0 0 0 0 v128.const i32x4 0 0 0 0 v128.const i32x4 0 0 0 0
  //   i32x4.relaxed_dot_i8x16_i7x16_add_s))
  const bytes = new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    0x01,
    0x05,
    0x01,
    0x60,
    0x00,
    0x01,
    0x7b,
    0x03,
    0x02,
    0x01,
    0x00,
    0x0a,
    0x3d,
    0x01,
    0x3b,
    0x00,
    0xfd,
    0x0c,
    ...new Array(16).fill(0),
    0xfd,
    0x0c,
    ...new Array(16).fill(0),
    0xfd,
    0x0c,
    ...new Array(16).fill(0),
    0xfd,
    0x93,
    0x02,
    0x0b,
  ]);
  try {
    return WebAssembly.validate(bytes);
  } catch {
    return false;
  }
}

/**
 * The module of dotAddIsExactU8S8: f(a, b, c) = lane 0 of i32x4.relaxed_dot_i8x16_i7x16_add_s(splat a, splat b, splat c),
 * the dot of a's 4 bytes (signed) with b's 4 bytes, plus c.
 * (module (func (export "f") (param i32 i32 i32) (result i32)
 *   local.get 0 i32x4.splat local.get 1 i32x4.splat local.get 2 i32x4.splat
 *   i32x4.relaxed_dot_i8x16_i7x16_add_s i32x4.extract_lane 0))
 */
const DOT_ADD_PROBE = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version
  ...[0x01, 0x08, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x01, 0x7f], // types: (i32 i32 i32) -> i32
  ...[0x03, 0x02, 0x01, 0x00], // functions: one of type 0
  ...[0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00], // exports: "f" = function 0
  ...[0x0a, 0x16, 0x01, 0x14, 0x00], // code: one body of 20 bytes, no locals
  ...[0x20, 0x00, 0xfd, 0x11, 0x20, 0x01, 0xfd, 0x11, 0x20, 0x02, 0xfd, 0x11], // local.get i, i32x4.splat (x3)
  ...[0xfd, 0x93, 0x02, 0xfd, 0x1b, 0x00, 0x0b], // i32x4.relaxed_dot_i8x16_i7x16_add_s, i32x4.extract_lane 0, end
]);

/** Probe cases: 4 signed bytes of a, 4 bytes of b (0..255), the accumulator; extremes first (255 x -128, 255 x 127). */
const DOT_ADD_CASES: readonly (readonly [readonly number[], readonly number[], number])[] = [
  [[-128, -128, -128, -128], [255, 255, 255, 255], 0],
  [[127, 127, 127, 127], [255, 255, 255, 255], 0], // saturating i16 pairs give 65534 here, not 129540
  [[-128, -128, -128, -128], [128, 128, 128, 128], 0], // read signed (vpdpbssd), b = -128: +65536
  [[127, -128, 127, -128], [255, 255, 128, 1], 1 << 30],
  [[-3, 5, -7, 9], [200, 130, 129, 250], 12345],
  [[1, -2, 3, -4], [5, 6, 7, 8], -7], // b < 128: every runtime agrees here
];

let dotAddExact: boolean | undefined;

/**
 * Does i32x4.relaxed_dot_i8x16_i7x16_add_s give, in this runtime, the exact sum of a's signed bytes times b's
 * unsigned bytes for b's bytes >= 128 too? The relaxed-SIMD spec leaves those results open: V8 emits one
 * vpdpbusd (exact u8 x s8) on CPUs with AVX-VNNI, pmaddubsw + pmaddwd (saturated i16 pairs) without it;
 * JavaScriptCore returns the saturated pairs; a vpdpbssd lowering would read b signed. Q8_0's VNNI form
 * (assembly/lanes-q8_0-vnni.ts) needs the exact sums, so the WASM backend asks this once per process and picks
 * that form only on true. The probe makes 1,200 calls so that an engine that tiers up a hot
 * function answers for its optimizing tier too (V8 gave the same sums in every tier, measured 2026-12-05).
 */
export function dotAddIsExactU8S8(): boolean {
  dotAddExact ??= probeAgrees(
    DOT_ADD_PROBE,
    DOT_ADD_CASES.map(([a, b, c]) => [packBytes(a), packBytes(b), c, c + a.reduce((s, x, i) => s + x * b[i], 0)]),
  );
  return dotAddExact;
}

/** Four bytes (signed or unsigned) as one i32, byte 0 lowest: a probe's splatted operand. */
const packBytes = (v: readonly number[]) => (v[0] & 255) | (v[1] & 255) << 8 | (v[2] & 255) << 16 | (v[3] & 255) << 24;

/**
 * Whether the probe module's export f, called with each case's leading numbers, returns the case's last one, 1,200
 * calls in all (so that an engine that tiers up a hot function answers for its optimizing tier too). False without
 * relaxed SIMD, or where a runtime validates relaxed SIMD but cannot compile the probe: the signed forms serve there.
 */
function probeAgrees(probe: Uint8Array<ArrayBuffer>, cases: readonly (readonly number[])[]): boolean {
  if (!hasRelaxedSimd()) return false;
  try {
    const f = new WebAssembly.Instance(new WebAssembly.Module(probe)).exports.f as (...args: number[]) => number;
    for (let round = 0; round < 1200 / cases.length; round++) {
      for (const c of cases) if (f(...c.slice(0, -1)) !== c[c.length - 1]) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * The module of byteDotReadsUnsigned: f(a, b) = lane 0 of i16x8.relaxed_dot_i8x16_i7x16_s(splat a, splat b) as i32 (two
 * i16 lanes: a0 b0 + a1 b1, a2 b2 + a3 b3).
 * (module (func (export "f") (param i32 i32) (result i32)
 *   local.get 0 i32x4.splat local.get 1 i32x4.splat i16x8.relaxed_dot_i8x16_i7x16_s i32x4.extract_lane 0))
 */
const BYTE_DOT_PROBE = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version
  ...[0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f], // types: (i32 i32) -> i32
  ...[0x03, 0x02, 0x01, 0x00], // functions: one of type 0
  ...[0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00], // exports: "f" = function 0
  ...[0x0a, 0x12, 0x01, 0x10, 0x00], // code: one body of 16 bytes, no locals
  ...[0x20, 0x00, 0xfd, 0x11, 0x20, 0x01, 0xfd, 0x11], // local.get i, i32x4.splat (x2)
  ...[0xfd, 0x92, 0x02, 0xfd, 0x1b, 0x00, 0x0b], // i16x8.relaxed_dot_i8x16_i7x16_s, i32x4.extract_lane 0, end
]);

/** Probe cases: 4 signed bytes of a (|a| <= 8, as the nibble planes), 4 bytes of b (0..255); the extremes first. */
const BYTE_DOT_CASES: readonly (readonly [readonly number[], readonly number[]])[] = [
  [[8, 8, -8, -8], [255, 255, 255, 255]], // 4080, -4080: the planes' largest pairs
  [[-8, 7, 8, -1], [128, 255, 129, 200]], // read signed, 128 would be -128
  [[1, -2, 3, -4], [5, 6, 7, 8]], // b < 128: every runtime agrees here
];

let byteDotUnsigned: boolean | undefined;

/**
 * Does i16x8.relaxed_dot_i8x16_i7x16_s read its second operand's bytes as unsigned, in this runtime, for first-operand
 * bytes of magnitude <= 8 (no pair near i16's range)? The relaxed-SIMD spec leaves bytes >= 128 open: x86 engines emit
 * pmaddubsw (unsigned), an ARM lowering reads them signed. Q8_0's nibble form (assembly/lanes-q8_0-nib.ts) offsets the
 * weight bytes to unsigned and needs this, so the WASM backend asks once per process (1,200 calls, so that an engine that
 * tiers up a hot function answers for its optimizing tier too).
 */
export function byteDotReadsUnsigned(): boolean {
  byteDotUnsigned ??= probeAgrees(
    BYTE_DOT_PROBE,
    BYTE_DOT_CASES.map(([a, b]) => {
      const lo = a[0] * b[0] + a[1] * b[1], hi = a[2] * b[2] + a[3] * b[3];
      return [packBytes(a), packBytes(b), (lo & 0xffff) | (hi << 16)];
    }),
  );
  return byteDotUnsigned;
}

const compiled = new Map<KernelVariant, Promise<WebAssembly.Module>>();

/** Compiles a kernel build once per process; Workers receive the Module, not the bytes. */
export function kernelModule(variant: KernelVariant): Promise<WebAssembly.Module> {
  let m = compiled.get(variant);
  if (!m) {
    m = kernelBytes(variant).then((b) => WebAssembly.compile(b as BufferSource));
    compiled.set(variant, m);
  }
  return m;
}

export function pickVariant(opts: { shared: boolean; relaxed?: boolean }): KernelVariant {
  const relaxed = opts.relaxed ?? hasRelaxedSimd();
  return `${relaxed ? "relaxed" : "simd"}${opts.shared ? "-shared" : ""}` as KernelVariant;
}

export async function instantiateKernels(memory: WebAssembly.Memory, variant: KernelVariant): Promise<Kernels> {
  const module = await kernelModule(variant);
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  return checkKernelExports(instance.exports, variant);
}

/**
 * The module's exports as `Kernels`, once they are checked against the kernel specification: every kernel
 * of the spec is a function of its arity, and the module exports no function the spec lacks. A mismatch
 * (a stale or foreign build) is a KernelBuildError naming the kernel, at load rather than as wrong
 * arguments at the first call. The one cast from the untyped exports lives here.
 */
export function checkKernelExports(exports: WebAssembly.Exports, variant: string): Kernels {
  for (const name of KERNEL_NAMES) {
    const fn = exports[name];
    if (typeof fn !== "function") throw new KernelBuildError(name, `the ${variant} kernel build does not export it`);
    const arity = KERNEL_SPEC[name].args.length;
    if (fn.length !== arity) {
      throw new KernelBuildError(name, `the ${variant} kernel build takes ${fn.length} arguments, the specification ${arity}`);
    }
  }
  for (const [name, value] of Object.entries(exports)) {
    if (typeof value === "function" && !Object.hasOwn(KERNEL_SPEC, name)) {
      throw new KernelBuildError(name, `the ${variant} kernel build exports it, but src/kernels/spec.ts does not list it`);
    }
  }
  return exports as unknown as Kernels;
}
