// The engine: continuous batching of many requests over one paged KV cache.
import { assert, assertEquals, assertRejects, sharedPath, testShared } from "./harness.ts";
import { loadModel, type LoadOptions } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { generate } from "../src/generate.ts";
import { Engine, type EngineOptions, QueueFullError } from "../src/engine/engine.ts";
import type { EngineRequest, RequestParams, RequestResult } from "../src/engine/request.ts";
import { OutOfMemoryError, ParamError } from "../src/errors.ts";
import { drain } from "./drain.ts";

const MODEL = sharedPath("models", "stories260K", "stories260K.gguf");

const PROMPTS = [
  "Once upon a time",
  "The cat sat",
  "Lily and Ben went",
  "One day, a big dog",
  "Tom had a red ball",
  "The sun was hot",
  "Mom said",
  "In the park there was",
];

async function withEngine<T>(load: LoadOptions, opts: EngineOptions, fn: (e: Engine, m: Model) => Promise<T>): Promise<T> {
  const m = await loadModel(MODEL, load);
  const e = new Engine(m, opts);
  try {
    return await fn(e, m);
  } finally {
    await e.close();
    await m.close();
  }
}

/** Greedy ids of `prompt` through the single-sequence loop (the foundation's reference path). */
async function greedyAlone(m: Model, prompt: string, maxTokens: number): Promise<number[]> {
  return (await drain(generate(m, prompt, { temperature: 0, maxTokens }))).tokens;
}

testShared("engine: eight prompts decoded together give each its greedy ids alone", [MODEL], async () => {
  const alone: number[][] = [];
  const m1 = await loadModel(MODEL);
  for (const p of PROMPTS) alone.push(await greedyAlone(m1, p, 48));
  await m1.close();

  await withEngine({ maxSequences: 8 }, {}, async (e) => {
    const reqs = PROMPTS.map((prompt) => e.submit({ prompt, temperature: 0, maxTokens: 48 }));
    const results = await Promise.all(reqs.map((r) => r.done));
    for (let i = 0; i < PROMPTS.length; i++) assertEquals(results[i].choices[0].tokens, alone[i], `prompt ${i}`);
    // they really ran together: far fewer steps than 8 x 48
    assert(e.steps < 2 * 48, `expected batched steps, got ${e.steps}`);
  });
});

testShared("engine: a prompt prefilled in small chunks alongside running decodes changes nothing", [MODEL], async () => {
  const long = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";
  const m1 = await loadModel(MODEL);
  const refLong = await greedyAlone(m1, long, 24);
  const refShort = await greedyAlone(m1, PROMPTS[1], 40);
  await m1.close();
  await withEngine({ maxSequences: 4 }, { maxStepRows: 5 }, async (e) => {
    const a = e.submit({ prompt: PROMPTS[1], temperature: 0, maxTokens: 40 });
    const b = e.submit({ prompt: long, temperature: 0, maxTokens: 24 });
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assertEquals(ra.choices[0].tokens, refShort);
    assertEquals(rb.choices[0].tokens, refLong);
  });
});

testShared("engine: streamed events spell the result; stop strings end a choice", [MODEL], async () => {
  await withEngine({ maxSequences: 2 }, {}, async (e) => {
    const r = e.submit({ prompt: "Once upon a time", temperature: 0, maxTokens: 40, stop: ["Lily"], logprobs: 2 });
    let text = "";
    const ids: number[] = [];
    for await (const ev of r) {
      text += ev.text;
      if (ev.type === "token") {
        ids.push(ev.id);
        assertEquals(ev.top.length, 2);
        assert(ev.logprob <= 0);
      }
    }
    const res = await r.done;
    assertEquals(text, ", there was a little girl named ");
    assertEquals(res.choices[0].text, text);
    assertEquals(res.choices[0].tokens, ids);
    assertEquals(res.choices[0].finishReason, "stop");
    assertEquals(res.choices[0].stop, "Lily");
    assertEquals(res.choices[0].logprobs!.length, ids.length);
  });
});

