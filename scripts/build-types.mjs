// The package's TypeScript declarations: tsc (tsconfig.types.json) emits a .d.ts for every module the
// public entry points reach, into dist/types/ (src/mod.d.ts for "kvasm", src/edge.d.ts, src/cli.d.ts).
// Relative imports keep their .ts extensions, which TypeScript resolves to the .d.ts beside them
// under NodeNext and Bundler resolution alike. Stale declarations are removed first.
import { rmSync } from "node:fs";
import { spawnSync } from "node:child_process";

const root = new URL("..", import.meta.url).pathname;
rmSync(`${root}dist/types`, { recursive: true, force: true });
const r = spawnSync(`${root}node_modules/.bin/tsc`, ["-p", `${root}tsconfig.types.json`], { stdio: "inherit", cwd: root });
if (r.status !== 0) {
  console.error(`tsc -p tsconfig.types.json failed (${r.status ?? r.signal})`);
  process.exit(1);
}
if (!process.argv.includes("--quiet")) console.log("built dist/types/ (declarations)");
