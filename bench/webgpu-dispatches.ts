/**
 * The WebGPU backend's dispatches, logged at the WebGPU API: for a refactor of src/backends/webgpu/ that must leave
 * behaviour unchanged, run it before and after and compare the digests (or the logs). The adapter is wrapped so that
 * every pipeline built (its key and the SHA-256 of its WGSL), every bind group (its buffers by creation order, offsets
 * and sizes), every dispatch (pipeline key, bind group, dynamic offset, workgroup counts, its 32 param words) and
 * every buffer write, copy and submit is logged in order, for each option combination tests/webgpu.test.ts and
 * tests/webgpu-alibi.test.ts use (and a few more), over stories260K (F32, Q8_0, Q4_0, F16 cache) and one-layer
 * synthetic files of stories110M's widths (F32, Q8_0, Q4_0, Q4_K_M: the kernel choices depend on the widths, not
 * on the depth). Each run makes a 3-token prefill, a decodeOne, an 8-step decodeGreedy (the replayed plan), a
 * 70-token prefill (tiles, the many-row attention) and 3 device-sampled steps.
 *
 *   XDG_RUNTIME_DIR=/tmp deno run -A bench/webgpu-dispatches.ts OUT_DIR [--only SUBSTRING] [--reuse]
 *
 * Writes OUT_DIR/<model>~<options>.log and prints one digest line per run plus the digest of them all.
 */
import { benchArgs, usageError } from "./cli.ts";
import { loadModel } from "../src/model/load.ts";
import { WebGpuBackend, type WebGpuOptions } from "../src/backends/webgpu/backend.ts";
import { requestAdapter } from "../src/backends/webgpu/device.ts";
import { Sampler } from "../src/sampling/sampler.ts";
import { SHAPES, writeSyntheticModel, writeSyntheticQuantized } from "./synthetic.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { sharedPath } from "../tests/harness.ts";
import { logDispatches } from "../tests/webgpu-log.ts";

const USAGE = `usage: XDG_RUNTIME_DIR=/tmp deno run -A bench/webgpu-dispatches.ts OUT_DIR [--only SUBSTRING] [--reuse]

  OUT_DIR           where each run's log (<model>~<options>.log) and the synthetic models go
  --only SUBSTRING  only the runs whose name holds SUBSTRING
  --reuse           a run whose log OUT_DIR already holds is not run again (an interrupted run goes on)
  -h, --help        this text`;
// bench/cli.ts's parser, as every bench's: a misspelt flag or one out of place was ignored (--only read only as the
// first flag), and the whole set of runs started without it
const { values, positionals } = benchArgs(USAGE, {
  options: { only: { type: "string" }, reuse: { type: "boolean" }, help: { type: "boolean", short: "h" } },
  allowPositionals: true,
});
if (positionals.length !== 1) usageError(positionals.length ? `one OUT_DIR, got ${positionals.length}` : "an OUT_DIR is needed", USAGE);
const outDir = positionals[0];
const only = values.only;
const reuse = values.reuse ?? false;
Deno.mkdirSync(outDir, { recursive: true });

