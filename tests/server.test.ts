/**
 * The OpenAI-compatible server end to end: the official `openai` client
 * against a server on a loopback port, concurrency, validation, limits and
 * client disconnects, on stories260K.
 */
import OpenAI from "openai";
import { assert, assertEquals, readJSON, sharedPath, testShared, waitFor } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { createHandler, type KvasmHandler } from "../src/server/handler.ts";
import { type RunningServer, serve } from "../src/server/serve.ts";

const MODEL = sharedPath("models/stories260K/stories260K.gguf");
const GOLDEN = sharedPath("golden/stories260K.json");

interface Setup {
  model: Model;
  handler: KvasmHandler;
  server: RunningServer;
  client: OpenAI;
}
let setup: Promise<Setup> | null = null;

function started(): Promise<Setup> {
  setup ??= (async () => {
    const model = await loadModel(MODEL, { maxSequences: 16 });
    const handler = createHandler(model, { modelId: "stories260K" });
    const server = await serve(handler.fetch, { host: "127.0.0.1", port: 0 });
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
    return { model, handler, server, client };
  })();
  return setup;
}

function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
}

testShared("openai client: greedy completion equals the llama.cpp golden", [MODEL, GOLDEN], async () => {
  const { client } = await started();
  const golden = readJSON<Array<{ model: string; text: string; prompt: string }>>(GOLDEN).find((g) =>
    g.model === "stories260K/stories260K.gguf"
  )!;
  const r = await client.completions.create({ model: "stories260K", prompt: golden.prompt, max_tokens: 64, temperature: 0 });
  const text = r.choices[0].text;
  assert(text.length > 100, `completion too short: ${JSON.stringify(text)}`);
  assert(golden.text.startsWith(golden.prompt + text), `greedy output departs from the golden:\n${text}`);
  assertEquals(r.choices[0].finish_reason, "length");
  assertEquals(r.usage, { prompt_tokens: 5, completion_tokens: 64, total_tokens: 69 });
});

