// npm run bench: the kernel micro-benchmarks and the end-to-end benchmark, in Deno and in Bun.
// The synthetic stories110M model is written on first use (bench/models/, git-ignored).
import { spawnSync } from "node:child_process";
const bin = (name) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
const extra = process.argv.slice(2);
if (extra[0] === "--help" || extra[0] === "-h") {
  console.log(`npm run bench [-- E2E_OPTIONS]      kernel micro-benchmarks, then bench/e2e.ts with E2E_OPTIONS, in Deno and in Bun
npm run bench -- --peers [OPTIONS]  bench/peers.ts: kvasm beside llama.cpp and wllama (OPTIONS: --peers --help)
npm run bench -- --profile [...]    bench/peers.ts --profile
E2E_OPTIONS: deno run -A bench/e2e.ts --help`);
  process.exit(0);
}
if (extra[0] === "--peers" || extra[0] === "--profile") {
  // kvasm beside native llama.cpp and wllama, same files, same run (bench/peers.ts)
  const args = extra[0] === "--peers" ? extra.slice(1) : extra;
  process.exit(spawnSync(bin("deno"), ["run", "-A", "bench/peers.ts", ...args], { stdio: "inherit" }).status ?? 1);
}
const runs = [
  [bin("deno"), ["run", "-A", "bench/kernels.bench.ts"]],
  [bin("bun"), ["bench/kernels.bench.ts"]],
  [bin("deno"), ["run", "-A", "bench/e2e.ts", ...extra]],
  [bin("bun"), ["bench/e2e.ts", ...extra]],
];
let failed = false;
for (const [cmd, args] of runs) {
  console.log(`\n$ ${cmd.split("/").pop()} ${args.join(" ")}`);
  const r = spawnSync(cmd, args, { stdio: "inherit" });
  failed ||= r.status !== 0;
}
process.exit(failed ? 1 : 0);
