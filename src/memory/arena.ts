/**
 * src/memory/ owns the one linear memory and its layout: the Arena (a
 * WebAssembly.Memory handed out by a bump pointer) and the ArenaPlan, the
 * single pass that sizes and orders every region a model needs before the
 * memory is reserved.
 */
import { OutOfMemoryError } from "../errors.ts";
import type { Backend } from "../backends/backend.ts";

const PAGE = 65536;
/** The kernels address 32 bits: one module sees at most 4 GiB. */
export const MAX_ARENA_BYTES = 65536 * PAGE;
/** [0, RESERVED) is never handed out: address 0 stays an invalid pointer and the thread pool's control block lives here. */
export const RESERVED = 64 * 1024;

/**
 * The one linear memory. Everything kvasm holds for a model (weights, KV pages,
 * page tables, scratch) is a range of it, handed out once at load by a bump
 * pointer; nothing is allocated per token. `shared` memories back the threaded
 * build, whose Workers import the very same Memory.
 */
export class Arena {
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  readonly capacity: number;
  private top = RESERVED;
  private closed = false;

  constructor(bytes: number, opts: { shared?: boolean } = {}) {
    const needed = Math.ceil((bytes + RESERVED) / PAGE);
    if (needed * PAGE > MAX_ARENA_BYTES) {
      throw new OutOfMemoryError(
        `model needs ${fmtBytes(bytes)} but one WebAssembly memory holds at most 4 GiB; use a smaller quantization or context`,
      );
    }
    this.shared = opts.shared ?? false;
    try {
      this.memory = this.shared
        ? new WebAssembly.Memory({ initial: needed, maximum: needed, shared: true })
        : new WebAssembly.Memory({ initial: needed, maximum: needed });
    } catch (e) {
      throw new OutOfMemoryError(`could not reserve ${fmtBytes(needed * PAGE)} of WebAssembly memory: ${(e as Error).message}`);
    }
    this.capacity = needed * PAGE;
  }

  /** Hands out `bytes` at `align` (default 64: a cache line, and f32x4-aligned). */
  alloc(bytes: number, align = 64, what = "buffer"): number {
    if (this.closed) throw new OutOfMemoryError("arena is closed");
    const ptr = Math.ceil(this.top / align) * align;
    if (ptr + bytes > this.capacity) {
      throw new OutOfMemoryError(
        `arena full: ${what} needs ${fmtBytes(bytes)}, ${fmtBytes(this.capacity - ptr)} left of ${fmtBytes(this.capacity)}`,
      );
    }
    this.top = ptr + bytes;
    return ptr;
  }

  get used(): number {
    return this.top;
  }

  /** Views are cheap to make; the memory never grows after construction, so they stay valid until close(). */
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, n);
  }
  i32(ptr: number, n: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, n);
  }
  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, n);
  }

  /** Drops the reference to the memory's pages so the engine can collect them. */
  close(): void {
    this.closed = true;
  }
}

/** One planned range: its offset from the start of the plan, and the order it is placed in. */
export interface Region {
  readonly what: string;
  readonly bytes: number;
  readonly align: number;
  readonly offset: number;
  readonly index: number;
  /** Left uncommitted by place(): its owner commits it as it is used (Backend.commit). */
  readonly lazy: boolean;
}

/** A placed plan: the address the backend gave each region. */
export type Placement = (region: Region) => number;

/**
 * The layout pass: callers add every region they will need and get its offset;
 * `place` reserves the memory once, at exactly the planned size, and allocates
 * the regions in plan order with the plan's alignment. The arena's first free
 * byte (RESERVED) is aligned to every alignment used, so region i lands at
 * RESERVED + offset and no slack is needed.
 */
export class ArenaPlan {
  private top = 0;
  private readonly regions: Region[] = [];

  add(what: string, bytes: number, align = 64, opts: { lazy?: boolean } = {}): Region {
    const offset = Math.ceil(this.top / align) * align;
    const region = { what, bytes, align, offset, index: this.regions.length, lazy: opts.lazy ?? false };
    this.top = offset + bytes;
    this.regions.push(region);
    return region;
  }

  get bytes(): number {
    return this.top;
  }

  /**
   * Reserves the backend's memory at the planned size and allocates every region in order; `allocate`, when
   * given, allocates instead (a multi-memory layout puts each region in its memory: src/memory/memory-plan.ts).
   */
  async place(backend: Backend, allocate?: (region: Region) => number): Promise<Placement> {
    await backend.init(this.bytes);
    const addresses = this.regions.map((r) => allocate ? allocate(r) : backend.alloc(r.bytes, r.what, r.align, !r.lazy));
    return (region) => {
      if (this.regions[region.index] !== region) throw new RangeError(`${region.what} is not a region of this plan`);
      return addresses[region.index];
    };
  }
}

export function fmtBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}
