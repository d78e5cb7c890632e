/**
 * Issue 14, finding 1b: a model's chat template is code from the file, rendered under a budget of
 * steps, time and output size. A template past it is a NumericalError for that request (a 500, the
 * model's fault); the server stays responsive. It used to run `{% for i in range(100000000) %}` on
 * the event loop: /health froze and the server grew from 74 MB to 4.9 GB in 12 s.
 */
import { assert, assertEquals, assertRejects, sharedPath, test, testShared } from "./harness.ts";
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
