// src/kv/ owns the KV cache: pages, page tables and reference counts (this file; the arena plan places its two
// regions), and the prefix cache that lets sequences share computed pages (prefix-cache.ts).

import { type Backend, type KVLayout, kvSlotBytes, type KVType } from "../backends/backend.ts";
import { ContextLengthError, OutOfMemoryError, ParamError } from "../errors.ts";
import type { ArenaPlan, Region } from "../memory/arena.ts";

/** Pages made resident at creation (more as the pool first hands them out): a short conversation never faults. */
const INITIAL_COMMIT_BYTES = 16 << 20;

/** One sequence's view of the cache: its page table (host mirror + device copy) and how many positions it holds. */
export class Sequence {
  /** Positions written so far; the next token goes to position `length`. */
  length = 0;
  /** Host mirror of the page table: page index for positions [i*pageSize, (i+1)*pageSize); -1 once released by a sliding window. */
  readonly pages: Int32Array;
  nPages = 0;
  /** Pages [0, firstPage) fell out of the sliding window and were given back. */
  firstPage = 0;
  constructor(readonly id: number, readonly slot: number, readonly pageTablePtr: number, maxPages: number) {
    this.pages = new Int32Array(maxPages);
  }
}

export interface KVCacheOptions {
  pageSize: number;
  nPages: number;
  maxSeqs: number;
  maxPositions: number;
  /** Element type of K and V in the pages; default "f32". */
  kvType?: KVType;
  /** How attention reads the pages (KVLayout's fields): ALiBi slopes' address, sparse top-k and its scratch. */
  alibiSlopes?: number;
  topK?: number;
  topKScratch?: number;
  /** Where the arena plan placed the pages and page tables (PagedKVCache.plan); absent: the cache allocates them. */
  at?: { pages: number; pageTables: number };
}

/** The cache's two regions of an arena plan. */
export interface KVRegions {
  pages: Region;
  pageTables: Region;
}

/**
 * Something that holds page references it can give back on demand (the
 * prefix cache): asked for `n` pages when the free list runs short, it
 * returns how many it freed.
 */
export interface PageReclaimer {
  reclaim(n: number): number;
}

/**
 * The paged KV cache: a pool of fixed-size pages in the backend's memory, a
 * free list, reference counts (so forks and the prefix cache can share
 * pages), and one page table per sequence. The attention kernel reads K and V
 * through the page table, so sequences grow and die without moving anyone
 * else's pages. A shared page is copied only when a sequence is about to
 * write into it (the partial last page after a fork).
 */
export class PagedKVCache {
  readonly layout: KVLayout;
  readonly nPages: number;
  readonly maxSeqs: number;
  readonly maxPagesPerSeq: number;
  /** Per-page reference count; 0 = free. */
  readonly refs: Int32Array;
  /** Pages copied because a shared partial page was about to be written (copy-on-write). */
  pagesCopied = 0;
  /** Consulted when the free list cannot satisfy a reservation. */
  reclaimer?: PageReclaimer;
  private readonly freeList: Int32Array;
  private nFree: number;
  private readonly freeSlots: number[];
  private readonly pageTables: number;
  private nextId = 1;
  /** Pages [0, committed) are resident; the rest of the pool stays virtual until first handed out. */
  private committed = 0;

  constructor(
    private readonly backend: Backend,
    shape: { nLayers: number; nHeads: number; nKvHeads: number; headDim: number },
    opts: KVCacheOptions,
  ) {
    const kvType = opts.kvType ?? "f32";
    const kvDim = shape.nKvHeads * shape.headDim;
    const qBlock = quantBlock(kvType, shape.headDim);
    const pageBytes = PagedKVCache.pageBytes(shape, opts.pageSize, kvType);
    this.nPages = opts.nPages;
    this.maxSeqs = opts.maxSeqs;
    this.maxPagesPerSeq = Math.ceil(opts.maxPositions / opts.pageSize);
    const base = opts.at?.pages ?? backend.alloc(opts.nPages * pageBytes, "kv cache pages", 64, false);
    this.pageTables = opts.at?.pageTables ?? backend.alloc(opts.maxSeqs * this.maxPagesPerSeq * 4, "kv page tables");
    this.layout = { base, pageSize: opts.pageSize, pageBytes, kvDim, kvType, qBlock, ...shape };
    if (opts.alibiSlopes) this.layout.alibiSlopes = opts.alibiSlopes;
    if (opts.topK) Object.assign(this.layout, { topK: opts.topK, topKScratch: opts.topKScratch });
    this.refs = new Int32Array(opts.nPages);
    this.freeList = new Int32Array(opts.nPages);
    // pop from the end: low page numbers are handed out first
    for (let i = 0; i < opts.nPages; i++) this.freeList[i] = opts.nPages - 1 - i;
    this.nFree = opts.nPages;
    this.freeSlots = Array.from({ length: opts.maxSeqs }, (_, i) => opts.maxSeqs - 1 - i);
    this.commitThrough(Math.min(opts.nPages, Math.ceil(INITIAL_COMMIT_BYTES / pageBytes)) - 1);
  }

