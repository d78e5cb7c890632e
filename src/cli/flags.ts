/**
 * The one flag parser of every kvasm command: node:util's parseArgs (Node, Deno and Bun all ship it) in strict
 * mode over a table of flags per command, so an unknown flag, a flag missing its value or a stray argument is a
 * ParamError naming it (and, for a misspelling, the closest flag the command knows), and every numeric flag is
 * checked against its range before anything is loaded.
 */
import { parseArgs } from "node:util";
import { nearestName, ParamError } from "../errors.ts";

/** One flag: how it parses, what range a number must be in, and its line on the help screen. */
export interface FlagSpec {
  /** Without the dashes: "max-tokens". */
  name: string;
  /** "int" and "number" are strings on the command line, checked and converted when parsed. */
  kind: "string" | "boolean" | "int" | "number";
  /** Repeatable (--prompt A --prompt B). */
  multiple?: boolean;
  short?: string;
  /** Smallest accepted value (numeric kinds). */
  min?: number;
  /** Largest accepted value (numeric kinds). */
  max?: number;
  /** The value must be strictly above `min` (a temperature may be 0, a repeat penalty may not). */
  minExclusive?: boolean;
  /** The value's name on the help screen: PATH, N, TEXT. */
  value?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The command's usage lines, after "usage: ". */
  usage: string;
  flags: FlagSpec[];
  /** Text after the flag list (notes, examples). */
  notes?: string;
}

/** Flags every command takes. */
const COMMON: FlagSpec[] = [{ name: "help", kind: "boolean", short: "h", help: "show this command's help and exit" }];

/** The parsed flags of one command, values already validated. */
export class Flags {
  constructor(private readonly values: Record<string, unknown>, private readonly specs: Map<string, FlagSpec>) {}

  /** Whether the command declares this flag. */
  accepts(name: string): boolean {
    return this.specs.has(name);
  }

  /** Whether the flag was given at all. */
  has(name: string): boolean {
    this.spec(name);
    return this.values[name] !== undefined;
  }

  /** A string flag's value (the last one, when repeated). */
  string(name: string): string | undefined {
    return this.last(name) as string | undefined;
  }

  /** Every value of a repeatable flag, in order ([] when absent). */
  strings(name: string): string[] {
    const v = this.values[this.spec(name).name];
    return v === undefined ? [] : Array.isArray(v) ? v as string[] : [v as string];
  }

  /** A numeric flag's value (checked against its range when parsed). */
  number(name: string): number | undefined {
    const s = this.spec(name);
    if (s.kind !== "int" && s.kind !== "number") throw new Error(`--${name} is not numeric`);
    const v = this.last(name);
    return v === undefined ? undefined : Number(v);
  }

  boolean(name: string): boolean {
    return this.last(name) === true;
  }

  /** A flag the command cannot do without. */
  required(name: string): string {
    const v = this.string(name);
    if (v === undefined) throw new ParamError(`--${name}`, "is required");
    return v;
  }

  private last(name: string): unknown {
    const v = this.values[this.spec(name).name];
    return Array.isArray(v) ? v[v.length - 1] : v;
  }

  // asking for a flag the table lacks is a bug in kvasm, not in the user's input
  private spec(name: string): FlagSpec {
    const s = this.specs.get(name);
    if (!s) throw new Error(`flag --${name} is not declared for this command`);
    return s;
  }
}

/** Parses `args` for `cmd`: a ParamError naming the flag for anything the command does not accept. */
export function parseFlags(cmd: CommandSpec, args: string[]): Flags {
  const specs = new Map([...COMMON, ...cmd.flags].map((s) => [s.name, s]));
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const s of specs.values()) {
    options[s.name] = {
      type: s.kind === "boolean" ? "boolean" : "string",
      ...(s.multiple ? { multiple: true } : {}),
      ...(s.short ? { short: s.short } : {}),
    };
  }
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: joinNegativeNumbers(args, specs), options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw parseArgsError(e as Error & { code?: string }, specs);
  }
  for (const s of specs.values()) {
    if (s.kind !== "int" && s.kind !== "number") continue;
    const v = values[s.name];
    for (const one of v === undefined ? [] : Array.isArray(v) ? v : [v]) checkNumber(s, one as string);
  }
  return new Flags(values, specs);
}

/**
 * parseArgs reads `--seed -1` as a flag missing its value followed by a flag "-1"; for numeric flags a value
 * that is a negative number is meant as the value, so it is joined (`--seed=-1`) and then range-checked.
 */
