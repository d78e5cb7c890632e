/**
 * The child of tests/bench-cli.test.ts: one of bench/cli.ts's flag parsers on one value, as a bench calls it, its
 * result printed as JSON; a value the parser refuses ends the process there (its message, the usage, status 2).
 *
 *   deno run tests/bench-cli-child.ts PARSER NAME VALUE        bun tests/bench-cli-child.ts ...
 */
import { choiceFlag, floatFlag, intFlag, intListFlag, listFlag, shapeListFlag } from "../bench/cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const [parser, name, value] = (g.Deno?.args ?? g.process.argv.slice(2)) as string[];
const USAGE = "USAGE TEXT";
const parsers: Record<string, () => unknown> = {
  int: () => intFlag(USAGE, name, value),
  int0: () => intFlag(USAGE, name, value, 0, 128),
  intList: () => intListFlag(USAGE, name, value, 1, 128),
  float: () => floatFlag(USAGE, name, value),
  list: () => listFlag(USAGE, name, value, ["F32", "Q8_0", "Q4_0"]),
  choice: () => choiceFlag(USAGE, name, value, ["f32", "f16"]),
  shapes: () => shapeListFlag(USAGE, name, value),
};
console.log(JSON.stringify(parsers[parser]()));
