// End-to-end: real checkpoints, greedy decoding, compared with llama.cpp and llama2.c.
import { assert, assertEquals, assertRejects, readJSON, sharedPath, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import { generate, type GenerationResult } from "../src/generate.ts";
import { ContextLengthError, UnsupportedError } from "../src/errors.ts";
import { drain } from "./drain.ts";

interface GoldenRow {
  model: string;
  tokenizer?: string;
  prompt: string;
  prompt_ids?: number[];
  greedy_ids?: number[];
  text?: string;
  steps?: number;
}

const GOLDEN = sharedPath("golden", "stories260K.json");
const rows = () => readJSON<GoldenRow[]>(GOLDEN);
const row = (model: string) => rows().find((r) => r.model === model)!;

async function greedy(modelPath: string, prompt: string, maxTokens: number, tokenizer?: string): Promise<GenerationResult> {
  const model = await loadModel(modelPath, { tokenizer });
  try {
    return await drain(generate(model, prompt, { temperature: 0, maxTokens }));
  } finally {
    await model.close();
  }
}

for (const file of ["stories260K.gguf", "stories260K-f16.gguf"]) {
  const path = sharedPath("models", "stories260K", file);
  testShared(`llama.cpp golden: ${file} prompt ids and 128 greedy ids`, [path, GOLDEN], async () => {
    const ref = row(`stories260K/${file}`);
    const r = await greedy(path, ref.prompt, 128);
    assertEquals(r.promptTokens, ref.prompt_ids, "prompt ids");
    assertEquals(r.tokens, ref.greedy_ids, "greedy ids");
  });
}

for (
  const [bin, tok] of [["stories260K/stories260K.bin", "stories260K/tok512.bin"], [
    "aidreams260K/aidreams260K.bin",
    "aidreams260K/tok512.bin",
  ]]
) {
  const path = sharedPath("models", bin), tokPath = sharedPath("models", tok);
  testShared(`llama2.c golden: ${bin} greedy text`, [path, tokPath, GOLDEN], async () => {
    const ref = row(bin);
    // run.c counts the prompt's tokens (BOS included) in its steps
    const r = await greedy(path, ref.prompt, ref.steps!, tokPath);
    const text = ref.prompt + r.text;
    assert(text.startsWith(ref.text!), `output does not start with llama2.c's text:\n${text}\n---\n${ref.text}`);
    assert(r.promptTokens.length + r.tokens.length >= ref.steps! - 1, "generated as many steps as run.c");
  });
}

testShared(
  "a prompt longer than the context is a ContextLengthError",
  [sharedPath("models", "aidreams260K", "aidreams260K.bin")],
  async () => {
    const model = await loadModel(sharedPath("models", "aidreams260K", "aidreams260K.bin"), {
      tokenizer: sharedPath("models", "aidreams260K", "tok512.bin"),
    });
    try {
      const long = "Once upon a time ".repeat(60);
      const err = await assertRejects(
        () => generate(model, long, { maxTokens: 4 }).next(),
        ContextLengthError,
        /prompt needs \d+ positions but the context holds 128/,
      );
      assert((err as ContextLengthError).limit === 128);
      // the model is still usable after the error
      const ok = await generate(model, "Once upon a time", { temperature: 0, maxTokens: 3 }).next();
      assert(!ok.done || ok.value.tokens.length > 0, "generation after an error still works");
    } finally {
      await model.close();
    }
  },
);

testShared("generation stops at the end of the context", [sharedPath("models", "aidreams260K", "aidreams260K.bin")], async () => {
  const r = await greedy(
    sharedPath("models", "aidreams260K", "aidreams260K.bin"),
    "Once upon a time",
    1000,
    sharedPath("models", "aidreams260K", "tok512.bin"),
  );
  assertEquals(r.promptTokens.length + r.tokens.length, 128 + 1, "prompt + generated = context + the token sampled from the last position");
  assertEquals(r.finishReason, "length");
});

testShared(
  "an unsupported tensor type names the tensor and the type",
  [sharedPath("models", "synthetic-quants", "synthq-iq4_xs.gguf")],
  async () => {
    await assertRejects(
      () => loadModel(sharedPath("models", "synthetic-quants", "synthq-iq4_xs.gguf")),
      UnsupportedError,
      /tensor \S+ has type IQ4_XS/,
    );
  },
);
