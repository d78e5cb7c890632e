import { kernelBytes, type KernelVariant } from "./binaries.ts";

/** The kernel exports, as the TypeScript side calls them. Pointers are byte addresses in the arena. */
export interface Kernels {
  matmul_f32(out: number, x: number, w: number, n: number, d: number, T: number, r0: number, r1: number): void;
  matmul_f16(out: number, x: number, w: number, n: number, d: number, T: number, r0: number, r1: number): void;
  round_f16(out: number, x: number, n: number): void;
  dequantize_f32(out: number, w: number, n: number): void;
  dequantize_f16(out: number, w: number, n: number): void;
  rmsnorm(out: number, x: number, w: number, n: number, eps: number, T: number): void;
  add(out: number, a: number, b: number, n: number): void;
  swiglu(out: number, gate: number, up: number, n: number, T: number): void;
  softmax(x: number, n: number): void;
  rope(x: number, cs: number, pos: number, T: number, nHeads: number, headDim: number, ropeDim: number, halves: number): void;
  attention(
    out: number,
    q: number,
    att: number,
    kvBase: number,
    pageTable: number,
    pageSize: number,
    pageBytes: number,
    kOff: number,
    vOff: number,
    kvDim: number,
    nHeads: number,
    nKvHeads: number,
    headDim: number,
    start: number,
    end: number,
    h0: number,
    h1: number,
    slopes?: number,
    topK?: number,
    sel?: number,
  ): void;
  copy(dst: number, src: number, n: number): void;
  /** Reads n floats as fast as a kernel can (benchmarks' bandwidth probe). */
  read_probe(x: number, n: number): number;
  /** Quantized kernels by name (quantize_q8_0, matmul_q4_k, dequantize_q6_k, ...). */
  [name: string]: (...args: number[]) => unknown;
}

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
  return instance.exports as unknown as Kernels;
}