// tokenLogprobs false (what the server asks when a request wants no logprobs): the same tokens, greedy or drawn, and
// every event's logprob is NaN (a greedy pick's never computed, a draw's dropped); a non-boolean is a ParamError
// before anything is queued.
testShared("engine: tokenLogprobs false gives the same tokens, NaN logprobs; a bad value is refused", [MODEL], async () => {
  await withEngine({ maxSequences: 4 }, {}, async (e) => {
    const events = async (r: ReturnType<typeof e.submit>) => {
      const got: Array<{ id: number; logprob: number }> = [];
      for await (const ev of r) if (ev.type === "token") got.push({ id: ev.id, logprob: ev.logprob });
      return got;
    };
    const greedy = { prompt: "Once upon a time", temperature: 0, maxTokens: 24 };
    const drawn = { ...greedy, temperature: 0.9, topP: 0.95, seed: 77 };
    for (const params of [greedy, drawn]) {
      const [withLp, without] = await Promise.all([events(e.submit(params)), events(e.submit({ ...params, tokenLogprobs: false }))]);
      assertEquals(without.map((t) => t.id), withLp.map((t) => t.id), `temperature ${params.temperature}`);
      assert(withLp.length > 0 && withLp.every((t) => t.logprob <= 0), "default: each pick's logprob");
      assert(without.every((t) => Number.isNaN(t.logprob)), `temperature ${params.temperature}, tokenLogprobs false: NaN`);
    }
    await assertRejects(() => e.submit({ ...greedy, tokenLogprobs: "no" as unknown as boolean }), ParamError, /tokenLogprobs/);
    assertEquals(e.queueLength, 0);
  });
});

// Boolean options are booleans (errors.ts optionalBoolean): a string "false" is truthy, and earlyStopping and addBos,
// never checked, took it for true. Each is refused by its name before anything is queued; generate()'s addBos too.
testShared("engine and generate(): earlyStopping, addBos and tokenLogprobs must be booleans, refused by name", [MODEL], async () => {
  await withEngine({ maxSequences: 2 }, {}, async (e, m) => {
    const prompt = "Once upon a time";
    for (const field of ["earlyStopping", "addBos", "tokenLogprobs"] as const) {
      for (const bad of ["false", 0, 1, null, {}]) {
        const params = { prompt, beams: 2, maxTokens: 2, [field]: bad } as unknown as RequestParams;
        const err = await assertRejects(() => e.submit(params), ParamError, new RegExp(`^${field}: must be a boolean, got `));
        assertEquals((err as ParamError).param, field);
      }
    }
    assertEquals(e.queueLength, 0);
    // the booleans themselves still do what they say: addBos false leaves the BOS out
    const bos = e.submit({ prompt, maxTokens: 1, addBos: true }), none = e.submit({ prompt, maxTokens: 1, addBos: false });
    await Promise.all([bos.done, none.done]);
    assertEquals(bos.promptTokens.slice(1), none.promptTokens);
    assertEquals(bos.promptTokens.length, none.promptTokens.length + 1);
    await assertRejects(
      () => generate(m, prompt, { addBos: "false" as never }).next(),
      ParamError,
      /^addBos: must be a boolean, got "false"/,
    );
    const r = await drain(generate(m, prompt, { temperature: 0, maxTokens: 2, addBos: false }));
    assertEquals(r.tokens.length, 2);
  });
});

// What a JavaScript caller gets wrong by accident, each a ParamError naming the field before anything is queued: the prompt
// left out ("undefined is not iterable"), one stop string not in an array (a WeakMap's "Invalid value used as weak map
// key"), a number given as a string (quoted, so "got 10" no longer reads as a valid value).
testShared(
  "engine and generate(): a missing prompt, a bare stop string and a numeric string are ParamErrors by name",
  [MODEL],
  async () => {
    await withEngine({ maxSequences: 2 }, {}, async (e, m) => {
      for (const prompt of [undefined, 42, {}]) {
        const re = /^prompt: must be a string or an array of token ids, got (undefined|42|an object)$/;
        await assertRejects(() => e.submit({ prompt, maxTokens: 1 } as unknown as RequestParams), ParamError, re);
        await assertRejects(() => generate(m, prompt as unknown as string, { maxTokens: 1 }).next(), ParamError, re);
      }
      const bare = /^stop: must be an array of strings, got "\\n" \(one stop string is written \["\\n"\]\)$/;
      await assertRejects(() => e.submit({ prompt: "Once", maxTokens: 2, stop: "\n" as unknown as string[] }), ParamError, bare);
      await assertRejects(() => generate(m, "Once", { maxTokens: 2, stop: "\n" as unknown as string[] }).next(), ParamError, bare);
      await assertRejects(
        () => generate(m, "Once", { maxTokens: "10" as unknown as number }).next(),
        ParamError,
        /^maxTokens: must be a non-negative integer, got "10"$/,
      );
      await assertRejects(
        () => generate(m, "Once", { seed: "1" as unknown as number }).next(),
        ParamError,
        /^seed: must be a finite number, got "1"$/,
      );
      assertEquals(e.queueLength, 0);
      // the well-formed forms run: token ids as a typed array, stop strings in an array
      const r = await e.submit({ prompt: Uint32Array.of(1, 403), maxTokens: 2, stop: ["\n"] }).done;
      assertEquals(r.choices[0].tokens.length > 0, true);
    });
  },
);

