// Single-file ESM bundles of kvasm (esbuild, --target=es2022) with the kernels inlined, one per entry
// point of the package (scripts/entries.mjs, from deno.json's exports):
//   dist/kvasm.mjs       the library (src/mod.ts)
//   dist/kvasm-cli.mjs   the command line (src/cli.ts); starts `#!/usr/bin/env node`: the package's bin
//   dist/kvasm-edge.mjs  the edge function entry (src/edge.ts: `export default { fetch }`)
// Two source modules are swapped for bundle twins: src/kernels/binaries.ts (imports build/*.ts)
// becomes one that imports the .wasm files as bytes (--loader:.wasm=binary), and
// src/threads/worker-url.ts (points at worker.ts) becomes a data: URL holding the bundled worker,
// so the bundle needs no file beside it. node:* imports stay external (Deno, Bun and Node provide them).
// The default model (src/model/default-model.ts) is pointed at ../models/ from dist/, where the npm
// package carries it; with --standalone-cli, dist/standalone/kvasm-cli.mjs also gets the CLI with the
// model's bytes inlined, which scripts/build-exe.mjs compiles into an executable that needs no file.
// Usage: node scripts/build-bundle.mjs [--quiet] [--outdir DIR] [--standalone-cli]   (default dist/)
import * as esbuild from "esbuild";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { ENTRIES } from "./entries.mjs";
import { gzipSync } from "node:zlib";

const root = new URL("..", import.meta.url).pathname;
const quiet = process.argv.includes("--quiet");
const outAt = process.argv.indexOf("--outdir");
const outdir = (outAt > 0 ? process.argv[outAt + 1] : `${root}dist`).replace(/\/$/, "");
const standaloneCli = process.argv.includes("--standalone-cli");
const MODEL_FILE = "stories260K-q8_0.gguf"; // as src/model/default-model.ts names it
const VARIANTS = ["simd", "relaxed", "simd-shared", "relaxed-shared"];
for (const v of VARIANTS) {
  if (!existsSync(`${root}build/kvasm-${v}.wasm`)) {
    console.error(`build/kvasm-${v}.wasm is missing: run \`npm run build:kernels\` first`);
    process.exit(1);
  }
}
mkdirSync(outdir, { recursive: true });

const common = {
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  mainFields: ["module", "main"],
  conditions: ["import", "default"],
  external: ["node:*", "bun:*"],
  loader: { ".wasm": "binary" },
  legalComments: "none",
  logLevel: quiet ? "error" : "warning",
};

/**
 * Replaces the module that reads kernels from build/ with one that inlines them: all four builds, or
 * (the edge bundle: one thread, no Workers) the two private-memory ones, which halves its size.
 * With `gzip` (the edge bundle, whose size is what edge platforms limit and what a cold start fetches) each build
 * is inlined gzipped in base64 (about 70 KB instead of 290 KB as bytes) and inflated on first use by the platform's
 * DecompressionStream (Deno, Bun, Node 18+, Workers); src/kernels/wasm.ts compiles each build once and keeps the module.
 */
const inlineKernels = (variants = VARIANTS, gzip = false) => ({
  name: "kvasm-inline-kernels",
  setup(build) {
    build.onResolve(
      { filter: /[/\\]binaries\.ts$/ },
      (args) =>
        args.importer.endsWith("wasm.ts") && args.importer.includes("kernels") ? { path: "kvasm:binaries", namespace: "kvasm" } : undefined,
    );
    build.onLoad({ filter: /^kvasm:binaries$/, namespace: "kvasm" }, () => ({
      resolveDir: root,
      loader: "ts",
      contents: gzip ? gzippedKernels(variants) : [
        ...variants.map((v, i) => `import k${i} from "./build/kvasm-${v}.wasm";`),
        `export type KernelVariant = ${VARIANTS.map((v) => JSON.stringify(v)).join(" | ")};`,
        `const BYTES: Partial<Record<KernelVariant, Uint8Array>> = { ${
          variants.map((v, i) => `${JSON.stringify(v)}: k${i}`).join(", ")
        } };`,
        `export function kernelBytes(variant: KernelVariant): Promise<Uint8Array> {`,
        `  const b = BYTES[variant];`,
        `  return b ? Promise.resolve(b) : Promise.reject(new Error(\`this bundle carries no \${variant} kernel build (the edge bundle runs on one thread: load with threads: 1)\`));`,
        `}`,
      ].join("\n"),
    }));
  },
});