  /** Bytes of one page: pageSize positions of K and V for every layer. */
  static pageBytes(shape: { nLayers: number; nKvHeads: number; headDim: number }, pageSize: number, kvType: KVType = "f32"): number {
    const kvDim = shape.nKvHeads * shape.headDim;
    const slot = kvSlotBytes(kvType, kvDim, quantBlock(kvType, shape.headDim));
    // keep pages 16-byte aligned for the SIMD loads
    return Math.ceil((shape.nLayers * 2 * pageSize * slot) / 16) * 16;
  }

  /** Adds the pages and the page tables to an arena plan (their addresses then go to the constructor as `at`). */
  static plan(plan: ArenaPlan, shape: { nLayers: number; nKvHeads: number; headDim: number }, opts: KVCacheOptions): KVRegions {
    return {
      pages: plan.add("kv cache pages", opts.nPages * PagedKVCache.pageBytes(shape, opts.pageSize, opts.kvType), 64, { lazy: true }),
      pageTables: plan.add("kv page tables", opts.maxSeqs * Math.ceil(opts.maxPositions / opts.pageSize) * 4),
    };
  }

  get freePages(): number {
    return this.nFree;
  }

  get freeSequences(): number {
    return this.freeSlots.length;
  }

  create(): Sequence {
    const slot = this.freeSlots.pop();
    if (slot === undefined) throw new OutOfMemoryError(`all ${this.maxSeqs} sequence slots of the KV cache are in use`);
    return new Sequence(this.nextId++, slot, this.pageTables + slot * this.maxPagesPerSeq * 4, this.maxPagesPerSeq);
  }

  /**
   * A new sequence holding the same positions as `parent`, sharing all of its
   * pages (no copy now). Whichever of the two next writes into a shared
   * partial page gets a private copy of it first (see reserve).
   */
  fork(parent: Sequence): Sequence {
    const child = this.create();
    child.length = parent.length;
    child.nPages = parent.nPages;
    child.firstPage = parent.firstPage;
    child.pages.set(parent.pages.subarray(0, parent.nPages));
    for (let i = parent.firstPage; i < parent.nPages; i++) this.refs[parent.pages[i]]++;
    this.syncPageTable(child, 0, child.nPages);
    return child;
  }

  /**
   * Makes sure positions [0, length) have pages the sequence may write from
   * `seq.length` on: new pages at the end, and a private copy of a shared
   * partial last page. Fails without side effects if the pool (after asking
   * the reclaimer) cannot supply them.
   */
  reserve(seq: Sequence, length: number): void {
    const maxPositions = this.maxPagesPerSeq * this.layout.pageSize;
    if (length > maxPositions) throw new ContextLengthError(length, maxPositions);
    if (length <= seq.length) return;
    const need = Math.ceil(length / this.layout.pageSize);
    const writeFrom = Math.floor(seq.length / this.layout.pageSize);
    const cow = writeFrom < seq.nPages && this.refs[seq.pages[writeFrom]] > 1;
    const wanted = Math.max(0, need - seq.nPages) + (cow ? 1 : 0);
    this.ensureFree(wanted, seq);
    if (cow) {
      const shared = seq.pages[writeFrom];
      const page = this.takePage();
      this.backend.copy(this.pageAddress(page), this.pageAddress(shared), this.layout.pageBytes);
      this.unref(shared);
      seq.pages[writeFrom] = page;
      this.pagesCopied++;
      this.syncPageTable(seq, writeFrom, writeFrom + 1);
    }
    const first = seq.nPages;
    while (seq.nPages < need) seq.pages[seq.nPages++] = this.takePage();
    if (need > first) this.syncPageTable(seq, first, need);
  }