// The one documented behaviour of both paths: a token is reported after stop matching, with the text it releases;
// the token that completes a stop string is reported (with the text before the stop string), EOS never is.
testShared("engine and generate(): onToken and token events agree, after stop matching", [MODEL], async () => {
  // "named Lily" splits over tokens, so text is held back while the stop string may still complete
  const params = { prompt: "Once upon a time", temperature: 0, maxTokens: 40, stop: [" Lily"], logprobs: 1 };
  const seen: Array<{ id: number; text: string }> = [];
  const fromEngine: Array<{ id: number; text: string }> = [];
  await withEngine({ maxSequences: 2 }, {}, async (e) => {
    const r = e.submit(params);
    for await (const ev of r) if (ev.type === "token") fromEngine.push({ id: ev.id, text: ev.text });
    const res = await r.done;
    assertEquals(res.choices[0].finishReason, "stop");
    assertEquals(fromEngine.map((t) => t.id), res.choices[0].tokens, "every token is reported, the stop's last one too");
  });
  const m = await loadModel(MODEL);
  try {
    const pieces: string[] = [];
    // generate() takes its options without the prompt (it refuses a name it does not take)
    const { prompt, ...opts } = params;
    const g = generate(m, prompt, { ...opts, onToken: (t) => seen.push({ id: t.id, text: t.text }) });
    let r = await g.next();
    for (; !r.done; r = await g.next()) pieces.push(r.value);
    assertEquals(seen, fromEngine, "onToken sees what the engine streams");
    assertEquals(r.value.tokens, seen.map((t) => t.id));
    assertEquals(pieces.join(""), seen.map((t) => t.text).join(""), "the yielded text is what onToken released");
    assertEquals(r.value.text, ", there was a little girl named");
    assert(seen.some((t) => t.text === "") && seen[seen.length - 1].text === "", 'text held back for a possible stop string is ""');
  } finally {
    await m.close();
  }
});

// generate() without onToken reads no logprob, so its greedy picks skip the sampler's exp pass (Sampler.sample's
// `logprob` false): the same tokens and text as with onToken, whose events still carry each pick's logprob.
testShared("generate() greedy: the same tokens and text without onToken (no logprobs computed) as with it", [MODEL], async () => {
  const m = await loadModel(MODEL);
  try {
    const opts = { temperature: 0, maxTokens: 48 };
    const run = async (onToken?: (t: { id: number; logprob: number }) => void) => {
      const g = generate(m, "Once upon a time", { ...opts, onToken });
      let r = await g.next();
      while (!r.done) r = await g.next();
      return r.value;
    };
    const events: Array<{ id: number; logprob: number }> = [];
    const withEvents = await run((t) => events.push({ id: t.id, logprob: t.logprob }));
    const without = await run();
    assertEquals(without.tokens, withEvents.tokens);
    assertEquals(without.text, withEvents.text);
    assert(without.tokens.length > 10, `${without.tokens.length} tokens`);
    assertEquals(events.map((e) => e.id), withEvents.tokens);
    assert(events.every((e) => e.logprob <= 0 && e.logprob > -Infinity), "onToken's events carry each greedy pick's logprob");
  } finally {
    await m.close();
  }
});

// Captured from this engine under Deno; Bun must draw the same tokens (the sampler's math is exact in both).
const SEEDED = { prompt: "Once upon a time", temperature: 0.9, topP: 0.95, seed: 1234, maxTokens: 24 };