function joinNegativeNumbers(args: string[], specs: Map<string, FlagSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i], next = args[i + 1];
    const s = a.startsWith("--") && !a.includes("=") ? specs.get(a.slice(2)) : undefined;
    if (s && (s.kind === "int" || s.kind === "number") && next !== undefined && /^-(\d|\.\d|Infinity|NaN)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/**
 * What a numeric flag's value may look like: decimal digits, with a sign, and for "number" a decimal point. Number()
 * alone took "0x10" for 16, "1e3" for 1000, " 5 " for 5 and "0b11" for 3: forms no one means on a command line.
 */
const DECIMAL = { int: /^[+-]?\d+$/, number: /^[+-]?(\d+\.?\d*|\.\d+)$/ };

function checkNumber(s: FlagSpec, raw: string): void {
  const n = Number(raw);
  const flag = `--${s.name}`;
  const what = s.kind === "int" ? "an integer" : "a number";
  if (!DECIMAL[s.kind === "int" ? "int" : "number"].test(raw)) {
    // "0x10", "1e3": a value in the wrong notation says so; "1.5" for an integer is the wrong value
    const hint = raw.trim() !== "" && (s.kind === "int" ? Number.isInteger(n) : Number.isFinite(n)) ? " in decimal digits" : "";
    throw new ParamError(flag, `must be ${what}${rangeText(s)}${hint}, got ${JSON.stringify(raw)}`);
  }
  if (s.kind === "int" ? !Number.isSafeInteger(n) : !Number.isFinite(n)) {
    throw new ParamError(flag, `must be ${what}${rangeText(s)}, got ${JSON.stringify(raw)}`);
  }
  const low = s.min !== undefined && (s.minExclusive ? n <= s.min : n < s.min);
  if (low || (s.max !== undefined && n > s.max)) {
    throw new ParamError(flag, `must be ${s.kind === "int" ? "an integer" : "a number"}${rangeText(s)}, got ${raw}`);
  }
}

function rangeText(s: FlagSpec): string {
  const lo = s.min === undefined ? "" : `${s.minExclusive ? ">" : ">="} ${s.min}`;
  if (s.max === undefined) return lo ? ` ${lo}` : "";
  return lo ? ` ${lo} and <= ${s.max}` : ` <= ${s.max}`;
}

/** parseArgs's errors (codes ERR_PARSE_ARGS_*) as ParamErrors naming the flag, with a suggestion for a misspelling. */
function parseArgsError(e: Error & { code?: string }, specs: Map<string, FlagSpec>): Error {
  const quoted = /'([^']+)'/.exec(e.message)?.[1] ?? "";
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION": {
      const name = quoted.replace(/^-+/, "").split("=")[0];
      const near = closest(name, [...specs.keys()]);
      return new ParamError(quoted, `unknown flag${near ? `; did you mean --${near}?` : ""} (--help lists this command's flags)`);
    }
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      const flag = quoted.split(" ")[0];
      const s = specs.get(flag.replace(/^-+/, ""));
      if (s?.kind === "boolean") return new ParamError(flag, "takes no value");
      return new ParamError(flag, `needs a value; to pass one that starts with a dash write ${flag}=VALUE`);
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return new ParamError(quoted || "arguments", "unexpected argument: every value follows its flag (--prompt TEXT)");
  }
  return e;
}

/** The known name nearest to `name`, when near enough to be a likely typo (errors.ts nearestName; longer names allow more edits). */
export function closest(name: string, known: string[]): string | undefined {
  return nearestName(name, known, Math.max(2, Math.floor(name.length / 3)));
}

/** A command's help screen: its usage, then one aligned line per flag. */
export function commandHelp(cmd: CommandSpec): string {
  const rows = [...cmd.flags, ...COMMON].map((s) => {
    const left = `${s.short ? `-${s.short}, ` : ""}--${s.name}${
      s.kind === "boolean" ? "" : ` ${s.value ?? (s.kind === "string" ? "TEXT" : "N")}`
    }`;
    return [left, s.help + (s.multiple ? " (repeatable)" : "")];
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  const lines = rows.map(([l, h]) => `  ${l.padEnd(width)}${h}`);
  return `usage: ${cmd.usage}\n\n${cmd.summary}\n\noptions:\n${lines.join("\n")}\n${cmd.notes ? `\n${cmd.notes}\n` : ""}`;
}
