/**
 * Stop strings over streamed, decoded text. A stop string may arrive split
 * across any number of pushes, so the tail of the text that could still grow
 * into a stop string is held back until it either completes one (and is
 * dropped) or can no longer match (and is emitted).
 *
 * Generation halts the moment a stop string is complete, so when several could
 * match, the one that completes first (smallest end) wins, ties -> the one that
 * starts first. This makes the result independent of how the text is chunked.
 */
import { ParamError } from "../errors.ts";

/**
 * The stop strings as a trie over UTF-16 units. Matching walks it from each
 * start position that could begin a match, so the cost of a push depends on
 * the new text and the longest stop string, never on how many there are.
 */
interface TrieNode {
  next: Map<number, TrieNode>;
  /** The stop string that ends here, if any. */
  word: string | null;
}

interface CompiledStops {
  root: TrieNode;
  longest: number;
}

/** Compiled once per stop list: the engine builds a matcher per choice from the same array. */
const compiled = new WeakMap<readonly string[], CompiledStops>();

function compile(stops: readonly string[]): CompiledStops {
  const cached = compiled.get(stops);
  if (cached) return cached;
  const root: TrieNode = { next: new Map(), word: null };
  let longest = 0;
  for (const s of stops) {
    if (typeof s !== "string" || s.length === 0) throw new ParamError("stop", "stop strings must be non-empty strings");
    let node = root;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      let child = node.next.get(c);
      if (!child) node.next.set(c, child = { next: new Map(), word: null });
      node = child;
    }
    node.word = s;
    longest = Math.max(longest, s.length);
  }
  const out = { root, longest };
  compiled.set(stops, out);
  return out;
}

export class StopMatcher {
  private readonly root: TrieNode;
  private readonly longest: number;
  private held = "";
  private done = false;
  private which: string | null = null;

  constructor(stops: readonly string[]) {
    ({ root: this.root, longest: this.longest } = compile(stops));
  }

  get stopped(): boolean {
    return this.done;
  }

  /** The stop string that ended generation (for finish reasons), or null while none has. */
  get matched(): string | null {
    return this.which;
  }

  /**
   * Feed newly decoded text; returns the text that is safe to emit now (holding
   * back any suffix that could be the start of a stop string) and whether a stop
   * string completed (text before it is emitted, the stop string itself is not).
   * After a stop, every push returns { emit: "", stopped: true }.
   */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.done) return { emit: "", stopped: true };
    if (this.longest === 0) return { emit: text, stopped: false };
    // `held` never contains a whole stop string, so any match ends inside `text`
    // and starts at most longest - 1 units before it.
    const buffer = this.held + text;
    const from = Math.max(0, this.held.length - this.longest + 1);

    let start = -1, end = Infinity, hold = 0;
    for (let i = from; i < buffer.length && i < end; i++) {
      let node: TrieNode | undefined = this.root;
      let j = i;
      for (; j < buffer.length && j - i < this.longest; j++) {
        node = node.next.get(buffer.charCodeAt(j));
        if (!node) break;
        if (node.word !== null) {
          // the earliest end wins; at equal ends the earlier start (found first) does
          if (j + 1 < end) {
            start = i;
            end = j + 1;
            this.which = node.word;
          }
          break;
        }
      }
      // walked off the end of the buffer still inside the trie: this suffix may grow into a stop string
      if (start < 0 && hold === 0 && node && j === buffer.length) hold = buffer.length - i;
    }
    if (start >= 0) {
      this.done = true;
      this.held = "";
      return { emit: buffer.slice(0, start), stopped: true };
    }
    this.held = buffer.slice(buffer.length - hold);
    return { emit: buffer.slice(0, buffer.length - hold), stopped: false };
  }

  /** At the end of generation: release held-back text (empty after a stop). */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }
}