  /** Whether positions [seq.length, length) may be written now: their pages are there and none is shared (reserve done). */
  writable(seq: Sequence, length: number): boolean {
    if (length <= seq.length) return true;
    if (Math.ceil(length / this.layout.pageSize) > seq.nPages) return false;
    const writeFrom = Math.floor(seq.length / this.layout.pageSize);
    return writeFrom >= seq.nPages || this.refs[seq.pages[writeFrom]] === 1;
  }

  /**
   * Gives a sequence shared, already computed full pages as its first pages
   * (prefix reuse): the sequence must be empty; it then holds
   * `pages.length * pageSize` positions.
   */
  adoptPrefix(seq: Sequence, pages: ArrayLike<number>): void {
    if (seq.length !== 0 || seq.nPages !== 0) throw new ParamError("seq", "can adopt a prefix only while empty");
    for (let i = 0; i < pages.length; i++) {
      this.ref(pages[i]);
      seq.pages[i] = pages[i];
    }
    seq.nPages = pages.length;
    seq.length = pages.length * this.layout.pageSize;
    this.syncPageTable(seq, 0, seq.nPages);
  }

  /**
   * Sliding window: gives back every page whose positions all lie before
   * `position` (no later query of this sequence attends them).
   */
  releaseBefore(seq: Sequence, position: number): number {
    const upTo = Math.min(seq.nPages, Math.floor(position / this.layout.pageSize));
    let released = 0;
    for (let i = seq.firstPage; i < upTo; i++) {
      this.unref(seq.pages[i]);
      seq.pages[i] = -1;
      released++;
    }
    if (upTo > seq.firstPage) seq.firstPage = upTo;
    return released;
  }

  /** Copies the host page table entries [from, to) to the device. */
  syncPageTable(seq: Sequence, from: number, to: number): void {
    this.backend.write(seq.pageTablePtr + from * 4, seq.pages.subarray(from, to));
  }

  /** Drops one reference to each of the sequence's pages and returns its slot. */
  release(seq: Sequence): void {
    for (let i = seq.firstPage; i < seq.nPages; i++) this.unref(seq.pages[i]);
    seq.nPages = 0;
    seq.length = 0;
    seq.firstPage = 0;
    this.freeSlots.push(seq.slot);
  }

  ref(page: number): void {
    this.refs[page]++;
  }

  unref(page: number): void {
    if (--this.refs[page] === 0) this.freeList[this.nFree++] = page;
  }

  /** Takes one free page (refcount 1), or throws if none is left. */
  takePage(): number {
    if (this.nFree === 0) this.ensureFree(1);
    const page = this.freeList[--this.nFree];
    this.refs[page] = 1;
    if (page >= this.committed) this.commitThrough(Math.max(page, Math.min(this.nPages, 2 * this.committed) - 1));
    return page;
  }

  /**
   * Makes pages [committed, last] resident. A page's first write in a kernel would otherwise cost a page fault per
   * new slot in decode; committing when the pool first hands a page out, doubling each time, keeps those faults out of
   * the token loop while a context declared huge (or forged so, by a hostile file) costs only what is used.
   */
  private commitThrough(last: number): void {
    if (last < this.committed) return;
    const bytes = this.layout.pageBytes;
    this.backend.commit?.(this.pageAddress(this.committed), (last + 1 - this.committed) * bytes);
    this.committed = last + 1;
  }

  pageAddress(page: number): number {
    return this.layout.base + page * this.layout.pageBytes;
  }

  /** Makes `n` pages free, asking the reclaimer if needed; throws OutOfMemoryError otherwise. */
  private ensureFree(n: number, seq?: Sequence): void {
    if (n <= this.nFree) return;
    if (this.reclaimer) this.reclaimer.reclaim(n - this.nFree);
    if (n > this.nFree) {
      throw new OutOfMemoryError(
        `KV cache full: ${
          seq ? `sequence ${seq.id} ` : ""
        }needs ${n} more pages of ${this.layout.pageSize} positions, ${this.nFree} of ${this.nPages} free`,
      );
    }
  }
}

/**
 * Values per quantization block of a Q8_0 cache (one scale each) or a u8_asym cache (one scale and zero
 * point each): 32, or one head when heads are not multiples of 32.
 */
function quantBlock(kvType: KVType, headDim: number): number {
  if (kvType !== "q8_0" && kvType !== "u8_asym") return 0;
  return headDim % 32 === 0 ? 32 : headDim;
}