/** The binaries module for `inlineKernels(variants, true)`: each build gzipped, in base64, inflated when asked for. */
function gzippedKernels(variants) {
  const packed = Object.fromEntries(
    variants.map((v) => [v, gzipSync(readFileSync(`${root}build/kvasm-${v}.wasm`), { level: 9 }).toString("base64")]),
  );
  return [
    `import { decodeBase64 } from "./src/kernels/base64.ts";`,
    `export type KernelVariant = ${VARIANTS.map((v) => JSON.stringify(v)).join(" | ")};`,
    `const GZIPPED: Partial<Record<KernelVariant, string>> = ${JSON.stringify(packed)};`,
    `function inflate(base64: string): Promise<Uint8Array> {`,
    `  const stream = new Blob([decodeBase64(base64)]).stream().pipeThrough(new DecompressionStream("gzip"));`,
    `  return new Response(stream).arrayBuffer().then((b) => new Uint8Array(b));`,
    `}`,
    `export function kernelBytes(variant: KernelVariant): Promise<Uint8Array> {`,
    `  const packed = GZIPPED[variant];`,
    `  if (!packed) return Promise.reject(new Error(\`this bundle carries no \${variant} kernel build (the edge bundle runs on one thread: load with threads: 1)\`));`,
    `  return inflate(packed);`,
    `}`,
  ].join("\n");
}

/** The default model: a URL from dist/ to the package's models/, or (standalone) its bytes inlined. */
const defaultModel = (inline = false) => ({
  name: "kvasm-default-model",
  setup(build) {
    build.onResolve({ filter: /[/\\]default-model\.ts$/ }, () => ({ path: "kvasm:default-model", namespace: "kvasm" }));
    build.onLoad({ filter: /^kvasm:default-model$/, namespace: "kvasm" }, () => ({
      resolveDir: root,
      loader: "ts",
      contents: [
        inline ? `import bytes from "./models/${MODEL_FILE}";` : "",
        `export const DEFAULT_MODEL_NAME = ${JSON.stringify(MODEL_FILE)};`,
        `export function defaultModel(): URL | Uint8Array {`,
        inline ? `  return bytes;` : `  return new URL(${JSON.stringify(`../models/${MODEL_FILE}`)}, import.meta.url);`,
        `}`,
      ].join("\n"),
    }));
  },
});

/** Points the thread pool at its worker bundled into a data: URL (Deno, Bun and Node all start Workers from one). */
function inlineWorker(workerCode) {
  return {
    name: "kvasm-inline-worker",
    setup(build) {
      build.onResolve({ filter: /[/\\]worker-url\.ts$/ }, () => ({ path: "kvasm:worker-url", namespace: "kvasm" }));
      build.onLoad({ filter: /^kvasm:worker-url$/, namespace: "kvasm" }, () => ({
        loader: "ts",
        contents: `const CODE = ${JSON.stringify(Buffer.from(workerCode).toString("base64"))};\n` +
          `export function workerURL(): URL { return new URL("data:text/javascript;base64," + CODE); }`,
      }));
    },
  };
}

const worker = await esbuild.build({
  ...common,
  entryPoints: [`${root}src/threads/worker.ts`],
  write: false,
  minify: true,
  plugins: [inlineKernels()],
});
const workerCode = worker.outputFiles[0].contents;

const bundles = ENTRIES.map((e) => ({ name: e.bundle, source: e.source, outfile: `${outdir}/${e.bundle}.mjs`, standalone: false }));
if (standaloneCli) {
  bundles.push({ name: "kvasm-cli", source: "src/cli.ts", outfile: `${outdir}/standalone/kvasm-cli.mjs`, standalone: true });
}
for (const { name, source, outfile, standalone } of bundles) {
  await esbuild.build({
    ...common,
    entryPoints: [`${root}${source}`],
    outfile,
    minify: name === "kvasm-edge",
    // errors take their name from their class (src/errors.ts): minified, ParamError would be called "S"
    keepNames: name === "kvasm-edge",
    loader: { ...common.loader, ".gguf": "binary" },
    plugins: [
      name === "kvasm-edge" ? inlineKernels(["simd", "relaxed"], true) : inlineKernels(VARIANTS),
      inlineWorker(workerCode),
      defaultModel(standalone),
    ],
  });
  if (name === "kvasm-cli" && !standalone) {
    // the npm bin runs under Node (npx); src/cli.ts's own first line asks for Deno
    writeFileSync(outfile, "#!/usr/bin/env node\n" + readFileSync(outfile, "utf8").replace(/^#!.*\n/, ""));
    chmodSync(outfile, 0o755);
  }
  if (!quiet) console.log(`built ${outfile} (${(statSync(outfile).size / 1024).toFixed(0)} KB)`);
}
if (!quiet) {
  const kernels = VARIANTS.reduce((n, v) => n + statSync(`${root}build/kvasm-${v}.wasm`).size, 0);
  console.log(
    `kernels inlined: ${(kernels / 1024).toFixed(0)} KB in ${VARIANTS.length} builds; worker: ${(workerCode.length / 1024).toFixed(0)} KB`,
  );
}
