// The model object: batch prefill equals token-by-token decode, sequences are
// independent, and closing frees everything.
import { assert, assertClose, assertEquals, assertRejects, sharedPath, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import { ClosedError, ContextLengthError, ParamError } from "../src/errors.ts";

const GGUF = sharedPath("models", "stories260K", "stories260K.gguf");
const PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267];

testShared("a prompt's logits are the same prefilled as one batch or fed one token at a time", [GGUF], async () => {
  // maxBatchRows 7 also exercises chunked prefill (20 tokens = 7 + 7 + 6)
  const model = await loadModel(GGUF, { maxSequences: 2, maxBatchRows: 7 });
  try {
    const a = model.newSequence(), b = model.newSequence();
    const batched = (await model.prefill(a, PROMPT)).slice();
    let stepwise = new Float32Array(0);
    for (const t of PROMPT) stepwise = (await model.decodeOne(b, t)).slice();
    assertClose(batched, stepwise, 1e-4, "logits", 1);
    assertEquals(a.length, PROMPT.length);
    assertEquals(model.positionsComputed, 2 * PROMPT.length);
  } finally {
    await model.close();
  }
});

testShared("two sequences stepped together get exactly their own logits", [GGUF], async () => {
  const model = await loadModel(GGUF, { maxSequences: 3 });
  try {
    const solo = model.newSequence();
    const soloLogits = (await model.prefill(solo, PROMPT.slice(0, 9))).slice();
    model.releaseSequence(solo);
    const x = model.newSequence(), y = model.newSequence();
    const [lx, ly] = await model.step([{ seq: x, tokens: PROMPT.slice(0, 9) }, { seq: y, tokens: PROMPT.slice(0, 4) }]);
    assertClose(lx, soloLogits, 1e-4, "sequence x", 1);
    const other = (await model.prefill(model.newSequence(), PROMPT.slice(0, 4))).slice();
    assertClose(ly, other, 1e-4, "sequence y", 1);
  } finally {
    await model.close();
  }
});

testShared("context overflow, bad token ids and use after close are typed errors", [GGUF], async () => {
  const model = await loadModel(GGUF, { contextLength: 16 });
  const seq = model.newSequence();
  await assertRejects(() => model.prefill(seq, PROMPT), ContextLengthError, /needs 20 positions but the context holds 16/);
  assertEquals(seq.length, 0, "a failed step leaves the sequence untouched");
  await assertRejects(() => model.prefill(seq, [1, 99999]), ParamError, /token id 99999 is outside the vocabulary/);
  await assertRejects(() => model.prefill(seq, []), ParamError, /empty/);
  // a step input's logits flag is a boolean: the string "false" would have asked for the logits
  await assertRejects(
    () => model.step([{ seq, tokens: [1], logits: "false" as never }]),
    ParamError,
    /^logits: must be a boolean, got "false"/,
  );
  assertEquals(seq.length, 0, "refused before anything was reserved");
  const free = model.kv.freePages;
  await model.prefill(seq, PROMPT.slice(0, 5));
  assert(model.kv.freePages < free, "pages were taken");
  model.releaseSequence(seq);
  assertEquals(model.kv.freePages, free, "release returns every page");
  await model.close();
  await assertRejects(() => model.prefill(model.newSequence(), [1]), ClosedError, /after close/);
});

testShared("the plan's sizes must be positive integers: a typed error before any backend starts", [GGUF], async () => {
  for (const param of ["contextLength", "maxSequences", "maxBatchRows", "pageSize", "kvPages"]) {
    for (const bad of [0, -1, 1.5, NaN]) {
      await assertRejects(() => loadModel(GGUF, { [param]: bad }), ParamError, new RegExp(`^${param}: must be a positive integer, got `));
    }
  }
  for (const bad of [-1, 1.5, NaN]) {
    await assertRejects(() => loadModel(GGUF, { slidingWindow: bad }), ParamError, /^slidingWindow: must be a non-negative integer, got /);
    await assertRejects(
      () => loadModel(GGUF, { attention: { topK: bad } }),
      ParamError,
      /^attention\.topK: must be a non-negative integer, got /,
    );
  }
  // the flags are booleans, checked before the file is opened (a path that does not exist shows it)
  for (const param of ["relaxedSimd", "ggmlOrder"]) {
    for (const bad of ["false", 0, null]) {
      await assertRejects(() => loadModel(GGUF, { [param]: bad }), ParamError, new RegExp(`^${param}: must be a boolean, got `));
      await assertRejects(() => loadModel(GGUF + ".missing", { [param]: bad }), ParamError, new RegExp(`^${param}: `));
    }
  }
  // the smallest valid sizes load and run
  const model = await loadModel(GGUF, { contextLength: 8, maxSequences: 1, maxBatchRows: 1, pageSize: 1, kvPages: 8 });
  try {
    assertEquals((await model.prefill(model.newSequence(), PROMPT.slice(0, 8))).length, model.vocabSize);
  } finally {
    await model.close();
  }
});

testShared("loading a model many times does not leak: each close releases its memory", [GGUF], async () => {
  for (let i = 0; i < 20; i++) {
    const model = await loadModel(GGUF, { contextLength: 64 });
    const r = await model.generate("Once upon a time", { temperature: 0, maxTokens: 2 }).next();
    assert(!r.done && r.value.length > 0);
    await model.close();
  }
});
