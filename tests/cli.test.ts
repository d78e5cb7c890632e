/**
 * The command line as a user runs it: `kvasm generate` with --ggml-order reproduces llama.cpp's greedy ids
 * (F16 cache, ggml-order matmuls), on both the plain path and the engine path (--json), and a bad flag
 * value is a typed error with exit code 1, not a crash.
 */
import { assert, assertEquals, readJSON, sharedPath, test, testShared } from "./harness.ts";
import { main } from "../src/cli.ts";

interface Row {
  model: string;
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
}

function capture() {
  const io = { stdout: "", stderr: "", out: (s: string) => void (io.stdout += s), err: (s: string) => void (io.stderr += s), errIsTTY: false };
  return io;
}

const GOLDEN = sharedPath("golden", "synthetic-quants.json");
const MODEL = sharedPath("models", "synthetic-quants", "synthq-q8_0.gguf");

testShared("cli: generate --ggml-order --json gives llama.cpp's greedy ids", [MODEL, GOLDEN], async () => {
  const row = readJSON<Row[]>(GOLDEN).find((r) => r.model === "synthetic-quants/synthq-q8_0.gguf")!;
  const io = capture();
  const args = ["generate", "--model", MODEL, "--prompt-ids", row.prompt_ids.join(","), "--max-tokens", "24", "--temperature", "0", "--threads", "1", "--ggml-order", "--json"];
  assertEquals(await main(args, io), 0, io.stderr);
  const line = JSON.parse(io.stdout.trim());
  assertEquals(line.tokens, row.greedy_ids.slice(0, 24));
  assert(/kv f16/.test(io.stderr), `the F16 cache is used: ${io.stderr}`);
});

testShared("cli: generate --ggml-order streams the same tokens as text", [sharedPath("models", "stories260K", "stories260K-q8_0.gguf"), sharedPath("golden", "stories260K.json")], async () => {
  const row = readJSON<Row[]>(sharedPath("golden", "stories260K.json")).find((r) => r.model === "stories260K/stories260K-q8_0.gguf")!;
  const io = capture();
  const args = ["generate", "--model", sharedPath("models", "stories260K", "stories260K-q8_0.gguf"), "--prompt", row.prompt, "--max-tokens", "40", "--temperature", "0", "--threads", "1", "--ggml-order"];
  assertEquals(await main(args, io), 0, io.stderr);
  const { loadModel } = await import("../src/model/model.ts");
  const model = await loadModel(sharedPath("models", "stories260K", "stories260K-q8_0.gguf"));
  try {
    assertEquals(io.stdout, row.prompt + model.tokenizer.decode(row.greedy_ids.slice(0, 40)) + "\n");
  } finally {
    await model.close();
  }
});

test("cli: a bad --kv-cache value is a typed error (exit 1)", async () => {
  const io = capture();
  const code = await main(["generate", "--model", "/nonexistent.gguf", "--prompt", "x", "--kv-cache", "q3"], io);
  assertEquals(code, 1);
  assert(/kvasm: ParamError: --kv-cache: must be one of f32, f16, q8_0/.test(io.stderr), io.stderr);
});

test("cli: serve checks --kv-cache before loading anything", async () => {
  const io = capture();
  const code = await main(["serve", "--model", "/nonexistent.gguf", "--kv-cache", "f8"], io);
  assertEquals(code, 1);
  assert(/kvasm: ParamError: --kv-cache: must be one of f32, f16, q8_0/.test(io.stderr), io.stderr);
});
