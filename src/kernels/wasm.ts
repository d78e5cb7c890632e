import { kernelBytes, type KernelVariant } from "./binaries.ts";
import { KERNEL_NAMES, KERNEL_SPEC, type Kernels } from "./spec.ts";
import { KernelBuildError } from "../errors.ts";

export type { Kernels };

/** Does this runtime run relaxed SIMD? Validating a tiny module answers without compiling the kernels. */
export function hasRelaxedSimd(): boolean {
  // (module (func (result v128) v128.const i32x4 0 0 0 0 v128.const i32x4 0 0 0 0 v128.const i32x4 0 0 0 0 i32x4.relaxed_dot_i8x16_i7x16_add_s))
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

export function hasSharedMemory(): boolean {
  try {
    return typeof SharedArrayBuffer !== "undefined" &&
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
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
    if (typeof value === "function" && !(name in KERNEL_SPEC)) {
      throw new KernelBuildError(name, `the ${variant} kernel build exports it, but src/kernels/spec.ts does not list it`);
    }
  }
  return exports as unknown as Kernels;
}
