import type { PagedKVCache, PageReclaimer } from "./paged-cache.ts";

/** One cached full page: the K/V of `pageSize` tokens that follow the prefix named by `parent`. */
interface Entry {
  id: number;
  key: string;
  parent: Entry | null;
  page: number;
  children: number;
  lastUse: number;
}

/**
 * Prefix reuse over the paged KV cache (vLLM's automatic prefix caching). A
 * full page of prompt tokens is named by its token block and the name of the
 * page before it, so one key stands for the whole prefix up to the page's
 * end; equal keys mean equal K/V. The cache holds one reference to each page
 * it knows, keeps at most `maxPages` of them, and gives back the least
 * recently used leaves first: when over its bound, and when the KV cache runs
 * out of free pages (it is the cache's reclaimer).
 */
export class PrefixCache implements PageReclaimer {
  /** Pages found and reused by lookups since creation. */
  hits = 0;
  private readonly entries = new Map<string, Entry>();
  private clock = 0;
  private nextId = 1;

  constructor(private readonly kv: PagedKVCache, readonly maxPages: number) {
    kv.reclaimer = this;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The cached pages that hold a prefix of `tokens`, first page first; at most
   * `maxPositions / pageSize` of them. Touches them (a hit keeps the prefix warm).
   */
  lookup(tokens: ArrayLike<number>, maxPositions: number): number[] {
    const P = this.kv.layout.pageSize;
    const found: Entry[] = [];
    let parent: Entry | null = null;
    for (let i = 0; (i + 1) * P <= Math.min(tokens.length, maxPositions); i++) {
      const e = this.entries.get(keyOf(parent, tokens, i * P, P));
      if (!e) break;
      found.push(e);
      parent = e;
    }
    this.touch(found);
    this.hits += found.length;
    return found.map((e) => e.page);
  }

  /**
   * Records the full pages of `pages` that hold `tokens` (a sequence's prompt,
   * written from position 0). Pages already known under the same key are left
   * as they are; new ones gain a reference held by the cache.
   */
  insert(tokens: ArrayLike<number>, pages: ArrayLike<number>): void {
    if (this.maxPages <= 0) return;
    const P = this.kv.layout.pageSize;
    const chain: Entry[] = [];
    let parent: Entry | null = null;
    for (let i = 0; (i + 1) * P <= tokens.length && i < pages.length; i++) {
      if (pages[i] < 0) break; // released by a sliding window
      const key = keyOf(parent, tokens, i * P, P);
      let e = this.entries.get(key);
      if (!e) {
        e = { id: this.nextId++, key, parent, page: pages[i], children: 0, lastUse: 0 };
        if (parent) parent.children++;
        this.kv.ref(e.page);
        this.entries.set(key, e);
      }
      chain.push(e);
      parent = e;
    }
    this.touch(chain);
    if (this.entries.size > this.maxPages) this.evict(this.entries.size - this.maxPages, false);
  }

  /** PageReclaimer: frees up to `n` pages that only this cache still holds. */
  reclaim(n: number): number {
    return this.evict(n, true);
  }

  /** Drops every entry (and the references it held). */
  clear(): void {
    for (const e of this.entries.values()) this.kv.unref(e.page);
    this.entries.clear();
  }

  /**
   * Drops up to `n` leaf entries, least recently used first. With `onlyFree`,
   * only pages no sequence uses (so dropping them frees memory) qualify.
   */
  private evict(n: number, onlyFree: boolean): number {
    let dropped = 0;
    while (dropped < n) {
      let victim: Entry | null = null;
      for (const e of this.entries.values()) {
        if (e.children > 0 || (onlyFree && this.kv.refs[e.page] !== 1)) continue;
        if (!victim || e.lastUse < victim.lastUse) victim = e;
      }
      if (!victim) break;
      this.entries.delete(victim.key);
      if (victim.parent) victim.parent.children--;
      this.kv.unref(victim.page);
      dropped++;
    }
    return dropped;
  }

  /** Marks a chain used: the deepest page gets the oldest stamp, so leaves go before the prefixes they extend. */
  private touch(chain: Entry[]): void {
    for (let i = chain.length - 1; i >= 0; i--) chain[i].lastUse = ++this.clock;
  }
}

/** The key of the page holding tokens[from, from + n) after the prefix `parent` names. */
function keyOf(parent: Entry | null, tokens: ArrayLike<number>, from: number, n: number): string {
  let s = parent ? `${parent.id}:` : "0:";
  for (let i = 0; i < n; i++) s += (i ? "," : "") + tokens[from + i];
  return s;
}
