/**
 * A misspelt option name is a ParamError naming it (and, within two edits, the name it probably meant) at every
 * public entry point that takes an options object: generate, Sampler, Engine and submit, loadModel (and its
 * attention and limits), createHandler (and its engine, limits and chatTemplateLimits), serve, createEdgeHandler, the
 * ops API (options and arguments), Tokenizer.encode, TextStream, quantizeModel, openModelFile, readGGUF, WasmBackend
 * and ThreadedWasmBackend. Each accepts every name its list holds (undefined values included), and the server still
 * ignores a request's unknown fields, as OpenAI's API does.
 */
import * as fs from "node:fs";
import { assert, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";
import { checkOptionNames, ContextLengthError, ParamError } from "../src/errors.ts";
import { LOAD_OPTION_NAMES, loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { generate, GENERATE_OPTION_NAMES } from "../src/generate.ts";
import { Sampler } from "../src/sampling/sampler.ts";
import { SAMPLING_PARAM_NAMES } from "../src/sampling/params.ts";
import { Engine, ENGINE_OPTION_NAMES } from "../src/engine/engine.ts";
import { REQUEST_PARAM_NAMES } from "../src/engine/request.ts";
import { createHandler, HANDLER_OPTION_NAMES } from "../src/server/handler.ts";
import { serve } from "../src/server/serve.ts";
import { SERVE_OPTION_NAMES } from "../src/server/serve-types.ts";
import { createEdgeHandler } from "../src/edge.ts";
import * as ops from "../src/ops.ts";
import { ENCODE_OPTION_NAMES, TextStream } from "../src/tokenizer/tokenizer.ts";
import { quantizeModel } from "../src/quant/quantize.ts";
import { BytesSink } from "../src/formats/gguf-writer.ts";
import { openModelFile } from "../src/formats/open.ts";
import { readGGUF } from "../src/formats/gguf.ts";
import { DEFAULT_HEADER_LIMITS } from "../src/formats/types.ts";
import { BytesSource } from "../src/io/source.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";

const MODEL = sharedPath("models/stories260K/stories260K-q8_0.gguf");

let loaded: Promise<Model> | null = null;
const model = () => loaded ??= loadModel(MODEL, { maxSequences: 4, threads: 1 });

/** Every listed name, each undefined: a known name with no value must pass (the caller's default applies). */
function everyName(names: ReadonlyArray<string | number | symbol>): Record<string, undefined> {
  return Object.fromEntries(names.map((k) => [String(k), undefined]));
}

const refused = (param: string, key: string, meant: string) =>
  new RegExp(`^${param}: unknown option "${key}" \\(did you mean "${meant}"\\?\\)$`);

test("checkOptionNames: the unknown key, the name within two edits it probably meant, else the names taken", async () => {
  const names = ["temperature", "topK", "topP", "seed", "n"] as const;
  const check = (opts: unknown) => () => checkOptionNames("f", opts as Record<string, unknown>, names as never);
  await assertRejects(check({ temprature: 1 }), ParamError, refused("f", "temprature", "temperature"));
  await assertRejects(check({ tmeperature: 1 }), ParamError, refused("f", "tmeperature", "temperature")); // a swap: one edit
  await assertRejects(check({ topk: 1 }), ParamError, refused("f", "topk", "topK")); // letter case alone
  await assertRejects(check({ seeds: 1 }), ParamError, refused("f", "seeds", "seed"));
  // nothing near: the names it takes (a one-letter key is near nothing: "x" is one edit from "n")
  await assertRejects(check({ x: 1 }), ParamError, /^f: unknown option "x" \(options: temperature, topK, topP, seed, n\)$/);
  await assertRejects(check({ maxTokens: 1 }), ParamError, /unknown option "maxTokens" \(options: /);
  // an unknown key is refused even when its value is undefined; a known one with undefined passes
  await assertRejects(check({ temperature: 1, temprature: undefined }), ParamError, /"temprature"/);
  check({ temperature: undefined, topK: 0, seed: 1 })();
  check(undefined)();
  check({})();
  for (const bad of [null, [], 3, "temperature"]) await assertRejects(check(bad), ParamError, /^f: options must be an object, got /);
  const e = await assertRejects(check({ temprature: 1 }), ParamError);
  assertEquals((e as ParamError).param, "f");
  assertEquals((e as ParamError).code, "params");
});

test("Sampler refuses a misspelt sampling field and takes every listed one", async () => {
  await assertRejects(() => new Sampler(32, { temprature: 0.5 } as never), ParamError, refused("sampling", "temprature", "temperature"));
  await assertRejects(() => new Sampler(32, { top_p: 0.5 } as never), ParamError, refused("sampling", "top_p", "topP"));
  const s = new Sampler(32, everyName(SAMPLING_PARAM_NAMES));
  assertEquals(s.params.temperature, 1);
  // fork copies the resolved params (the same names), so it passes the check
  assertEquals(s.fork(7).params.seed, 7);
});

testShared("generate and model.generate refuse a misspelt option before any token; every listed name is taken", [MODEL], async () => {
  const m = await model();
  const pages = m.sequences.freePages;
  await assertRejects(
    () => generate(m, "Once", { temprature: 0.5 } as never).next(),
    ParamError,
    refused("generate", "temprature", "temperature"),
  );
  await assertRejects(() => m.generate("Once", { maxToken: 2 } as never).next(), ParamError, refused("generate", "maxToken", "maxTokens"));
  assertEquals(m.sequences.freePages, pages, "no sequence was taken");
  const a = generate(m, "Once", { ...everyName(GENERATE_OPTION_NAMES), maxTokens: 4, temperature: 0 });
  let r = await a.next();
  while (!r.done) r = await a.next();
  assertEquals(r.value.tokens.length, 4);
});

testShared("Engine and submit refuse a misspelt option; every listed name is taken", [MODEL], async () => {
  const m = await model();
  await assertRejects(() => new Engine(m, { maxQueu: 4 } as never), ParamError, refused("Engine", "maxQueu", "maxQueue"));
  const engine = new Engine(m, everyName(ENGINE_OPTION_NAMES));
  try {
    await assertRejects(
      () => engine.submit({ prompt: "Once", temprature: 0.5 } as never),
      ParamError,
      refused("submit", "temprature", "temperature"),
    );
    await assertRejects(() => engine.submit({ prompt: "Once", beam: 2 } as never), ParamError, refused("submit", "beam", "beams"));
    await assertRejects(() => engine.submit(null as never), ParamError, /^submit: options must be an object, got null$/);
    assertEquals(engine.queueLength, 0, "nothing was queued");
    // every name, n > 1 included (each further choice's sampler is built from the request's sampling fields only)
    const res = await engine.submit({ ...everyName(REQUEST_PARAM_NAMES), prompt: "Once", maxTokens: 3, n: 2, temperature: 0.8, seed: 5 })
      .done;
    assertEquals(res.choices.map((c) => c.tokens.length), [3, 3]);
  } finally {
    await engine.close();
  }
});

test("loadModel refuses a misspelt option, in attention and limits too, before the file is opened", async () => {
  // a path that does not exist: the names are checked first, so the error is the option's, not the file's
  const nowhere = "/nonexistent/kvasm-option-names.gguf";
  await assertRejects(() => loadModel(nowhere, { thread: 2 } as never), ParamError, refused("loadModel", "thread", "threads"));
  await assertRejects(
    () => loadModel(nowhere, { contextLenght: 64 } as never),
    ParamError,
    refused("loadModel", "contextLenght", "contextLength"),
  );
  await assertRejects(() => loadModel(nowhere, { attention: { topk: 4 } } as never), ParamError, refused("attention", "topk", "topK"));
  await assertRejects(
    () => loadModel(nowhere, { limits: { maxArrayLenght: 9 } } as never),
    ParamError,
    refused("limits", "maxArrayLenght", "maxArrayLength"),
  );
  await assertRejects(() => loadModel(nowhere, null as never), ParamError, /^loadModel: options must be an object/);
  // undefined keeps a limit's default; null is no limit, refused (not taken for the default)
  await assertRejects(
    () => loadModel(nowhere, { limits: { maxArrayLength: null } } as never),
    ParamError,
    /^limits\.maxArrayLength: must be a positive integer, got null$/,
  );
});

test("loadModel refuses callbacks, a backend and a tokenizer of the wrong type, and over 256 threads, before the file is opened", async () => {
  const nowhere = "/nonexistent/kvasm-option-types.gguf";
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ onProgress: "x" }, /^onProgress: must be a function, got "x"$/],
    [{ onNotice: 1 }, /^onNotice: must be a function, got 1$/],
    // "backend.supportsWeight is not a function", at the load's first use of it
    [{ backend: {} }, /^backend: is not a Backend: it lacks init, alloc, write, upload and \d+ more/],
    [{ backend: 7 }, /^backend: must be one of wasm, webgpu, auto or a Backend object, got 7$/],
    [{ backend: "cuda" }, /^backend: must be one of wasm, webgpu, auto, got "cuda"$/],
    // a DataView TypeError from the tokenizer reader
    [{ tokenizer: 123 }, /^tokenizer: must be a file path, a file: URL or the file's bytes \(a Uint8Array\), got 123$/],
    [
      { tokenizer: new URL("https://example.com/tokenizer.json") },
      /^tokenizer: takes a file path, a file: URL or the file's bytes, not a URL/,
    ],
    // 1000 threads started 999 Workers (9 GiB resident)
    [{ threads: 1000 }, /^threads: must be at most 256 \(each thread is a Worker with its own memory\), got 1000$/],
  ];
  for (const [opts, re] of cases) {
    const e = await assertRejects(() => loadModel(nowhere, opts as never), ParamError, re);
    assertEquals((e as ParamError).param, Object.keys(opts)[0]);
  }
  await assertRejects(() => Promise.resolve(new ThreadedWasmBackend({ threads: 257 })), ParamError, /^threads: must be at most 256/);
});

testShared(
  "generate refuses an onToken that is no function, and an array-like prompt past the context before copying it",
  [MODEL],
  async () => {
    const m = await model();
    const pages = m.sequences.freePages;
    await assertRejects(() => generate(m, "Once", { onToken: "x" } as never).next(), ParamError, /^onToken: must be a function, got "x"$/);
    for (const length of [2 ** 32, 3e7]) {
      const t0 = performance.now();
      // { length: 2 ** 32 } was a RangeError; { length: 3e7 } copied 231 MiB in 2.7 s before the typed error
      await assertRejects(
        () => generate(m, { length } as never).next(),
        ContextLengthError,
        new RegExp(`^prompt needs ${length} positions`),
      );
      assert(performance.now() - t0 < 200, `refused in ${performance.now() - t0} ms`);
    }
    await assertRejects(() => generate(m, { length: NaN } as never).next(), ParamError, /^prompt: .*length .* got NaN$/);
    assertEquals(m.sequences.freePages, pages, "no sequence was taken");
  },
);

testShared("loadModel takes every listed name", [MODEL], async () => {
  const m = await loadModel(MODEL, {
    ...everyName(LOAD_OPTION_NAMES),
    threads: 1,
    attention: { topK: undefined },
    // undefined keeps each default (the limits spread undefined over the defaults and were refused as "got undefined")
    limits: { maxArrayLength: undefined, maxMetadataEntries: 1 << 16, maxStringBytes: undefined },
  });
  try {
    assertEquals(m.vocabSize, 512);
  } finally {
    await m.close();
  }
});

testShared(
  "createHandler refuses a misspelt option (engine, limits, chatTemplateLimits too); every listed name is taken",
  [MODEL],
  async () => {
    const m = await model();
    // "apikey" served the API with no key at all
    await assertRejects(() => createHandler(m, { apikey: "secret" } as never), ParamError, refused("createHandler", "apikey", "apiKey"));
    await assertRejects(() => createHandler(m, { engine: { maxQueu: 4 } } as never), ParamError, refused("engine", "maxQueu", "maxQueue"));
    await assertRejects(
      () => createHandler(m, { limits: { maxChoice: 4 } } as never),
      ParamError,
      refused("limits", "maxChoice", "maxChoices"),
    );
    await assertRejects(
      () => createHandler(m, { chatTemplateLimits: { timeoutMS: 9 } } as never),
      ParamError,
      refused("chatTemplateLimits", "timeoutMS", "timeoutMs"),
    );
    await assertRejects(
      () => createHandler(m, { chatTemplateLimits: { timeoutMs: null } } as never),
      ParamError,
      /^chatTemplateLimits\.timeoutMs: must be a positive integer, got null$/,
    );
    const handler = createHandler(m, {
      ...everyName(HANDLER_OPTION_NAMES),
      engine: everyName(ENGINE_OPTION_NAMES),
      limits: { maxChoices: 8 },
      // undefined keeps each default (these spread undefined over the defaults and were refused as "got undefined")
      chatTemplateLimits: { maxSteps: 100_000, maxOutputChars: undefined, timeoutMs: undefined },
    });
    try {
      assertEquals((await handler.fetch(new Request("http://kvasm.test/health"))).status, 200);
    } finally {
      await handler.close();
    }
  },
);

testShared("the server ignores a request's unknown fields, as OpenAI's API does", [MODEL], async () => {
  const handler = createHandler(await model());
  try {
    const post = (path: string, body: unknown) =>
      handler.fetch(
        new Request("http://kvasm.test" + path, {
          method: "POST",
          body: JSON.stringify(body),
          headers: { "content-type": "application/json" },
        }),
      );
    // OpenAI's own fields kvasm does not read, a client's extras, and a misspelling of one it does read
    const extra = { user: "u-1", service_tier: "auto", metadata: { a: "b" }, temprature: 5, topK: 3, client_trace: 1 };
    const r = await post("/v1/completions", { prompt: "Once", max_tokens: 3, temperature: 0, ...extra });
    assertEquals(r.status, 200, await r.clone().text());
    assertEquals((await r.json()).usage.completion_tokens, 3);
    const c = await post("/v1/chat/completions", { messages: [{ role: "user", content: "Hi" }], max_tokens: 2, temperature: 0, ...extra });
    assertEquals(c.status, 200, await c.clone().text());
    // the same answer with and without the extras: none of them reached the sampler
    const plain = await (await post("/v1/completions", { prompt: "Once", max_tokens: 3, temperature: 0.9, seed: 11 })).json();
    const withExtras = await (await post("/v1/completions", { prompt: "Once", max_tokens: 3, temperature: 0.9, seed: 11, ...extra }))
      .json();
    assertEquals(withExtras.choices[0].text, plain.choices[0].text);
  } finally {
    await handler.close();
  }
});

testShared("serve refuses a misspelt option before it listens; every listed name is taken", [MODEL], async () => {
  const handler = createHandler(await model());
  try {
    await assertRejects(() => serve(handler.fetch, { prot: 0 } as never), ParamError, refused("serve", "prot", "port"));
    await assertRejects(
      () => serve(handler.fetch, { idleTimeout: 5 } as never),
      ParamError,
      refused("serve", "idleTimeout", "idleTimeoutMs"),
    );
    const server = await serve(handler.fetch, { ...everyName(SERVE_OPTION_NAMES), port: 0 });
    try {
      assertEquals((await fetch(server.url + "/health")).status, 200);
    } finally {
      await server.close();
    }
  } finally {
    await handler.close();
  }
});

testShared("createEdgeHandler refuses a misspelt option, in load too, when it is made; every listed name is taken", [MODEL], async () => {
  const bytes = new Uint8Array(fs.readFileSync(MODEL));
  await assertRejects(
    () => createEdgeHandler({ model: bytes, laod: {} } as never),
    ParamError,
    refused("createEdgeHandler", "laod", "load"),
  );
  await assertRejects(
    () => createEdgeHandler({ model: bytes, apikey: "k" } as never),
    ParamError,
    refused("createEdgeHandler", "apikey", "apiKey"),
  );
  await assertRejects(
    () => createEdgeHandler({ model: bytes, load: { thread: 1 } } as never),
    ParamError,
    refused("load", "thread", "threads"),
  );
  // model and load are the edge handler's own: createHandler gets the rest, and would refuse them
  const edge = createEdgeHandler({ ...everyName(HANDLER_OPTION_NAMES), model: bytes, load: { threads: 1, maxSequences: 2 } });
  const h = await edge.ready();
  try {
    const r = await edge.fetch(
      new Request("http://edge.local/v1/completions", {
        method: "POST",
        body: JSON.stringify({ prompt: "Once", max_tokens: 2, temperature: 0 }),
      }),
    );
    assertEquals(r.status, 200, await r.clone().text());
  } finally {
    await h.close();
  }
});

test("ops refuse a misspelt option or argument name, before anything is allocated", async () => {
  const t = (shape: number[]) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (i % 7) / 7) });
  const qkv = { query: t([1, 4, 8]), key: t([1, 4, 8]), value: t([1, 4, 8]) };
  await assertRejects(
    () => ops.denseAttention(qkv, { relax: false } as never),
    ParamError,
    refused("denseAttention options", "relax", "relaxed"),
  );
  await assertRejects(
    () => ops.quantizeAsymU8({ x: t([16]) }, { Relaxed: false } as never),
    ParamError,
    refused("quantizeAsymU8 options", "Relaxed", "relaxed"),
  );
  // "casual" ran the operator unmasked
  await assertRejects(
    () => ops.denseAttention({ ...qkv, casual: true } as never),
    ParamError,
    refused("denseAttention", "casual", "causal"),
  );
  await assertRejects(
    () => ops.sparseTopK({ ...qkv, k: 2, num_chunk: 1 } as never),
    ParamError,
    refused("sparseTopK", "num_chunk", "num_chunks"),
  );
  await assertRejects(() => ops.aftSimpleDecoder({ dims: 4 } as never), ParamError, refused("aftSimpleDecoder", "dims", "dim"));
  // the options' names first, then the arguments'; what is not an object is still the arguments' own error
  await assertRejects(
    () => ops.linformer({} as never, { relaxd: true } as never),
    ParamError,
    refused("linformer options", "relaxd", "relaxed"),
  );
  await assertRejects(() => ops.quantizeAsymU8(null as never), ParamError, /^args: must be an object/);
  const dense = await ops.denseAttention({ ...qkv, causal: undefined }, { relaxed: undefined });
  const causal = await ops.denseAttention({ ...qkv, causal: true });
  assertEquals(dense.shape, [1, 4, 8]);
  assert(dense.data.some((x, i) => x !== causal.data[i]), "causal masks what dense attends");
});

