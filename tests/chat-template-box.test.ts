/**
 * Issue 14, finding 1b: a model's chat template is code from the file, rendered under a budget of
 * steps, time and output size. A template past it is a NumericalError for that request (a 500, the
 * model's fault); the server stays responsive. It used to run `{% for i in range(100000000) %}` on
 * the event loop: /health froze and the server grew from 74 MB to 4.9 GB in 12 s.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn } from "node:child_process";
import { assert, assertEquals, assertRejects, REPO, runtime, sharedPath, test, testShared } from "./harness.ts";
import { NumericalError, ParamError } from "../src/errors.ts";
import { withTemplate } from "./gguf-template.ts";
import { loadModel } from "../src/model/load.ts";
import { ChatTemplate } from "../src/server/chat-template.ts";
import { createHandler } from "../src/server/handler.ts";
import { serve } from "../src/server/serve.ts";

const STORIES = sharedPath("models/stories260K/stories260K.gguf");
const CTX = { bosToken: "<s>", eosToken: "</s>" };
const HI = [{ role: "user" as const, content: "hi" }];

const render = (source: string, limits = {}) => () => new ChatTemplate(source, CTX, false, limits).render(HI);

test("chat template budget: huge ranges, endless loops, doubling strings and wide filters are NumericalErrors", async () => {
  const t0 = Date.now();
  await assertRejects(
    render("{% for i in range(100000000) %}{{ i }}{% endfor %}"),
    NumericalError,
    /range\(\) of 100000000 elements .*maxSteps/,
  );
  await assertRejects(
    render("{% for i in range(200000) %}{% for j in range(200000) %}{% endfor %}{% endfor %}"),
    NumericalError,
    /maxSteps|timeoutMs/,
  );
  await assertRejects(
    render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"),
    NumericalError,
    /built a string of \d+ characters .*maxOutputChars/,
  );
  await assertRejects(render("{{ 'a' | indent(100000000) }}"), NumericalError, /width 100000000/);
  await assertRejects(render("{% for i in range(50) %}{% endfor %}", { maxSteps: 20 }), NumericalError, /maxSteps = 20/);
  assert(Date.now() - t0 < 10_000, `refused in bounded time (${Date.now() - t0} ms)`);
  // what a template may legitimately do is untouched
  assertEquals(render("{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %}{{ range(3) | join(',') }}")(), "user:hi0,1,2");
  await assertRejects(render("{{ raise_exception('roles must alternate') }}"), ParamError, /roles must alternate/);
  // a template that fails on its own (an operator or filter the engine lacks) is the model's fault, not the messages'
  const failed = await assertRejects(render("{{ messages[0].content * 2 }}"), NumericalError, /failed to render: Unknown operator "\*"/);
  assertEquals((failed as NumericalError).file, "tokenizer.chat_template");
  await assertRejects(render("{{ 'x' | nosuchfilter }}"), NumericalError, /nosuchfilter/);
  await assertRejects(render("x", { timeoutMs: 0 }), ParamError, /chatTemplateLimits\.timeoutMs/);
});

testShared("server: a GGUF whose template loops 10^8 times gets a 500 for that request, /health answers meanwhile", [STORIES], async () => {
  for (
    const template of [
      "{% for i in range(100000000) %}{{ i }}{% endfor %}",
      "{% for i in range(200000) %}{% for j in range(200000) %}{% endfor %}{% endfor %}",
    ]
  ) {
    const model = await loadModel(await withTemplate(STORIES, template), { threads: 1, maxSequences: 2 });
    const handler = createHandler(model, { modelId: "hostile" });
    const server = await serve(handler.fetch, { host: "127.0.0.1", port: 0 });
    try {
      const t0 = Date.now();
      const chat = fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 4 }),
      });
      const health = await fetch(`${server.url}/health`);
      assertEquals(health.status, 200);
      await health.body?.cancel();
      const res = await chat;
      const body = await res.json();
      assertEquals(res.status, 500, JSON.stringify(body));
      assertEquals(body.error.type, "server_error");
      assert(/chat template/.test(body.error.message), body.error.message);
      assert(Date.now() - t0 < 10_000, `answered in bounded time (${Date.now() - t0} ms)`);
      // the server goes on serving: a completion needs no template
      const ok = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ prompt: "Once upon a time", max_tokens: 4, temperature: 0 }),
      });
      assertEquals(ok.status, 200);
      assertEquals((await ok.json()).choices.length, 1);
    } finally {
      await server.close();
      await handler.close();
      await model.close();
    }
  }
});

const chat = (handler: { fetch(r: Request): Promise<Response> }, path: string, body: unknown) =>
  handler.fetch(new Request(`http://x${path}`, { method: "POST", body: JSON.stringify(body) }));

testShared(
  "server: a model whose chat template does not parse still serves completions; its chats get a 500 saying why",
  [STORIES],
  async () => {
    const model = await loadModel(await withTemplate(STORIES, "{% if %}broken"), { threads: 1, maxSequences: 2 });
    const handler = createHandler(model, { modelId: "broken" }); // threw ParamError chat_template: kvasm serve did not start
    try {
      assert(
        /chat template .*\(tokenizer\.chat_template\) does not parse: /.test(handler.chatTemplateError ?? ""),
        handler.chatTemplateError,
      );
      const c = await chat(handler, "/v1/completions", { prompt: "Once upon a time", max_tokens: 2, temperature: 0 });
      assertEquals(c.status, 200);
      await c.json();
      const r = await chat(handler, "/v1/chat/completions", { messages: HI, max_tokens: 2 });
      const body = await r.json();
      assertEquals([r.status, body.error.type, body.error.code], [500, "server_error", "model_error"]);
      assert(/does not parse.*use \/v1\/completions/.test(body.error.message), body.error.message);
    } finally {
      await handler.close();
      await model.close();
    }
    // a template the caller passes is the caller's to fix: still a ParamError
    const own = await loadModel(undefined, { threads: 1 });
    try {
      await assertRejects(() => createHandler(own, { chatTemplate: "{% if %}" }), ParamError, /chat_template: does not parse/);
    } finally {
      await own.close();
    }
  },
);

testShared("server: a template that fails while rendering is a 500 (model_error); its raise_exception stays a 400", [STORIES], async () => {
  const model = await loadModel(
    await withTemplate(
      STORIES,
      "{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}{{ messages[0].content * 2 }}",
    ),
    { threads: 1, maxSequences: 2 },
  );
  const handler = createHandler(model);
  try {
    const r = await chat(handler, "/v1/chat/completions", { messages: HI, max_tokens: 2 });
    const body = await r.json();
    assertEquals([r.status, body.error.code], [500, "model_error"], JSON.stringify(body));
    assert(/chat template failed to render: Unknown operator/.test(body.error.message), body.error.message);
    const refused = await chat(handler, "/v1/chat/completions", { messages: [{ role: "system", content: "x" }], max_tokens: 2 });
    const b2 = await refused.json();
    assertEquals([refused.status, b2.error.param], [400, "messages"]);
    assert(/refused them: no system role/.test(b2.error.message), b2.error.message);
  } finally {
    await handler.close();
    await model.close();
  }
});

testShared("kvasm serve: a model whose chat template does not parse starts with one warning naming the file", [STORIES], async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvasm-template-"));
  const file = path.join(dir, "broken-template.gguf");
  fs.writeFileSync(file, await withTemplate(STORIES, "{{ messages | "));
  const exec = (globalThis as unknown as { process: { execPath: string } }).process.execPath;
  const cli = ["src/cli.ts", "serve", "--model", file, "--port", "0", "--quiet"];
  const child = spawn(exec, runtime === "deno" ? ["run", "-A", ...cli] : cli, { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const closed = new Promise((resolve) => child.on("close", resolve));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on("data", (d: Uint8Array) => {
        stderr += new TextDecoder().decode(d);
        const m = / at (http:\/\/\S+)\/v1/.exec(stderr);
        if (m && /warning/.test(stderr)) resolve(m[1]);
      });
      child.on("exit", () => reject(new Error(`serve exited: ${stderr}`)));
    });
    const warnings = stderr.split("\n").filter((l) => /warning/.test(l));
    assertEquals(warnings.length, 1, stderr);
    assert(warnings[0].includes(file) && /does not parse: .*\/v1\/completions works/.test(warnings[0]), warnings[0]);
    const r = await fetch(`${url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ messages: HI, max_tokens: 2 }) });
    assertEquals(r.status, 500);
    await r.body?.cancel();
    const c = await fetch(`${url}/v1/completions`, { method: "POST", body: JSON.stringify({ prompt: "Once", max_tokens: 2 }) });
    assertEquals(c.status, 200);
    await c.body?.cancel();
  } finally {
    child.kill("SIGTERM");
    await closed;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
