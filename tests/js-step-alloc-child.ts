/**
 * The measuring child of tests/js-step-alloc.test.ts and `bench/js-step.ts alloc` (see tests/js-alloc.ts): loads
 * a model, warms the decode step up (V8 runs the matmul paths in a tier that allocates for their first ~100
 * tokens), then measures three windows: `tokens` Model.decodeOne steps (each feeding the last step's argmax), a
 * greedy model.generate() of `tokens` tokens (text and events included; after one of 200), and the engine's
 * scheduler decoding ENGINE_REQUESTS greedy requests of `tokens` tokens each at once (continuous batching: one step
 * runs a row per request; text, events and results included; after a warm batch). Prints { windows, tokens,
 * generated, engineTokens }.
 *
 *   deno run -A tests/js-step-alloc-child.ts MODEL THREADS TOKENS [MIN_WORK]      bun tests/js-step-alloc-child.ts ...
 *
 * MIN_WORK (threads > 1): the threaded backend's minWork (0 splits every op over the Workers).
 */
import { loadModel } from "../src/model/load.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { Engine } from "../src/engine/engine.ts";
import { allocWindow } from "./js-alloc.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const [path, threadsArg, tokensArg, minWorkArg] = g.Deno ? g.Deno.args : g.process.argv.slice(2);
const threads = Number(threadsArg), tokens = Number(tokensArg), WARM = 200, ENGINE_REQUESTS = 4;
const backend = threads > 1 && minWorkArg !== undefined ? new ThreadedWasmBackend({ threads, minWork: Number(minWorkArg) }) : undefined;
const model = await loadModel(path, { threads, backend, contextLength: 4 + WARM + tokens, maxSequences: ENGINE_REQUESTS });
try {
  const vocab = model.vocabSize, next = (t: number) => 3 + ((t * 31) % (vocab - 3));
  const seq = model.newSequence();
  let token = argmax(await model.prefill(seq, [1, 2, 3, 4]));
  for (let i = 0; i < WARM; i++) token = argmax(await model.decodeOne(seq, next(token)));
  const windows = [
    await allocWindow(async () => {
      for (let i = 0; i < tokens; i++) token = argmax(await model.decodeOne(seq, next(token)));
    }),
  ];
  model.releaseSequence(seq);
  let generated = 0;
  const generate = async (maxTokens: number) => {
    const it = model.generate([1, 2, 3, 4], { maxTokens, temperature: 0 });
    let r = await it.next();
    while (!r.done) r = await it.next();
    generated = r.value.tokens.length;
  };
  await generate(WARM);
  windows.push(await allocWindow(() => generate(tokens)));
  const engine = new Engine(model);
  let engineTokens = 0;
  const batch = async (maxTokens: number) => {
    const requests = [];
    for (let r = 0; r < ENGINE_REQUESTS; r++) requests.push(engine.submit({ prompt: [1, 2 + r, 3], maxTokens, temperature: 0 }));
    engineTokens = 0;
    for (const request of requests) engineTokens += (await request.done).choices[0].tokens.length;
  };
  await batch(WARM);
  windows.push(await allocWindow(() => batch(tokens)));
  await engine.close();
  console.log(JSON.stringify({ windows, tokens, generated, engineTokens }));
} finally {
  await model.close();
}
