// The package's entry points, listed once: deno.json's "exports" (subpath -> source module), which JSR
// publishes as they are. The npm side derives from it: each entry is bundled to dist/<bundle>.mjs
// (scripts/build-bundle.mjs) with declarations at dist/types/<source>.d.ts (scripts/build-types.mjs),
// and package.json's "exports" must name exactly these (tests/package.test.ts checks). A new entry
// (say "./ops": "./src/ops.ts") goes into deno.json and package.json's exports; the rest follows.
import { readFileSync } from "node:fs";

const deno = JSON.parse(readFileSync(new URL("../deno.json", import.meta.url), "utf8"));

/** [{ subpath: ".", source: "src/mod.ts", bundle: "kvasm", types: "dist/types/src/mod.d.ts" }, { subpath: "./cli", ... "kvasm-cli" }, ...] */
export const ENTRIES = Object.entries(deno.exports).map(([subpath, source]) => {
  const src = source.replace(/^\.\//, "");
  return {
    subpath,
    source: src,
    bundle: subpath === "." ? "kvasm" : `kvasm-${subpath.replace(/^\.\//, "").replaceAll("/", "-")}`,
    types: `dist/types/${src.replace(/\.ts$/, ".d.ts")}`,
  };
});