testShared("engine: seeded sampling is the same at every batch size and for n > 1 choice 0", [MODEL], async () => {
  const results: RequestResult[] = [];
  await withEngine({ maxSequences: 8 }, {}, async (e) => {
    results.push(await e.submit(SEEDED).done);
    const batch = [e.submit(SEEDED), ...PROMPTS.slice(1, 6).map((prompt) => e.submit({ ...SEEDED, prompt }))];
    results.push(await batch[0].done);
    await Promise.all(batch.map((b) => b.done));
    results.push(await e.submit({ ...SEEDED, n: 3 }).done);
  });
  // the single-sequence loop, same seed
  const m = await loadModel(MODEL);
  const { prompt: seededPrompt, ...seeded } = SEEDED;
  const alone = await drain(generate(m, seededPrompt, seeded));
  await m.close();
  const ids = results[0].choices[0].tokens;
  assertEquals(results[1].choices[0].tokens, ids, "batched");
  assertEquals(results[2].choices[0].tokens, ids, "n=3, choice 0");
  assertEquals(alone.tokens, ids, "generate()");
  assertEquals(ids, SEEDED_IDS, "the same tokens as captured under Deno");
  const others = results[2].choices.slice(1).map((c) => c.tokens);
  assert(others.some((o) => JSON.stringify(o) !== JSON.stringify(ids)), "n=3 choices are different samples");
});

testShared("engine: cancelling one of several requests frees its pages and leaves the others unchanged", [MODEL], async () => {
  const P: RequestParams[] = PROMPTS.slice(0, 4).map((prompt) => ({ prompt, temperature: 0, maxTokens: 60 }));
  const m1 = await loadModel(MODEL);
  const alone: number[][] = [];
  for (const p of P) alone.push(await greedyAlone(m1, p.prompt as string, 60));
  await m1.close();
  await withEngine({ maxSequences: 4 }, { prefixCachePages: 0 }, async (e) => {
    const start = e.freePages;
    const ctl = new AbortController();
    const reqs = P.map((p, i) => e.submit(i === 2 ? { ...p, signal: ctl.signal } : p));
    let seen = 0;
    for await (const ev of reqs[2]) {
      if (ev.type === "token" && ++seen === 10) {
        assert(e.freePages < start);
        ctl.abort();
      }
    }
    const res = await Promise.all(reqs.map((r) => r.done));
    assertEquals(res[2].choices[0].finishReason, "abort");
    assert(res[2].choices[0].tokens.length >= 10 && res[2].choices[0].tokens.length < 60);
    for (const i of [0, 1, 3]) assertEquals(res[i].choices[0].tokens, alone[i], `request ${i}`);
    assertEquals(e.freePages, start);
    assertEquals(e.activeSequences, 0);
  });
});

testShared("engine: asking for more KV pages than exist fails only the request that asked", [MODEL], async () => {
  // 8 pages of 16 positions: 128 positions for everyone
  await withEngine({ maxSequences: 3, kvPages: 8 }, { prefixCachePages: 0 }, async (e, m) => {
    const start = e.freePages;
    const ok = e.submit({ prompt: "Once upon a time", temperature: 0, maxTokens: 30 });
    const big = e.submit({ prompt: Array.from({ length: 200 }, (_, i) => 1 + (i % 300)), temperature: 0, maxTokens: 5 });
    const grows = e.submit({ prompt: "The cat sat", temperature: 0, maxTokens: 300 });
    await assertRejects(() => big.done, OutOfMemoryError);
    const r = await ok.done;
    assertEquals(r.choices[0].tokens, await greedyAlone(m, "Once upon a time", 30));
    // the third grows until the pool is dry: it fails alone, with a typed error
    await assertRejects(() => grows.done, OutOfMemoryError, /KV cache full/);
    assertEquals(e.freePages, start);
  });
});

/** How a request ended: its result, or the error it failed with, and whether `other` had finished by then. */
async function outcome(r: EngineRequest, otherDone: () => boolean): Promise<{ error: unknown; otherDone: boolean }> {
  try {
    await r.done;
    return { error: null, otherDone: otherDone() };
  } catch (error) {
    return { error, otherDone: otherDone() };
  }
}

