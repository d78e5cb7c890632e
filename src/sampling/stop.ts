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
import { describeValue, ParamError } from "../errors.ts";

/**
 * The stop strings as a trie over UTF-16 units, flat: node n's child for unit
 * c is `next.get(n * 65536 + c)`, and `word[n]` is the stop string ending at
 * n, if any (node 0 is the root). Matching walks it from each start position
 * that could begin a match, so the cost of a push depends on the new text and
 * the longest stop string, never on how many there are.
 */
interface CompiledStops {
  next: Map<number, number>;
  word: Array<string | null>;
  longest: number;
}

/** Compiled once per stop list: the engine builds a matcher per choice from the same array. */
const compiled = new WeakMap<readonly string[], CompiledStops>();

function compile(stops: readonly string[]): CompiledStops {
  // OpenAI's API takes one stop string as a string; here a string would have been a WeakMap key (a TypeError)
  if (!Array.isArray(stops)) {
    const hint = typeof stops === "string" ? ` (one stop string is written [${JSON.stringify(stops)}])` : "";
    throw new ParamError("stop", `must be an array of strings, got ${describeValue(stops)}${hint}`);
  }
  const cached = compiled.get(stops);
  if (cached) return cached;
  const next = new Map<number, number>();
  const word: Array<string | null> = [null];
  let longest = 0;
  for (const s of stops) {
    if (typeof s !== "string" || s.length === 0) throw new ParamError("stop", "stop strings must be non-empty strings");
    let node = 0;
    for (let i = 0; i < s.length; i++) {
      const key = node * 65536 + s.charCodeAt(i);
      let child = next.get(key);
      if (child === undefined) {
        child = word.length;
        word.push(null);
        next.set(key, child);
      }
      node = child;
    }
    word[node] = s;
    longest = Math.max(longest, s.length);
  }
  const out = { next, word, longest };
  compiled.set(stops, out);
  return out;
}

export class StopMatcher {
  private readonly trie: CompiledStops;
  private readonly longest: number;
  private held = "";
  private done = false;
  private which: string | null = null;

  constructor(stops: readonly string[]) {
    this.trie = compile(stops);
    this.longest = this.trie.longest;
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
      const { next, word } = this.trie;
      let node: number | undefined = 0;
      let j = i;
      for (; j < buffer.length && j - i < this.longest; j++) {
        node = next.get(node * 65536 + buffer.charCodeAt(j));
        if (node === undefined) break;
        if (word[node] !== null) {
          // the earliest end wins; at equal ends the earlier start (found first) does
          if (j + 1 < end) {
            start = i;
            end = j + 1;
            this.which = word[node];
          }
          break;
        }
      }
      // walked off the end of the buffer still inside the trie: this suffix may grow into a stop string
      if (start < 0 && hold === 0 && node !== undefined && j === buffer.length) hold = buffer.length - i;
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
