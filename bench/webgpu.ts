/**
 * WebGPU throughput on synthetic models (real shapes, random weights written
 * straight in the quantized block formats): decode tok/s token by token (one
 * readback per token), greedy on the device (Model.decodeGreedy, runs of
 * --chunk tokens per readback) and sampled on the device (Model.decodeSampled, temperature 0.8, top-p 0.9,
 * the same runs), 128-token prefill tok/s, the share of the
 * GPU's memory bandwidth greedy decode reaches, and WASM single-thread prefill
 * of the same file for the speedup. First it times the bare readback: submit
 * a 4-byte copy, mapAsync, unmap (Deno's mapAsync sleeps 10 ms at least once).
 *
 *   deno run -A bench/webgpu.ts [--shapes stories110M,llama-1b] [--types F32,Q8_0,Q4_0] [--decode 64]
 *          [--chunk 64] [--submit-every 256] [--bandwidth-gbs 3350] [--wasm-prefill 32] [--batch 16] [--prefill 128,512]
 *          [--keep] [--json out.json] [--help]
 *
 * --batch B also times B sequences decoding together (Model.step, one token row each, logits read back per
 * step as the engine does) against B = 1 the same way; --keep leaves the GGUF files in --dir for a peer
 * (llama.cpp's llama-bench, scripts/gpu/device-run.sh peer) to read the same weights; --profile adds the GPU
 * microseconds per greedy token of each kernel (timestamp queries, each dispatch in its own pass); --prefill times
 * prompts of those lengths (best of 3, one forward pass each: maxBatchRows is the longest). With --decode above
 * --chunk, greedyOverlapTps and sampledOverlapTps time the same tokens in one call, whose 64-token runs are each
 * read back while the next is recorded and run; forwardUsPerToken is the host's time inside the forward pass
 * per token of that greedy run, hostShare that time over the token's wall time (near 1: the host is the bound).
 * dispatchesPerToken is exact: the dispatches of a greedy run of 16 tokens less those of a run of 8, over 8.
 * --fold off,layers,on measures each model with the norms and quantizers apart, then folded, in the same run;
 * --spread-from 1e9,0 the device sampler with its top-p search in one workgroup, then over 128 (each variant of
 * --fold with each of --spread-from, in turn; `gain` compares each to the first variant).
 */
