/**
 * The work queue of BPE / SentencePiece merging: a binary heap of candidate
 * merges of two adjacent symbols, smallest `key` first, ties to the leftmost
 * pair (llama.cpp's llm_bigram_spm / llm_bigram_bpe comparators). Candidates
 * go stale when a neighbour merges first; callers check `size` on pop.
 */
export interface MergeCandidate {
  /** Priority: -score for SentencePiece, merge rank for BPE. */
  key: number;
  /** Index of the left symbol (the merged symbol keeps this index). */
  left: number;
  right: number;
  /** Length of the merged text, to detect stale candidates. */
  size: number;
}

export class MergeQueue {
  private readonly heap: MergeCandidate[] = [];

  get length(): number {
    return this.heap.length;
  }

  push(c: MergeCandidate): void {
    const h = this.heap;
    let i = h.length;
    h.push(c);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(c, h[parent])) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = c;
  }

  pop(): MergeCandidate | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length === 0) return top;
    // sift `last` down from the root
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && before(h[r], h[l]) ? r : l;
      if (!before(h[child], last)) break;
      h[i] = h[child];
      i = child;
    }
    h[i] = last;
    return top;
  }
}

function before(a: MergeCandidate, b: MergeCandidate): boolean {
  return a.key < b.key || (a.key === b.key && a.left < b.left);
}
