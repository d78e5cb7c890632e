/**
 * The short run of the fuzz campaign (scripts/fuzz, `npm run fuzz` for the long one): seeded
 * mutants of every corpus (GGUF F32 and Q4_0, safetensors + config.json, llama2.c + tokenizer.bin,
 * tokenizer.json), the same generator and seed as the long run, each loaded in a child process of
 * this runtime under a 2 s watchdog. Every outcome must be a load that ran or a typed error: no
 * hang, no untyped error, no WebAssembly trap, no crash, no memory growth out of proportion.
 */
import { assert, assertEquals, runtime, test, testShared } from "./harness.ts";
import { DEFAULT_SEED, formatSummary, fuzz, sharedDir } from "../scripts/fuzz/run.ts";
import { CORPORA, mutant, sharedFilesNeeded } from "../scripts/fuzz/mutate.ts";

const PER_CORPUS = 40;

testShared(
  `fuzz: ${PER_CORPUS} mutants of each of ${CORPORA.length} corpora load or fail typed (${runtime})`,
  sharedFilesNeeded(sharedDir()),
  async () => {
    if (runtime === "node") return;
    const s = await fuzz({ runtime, seed: DEFAULT_SEED, count: PER_CORPUS, batch: PER_CORPUS });
    const report = formatSummary(s);
    assertEquals(s.failures.length, 0, report);
    for (const c of CORPORA) {
      const v = s.corpora[c]!;
      assertEquals(v.mutants, PER_CORPUS, `${c}: every mutant has an outcome\n${report}`);
      assert((v.outcomes.ran ?? 0) > 0, `${c}: some mutants still load and run (the mutations are not all fatal)\n${report}`);
    }
  },
);

test("fuzz: a mutant is a pure function of (corpus, seed, index)", () => {
  const base = {
    model: Uint8Array.from({ length: 4096 }, (_, i) => i & 0xff),
    tokenizer: new TextEncoder().encode('{"a":[1,2,3],"b":{"c":4}}'),
  };
  for (const corpus of ["llama2c", "tokenizer-json"] as const) {
    for (let i = 0; i < 20; i++) {
      const a = mutant(corpus, base, 5, i), b = mutant(corpus, base, 5, i);
      assertEquals(a.what, b.what);
      assertEquals([...a.files.model], [...b.files.model]);
    }
    assert(
      mutant(corpus, base, 5, 0).what !== mutant(corpus, base, 6, 0).what ||
        mutant(corpus, base, 5, 1).what !== mutant(corpus, base, 6, 1).what,
      "seeds differ",
    );
  }
  assertEquals([...base.model.subarray(0, 4)], [0, 1, 2, 3], "the base is never written");
});