import { fileSink, type GGUFMetadataEntry, type GGUFTensorToWrite, writeGGUF } from "../src/formats/gguf-writer.ts";
import { GGMLType, rowBytes } from "../src/formats/ggml-types.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ATTENTION_FORMS, type Fold, ROW_FORMS, WebGpuBackend } from "../src/backends/webgpu/backend.ts";
import { requestAdapter, requestDevice, webgpuStatus } from "../src/backends/webgpu/device.ts";
import { F32_FORMS } from "../src/backends/webgpu/wgsl-matmul.ts";
import { TILE_SHAPE_NAMES } from "../src/backends/webgpu/wgsl-tiled.ts";
import { SHAPES, type SyntheticShape } from "./synthetic.ts";
import { Sampler } from "../src/sampling/sampler.ts";
import { generate } from "../src/generate.ts";
import { benchArgs, choiceFlag, floatFlag, intFlag, intListFlag, listFlag } from "./cli.ts";
import { forwardTimer } from "./webgpu-call-timers.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE = `WebGPU throughput on synthetic models (real shapes, random weights): per-token, greedy and sampled decode on the
device, prefill, batched decode, and WASM's one-thread prefill of the same file (Deno).

  deno run -A bench/webgpu.ts [options]

  --shapes LIST         bench/synthetic.ts shapes (default stories110M,llama-1b)
  --types LIST          weight types (default F32,Q8_0,Q4_0)
  --decode N            decode tokens timed (default 64; above --chunk also one call of N, runs read back overlapped)
  --chunk N             greedy/sampled tokens per readback (default 64)
  --submit-every N      the backend's submitEvery (default 256)
  --bandwidth-gbs X     the GPU's memory bandwidth for the share greedy decode reaches (default 3350)
  --wasm-prefill N      ids of WASM's one-thread prefill (default 32; 0: none)
  --prefill LIST        prompt lengths timed, best of 3 (default 128)
  --batch B             also B sequences decoding together against 1 (default 0: none)
  --tiled-from N        token rows from which matmuls run as tiles (default 0: the backend's, 32)
  --tile-rows N         32 or 64 token rows a matmul tile holds (default 0: the backend picks)
  --profile             GPU microseconds per greedy token of each kernel (timestamp queries)
  --fold LIST           auto | layers | on | off, or several (off,layers,on), each measured in turn on the same file
                        in the same run: RMSNorm and quantizers as prologues of the layers' one-row matmuls (layers),
                        of the classifier's too (on), of the small weights' (auto, the backend's default) or
                        dispatches of their own (off); with several, gain compares each to the first
  --spread-from LIST    logits from which the device sampler's top-p search runs over 128 workgroups (default: the
                        backend's, 32000); several (1e9,0): each measured in turn, as --fold's variants
  --rows FORM           decode's one-row Q8_0/Q4_0 kernels: off (matmulKernel), pairs, octets, auto (default: the backend's)
  --f32-lanes N         threads a row of decode's one-row F32 matmuls, 8 to 64 (default: the backend's)
  --f32-form FORM       decode's one-row F32 kernel: today (matmulKernel) or rows (f32RowKernel; default: the backend's)
  --attention FORM      one token row's attention kernel: today (attentionKernel) or wide (attentionWideKernel; default: the backend's)
  --plans on|off        whether the device decode loop replays its recorded step (the backend's plans option;
                        default: the backend's, on)
  --tiles LIST          prefill's quantized matmul tiles: auto (the backend's default), today, or a register-tiled shape
                        of wgsl-tiled.ts TILE_SHAPES (b64x64-t8x8-k2, ...); several: each measured in turn, as --fold's
                        variants (gain: prefill too)
  --dir DIR             where the GGUF files are written (default /tmp)
  --keep                leave them there for a peer to read
  --json FILE           also write the results as JSON
  -h, --help            this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    shapes: { type: "string", default: "stories110M,llama-1b" },
    types: { type: "string", default: "F32,Q8_0,Q4_0" },
    decode: { type: "string", default: "64" },
    chunk: { type: "string", default: "64" },
    "submit-every": { type: "string", default: "256" },
    "bandwidth-gbs": { type: "string", default: "3350" },
    "wasm-prefill": { type: "string", default: "32" },
    prefill: { type: "string", default: "128" },
    batch: { type: "string", default: "0" },
    "tiled-from": { type: "string", default: "0" },
    "tile-rows": { type: "string", default: "0" },
    profile: { type: "boolean", default: false },
    fold: { type: "string", default: "auto" },
    "spread-from": { type: "string", default: "" },
    rows: { type: "string", default: "" },
    "f32-lanes": { type: "string", default: "" },
    "f32-form": { type: "string", default: "" },
    attention: { type: "string", default: "" },
    plans: { type: "string", default: "" },
    tiles: { type: "string", default: "" },
    dir: { type: "string", default: "/tmp" },
    keep: { type: "boolean", default: false },
    json: { type: "string", default: "" },
    help: { type: "boolean", short: "h" },
  },
});

/** xorshift32 words: random bytes fast enough for gigabytes. */
function randomBytes(n: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(n / 4));
  let s = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  return new Uint8Array(words.buffer, 0, n);
}

/** A tensor of `type` with random quants and small, sane scales (f16 0.0005 / f32 ~0.01). */
function tensorBytes(type: number, cols: number, rows: number, seed: number): Uint8Array {
  const bytes = rowBytes(type, cols)! * rows;
  const b = randomBytes(bytes, seed);
  if (type === GGMLType.F32) {
    const f = new Float32Array(b.buffer, 0, bytes / 4);
    for (let i = 0; i < f.length; i++) f[i] = ((b[i * 4] - 128) / 128) * 0.02;
  } else {
    const [block, size] = type === GGMLType.Q8_0 ? [34, 34] : type === GGMLType.Q4_0 ? [18, 18] : [0, 0];
    if (!block) throw new Error(`no synthetic writer for type ${type}`);
    const dv = new DataView(b.buffer);
    for (let o = 0; o < bytes; o += size) dv.setUint16(o, 0x1019, true); // f16 ~5e-4
  }
  return b;
}

