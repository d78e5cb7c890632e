/**
 * The npm package as a new user gets it: `npm pack` (so prepack builds the
 * kernels, bundles and declarations), then an empty project installs the
 * tarball and nothing else from the repository, and there the `kvasm` bin runs
 * under Node (npx), Bun (bunx) and Deno (npm:kvasm); Node, Bun and Deno scripts
 * import { loadModel } from "kvasm" and generate from the bundled model; and
 * tsc (NodeNext, strict) compiles a file using the public API. The runtimes
 * and tsc are the repository's pinned tools; the project sees only the tarball.
 * Packed and installed once per test file's run.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { loadModel } from "../src/mod.ts";
import { assert, assertEquals, REPO, test } from "./harness.ts";

const BIN = (name: string) => path.join(REPO, "node_modules", ".bin", name);
const PROMPT = "Once upon a time";

/** The children's environment: this run's, less what `npm test` adds (npm_* would point npm back at the repository). */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^npm_/i.test(k) && k !== "INIT_CWD") env[k] = v;
  return { ...env, NO_COLOR: "1" };
}

/** Runs a command; it must exit 0 (or, with `fails`, with any other code). */
function run(cmd: string, args: string[], cwd: string, fails = false): { out: string; err: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 180_000, env: cleanEnv() });
  const shown = `${path.basename(cmd)} ${args.join(" ")}`;
  assert(r.error === undefined, `${shown}: ${r.error}`);
  assert((r.status === 0) !== fails, `${shown} exited ${r.status}; stderr: ${r.stderr}\nstdout: ${r.stdout.slice(-2000)}`);
  return { out: r.stdout, err: r.stderr };
}

interface Installed {
  tarball: string;
  project: string;
  tmp: string;
}
let installed: Installed | null = null;

/** npm pack into a temporary directory, then `npm install` the tarball into an empty project beside it. */
function install(): Installed {
  if (installed) return installed;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-package-"));
  run("npm", ["pack", "--pack-destination", tmp], REPO);
  const tarballs = fs.readdirSync(tmp).filter((f) => f.endsWith(".tgz"));
  assertEquals(tarballs.length, 1, `tarballs in ${tmp}`);
  const project = path.join(tmp, "user-project");
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "kvasm-user", private: true, type: "module" }));
  // kvasm has no runtime dependencies (the bundles carry what they use), so this needs no network
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", path.join(tmp, tarballs[0])], project);
  installed = { tarball: path.join(tmp, tarballs[0]), project, tmp };
  return installed;
}

let expected: string | null = null;
/** The greedy 8-token continuation of the bundled model, computed from the source in this process. */
async function greedyFromSource(): Promise<string> {
  if (expected !== null) return expected;
  const model = await loadModel(path.join(REPO, "models", "stories260K-q8_0.gguf"), { threads: 1 });
  let s = "";
  for await (const p of model.generate(PROMPT, { temperature: 0, maxTokens: 8 })) s += p;
  await model.close();
  assert(s.length > 10, `source continuation ${JSON.stringify(s)}`);
  return (expected = s);
}

