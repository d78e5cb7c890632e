// Beam search through forked sequences.
import { assert, assertEquals, assertRejects, sharedPath, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import { generate } from "../src/generate.ts";
import { Engine } from "../src/engine/engine.ts";
import { BeamSearch } from "../src/engine/beam.ts";
import { NumericalError } from "../src/errors.ts";
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
