// Beam search through forked sequences.
import { assert, assertEquals, sharedPath, testShared } from "./harness.ts";
import { loadModel } from "../src/model/load.ts";
import { generate } from "../src/generate.ts";
import { Engine } from "../src/engine/engine.ts";
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
