/**
 * The merge loop that BPE and SentencePiece share: a text cut into symbols, and a work queue (a binary heap)
 * of candidate merges of two adjacent symbols, smallest `key` first, ties to the leftmost pair (llama.cpp's
 * llm_bigram_spm / llm_bigram_bpe comparators). The tokenizers differ only in the key: a merge rank (BPE) or
 * the negated score of the merged piece (SentencePiece).
 */

/**
 * Merges the symbols of `s` (one per code point: a surrogate pair is one symbol) two adjacent ones at a time, the
 * pair of smallest key first, until no pair has one; returns the pieces left, in order. keyOf(at, leftLen, rightLen)
 * ranks merging the symbol s[at, at + leftLen) with the one after it, s[at + leftLen, at + leftLen + rightLen):
 * a number, or undefined where the two never merge.
 */
export function mergeSymbols(s: string, keyOf: (at: number, leftLen: number, rightLen: number) => number | undefined): string[] {
  const n = s.length;
  if (n === 0) return [];
  // The symbols tile s in order, [start, start + len) in UTF-16 units, in a doubly linked list; a merged symbol
  // keeps its left index, and its right one drops out with len 0.
  const start = new Int32Array(n), len = new Int32Array(n), prev = new Int32Array(n), next = new Int32Array(n);
  let count = 0;
  for (let i = 0; i < n; count++) {
    const c = s.charCodeAt(i);
    const w = c >= 0xd800 && c < 0xdc00 && i + 1 < n && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
    start[count] = i;
    len[count] = w;
    prev[count] = count - 1;
    next[count] = count + 1;
    i += w;
  }
  next[count - 1] = -1;

  const queue = new MergeQueue();
  const tryPair = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const key = keyOf(start[left], len[left], len[right]);
    if (key === undefined) return;
    queue.push({ key, left, right, size: len[left] + len[right] });
  };
  for (let i = 1; i < count; i++) tryPair(i - 1, i);

  for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
    const { left, right } = c;
    // stale: one side already merged elsewhere
    if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== c.size) continue;
    len[left] += len[right];
    len[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    tryPair(prev[left], left);
    tryPair(left, next[left]);
  }

  const pieces: string[] = [];
  for (let i = 0; i !== -1; i = next[i]) pieces.push(s.substr(start[i], len[i]));
  return pieces;
}

/** A candidate merge; it goes stale when a neighbour merges first, which `size` shows on pop. */
interface MergeCandidate {
  /** Priority: -score for SentencePiece, merge rank for BPE. */
  key: number;
  /** Index of the left symbol (the merged symbol keeps this index). */
  left: number;
  right: number;
  /** Length of the merged text, to detect stale candidates. */
  size: number;
}

class MergeQueue {
  private readonly heap: MergeCandidate[] = [];

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
