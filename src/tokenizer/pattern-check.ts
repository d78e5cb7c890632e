/**
 * A structural check of pre-tokenizer regexes that come from tokenizer files, run before they become JS RegExps.
 * JS engines backtrack, so a hostile pattern such as `(\p{L}|\p{L})+$` takes exponential time in the text it
 * meets (a tokenizer.json with it made encoding 27 characters take seconds, and `kvasm serve` hang). Known
 * Hugging Face / llama.cpp patterns skip this check (pretokenize.ts); any other pattern must pass it.
 *
 * The check is conservative: it refuses some harmless patterns rather than let a slow one through. It refuses
 * - a group repeated more than once (`*`, `+`, `{2,}`, `{m,n}` with n > 1) that holds an alternation or a
 *   quantifier with a choice of counts: the classic exponential shapes `(a|a)+`, `(a+)+`, `(a*b?)*`;
 * - backreferences (`\1`, `\k<name>`): matching them is NP-hard in general;
 * - lookarounds that hold an unbounded quantifier (each position would rescan the rest of the text);
 * - two items of one sequence that can each match a varying number of characters and can match the same
 *   character (`\p{L}*\p{L}*!`, `a?a?a?aaa`): the characters can be traded between them in polynomially many
 *   ways per start position, with the degree growing with each such item. The later of the two may end a
 *   top-level alternative if it is a single-character item: there it matches greedily and the match ends, so
 *   nothing is retried (`\s*[\r\n]+` at the end of DeepSeek V3's pattern); a group there can still fail after
 *   trading characters (`\p{L}*(?:\p{L}+x)`).
 *
 * What remains for a pattern that passes: an attempt at one start position can still read to the end of the
 * text before failing (`\p{L}+!` over a run of letters), and the search tries every start, so the worst case is
 * quadratic in the length of the span the pattern runs on. splitByPatterns runs each pattern on the text between
 * special tokens, as long as the caller's text (the server takes bodies up to maxBodyBytes, 1 MiB by default), so a
 * pattern of that shape over a long run can still take seconds or more. The known patterns are trusted: where one
 * alternative fails over a run (`\s*[\r\n]+` over spaces), a later one (`\s+(?!\S)`) takes the run whole, so the
 * failure does not recur at each of its positions.
 */

/** One item of a sequence: a single-character atom, a group, a lookaround or an anchor, with its repeat counts. */
interface Item {
  kind: "char" | "group" | "look" | "anchor";
  /** Repeat counts (1, 1 unquantified; max Infinity: unbounded). */
  min: number;
  max: number;
  /**
   * A char item's source (`\p{L}`, `[\r\n]`, `a`) for the overlap test; undefined where any character may match
   * (`.`, a case-insensitive group's letters).
   */
  charSource?: string;
  /** Groups and lookarounds: the alternatives inside. */
  branches?: Item[][];
}

/** Overlap tests (each a scan of every code point, a few ms) a pattern may need before it counts as too complex. */
const MAX_OVERLAP_TESTS = 64;
/** Group nesting the parser follows (it recurses); real patterns nest two deep. */
const MAX_DEPTH = 32;

/** Why `source` could backtrack catastrophically (a phrase for an error message), or undefined where it passes. */
export function patternHazard(source: string): string | undefined {
  let parsed: Item[][];
  try {
    parsed = new PatternParser(source).parse();
  } catch (e) {
    if (e instanceof Hazard) return e.message;
    throw e;
  }
  return exponentialHazard(parsed) ?? ambiguityHazard(parsed, true, { tests: 0 });
}

/** A refusal found while parsing (a backreference, nesting too deep). */
class Hazard extends Error {}

/**
 * The exponential shapes: a repeated group holding a choice, a lookaround holding an unbounded quantifier.
 * Backreferences are refused by the parser.
 */
function exponentialHazard(branches: Item[][]): string | undefined {
  for (const item of branches.flat()) {
    if (!item.branches) continue;
    if (item.kind === "group" && item.max > 1 && hasChoice(item.branches)) {
      return "repeats a group that holds an alternation or a quantifier (nested quantifiers): catastrophic backtracking";
    }
    if (item.kind === "look" && hasUnbounded(item.branches)) {
      return "has a lookaround holding an unbounded quantifier: catastrophic backtracking";
    }
    const inner = exponentialHazard(item.branches);
    if (inner) return inner;
  }
  return undefined;
}

