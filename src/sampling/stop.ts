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

export class StopMatcher {
  private readonly stops: readonly string[];
  private readonly longest: number;
  private held = "";
  private done = false;
  private which: string | null = null;

  constructor(stops: string[]) {
    for (const s of stops) {
      if (typeof s !== "string" || s.length === 0) throw new ParamError("stop", "stop strings must be non-empty strings");
    }
    this.stops = [...stops];
    this.longest = stops.reduce((m, s) => Math.max(m, s.length), 0);
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
    // `held` never contains a whole stop string, so any match ends inside `text`.
    const buffer = this.held + text;

    let start = -1, end = Infinity;
    for (const s of this.stops) {
      const at = buffer.indexOf(s); // the first occurrence is also the first to end
      if (at < 0) continue;
      const e = at + s.length;
      if (e < end || (e === end && at < start)) {
        start = at;
        end = e;
        this.which = s;
      }
    }
    if (start >= 0) {
      this.done = true;
      this.held = "";
      return { emit: buffer.slice(0, start), stopped: true };
    }

    const hold = this.partialSuffix(buffer);
    this.held = buffer.slice(buffer.length - hold);
    return { emit: buffer.slice(0, buffer.length - hold), stopped: false };
  }

  /** At the end of generation: release held-back text (empty after a stop). */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  /** Length of the longest suffix of `buffer` that is a proper prefix of some stop string. */
  private partialSuffix(buffer: string): number {
    for (let len = Math.min(this.longest - 1, buffer.length); len > 0; len--) {
      const suffix = buffer.slice(buffer.length - len);
      for (const s of this.stops) if (s.length > len && s.startsWith(suffix)) return len;
    }
    return 0;
  }
}
