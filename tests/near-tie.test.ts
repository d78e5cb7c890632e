/**
 * The near-tie rule itself (tests/near-tie.ts), on WASM so it runs everywhere: it recomputes llama.cpp's own
 * margins (equal to those the synthetic golden carries), accepts the departure a non-exact backend makes at
 * stories260K-q4_0's step 74 (llama.cpp's margin there is 0.006), and refuses a departure anywhere the
 * reference is not a near tie, or to any token but the reference's runner-up.
 */
import { assert, assertClose, assertEquals, assertRejects, readJSON, sharedPath, testShared } from "./harness.ts";
import { assertAllowedDeparture, compareGreedyIds, NEAR_TIE, referenceSteps } from "./near-tie.ts";

interface Row {
  model: string;
  prompt_ids: number[];
  greedy_ids: number[];
  top1_margins?: number[];
}

const Q4_0 = sharedPath("models", "stories260K", "stories260K-q4_0.gguf");
const GOLDEN = sharedPath("golden", "stories260K.json");
const SYNTH = sharedPath("models", "synthetic-quants", "synthq-q4_k_m.gguf");
const SYNTH_GOLDEN = sharedPath("golden", "synthetic-quants.json");

testShared("near tie: the recomputed margins are llama.cpp's own (the synthetic golden carries them)", [SYNTH, SYNTH_GOLDEN], async () => {
  const rows = readJSON<Row[]>(SYNTH_GOLDEN).filter((r) => r.model.endsWith("synthq-q4_k_m.gguf") && r.top1_margins);
  assert(rows.length > 0, "golden rows with margins");
  for (const row of rows) {
    const steps = await referenceSteps(SYNTH, row);
    assertClose(steps.margins, row.top1_margins!.slice(0, steps.margins.length), 1e-6, "margins", 1);
  }
});

testShared(
  "near tie: a departure is allowed only to the runner-up where llama.cpp's own margin is below the bound",
  [Q4_0, GOLDEN],
  async () => {
    const row = readJSON<Row[]>(GOLDEN).find((r) => r.model === "stories260K/stories260K-q4_0.gguf")!;
    const steps = await referenceSteps(Q4_0, row);
    assert(steps.margins[74] < NEAR_TIE, `step 74 is a near tie of the reference: ${steps.margins[74]}`);
    assertAllowedDeparture(74, steps.runnerUps[74], steps);
    const departed = [...row.greedy_ids.slice(0, 74), steps.runnerUps[74], 0, 0];
    assertEquals(compareGreedyIds(departed, steps), 74);

    await assertRejects(() => assertAllowedDeparture(74, (steps.runnerUps[74] + 1) % 512, steps), Error, /allowed only/);
    const clear = steps.margins.findIndex((m) => m > 1);
    assert(clear >= 0, "a step where the reference is sure");
    await assertRejects(() => assertAllowedDeparture(clear, steps.runnerUps[clear], steps), Error, new RegExp(`step ${clear}:`));
    await assertRejects(() => compareGreedyIds([...row.greedy_ids.slice(0, clear), steps.runnerUps[clear]], steps), Error, /allowed only/);
    assertEquals(compareGreedyIds(row.greedy_ids, steps), row.greedy_ids.length);
  },
);