testShared("openai client: streamed chat equals the non-streamed chat for the same seed", [MODEL], async () => {
  const { client } = await started();
  const messages = [{ role: "system" as const, content: "You tell stories." }, { role: "user" as const, content: "Tell me about a cat." }];
  const whole = await client.chat.completions.create({ model: "stories260K", messages, max_tokens: 48, temperature: 0.9, seed: 1234 });
  const stream = await client.chat.completions.create({
    model: "stories260K",
    messages,
    max_tokens: 48,
    temperature: 0.9,
    seed: 1234,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "", finish: string | null = null, usage: unknown = null, role: string | undefined;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    role ??= c.delta.role;
    text += c.delta.content ?? "";
    finish = c.finish_reason ?? finish;
  }
  assertEquals(role, "assistant");
  assert(text.length > 0, "empty stream");
  assertEquals(text, whole.choices[0].message.content);
  assertEquals(finish, whole.choices[0].finish_reason);
  assertEquals(usage, whole.usage);
});

testShared("n, logprobs and stop map onto the sampler", [MODEL], async () => {
  const { client } = await started();
  const r = await client.completions.create({
    model: "stories260K",
    prompt: "Once upon a time",
    max_tokens: 40,
    temperature: 0,
    logprobs: 3,
    stop: ["Lily"],
  });
  const c = r.choices[0];
  assertEquals(c.text, ", there was a little girl named ");
  assertEquals(c.finish_reason, "stop");
  const lp = c.logprobs!;
  assertEquals(lp.tokens!.join(""), c.text + "Lily".slice(0, lp.tokens!.join("").length - c.text.length));
  for (const top of lp.top_logprobs!) assertEquals(Object.keys(top!).length, 3);
  const chat = await client.chat.completions.create({
    model: "stories260K",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 8,
    n: 3,
    seed: 7,
    logprobs: true,
    top_logprobs: 2,
  });
  assertEquals(chat.choices.map((c) => c.index), [0, 1, 2]);
  for (const ch of chat.choices) {
    assertEquals(ch.logprobs!.content!.length, 8);
    for (const t of ch.logprobs!.content!) assert(t.logprob <= 0 && t.top_logprobs.length === 2, "logprob entry");
  }
  assertEquals(chat.usage!.completion_tokens, 24);
});

testShared("16 concurrent streaming clients each get exactly what they get alone", [MODEL], async () => {
  const { client, handler } = await started();
  const prompts = Array.from(
    { length: 16 },
    (_, i) => ["Once upon a time", "The dog", "Lily wanted", "One day, a bird"][i % 4] + " ".repeat(i % 3),
  );
  const params = (i: number) => ({ model: "stories260K", prompt: prompts[i], max_tokens: 24, temperature: 0.8, seed: 100 + i });
  const alone: string[] = [];
  for (let i = 0; i < 16; i++) alone.push((await client.completions.create(params(i))).choices[0].text);
  const together = await Promise.all(prompts.map(async (_, i) => {
    let text = "";
    for await (const chunk of await client.completions.create({ ...params(i), stream: true })) text += chunk.choices[0]?.text ?? "";
    return text;
  }));
  assertEquals(together, alone);
  assert(await waitFor(() => handler.generator.activeSequences === 0 && handler.pending === 0, 5000) >= 0, "sequences left behind");
});

testShared("bad requests get 400/404/413 naming the problem; the server keeps serving", [MODEL], async () => {
  const { server, client } = await started();
  const url = `${server.url}/v1/completions`;
  const cases: Array<[string, number, RegExp]> = [
    ["{not json", 400, /not valid JSON/],
    [JSON.stringify({ model: "gpt-9", prompt: "x" }), 404, /gpt-9/], // OpenAI: model_not_found
    [JSON.stringify({ prompt: "x", max_tokens: -1 }), 400, /max_tokens/],
    [JSON.stringify({ prompt: "x", temperature: "hot" }), 400, /temperature/],
    [JSON.stringify({ prompt: "x", top_p: 0 }), 400, /top_p/],
    // OpenAI documents both penalties in [-2, 2]
    [JSON.stringify({ prompt: "x", presence_penalty: 2.5 }), 400, /^presence_penalty: must be in \[-2, 2\], got 2.5$/],
    [JSON.stringify({ prompt: "x", frequency_penalty: -3 }), 400, /^frequency_penalty: must be in \[-2, 2\], got -3$/],
    [JSON.stringify({ prompt: "x", logit_bias: { "99999": 1 } }), 400, /99999/],
    [JSON.stringify({ max_tokens: 3 }), 400, /prompt/],
    // booleans through errors.ts optionalBoolean, as the engine's own options
    [JSON.stringify({ prompt: "x", stream: "true" }), 400, /^stream: must be a boolean, got "true"$/],
    [
      JSON.stringify({ prompt: "x", stream: true, stream_options: { include_usage: "yes" } }),
      400,
      /^stream_options\.include_usage: must be a boolean/,
    ],
    [JSON.stringify({ prompt: "x".repeat(2 << 20) }), 413, /limit/],
  ];
  for (const [body, status, re] of cases) {
    const r = await post(url, body);
    const json = await r.json() as { error: { message: string } };
    assertEquals(r.status, status, body.slice(0, 60));
    assert(re.test(json.error.message), `${body.slice(0, 60)} -> ${json.error.message}`);
  }
  const chat = await post(`${server.url}/v1/chat/completions`, JSON.stringify({ messages: [{ role: "wizard", content: "x" }] }));
  assertEquals(chat.status, 400);
  assertEquals(((await chat.json()) as { error: { param: string } }).error.param, "messages[0].role");
  const chatLp = await post(
    `${server.url}/v1/chat/completions`,
    JSON.stringify({ messages: [{ role: "user", content: "x" }], logprobs: 1 }),
  );
  assertEquals(chatLp.status, 400);
  assertEquals(((await chatLp.json()) as { error: { message: string } }).error.message, "logprobs: must be a boolean, got 1");
  const usage = await post(url, JSON.stringify({ prompt: "x", stream: true, stream_options: { include_usage: 0 } }));
  assertEquals(usage.status, 400);
  assertEquals(((await usage.json()) as { error: { param: string } }).error.param, "stream_options.include_usage");
  assertEquals((await fetch(`${server.url}/v1/nope`)).status, 404);
  const ok = await client.completions.create({ model: "stories260K", prompt: "Once upon a time", max_tokens: 4, temperature: 0 });
  assertEquals(ok.choices[0].text, ", there was a");
  const models = await client.models.list();
  assertEquals(models.data.map((m) => m.id), ["stories260K"]);
});

testShared("API key: 401 without it, served with it", [MODEL], async () => {
  const { model, handler } = await started();
  const keyed = createHandler(model, { generator: handler.generator, apiKey: "s3cret", modelId: "stories260K" });
  const body = JSON.stringify({ prompt: "Once upon a time", max_tokens: 2, temperature: 0 });
  const req = (auth?: string) =>
    keyed.fetch(new Request("http://127.0.0.1/v1/completions", { method: "POST", body, headers: auth ? { authorization: auth } : {} }));
  const none = await req();
  assertEquals(none.status, 401);
  assertEquals(((await none.json()) as { error: { type: string } }).error.type, "authentication_error");
  assertEquals((await req("Bearer wrong")).status, 401);
  const ok = await req("Bearer s3cret");
  assertEquals(ok.status, 200);
  assertEquals(((await ok.json()) as { choices: Array<{ text: string }> }).choices[0].text, ", there");
});

testShared("a full queue answers 429 with Retry-After and recovers", [MODEL], async () => {
  const { model, handler } = await started();
  const small = createHandler(model, { generator: handler.generator, maxPending: 2, modelId: "stories260K" });
  const body = JSON.stringify({ prompt: "Once upon a time", max_tokens: 200, stream: true });
  const open = [
    await small.fetch(new Request("http://127.0.0.1/v1/completions", { method: "POST", body })),
    await small.fetch(new Request("http://127.0.0.1/v1/completions", { method: "POST", body })),
  ];
  const busy = await small.fetch(new Request("http://127.0.0.1/v1/completions", { method: "POST", body }));
  assertEquals(busy.status, 429);
  assertEquals(busy.headers.get("retry-after"), "1");
  assertEquals(((await busy.json()) as { error: { code: string } }).error.code, "queue_full");
  for (const r of open) await r.body!.cancel();
  assert(await waitFor(() => small.pending === 0 && handler.generator.activeSequences === 0, 5000) >= 0, "cancelled streams not released");
  const again = await small.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 3, temperature: 0 }),
    }),
  );
  assertEquals(again.status, 200);
});

