/**
 * loadModel's inputs beyond a path: nothing (the bundled model), http: URLs
 * (as URL objects and strings) served by a local server and streamed into the
 * arena, file: URLs, Responses, ReadableStreams and ArrayBuffers. Each must
 * generate exactly what the same file loaded from its path generates; a URL
 * that answers 404, or nothing at all, is a DownloadError naming it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { DownloadError, KvasmError, loadModel, type LoadOptions, type ModelInput } from "../src/mod.ts";
import { main } from "../src/cli.ts";
import { serve } from "../src/server/serve.ts";
import { assert, assertEquals, REPO, test } from "./harness.ts";

const MODEL = path.join(REPO, "models", "stories260K-q8_0.gguf");
const BYTES = new Uint8Array(fs.readFileSync(MODEL));

async function greedy(input: ModelInput | undefined, opts: LoadOptions = {}): Promise<string> {
  const model = await loadModel(input, { threads: 1, ...opts });
  try {
    let s = "";
    for await (const p of model.generate("Once upon a time", { temperature: 0, maxTokens: 8 })) s += p;
    return s;
  } finally {
    await model.close();
  }
}

let reference: string | null = null;
async function fromPath(): Promise<string> {
  reference ??= await greedy(MODEL);
  assert(reference.length > 10, `the reference continuation is ${JSON.stringify(reference)}`);
  return reference;
}

/** A local server: the model at /stories260K.gguf (with Content-Length), 404 elsewhere; counts GETs. */
async function modelServer() {
  let gets = 0;
  const server = await serve((req) => {
    if (new URL(req.url).pathname !== "/stories260K.gguf") return new Response("not here", { status: 404, statusText: "Not Found" });
    gets++;
    return new Response(BYTES, { headers: { "content-length": String(BYTES.length), "content-type": "application/octet-stream" } });
  }, { port: 0 });
  return { server, gets: () => gets };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

test("loadModel() with no model loads the bundled stories260K (models/) and generates", async () => {
  assertEquals(await greedy(undefined), await fromPath());
});

test("loadModel(new URL(http://127.0.0.1:PORT/stories260K.gguf)) streams the model in and generates as from its path", async () => {
  const { server, gets } = await modelServer();
  try {
    const progress: Array<[number, number]> = [];
    const text = await greedy(new URL(`${server.url}/stories260K.gguf`), { onProgress: (done, total) => progress.push([done, total]) });
    assertEquals(text, await fromPath());
    assertEquals(gets(), 1, "one GET, read front to back");
    assert(progress.length > 1, `progress was reported ${progress.length} times`);
    const [done, total] = progress[progress.length - 1];
    assert(done === total && total > 300_000, `last progress ${done} / ${total}`);
    // a string that is an http: URL is fetched too, not opened as a path
    assertEquals(await greedy(`${server.url}/stories260K.gguf`), await fromPath());
  } finally {
    await server.close();
  }
});

test("a URL that answers 404 is a DownloadError naming the URL and the status", async () => {
  const { server } = await modelServer();
  try {
    const url = `${server.url}/missing.gguf`;
    const e = await rejection(loadModel(new URL(url)));
    assert(e instanceof DownloadError && e instanceof KvasmError, String(e));
    assertEquals([e.code, e.status, e.url], ["download", 404, url]);
    assert(e.message.includes(url) && e.message.includes("404"), e.message);
  } finally {
    await server.close();
  }
  // nothing listens there any more: no response at all is status 0
  const e = await rejection(loadModel(new URL(`${server.url}/stories260K.gguf`)));
  assert(e instanceof DownloadError && e.status === 0, String(e));
});

test("file: URLs, Responses, ReadableStreams and ArrayBuffers load the same model", async () => {
  const expected = await fromPath();
  assertEquals(await greedy(pathToFileURL(MODEL)), expected, "file: URL object");
  assertEquals(await greedy(pathToFileURL(MODEL).href), expected, "file: URL string");
  assertEquals(await greedy(BYTES.slice().buffer), expected, "ArrayBuffer");
  const stream = () => new Response(BYTES).body!;
  assertEquals(await greedy(stream()), expected, "ReadableStream, size unknown (read into memory)");
  assertEquals(await greedy(stream(), { streamSize: BYTES.length }), expected, "ReadableStream with streamSize");
  assertEquals(await greedy(new Response(BYTES, { headers: { "content-length": String(BYTES.length) } })), expected, "Response");
  const e = await rejection(loadModel(new Response("gone", { status: 410 })));
  assert(e instanceof DownloadError && e.status === 410, String(e));
  const bad = await rejection(loadModel(new URL("ftp://example.com/model.gguf")));
  assert(bad instanceof KvasmError && bad.code === "params" && bad.message.includes("ftp:"), String(bad));
});

test("cli: generate with no --model runs the bundled model; --model URL says it downloads", async () => {
  const { server } = await modelServer();
  try {
    for (const model of [[], ["--model", `${server.url}/stories260K.gguf`]]) {
      let out = "", err = "";
      const io = { out: (s: string) => void (out += s), err: (s: string) => void (err += s), errIsTTY: false };
      const args = ["generate", ...model, "--prompt", "Once upon a time", "--max-tokens", "8", "--temperature", "0", "--threads", "1"];
      assertEquals(await main(args, io), 0, err);
      assertEquals(out, `Once upon a time${await fromPath()}\n`);
      if (model.length) assert(err.startsWith(`downloading ${server.url}/stories260K.gguf\n`), err);
      else assert(!err.includes("downloading"), err);
    }
  } finally {
    await server.close();
  }
});
