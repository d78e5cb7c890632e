/**
 * bench/cli.ts's flag parsers, as the benches call them before they load anything: a value each accepts comes back
 * as the number, list or shapes it spells; a misspelt one (what Number() and casts let through as NaN, 0 or another
 * setting) ends the process with status 2 and a first line naming the flag (or the positional argument, in
 * capitals) and what it takes, then the usage. Each case runs in a child process (tests/bench-cli-child.ts), as
 * the parsers exit.
 */
import { spawnSync } from "node:child_process";
import { assert, assertEquals, test } from "./harness.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const CHILD = new URL("./bench-cli-child.ts", import.meta.url).pathname;

function run(parser: string, name: string, value: string): { status: number | null; stdout: string; stderr: string } {
  const [cmd, argv] = g.Deno ? [g.Deno.execPath(), ["run", "-A", CHILD]] : [g.process.execPath, [CHILD]];
  const r = spawnSync(cmd, [...argv, parser, name, value], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("bench/cli.ts parsers: accepted values", () => {
  const cases: [string, string, string, unknown][] = [
    ["int", "steps", "48", 48],
    ["int0", "warmup", "0", 0],
    ["intList", "T", "1,16,128", [1, 16, 128]],
    ["float", "bandwidth-gbs", "3350", 3350],
    ["float", "seconds", "0.5", 0.5],
    ["list", "types", "Q4_0,F32", ["Q4_0", "F32"]],
    ["choice", "kv", "f16", "f16"],
    ["shapes", "shapes", "2048x768,768x2048", [[2048, 768], [768, 2048]]],
  ];
  for (const [parser, name, value, want] of cases) {
    const r = run(parser, name, value);
    assertEquals(r.status, 0, `${parser} ${value}: ${r.stderr}`);
    assertEquals(JSON.parse(r.stdout), want, `${parser} ${value}`);
  }
});

test("bench/cli.ts parsers: a bad value is one line naming the flag, then the usage, status 2", () => {
  const cases: [string, string, string, string][] = [
    ["int", "rounds", "x", '--rounds: must be an integer >= 1, got "x"'],
    ["int", "rounds", "1e3", '--rounds: must be an integer >= 1, got "1e3"'],
    ["int", "rounds", "", '--rounds: must be an integer >= 1, got ""'],
    ["int", "rounds", "0", '--rounds: must be an integer >= 1, got "0"'],
    ["int0", "warmup", "129", '--warmup: must be an integer in [0, 128], got "129"'],
    ["int", "TOKENS", "4x", 'TOKENS: must be an integer >= 1, got "4x"'],
    ["int", "T", "-", '--T: must be an integer >= 1, got "-"'],
    ["intList", "T", "1,256", '--T: must be an integer in [1, 128], got "256"'],
    ["intList", "T", "16,16", "--T: 16 is listed twice"],
    ["intList", "T", "1,,2", '--T: must be an integer in [1, 128], got ""'],
    ["float", "bandwidth-gbs", "fast", '--bandwidth-gbs: must be a positive number, got "fast"'],
    ["float", "seconds", "0", '--seconds: must be a positive number, got "0"'],
    ["float", "seconds", "1e3", '--seconds: must be a positive number, got "1e3"'],
    ["list", "types", "Q4_0,Q4_1", '--types: "Q4_1" is not one of F32, Q8_0, Q4_0'],
    ["list", "types", "F32,F32", "--types: F32 is listed twice"],
    ["choice", "kv", "f32,f16", '--kv: "f32,f16" is not one of f32, f16'],
    ["shapes", "shapes", "2048*768", '--shapes: "2048*768" is not OUTxIN (two integers >= 1, e.g. 2048x768)'],
    ["shapes", "shapes", "2048x", '--shapes: "2048x" is not OUTxIN (two integers >= 1, e.g. 2048x768)'],
    ["shapes", "shapes", "0x768", '--shapes: "0x768" is not OUTxIN (two integers >= 1, e.g. 2048x768)'],
    ["shapes", "shapes", "768x768,768x768", "--shapes: 768x768 is listed twice"],
  ];
  for (const [parser, name, value, message] of cases) {
    const r = run(parser, name, value);
    assertEquals(r.status, 2, `${parser} ${JSON.stringify(value)}: status (stdout ${r.stdout})`);
    assertEquals(r.stdout, "", `${parser} ${JSON.stringify(value)}: nothing parsed`);
    const lines = r.stderr.split("\n");
    assertEquals(lines[0], message, `${parser} ${JSON.stringify(value)}`);
    assert(lines.includes("USAGE TEXT"), `${parser} ${JSON.stringify(value)}: no usage after the message: ${r.stderr}`);
  }
});