test("package: npm pack ships the bundles, declarations, default model and licenses; no sources, tests, bench or fixtures", () => {
  const { tarball } = install();
  const files = run("tar", ["-tzf", tarball], os.tmpdir()).out.trim().split("\n").map((f) => f.replace(/^package\//, ""));
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
  const deno = JSON.parse(fs.readFileSync(path.join(REPO, "deno.json"), "utf8"));
  // one entry point per subpath, the same on npm and JSR; each resolves to a bundle and its declarations
  assertEquals(
    Object.keys(pkg.exports).filter((k) => k !== "./package.json").sort(),
    Object.keys(deno.exports).sort(),
    "package.json vs deno.json exports",
  );
  for (const [subpath, source] of Object.entries(deno.exports as Record<string, string>)) {
    const bundle = subpath === "." ? "kvasm" : `kvasm-${subpath.slice(2).replaceAll("/", "-")}`;
    const types = `./dist/types/${source.slice(2).replace(/\.ts$/, ".d.ts")}`;
    assertEquals(pkg.exports[subpath], { types, default: `./dist/${bundle}.mjs` }, `package.json exports["${subpath}"]`);
  }
  const entryFiles = Object.values(pkg.exports as Record<string, string | Record<string, string>>).flatMap((e) =>
    typeof e === "string" ? [e] : Object.values(e)
  );
  const wanted = [
    ...entryFiles,
    pkg.bin.kvasm,
    pkg.types,
    "LICENSE",
    "README.md",
    "THIRD-PARTY-NOTICES",
    "models/stories260K-q8_0.gguf",
    "models/LICENSE",
  ];
  for (const f of wanted.map((f) => f.replace(/^\.\//, ""))) assert(files.includes(f), `${f} missing from the tarball`);
  const stray = files.filter((f) =>
    !/^(package\.json|LICENSE|README\.md|THIRD-PARTY-NOTICES|dist\/kvasm[a-z-]*\.mjs|dist\/types\/.+\.d\.ts|models\/.+)$/.test(f)
  );
  assertEquals(stray, [], "files outside the whitelist");
  assertEquals(pkg.dependencies ?? {}, {}, "runtime dependencies");
  for (const hook of ["preinstall", "install", "postinstall"]) assertEquals(pkg.scripts[hook], undefined, `scripts.${hook}`);
});

test("package: npx kvasm generate prints a story from the bundled model; bunx kvasm and deno run -A npm:kvasm run the same bin", async () => {
  const { project } = install();
  const story = run("npx", ["--no", "kvasm", "generate", "--prompt", PROMPT, "--max-tokens", "20"], project);
  assert(story.out.startsWith(PROMPT) && story.out.trim().length > PROMPT.length + 10, `npx kvasm printed ${JSON.stringify(story.out)}`);
  assert(/decode \d+ tokens/.test(story.err), `npx kvasm's stderr: ${story.err}`);
  const greedy = ["generate", "--prompt", PROMPT, "--max-tokens", "8", "--temperature", "0"];
  const want = `${PROMPT}${await greedyFromSource()}\n`;
  assertEquals(run(BIN("bunx"), ["--bun", "kvasm", ...greedy], project).out, want, "bunx --bun kvasm");
  assertEquals(run(BIN("deno"), ["run", "-A", "npm:kvasm", ...greedy], project).out, want, "deno run -A npm:kvasm");
});

test("package: Node, Bun and Deno scripts import { loadModel } from 'kvasm', load the bundled model and generate 8 tokens", async () => {
  const { project } = install();
  const script = `import { loadModel } from "kvasm";
const model = await loadModel();
let text = "";
for await (const piece of model.generate(${JSON.stringify(PROMPT)}, { temperature: 0, maxTokens: 8 })) text += piece;
await model.close();
console.log(JSON.stringify(text));
`;
  fs.writeFileSync(path.join(project, "main.mjs"), script);
  fs.writeFileSync(path.join(project, "main.ts"), script);
  const want = await greedyFromSource();
  for (
    const [name, cmd, args] of [
      ["node", "node", ["main.mjs"]],
      ["bun", BIN("bun"), ["main.mjs"]],
      ["deno", BIN("deno"), ["run", "-A", "main.ts"]],
    ] as const
  ) {
    assertEquals(JSON.parse(run(cmd, [...args], project).out.trim()), want, name);
  }
});

test("package: tsc --noEmit (NodeNext, strict) compiles the public API from the tarball's declarations, and rejects a misuse", () => {
  const { project } = install();
  const tsconfig = {
    compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true },
    files: ["use.ts", "misuse.ts"],
  };
  fs.writeFileSync(path.join(project, "tsconfig.json"), JSON.stringify(tsconfig));
  fs.writeFileSync(
    path.join(project, "use.ts"),
    `import { DownloadError, Engine, KvasmError, loadModel, type LoadOptions, type Model } from "kvasm";
import { createEdgeHandler } from "kvasm/edge";
import { main } from "kvasm/cli";

const opts: LoadOptions = { threads: 1, onProgress: (done: number, total: number) => void (done / total) };
const model: Model = await loadModel(undefined, opts);
let text = "";
for await (const piece of model.generate("Once upon a time", { temperature: 0, maxTokens: 8 })) text += piece;
const engine = new Engine(model);
await engine.close();
await model.close();
try {
  await loadModel(new URL("https://example.invalid/model.gguf"));
} catch (e) {
  if (e instanceof DownloadError) console.log(e.url, e.status);
  else if (e instanceof KvasmError) console.log(e.code);
}
const edge = createEdgeHandler({ model: new Uint8Array(0) });
const code: number = await main(["--help"]);
console.log(text, typeof edge.fetch, code);
`,
  );
  // the declarations are real types, not any: a wrong argument is an error
  fs.writeFileSync(path.join(project, "misuse.ts"), `import { loadModel } from "kvasm";\nawait loadModel(42);\n`);
  // one tsc run: its only error must be the misuse (use.ts compiles clean)
  const errors = run(BIN("tsc"), ["-p", "tsconfig.json"], project, true).out.trim().split("\n").filter((l) => /error TS/.test(l));
  assertEquals(errors.length, 1, errors.join("\n"));
  assert(/^misuse\.ts\(2,17\): error TS2345/.test(errors[0]), errors[0]);
});

test("package: temporary project removed", () => {
  if (installed) fs.rmSync(installed.tmp, { recursive: true, force: true });
  installed = null;
});