testShared(
  "engine: hostile sampling options fail only their own request; the others keep every token, no page leaks",
  [MODEL],
  async () => {
    // the reviewer's setup: the first of them failed every running request with its ParamError, the third with a
    // NumericalError blaming the model
    const load = { maxSequences: 8, contextLength: 1024 };
    const m1 = await loadModel(MODEL, load);
    const alone = await greedyAlone(m1, "Once upon a time", 60);
    await m1.close();
    await withEngine(load, { prefixCachePages: 0 }, async (e, m) => {
      const start = e.freePages;
      const everyId = Array.from({ length: m.vocabSize }, (_, id) => id);
      const banAll = Object.fromEntries(everyId.map((id) => [id, -Infinity]));
      // a prompt of every id but `spare`: the first pick is `spare`, after which a huge penalty leaves no token (a decode row fails)
      const spare = 300;
      const allButSpare = everyId.filter((id) => id !== spare);
      const hostile: Array<[string, RequestParams]> = [
        ["logitBias", { prompt: "Hello", logitBias: banAll }], // as its prompt finishes
        ["logitBias", { prompt: "Hello", n: 2, logitBias: banAll }], // after forking its second choice
        ["presencePenalty", { prompt: everyId, presencePenalty: 1e300 }],
        ["presencePenalty", { prompt: allButSpare, temperature: 0, presencePenalty: 1e300 }], // at its first decode step
        ["frequencyPenalty", { prompt: allButSpare, beams: 2, frequencyPenalty: 1e300 }], // in a beam step
      ];
      const a = e.submit({ prompt: "Once upon a time", temperature: 0, maxTokens: 60 });
      let aDone = false;
      void a.done.then(() => aDone = true, () => {});
      const ends: Array<Promise<{ error: unknown; otherDone: boolean }>> = [];
      let tokens = 0;
      for await (const ev of a) {
        // a few tokens in, so that its decode rows share steps with their prompts and decode rows
        if (ev.type === "token" && ++tokens === 5) { for (const [, params] of hostile) ends.push(outcome(e.submit(params), () => aDone)); }
      }
      const res = await a.done;
      assertEquals(res.choices[0].tokens, alone, "the greedy tokens it has alone");
      const got = await Promise.all(ends);
      hostile.forEach(([param], i) => {
        const { error, otherDone } = got[i];
        assert(error instanceof ParamError && error.param === param, `hostile request ${i}: ${error}`);
        assert(/no token left to sample/.test((error as Error).message), `hostile request ${i}: ${error}`);
        assert(!otherDone, `hostile request ${i} failed while the greedy one ran`);
      });
      assertEquals([e.freePages, e.activeSequences, e.queueLength, e.runningRequests], [start, 0, 0, 0]);
      // and the engine goes on serving
      assertEquals((await e.submit({ prompt: "Once upon a time", temperature: 0, maxTokens: 60 }).done).choices[0].tokens, alone);
    });
  },
);

testShared("engine: prefix reuse computes only the new tokens and gives the same output", [MODEL], async () => {
  const m0 = await loadModel(MODEL);
  const prefix = m0.tokenizer.encode(
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big tree with a swing. " +
      "She ran to the swing and sat on it. Her mom pushed her high into the sky and Lily laughed.",
  );
  await m0.close();
  assert(prefix.length >= 64, `prefix of ${prefix.length} tokens`);
  const shared = prefix.slice(0, 64);
  const first = [...shared, ...prefix.slice(64)];
  const second = [...shared, 261, 300, 400];
  const run = async (pages: number | undefined) =>
    await withEngine({ maxSequences: 2 }, { prefixCachePages: pages }, async (e, m) => {
      await e.submit({ prompt: first, temperature: 0, maxTokens: 8 }).done;
      const before = m.positionsComputed;
      const r = await e.submit({ prompt: second, temperature: 0, maxTokens: 8 }).done;
      return { r, computed: m.positionsComputed - before };
    });
  const reuse = await run(undefined);
  const none = await run(0);
  assertEquals(reuse.r.usage.cachedTokens, 64);
  // 3 new prompt tokens + 7 decode steps (the 8th token needs no forward pass)
  assertEquals(reuse.computed, 3 + 7);
  assertEquals(none.computed, 67 + 7);
  assertEquals(reuse.r.choices[0].tokens, none.r.choices[0].tokens);
});

const SEEDED_IDS = [432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 385, 328, 432, 317, 269, 311, 357, 343, 263, 377, 267, 265, 298];

