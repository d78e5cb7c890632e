import { assert, assertClose, assertEquals, assertRejects, test } from "./harness.ts";
import { NumericalError, ParamError } from "../src/errors.ts";
import { type SamplingParams, validateSamplingParams } from "../src/sampling/params.ts";
import { Rng } from "../src/sampling/rng.ts";
import { argmax, expNonPositive, expTotal1, expWeights, expWeights1, logSoftmax, logSoftmaxAt, Sampler } from "../src/sampling/sampler.ts";

// ---------------------------------------------------------------- helpers

function randomLogits(rng: Rng, n: number, scale = 4): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.nextFloat() * 2 - 1) * scale;
  return out;
}

/** Logits whose softmax is exactly (up to rounding) the given probabilities. */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs, (p) => Math.log(p));
}

/** Every id drawn in `draws` samples from fresh copies of `logits`, ascending. */
function drawnIds(params: SamplingParams, logits: Float32Array, draws = 3000): number[] {
  const s = new Sampler(logits.length, { seed: 7, ...params });
  const seen = new Set<number>();
  for (let i = 0; i < draws; i++) seen.add(s.sample(logits.slice()).id);
  return [...seen].sort((a, b) => a - b);
}

/** The kept set the sampler reports for one draw from these logits. */
function candidatesOf(params: SamplingParams, logits: Float32Array): number[] {
  const s = new Sampler(logits.length, { seed: 1, ...params });
  s.sample(logits.slice());
  return s.candidates();
}

/** log softmax(logits / T) in float64 with Math.exp: the reference for logprobs. */
function refLogSoftmax(logits: ArrayLike<number>, temperature = 1): number[] {
  const z = Array.from(logits, (x) => x / temperature);
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
  return z.map((x) => x - lse);
}

// Probabilities in id order, deliberately not sorted: sorted they are
// 0.5 (id 3), 0.2 (id 0), 0.15 (id 4), 0.1 (id 1), 0.05 (id 2).
const PROBS = [0.2, 0.1, 0.05, 0.5, 0.15];

// ---------------------------------------------------------------- rng

test("Rng: first outputs are pinned (xoshiro128** seeded by splitmix32)", () => {
  // Cross-checked against an independent Python implementation with explicit u32 masks.
  const r0 = new Rng(0), r42 = new Rng(42), rMax = new Rng(0xffffffff);
  assertEquals([0, 1, 2, 3, 4, 5].map(() => r0.nextU32()), [3809008728, 1133695204, 53579671, 2891528803, 139681546, 2203266335]);
  assertEquals([0, 1, 2, 3, 4, 5].map(() => r42.nextU32()), [2837322924, 544945897, 479756282, 3500138142, 339756180, 113173290]);
  assertEquals([0, 1, 2, 3].map(() => rMax.nextU32()), [835879718, 1921286648, 2356205009, 1885780724]);
});

test("Rng: nextFloat is the top 24 bits of nextU32, in [0, 1)", () => {
  const a = new Rng(9), b = new Rng(9);
  for (let i = 0; i < 1000; i++) {
    const f = a.nextFloat();
    assertEquals(f, (b.nextU32() >>> 8) / 16777216);
    assert(f >= 0 && f < 1, `nextFloat out of range: ${f}`);
  }
});

test("Rng: clone continues the same stream independently", () => {
  const a = new Rng(123);
  a.nextU32();
  const b = a.clone();
  const fromA = [a.nextU32(), a.nextU32(), a.nextU32()];
  const fromB = [b.nextU32(), b.nextU32(), b.nextU32()];
  assertEquals(fromB, fromA);
  b.nextU32();
  assert(a.nextU32() !== b.nextU32() || a.nextU32() !== b.nextU32(), "clone must not share state with its source");
});

// ---------------------------------------------------------------- exp and free functions

test("expNonPositive matches Math.exp within 4 ulp over [-708, 0] and is exact at 0", () => {
  const rng = new Rng(5);
  let worst = 0;
  for (let i = 0; i < 20000; i++) {
    const x = -rng.nextFloat() * 708 * (i % 2 ? 1 : 0.01);
    const e = Math.exp(x);
    worst = Math.max(worst, Math.abs(expNonPositive(x) - e) / e);
  }
  assert(worst <= 9e-16, `worst relative error ${worst}`);
  assertEquals(expNonPositive(0), 1);
  assertEquals(expNonPositive(-Infinity), 0);
  assertEquals(expNonPositive(NaN), 0);
  assertEquals(expNonPositive(-800), 0);
});

test("argmax: ties go to the lowest id, NaN is skipped, all -Infinity gives the first", () => {
  assertEquals(argmax(Float32Array.from([1, 3, 2, 3])), 1);
  assertEquals(argmax(Float32Array.from([NaN, -1, NaN, 0.5])), 3);
  assertEquals(argmax(Float32Array.from([-Infinity, -Infinity])), 0);
  assertEquals(argmax(Float32Array.from([NaN])), -1);
  assertEquals(argmax(new Float32Array(0)), -1);
});

