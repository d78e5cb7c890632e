// Quantized GGUF files (made by llama.cpp's own quantizer) against llama.cpp's greedy ids.
// The rule: teacher-forced on the reference ids, kvasm's top token equals the reference at
// every step, or the reference is kvasm's second choice with a logit gap under 1e-2 (a near-tie that
// f32 rounding order may flip). With ggmlOrder kvasm holds itself to more: no departure at all, and
// the synthetic files' stored logits reproduced exactly.
// Models load with kvCacheType "f16" and ggmlOrder: the references come from node-llama-cpp 3.22.1 with its
// defaults on an AVX-512 (Zen 4) CPU, where llama.cpp keeps K and V in F16 and flash attention ("auto")
// resolves to enabled. kvasm's F16 cache runs ggml's CPU flash-attention arithmetic (q rounded to half, the
// AVX-512 build's f16 dot, half running output, glibc's expf), and ggmlOrder picks matmuls that sum in
// ggml's order; quantized weights need both, since their activations are re-quantized at every matmul and
// an ulp upstream moves whole quantization steps.
import { assert, readJSON, sharedPath, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";

interface Row {
  model: string;
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
}

export interface Departure {
  step: number;
  kvasm: number; // kvasm's top token
  reference: number;
  gap: number; // kvasm's top logit minus its logit for the reference token
  referenceIsSecond: boolean;
}

/** Teacher-forced on the reference ids: every step where kvasm's top token is not the reference. */
export async function departures(model: Model, promptIds: number[], refIds: number[]): Promise<Departure[]> {
  const out: Departure[] = [];
  const seq = model.newSequence();
  try {
    let logits = await model.prefill(seq, promptIds);
    for (let i = 0; i < refIds.length; i++) {
      let best = 0, second = -1;
      for (let j = 1; j < logits.length; j++) {
        if (logits[j] > logits[best]) {
          second = best;
          best = j;
        } else if (second < 0 || logits[j] > logits[second]) second = j;
      }
      const ref = refIds[i];
      if (best !== ref) {
        out.push({ step: i, kvasm: best, reference: ref, gap: logits[best] - logits[ref], referenceIsSecond: second === ref });
      }
      if (i + 1 < refIds.length) logits = await model.decodeOne(seq, ref);
    }
  } finally {
    model.releaseSequence(seq);
  }
  return out;
}

/** The rule: a departure is accepted only as a near-tie (reference second, gap under 1e-2). */
export function violations(ds: Departure[]): string[] {
  return ds.filter((d) => !(d.referenceIsSecond && d.gap < 1e-2)).map(describe);
}

const describe = (d: Departure) =>
  `step ${d.step}: kvasm ${d.kvasm}, reference ${d.reference} (second: ${d.referenceIsSecond}, gap ${d.gap})`;

const STORIES = sharedPath("golden", "stories260K.json");
const SYNTH = sharedPath("golden", "synthetic-quants.json");

for (const file of ["stories260K-q8_0.gguf", "stories260K-q4_0.gguf"]) {
  const path = sharedPath("models", "stories260K", file);
  testShared(`llama.cpp golden (quantized): ${file}, 128 greedy ids, no departure`, [path, STORIES], async () => {
    const row = readJSON<Row[]>(STORIES).find((r) => r.model === `stories260K/${file}`)!;
    const model = await loadModel(path, { threads: 1, kvCacheType: "f16", ggmlOrder: true });
    try {
      // llama.cpp's arithmetic bit for bit (see below): not even a near tie may flip
      const bad = (await departures(model, row.prompt_ids, row.greedy_ids)).map(describe);
      assert(bad.length === 0, `${file}:\n${bad.join("\n")}`);
    } finally {
      await model.close();
    }
  });
}

const SYNTH_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k"];

interface SynthRow extends Row {
  top5_after_prompt: [number, number][];
}

/** The prompt's logits for the reference's top-5 ids, where they are not exactly the reference's f32 values. */
async function top5Mismatches(model: Model, row: SynthRow): Promise<string[]> {
  const seq = model.newSequence();
  try {
    const logits = await model.prefill(seq, row.prompt_ids);
    return row.top5_after_prompt.filter(([id, v]) => logits[id] !== Math.fround(v)).map(([id, v]) =>
      `"${row.prompt}" logit of ${id}: ${logits[id]}, llama.cpp ${v}`
    );
  } finally {
    model.releaseSequence(seq);
  }
}

/**
 * With ggmlOrder and an F16 cache kvasm runs llama.cpp's x86 arithmetic bit for bit (every op checked against
 * llama.cpp's intermediate tensors), so beyond the rule: the reference's top-5 logits after the prompt
 * (stored as f32 values) come out exactly, and the greedy ids never part from the reference's.
 */
for (const t of SYNTH_TYPES) {
  const path = sharedPath("models", "synthetic-quants", `synthq-${t}.gguf`);
  testShared(`llama.cpp golden (synthetic): synthq-${t}.gguf, both prompts, logits bit for bit`, [path, SYNTH], async () => {
    const rows = readJSON<SynthRow[]>(SYNTH).filter((r) => r.model === `synthetic-quants/synthq-${t}.gguf`);
    assert(rows.length === 2, "two reference rows");
    const model = await loadModel(path, { threads: 1, kvCacheType: "f16", ggmlOrder: true });
    try {
      const bad: string[] = [];
      for (const row of rows) {
        bad.push(...await top5Mismatches(model, row));
        for (const d of await departures(model, row.prompt_ids, row.greedy_ids)) bad.push(`"${row.prompt}" ${describe(d)}`);
      }
      assert(bad.length === 0, `synthq-${t}:\n${bad.join("\n")}`);
    } finally {
      await model.close();
    }
  });
}

testShared("kvasm's quantizer: stories260K quantized to Q8_0 by kvasm matches llama.cpp's Q8_0 row", [
  sharedPath("models", "stories260K", "stories260K.gguf"),
  STORIES,
], async () => {
  const { openModelFile } = await import("../src/formats/open.ts");
  const { BytesSink } = await import("../src/formats/gguf-writer.ts");
  const { quantizeModel } = await import("../src/quant/quantize.ts");
  const input = await openModelFile(sharedPath("models", "stories260K", "stories260K.gguf"));
  const sink = new BytesSink();
  try {
    await quantizeModel({ input, output: sink, type: "Q8_0" });
  } finally {
    await input.source.close();
  }
  const ours = sink.bytes();
  const theirs = await openModelFile(sharedPath("models", "stories260K", "stories260K-q8_0.gguf"));
  await theirs.source.close();
  const row = readJSON<Row[]>(STORIES).find((r) => r.model === "stories260K/stories260K-q8_0.gguf")!;
  const model = await loadModel(ours, { threads: 1 });
  try {
    // same tensor types as llama.cpp chose (ffn_down stays F16: 172 does not split into blocks of 32)
    for (const [name, t] of theirs.tensors) {
      assert(model.file.tensors.get(name)?.type === t.type, `${name}: type ${model.file.tensors.get(name)?.type} vs llama.cpp ${t.type}`);
    }
    const bad = violations(await departures(model, row.prompt_ids, row.greedy_ids));
    assert(bad.length === 0, bad.join("\n"));
  } finally {
    await model.close();
  }
});

testShared(
  "ggmlOrder on two threads (every op split): the same logits bit for bit, stories260K and every synthetic file",
  [SYNTH, STORIES],
  async () => {
    const { threadSupport } = await import("../src/threads/spawn.ts");
    const { ThreadedWasmBackend } = await import("../src/backends/wasm-threads.ts");
    if (!threadSupport()) return; // this runtime has no Workers: the single-thread path above is the whole story
    const bad: string[] = [];
    for (const t of SYNTH_TYPES) {
      const backend = new ThreadedWasmBackend({ threads: 2, minWork: 0, ggmlOrder: true });
      const model = await loadModel(sharedPath("models", "synthetic-quants", `synthq-${t}.gguf`), { backend, kvCacheType: "f16" });
      try {
        for (const row of readJSON<SynthRow[]>(SYNTH).filter((r) => r.model === `synthetic-quants/synthq-${t}.gguf`)) {
          bad.push(...(await top5Mismatches(model, row)).map((m) => `${t} ${m}`));
        }
      } finally {
        await model.close();
      }
    }
    // stories260K's FFN is 172 wide: SwiGLU splits by whole rows, and Q4_0 rows % 8 != 0 take vec_dot's order
    const row = readJSON<Row[]>(STORIES).find((r) => r.model === "stories260K/stories260K-q4_0.gguf")!;
    const backend = new ThreadedWasmBackend({ threads: 2, minWork: 0, ggmlOrder: true });
    const model = await loadModel(sharedPath("models", "stories260K", "stories260K-q4_0.gguf"), { backend, kvCacheType: "f16" });
    try {
      bad.push(...(await departures(model, row.prompt_ids, row.greedy_ids)).map((d) => `stories260K-q4_0 ${describe(d)}`));
    } finally {
      await model.close();
    }
    assert(bad.length === 0, bad.join("\n"));
  },
);