testShared("a full engine queue answers 429 with retryAfterSeconds", [MODEL], async () => {
  // one sequence, one waiting request: the third finds no room in the engine's queue (not the handler's maxPending)
  const model = await loadModel(MODEL, { maxSequences: 1 });
  try {
    const h = createHandler(model, { engine: { maxQueue: 1 }, retryAfterSeconds: 7, modelId: "stories260K" });
    const body = JSON.stringify({ prompt: "Once upon a time", max_tokens: 200, stream: true });
    const post = () => h.fetch(new Request("http://127.0.0.1/v1/completions", { method: "POST", body }));
    const open = [await post(), await post()];
    const busy = await post();
    assertEquals(busy.status, 429);
    assertEquals(busy.headers.get("retry-after"), "7");
    assertEquals(((await busy.json()) as { error: { code: string } }).error.code, "queue_full");
    for (const r of open) await r.body!.cancel();
    assert(await waitFor(() => h.pending === 0 && h.generator.activeSequences === 0, 5000) >= 0, "cancelled streams not released");
  } finally {
    await model.close();
  }
});

testShared("a client disconnecting mid-stream frees its sequence", [MODEL], async () => {
  const { server, handler } = await started();
  const abort = new AbortController();
  const r = await fetch(`${server.url}/v1/chat/completions`, {
    method: "POST",
    signal: abort.signal,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "Tell a long story" }], max_tokens: 400, stream: true }),
  });
  const reader = r.body!.getReader();
  await reader.read();
  assertEquals(handler.generator.activeSequences, 1);
  abort.abort();
  await reader.cancel().catch(() => {});
  assert(
    await waitFor(() => handler.generator.activeSequences === 0 && handler.pending === 0, 5000) >= 0,
    "the disconnected client's sequence is still held",
  );
  const after = await post(`${server.url}/v1/completions`, JSON.stringify({ prompt: "Once upon a time", max_tokens: 3, temperature: 0 }));
  assertEquals(after.status, 200);
});

testShared("server shuts down", [MODEL], async () => {
  const { server, handler, model } = await started();
  await server.close();
  await handler.close();
  await model.close();
  setup = null;
});
