// Runs the whole suite: the static checks (deno lint, deno fmt --check, deno check of the entry points,
// benchmarks and tests), then the tests under Deno and then under Bun (same files, tests/harness.ts adapts).
// Each step's output streams as it runs; the run ends with one line of combined counts, every static check
// counting as one test.
// Usage: node scripts/test.mjs [deno|bun] [-- filter files...]   (with files: only those, no static checks)
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const bin = (name) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const runtimes = args.filter((a) => a === "deno" || a === "bun");
const files = args.filter((a) => a !== "deno" && a !== "bun" && a !== "--");
const which = runtimes.length ? runtimes : ["deno", "bun"];

if (!existsSync(new URL("../build/kvasm-simd.wasm", import.meta.url))) {
  console.error("kernels are not built: run `npm install` (or `npm run build:kernels`)");
  process.exit(1);
}

let passed = 0, failed = 0, skipped = 0;

/**
 * Runs a command with its output passed through as it comes (unless `quiet`, which keeps all of it instead);
 * resolves with its exit status and the output (its last 64 KiB when passed through).
 */
function run(cmd, cmdArgs, quiet = false) {
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let tail = "";
    const keep = (chunk) => {
      tail = quiet ? tail + chunk.toString("utf8") : (tail + chunk.toString("utf8")).slice(-65536);
    };
    child.stdout.on("data", (c) => {
      if (!quiet) process.stdout.write(c);
      keep(c);
    });
    child.stderr.on("data", (c) => {
      if (!quiet) process.stderr.write(c);
      keep(c);
    });
    child.on("error", (e) => resolve({ status: null, signal: e.message, tail }));
    child.on("close", (status, signal) => resolve({ status, signal, tail }));
  });
}

/** One static check: a pass, or a failure with what to do about it. `summary` shortens a failure's output (else it streams). */
async function check(title, cmd, cmdArgs, onFailure, summary) {
  console.log(`=== ${title}`);
  const r = await run(cmd, cmdArgs, Boolean(summary));
  if (r.status === 0) passed++;
  else {
    failed++;
    if (summary) console.error(summary(strip(r.tail)));
    console.error(`${title} failed: ${onFailure}`);
  }
}

// ANSI colour codes, which Deno writes even into a pipe
const strip = (s) => s.replace(new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g"), "");

/** deno fmt --check prints every diff; the files are what matters. */
const unformattedFiles = (out) => {
  const files = [...out.matchAll(/^from (.+):$/gm)].map((m) => "  " + m[1].replace(root, ""));
  return files.length ? `not formatted (${files.length} files):\n${files.join("\n")}` : out;
};

if (!files.length) {
  const benches = readdirSync(new URL("../bench", import.meta.url)).filter((f) => f.endsWith(".ts")).map((f) => `bench/${f}`);
  await check(
    "deno lint",
    bin("deno"),
    ["lint"],
    "fix the problems above (or, where a rule is wrong for one line, `// deno-lint-ignore RULE` with a reason)",
  );
  await check(
    "deno fmt --check",
    bin("deno"),
    ["fmt", "--check"],
    "run `deno fmt` (node_modules/.bin/deno fmt) to format them",
    unformattedFiles,
  );
  // the test runs themselves skip type-checking for speed, so everything they load is checked here once
  const entries = ["src/mod.ts", "src/cli.ts", "src/edge.ts", ...benches, "tests/"];
  await check(`deno check ${entries.join(" ")}`, bin("deno"), ["check", ...entries], "fix the type errors above");
}

for (const rt of which) {
  const [cmd, cmdArgs] = rt === "deno"
    ? [bin("deno"), ["test", "-A", "--no-check", ...(files.length ? files : ["tests/"])]]
    : [bin("bun"), [
      "test",
      "--timeout",
      "600000",
      ...(files.length ? files.map((f) => (f.startsWith(".") ? f : "./" + f)) : ["./tests/"]),
    ]];
  console.log(`\n=== ${rt}: ${cmd.split("/").pop()} ${cmdArgs.join(" ")}`);
  const r = await run(cmd, cmdArgs);
  const out = strip(r.tail);
  if (rt === "deno") {
    // the summary is the last such line (a test's own output could hold one too)
    const m = [...out.matchAll(/(\d+) passed.*?\|\s*(\d+) failed(?:.*?(\d+) ignored)?/g)].pop();
    if (m) {
      passed += +m[1];
      failed += +m[2];
      skipped += +(m[3] ?? 0);
    }
  } else {
    const p = out.match(/^\s*(\d+) pass\s*$/m), f = out.match(/^\s*(\d+) fail\s*$/m), s = out.match(/^\s*(\d+) skip\s*$/m);
    if (p) passed += +p[1];
    if (f) failed += +f[1];
    if (s) skipped += +s[1];
  }
  if (r.status !== 0) {
    console.error(`${rt} test run exited with ${r.status ?? r.signal}`);
    if (failed === 0) failed = 1;
  }
}
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