async function writeModel(path: string, s: SyntheticShape, type: number): Promise<void> {
  const headDim = s.dim / s.nHeads, kvDim = s.nKvHeads * headDim;
  const tokens = ["<unk>", "<s>", "</s>"];
  for (let i = tokens.length; i < s.vocabSize; i++) tokens.push(`▁t${i}`);
  const md = (key: string, t: string, value: unknown): GGUFMetadataEntry => ({
    key,
    type: { type: t } as GGUFMetadataEntry["type"],
    value,
  });
  const metadata: GGUFMetadataEntry[] = [
    md("general.architecture", "string", "llama"),
    md("llama.context_length", "u32", s.contextLength),
    md("llama.embedding_length", "u32", s.dim),
    md("llama.feed_forward_length", "u32", s.hiddenDim),
    md("llama.block_count", "u32", s.nLayers),
    md("llama.attention.head_count", "u32", s.nHeads),
    md("llama.attention.head_count_kv", "u32", s.nKvHeads),
    md("llama.rope.dimension_count", "u32", headDim),
    md("llama.rope.freq_base", "f32", 10000),
    md("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
    md("tokenizer.ggml.model", "string", "llama"),
    { key: "tokenizer.ggml.tokens", type: { type: "array", of: "string" }, value: tokens },
    { key: "tokenizer.ggml.scores", type: { type: "array", of: "f32" }, value: new Float32Array(s.vocabSize) },
    { key: "tokenizer.ggml.token_type", type: { type: "array", of: "i32" }, value: new Int32Array(s.vocabSize).fill(1) },
    md("tokenizer.ggml.bos_token_id", "u32", 1),
    md("tokenizer.ggml.eos_token_id", "u32", 2),
  ];
  let seed = 7;
  const mat = (name: string, cols: number, rows: number): GGUFTensorToWrite => {
    const my = seed++ * 2654435761;
    return { name, type, shape: [cols, rows], data: () => tensorBytes(type, cols, rows, my) };
  };
  const norm = (name: string): GGUFTensorToWrite => ({
    name,
    type: GGMLType.F32,
    shape: [s.dim],
    data: () => new Uint8Array(new Float32Array(s.dim).fill(1).buffer),
  });
  const tensors = [mat("token_embd.weight", s.dim, s.vocabSize), norm("output_norm.weight")];
  for (let l = 0; l < s.nLayers; l++) {
    const p = `blk.${l}.`;
    tensors.push(
      norm(p + "attn_norm.weight"),
      mat(p + "attn_q.weight", s.dim, s.dim),
      mat(p + "attn_k.weight", s.dim, kvDim),
      mat(p + "attn_v.weight", s.dim, kvDim),
      mat(p + "attn_output.weight", s.dim, s.dim),
      norm(p + "ffn_norm.weight"),
      mat(p + "ffn_gate.weight", s.dim, s.hiddenDim),
      mat(p + "ffn_up.weight", s.dim, s.hiddenDim),
      mat(p + "ffn_down.weight", s.hiddenDim, s.dim),
    );
  }
  await writeGGUF(await fileSink(path), metadata, tensors);
}

const prompt = (n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 1000));

/** Prefill tok/s of an n-token prompt, the best of `runs` (each pays one readback of the logits). */
async function prefillTps(model: Model, n: number, runs = 1): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const seq = model.newSequence();
    const t = performance.now();
    await model.prefill(seq, prompt(n));
    best = Math.min(best, performance.now() - t);
    model.releaseSequence(seq);
  }
  return n / (best / 1000);
}

async function decodeTps(model: Model, steps: number): Promise<number> {
  const seq = model.newSequence();
  await model.prefill(seq, prompt(8));
  for (let i = 0; i < 4; i++) await model.decodeOne(seq, 5 + i); // warm
  const t = performance.now();
  for (let i = 0; i < steps; i++) await model.decodeOne(seq, 10 + (i % 100));
  const ms = performance.now() - t;
  model.releaseSequence(seq);
  return steps / (ms / 1000);
}