testShared("engine: top-k 1 is greedy; a logit bias ban and a repeat penalty reach the sampler", [MODEL], async () => {
  await withEngine({ maxSequences: 4 }, {}, async (e, m) => {
    const greedy = await greedyAlone(m, "Once upon a time", 30);
    const [k1, banned, penalised] = await Promise.all([
      e.submit({ prompt: "Once upon a time", topK: 1, temperature: 1.5, seed: 9, maxTokens: 30 }).done,
      e.submit({ prompt: "Once upon a time", temperature: 0, maxTokens: 30, logitBias: { [greedy[0]]: -Infinity } }).done,
      e.submit({ prompt: "Once upon a time", temperature: 0, maxTokens: 30, repeatPenalty: 3 }).done,
    ]);
    assertEquals(k1.choices[0].tokens, greedy);
    assert(banned.choices[0].tokens[0] !== greedy[0], "the banned token is never drawn");
    assert(JSON.stringify(penalised.choices[0].tokens) !== JSON.stringify(greedy), "the penalty changes the output");
    const ids = penalised.choices[0].tokens;
    // a strong penalty over the last 64 tokens keeps them from repeating as often as greedy does
    assert(new Set(ids).size > new Set(greedy).size, "more distinct tokens under the penalty");
  });
});

testShared("engine: n samples fork the prompt's pages; bad requests throw at submit; close() aborts what runs", [MODEL], async () => {
  await withEngine({ maxSequences: 4 }, { maxQueue: 1, prefixCachePages: 0 }, async (e, m) => {
    const free = e.freePages;
    const prompt = m.tokenizer.encode("Once upon a time, there was a little girl named Lily. She loved to play.");
    assert(prompt.length % 16 !== 0);
    const r = await e.submit({ prompt, n: 4, temperature: 1, seed: 5, maxTokens: 20 }).done;
    assertEquals(r.choices.length, 4);
    assertEquals(r.usage.completionTokens, r.choices.reduce((s, c) => s + c.tokens.length, 0));
    assertEquals(m.kv.pagesCopied, 3, "three forks each copied the shared partial page once");
    assertEquals(e.freePages, free);
    await assertRejects(() => e.submit({ prompt: "x", n: 5 }), Error, /n: 5 sequences exceed/);
    for (const n of [0, 1.5]) await assertRejects(() => e.submit({ prompt: "x", n }), ParamError, /^n: must be a positive integer, got /);
    for (const bad of [-1, 1.5, NaN]) {
      await assertRejects(() => e.submit({ prompt: "x", beams: bad }), ParamError, /^beams: must be a non-negative integer, got /);
      await assertRejects(() => e.submit({ prompt: "x", maxTokens: bad }), ParamError, /^maxTokens: must be a non-negative integer, got /);
    }
    await assertRejects(() => e.submit({ prompt: "x", topP: 2 }), Error, /topP/);
    await assertRejects(() => e.submit({ prompt: [], maxTokens: 1 }), Error, /prompt/);
    await assertRejects(() => e.submit({ prompt: Array(m.contextLength + 1).fill(5) }), Error, /context/);
    const running = e.submit({ prompt: "Once", temperature: 0, maxTokens: 400 });
    // the first still waits for admission, and the queue holds one
    await assertRejects(() => e.submit({ prompt: "Two", maxTokens: 300 }), QueueFullError);
    let tokens = 0;
    let other: EngineRequest | null = null;
    for await (const ev of running) {
      if (ev.type === "token" && ++tokens === 2) other = e.submit({ prompt: "Two", temperature: 0, maxTokens: 300 });
      if (ev.type === "token" && tokens === 8) void e.close();
    }
    const res = await running.done;
    assertEquals(res.choices[0].finishReason, "abort");
    assertEquals((await other!.done).choices[0].finishReason, "abort");
    assertEquals(e.freePages, free);
  });
});

testShared("prefixCachePages must be a non-negative integer: a typed error before the engine starts", [MODEL], async () => {
  const m = await loadModel(MODEL);
  try {
    for (const bad of [-1, 1.5, NaN]) {
      await assertRejects(
        () => new Engine(m, { prefixCachePages: bad }),
        ParamError,
        /^prefixCachePages: must be a non-negative integer, got /,
      );
    }
  } finally {
    await m.close();
  }
});

testShared("maxQueue and maxStepRows must be positive integers: a typed error before the engine starts", [MODEL], async () => {
  const m = await loadModel(MODEL);
  try {
    for (const bad of [0, -1, 1.5, NaN]) {
      let err: unknown;
      try {
        new Engine(m, { maxQueue: bad });
      } catch (e) {
        err = e;
      }
      assert(err instanceof ParamError && /maxQueue/.test((err as Error).message), `maxQueue ${bad}: ${err}`);
    }
    let err: unknown;
    try {
      new Engine(m, { maxStepRows: 0 });
    } catch (e) {
      err = e;
    }
    assert(err instanceof ParamError, `maxStepRows 0: ${err}`);
  } finally {
    await m.close();
  }
});