/**
 * Two varying items of one sequence that can match the same character, unless the later one ends a top-level
 * alternative (see the file comment). `topLevel`: `branches` are the pattern's own alternatives.
 */
function ambiguityHazard(branches: Item[][], topLevel: boolean, budget: { tests: number }): string | undefined {
  for (const seq of branches) {
    const varying = seq.map((item, at) => ({ item, at })).filter(({ item }) => varies(item));
    for (let i = 0; i < varying.length; i++) {
      for (let j = i + 1; j < varying.length; j++) {
        // a single-character item at the end of a top-level alternative cannot fail past its minimum; a group there can
        // (`\p{L}*(?:\p{L}+x)`), so it gets no such pass
        if (topLevel && varying[j].at === seq.length - 1 && varying[j].item.kind === "char") continue;
        if (++budget.tests > MAX_OVERLAP_TESTS) return `has too many quantified items to check (over ${MAX_OVERLAP_TESTS} pairs)`;
        if (mayOverlap(varying[i].item, varying[j].item)) {
          return "has two quantified items in one sequence that can match the same characters: polynomial backtracking";
        }
      }
    }
    for (const item of seq) {
      const inner = item.branches && ambiguityHazard(item.branches, false, budget);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** The item can match more than one number of characters. */
function varies(item: Item): boolean {
  if (item.kind === "look" || item.kind === "anchor") return false;
  if (item.min !== item.max) return true;
  return item.kind === "group" && (item.branches!.length > 1 || hasChoice(item.branches!));
}

/** Some item inside can match a varying number of characters (an alternation or a quantifier with a choice). */
function hasChoice(branches: Item[][]): boolean {
  return branches.length > 1 || branches.some((seq) => seq.some((item) => item.kind !== "look" && varies(item)));
}

function hasUnbounded(branches: Item[][]): boolean {
  return branches.some((seq) => seq.some((item) => item.max === Infinity || (item.branches !== undefined && hasUnbounded(item.branches))));
}

/** Whether two items can match a common character: exact for single-character atoms, true for anything else. */
function mayOverlap(a: Item, b: Item): boolean {
  if (a.charSource === undefined || b.charSource === undefined) return true;
  if (a.charSource === b.charSource) return true;
  try {
    return new RegExp(`(?=${a.charSource})${b.charSource}`, "u").test(everyCodePoint());
  } catch {
    return true; // not valid JS: compiling the pattern refuses it anyway
  }
}

let allCodePoints: string | undefined;

/**
 * Every code point once, lone surrogates included and placed so that none pairs with a neighbour (lows after a
 * supplementary character's own low, then highs): one regex scan of it decides whether a class matches anything.
 * About 2.2M UTF-16 units, built on first use.
 */
function everyCodePoint(): string {
  if (allCodePoints !== undefined) return allCodePoints;
  const ranges: Array<[number, number]> = [[0, 0xd7ff], [0xe000, 0x10ffff], [0xdc00, 0xdfff], [0xd800, 0xdbff]];
  const parts: string[] = [];
  for (const [lo, hi] of ranges) {
    for (let start = lo; start <= hi; start += 4096) {
      const chunk: number[] = [];
      for (let cp = start; cp <= Math.min(hi, start + 4095); cp++) chunk.push(cp);
      parts.push(String.fromCodePoint(...chunk));
    }
  }
  return allCodePoints = parts.join("");
}

/**
 * A small recursive-descent reader of JS regex syntax (the `u` flag's): escapes, classes `[...]` (with escapes
 * inside), groups `(...)`, `(?:...)`, `(?i:...)`, lookarounds `(?=`, `(?!`, `(?<=`, `(?<!`, named groups
 * `(?<name>...)`, and quantifiers `?`, `*`, `+`, `{m}`, `{m,}`, `{m,n}` with their lazy (`?`) and possessive (`+`)
 * forms. Syntax it does not follow is left to the RegExp constructor, which runs after this check.
 */
class PatternParser {
  private at = 0;
  constructor(private readonly src: string) {}

  parse(): Item[][] {
    const branches = this.alternatives(0, false);
    if (this.at < this.src.length) throw new Hazard(`has an unmatched ")" at ${this.at}`);
    return branches;
  }

  /** Alternatives up to a ")" or the end. `caseless`: inside (?i:...), where a letter matches both cases. */
  private alternatives(depth: number, caseless: boolean): Item[][] {
    if (depth > MAX_DEPTH) throw new Hazard(`nests groups over ${MAX_DEPTH} deep`);
    const branches: Item[][] = [[]];
    while (this.at < this.src.length && this.src[this.at] !== ")") {
      if (this.src[this.at] === "|") {
        this.at++;
        branches.push([]);
        continue;
      }
      const item = this.atom(depth, caseless);
      this.quantifier(item);
      branches[branches.length - 1].push(item);
    }
    return branches;
  }

  private atom(depth: number, caseless: boolean): Item {
    const start = this.at, c = this.src[this.at];
    const char = (source: string | undefined): Item => ({ kind: "char", min: 1, max: 1, charSource: caseless ? undefined : source });
    if (c === "(") return this.group(depth, caseless);
    if (c === "^" || c === "$") {
      this.at++;
      return { kind: "anchor", min: 1, max: 1 };
    }
    if (c === ".") {
      this.at++;
      return char(undefined);
    }
    if (c === "[") {
      this.at++;
      while (this.at < this.src.length && this.src[this.at] !== "]") this.at += this.src[this.at] === "\\" ? 2 : 1;
      this.at++;
      return char(this.src.slice(start, this.at));
    }
    if (c === "\\") return this.escape(caseless);
    this.at += String.fromCodePoint(this.src.codePointAt(this.at)!).length; // a surrogate pair is one character
    return char(this.src.slice(start, this.at));
  }

  /** An escape outside a class: a backreference (refused), an anchor, or one character. */
  private escape(caseless: boolean): Item {
    const start = this.at, c = this.src[this.at + 1] ?? "";
    if (/[1-9]/.test(c) || (c === "k" && this.src[this.at + 2] === "<")) throw new Hazard("uses a backreference");
    this.at += 2;
    if (c === "b" || c === "B") return { kind: "anchor", min: 1, max: 1 };
    if ((c === "p" || c === "P" || c === "u") && this.src[this.at] === "{") this.skipPast("}");
    else if (c === "u") this.at += 4;
    else if (c === "x") this.at += 2;
    else if (c === "c") this.at += 1;
    return { kind: "char", min: 1, max: 1, charSource: caseless ? undefined : this.src.slice(start, this.at) };
  }

  private group(depth: number, caseless: boolean): Item {
    const rest = this.src.slice(this.at, this.at + 4);
    let kind: Item["kind"] = "group";
    if (rest.startsWith("(?=") || rest.startsWith("(?!")) [kind, this.at] = ["look", this.at + 3];
    else if (rest.startsWith("(?<=") || rest.startsWith("(?<!")) [kind, this.at] = ["look", this.at + 4];
    else if (rest.startsWith("(?<")) this.skipPast(">"); // a named group
    else if (rest.startsWith("(?")) {
      // modifiers (?i:...), (?-i:...), or plain (?:...): an "i" anywhere before the colon may fold case
      const colon = this.src.indexOf(":", this.at);
      if (colon < 0) throw new Hazard("has an unfinished group");
      caseless ||= this.src.slice(this.at, colon).includes("i");
      this.at = colon + 1;
    } else this.at++;
    const branches = this.alternatives(depth + 1, caseless);
    this.at++; // the ")"
    return { kind, min: 1, max: 1, branches };
  }

  /** Reads a quantifier after `item`, if one follows, into its min and max. */
  private quantifier(item: Item): void {
    const c = this.src[this.at];
    let counts: [number, number] | undefined;
    if (c === "?") counts = [0, 1];
    else if (c === "*") counts = [0, Infinity];
    else if (c === "+") counts = [1, Infinity];
    if (counts) this.at++;
    else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.at, this.at + 24));
      if (!m) return; // not a quantifier: RegExp refuses a lone "{" under the u flag
      counts = [Number(m[1]), m[2] === undefined ? Number(m[1]) : m[3] === "" ? Infinity : Number(m[3])];
      this.at += m[0].length;
    } else return;
    [item.min, item.max] = [item.min * counts[0], item.max * counts[1]];
    if (this.src[this.at] === "?" || this.src[this.at] === "+") this.at++; // lazy, possessive
  }

  private skipPast(end: string): void {
    const at = this.src.indexOf(end, this.at);
    this.at = at < 0 ? this.src.length : at + 1;
  }
}
