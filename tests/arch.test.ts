/**
 * Every architecture against Hugging Face transformers itself: the fixtures in
 * tests/fixtures/<arch>/ are tiny random-weight models with the logits that
 * transformers computed for fixed input ids (scripts/fixtures/make-arch-fixtures.py).
 * kvasm must match them at every position (one token at a time through the KV
 * cache, and as one prefill batch), continue greedily token for token, and give
 * the same logits again from the GGUF file its converter writes.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { openModelFile } from "../src/formats/open.ts";
import { BytesSink, writeGGUF } from "../src/formats/gguf-writer.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { BytesSource } from "../src/io/source.ts";
import { withHFConfig } from "../src/model/hf-config.ts";
import { writeHFModelAsGGUF } from "../src/convert/hf-to-gguf.ts";
import { FormatError, UnsupportedError } from "../src/errors.ts";
import { argmax } from "../src/sampling/sampler.ts";
import {
  assert,
  assertClose,
  assertEquals,
  assertRejects,
  editedFixture,
  readJSON,
  REPO,
  sharedPath,
  test,
  testShared,
} from "./harness.ts";

interface Expected {
  arch: string;
  input_ids: number[];
  logits: number[][];
  greedy_ids: number[];
  sliding_window?: number;
}

const ARCHS = ["llama", "mistral", "qwen2", "phi3", "gpt2", "gptneox", "gptneox-sequential"];
const fixture = (arch: string) => path.join(REPO, "tests", "fixtures", arch);
const TOL = 1e-4; // relative to the largest |logit| of the row

function scaleOf(row: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < row.length; i++) m = Math.max(m, Math.abs(row[i]));
  return m;
}

/** Logits after every input position, fed one token at a time (every step reads the KV cache). */
async function logitsPerPosition(m: Model, ids: number[]): Promise<Float32Array[]> {
  const seq = m.newSequence();
  const out: Float32Array[] = [];
  for (const id of ids) out.push((await m.decodeOne(seq, id)).slice());
  m.releaseSequence(seq);
  return out;
}

async function greedy(m: Model, ids: number[], steps: number): Promise<number[]> {
  const seq = m.newSequence();
  let logits = await m.prefill(seq, ids);
  const out: number[] = [];
  for (let s = 0; s < steps; s++) {
    const best = argmax(logits);
    out.push(best);
    if (s + 1 < steps) logits = await m.decodeOne(seq, best);
  }
  m.releaseSequence(seq);
  return out;
}

async function checkAgainstTransformers(m: Model, exp: Expected, what: string): Promise<Float32Array[]> {
  const rows = await logitsPerPosition(m, exp.input_ids);
  for (let p = 0; p < rows.length; p++) {
    assertClose(rows[p], exp.logits[p], TOL, `${what}: logits at position ${p}`, scaleOf(exp.logits[p]));
  }
  // the whole prompt as one batch of rows gives the same last-position logits
  const seq = m.newSequence();
  const last = await m.prefill(seq, exp.input_ids);
  m.releaseSequence(seq);
  assertClose(last, exp.logits.at(-1)!, TOL, `${what}: prefill logits`, scaleOf(exp.logits.at(-1)!));
  assertEquals(await greedy(m, exp.input_ids, exp.greedy_ids.length), exp.greedy_ids, `${what}: greedy continuation`);
  return rows;
}