async function sha(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d.slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Synthetic one-layer files of stories110M's widths (written once into OUT_DIR/models). */
async function synthetic(type: "F32" | "Q8_0" | "Q4_0" | "Q4_K_M"): Promise<string> {
  const path = `${outDir}/models/synthetic-110M-1layer-${type.toLowerCase()}.gguf`;
  try {
    Deno.statSync(path);
    return path;
  } catch { /* written below */ }
  Deno.mkdirSync(`${outDir}/models`, { recursive: true });
  const shape = { ...SHAPES.stories110M, name: "stories110M-1layer", nLayers: 1 };
  if (type === "F32") await writeSyntheticModel(path, shape, GGMLType.F32);
  else await writeSyntheticQuantized(path, shape, type);
  return path;
}

const STORIES = (f: string) => sharedPath("models", "stories260K", f);
const models: Array<[string, string, Record<string, unknown>]> = [
  ["260K-f32", STORIES("stories260K.gguf"), {}],
  ["260K-q8_0", STORIES("stories260K-q8_0.gguf"), {}],
  ["260K-q4_0", STORIES("stories260K-q4_0.gguf"), {}],
  ["260K-f32-kvf16", STORIES("stories260K.gguf"), { kvCacheType: "f16" }],
  ["110M1-f32", await synthetic("F32"), {}],
  ["110M1-q8_0", await synthetic("Q8_0"), {}],
  ["110M1-q4_0", await synthetic("Q4_0"), {}],
  ["110M1-q4_k_m", await synthetic("Q4_K_M"), {}],
];

/**
 * The option combinations each file runs: every one tests/webgpu*.test.ts constructs, spread over the files whose
 * kernels they change (a run takes 10-20 s on lavapipe, so not every file runs every combination).
 */
const F32_FORMS_RUN: WebGpuOptions[] = [
  { f32Form: "today" },
  { f32Form: "today", f32Lanes: 16, fold: true },
  { f32Form: "rows", f32Lanes: 8, fold: true },
  { f32Form: "rows", f32Lanes: 64 },
];
const combos: Record<string, WebGpuOptions[]> = {
  "260K-f32": [
    {},
    { plans: false },
    { fold: false },
    { fold: "layers" },
    { fold: true },
    ...F32_FORMS_RUN,
    { attention: "wide" },
    { fuseAttentionQuant: false, fold: false, attention: "wide" },
    { spreadSampleFrom: 0 },
    { spreadSampleFrom: Infinity },
    { tiledFrom: 1 },
    { tiledFrom: Infinity },
    { tileRows: 64, tiles: "today" },
    { submitEvery: 7 },
  ],
  "260K-q8_0": [{}, { fold: "layers" }, { rowKernels: "pairs" }, { tiles: "b64x64-t4x8-k2" }],
  "260K-q4_0": [
    {},
    { plans: false },
    { fold: false },
    { fold: true },
    { rowKernels: "off" },
    { rowKernels: "pairs" },
    { rowKernels: "octets" },
    { fold: false, rowKernels: "octets" },
    { tiles: "today" },
    { tiles: "b64x64-t8x8-k2-db" },
    { spreadSampleFrom: 0 },
    { fuseAttentionQuant: false, fold: false },
    { submitEvery: 7 },
  ],
  "260K-f32-kvf16": [{}, { plans: false }],
  "110M1-f32": [{}, F32_FORMS_RUN[0], F32_FORMS_RUN[2], { attention: "wide" }, { fold: true }],
  "110M1-q8_0": [{}, { fold: false }, { rowKernels: "octets" }, { tiles: "today" }],
  "110M1-q4_0": [{}, { fold: false }, { fold: true }, { rowKernels: "off" }, { attention: "wide" }, { fuseAttentionQuant: false }],
  "110M1-q4_k_m": [{}, { fold: false }, { tiles: "today" }, { tiles: "b128x128-t8x8-k1" }],
};

/** A run's name: its model's label and its options, as its log file is named. */
const runName = (label: string, opts: WebGpuOptions) => `${label}~${JSON.stringify(opts).replace(/[^A-Za-z0-9:,_-]/g, "")}`;
// an --only that names no run printed the digest of none, which two such runs (before and after a change) share
if (only && !models.some(([label]) => combos[label].some((opts) => runName(label, opts).includes(only)))) {
  usageError(`--only ${JSON.stringify(only)}: no run's name holds it (names: 260K-f32~, 260K-f32~plans:false, ...)`, USAGE);
}

const { adapter: real } = await requestAdapter();
if (!real) throw new Error("no WebGPU adapter");
const digests: string[] = [];
for (const [label, path, loadOpts] of models) {
  for (const opts of combos[label]) {
    const name = runName(label, opts);
    if (only && !name.includes(only)) continue;
    const done = `${outDir}/${name}.log`;
    if (reuse) {
      try {
        const d = await sha(Deno.readFileSync(done));
        console.log(`${d} ${name} (kept)`);
        digests.push(`${d} ${name}`);
        continue;
      } catch { /* run below */ }
    }
    const rec = logDispatches(real);
    const backend = new WebGpuBackend({ ...opts, adapter: rec.adapter });
    const model = await loadModel(path, { ...loadOpts, backend, contextLength: 128, maxSequences: 2 });
    const picks: number[] = [];
    try {
      const seq = model.newSequence();
      rec.mark("prefill 3");
      const l = await model.prefill(seq, [1, 403, 407]);
      let t = l.indexOf(Math.max(...l));
      rec.mark("decodeOne");
      const l2 = await model.decodeOne(seq, t);
      t = l2.indexOf(Math.max(...l2));
      rec.mark("decodeGreedy 8");
      picks.push(...await model.decodeGreedy(seq, t, 8));
      const seq2 = model.newSequence();
      rec.mark("prefill 70");
      const prompt = Array.from({ length: 70 }, (_, i) => 1 + ((i * 37) % (model.vocabSize - 1)));
      const l3 = await model.prefill(seq2, prompt);
      t = l3.indexOf(Math.max(...l3));
      rec.mark("decodeSampled 3");
      const sampler = new Sampler(model.vocabSize, { temperature: 0.9, topP: 0.95, topK: 40, seed: 11 });
      picks.push(...await model.decodeSampled(seq2, t, 3, sampler, prompt));
    } finally {
      await model.close();
    }
    rec.mark(`picks ${picks.join(",")}`);
    const shaderLines: string[] = [];
    for (const s of rec.shaders) shaderLines.push(`wgsl ${s.label} ${await sha(new TextEncoder().encode(s.code))}`);
    const text = [...rec.log, ...shaderLines].join("\n") + "\n";
    Deno.writeTextFileSync(`${outDir}/${name}.log`, text);
    const d = await sha(new TextEncoder().encode(text));
    const dispatches = rec.log.filter((x) => x.startsWith("dispatch")).length;
    console.log(`${d} ${name} (${dispatches} dispatches, ${rec.shaders.length} pipelines)`);
    digests.push(`${d} ${name}`);
  }
}
console.log(`all ${await sha(new TextEncoder().encode(digests.join("\n")))} (${digests.length} runs)`);
