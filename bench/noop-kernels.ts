/**
 * Every kernel of KERNEL_SPEC as a WebAssembly function of the kernel's own signature (its i32 and f32 arguments)
 * that returns at once: swapped into a WASM backend (`backend.kernels`), a decode step runs its whole JavaScript and
 * every call into wasm, and no kernel work, which is what the step costs outside its kernels (bench/step-overhead.ts,
 * bench/peers.ts --profile). A module of its own, built here byte by byte (type, function, export and code sections).
 */
import { KERNEL_NAMES, KERNEL_SPEC, type KernelSpec } from "../src/kernels/spec.ts";
import { checkKernelExports, type Kernels } from "../src/kernels/wasm.ts";
import { leb, name, section, vec } from "./wasm-bytes.ts";

/** The no-op kernels (read_probe, the one kernel with a result, returns 0). */
export function noopWasmKernels(): Kernels {
  const names = KERNEL_NAMES;
  const I32 = 0x7f, F32 = 0x7d, END = 0x0b, F32_CONST = 0x43;
  const specs: KernelSpec[] = names.map((n) => KERNEL_SPEC[n]);
  const types = specs.map((spec) => {
    const params = spec.args.map((a) => (spec.f32?.includes(a) ? F32 : I32));
    return [0x60, ...leb(params.length), ...params, ...(spec.returns ? [1, F32] : [0])];
  });
  // each body: no locals, then (f32.const 0) for a result, end
  const bodies = specs.map((spec) => (spec.returns ? [0, F32_CONST, 0, 0, 0, 0, END] : [0, END])).map((b) => [...leb(b.length), ...b]);
  const bytes = new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0],
    ...section(1, vec(types)),
    ...section(3, vec(names.map((_, i) => leb(i)))),
    ...section(7, vec(names.map((n, i) => [...name(n), 0, ...leb(i)]))),
    ...section(10, vec(bodies)),
  ]);
  // the kernel builds' own check: every kernel of the spec, of its arity, and nothing else
  return checkKernelExports(new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports, "no-op");
}
