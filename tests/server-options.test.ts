/**
 * The server details a user meets first, through the handler's fetch (no socket needed): the served model id
 * (the file's stem by default, or an alias) and OpenAI's 404 model_not_found for any other name; CORS
 * (preflight and the headers on plain and streamed answers); and the one log line per request.
 */
import { assert, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { createHandler, fileStem, type KvasmHandler } from "../src/server/handler.ts";
import type { RequestLogEntry } from "../src/server/request-log.ts";
import { ParamError } from "../src/errors.ts";
import { serve } from "../src/server/serve.ts";

const MODEL = sharedPath("models/stories260K/stories260K-q8_0.gguf");
const BASE = "http://kvasm.test";

let loaded: Promise<Model> | null = null;
const model = () => loaded ??= loadModel(MODEL, { maxSequences: 4 });

function post(handler: KvasmHandler, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return handler.fetch(
    new Request(BASE + path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json", ...headers } }),
  );
}

const get = (handler: KvasmHandler, path: string, headers: Record<string, string> = {}) =>
  handler.fetch(new Request(BASE + path, { headers }));

test("server: a model's default id is its file's stem", () => {
  assertEquals(fileStem("/models/stories260K/stories260K-q8_0.gguf"), "stories260K-q8_0");
  assertEquals(fileStem("C:\\models\\tiny.Q4_K_M.gguf"), "tiny.Q4_K_M");
  assertEquals(fileStem("https://host/dl/stories260K.gguf?download=1"), "stories260K");
  assertEquals(fileStem("/models/hf-llama/"), "hf-llama");
  assertEquals(fileStem("<bytes>"), "");
});

testShared(
  "server: the file's stem is the model id: /v1/models and /health show it, requests naming it or none are served, others get 404",
  [MODEL],
  async () => {
    // no options at all: they are optional (a JavaScript caller leaving them out got a TypeError from opts.modelId)
    const handler = createHandler(await model());
    try {
      assertEquals(handler.modelId, "stories260K-q8_0");
      const list = await (await get(handler, "/v1/models")).json();
      assertEquals(list.data.map((m: { id: string }) => m.id), ["stories260K-q8_0"]);
      assertEquals((await (await get(handler, "/health")).json()).model, "stories260K-q8_0");
      assertEquals((await get(handler, "/v1/models/stories260K-q8_0")).status, 200);
      for (const named of [{ model: "stories260K-q8_0" }, {}]) {
        const r = await post(handler, "/v1/completions", { ...named, prompt: "Once", max_tokens: 2, temperature: 0 });
        assertEquals(r.status, 200, JSON.stringify(named));
        assertEquals((await r.json()).model, "stories260K-q8_0");
      }
      for (
        const [path, body] of [["/v1/completions", { model: "gpt-4o", prompt: "x" }], ["/v1/chat/completions", {
          model: "llama",
          messages: [{ role: "user", content: "x" }],
        }]] as const
      ) {
        const r = await post(handler, path, body);
        assertEquals(r.status, 404, path);
        const { error } = await r.json();
        assertEquals([error.type, error.code, error.param], ["invalid_request_error", "model_not_found", null]);
        assert(error.message.includes(JSON.stringify(body.model)) && error.message.includes('"stories260K-q8_0"'), error.message);
      }
      const one = await get(handler, "/v1/models/gpt-4o");
      assertEquals([one.status, (await one.json()).error.code], [404, "model_not_found"]);
    } finally {
      await handler.close();
    }
  },
);

testShared("server: an alias replaces the stem everywhere", [MODEL], async () => {
  const handler = createHandler(await model(), { modelId: "tiny-stories" });
  try {
    assertEquals((await (await get(handler, "/v1/models")).json()).data[0].id, "tiny-stories");
    assertEquals((await (await get(handler, "/health")).json()).model, "tiny-stories");
    assertEquals((await post(handler, "/v1/completions", { model: "tiny-stories", prompt: "Once", max_tokens: 1 })).status, 200);
    assertEquals((await post(handler, "/v1/completions", { model: "stories260K-q8_0", prompt: "Once", max_tokens: 1 })).status, 404);
  } finally {
    await handler.close();
  }
});

testShared("server: CORS preflight is answered (before the API key), and answers carry Access-Control-Allow-Origin", [MODEL], async () => {
  const origin = "https://app.example";
  const handler = createHandler(await model(), { cors: `${origin}, https://other.example`, apiKey: "k" });
  const open = createHandler(await model(), { cors: "*", generator: handler.generator });
  const none = createHandler(await model(), { generator: handler.generator });
  try {
    const preflight = (h: KvasmHandler, from: string) =>
      h.fetch(
        new Request(BASE + "/v1/chat/completions", {
          method: "OPTIONS",
          headers: {
            origin: from,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
          },
        }),
      );
    const p = await preflight(handler, origin);
    assertEquals(p.status, 204);
    assertEquals(p.headers.get("access-control-allow-origin"), origin);
    assert(/POST/.test(p.headers.get("access-control-allow-methods") ?? ""), "methods");
    assertEquals(p.headers.get("access-control-allow-headers"), "authorization, content-type");
    assert(/Origin/.test(p.headers.get("vary") ?? ""), "a per-origin answer says it varies by Origin");
    assertEquals((await preflight(handler, "https://evil.example")).headers.get("access-control-allow-origin"), null);
    assertEquals((await preflight(open, "https://anyone.example")).headers.get("access-control-allow-origin"), "*");
    assertEquals((await preflight(none, origin)).headers.get("access-control-allow-origin"), null);

    const auth = { origin, authorization: "Bearer k" };
    const plain = await post(handler, "/v1/completions", { prompt: "Once", max_tokens: 2 }, auth);
    assertEquals([plain.status, plain.headers.get("access-control-allow-origin")], [200, origin]);
    const stream = await post(handler, "/v1/completions", { prompt: "Once", max_tokens: 2, stream: true }, auth);
    assertEquals(stream.headers.get("access-control-allow-origin"), origin);
    assert((await stream.text()).endsWith("data: [DONE]\n\n"), "the stream still completes");
    const refused = await post(handler, "/v1/completions", { prompt: "Once" }, { origin });
    assertEquals([refused.status, refused.headers.get("access-control-allow-origin")], [401, origin]);
    assertEquals((await get(none, "/health", { origin })).headers.get("access-control-allow-origin"), null);
  } finally {
    await open.close();
    await none.close();
    await handler.close();
  }
});

testShared("server: one log line per request with method, path, status, tokens and ms; streams log when they end", [MODEL], async () => {
  const lines: string[] = [], entries: RequestLogEntry[] = [];
  const handler = createHandler(await model(), { log: (line, e) => (lines.push(line), entries.push(e)) });
  const quiet = createHandler(await model(), { generator: handler.generator, log: null });
  try {
    const r = await post(handler, "/v1/completions", { prompt: "Once upon a time", max_tokens: 7, temperature: 0 });
    const usage = (await r.json()).usage;
    assertEquals(lines.length, 1);
    assert(
      new RegExp(`^POST /v1/completions 200 ${usage.prompt_tokens}\\+${usage.completion_tokens} tokens \\d+ ms$`).test(lines[0]),
      lines[0],
    );

    const s = await post(handler, "/v1/chat/completions", {
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    assertEquals(lines.length, 1, "a stream is logged when it ends, not when its headers go");
    const events = (await s.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    await new Promise((res) => setTimeout(res, 0));
    assertEquals(lines.length, 2);
    const u = events[events.length - 1].usage;
    assertEquals([entries[1].promptTokens, entries[1].completionTokens], [u.prompt_tokens, u.completion_tokens]);
    assert(/^POST \/v1\/chat\/completions 200 \d+\+\d+ tokens \d+ ms$/.test(lines[1]), lines[1]);

    await get(handler, "/nowhere");
    assert(/^GET \/nowhere 404 \d+ ms$/.test(lines[2]), lines[2]);
    await get(quiet, "/health");
    assertEquals(lines.length, 3, "log: null logs nothing");

    // a client that goes away mid-stream: logged once the generation has stopped, with what it had produced
    const c = await post(handler, "/v1/completions", { prompt: "Once", max_tokens: 200, stream: true });
    const reader = c.body!.getReader();
    await reader.read();
    await reader.cancel();
    for (let i = 0; i < 500 && lines.length < 4; i++) await new Promise((res) => setTimeout(res, 10));
    assert(/^POST \/v1\/completions 200 2\+\d+ tokens \d+ ms \(cancelled\)$/.test(lines[3] ?? ""), lines.join("\n"));
    assert(entries[3].completionTokens! < 200 && entries[3].cancelled === true, `cancelled early: ${lines[3]}`);
    assertEquals(entries[1].cancelled, undefined, "a stream that ran to its end is not marked");
  } finally {
    await quiet.close();
    await handler.close();
  }
});

testShared("server: the handler's numeric options are checked: a ParamError naming the one out of its range", [MODEL], async () => {
  const m = await model();
  const cases: [Parameters<typeof createHandler>[1], RegExp][] = [];
  for (const bad of [0, -1, 1.5, NaN]) {
    cases.push([{ maxPending: bad }, /^maxPending: must be a positive integer/]);
    cases.push([{ maxBodyBytes: bad }, /^maxBodyBytes: must be a positive integer/]);
    cases.push([{ limits: { maxChoices: bad } }, /^limits\.maxChoices: must be a positive integer/]);
    cases.push([{ limits: { maxStopLength: bad } }, /^limits\.maxStopLength: must be a positive integer/]);
    cases.push([{ limits: { maxQueuedTokens: bad } }, /^limits\.maxQueuedTokens: must be a positive integer/]);
    if (bad === 0) continue; // 0 stop strings, 0 logit_bias entries or Retry-After: 0 are limits, not errors
    cases.push([{ retryAfterSeconds: bad }, /^retryAfterSeconds: must be a non-negative integer/]);
    cases.push([{ limits: { maxStopStrings: bad } }, /^limits\.maxStopStrings: must be a non-negative integer/]);
    cases.push([{ limits: { maxLogitBias: bad } }, /^limits\.maxLogitBias: must be a non-negative integer/]);
    if (bad !== 1.5) cases.push([{ limits: { bodyTimeoutMs: bad } }, /^limits\.bodyTimeoutMs: must be a number of milliseconds >= 0/]);
  }
  for (const [opts, message] of cases) {
    let err: unknown;
    try {
      createHandler(m, opts);
    } catch (e) {
      err = e;
    }
    assert(err instanceof ParamError && message.test(err.message), `${JSON.stringify(opts)}: ${err}`);
  }
  // an undefined field keeps its default; the edges of each range are accepted
  const handler = createHandler(m, {
    retryAfterSeconds: 0,
    limits: { maxChoices: undefined, maxStopStrings: 0, maxLogitBias: 0, bodyTimeoutMs: Infinity },
  });
  try {
    const res = await post(handler, "/v1/completions", { prompt: "Once", max_tokens: 2, n: 3 });
    assertEquals(res.status, 200, await res.clone().text());
    assertEquals((await res.json()).choices.length, 3);
    const refused = await post(handler, "/v1/completions", { prompt: "Once", max_tokens: 2, stop: ["x"] });
    assertEquals(refused.status, 400, "maxStopStrings 0 refuses any stop string");
  } finally {
    await handler.close();
  }
});

testShared("server: close the model", [MODEL], async () => {
  await (await model()).close();
});

test("serve: a port already in use is a ParamError that says so, on the runtime's server and on node:http", async () => {
  const answer = () => new Response("x");
  const first = await serve(answer, { port: 0 });
  try {
    for (const http of [undefined, "node"] as const) {
      // Deno's AddrInUse, Bun's "Failed to start server", node:net's EADDRINUSE: kvasm serve printed their stack traces
      await assertRejects(
        () => serve(answer, { port: first.port, http }),
        ParamError,
        new RegExp(
          `^port: 127\\.0\\.0\\.1:${first.port} is already in use \\(another server\\?\\): pick another port, or 0 for a free one$`,
        ),
      );
    }
    assertEquals(await (await fetch(first.url + "/")).text(), "x", "the first server still answers");
  } finally {
    await first.close();
  }
});

test("serve: a host that does not resolve, or is not this machine's, is a ParamError on host that says what to give", async () => {
  const answer = () => new Response("x");
  for (const http of [undefined, "node"] as const) {
    // Bun.serve reported the name as EADDRINUSE, which read as "port ... is already in use"; Deno's error had no code
    await assertRejects(
      () => serve(answer, { host: "no-such-host.invalid", port: 0, http }),
      ParamError,
      /^host: no-such-host\.invalid is not an address or a name that resolves to one: give 127\.0\.0\.1 \(this machine only\), 0\.0\.0\.0/,
    );
  }
  // TEST-NET-1 (RFC 5737): an address no machine holds
  await assertRejects(
    () => serve(answer, { host: "192.0.2.1", port: 0 }),
    ParamError,
    /^host: 192\.0\.2\.1:0: this machine has no such address to listen on: give 127\.0\.0\.1/,
  );
});
