// Beam search through forked sequences.
import { assert, assertEquals, assertRejects, sharedPath, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import { generate } from "../src/generate.ts";
import { Engine } from "../src/engine/engine.ts";
import { BeamSearch } from "../src/engine/beam.ts";
import { NumericalError, ParamError } from "../src/errors.ts";
import { Sampler } from "../src/sampling/sampler.ts";
import type { SamplingParams } from "../src/sampling/params.ts";
import { drain } from "./drain.ts";

const MODEL = sharedPath("models", "stories260K", "stories260K.gguf");

function logSoftmax64(l: Float32Array): number[] {
  let mx = -Infinity;
  for (const x of l) mx = Math.max(mx, x);
  let s = 0;
  for (const x of l) s += Math.exp(x - mx);
  return Array.from(l, (x) => x - mx - Math.log(s));
}

testShared("beam: width 1 is greedy", [MODEL], async () => {
  const m = await loadModel(MODEL, { maxSequences: 4 });
  const alone = await drain(generate(m, "Once upon a time", { temperature: 0, maxTokens: 40 }));
  const e = new Engine(m);
  const res = await e.submit({ prompt: "Once upon a time", beams: 1, maxTokens: 40, earlyStopping: true }).done;
  await e.close();
  await m.close();
  assertEquals(res.choices.length, 1);
  assertEquals(res.choices[0].tokens, alone.tokens);
});

testShared("beam: width 4 returns the 4 best sequences under the length penalty (brute force, horizon 2)", [MODEL], async () => {
  for (const lengthPenalty of [1, 0, 2]) {
    const m = await loadModel(MODEL, { maxSequences: 4 });
    const tok = m.tokenizer;
    const prompt = tok.encode("The little dog was");
    // brute force: every one- and two-token continuation, scored exactly as documented
    const seq = m.newSequence();
    const l0 = logSoftmax64(await m.prefill(seq, prompt));
    const all: Array<{ tokens: number[]; score: number }> = [];
    for (let a = 0; a < m.vocabSize; a++) {
      if (tok.isEndOfGeneration(a)) {
        all.push({ tokens: [], score: l0[a] });
        continue;
      }
      const child = m.kv.fork(seq);
      const l1 = logSoftmax64(await m.decodeOne(child, a));
      m.releaseSequence(child);
      for (let b = 0; b < m.vocabSize; b++) {
        all.push({ tokens: tok.isEndOfGeneration(b) ? [a] : [a, b], score: (l0[a] + l1[b]) / Math.pow(2, lengthPenalty) });
      }
    }
    m.releaseSequence(seq);
    all.sort((x, y) => y.score - x.score);

    const e = new Engine(m);
    const res = await e.submit({ prompt, beams: 4, maxTokens: 2, lengthPenalty }).done;
    await e.close();
    await m.close();
    assertEquals(res.choices.map((c) => c.tokens), all.slice(0, 4).map((h) => h.tokens), `lengthPenalty ${lengthPenalty}`);
    for (let i = 0; i < 4; i++) {
      assert(Math.abs(res.choices[i].score! - all[i].score) < 1e-4, `score ${i}: ${res.choices[i].score} vs ${all[i].score}`);
    }
  }
});

testShared("beam: beams share the prompt's pages and give every page back", [MODEL], async () => {
  const m = await loadModel(MODEL, { maxSequences: 4 });
  const e = new Engine(m, { prefixCachePages: 0 });
  const free = e.freePages;
  const r = e.submit({ prompt: "Once upon a time, there was a little girl", beams: 4, n: 2, maxTokens: 30 });
  const texts: string[] = ["", ""];
  for await (const ev of r) texts[ev.choice] += ev.text;
  const res = await r.done;
  assertEquals(res.choices.length, 2);
  assertEquals(res.choices.map((c) => c.text), texts);
  assert(res.choices[0].score! >= res.choices[1].score!);
  assert(m.kv.pagesCopied > 0, "forks copied partial pages on write");
  assertEquals(e.freePages, free);
  assertEquals(e.activeSequences, 0);
  await e.close();
  await m.close();
});

// NaN logits follow the Sampler's rule (README "Hostile input"): such a token is never chosen, the others rank as if it
// were -Infinity; logits with no finite value at all are a NumericalError. (Beam search's own log-softmax made every
// score NaN: the beam offered no candidates and the search ended with no hypothesis.)
testShared("beam: a NaN logit is never chosen and the others keep their ranks; no finite logit is a NumericalError", [MODEL], async () => {
  const m = await loadModel(MODEL, { maxSequences: 4 });
  const seq = m.newSequence();
  const logits = (await m.prefill(seq, m.tokenizer.encode("The little dog was"))).slice();
  const free = m.kv.freeSequences;
  const order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  // the best id and the fourth NaN, as corrupt weights would leave them
  const nan = logits.slice(), banned = logits.slice();
  for (const id of [order[0], order[3]]) nan[id] = NaN, banned[id] = -Infinity;
  const run = (l: Float32Array) => {
    const b = new BeamSearch({ width: 3, lengthPenalty: 1, earlyStopping: false, maxTokens: 1, isEnd: () => false });
    b.start(m.kv.fork(seq));
    b.step([l], m.kv, false);
    assert(b.isDone && m.kv.freeSequences === free, "one step of maxTokens 1 ends the search and gives its sequences back");
    return b.best(3).map((h) => ({ tokens: h.tokens, logprobs: h.logprobs, score: h.score }));
  };
  const withNaN = run(nan);
  assertEquals(withNaN.map((h) => h.tokens), [[order[1]], [order[2]], [order[4]]]);
  assertEquals(withNaN, run(banned)); // the same bits as with those ids banned
  // all NaN: the model's error, as the Sampler reports it
  const b = new BeamSearch({ width: 2, lengthPenalty: 1, earlyStopping: false, maxTokens: 4, isEnd: () => false });
  b.start(m.kv.fork(seq));
  await assertRejects(() => b.step([new Float32Array(logits.length).fill(NaN)], m.kv, false), NumericalError, /no finite logit \(NaN\)/);
  b.abort(m.kv);
  m.releaseSequence(seq);
  assertEquals(m.kv.freeSequences, free + 1);
  await m.close();
});

// logitBias and the penalties reach beam search (they were validated and then ignored): each beam's logits are biased and
// penalised over its own history before the log-softmax, so width 1 is greedy under the same options.
testShared("beam: logitBias and the repeat, presence and frequency penalties apply; width 1 is greedy under them", [MODEL], async () => {
  const m = await loadModel(MODEL, { maxSequences: 4 });
  const prompt = "Once upon a time";
  const plain = (await drain(generate(m, prompt, { temperature: 0, maxTokens: 40 }))).tokens;
  const e = new Engine(m, { prefixCachePages: 0 });
  const free = e.freePages;
  for (const opts of [{ logitBias: { [plain[0]]: -Infinity } }, { repeatPenalty: 3 }, { presencePenalty: 1.5, frequencyPenalty: 0.5 }]) {
    const alone = (await drain(generate(m, prompt, { temperature: 0, maxTokens: 40, ...opts }))).tokens;
    assert(JSON.stringify(alone) !== JSON.stringify(plain), `${JSON.stringify(opts)} changes the greedy output`);
    const res = await e.submit({ prompt, beams: 1, maxTokens: 40, earlyStopping: true, ...opts }).done;
    assertEquals(res.choices[0].tokens, alone, JSON.stringify(opts));
  }
  // wider: a banned token is in no hypothesis, where without the ban the best one starts with it
  const wide = { prompt, beams: 3, maxTokens: 6 };
  const free3 = (await e.submit(wide).done).choices;
  assertEquals(free3[0].tokens[0], plain[0]);
  const banned = (await e.submit({ ...wide, logitBias: { [plain[0]]: -Infinity } }).done).choices;
  assertEquals(banned.length, 3);
  for (const c of banned) assert(!c.tokens.includes(plain[0]), `a hypothesis holds the banned id: ${c.tokens}`);
  assertEquals([e.freePages, e.activeSequences], [free, 0]);
  await e.close();
  await m.close();
});

testShared(
  "beam: a bias or penalty that leaves a beam no token is a ParamError naming it; the beams' sequences go back",
  [MODEL],
  async () => {
    const m = await loadModel(MODEL, { maxSequences: 4 });
    const seq = m.newSequence();
    const prompt = m.tokenizer.encode("The little dog was");
    const logits = (await m.prefill(seq, prompt)).slice();
    const free = m.kv.freeSequences;
    const everyId = Array.from({ length: m.vocabSize }, (_, id) => id);
    const cases: Array<[SamplingParams, string]> = [
      [{ logitBias: Object.fromEntries(everyId.map((id) => [id, -Infinity])) }, "logitBias"],
      [{ presencePenalty: 1e300 }, "presencePenalty"],
    ];
    for (const [params, param] of cases) {
      const scorer = new Sampler(m.vocabSize, params);
      const b = new BeamSearch({
        width: 2,
        lengthPenalty: 1,
        earlyStopping: false,
        maxTokens: 4,
        isEnd: () => false,
        penalties: { scorer, prompt: everyId }, // every id in the history: the penalty reaches all of them
      });
      b.start(m.kv.fork(seq));
      const err = await assertRejects(() => b.step([logits.slice()], m.kv, false), ParamError, /no token left to sample/);
      assertEquals((err as ParamError).param, param);
      b.abort(m.kv);
      assertEquals(m.kv.freeSequences, free);
    }
    m.releaseSequence(seq);
    await m.close();
  },
);
