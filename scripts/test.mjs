// Runs the whole suite under Deno and then under Bun (same files, tests/harness.ts
// adapts), then prints one closing line with the combined counts.
// Usage: node scripts/test.mjs [deno|bun] [-- filter files...]
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";

const bin = (name) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
const args = process.argv.slice(2);
const runtimes = args.filter((a) => a === "deno" || a === "bun");
const files = args.filter((a) => a !== "deno" && a !== "bun" && a !== "--");
const which = runtimes.length ? runtimes : ["deno", "bun"];

if (!existsSync(new URL("../build/kvasm-simd.wasm", import.meta.url))) {
  console.error("kernels are not built: run `npm install` (or `npm run build:kernels`)");
  process.exit(1);
}

let passed = 0, failed = 0, skipped = 0;

// type-check the public entry points and the benchmarks first (the test runs themselves skip checking for speed)
if (!files.length) {
  const root = new URL("..", import.meta.url).pathname;
  const benches = readdirSync(new URL("../bench", import.meta.url)).filter((f) => f.endsWith(".ts")).map((f) => `bench/${f}`);
  const entries = ["src/mod.ts", "src/cli.ts", "src/edge.ts", ...benches];
  console.log(`=== deno check ${entries.join(" ")}`);
  const tc = spawnSync(bin("deno"), ["check", ...entries], { stdio: "inherit", cwd: root });
  if (tc.status === 0) passed++;
  else failed++;
}
const strip = (s) => s.replace(/\x1b\[[0-9;]*m/g, "");
for (const rt of which) {
  const cmd = rt === "deno"
    ? [bin("deno"), ["test", "-A", "--no-check", ...(files.length ? files : ["tests/"])]]
    : [bin("bun"), ["test", "--timeout", "600000", ...(files.length ? files.map((f) => (f.startsWith(".") ? f : "./" + f)) : ["./tests/"])]];
  console.log(`\n=== ${rt}: ${cmd[0].split("/").pop()} ${cmd[1].join(" ")}`);
  const r = spawnSync(cmd[0], cmd[1], { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 1 << 28 });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  const out = strip(r.stdout + "\n" + r.stderr);
  if (rt === "deno") {
    const m = out.match(/(\d+) passed.*?\|\s*(\d+) failed(?:.*?(\d+) ignored)?/);
    if (m) { passed += +m[1]; failed += +m[2]; skipped += +(m[3] ?? 0); }
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
