/**
 * JSR: `deno publish --dry-run` passes (license, no slow type but the kernel table's, every import
 * resolvable) and would publish the kernels (the generated build/kvasm-*.ts
 * modules src/kernels/binaries.ts imports), the default model with its
 * license, and no tests, benchmarks or fixtures. Then the published files are
 * used as JSR serves them, as remote modules over HTTP: Deno imports
 * src/mod.ts from a local server, and loadModel() finds the kernels in the
 * module graph, streams the default model from beside the module and starts
 * its thread workers from there, with no file of the repository read.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadModel } from "../src/mod.ts";
import { serve } from "../src/server/serve.ts";
import { assert, assertEquals, REPO, test } from "./harness.ts";

/** `deno publish --dry-run` with extra flags: its exit status and its whole output. */
function publishDryRun(...flags: string[]): { status: number | null; out: string } {
  const r = spawnSync(path.join(REPO, "node_modules", ".bin", "deno"), ["publish", "--dry-run", "--allow-dirty", ...flags], {
    cwd: REPO,
    encoding: "utf8",
    timeout: 180_000,
    env: { ...process.env, NO_COLOR: "1" },
  });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

test("jsr: the one slow type is the kernel table (its type is its value's, src/kernels/spec.ts)", () => {
  const { out } = publishDryRun();
  const slow = [...out.matchAll(/error\[(?:no-slow-types|missing-explicit-[a-z-]+)\][^\n]*\n\s*--> (\S+?):\d+/g)].map((m) =>
    path.relative(REPO, m[1].startsWith("file:") ? fileURLToPath(m[1]) : m[1]).split(path.sep).join("/")
  );
  assertEquals(slow, ["src/kernels/spec.ts"], `slow types:\n${out.slice(-4000)}`);
  assert(/export const KERNEL_SPEC/.test(out), "the slow type named is KERNEL_SPEC");
});

test("jsr: deno publish --dry-run exits 0 and publishes the kernels and the default model", () => {
  const r = publishDryRun("--allow-slow-types");
  const out = r.out;
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

/** Runs a child to its end without blocking this process (the server it talks to runs here). */
function runAsync(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: Record<string, string | undefined> },
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => p.kill(), 180_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

test("jsr: Deno imports src/mod.ts as remote modules; loadModel() gets the kernels and the default model from beside it", async () => {
  // what JSR would serve: the published files only (deno publish's list), each at its path
  const published = new Set(["src/", "build/kvasm-", "models/"]);
  const served: string[] = [];
  const server = await serve((req) => {
    const rel = decodeURIComponent(new URL(req.url).pathname).replace(/^\//, "");
    const file = path.join(REPO, rel);
    const allowed = [...published].some((p) => rel.startsWith(p)) && !rel.includes("..") &&
      (!rel.startsWith("build/") || rel.endsWith(".ts"));
    if (!allowed || !fs.existsSync(file) || !fs.statSync(file).isFile()) return new Response("not published", { status: 404 });
    served.push(rel);
    const bytes = fs.readFileSync(file);
    const type = rel.endsWith(".ts") ? "application/typescript; charset=utf-8" : "application/octet-stream";
    return new Response(bytes, { headers: { "content-type": type, "content-length": String(bytes.length) } });
  }, { port: 0 });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-jsr-"));
  try {
    // JSR rewrites the bare "@huggingface/jinja" to its npm: dependency; here an import map points it at the
    // installed copy, so the test needs no registry
    const jinja = pathToFileURL(path.join(REPO, "node_modules", "@huggingface", "jinja", "dist", "index.js")).href;
    fs.writeFileSync(path.join(work, "deno.json"), JSON.stringify({ imports: { "@huggingface/jinja": jinja } }));
    fs.writeFileSync(
      path.join(work, "main.ts"),
      `import { loadModel } from "${server.url}/src/mod.ts";
const model = await loadModel(undefined, { threads: 2 });
let text = "";
for await (const piece of model.generate("Once upon a time", { temperature: 0, maxTokens: 8 })) text += piece;
console.log(JSON.stringify({ text, backend: model.backend.name }));
await model.close();
`,
    );
    const r = await runAsync(path.join(REPO, "node_modules", ".bin", "deno"), ["run", "-A", "--quiet", "main.ts"], {
      cwd: work,
      env: { ...process.env, NO_COLOR: "1", DENO_DIR: path.join(work, "deno-dir") },
    });
    assertEquals(r.code, 0, `deno run main.ts: ${r.err}`);
    const { text, backend } = JSON.parse(r.out.trim());
    const local = await loadModel(undefined, { threads: 1 });
    let want = "";
    for await (const piece of local.generate("Once upon a time", { temperature: 0, maxTokens: 8 })) want += piece;
    await local.close();
    assertEquals(text, want);
    assertEquals(backend, "wasm-threads", "two threads: the workers started from the remote worker.ts");
    for (const f of ["src/threads/worker.ts", "models/stories260K-q8_0.gguf"]) assert(served.includes(f), `${f} was not fetched`);
    assert(served.some((f) => /^build\/kvasm-[a-z-]+\.ts$/.test(f)), "no kernel module was fetched");
  } finally {
    await server.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
