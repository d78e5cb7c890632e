/**
 * The edge entry: no Worker, model as bytes or streamed from a URL; answers
 * completions through the same handler as the server.
 */
import * as fs from "node:fs";
import { assert, assertEquals, readJSON, sharedPath, testShared } from "./harness.ts";
import { createEdgeHandler } from "../src/edge.ts";
import { StreamSource } from "../src/edge/stream-source.ts";
import { serve } from "../src/server/serve.ts";
import { loadModel } from "../src/model/load.ts";
import { FormatError } from "../src/errors.ts";

const MODEL = sharedPath("models/stories260K/stories260K.gguf");
const GOLDEN = sharedPath("golden/stories260K.json");

function completion(prompt: string, max: number): Request {
  return new Request("http://edge.local/v1/completions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt, max_tokens: max, temperature: 0 }),
  });
}

testShared("edge entry answers a completion with no Worker and the model as bytes", [MODEL, GOLDEN], async () => {
  const g = globalThis as { Worker?: unknown };
  const saved = g.Worker;
  delete g.Worker;
  try {
    const edge = createEdgeHandler({ model: new Uint8Array(fs.readFileSync(MODEL)) });
    const r = await edge.fetch(completion("Once upon a time", 32));
    assertEquals(r.status, 200);
    const body = await r.json() as { choices: Array<{ text: string }> };
    const golden = readJSON<Array<{ model: string; text: string }>>(GOLDEN).find((x) => x.model === "stories260K/stories260K.gguf")!;
    assert(golden.text.startsWith("Once upon a time" + body.choices[0].text), body.choices[0].text);
    assertEquals((await edge.fetch(new Request("http://edge.local/health"))).status, 200);
    const h = await edge.ready();
    await h.close();
  } finally {
    if (saved !== undefined) g.Worker = saved;
  }
});

testShared("a model streamed from a URL loads the same weights without keeping the file", [MODEL], async () => {
  const bytes = new Uint8Array(fs.readFileSync(MODEL));
  let ranges = 0;
  const server = await serve((req) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    if (m) {
      ranges++;
      const from = Number(m[1]);
      return new Response(bytes.slice(from), { status: 206, headers: { "content-length": String(bytes.length - from) } });
    }
    return new Response(bytes, { headers: { "content-length": String(bytes.length) } });
  }, { port: 0 });
  try {
    const source = await StreamSource.fromUrl(`${server.url}/model.gguf`);
    const streamed = await loadModel(source, {});
    const local = await loadModel(MODEL, {});
    const a: string[] = [], b: string[] = [];
    for await (const p of streamed.generate("Once upon a time", { temperature: 0, maxTokens: 24 })) a.push(p);
    for await (const p of local.generate("Once upon a time", { temperature: 0, maxTokens: 24 })) b.push(p);
    assertEquals(a.join(""), b.join(""));
    // beside the arena the source held about one read (the header reader's 1 MiB window), never the file
    assert(source.peakKeptBytes <= (1 << 20) + (256 << 10), `kept ${source.peakKeptBytes} bytes`);
    assertEquals(source.rewinds, ranges);
    await streamed.close();
    await local.close();
  } finally {
    await server.close();
  }
});

testShared("a plain stream cannot go back: a clear FormatError", [MODEL], async () => {
  const bytes = new Uint8Array(fs.readFileSync(MODEL));
  const s = StreamSource.fromStream(new Response(bytes).body!, bytes.length, "model.gguf");
  const head = new Uint8Array(16);
  await s.read(200_000, head);
  assertEquals(Array.from(head), Array.from(bytes.subarray(200_000, 200_016)));
  let err: unknown;
  try {
    await s.read(100, head);
  } catch (e) {
    err = e;
  }
  assert(err instanceof FormatError && /front to back/.test(err.message), String(err));
  await s.close();
});