/** Greedy decode with the picks kept on the device: `steps` tokens in runs of `chunk` per readback. */
async function greedyTps(model: Model, steps: number, chunk: number): Promise<number> {
  const seq = model.newSequence();
  await model.prefill(seq, prompt(8));
  let t0 = (await model.decodeGreedy(seq, 5, 4))[3]; // warm
  const t = performance.now();
  for (let done = 0; done < steps; done += chunk) {
    const ids = await model.decodeGreedy(seq, t0, Math.min(chunk, steps - done));
    t0 = ids[ids.length - 1];
  }
  const ms = performance.now() - t;
  model.releaseSequence(seq);
  return steps / (ms / 1000);
}

/**
 * greedyTps with the host's share timed: the milliseconds spent inside the architecture's forward (building
 * the ops, fusing and recording them: all a token's host work but the pick's few dispatches), per token.
 */
async function greedyHostTimed(model: Model, steps: number, chunk: number): Promise<{ tps: number; forwardUs: number }> {
  const forward = forwardTimer(model);
  try {
    const tps = await greedyTps(model, steps, chunk);
    return { tps, forwardUs: (forward.ms * 1000) / forward.calls };
  } finally {
    forward.restore();
  }
}

/** Sampled decode (temperature 0.8, top-p 0.9) drawn on the device (Model.decodeSampled): `steps` tokens in runs of `chunk`. */
async function sampledTps(model: Model, steps: number, chunk: number): Promise<number> {
  const seq = model.newSequence();
  const history = prompt(8);
  await model.prefill(seq, history);
  const sampler = new Sampler(model.vocabSize, { temperature: 0.8, topP: 0.9, seed: 1 });
  let t0 = (await model.decodeSampled(seq, 5, 4, sampler, [...history, 5]))[3]; // warm
  const t = performance.now();
  for (let done = 0; done < steps; done += chunk) {
    const ids = await model.decodeSampled(seq, t0, Math.min(chunk, steps - done), sampler, history);
    t0 = ids[ids.length - 1];
  }
  const ms = performance.now() - t;
  model.releaseSequence(seq);
  return steps / (ms / 1000);
}

/** generate() at temperature 0 for `steps` tokens (no stop strings): the rate a caller of the library sees. */
async function generateTps(model: Model, steps: number): Promise<number> {
  const run = async (maxTokens: number) => {
    const gen = generate(model, prompt(8), { temperature: 0, maxTokens });
    let r = await gen.next();
    while (!r.done) r = await gen.next();
    return r.value;
  };
  await run(8); // warm
  const r = await run(steps);
  return r.tokens.length / (r.decodeMs / 1000);
}

/** Dispatches per greedy token, exactly: a run of 16 less a run of 8 (the run's fixed dispatches cancel), over 8. */
async function dispatchesPerToken(model: Model, backend: WebGpuBackend): Promise<number> {
  const seq = model.newSequence();
  await model.prefill(seq, prompt(8));
  const count = async (n: number) => {
    const d0 = backend.dispatches;
    await model.decodeGreedy(seq, 5, n);
    return backend.dispatches - d0;
  };
  const perToken = ((await count(16)) - (await count(8))) / 8;
  model.releaseSequence(seq);
  return perToken;
}

/** Aggregate tok/s of B sequences stepping together, one token each, logits read back every step. */
async function batchTps(model: Model, B: number, steps: number): Promise<number> {
  const seqs = Array.from({ length: B }, () => model.newSequence());
  for (const seq of seqs) await model.prefill(seq, prompt(8));
  const stepAll = (i: number) => model.step(seqs.map((seq, b) => ({ seq, tokens: [10 + ((i + b) % 100)], logits: true })));
  for (let i = 0; i < 2; i++) await stepAll(i); // warm
  const t = performance.now();
  for (let i = 0; i < steps; i++) await stepAll(i);
  const ms = performance.now() - t;
  for (const seq of seqs) model.releaseSequence(seq);
  return (B * steps) / (ms / 1000);
}

/**
 * Where a greedy decode step's GPU time goes: each dispatch timed in its own
 * pass (timestamp queries), summed per kernel over `steps` tokens.
 */
