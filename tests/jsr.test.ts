/**
 * JSR: `deno publish --dry-run` passes (license, no slow types, every import
 * resolvable) and would publish the kernels (the generated build/kvasm-*.ts
 * modules src/kernels/binaries.ts imports), the default model with its
 * license, and no tests, benchmarks or fixtures.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { assert, assertEquals, REPO, test } from "./harness.ts";

test("jsr: deno publish --dry-run exits 0 and publishes the kernels and the default model", () => {
  const r = spawnSync(path.join(REPO, "node_modules", ".bin", "deno"), ["publish", "--dry-run", "--allow-dirty"], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 180_000,
    env: { ...process.env, NO_COLOR: "1" },
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assertEquals(r.status, 0, `deno publish --dry-run failed:\n${out.slice(-4000)}`);
  // the file list: lines "   file:///.../LICENSE (1.05KB)", as paths relative to the repository
  const files = [...out.matchAll(/^\s*(file:\/\/\S+) \(/gm)].map((m) => path.relative(REPO, fileURLToPath(m[1])).split(path.sep).join("/"));
  for (const v of ["simd", "relaxed", "simd-shared", "relaxed-shared"]) {
    assert(files.includes(`build/kvasm-${v}.ts`), `build/kvasm-${v}.ts not published`);
  }
  for (const f of ["models/stories260K-q8_0.gguf", "models/LICENSE", "LICENSE", "src/mod.ts", "src/edge.ts", "src/cli.ts"]) {
    assert(files.includes(f), `${f} not published`);
  }
  const stray = files.filter((f) =>
    !/^(src\/|build\/kvasm-[a-z-]+\.ts$|models\/|LICENSE$|README\.md$|THIRD-PARTY-NOTICES$|deno\.json$)/.test(f)
  );
  assertEquals(stray, [], "published files outside the package");
});
