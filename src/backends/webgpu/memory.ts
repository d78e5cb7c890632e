// The WebGPU backend's device memory: one state buffer (activations, KV pages, page tables, row metadata: the
// addresses the forward pass holds are byte offsets into it, grown as allocations come, keeping its contents), one
// buffer per weight tensor (uploaded once; its address only names it), the readback buffers, and the row ranges of a
// weight that one binding can cover.
import type { ByteSource } from "../../io/source.ts";
import { OutOfMemoryError, UnsupportedError } from "../../errors.ts";
import type { Weight } from "../backend.ts";
import { COPY_DST, COPY_SRC, type DeviceErrors, type Gpu, type GpuLimits, MAP_READ, STORAGE, WebGpuError } from "./device.ts";

/** State addresses are byte offsets into the state buffer; weight addresses live far above them and only name a tensor. */
export const STATE_START = 256;
export const WEIGHT_BASE = 2 ** 40;
/** Workgroups a dispatch may have along x (WebGPU's maxComputeWorkgroupsPerDimension default). */
export const MAX_GROUPS = 65535;

/** A row range of a weight that one binding covers (offset and size 0: the whole buffer). */
export interface WeightRange {
  row0: number;
  rows: number;
  offset: number;
  size: number;
}

interface WeightBuffer {
  addr: number;
  bytes: number;
  buffer: Gpu;
  what: string;
}

/** What memory needs of the dispatch recorder: to submit what is recorded, and an encoder to record a copy into. */
export interface Submitter {
  submit(): void;
  /** The open command encoder, its compute pass ended (a copy cannot be recorded inside one). */
  copyEncoder(): Gpu;
}

export class DeviceMemory {
  /** Bumped when the state buffer is remade: bind groups and plans made before name the old one. */
  generation = 0;
  private stateTop = STATE_START;
  private state: Gpu = null;
  private weightTop = WEIGHT_BASE;
  private readonly weights = new Map<number, WeightBuffer>();
  private readonly rangeCache = new WeakMap<Weight, WeightRange[]>();
  /**
   * Readback buffers: one per read in flight (a caller may start the next read before awaiting the last, as
   * Model's device loop does to record the next run while Deno's mapAsync sleeps), kept for reuse.
   */
  private readonly staging: Array<{ buffer: Gpu; busy: boolean }> = [];

  constructor(
    private readonly device: Gpu,
    private readonly limits: GpuLimits,
    private readonly errors: DeviceErrors,
    private readonly queue: Submitter,
  ) {}

  /**
   * Allocates `bytes`: a weight tensor ("weight ..." names it) gets a buffer of its own and an address that names it;
   * anything else a byte offset in the state buffer, which grows to it at the next dispatch, write or read.
   */
  alloc(bytes: number, what: string, align = 64): number {
    if (what.startsWith("weight ")) return this.allocWeight(bytes, what);
    const at = Math.ceil(this.stateTop / align) * align;
    const top = at + bytes;
    if (top > this.limits.maxStorageBufferBindingSize) {
      throw new OutOfMemoryError(
        `WebGPU: ${what} (${bytes} bytes) would grow the state buffer to ${top} bytes, past this adapter's maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize}); use a shorter contextLength or fewer sequences`,
      );
    }
    this.stateTop = top;
    return at;
  }

  private allocWeight(bytes: number, what: string): number {
    // +16: kernels read the word after a 2-byte-aligned value; sizes must be multiples of 4
    const size = Math.ceil(bytes / 4) * 4 + 16;
    if (size > this.limits.maxBufferSize) {
      throw new OutOfMemoryError(
        `WebGPU: ${what} needs a ${size}-byte buffer, past this adapter's maxBufferSize (${this.limits.maxBufferSize})`,
      );
    }
    const buffer = this.errors.createBuffer(this.device, { size, usage: STORAGE | COPY_DST }, what);
    const addr = this.weightTop;
    this.weightTop += Math.ceil(size / 256) * 256;
    this.weights.set(addr, { addr, bytes, buffer, what });
    return addr;
  }

  /** The state buffer, created (or grown, keeping its contents) to cover every state allocation so far. */
  stateBuffer(): Gpu {
    if (this.state && this.state.size >= this.stateTop) return this.state;
    this.queue.submit();
    const size = Math.ceil(this.stateTop / 256) * 256;
    const buf = this.errors.createBuffer(this.device, { size, usage: STORAGE | COPY_SRC | COPY_DST }, `the ${size}-byte state buffer`);
    if (this.state) {
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(this.state, 0, buf, 0, this.state.size);
      this.device.queue.submit([enc.finish()]);
      this.state.destroy();
    }
    this.state = buf;
    this.generation++;
    return buf;
  }

