// A standalone executable of the CLI: `bun build --compile` of the single-file CLI bundle
// (dist/standalone/kvasm-cli.mjs: kernels, worker and the default model inlined), so dist/kvasm
// runs from any directory with nothing else installed. Builds the bundle first unless --no-bundle.
// Usage: node scripts/build-exe.mjs [--no-bundle] [--outdir DIR] [--outfile PATH]   (default dist/kvasm)
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
const args = process.argv.slice(2);
const at = args.indexOf("--outfile");
const dirAt = args.indexOf("--outdir");
const outdir = dirAt >= 0 ? args[dirAt + 1] : `${root}dist`;
const outfile = at >= 0 ? args[at + 1] : `${outdir}/kvasm`;

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { stdio: "inherit", cwd: root });
  if (r.status !== 0) {
    console.error(`${cmd} ${argv.join(" ")} failed (${r.status ?? r.signal})`);
    process.exit(1);
  }
}

if (!args.includes("--no-bundle")) {
  run(process.execPath, [`${root}scripts/build-bundle.mjs`, "--quiet", "--standalone-cli", "--outdir", outdir]);
}
const t0 = Date.now();
run(`${root}node_modules/.bin/bun`, ["build", "--compile", `${outdir}/standalone/kvasm-cli.mjs`, "--outfile", outfile]);
console.log(`built ${outfile} (${(statSync(outfile).size / 1048576).toFixed(1)} MB) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
