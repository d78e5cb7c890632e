// The package's TypeScript declarations: tsc (tsconfig.types.json) emits a .d.ts for every module the
// entry points (scripts/entries.mjs) reach, into dist/types/ (dist/types/src/mod.d.ts for "kvasm", ...).
// Relative imports keep their .ts extensions, which TypeScript resolves to the .d.ts beside them under
// NodeNext and Bundler resolution alike. Stale declarations are removed first.
import { rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { ENTRIES } from "./entries.mjs";

const root = new URL("..", import.meta.url).pathname;
rmSync(`${root}dist/types`, { recursive: true, force: true });
// tsc takes no file list beside -p: a config that extends tsconfig.types.json with the entries
const config = `${root}dist/tsconfig.entries.json`;
writeFileSync(config, JSON.stringify({ extends: "../tsconfig.types.json", files: ENTRIES.map((e) => `../${e.source}`) }));
const r = spawnSync(`${root}node_modules/.bin/tsc`, ["-p", config], { stdio: "inherit", cwd: root });
rmSync(config);
if (r.status !== 0) {
  console.error(`tsc (tsconfig.types.json) failed (${r.status ?? r.signal})`);
  process.exit(1);
}
if (!process.argv.includes("--quiet")) console.log(`built dist/types/ (declarations of ${ENTRIES.map((e) => e.source).join(", ")})`);