async function profileDecode(path: string, steps: number, sampled: boolean, v: Variant): Promise<Record<string, number>> {
  const backend = new WebGpuBackend({
    profile: true,
    fold: v.fold,
    ...(v.tiles === undefined ? {} : { tiles: v.tiles }),
    ...(v.spread === undefined ? {} : { spreadSampleFrom: v.spread }),
    ...rowKernels,
  });
  const model = await loadModel(path, { backend, contextLength: 512 });
  const seq = model.newSequence();
  const history = prompt(8);
  await model.prefill(seq, history);
  // sampled: temperature 0.8, top-p 0.9 drawn on the device, as sampledTps
  const sampler = new Sampler(model.vocabSize, { temperature: 0.8, topP: 0.9, seed: 1 });
  const run = (t: number, n: number) => sampled ? model.decodeSampled(seq, t, n, sampler, history) : model.decodeGreedy(seq, t, n);
  const next = (await run(5, 4))[3];
  await backend.gpuTimes(); // drop the warm-up
  await run(next, steps);
  const times = await backend.gpuTimes();
  await model.close();
  const perToken: Record<string, number> = {};
  let total = 0;
  for (const [key, { ns }] of [...times].sort((a, b) => b[1].ns - a[1].ns)) {
    perToken[key] = +(ns / steps / 1000).toFixed(1);
    total += ns / steps / 1000;
  }
  return { gpuUsPerToken: +total.toFixed(1), ...perToken };
}

/** GPU microseconds per kernel of one n-token prefill (one forward pass of n rows), as profileDecode. */
async function profilePrefill(path: string, n: number, v: Variant): Promise<Record<string, number>> {
  const backend = new WebGpuBackend({ profile: true, ...(v.tiles === undefined ? {} : { tiles: v.tiles }) });
  const model = await loadModel(path, { backend, contextLength: Math.max(512, n), maxBatchRows: Math.max(128, n) });
  await prefillTps(model, n); // compiles the pipelines
  await backend.gpuTimes();
  await prefillTps(model, n);
  const times = await backend.gpuTimes();
  await model.close();
  const us: Record<string, number> = {};
  let total = 0;
  for (const [key, { ns }] of [...times].sort((a, b) => b[1].ns - a[1].ns)) {
    us[key] = +(ns / 1000).toFixed(1);
    total += ns / 1000;
  }
  return { gpuUs: +total.toFixed(1), ...us };
}

/**
 * Host microseconds to record one dispatch the way the backend does (setPipeline, setBindGroup with a dynamic
 * offset, dispatchWorkgroups) of an empty kernel, 4096 to a pass, the best of 5 passes: the floor under
 * recordUsPerToken / dispatchesPerToken, whatever the fuser and the kernels do.
 */
async function dispatchFloorUs(): Promise<number> {
  const device = await requestDevice((await requestAdapter()).adapter);
  const layout = device.createBindGroupLayout({
    entries: [{ binding: 0, visibility: 4, buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: 16 } }],
  });
  const module = device.createShaderModule({
    code: "@group(0) @binding(0) var<uniform> p: vec4<u32>;\n@compute @workgroup_size(64) fn main() { _ = p.x; }",
  });
  const pipe = device.createComputePipeline({
    layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: "main" },
  });
  const params = device.createBuffer({ size: 4096 * 256, usage: 0x40 }); // UNIFORM
  const bg = device.createBindGroup({ layout, entries: [{ binding: 0, resource: { buffer: params, size: 16 } }] });
  const offset = new Uint32Array(1);
  let best = Infinity;
  for (let rep = 0; rep < 5; rep++) {
    const t = performance.now();
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < 4096; i++) {
      pass.setPipeline(pipe);
      offset[0] = i * 256;
      pass.setBindGroup(0, bg, offset, 0, 1);
      pass.dispatchWorkgroups(1, 1);
    }
    pass.end();
    device.queue.submit([enc.finish()]);
    best = Math.min(best, ((performance.now() - t) * 1000) / 4096);
    await device.queue.onSubmittedWorkDone();
  }
  device.destroy();
  return best;
}