testShared(
  "encode, TextStream, quantizeModel, openModelFile and readGGUF refuse a misspelt option; every listed name is taken",
  [MODEL],
  async () => {
    const m = await model();
    const tok = m.tokenizer;
    // "addBOS: false" prepended BOS unseen
    await assertRejects(() => tok.encode("Once", { addBOS: false } as never), ParamError, refused("encode", "addBOS", "addBos"));
    assertEquals(tok.encode("Once", everyName(ENCODE_OPTION_NAMES)), tok.encode("Once"));
    await assertRejects(
      () => new TextStream(tok, { skipLeadingSpaces: true } as never),
      ParamError,
      refused("TextStream", "skipLeadingSpaces", "skipLeadingSpace"),
    );
    new TextStream(tok, { skipLeadingSpace: undefined });
    const sink = new BytesSink();
    await assertRejects(
      () => quantizeModel({ input: m.file, output: sink, type: "Q8_0", tokenizerMetaData: [] } as never),
      ParamError,
      refused("quantizeModel", "tokenizerMetaData", "tokenizerMetadata"),
    );
    const bytes = new Uint8Array(fs.readFileSync(MODEL));
    const limits = { ...DEFAULT_HEADER_LIMITS, maxArrayLenght: 9 } as never;
    await assertRejects(() => openModelFile(bytes, limits), ParamError, refused("limits", "maxArrayLenght", "maxArrayLength"));
    await assertRejects(() => readGGUF(new BytesSource(bytes), limits), ParamError, refused("limits", "maxArrayLenght", "maxArrayLength"));
    const file = await readGGUF(new BytesSource(bytes), { ...DEFAULT_HEADER_LIMITS });
    assertEquals(file.tensors.size, m.file.tensors.size);
  },
);

test("WasmBackend and ThreadedWasmBackend refuse a misspelt option before anything starts; every listed name is taken", async () => {
  // "ggmlorder: true" summed in kvasm's order, "minwork: 0" kept the default threshold, both unseen
  await assertRejects(() => new WasmBackend({ ggmlorder: true } as never), ParamError, refused("WasmBackend", "ggmlorder", "ggmlOrder"));
  await assertRejects(
    () => new ThreadedWasmBackend({ threads: 2, minwork: 0 } as never),
    ParamError,
    refused("ThreadedWasmBackend", "minwork", "minWork"),
  );
  await assertRejects(() => new ThreadedWasmBackend(undefined as never), ParamError, /^threads: must be a positive integer/);
  assertEquals(new WasmBackend({ relaxed: undefined, shared: undefined, ggmlOrder: undefined }).name, "wasm");
  const every = {
    threads: 2,
    relaxed: undefined,
    ggmlOrder: undefined,
    minWork: 0,
    joinSpinMs: undefined,
    fallback: undefined,
    mergeMatmuls: undefined,
    workerURL: undefined,
  };
  assertEquals(new ThreadedWasmBackend(every).name, "wasm-threads");
});