test("temperature 1's weights and a greedy pick's sum have expWeights' bits: every weight, the sum, the count, the logprob", () => {
  const rng = new Rng(5);
  // below the max: -Infinity, NaN, zeros, weights that underflow or nearly; once in ten arrays a +Infinity max
  const specials = [-Infinity, NaN, -0, 0, -800, -745.2, -745, 1e-40, -1e-45, -3.4e38];
  let sums = 0;
  for (let rep = 0; rep < 40; rep++) {
    const n = 1 + Math.floor(rng.nextFloat() * 3000);
    const logits = randomLogits(rng, n, rep < 20 ? 4 : 400);
    for (let k = 0; k < n / 10; k++) logits[Math.floor(rng.nextFloat() * n)] = specials[k % specials.length];
    if (rep % 10 === 9) logits[Math.floor(rng.nextFloat() * n)] = Infinity; // max +Infinity: every other weight 0
    const best = argmax(logits);
    if (best < 0) continue;
    const max = logits[best];
    const w0 = new Float64Array(n), w1 = new Float64Array(n), c0 = new Int32Array(1), c1 = new Int32Array(1);
    const total = expWeights(logits, w0, max, 1, c0);
    assert(Object.is(expWeights1(logits, w1, max, c1), total), `rep ${rep}: expWeights1's sum`);
    assert(Object.is(expTotal1(logits, max), total), `rep ${rep}: expTotal1's sum`);
    assertEquals(c1[0], c0[0]);
    for (let i = 0; i < n; i++) assert(Object.is(w1[i], w0[i]), `rep ${rep}, id ${i}: ${w1[i]} against ${w0[i]}`);
    // the greedy pick's logprob is 0 - log(sum), the sum of the temperature-1 weights
    const pick = new Sampler(n, { temperature: 0 }).sample(logits.slice());
    assertEquals(pick.id, best);
    assert(Object.is(pick.logprob, 0 - Math.log(total)), `rep ${rep}: logprob ${pick.logprob} against ${0 - Math.log(total)}`);
    if (c0[0] > n / 2) sums++;
  }
  assert(sums >= 30, `${sums} of 40 arrays had most of their weights > 0`); // sums whose bits depend on their order
});

test("sample(logits, history, false): a greedy pick's id without its logprob (NaN); draws and logprobs alternatives as before", async () => {
  const rng = new Rng(9);
  for (let rep = 0; rep < 30; rep++) {
    const logits = randomLogits(rng, 500, 4);
    if (rep % 3 === 0) logits[7] = NaN, logits[11] = -Infinity;
    const history = [3, 5, 3];
    for (const params of [{ temperature: 0 }, { temperature: 0.7, topK: 1 }, { temperature: 0, repeatPenalty: 1.3 }]) {
      const full = new Sampler(500, params).sample(logits.slice(), history);
      const bare = new Sampler(500, params).sample(logits.slice(), history, false);
      assertEquals(bare.id, full.id);
      assert(Number.isNaN(bare.logprob) && full.logprob <= 0, `logprob ${bare.logprob}, ${full.logprob}`);
      assertEquals(bare.top.length, 0);
    }
    // a draw needs its weights anyway, and alternatives need the logprobs: both as with logprob true
    for (const params of [{ temperature: 0.8, seed: rep }, { temperature: 0, logprobs: 3 }]) {
      const full = new Sampler(500, params).sample(logits.slice(), history);
      const bare = new Sampler(500, params).sample(logits.slice(), history, false);
      assertEquals(bare, full);
    }
  }
  const banned = Float32Array.from([-Infinity, NaN, -Infinity]);
  await assertRejects(() => new Sampler(3, { temperature: 0 }).sample(banned, [], false), NumericalError, /no finite logit/);
});

test("logSoftmaxAt equals float64 log-softmax, and stays finite for huge logits", () => {
  const logits = randomLogits(new Rng(3), 50, 10);
  const ref = refLogSoftmax(logits);
  assertClose(Array.from(logits, (_, i) => logSoftmaxAt(logits, i)), ref, 1e-9, "log-softmax", 1);
  const huge = Float32Array.from([1000, 999, -1000]);
  assertClose([logSoftmaxAt(huge, 0), logSoftmaxAt(huge, 1)], [-Math.log1p(Math.exp(-1)), -1 - Math.log1p(Math.exp(-1))], 1e-12, "huge", 1);
  assert(logSoftmaxAt(huge, 2) < -1999, "a far-below logit has a very negative logprob");
});