/** Milliseconds of one bare readback: submit a 4-byte copy, mapAsync, unmap. */
async function readbackMs(n: number): Promise<number> {
  const device = await requestDevice((await requestAdapter()).adapter);
  const src = device.createBuffer({ size: 256, usage: 0x80 | 0x4 }); // STORAGE | COPY_SRC
  const dst = device.createBuffer({ size: 256, usage: 0x1 | 0x8 }); // MAP_READ | COPY_DST
  let t = 0;
  for (let i = 0; i < n + 3; i++) {
    if (i === 3) t = performance.now();
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, dst, 0, 4);
    device.queue.submit([enc.finish()]);
    await dst.mapAsync(1, 0, 4);
    dst.unmap();
  }
  const ms = (performance.now() - t) / n;
  device.destroy();
  return ms;
}

// The backend's options, each held to what WebGpuBackend accepts before anything runs: a cast or Number() passed a
// misspelt form or NaN on, to fail (or run the default unseen) after the earlier models' measurements.
const submitEvery = intFlag(USAGE, "submit-every", opts["submit-every"]);
const tiledFrom = intFlag(USAGE, "tiled-from", opts["tiled-from"], 0); // 0: the backend's default
// 32 or 64 token rows a matmul tile holds; 0: the backend picks
const tileRows = Number(choiceFlag(USAGE, "tile-rows", opts["tile-rows"], ["0", "32", "64"]));
const rowKernels = {
  ...(opts.rows ? { rowKernels: choiceFlag(USAGE, "rows", opts.rows, ROW_FORMS) } : {}),
  ...(opts["f32-lanes"] ? { f32Lanes: Number(choiceFlag(USAGE, "f32-lanes", opts["f32-lanes"], ["8", "16", "32", "64"])) } : {}),
  ...(opts["f32-form"] ? { f32Form: choiceFlag(USAGE, "f32-form", opts["f32-form"], F32_FORMS) } : {}),
  ...(opts.attention ? { attention: choiceFlag(USAGE, "attention", opts.attention, ATTENTION_FORMS) } : {}),
  ...(opts.plans ? { plans: choiceFlag(USAGE, "plans", opts.plans, ["on", "off"]) === "on" } : {}),
};
const foldOf: Record<string, Fold> = { on: true, layers: "layers", off: false, auto: "auto" };
const folds = listFlag(USAGE, "fold", opts.fold === "both" ? "off,on" : opts.fold, ["auto", "layers", "on", "off"]).map((f) => foldOf[f]);
// "1e9" as the docs' commands write it: an integer too
const spreads = opts["spread-from"]
  ? opts["spread-from"].split(",").map((s) => intFlag(USAGE, "spread-from", /^\d+e\d+$/.test(s) ? String(Number(s)) : s, 0))
  : [undefined];
const tilesList = opts.tiles ? listFlag(USAGE, "tiles", opts.tiles, ["today", "auto", ...TILE_SHAPE_NAMES]) : [undefined];
const shapeNames = listFlag(USAGE, "shapes", opts.shapes, Object.keys(SHAPES));
const typeNames = listFlag(USAGE, "types", opts.types, ["F32", "Q8_0", "Q4_0"] as const); // what tensorBytes writes
const bandwidth = floatFlag(USAGE, "bandwidth-gbs", opts["bandwidth-gbs"]); // default: H100 SXM HBM3 peak
const decodeSteps = intFlag(USAGE, "decode", opts.decode);
const wasmPrefillTokens = intFlag(USAGE, "wasm-prefill", opts["wasm-prefill"], 0);
const chunk = intFlag(USAGE, "chunk", opts.chunk);
const batch = intFlag(USAGE, "batch", opts.batch, 0);
// prompt lengths timed (best of 3); the longest is also the rows one forward pass takes (maxBatchRows), as llama-bench's ubatch
const prefillLengths = intListFlag(USAGE, "prefill", opts.prefill);

