import { KvasmError } from "../../errors.ts";

/**
 * The WebGPU entry points kvasm uses, typed loosely: Deno ships WebGPU, Bun
 * and Node do not, and this module must load (and say so) in all three.
 */
// deno-lint-ignore no-explicit-any
export type Gpu = any;

/** A WebGPU failure: no adapter, a lost device, a failed allocation, a validation error. The model can be reloaded on WASM. */
export class WebGpuError extends KvasmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("backend", `WebGPU: ${message}`, options);
  }
}

/** The limits kvasm plans against (bytes). */
export interface GpuLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  minStorageBufferOffsetAlignment: number;
  /** Workgroup memory a kernel may declare (WebGPU's default 16 KiB; NVIDIA's Vulkan adapters give 48 KiB). */
  maxComputeWorkgroupStorageSize: number;
}

export interface GpuStatus {
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  /** The adapter's description (e.g. "llvmpipe (LLVM 15.0.6, 256 bits)", "NVIDIA H100 80GB HBM3"). */
  adapter?: string;
  isFallbackAdapter?: boolean;
  limits?: GpuLimits;
  features?: string[];
}

function gpuObject(): Gpu | undefined {
  return (globalThis as { navigator?: { gpu?: Gpu } }).navigator?.gpu;
}

/** Asks for a high-performance adapter; undefined (with the reason) when there is none. */
export async function requestAdapter(): Promise<{ adapter?: Gpu; reason?: string }> {
  const gpu = gpuObject();
  if (!gpu) return { reason: "this runtime has no navigator.gpu (Bun and Node do not implement WebGPU; Deno does)" };
  let adapter: Gpu;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (e) {
    return { reason: `requestAdapter failed: ${(e as Error).message}` };
  }
  if (!adapter) {
    return { reason: "no WebGPU adapter (no Vulkan/Metal/D3D12 driver found; on Linux install mesa-vulkan-drivers for a software one)" };
  }
  return { adapter };
}

export function limitsOf(adapterOrDevice: Gpu): GpuLimits {
  const l = adapterOrDevice.limits;
  return {
    maxBufferSize: Number(l.maxBufferSize),
    maxStorageBufferBindingSize: Number(l.maxStorageBufferBindingSize),
    minStorageBufferOffsetAlignment: Number(l.minStorageBufferOffsetAlignment),
    maxComputeWorkgroupStorageSize: Number(l.maxComputeWorkgroupStorageSize ?? 16384),
  };
}

function describe(adapter: Gpu): { adapter: string; isFallbackAdapter: boolean } {
  const info = adapter.info ?? {};
  return {
    adapter: info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter",
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
  };
}

/** Whether WebGPU can run here, and on what. Never throws. */
export async function webgpuStatus(): Promise<GpuStatus> {
  const { adapter, reason } = await requestAdapter();
  if (!adapter) return { available: false, reason };
  return { available: true, ...describe(adapter), limits: limitsOf(adapter), features: [...adapter.features] };
}

/** A device with the adapter's full buffer limits (the defaults cap bindings at 128 MiB). */
export async function requestDevice(adapter: Gpu, features: string[] = []): Promise<Gpu> {
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: Math.min(256, l.maxComputeInvocationsPerWorkgroup),
  };
  try {
    return await adapter.requestDevice({ requiredLimits, requiredFeatures: features.filter((f) => adapter.features.has(f)) });
  } catch (e) {
    throw new WebGpuError(`requestDevice failed: ${(e as Error).message}`, { cause: e });
  }
}

export function adapterName(adapter: Gpu): string {
  return describe(adapter).adapter;
}

export function hasWgslFeature(name: string): boolean {
  const f = gpuObject()?.wgslLanguageFeatures;
  return Boolean(f && f.has(name));
}

// GPUBufferUsage / GPUMapMode bits (the globals are absent outside WebGPU runtimes)
export const MAP_READ = 0x1, COPY_SRC = 0x4, COPY_DST = 0x8, UNIFORM = 0x40, STORAGE = 0x80;

/**
 * What went wrong on a device, kept until the host next waits on it (check): its loss, uncaptured errors, and the
 * out-of-memory scopes around buffer creation (popped asynchronously). WebGPU reports these late, so a call that
 * waits (read, upload, flush) is where they become a WebGpuError.
 */
export class DeviceErrors {
  /** Why the device was lost, once it was (every later call throws it). */
  lost: string | null = null;
  private errors: string[] = [];
  private pending: Promise<unknown>[] = [];

  /** Listens to `device`'s loss (while `current` says it is still the one in use) and its uncaptured errors. */
  watch(device: Gpu, current: () => boolean): void {
    device.lost.then((info: Gpu) => {
      if (current()) this.lost = `device lost (${info?.reason ?? "unknown"}): ${info?.message ?? ""}`;
    });
    device.addEventListener?.("uncapturederror", (ev: Gpu) => this.errors.push(String(ev.error?.message ?? ev.error)));
  }

  /** A buffer created in an out-of-memory scope: a failure is reported by the next check as "allocating `what`: ...". */
  createBuffer(device: Gpu, descriptor: Gpu, what: string): Gpu {
    device.pushErrorScope("out-of-memory");
    const buffer = device.createBuffer(descriptor);
    this.pending.push(device.popErrorScope().then((e: Gpu) => e && this.errors.push(`allocating ${what}: ${e.message}`)));
    return buffer;
  }

  /** Waits for the scopes in flight, then throws the loss or the errors so far (once: they are cleared). */
  async check(): Promise<void> {
    if (this.pending.length) {
      const scopes = this.pending;
      this.pending = [];
      await Promise.all(scopes);
    }
    if (this.lost) throw new WebGpuError(this.lost);
    if (this.errors.length) {
      const msg = this.errors.join("; ");
      this.errors = [];
      throw new WebGpuError(msg);
    }
  }
}
