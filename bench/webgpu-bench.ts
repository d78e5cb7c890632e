/**
 * What the standalone WebGPU kernel benches (webgpu-matvec.ts, webgpu-gemm.ts) share: the device with timestamp
 * queries where the adapter has them, one bind-group layout of storage buffers (binding 0 read-write, 2 a uniform,
 * the rest read-only), the matrices they time, weights uploaded, a readback of f32 words, and the timing of
 * back-to-back dispatches in one pass.
 */
// deno-lint-ignore-file no-explicit-any
import { requestAdapter, requestDevice } from "../src/backends/webgpu/device.ts";

type Gpu = any;

/** Wall time of untimed passes before each timing (timeIt). */
const WARM_MS = 30;

/** Buffer usage bits (GPUBufferUsage, which not every runtime's globals carry). */
export const MAP_READ = 0x01, COPY_DST = 0x08, COPY_SRC = 0x04, UNIFORM = 0x40, STORAGE = 0x80, QUERY_RESOLVE = 0x200;

/** The weight matrices the benches time, rows x columns: the Llama-3.2-1B shape's, and stories110M's (suffix 110). */
export const MATRICES: Record<string, [number, number]> = {
  gateup: [16384, 2048],
  down: [2048, 8192],
  qkv: [3072, 2048],
  out: [2048, 2048],
  cls: [128256, 2048],
  gateup110: [4096, 768],
  down110: [768, 2048],
  qkv110: [2304, 768],
  out110: [768, 768],
  cls110: [32000, 768],
};

/** A case's matrix (rows, columns), or an error naming the cases there are. */
export function matrixOf(name: string): [number, number] {
  const m = MATRICES[name];
  if (!m) throw new Error(`unknown case ${name} (${Object.keys(MATRICES).join(", ")})`);
  return m;
}

export interface GpuBench {
  adapter: Gpu;
  device: Gpu;
  /** WGSL's packed_4x8_integer_dot_product (dot4I8Packed) is offered. */
  hasDot4: boolean;
  /** Dispatches are timed by timestamp queries (else by the wall clock around the submit). */
  timed: boolean;
  /** The bind-group layout (for bind groups) and the pipeline layout over it. */
  layout: Gpu;
  pipelineLayout: Gpu;
  /**
   * A storage buffer holding `bytes`' whole words, sized to a multiple of 16 bytes plus 16 more, so that kernels
   * reading 16-byte units may read past a ragged end.
   */
  upload(bytes: Uint8Array): Gpu;
  /** `words` f32 values of `buf` from `byteOffset`, read back. */
  readWords(buf: Gpu, byteOffset: number, words: number): Promise<Float32Array>;
  /** Nanoseconds a dispatch over `count` back-to-back (gx, gy) dispatches in one timed pass (the best of 3 passes). */
  timeIt(p: Gpu, bg: Gpu, gx: number, gy: number, count: number): Promise<number>;
}

/** The adapter and device, a layout of `bindings` buffers, and the readback and timing over them. */
export async function openGpuBench(bindings: number): Promise<GpuBench> {
  const { adapter } = await requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device: Gpu = await requestDevice(adapter, ["timestamp-query"]);
  const hasDot4 = Boolean((navigator as Gpu).gpu?.wgslLanguageFeatures?.has("packed_4x8_integer_dot_product"));
  const timed: boolean = device.features.has("timestamp-query");
  const layout = device.createBindGroupLayout({
    entries: Array.from({ length: bindings }, (_, b) => ({
      binding: b,
      visibility: 0x04, // compute
      buffer: { type: b === 0 ? "storage" : b === 2 ? "uniform" : "read-only-storage" },
    })),
  });
  const pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [layout] });
  const querySet = timed ? device.createQuerySet({ type: "timestamp", count: 2 }) : null;
  const resolved = device.createBuffer({ size: 16, usage: QUERY_RESOLVE | COPY_SRC });
  const readTimes = device.createBuffer({ size: 16, usage: MAP_READ | COPY_DST });

  function upload(bytes: Uint8Array): Gpu {
    const buf = device.createBuffer({ size: Math.ceil(bytes.length / 16) * 16 + 16, usage: STORAGE | COPY_DST });
    device.queue.writeBuffer(buf, 0, bytes, 0, Math.floor(bytes.length / 4) * 4);
    return buf;
  }

  async function readWords(buf: Gpu, byteOffset: number, words: number): Promise<Float32Array> {
    const rb = device.createBuffer({ size: words * 4, usage: MAP_READ | COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(buf, byteOffset, rb, 0, words * 4);
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(1);
    const out = new Float32Array(rb.getMappedRange().slice(0));
    rb.unmap();
    rb.destroy();
    return out;
  }

  async function timeIt(p: Gpu, bg: Gpu, gx: number, gy: number, count: number): Promise<number> {
    /** The `count` dispatches into `pass`, which it ends: the warm-up's and the timed passes' same work. */
    const dispatchAll = (pass: Gpu) => {
      pass.setPipeline(p);
      pass.setBindGroup(0, bg);
      for (let i = 0; i < count; i++) pass.dispatchWorkgroups(gx, gy);
      pass.end();
    };
    // Warm-up: the same dispatches, untimed, for WARM_MS of wall time first. The host compiles each candidate's
    // pipeline between timings and the GPU idles meanwhile; a timed pass of 50 short dispatches (a few hundred us)
    // may end before its clocks are back up. On an H100 (2026-12-05, before this warm-up) kernels read up to 4x
    // slower here than in the decode profile (stories110M's F32 classifier 200 us against 47), and one form 3x slower
    // than the form timed just before it; the clocks are the likely cause, not yet confirmed on a GPU.
    const warm = performance.now();
    for (let i = 0; i < 200 && performance.now() - warm < WARM_MS; i++) {
      const enc = device.createCommandEncoder();
      dispatchAll(enc.beginComputePass());
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    }
    let best = Infinity;
    for (let rep = 0; rep < 3; rep++) {
      const enc = device.createCommandEncoder();
      const t0 = performance.now();
      dispatchAll(enc.beginComputePass(
        querySet ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {},
      ));
      if (querySet) {
        enc.resolveQuerySet(querySet, 0, 2, resolved, 0);
        enc.copyBufferToBuffer(resolved, 0, readTimes, 0, 16);
      }
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      let ns = (performance.now() - t0) * 1e6;
      if (querySet) {
        await readTimes.mapAsync(1);
        const t = new BigUint64Array(readTimes.getMappedRange().slice(0));
        readTimes.unmap();
        ns = Number(t[1] - t[0]);
      }
      best = Math.min(best, ns / count);
    }
    return best;
  }

  return { adapter, device, hasDot4, timed, layout, pipelineLayout, upload, readWords, timeIt };
}