for (const arch of ARCHS) {
  test(`${arch}: safetensors + config.json match transformers' logits and greedy ids`, async () => {
    const exp = readJSON<Expected>(path.join(fixture(arch), "expected.json"));
    const m = await loadModel(fixture(arch), { threads: 1 });
    try {
      // llama.cpp runs Mistral as "llama"; the NeoX variant is the same architecture
      assertEquals(m.config.arch, arch === "mistral" ? "llama" : arch.split("-")[0]);
      if (arch.startsWith("gptneox")) {
        const c = m.config as unknown as { parallelResidual: boolean; activation: string };
        const sequential = arch === "gptneox-sequential";
        assertEquals(
          [c.parallelResidual, c.activation],
          [!sequential, sequential ? "gelu_tanh" : "gelu_erf"],
          "NeoX residual and GELU form",
        );
      }
      if (arch === "gpt2") assert(fs.existsSync(path.join(fixture(arch), "model.safetensors.index.json")), "the GPT-2 fixture is sharded");
      if (exp.sliding_window) assertEquals(m.config.slidingWindow, exp.sliding_window, "sliding window from config.json");
      await checkAgainstTransformers(m, exp, arch);
    } finally {
      await m.close();
    }
  });

  test(`${arch}: the GGUF written by kvasm's converter gives the same logits`, async () => {
    const exp = readJSON<Expected>(path.join(fixture(arch), "expected.json"));
    const opened = await openModelFile(fixture(arch));
    const sink = new BytesSink();
    try {
      await writeHFModelAsGGUF(await withHFConfig(opened, fixture(arch)), sink);
    } finally {
      await opened.source.close();
    }
    const bytes = sink.bytes();
    // llama.cpp's names, no Hugging Face ones
    const gguf = await readGGUF(new BytesSource(bytes));
    assert(gguf.tensors.has("token_embd.weight") && gguf.tensors.has("blk.1.ffn_down.weight"), "llama.cpp tensor names");
    assert(
      ![...gguf.tensors.keys()].some((n) => n.startsWith("model.") || n.startsWith("transformer.") || n.startsWith("gpt_neox.")),
      "no HF names left",
    );
    if (arch === "llama") assert(gguf.tensors.has("rope_freqs.weight"), "Llama 3 scaling as rope_freqs.weight");
    const m = await loadModel(bytes, { threads: 1 });
    try {
      await checkAgainstTransformers(m, exp, `${arch} via GGUF`);
    } finally {
      await m.close();
    }
  });
}

test("mistral: the sliding window changes the logits once the prompt is longer than it", async () => {
  const exp = readJSON<Expected>(path.join(fixture("mistral"), "expected.json"));
  assert(exp.input_ids.length > exp.sliding_window!, "fixture prompt longer than the window");
  const m = await loadModel(fixture("mistral"), { threads: 1, slidingWindow: 0 });
  try {
    const rows = await logitsPerPosition(m, exp.input_ids);
    const p = exp.input_ids.length - 1;
    let diff = 0;
    for (let i = 0; i < rows[p].length; i++) diff = Math.max(diff, Math.abs(rows[p][i] - exp.logits[p][i]));
    assert(diff > 0.01, `full attention should differ from the windowed reference, max diff ${diff}`);
    // inside the window, full and windowed attention agree
    assertClose(rows[exp.sliding_window! - 1], exp.logits[exp.sliding_window! - 1], TOL, "inside the window", scaleOf(exp.logits[0]));
  } finally {
    await m.close();
  }
});

const STORIES_HF = sharedPath("models/stories260K/hf");
const STORIES_TOK = sharedPath("models/stories260K/tok512.model");
const GOLDEN = sharedPath("golden/stories260K.json");

testShared(
  "stories260K/hf (Hugging Face layout, rotate_half RoPE) reproduces its golden row",
  [STORIES_HF, STORIES_TOK, GOLDEN],
  async () => {
    const rows = readJSON<Array<Record<string, unknown>>>(GOLDEN);
    const row = rows.find((r) => String(r.model).startsWith("stories260K/hf"))!;
    assert(row, "golden row for stories260K/hf");
    const m = await loadModel(STORIES_HF, { tokenizer: STORIES_TOK, threads: 1 });
    try {
      assertEquals(m.config.ropeStyle, "halves");
      const ids = m.tokenizer.encode(row.prompt as string);
      assertEquals(ids, row.prompt_ids as number[], "prompt ids");
      const seq = m.newSequence();
      const logits = (await m.prefill(seq, ids)).slice();
      m.releaseSequence(seq);
      const top5 = row.logits_after_prompt_top5 as Array<[number, number]>;
      const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]).slice(0, 5);
      assertEquals(order, top5.map(([id]) => id), "top-5 ids after the prompt");
      assertClose(top5.map(([id]) => logits[id]), top5.map(([, l]) => l), TOL, "top-5 logits", top5[0][1]);
      const want = row.greedy_ids as number[];
      assertEquals(await greedy(m, ids, want.length), want, "greedy ids");
    } finally {
      await m.close();
    }
  },
);

// ---------------------------------------------------------------- typed errors