test("logSoftmax (beam search's scores) has the bits of its formula in float64, a greedy pick's logprob, and the Sampler's NaN rule", () => {
  const rng = new Rng(11);
  const specials = [-Infinity, NaN, -0, -800, -745.2, 1e-40, -3.4e38];
  for (let rep = 0; rep < 30; rep++) {
    const n = 1 + Math.floor(rng.nextFloat() * 4000);
    const logits = randomLogits(rng, n, rep < 15 ? 4 : 60);
    for (let k = 0; k < n / 10; k++) logits[Math.floor(rng.nextFloat() * n)] = specials[k % specials.length];
    if (rep % 10 === 9) logits[Math.floor(rng.nextFloat() * n)] = Infinity;
    if (argmax(logits) < 0) continue;
    // the reference, written out: max over the non-NaN logits, exp of each difference in index order, one Math.log
    let max = -Infinity;
    for (const x of logits) if (x > max) max = x;
    let sum = 0;
    for (const x of logits) if (x > -Infinity) sum += expNonPositive(x === max ? 0 : x - max);
    const logSum = Math.log(sum);
    const got = logSoftmax(logits);
    for (let i = 0; i < n; i++) {
      const x = logits[i];
      const want = x > -Infinity ? (x === max ? 0 : x - max) - logSum : -Infinity; // NaN: never chosen, as the Sampler's rule
      assert(Object.is(got[i], want), `rep ${rep}, id ${i} (logit ${x}): ${got[i]} against ${want}`);
    }
    // one implementation: a greedy pick's logprob is the same number
    const pick = new Sampler(n, { temperature: 0 }).sample(logits.slice());
    assert(Object.is(pick.logprob, got[pick.id]), `rep ${rep}: the Sampler's logprob ${pick.logprob}, logSoftmax ${got[pick.id]}`);
  }
  // against Math.exp's log-softmax, the scores beam search had before
  const plain = randomLogits(rng, 32000, 10);
  assertClose(Array.from(logSoftmax(plain)), refLogSoftmax(plain), 1e-9, "log-softmax", 1);
  // written into the caller's array
  const out = new Float64Array(3);
  assert(logSoftmax(Float32Array.from([1, NaN, 0]), out) === out, "fills the array it is given");
  assertEquals(out[1], -Infinity);
  assertClose([out[0], out[2]], refLogSoftmax([1, 0]), 1e-12, "around a NaN", 1);
});

test("logSoftmax: no finite logit is a NumericalError (NaN from the model), a wrong-sized output a ParamError", async () => {
  for (const bad of [[NaN, NaN], [-Infinity, NaN], [-Infinity, -Infinity], []]) {
    await assertRejects(() => logSoftmax(Float32Array.from(bad)), NumericalError, /no finite logit/);
  }
  const e = await assertRejects(() => logSoftmax(new Float32Array(4), new Float64Array(3)), ParamError, /^out: /);
  assertEquals((e as ParamError).param, "out");
});

// ---------------------------------------------------------------- greedy

test("topK = 1 equals greedy (argmax) on random logits", () => {
  const rng = new Rng(11);
  const topK1 = new Sampler(1000, { topK: 1, temperature: 1.3, seed: 2 });
  const temp0 = new Sampler(1000, { temperature: 0, topK: 40, topP: 0.5, seed: 3 });
  for (let i = 0; i < 50; i++) {
    const logits = randomLogits(rng, 1000);
    const expected = argmax(logits);
    assertEquals(topK1.sample(logits.slice()).id, expected, `topK=1, vector ${i}`);
    assertEquals(temp0.sample(logits.slice()).id, expected, `temperature=0, vector ${i}`);
  }
});

test("greedy breaks ties towards the lowest id and reports only the chosen id as candidate", () => {
  const s = new Sampler(5, { temperature: 0 });
  assertEquals(s.sample(Float32Array.from([0, 2, 1, 2, 2])).id, 1);
  assertEquals(s.candidates(), [1]);
});

test("a very low temperature on the sampling path picks the argmax", () => {
  const rng = new Rng(12);
  const s = new Sampler(300, { temperature: 1e-4, seed: 4 });
  for (let i = 0; i < 20; i++) {
    const logits = randomLogits(rng, 300);
    assertEquals(s.sample(logits.slice()).id, argmax(logits));
  }
});

// ---------------------------------------------------------------- truncation sets

test("top-k keeps exactly the k most probable ids (ties -> lower id)", () => {
  const logits = logitsOf(PROBS);
  assertEquals(candidatesOf({ topK: 3 }, logits), [0, 3, 4]);
  assertEquals(drawnIds({ topK: 3 }, logits), [0, 3, 4]);
  // Ties at the boundary: ids 1, 2, 4 share the second-best logit; k = 3 keeps 0, 1, 2.
  const tied = Float32Array.from([5, 1, 1, 0, 1, -1]);
  assertEquals(candidatesOf({ topK: 3 }, tied), [0, 1, 2]);
  // k at or beyond the vocabulary is no truncation at all.
  assertEquals(candidatesOf({ topK: 99 }, logits), [0, 1, 2, 3, 4]);
});

