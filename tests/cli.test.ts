/**
 * The command line as a user runs it: `kvasm generate` with --ggml-order reproduces llama.cpp's greedy ids
 * (F16 cache, ggml-order matmuls), on both the plain path and the engine path (--json); a bad flag or flag
 * value is a typed error naming it with exit code 1, not a crash; --help, --version; `kvasm chat` over a pipe.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { spawn, spawnSync } from "node:child_process";
import { assert, assertEquals, readJSON, REPO, sharedPath, test, testShared } from "./harness.ts";
import { main } from "../src/cli.ts";
import { loadModel } from "../src/model/load.ts";
import { Engine } from "../src/engine/engine.ts";
import { ChatTemplate } from "../src/server/chat-template.ts";
import { chatPromptIds } from "../src/server/chat-prompt.ts";
import { withTemplate } from "./gguf-template.ts";

interface Row {
  model: string;
  prompt: string;
  prompt_ids: number[];
  greedy_ids: number[];
}

function capture() {
  const io = {
    stdout: "",
    stderr: "",
    out: (s: string) => void (io.stdout += s),
    err: (s: string) => void (io.stderr += s),
    errIsTTY: false,
  };
  return io;
}

const GOLDEN = sharedPath("golden", "synthetic-quants.json");
const MODEL = sharedPath("models", "synthetic-quants", "synthq-q8_0.gguf");

testShared("cli: generate --ggml-order --json gives llama.cpp's greedy ids", [MODEL, GOLDEN], async () => {
  const row = readJSON<Row[]>(GOLDEN).find((r) => r.model === "synthetic-quants/synthq-q8_0.gguf")!;
  const io = capture();
  const args = [
    "generate",
    "--model",
    MODEL,
    "--prompt-ids",
    row.prompt_ids.join(","),
    "--max-tokens",
    "24",
    "--temperature",
    "0",
    "--threads",
    "1",
    "--ggml-order",
    "--json",
  ];
  assertEquals(await main(args, io), 0, io.stderr);
  const line = JSON.parse(io.stdout.trim());
  assertEquals(line.tokens, row.greedy_ids.slice(0, 24));
  assert(/kv f16/.test(io.stderr), `the F16 cache is used: ${io.stderr}`);
});

// The engine's token events are read for their text only (tokenLogprobs false), so --logprobs' figures must come
// from the choices: each token's finite logprob and its N alternatives (the chosen, greedy, one first); with
// --logprobs 0 the same logprobs and no alternatives (a greedy pick, where only `logprobs` makes the sampler compute it).
testShared("cli: generate --json --logprobs N reports each token's logprob and N alternatives, N = 0 too", [MODEL, GOLDEN], async () => {
  const row = readJSON<Row[]>(GOLDEN).find((r) => r.model === "synthetic-quants/synthq-q8_0.gguf")!;
  const args = ["generate", "--model", MODEL, "--prompt-ids", row.prompt_ids.join(","), "--max-tokens", "8", "--temperature", "0"];
  type Line = { tokens: number[]; logprobs: { id: number; logprob: number; top: { id: number; logprob: number }[] }[] };
  const run = async (n: string): Promise<Line> => {
    const io = capture();
    assertEquals(await main([...args, "--threads", "1", "--json", "--logprobs", n], io), 0, io.stderr);
    return JSON.parse(io.stdout.trim());
  };
  const two = await run("2"), none = await run("0");
  assertEquals(two.tokens.length, 8);
  assertEquals(two.logprobs.map((t) => t.id), two.tokens);
  for (const t of two.logprobs) {
    assert(Number.isFinite(t.logprob) && t.logprob <= 0, `logprob ${t.logprob}`);
    assertEquals(t.top.length, 2);
    assertEquals(t.top[0], { id: t.id, logprob: t.logprob });
  }
  assertEquals(none.logprobs, two.logprobs.map((t) => ({ ...t, top: [] })));
});

testShared("cli: generate --ggml-order streams the same tokens as text", [
  sharedPath("models", "stories260K", "stories260K-q8_0.gguf"),
  sharedPath("golden", "stories260K.json"),
], async () => {
  const row = readJSON<Row[]>(sharedPath("golden", "stories260K.json")).find((r) => r.model === "stories260K/stories260K-q8_0.gguf")!;
  const io = capture();
  const args = [
    "generate",
    "--model",
    sharedPath("models", "stories260K", "stories260K-q8_0.gguf"),
    "--prompt",
    row.prompt,
    "--max-tokens",
    "40",
    "--temperature",
    "0",
    "--threads",
    "1",
    "--ggml-order",
  ];
  assertEquals(await main(args, io), 0, io.stderr);
  const { loadModel } = await import("../src/model/load.ts");
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

test("cli: serve on a busy port exits 1 and closes the model and engine it opened (the process ends)", () => {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const child = path.join(REPO, "tests", "cli-serve-child.ts");
  const [exe, args] = deno ? [deno.execPath(), ["run", "-A", child]] : [process.execPath, [child]];
  // the child never calls exit: a worker pool or engine left open kept Deno's process running (killed at the timeout)
  const r = spawnSync(exe, args, { cwd: REPO, encoding: "utf8", timeout: 60_000 });
  assertEquals(r.status, 0, `the child ended by itself: ${r.signal ?? ""} ${r.stderr}`);
  const { code, err } = JSON.parse(r.stdout) as { code: number; err: string };
  assertEquals(code, 1, err);
  assert(/^kvasm: ParamError: port: 127\.0\.0\.1:\d+ is already in use/.test(err), err);
});

test("cli: an unknown flag names itself and the closest known flag (exit 1)", async () => {
  const io = capture();
  assertEquals(await main(["generate", "--temprature", "0"], io), 1);
  assert(/ParamError: --temprature: unknown flag; did you mean --temperature\?/.test(io.stderr), io.stderr);
  const serve = capture();
  assertEquals(await main(["serve", "--prot", "8080"], serve), 1);
  assert(/--prot: unknown flag; did you mean --port\?/.test(serve.stderr), serve.stderr);
});

test("cli: a command or help topic naming an Object.prototype key is an unknown command, not a TypeError", async () => {
  for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
    const io = capture();
    assertEquals(await main([name], io), 2, name);
    assert(io.stderr.startsWith(`kvasm: unknown command ${JSON.stringify(name)}`), io.stderr);
    const help = capture();
    assertEquals(await main(["help", name], help), 0, `help ${name}`);
    assert(help.stdout.includes("usage: kvasm COMMAND"), help.stdout);
    const flag = capture();
    assertEquals(await main(["generate", `--${name}`], flag), 1, `--${name}`);
    assert(flag.stderr.includes(`ParamError: --${name}: unknown flag`), flag.stderr);
  }
  const quantize = capture();
  assertEquals(await main(["quantize", "--model", "/nonexistent.gguf", "--out", "/nonexistent.out", "--type", "constructor"], quantize), 1);
  assert(/ParamError: --type: must be one of/.test(quantize.stderr), quantize.stderr);
});

test("cli: --help and -h on every command exit 0 with its flags; --version prints package.json's version", async () => {
  for (const cmd of ["generate", "chat", "serve", "quantize"]) {
    for (const h of ["--help", "-h"]) {
      const io = capture();
      assertEquals(await main([cmd, h], io), 0, `${cmd} ${h}`);
      assert(io.stdout.startsWith(`usage: kvasm ${cmd}`) && /--model /.test(io.stdout), io.stdout);
    }
  }
  const top = capture();
  assertEquals(await main(["--help"], top), 0);
  for (const cmd of ["generate", "chat", "serve", "quantize"]) assert(top.stdout.includes(`\n  ${cmd} `), top.stdout);
  const v = capture();
  assertEquals(await main(["--version"], v), 0);
  assertEquals(v.stdout, `kvasm ${readJSON<{ version: string }>(path.join(REPO, "package.json")).version}\n`);
});

test("cli: numeric flags are range-checked by name before anything loads; a flag missing its value is an error", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--beams", "-1"], /ParamError: --beams: must be an integer >= 1, got -1/],
    [["--max-tokens", "ten"], /ParamError: --max-tokens: must be an integer >= 0, got "ten"/],
    [["--top-p", "0"], /ParamError: --top-p: must be a number > 0 and <= 1, got 0/],
    [["--temperature=-0.5"], /ParamError: --temperature: must be a number >= 0, got -0.5/],
    // decimal digits only: Number() took "0x10" for 16, "1e3" for 1000, " 8" for 8
    [["--max-tokens", "0x10"], /ParamError: --max-tokens: must be an integer >= 0 in decimal digits, got "0x10"/],
    [["--max-tokens", "1e3"], /ParamError: --max-tokens: must be an integer >= 0 in decimal digits, got "1e3"/],
    [["--max-tokens", " 8"], /ParamError: --max-tokens: must be an integer >= 0 in decimal digits, got " 8"/],
    [["--max-tokens", "0b11"], /ParamError: --max-tokens: must be an integer >= 0 in decimal digits, got "0b11"/],
    [["--max-tokens", "1.5"], /ParamError: --max-tokens: must be an integer >= 0, got "1.5"/],
    [["--temperature", "5e-1"], /ParamError: --temperature: must be a number >= 0 in decimal digits, got "5e-1"/],
    [["--temperature", "Infinity"], /ParamError: --temperature: must be a number >= 0, got "Infinity"/],
    // each thread is a Worker with its own memory (1000 added 9 GiB)
    [["--threads", "1000"], /ParamError: --threads: must be an integer >= 1 and <= 256, got 1000/],
    [["--prompt", "--hello"], /ParamError: --prompt: needs a value/],
    [["--json=yes"], /ParamError: --json: takes no value/],
    [["stray"], /ParamError: stray: unexpected argument/],
  ];
  for (const [args, re] of cases) {
    const io = capture();
    // the model path does not exist: a flag error must come first
    assertEquals(await main(["generate", "--model", "/nonexistent.gguf", "--prompt", "x", ...args], io), 1, args.join(" "));
    assert(re.test(io.stderr), `${args.join(" ")} -> ${io.stderr}`);
  }
});

test("cli: the top-level help's first example runs as written, from any directory (the bundled model, no --model)", async () => {
  const help = capture();
  assertEquals(await main(["--help"], help), 0);
  const first = help.stdout.split("\n").find((l) => l.trim().startsWith("kvasm generate"))!;
  // it used to name --model stories260K.gguf, a file a new user does not have
  assert(!/--model/.test(first), first);
  const args = first.trim().split(/\s{2,}/)[0].match(/"[^"]*"|\S+/g)!.slice(1).map((a) => a.replace(/^"|"$/g, ""));
  const io = capture();
  assertEquals(await main([...args, "--threads", "1"], io), 0, io.stderr);
  assert(io.stdout.startsWith("Once upon a time") && io.stdout.length > "Once upon a time".length, io.stdout);
});

const NO_TOKENIZER = sharedPath("models", "stories260K", "stories260K.bin");

testShared("cli: a model without a tokenizer refuses --prompt before anything reaches stdout", [NO_TOKENIZER], async () => {
  // the plain path and the engine's (--n 2) alike: the prompt used to be echoed first, so the error followed it on one line
  for (const extra of [[], ["--n", "2"]]) {
    const io = capture();
    const args = ["generate", "--model", NO_TOKENIZER, "--prompt", "hi", "--max-tokens", "2", "--threads", "1", ...extra];
    assertEquals(await main(args, io), 1, extra.join(" "));
    assertEquals(io.stdout, "", extra.join(" "));
    assert(/^kvasm: ParamError: prompt: .*stories260K\.bin carries no tokenizer; pass one \(--tokenizer/.test(io.stderr), io.stderr);
  }
});

test("cli: a reader that closes stdout (| head) ends generate quietly with exit 0, before --max-tokens", async () => {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const [exe, pre] = deno ? [deno.execPath(), ["run", "-A"]] : [process.execPath, []];
  // the bundled model, one thread: 5000 tokens take seconds, so the stats line shows whether it ran to the end
  const args = [...pre, path.join(REPO, "src", "cli.ts"), "generate", "--prompt", "Once", "--max-tokens", "5000", "--threads", "1"];
  const child = spawn(exe, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => stderr += d);
  // the first bytes of text, then the reader goes away, as head -c does
  await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
  child.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  assertEquals(code, 0, stderr);
  assert(!/BrokenPipe|EPIPE|error/i.test(stderr), `no error or stack trace: ${stderr}`);
  assert(!/decode \d+ tokens/.test(stderr), `it stopped when the pipe closed, not at --max-tokens: ${stderr}`);
});

const TOK512_BIN = sharedPath("models", "stories260K", "tok512.bin");

testShared(
  "cli: quantize --out that cannot be written is a ParamError on --out (exit 1), not a stack trace",
  [NO_TOKENIZER, TOK512_BIN],
  async () => {
    const cases: Array<[string, RegExp]> = [
      [
        "/nonexistent/kvasm/q.gguf",
        /^kvasm: ParamError: --out: cannot write \/nonexistent\/kvasm\/q\.gguf: its directory does not exist\n$/,
      ],
      [os.tmpdir(), /^kvasm: ParamError: --out: cannot write .*: it is a directory \(give a file name/],
    ];
    for (const [out, re] of cases) {
      const io = capture();
      assertEquals(
        await main(["quantize", "--model", NO_TOKENIZER, "--tokenizer", TOK512_BIN, "--out", out, "--type", "Q8_0"], io),
        1,
        out,
      );
      assert(re.test(io.stderr), io.stderr);
    }
  },
);

testShared("cli: quantize --out naming the input file (--model) is a ParamError, and the input is left whole", [NO_TOKENIZER], async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-quant-same-"));
  try {
    const input = path.join(dir, "model.bin");
    fs.copyFileSync(NO_TOKENIZER, input);
    fs.symlinkSync(input, path.join(dir, "link.bin"));
    // the same path, another spelling of it, and a link to it: opened for writing, each emptied the input before it was read
    for (const out of [input, path.join(dir, ".", "model.bin"), path.join(dir, "link.bin")]) {
      const io = capture();
      assertEquals(await main(["quantize", "--model", input, "--out", out, "--type", "Q8_0"], io), 1, out);
      assert(/^kvasm: ParamError: --out: .* is the input file \(--model\): give another path/.test(io.stderr), io.stderr);
      assertEquals(fs.statSync(input).size, fs.statSync(NO_TOKENIZER).size, `${out}: the input is whole`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("cli: a quantize that fails part-way (a Q8_0 input) leaves no partial output file", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-quant-fail-"));
  try {
    const out = path.join(dir, "q.gguf");
    const io = capture();
    const input = path.join(REPO, "models", "stories260K-q8_0.gguf"); // quantized already: refused at its first tensor
    assertEquals(await main(["quantize", "--model", input, "--out", out, "--type", "Q4_0"], io), 1);
    assert(/^kvasm: UnsupportedError: tensor "[^"]+" is Q8_0; kvasm quantizes from F32, F16 or BF16 only/.test(io.stderr), io.stderr);
    // it left a 14,240-byte file of a header and metadata, which loads as a broken model
    assert(!fs.existsSync(out), "no partial output");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

testShared("cli: quantize of a llama2.c .bin without --tokenizer is a ParamError naming --tokenizer, and writes nothing", [
  NO_TOKENIZER,
], async () => {
  // it wrote a GGUF with no vocabulary, which `generate --prompt` then refused ("carries no tokenizer")
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-quant-notok-"));
  try {
    const out = path.join(dir, "q.gguf");
    const io = capture();
    assertEquals(await main(["quantize", "--model", NO_TOKENIZER, "--out", out, "--type", "Q8_0"], io), 1);
    assert(/^kvasm: ParamError: --tokenizer: .*stories260K\.bin carries no tokenizer: pass its tokenizer\.bin/.test(io.stderr), io.stderr);
    assert(!fs.existsSync(out), "no output file");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const STORIES_HF = sharedPath("models", "stories260K", "hf");
const TOK512_MODEL = sharedPath("models", "stories260K", "tok512.model");

testShared("cli: quantize of a Hugging Face checkpoint writes a GGUF that generates the checkpoint's own greedy ids", [
  STORIES_HF,
  TOK512_MODEL,
], async () => {
  // it copied the Hugging Face names and keys, and generate refused the file ("general.architecture" is missing)
  const greedy = async (...model: string[]) => {
    const io = capture();
    const args = ["generate", ...model, "--prompt", "Once upon a time", "--max-tokens", "32", "--temperature", "0", "--threads", "1"];
    assertEquals(await main([...args, "--json"], io), 0, io.stderr);
    return JSON.parse(io.stdout.trim()).tokens as number[];
  };
  const want = await greedy("--model", STORIES_HF, "--tokenizer", TOK512_MODEL);
  assertEquals(want.length, 32);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-quant-hf-"));
  try {
    // a directory with its own tokenizer.model beside config.json: embedded without --tokenizer, as loading finds it
    const own = path.join(dir, "own");
    fs.mkdirSync(own);
    for (const f of ["config.json", "model.safetensors"]) fs.symlinkSync(path.join(STORIES_HF, f), path.join(own, f));
    fs.symlinkSync(TOK512_MODEL, path.join(own, "tokenizer.model"));
    const cases: Array<[string, string[]]> = [
      [own, []],
      [path.join(STORIES_HF, "model.safetensors"), ["--tokenizer", TOK512_MODEL]], // the .safetensors beside its config.json
    ];
    for (const [input, extra] of cases) {
      const out = path.join(dir, "q8_0.gguf"), io = capture();
      assertEquals(await main(["quantize", "--model", input, "--out", out, "--type", "Q8_0", ...extra], io), 0, io.stderr);
      assert(/^wrote .*q8_0\.gguf \(Q8_0\)/.test(io.stderr), io.stderr);
      assertEquals(await greedy("--model", out), want, input);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("cli: quantize of a Hugging Face directory whose tokenizer is a BPE tokenizer.json warns that the file carries none", async () => {
  // kvasm writes no GGUF BPE vocabulary (merges, pre-tokenizer) yet: the weights are written, and stderr says how to run them
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-quant-bpe-"));
  try {
    for (const f of ["config.json", "model.safetensors"]) {
      fs.symlinkSync(path.join(REPO, "tests", "fixtures", "llama", f), path.join(dir, f));
    }
    const bpe = { model: { type: "BPE", vocab: { a: 0, b: 1, ab: 2 }, merges: ["a b"] }, pre_tokenizer: { type: "ByteLevel" } };
    fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(bpe));
    const out = path.join(dir, "q8_0.gguf"), io = capture();
    assertEquals(await main(["quantize", "--model", dir, "--out", out, "--type", "Q8_0"], io), 0, io.stderr);
    assert(
      /^kvasm: warning: .*tokenizer\.json is a tokenizer\.json, which kvasm cannot embed .* pass --tokenizer /.test(io.stderr),
      io.stderr,
    );
    // it loads and runs on token ids (random weights: Q8_0 and F32 part ways within a few ids, so no comparison here)
    const run = capture();
    const args = ["generate", "--model", out, "--prompt-ids", "1,2", "--max-tokens", "4", "--temperature", "0", "--threads", "1"];
    assertEquals(await main([...args, "--json"], run), 0, run.stderr);
    assertEquals(JSON.parse(run.stdout.trim()).tokens.length, 4);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const CHAT_MODEL = sharedPath("models", "stories260K", "stories260K.gguf");

testShared("cli: chat through piped stdin keeps the conversation: the second turn's prompt holds the first", [CHAT_MODEL], async () => {
  const system = "You tell stories.", user1 = "Tell me about a cat.", user2 = "And then?";
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const [exe, pre] = deno ? [deno.execPath(), ["run", "-A"]] : [process.execPath, []];
  const args = [
    ...pre,
    path.join(REPO, "src", "cli.ts"),
    "chat",
    "--model",
    CHAT_MODEL,
    "--temperature",
    "0",
    "--max-tokens",
    "24",
    "--threads",
    "1",
    "--system",
    system,
  ];
  const r = spawnSync(exe, args, { input: `${user1}\n${user2}\n`, encoding: "utf8", cwd: REPO, timeout: 120_000 });
  assertEquals(r.status, 0, r.stderr);
  const counts = [...r.stderr.matchAll(/\[prompt (\d+) tokens/g)].map((m) => Number(m[1]));
  assertEquals(counts.length, 2, r.stderr);

  // what the model must have been given: the template's rendering of the whole conversation, first reply included
  const model = await loadModel(CHAT_MODEL);
  const engine = new Engine(model);
  try {
    const template = ChatTemplate.forModel(model);
    const first = [{ role: "system", content: system }, { role: "user", content: user1 }];
    const firstIds = chatPromptIds(model, template, first);
    const req = engine.submit({ prompt: firstIds, maxTokens: 24, temperature: 0, stop: ["<|im_end|>", "<|im_start|>"] });
    const reply1 = (await req.done).choices[0].text;
    assert(r.stdout.startsWith(reply1 + "\n"), `first reply ${JSON.stringify(reply1)} vs stdout ${JSON.stringify(r.stdout)}`);
    const second = chatPromptIds(model, template, [...first, { role: "assistant", content: reply1 }, { role: "user", content: user2 }]);
    assertEquals(counts, [firstIds.length, second.length]);
    assert(second.length > firstIds.length + 10, "the second prompt is longer by the first reply and the second turn");
  } finally {
    await engine.close();
    await model.close();
  }
});

testShared(
  "cli: chat on a file whose chat template does not parse is one typed error and exit status 1, on two threads",
  [CHAT_MODEL],
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-chat-"));
    try {
      const file = path.join(dir, "bad-template.gguf");
      fs.writeFileSync(file, await withTemplate(CHAT_MODEL, "{% if %}"));
      const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
      const [exe, pre] = deno ? [deno.execPath(), ["run", "-A"]] : [process.execPath, []];
      const args = [...pre, path.join(REPO, "src", "cli.ts"), "chat", "--model", file, "--threads", "2"];
      const r = spawnSync(exe, args, { input: "hi\n", encoding: "utf8", cwd: REPO, timeout: 60_000 });
      assertEquals(r.status, 1, `exit status (null: still running at the timeout)\n${r.stderr}`);
      assert(/chat_template: does not parse/.test(r.stderr), r.stderr);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
