// src/kv/ owns the KV cache: pages, page tables and reference counts (paged-cache.ts), the prefix cache, and the one
// owner of sequence lifecycles (this file).
/**
 * The one owner of sequence lifecycles over the paged KV cache: sequences are created (adopting a cached
 * prompt prefix), forked (copy-on-write), reserved ahead of each forward step, slid (sliding window) and
 * released only here, and the prefix cache, when on, is the pool's reclaimer. The engine's scheduler and
 * the Model's single-sequence calls both go through it; the forward pass (Model.runRows) only writes rows
 * into positions reserved here.
 */
import type { PagedKVCache, Sequence } from "./paged-cache.ts";
import { PrefixCache } from "./prefix-cache.ts";
import { ContextLengthError } from "../errors.ts";

/** What admitting a prompt takes: the cached full pages it would adopt, and the pages still needed. */
export interface Admission {
  cachedPages: number[];
  /** Pages beyond the cached ones for the prompt and the first generated position. */
  neededPages: number;
}

export class KVManager {
  /** `contextLength`: positions a sequence may hold (the model's context; the page tables may round it up). */
  constructor(private readonly cache: PagedKVCache, readonly contextLength: number) {}

  get pageSize(): number {
    return this.cache.layout.pageSize;
  }
  get totalPages(): number {
    return this.cache.nPages;
  }
  get freePages(): number {
    return this.cache.freePages;
  }
  get maxSequences(): number {
    return this.cache.maxSeqs;
  }
  get freeSequences(): number {
    return this.cache.freeSequences;
  }
  get activeSequences(): number {
    return this.cache.maxSeqs - this.cache.freeSequences;
  }

  /**
   * A prefix cache of up to `maxPages` full prompt pages (null for 0), which becomes the pool's reclaimer:
   * asked for pages when the free list runs short. Its owner (an engine) passes it to admission and
   * remember, and drops it when done.
   */
  prefixCache(maxPages: number): PrefixCache | null {
    return maxPages > 0 ? new PrefixCache(this.cache, maxPages) : null; // it registers as the reclaimer
  }

  /** Gives back the pages a prefix cache holds; it stops being the reclaimer. */
  dropPrefixCache(prefix: PrefixCache | null): void {
    if (!prefix) return;
    prefix.clear();
    if (this.cache.reclaimer === prefix) this.cache.reclaimer = undefined;
  }

  /** A new, empty sequence. */
  create(): Sequence {
    return this.cache.create();
  }

  /** What a new sequence for `prompt` would adopt from `prefix` and what it still needs (see open). */
  admission(prompt: readonly number[], prefix: PrefixCache | null): Admission {
    // the last prompt position is always computed: its logits start the generation
    const cachedPages = prefix?.lookup(prompt, prompt.length - 1) ?? [];
    return { cachedPages, neededPages: Math.ceil((prompt.length + 1) / this.pageSize) - cachedPages.length };
  }

  /** A new sequence holding the admission's cached prefix (seq.length is the positions it already has). */
  open(admission: Admission): Sequence {
    const seq = this.cache.create();
    if (admission.cachedPages.length > 0) this.cache.adoptPrefix(seq, admission.cachedPages);
    return seq;
  }

  /** A sequence holding the same positions as `parent`, sharing its pages until one of them writes (copy-on-write). */
  fork(parent: Sequence): Sequence {
    return this.cache.fork(parent);
  }

  /**
   * Makes positions [seq.length, end) writable: new pages, and a private copy of a shared partial page.
   * Throws ContextLengthError past the context, OutOfMemoryError when the pool (after the prefix cache gave
   * back what it could) runs short; either way nothing changed.
   */
  reserve(seq: Sequence, end: number): void {
    if (end > this.contextLength) throw new ContextLengthError(end, this.contextLength);
    this.cache.reserve(seq, end);
  }

  /** Whether positions [seq.length, end) are reserved (the check Model.runRows makes before it writes). */
  isReserved(seq: Sequence, end: number): boolean {
    return end <= this.contextLength && this.cache.writable(seq, end);
  }

  /** Records the full pages holding `prompt` (written by `seq` from position 0) in `prefix`, when there is one. */
  remember(prompt: readonly number[], seq: Sequence, prefix: PrefixCache | null): void {
    prefix?.insert(prompt, seq.pages.subarray(0, seq.nPages));
  }

  /** Sliding window: gives back the pages no later query of `seq` attends (window W: positions before length - W + 1). */
  slide(seq: Sequence, window: number): void {
    if (window > 0) this.cache.releaseBefore(seq, seq.length - window + 1);
  }

  release(seq: Sequence): void {
    this.cache.release(seq);
  }
}
