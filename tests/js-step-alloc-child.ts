/**
 * The measuring child of tests/js-step-alloc.test.ts and `bench/js-step.ts alloc` (see tests/js-alloc.ts): loads
 * a model, warms the decode step up (V8 runs the matmul paths in a tier that allocates for their first ~100
 * tokens), then measures two windows: `tokens` Model.decodeOne steps (each feeding the last step's argmax), and a
 * greedy model.generate() of `tokens` tokens (text and events included; after one of 200). Prints { windows, tokens, generated }.
 *
 *   deno run -A tests/js-step-alloc-child.ts MODEL THREADS TOKENS [MIN_WORK]      bun tests/js-step-alloc-child.ts ...
 *
 * MIN_WORK (threads > 1): the threaded backend's minWork (0 splits every op over the Workers).
 */
import { loadModel } from "../src/model/load.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { argmax } from "../src/sampling/sampler.ts";
import { allocWindow } from "./js-alloc.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const [path, threadsArg, tokensArg, minWorkArg] = g.Deno ? g.Deno.args : g.process.argv.slice(2);
const threads = Number(threadsArg), tokens = Number(tokensArg), WARM = 200;
const backend = threads > 1 && minWorkArg !== undefined ? new ThreadedWasmBackend({ threads, minWork: Number(minWorkArg) }) : undefined;
const model = await loadModel(path, { threads, backend, contextLength: 4 + WARM + tokens });
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
  console.log(JSON.stringify({ windows, tokens, generated }));
} finally {
  await model.close();
}