  /** Writes host bytes at ptr, a state address, after the work recorded so far. */
  write(ptr: number, data: ArrayBufferView): void {
    const state = this.stateBuffer();
    this.queue.submit(); // work recorded before this write must see the old contents
    let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length % 4 !== 0) {
      const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
      padded.set(bytes);
      // keep the bytes past the end as they are: this path only serves byte-sized host writes
      bytes = padded;
    }
    this.device.queue.writeBuffer(state, ptr, bytes);
  }

  /** Uploads `bytes` of source from `offset` into the weight allocated at ptr, 32 MiB at a time. */
  async upload(ptr: number, source: ByteSource, offset: number, bytes: number): Promise<void> {
    const w = this.weights.get(ptr);
    if (!w) throw new WebGpuError(`upload to ${ptr}, which is not a weight allocation`);
    const CHUNK = 32 << 20;
    const host = new Uint8Array(Math.min(CHUNK, Math.ceil(bytes / 4) * 4));
    for (let done = 0; done < bytes; done += CHUNK) {
      const n = Math.min(CHUNK, bytes - done);
      const view = host.subarray(0, Math.ceil(n / 4) * 4);
      view.fill(0, n);
      await source.read(offset + done, view.subarray(0, n));
      this.device.queue.writeBuffer(w.buffer, done, view);
    }
    await this.errors.check();
  }

  /** Reads dest.byteLength bytes at ptr, a state address, into dest, after the work recorded so far. */
  async read(ptr: number, dest: Float32Array): Promise<void> {
    const state = this.stateBuffer();
    const bytes = dest.byteLength;
    const slot = this.stagingFor(bytes);
    const enc = this.queue.copyEncoder();
    // recorded and submitted before the first await: what the caller records next cannot change what this reads
    enc.copyBufferToBuffer(state, ptr, slot.buffer, 0, bytes);
    this.queue.submit();
    try {
      await slot.buffer.mapAsync(1, 0, bytes);
    } catch (e) {
      slot.busy = false;
      throw new WebGpuError(`reading back ${bytes} bytes failed: ${this.errors.lost ?? (e as Error).message}`, { cause: e });
    }
    dest.set(new Float32Array(slot.buffer.getMappedRange(0, bytes)));
    slot.buffer.unmap();
    slot.busy = false;
    await this.errors.check();
  }

  /** A readback buffer of at least `bytes` that no read in flight holds (a larger one replaces an idle one too small). */
  private stagingFor(bytes: number): { buffer: Gpu; busy: boolean } {
    let slot = this.staging.find((s) => !s.busy && s.buffer.size >= bytes);
    if (!slot) {
      const buffer = this.device.createBuffer({ size: Math.ceil(bytes / 256) * 256, usage: MAP_READ | COPY_DST });
      const idle = this.staging.findIndex((s) => !s.busy);
      if (idle >= 0) {
        this.staging[idle].buffer.destroy();
        this.staging[idle] = slot = { buffer, busy: false };
      } else this.staging.push(slot = { buffer, busy: false });
    }
    slot.busy = true;
    return slot;
  }

  /** Destroys every buffer this memory made (the device is being closed). */
  destroy(): void {
    for (const w of this.weights.values()) w.buffer.destroy();
    this.weights.clear();
    this.state?.destroy();
    for (const s of this.staging.splice(0)) s.buffer.destroy();
  }

  /**
   * The buffer holding w, w's byte offset in it and the bytes from there a binding may cover: a row view of a
   * fused tensor (GPT-2's and BLOOM's q/k/v of attn_qkv, and their biases) starts inside its tensor's buffer.
   */
  weightBuffer(w: Weight): { buffer: Gpu; base: number; size: number } {
    const whole = this.weights.get(w.ptr);
    if (whole) return { buffer: whole.buffer, base: 0, size: whole.buffer.size };
    for (const b of this.weights.values()) {
      if (w.ptr <= b.addr || w.ptr + w.bytes > b.addr + b.bytes) continue;
      const base = w.ptr - b.addr, align = this.limits.minStorageBufferOffsetAlignment;
      if (base % align !== 0) {
        throw new UnsupportedError(
          `WebGPU: ${w.name} starts at byte ${base} of ${b.what}, not a multiple of this adapter's binding alignment ${align}`,
        );
      }
      return { buffer: b.buffer, base, size: Math.min(Math.ceil(w.bytes / 4) * 4 + 16, b.buffer.size - base) };
    }
    throw new WebGpuError(`${w.name} is not in GPU memory`);
  }

  /** Row ranges of a tensor that fit one binding, at offsets the adapter accepts. */
  ranges(w: Weight): WeightRange[] {
    // the same for a weight's whole life, and asked for several times per op by the fuser: computed once
    let r = this.rangeCache.get(w);
    if (!r) this.rangeCache.set(w, r = this.computeRanges(w));
    return r;
  }

  private computeRanges(w: Weight): WeightRange[] {
    const rowBytes = w.bytes / w.rows;
    const limit = this.limits.maxStorageBufferBindingSize - 256;
    const bufSize = this.weightBuffer(w).size;
    if (bufSize <= this.limits.maxStorageBufferBindingSize && w.rows <= MAX_GROUPS * 8) {
      return [{ row0: 0, rows: w.rows, offset: 0, size: 0 }];
    }
    const step = Math.max(256, Math.min(Math.floor(limit / rowBytes / 256) * 256, MAX_GROUPS * 8 - (MAX_GROUPS * 8) % 256));
    const out = [];
    for (let r = 0; r < w.rows; r += step) {
      const rows = Math.min(step, w.rows - r);
      const offset = r * rowBytes;
      out.push({ row0: r, rows, offset, size: Math.min(Math.ceil((rows * rowBytes) / 4) * 4 + 16, bufSize - offset) });
    }
    return out;
  }
}