test("top-p keeps the smallest descending prefix reaching topP", () => {
  const logits = logitsOf(PROBS);
  // cumulative in order 3, 0, 4, 1, 2: 0.5, 0.7, 0.85, 0.95, 1.0
  assertEquals(candidatesOf({ topP: 0.4 }, logits), [3]);
  assertEquals(candidatesOf({ topP: 0.65 }, logits), [0, 3]);
  assertEquals(candidatesOf({ topP: 0.8 }, logits), [0, 3, 4]);
  assertEquals(candidatesOf({ topP: 0.9 }, logits), [0, 1, 3, 4]);
  assertEquals(candidatesOf({ topP: 1 }, logits), [0, 1, 2, 3, 4]);
  assertEquals(drawnIds({ topP: 0.8 }, logits), [0, 3, 4]);
  assertEquals(drawnIds({ topP: 0.9 }, logits), [0, 1, 3, 4]);
});

test("top-p fractions are of the top-k set after renormalisation", () => {
  const logits = logitsOf(PROBS);
  // Over everything, 0.5 < 0.65 so two ids are needed; over the top 2, id 3 alone has 0.5 / 0.7 = 0.71.
  assertEquals(candidatesOf({ topP: 0.65 }, logits), [0, 3]);
  assertEquals(candidatesOf({ topK: 2, topP: 0.65 }, logits), [3]);
  assertEquals(drawnIds({ topK: 2, topP: 0.65 }, logits), [3]);
  // Over everything 0.85 < 0.88 needs id 1 too; over the top 4 (mass 0.95), 0.85 / 0.95 = 0.895 suffices.
  assertEquals(candidatesOf({ topP: 0.88 }, logits), [0, 1, 3, 4]);
  assertEquals(candidatesOf({ topK: 4, topP: 0.88 }, logits), [0, 3, 4]);
});

test("min-p keeps p >= minP * p_max", () => {
  const logits = logitsOf(PROBS);
  assertEquals(candidatesOf({ minP: 0.35 }, logits), [0, 3]); // threshold 0.175
  assertEquals(candidatesOf({ minP: 0.25 }, logits), [0, 3, 4]); // threshold 0.125
  assertEquals(candidatesOf({ minP: 1 }, logits), [3]);
  assertEquals(drawnIds({ minP: 0.25 }, logits), [0, 3, 4]);
  // min-p combined with top-k and with top-p: the intersection of the prefixes.
  assertEquals(candidatesOf({ minP: 0.15, topK: 2 }, logits), [0, 3]);
  assertEquals(candidatesOf({ minP: 0.15, topP: 0.9 }, logits), [0, 1, 3, 4]); // 0.075 threshold keeps 0.1
  assertEquals(candidatesOf({ minP: 0.25, topP: 0.9 }, logits), [0, 3, 4]);
  assertEquals(candidatesOf({ minP: 0.25, topK: 4, topP: 0.99 }, logits), [0, 3, 4]); // all three at once
});

test("temperature changes which ids survive top-p", () => {
  const logits = logitsOf(PROBS);
  // T = 0.5 squares the probabilities (0.04, 0.01, 0.0025, 0.25, 0.0225): id 3 alone holds 0.25 / 0.325 = 0.77.
  assertEquals(candidatesOf({ topP: 0.75, temperature: 0.5 }, logits), [3]);
  assertEquals(candidatesOf({ topP: 0.75, temperature: 1 }, logits), [0, 3, 4]);
});