test("an unknown model_type is an UnsupportedError naming it", async () => {
  const dir = editedFixture(fixture("llama"), (c) => (c.model_type = "mamba"));
  try {
    await assertRejects(() => loadModel(dir, { threads: 1 }), UnsupportedError, /model_type "mamba" is not supported/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test("a tensor that config.json needs but the file lacks is a FormatError naming it", async () => {
  const dir = editedFixture(fixture("qwen2"), (c) => (c.num_hidden_layers = 3));
  try {
    await assertRejects(() => loadModel(dir, { threads: 1 }), FormatError, /tensor "blk\.2\.[a-z_.]+" is missing/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test("a shape that contradicts config.json is a FormatError naming the tensor", async () => {
  const dir = editedFixture(fixture("phi3"), (c) => (c.intermediate_size = 96));
  try {
    await assertRejects(
      () => loadModel(dir, { threads: 1 }),
      FormatError,
      /tensor "blk\.0\.ffn_up\.weight" \(model\.layers\.0\.mlp\.gate_up_proj\.weight\) has shape \[64, 256\], but config\.json implies \[64, 192\]/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
  const gpt2 = editedFixture(fixture("gpt2"), (c) => (c.n_head = 5));
  try {
    await assertRejects(() => loadModel(gpt2, { threads: 1 }), FormatError, /n_head|head_count 5 does not divide/);
  } finally {
    fs.rmSync(gpt2, { recursive: true });
  }
});

test("an unsupported rope scaling type is an UnsupportedError naming it", async () => {
  const dir = editedFixture(fixture("llama"), (c) => ((c.rope_parameters as Record<string, unknown>).rope_type = "yarn"));
  try {
    await assertRejects(() => loadModel(dir, { threads: 1 }), UnsupportedError, /rope scaling "yarn"/);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test("a GGUF of an unknown architecture is an UnsupportedError naming it", async () => {
  const sink = new BytesSink();
  await writeGGUF(sink, [
    { key: "general.architecture", type: { type: "string" }, value: "mamba" },
    { key: "mamba.embedding_length", type: { type: "u32" }, value: 8 },
  ], [{ name: "token_embd.weight", type: 0, shape: [8, 4], data: new Uint8Array(128) }]);
  await assertRejects(() => loadModel(sink.bytes(), { threads: 1 }), UnsupportedError, /architecture "mamba" is not supported/);
});

test("bf16 safetensors load: norms and biases widened to f32, matrices run as BF16", async () => {
  // the qwen2 fixture rewritten with every tensor in BF16 (rounded to nearest even)
  const { f32ToBf16 } = await import("../src/quant/half.ts");
  const src = fs.readFileSync(path.join(fixture("qwen2"), "model.safetensors"));
  const hlen = Number(new DataView(src.buffer, src.byteOffset, 8).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(src.subarray(8, 8 + hlen))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const data = src.subarray(8 + hlen);
  const out: Record<string, unknown> = {};
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const f = new Float32Array(new Uint8Array(data.subarray(t.data_offsets[0], t.data_offsets[1])).buffer);
    const h = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) h[i] = f32ToBf16(f[i]);
    out[name] = { dtype: "BF16", shape: t.shape, data_offsets: [at, at + h.byteLength] };
    chunks.push(new Uint8Array(h.buffer));
    at += h.byteLength;
  }
  let json = JSON.stringify(out);
  while (json.length % 8 !== 0) json += " ";
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-bf16-"));
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    fs.writeFileSync(path.join(dir, "model.safetensors"), Buffer.concat([len, new TextEncoder().encode(json), ...chunks]));
    fs.copyFileSync(path.join(fixture("qwen2"), "config.json"), path.join(dir, "config.json"));
    const exp = readJSON<Expected>(path.join(fixture("qwen2"), "expected.json"));
    const m = await loadModel(dir, { threads: 1 });
    try {
      const rows = await logitsPerPosition(m, exp.input_ids);
      // BF16 weights (8 bits of mantissa) and BF16-rounded activations: close to the f32 reference, not equal
      for (let p = 0; p < rows.length; p++) assertClose(rows[p], exp.logits[p], 0.05, `bf16 position ${p}`, scaleOf(exp.logits[p]));
    } finally {
      await m.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});