const status = await webgpuStatus();
console.log(`adapter: ${status.available ? status.adapter : "none: " + status.reason}`);
if (!status.available) throw new Error("no WebGPU adapter");
const dir = opts.dir;
const keep = opts.keep;
const profile = opts.profile;
const maxPrefill = Math.max(...prefillLengths);
const readback = await readbackMs(20);
console.log(`bare readback (submit, mapAsync, unmap): ${readback.toFixed(2)} ms`);
const dispatchFloor = await dispatchFloorUs();
console.log(`recording one empty dispatch (setPipeline, setBindGroup, dispatchWorkgroups): ${dispatchFloor.toFixed(2)} us`);
// deno-lint-ignore no-explicit-any
const results: any[] = [];
/** One backend configuration measured: --fold's mode, --spread-from's vocabulary, --tiles (undefined: the backend's default). */
type Variant = { fold: Fold; spread: number | undefined; tiles: string | undefined };
const variants: Variant[] = folds.flatMap((fold) => spreads.flatMap((spread) => tilesList.map((tiles) => ({ fold, spread, tiles }))));
for (const shapeName of shapeNames) {
  const shape = SHAPES[shapeName];
  for (const typeName of typeNames) {
    for (const variant of variants) {
      const { fold, spread, tiles } = variant;
      const type = GGMLType[typeName as keyof typeof GGMLType];
      const path = `${dir}/kvasm-bench-${shapeName}-${typeName}.gguf`;
      let t = performance.now();
      // with --keep a file left by an earlier run is read again (a peer may be timing the same bytes)
      if (
        !((keep || variant !== variants[0]) && (() => {
          try {
            return g.Deno.statSync(path).isFile;
          } catch {
            return false;
          }
        })())
      ) await writeModel(path, shape, type);
      const writeS = (performance.now() - t) / 1000;
      t = performance.now();
      const backend = new WebGpuBackend({
        fold,
        ...rowKernels,
        ...(spread === undefined ? {} : { spreadSampleFrom: spread }),
        ...(tiles === undefined ? {} : { tiles }),
        submitEvery,
        ...(tiledFrom ? { tiledFrom } : {}),
        ...(tileRows ? { tileRows: tileRows as 32 | 64 } : {}),
      });
      // pages for one sequence at full context, plus a few for each batched one (8 + 18 positions)
      const ctx = Math.max(512, maxPrefill);
      const model = await loadModel(path, {
        backend,
        contextLength: ctx,
        maxSequences: Math.max(1, batch),
        kvPages: ctx / 16 + 2 * batch,
        maxBatchRows: Math.max(128, maxPrefill),
      });
      const loadS = (performance.now() - t) / 1000;
      await prefillTps(model, 16); // compiles the pipelines
      const prefills: Record<string, number> = {};
      for (const n of prefillLengths) prefills[`prefill${n}Tps`] = +(await prefillTps(model, n, 3)).toFixed(1);
      const prefill = await prefillTps(model, 128);
      const decode = await decodeTps(model, decodeSteps);
      const d0 = backend.dispatches, r0 = backend.recordMs;
      const greedy = await greedyTps(model, decodeSteps, chunk);
      // greedyTps runs 4 warm-up steps and the 8-token prefill besides the timed ones
      const dispatchesPerTokenMean = (backend.dispatches - d0) / (decodeSteps + 4);
      const recordUsPerToken = ((backend.recordMs - r0) * 1000) / (decodeSteps + 4);
      const sampled = await sampledTps(model, decodeSteps, chunk);
      // the same tokens in one call: Model reads each 64-token run back while it records the next (its readbacks overlapped)
      const overlap = decodeSteps > chunk;
      const { tps: greedyOverlap, forwardUs } = overlap
        ? await greedyHostTimed(model, decodeSteps, decodeSteps)
        : { tps: NaN, forwardUs: NaN };
      const sampledOverlap = overlap ? await sampledTps(model, decodeSteps, decodeSteps) : NaN;
      // the same tokens through generate(), which runs ahead in calls of 4, 8, ... up to 256 (src/generate.ts)
      const generated = overlap ? await generateTps(model, decodeSteps) : NaN;
      const b1 = batch > 0 ? await batchTps(model, 1, 16) : NaN;
      const bN = batch > 0 ? await batchTps(model, batch, 16) : NaN;
      const perToken = await dispatchesPerToken(model, backend);
      const weightBytes = model.weightBytes;
      await model.close();
      let wasmPrefill = NaN;
      if (wasmPrefillTokens > 0) {
        try {
          const cpu = await loadModel(path, { backend: new WasmBackend(), contextLength: 512 });
          wasmPrefill = await prefillTps(cpu, wasmPrefillTokens);
          await cpu.close();
        } catch (e) {
          console.log(`  (WASM prefill not measured: ${(e as Error).message})`);
        }
      }
      const gbs = (weightBytes * greedy) / 1e9;
      const r = {
        shape: shapeName,
        type: typeName,
        fold,
        ...(spread === undefined ? {} : { spreadFrom: spread }),
        ...(tiles === undefined ? {} : { tiles }),
        weightMB: +(weightBytes / 1e6).toFixed(1),
        writeS: +writeS.toFixed(1),
        loadS: +loadS.toFixed(1),
        decodeTps: +decode.toFixed(1),
        greedyTps: +greedy.toFixed(1),
        sampledTps: +sampled.toFixed(1),
        sampledOverGreedy: +(sampled / greedy).toFixed(3),
        ...(overlap
          ? {
            greedyOverlapTps: +greedyOverlap.toFixed(1),
            sampledOverlapTps: +sampledOverlap.toFixed(1),
            generateTps: +generated.toFixed(1),
            // the host's time per token inside forward (overlapped run), against the token's wall time
            forwardUsPerToken: +forwardUs.toFixed(1),
            hostShare: +((forwardUs * greedyOverlap) / 1e6).toFixed(2),
          }
          : {}),
        dispatchesPerToken: perToken,
        dispatchesPerTokenWithRun: +dispatchesPerTokenMean.toFixed(1),
        recordUsPerToken: +recordUsPerToken.toFixed(1),
        ...(batch > 0 ? { batch1Tps: +b1.toFixed(1), [`batch${batch}Tps`]: +bN.toFixed(1), batchGain: +(bN / b1).toFixed(2) } : {}),
        greedyChunk: chunk,
        submitEvery,
        prefill128Tps: +prefill.toFixed(1),
        ...prefills,
        wasm1tPrefillTps: +wasmPrefill.toFixed(2),
        prefillSpeedup: +(prefill / wasmPrefill).toFixed(1),
        decodeGBs: +gbs.toFixed(1),
        bandwidthShare: +(gbs / bandwidth).toFixed(3),
      };
      if (profile) {
        Object.assign(r, {
          profileUs: await profileDecode(path, 32, false, variant),
          profileSampledUs: await profileDecode(path, 32, true, variant),
          [`profilePrefill${maxPrefill}Us`]: await profilePrefill(path, maxPrefill, variant),
        });
      }
      // several variants: each later one against the first, just measured (same run, same file)
      const first = variant !== variants[0] ? results[results.length - variants.indexOf(variant)] : undefined;
      if (first) {
        Object.assign(r, {
          gain: {
            vs: `fold ${first.fold}${first.spreadFrom === undefined ? "" : `, spread from ${first.spreadFrom}`}${
              first.tiles === undefined ? "" : `, tiles ${first.tiles}`
            }`,
            dispatchesPerToken: `${first.dispatchesPerToken} -> ${perToken}`,
            greedy: +(greedy / first.greedyTps).toFixed(3),
            sampled: +(sampled / first.sampledTps).toFixed(3),
            ...Object.fromEntries(Object.entries(prefills).map(([k, v]) => [k.replace("Tps", ""), +(v / first[k]).toFixed(3)])),
            ...(overlap
              ? {
                greedyOverlap: +(greedyOverlap / first.greedyOverlapTps).toFixed(3),
                sampledOverlap: +(sampledOverlap / first.sampledOverlapTps).toFixed(3),
              }
              : {}),
          },
        });
      }
      console.log(JSON.stringify(r));
      results.push(r);
      if (!keep && variant === variants[variants.length - 1]) g.Deno?.removeSync?.(path);
    }
  }
}
const out = opts.json;
if (out) {
  g.Deno.writeTextFileSync(
    out,
    JSON.stringify(
      { adapter: status.adapter, readbackMs: +readback.toFixed(2), dispatchFloorUs: +dispatchFloor.toFixed(2), results },
      null,
      2,
    ),
  );
}