test("top-p without top-k on a large vocabulary keeps the same set as a full sort", () => {
  const rng = new Rng(21);
  for (const topP of [0.3, 0.9, 0.99]) {
    const logits = randomLogits(rng, 5000, 3);
    const order = Array.from(logits, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
    const probs = refLogSoftmax(logits).map(Math.exp);
    const expected: number[] = [];
    let cumulative = 0;
    for (const id of order) {
      expected.push(id);
      cumulative += probs[id];
      if (cumulative >= topP) break;
    }
    assertEquals(candidatesOf({ topP }, logits), expected.sort((a, b) => a - b), `topP ${topP}`);
  }
});

test("top-k on a large vocabulary matches a full sort", () => {
  const rng = new Rng(22);
  const logits = randomLogits(rng, 5000, 3);
  const order = Array.from(logits, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  assertEquals(candidatesOf({ topK: 40 }, logits), order.slice(0, 40).sort((a, b) => a - b));
});

test("top-k with ties everywhere and banned ids matches a full sort (ties -> lower id), for k from 1 to all but one", () => {
  const rng = new Rng(23);
  const values = [-Infinity, -2, -1, -1, 0, 0.5, 1, 2];
  const logits = Float32Array.from({ length: 3000 }, () => values[Math.floor(rng.nextFloat() * values.length)]);
  const order = Array.from(logits, (_, i) => i).filter((i) => logits[i] > -Infinity).sort((a, b) => logits[b] - logits[a] || a - b);
  for (const topK of [1, 2, 3, 50, 377, 1000, order.length - 1]) {
    assertEquals(candidatesOf({ topK }, logits), order.slice(0, topK).sort((a, b) => a - b), `topK ${topK}`);
  }
});

// ---------------------------------------------------------------- bias and penalties

test("penalties change the logits by the documented amounts", () => {
  const logits = Float32Array.from([2, -1, 0.5, 3, -2, 1]);
  const s = new Sampler(6, { repeatPenalty: 2, repeatLastN: 3, presencePenalty: 0.5, frequencyPenalty: 0.25, seed: 1 });
  // window (last 3) = {1, 4, 3}; whole-history counts: 0 -> 1, 1 -> 2, 3 -> 1, 4 -> 1
  s.applyPenalties(logits, [0, 1, 1, 4, 3]);
  assertEquals(Array.from(logits), [
    2 - 0.5 - 0.25, // not in the window: presence + 1 * frequency
    -1 * 2 - 0.5 - 0.5, // negative: multiplied, then presence + 2 * frequency
    0.5, // never seen
    3 / 2 - 0.5 - 0.25, // positive: divided
    -2 * 2 - 0.5 - 0.25,
    1,
  ]);
});

test("repeat penalty: once per distinct id, repeatLastN -1 is the whole history, 0 is off", () => {
  const history = [0, 0, 0, 1, 2];
  const whole = Float32Array.from([3, 3, 3, 3]);
  new Sampler(4, { repeatPenalty: 1.5, repeatLastN: -1 }).applyPenalties(whole, history);
  assertEquals(Array.from(whole), [2, 2, 2, 3]);
  const last2 = Float32Array.from([3, 3, 3, 3]);
  new Sampler(4, { repeatPenalty: 1.5, repeatLastN: 2 }).applyPenalties(last2, history);
  assertEquals(Array.from(last2), [3, 2, 2, 3]);
  const off = Float32Array.from([3, 3, 3, 3]);
  new Sampler(4, { repeatPenalty: 1.5, repeatLastN: 0 }).applyPenalties(off, history);
  assertEquals(Array.from(off), [3, 3, 3, 3]);
  // Zero stays zero (0 * p), and the default window is 64 tokens.
  const zero = new Float32Array(4);
  new Sampler(4, { repeatPenalty: 3 }).applyPenalties(zero, history);
  assertEquals(Array.from(zero), [0, 0, 0, 0]);
  const longHistory = [3, ...new Array(64).fill(0)];
  const window = Float32Array.from([3, 3, 3, 3]);
  new Sampler(4, { repeatPenalty: 1.5 }).applyPenalties(window, longHistory);
  assertEquals(Array.from(window), [2, 3, 3, 3], "token 3 is 65 back, outside the default window");
});

test("applyPenalties is repeatable: scratch is clean between calls", () => {
  const s = new Sampler(4, { frequencyPenalty: 1, repeatPenalty: 2 });
  const a = Float32Array.from([4, 4, 4, 4]), b = Float32Array.from([4, 4, 4, 4]);
  s.applyPenalties(a, [1, 1, 2]);
  s.applyPenalties(b, [1, 1, 2]);
  assertEquals(Array.from(a), [4, 0, 1, 4]);
  assertEquals(Array.from(b), Array.from(a));
  const c = Float32Array.from([4, 4, 4, 4]);
  s.applyPenalties(c, [3]);
  assertEquals(Array.from(c), [4, 4, 4, 1]);
});

test("logit bias is added first; -Infinity bans a token", () => {
  const biased = Float32Array.from([1, 2, 3]);
  new Sampler(3, { logitBias: { 0: 0.5, 2: -1 } }).applyPenalties(biased, []);
  assertEquals(Array.from(biased), [1.5, 2, 2]);
  // Bias then repeat penalty: (2 + 2) / 2 = 2, not 2 / 2 + 2 = 3.
  const ordered = Float32Array.from([2, 0]);
  new Sampler(2, { logitBias: new Map([[0, 2]]), repeatPenalty: 2 }).applyPenalties(ordered, [0]);
  assertEquals(Array.from(ordered), [2, 0]);

  const logits = logitsOf(PROBS);
  const banned = { logitBias: { 3: -Infinity } };
  assertEquals(new Sampler(5, { ...banned, temperature: 0 }).sample(logits.slice()).id, 0);
  assertEquals(drawnIds(banned, logits), [0, 1, 2, 4]);
  assert(!candidatesOf(banned, logits).includes(3), "a banned id is never a candidate");
});

test("banning every token is a ParamError, not a silent pick", async () => {
  const s = new Sampler(2, { logitBias: { 0: -Infinity, 1: -Infinity } });
  await assertRejects(() => s.sample(Float32Array.from([1, 2])), ParamError, /every logit/);
});

/** The error every way of picking from `logits` under `params` and `history` throws: greedy, a draw, and beam search's scores. */
async function nothingLeft(params: SamplingParams, logits: number[], history: number[]): Promise<Error[]> {
  const errors: Error[] = [];
  const V = logits.length;
  for (const temperature of [0, 0.7]) {
    const s = new Sampler(V, { ...params, temperature, seed: 3 });
    errors.push(await assertRejects(() => s.sample(Float32Array.from(logits), history), Error));
  }
  const s = new Sampler(V, params);
  errors.push(await assertRejects(() => s.logSoftmax(Float32Array.from(logits), history, new Float64Array(V)), Error));
  return errors;
}

test("a penalty that takes out every token is a ParamError naming it (was a NumericalError blaming the model)", async () => {
  const logits = [1, -2, 0.5, 3, -1, 2], negative = [-1, -2, -0.5, -3, -1, -2], every = [0, 1, 2, 3, 4, 5];
  const cases: Array<[SamplingParams, number[], string]> = [
    [{ presencePenalty: 1e300 }, logits, "presencePenalty"],
    [{ frequencyPenalty: 1e300 }, logits, "frequencyPenalty"],
    [{ presencePenalty: 1e300, frequencyPenalty: 1 }, logits, "presencePenalty"], // the larger of the two names it
    [{ presencePenalty: 1, frequencyPenalty: 1e300 }, logits, "frequencyPenalty"],
    [{ repeatPenalty: 1e300 }, negative, "repeatPenalty"], // x * p for negative logits
    [{ repeatPenalty: 1e300, presencePenalty: 1e-3 }, negative, "repeatPenalty"], // it took them out before the presence penalty
  ];
  for (const [params, l, param] of cases) {
    for (const e of await nothingLeft(params, l, every)) {
      assert(e instanceof ParamError && e.param === param, `${JSON.stringify(params)}: ${e}`);
      assert(/no token left to sample: the penalty/.test(e.message), e.message);
    }
  }
  // the bias bans half, the penalty takes the rest: both named, the bias first
  for (
    const e of await nothingLeft({ logitBias: { 0: -Infinity, 1: -Infinity, 2: -Infinity }, presencePenalty: 1e300 }, logits, [3, 4, 5])
  ) {
    assert(e instanceof ParamError && e.param === "logitBias", `${e}`);
    assert(/logitBias and presencePenalty/.test(e.message), e.message);
  }
  // a penalty that leaves one token: that token, no error
  for (const temperature of [0, 0.7]) {
    assertEquals(new Sampler(6, { presencePenalty: 1e300, temperature, seed: 1 }).sample(Float32Array.from(logits), [0, 1, 2, 3, 5]).id, 4);
  }
});

test("no finite logit from the model stays a NumericalError whatever the bias; the last drawable one banned is the bias's", async () => {
  const V = 4;
  // the model's NaN or -Infinity everywhere: the caller's bias on one id is not to blame (it was a ParamError for -Infinity)
  for (const bad of [NaN, -Infinity]) {
    for (const params of [{}, { logitBias: { 1: -Infinity } }, { logitBias: { 1: 2 } }, { presencePenalty: 1 }]) {
      for (const e of await nothingLeft(params, new Array(V).fill(bad), [0, 1])) {
        assert(
          e instanceof NumericalError && /the model computed no finite logit/.test(e.message),
          `${bad}, ${JSON.stringify(params)}: ${e}`,
        );
      }
    }
  }
  // NaN everywhere but id 2, which the bias bans or the penalty takes out: the NaNs are the model's, and say more about
  // what went wrong than the one token the caller took out
  const mostlyNaN = [NaN, NaN, 1, NaN];
  for (const params of [{ logitBias: { 2: -Infinity } }, { frequencyPenalty: 1e300 }]) {
    for (const e of await nothingLeft(params, mostlyNaN, [2])) {
      assert(e instanceof NumericalError && /NaN/.test(e.message), `${JSON.stringify(params)}: ${e}`);
    }
  }
  // finite logits (-Infinity elsewhere) but id 2, which the bias bans or the penalty takes out: the caller left nothing
  const oneLeft = [-Infinity, -Infinity, 1, -Infinity];
  for (
    const [params, param] of [[{ logitBias: { 2: -Infinity } }, "logitBias"], [{ frequencyPenalty: 1e300 }, "frequencyPenalty"]] as const
  ) {
    for (const e of await nothingLeft(params, oneLeft, [2])) assert(e instanceof ParamError && e.param === param, `${param}: ${e}`);
  }
});

test("Sampler.logSoftmax (beam search's scores) is applyPenalties, then logSoftmax, bit for bit", () => {
  const rng = new Rng(5);
  const params: SamplingParams = { logitBias: { 3: -Infinity, 7: 1.5 }, repeatPenalty: 1.3, presencePenalty: 0.4, frequencyPenalty: 0.2 };
  for (let rep = 0; rep < 10; rep++) {
    const logits = randomLogits(rng, 300, 6), history = Array.from({ length: 40 }, () => Math.floor(rng.nextFloat() * 300));
    const want = logits.slice();
    new Sampler(300, params).applyPenalties(want, history);
    const got = new Sampler(300, params).logSoftmax(logits, history, new Float64Array(300));
    assertEquals(Array.from(got), Array.from(logSoftmax(want)));
    assertEquals(Array.from(logits), Array.from(want), "the logits are edited in place, as a draw's are");
    assertEquals(got[3], -Infinity);
  }
});

test("history ids outside the vocabulary are refused before logits change", async () => {
  const s = new Sampler(3, { repeatPenalty: 2, logitBias: { 0: 1 } });
  const logits = Float32Array.from([1, 1, 1]);
  const e = await assertRejects(() => s.applyPenalties(logits, [0, 3]), ParamError);
  assertEquals((e as ParamError).param, "history");
  assertEquals(Array.from(logits), [1, 1, 1]);
  await assertRejects(() => s.sample(new Float32Array(4)), ParamError, /logits/);
});

// ---------------------------------------------------------------- determinism

test("the same seed repeats exactly; another seed differs", () => {
  const logits = randomLogits(new Rng(30), 64, 1);
  const run = (seed: number) => {
    const s = new Sampler(64, { seed, topP: 0.95 });
    return Array.from({ length: 60 }, () => s.sample(logits.slice()).id);
  };
  assertEquals(run(99), run(99));
  assert(JSON.stringify(run(99)) !== JSON.stringify(run(100)), "seeds 99 and 100 gave the same 60 tokens");
});

test("fork: reproducible from a seeded parent, independent of it, explicit seed = fresh sampler", () => {
  const logits = randomLogits(new Rng(31), 64, 1);
  const draw = (s: Sampler) => Array.from({ length: 30 }, () => s.sample(logits.slice()).id);
  const a = new Sampler(64, { seed: 5, topK: 20 }), b = new Sampler(64, { seed: 5, topK: 20 });
  const fa1 = a.fork(), fa2 = a.fork(), fb1 = b.fork();
  assertEquals(fa1.params.topK, 20);
  const first = draw(fa1);
  assertEquals(draw(fb1), first);
  assert(JSON.stringify(draw(fa2)) !== JSON.stringify(first), "two forks must not share a stream");
  assertEquals(draw(a.fork(77)), draw(new Sampler(64, { seed: 77, topK: 20 })));
});

const FIXED = Float32Array.from([1.5, 0.25, 2.0, -0.5, 1.0, 0.75, -1.25, 1.75, 0.0, 0.5, -2.0, 1.25]);

function sequence(params: SamplingParams): number[] {
  const s = new Sampler(FIXED.length, params);
  const out: number[] = [];
  for (let i = 0; i < 20; i++) out.push(s.sample(FIXED.slice(), out).id);
  return out;
}

test("pinned 20-token sequences (the same literals pass in Deno and Bun)", () => {
  assertEquals(sequence({ seed: 1234, temperature: 0.9 }), [3, 7, 2, 2, 2, 2, 7, 8, 1, 7, 4, 11, 4, 0, 2, 5, 1, 4, 4, 7]);
  assertEquals(
    sequence({
      seed: 1234,
      temperature: 0.8,
      topK: 6,
      topP: 0.9,
      minP: 0.05,
      repeatPenalty: 1.3,
      repeatLastN: 8,
      presencePenalty: 0.2,
      frequencyPenalty: 0.1,
    }),
    [2, 7, 2, 2, 2, 2, 7, 11, 0, 7, 4, 11, 5, 0, 2, 7, 0, 7, 4, 9],
  );
});

test("sampling frequencies follow the renormalised distribution", () => {
  const logits = logitsOf(PROBS);
  const s = new Sampler(5, { seed: 8, topK: 3 });
  const hits = [0, 0, 0, 0, 0];
  const draws = 20000;
  for (let i = 0; i < draws; i++) hits[s.sample(logits.slice()).id]++;
  // top 3 renormalised: 0.2/0.85, 0.5/0.85, 0.15/0.85; 5 sigma is under 0.02 (and the seed is fixed)
  const expected = [0.2 / 0.85, 0, 0, 0.5 / 0.85, 0.15 / 0.85];
  for (let id = 0; id < 5; id++) {
    assert(Math.abs(hits[id] / draws - expected[id]) < 0.02, `id ${id}: ${hits[id] / draws} vs ${expected[id]}`);
  }
});

// ---------------------------------------------------------------- logprobs

test("logprobs: float64 log-softmax after penalties and temperature, before truncation; top-N sorted", () => {
  const raw = randomLogits(new Rng(40), 200, 5);
  const history = [3, 3, 17, 42];
  const params = { temperature: 0.7, topK: 5, repeatPenalty: 1.2, frequencyPenalty: 0.3, logprobs: 8, seed: 6 };
  const penalised = raw.slice();
  new Sampler(200, params).applyPenalties(penalised, history);
  const ref = refLogSoftmax(penalised, 0.7);

  const logits = raw.slice();
  const r = new Sampler(200, params).sample(logits, history);
  assertEquals(Array.from(logits), Array.from(penalised), "sample applies penalties in place");
  assertClose([r.logprob], [ref[r.id]], 1e-5, "chosen", 1);
  assertEquals(r.top.length, 8);
  const order = ref.map((_, i) => i).sort((a, b) => ref[b] - ref[a] || a - b);
  assertEquals(r.top.map((t) => t.id), order.slice(0, 8));
  assertClose(r.top.map((t) => t.logprob), order.slice(0, 8).map((i) => ref[i]), 1e-5, "top", 1);
  for (let j = 1; j < r.top.length; j++) assert(r.top[j - 1].logprob >= r.top[j].logprob, "top must be sorted descending");
  // Before truncation: the 8 alternatives include ids that top-k = 5 could never draw.
  assert(r.top.slice(5).every((t) => !new Set(order.slice(0, 5)).has(t.id)), "top extends past the top-k set");
});

test("logprobs: greedy uses temperature 1; without logprobs top is empty; banned ids are left out", () => {
  const logits = logitsOf(PROBS);
  const r = new Sampler(5, { temperature: 0, logprobs: 5, logitBias: { 2: -Infinity } }).sample(logits.slice());
  assertEquals(r.id, 3);
  const biased = logits.slice();
  biased[2] = -Infinity;
  const ref = refLogSoftmax(Array.from(biased).map((x) => (x === -Infinity ? -1e300 : x)));
  assertClose([r.logprob], [ref[3]], 1e-5, "greedy logprob", 1);
  assertEquals(r.top.map((t) => t.id), [3, 0, 4, 1]);
  const plain = new Sampler(5, { seed: 1 }).sample(logits.slice());
  assertEquals(plain.top.length, 0);
  assertClose([plain.logprob], [Math.log(PROBS[plain.id])], 1e-5, "plain logprob", 1);
});

test("logprobs are finite and stable for huge logits", () => {
  const logits = Float32Array.from([3000, 2999, -3000, 0]);
  const r = new Sampler(4, { logprobs: 2, seed: 3 }).sample(logits);
  const lse = 3000 + Math.log1p(Math.exp(-1));
  assertClose(r.top.map((t) => t.logprob), [3000 - lse, 2999 - lse], 1e-9, "huge", 1);
  assert(Number.isFinite(r.logprob), `logprob ${r.logprob}`);
});

// ---------------------------------------------------------------- validation

test("validateSamplingParams fills the documented defaults", () => {
  const p = validateSamplingParams({}, 100);
  assertEquals(
    { ...p, seed: 0, logitBias: [...p.logitBias] },
    {
      temperature: 1,
      topK: 0,
      topP: 1,
      minP: 0,
      repeatPenalty: 1,
      repeatLastN: 64,
      presencePenalty: 0,
      frequencyPenalty: 0,
      logitBias: [],
      seed: 0,
      logprobs: 0,
    },
  );
  assert(Number.isInteger(p.seed) && p.seed >= 0 && p.seed <= 0xffffffff, `default seed ${p.seed} is not a u32`);
  assertEquals(validateSamplingParams({ seed: 0xffffffff }, 10).seed, 0xffffffff);
  assertEquals([...validateSamplingParams({ logitBias: { 3: -Infinity, 7: 2 } }, 10).logitBias], [[3, -Infinity], [7, 2]]);
});

test("validateSamplingParams errors name the field", async () => {
  const cases: [SamplingParams, string][] = [
    [{ temperature: NaN }, "temperature"],
    [{ temperature: -0.1 }, "temperature"],
    [{ temperature: Infinity }, "temperature"],
    [{ topK: -1 }, "topK"],
    [{ topK: 2.5 }, "topK"],
    [{ topP: 0 }, "topP"],
    [{ topP: 1.01 }, "topP"],
    [{ topP: NaN }, "topP"],
    [{ minP: -0.01 }, "minP"],
    [{ minP: 1.5 }, "minP"],
    [{ repeatPenalty: 0 }, "repeatPenalty"],
    [{ repeatPenalty: -1 }, "repeatPenalty"],
    [{ repeatLastN: -2 }, "repeatLastN"],
    [{ repeatLastN: 1.5 }, "repeatLastN"],
    [{ presencePenalty: NaN }, "presencePenalty"],
    [{ frequencyPenalty: Infinity }, "frequencyPenalty"],
    [{ seed: -1 }, "seed"],
    [{ seed: 2 ** 32 }, "seed"],
    [{ seed: 1.5 }, "seed"],
    [{ logprobs: -1 }, "logprobs"],
    [{ logprobs: 11 }, "logprobs"],
    [{ logitBias: { 10: 1 } }, "logitBias"],
    [{ logitBias: { [-1]: 1 } }, "logitBias"],
    [{ logitBias: new Map([[2.5, 1]]) }, "logitBias"],
    [{ logitBias: { 1: NaN } }, "logitBias"],
    [{ logitBias: { 1: Infinity } }, "logitBias"],
    [{ temperature: "0.5" as unknown as number }, "temperature"],
  ];
  for (const [params, field] of cases) {
    const e = await assertRejects(() => validateSamplingParams(params, 10), ParamError);
    assertEquals((e as ParamError).param, field, JSON.stringify(params));
    assert(e.message.startsWith(field + ":"), `message ${e.message} should start with the field`);
  }
  // The Sampler validates the same way.
  const e = await assertRejects(() => new Sampler(10, { topP: 2 }), ParamError);
  assertEquals((e as ParamError).param, "topP");
});
