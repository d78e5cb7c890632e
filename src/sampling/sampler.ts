/**
 * The sampler: logits in, one token id out. It sees nothing but a Float32Array
 * of logits, the token history, its own seeded Rng and its own scratch, all
 * preallocated at construction (llama2.c `Sampler`, candle `LogitsProcessor`).
 *
 * Order of operations in `sample`, which is the contract:
 *   1. logit bias            logit += bias[id]           (-Infinity bans)
 *   2. repetition penalty    once per distinct id among the last repeatLastN
 *                            history tokens: logit > 0 ? logit / p : logit * p
 *   3. presence/frequency    counts over the WHOLE history (as in OpenAI):
 *                            logit -= presence * (count > 0) + frequency * count
 *      (steps 2 and 3 are computed in float64 and rounded to float32 once, when
 *       the logit is written back; 1-3 modify `logits` in place)
 *   4. temperature == 0 or topK == 1: argmax, ties -> lowest id. Done.
 *   5. top-k                 keep the k most probable ids (ties -> lower id)
 *   6. softmax at temperature over the kept ids
 *   7. top-p                 smallest prefix, by descending probability (ties ->
 *                            lower id), whose cumulative probability >= topP
 *   8. min-p                 keep p >= minP * p_max
 *   9. renormalise the kept ids and draw with rng.nextFloat(), walking the kept
 *      ids in ascending id order (so the token drawn depends only on the kept
 *      set and its weights, not on which filter produced it).
 *
 * Logprobs (the chosen token's, and the top-N alternatives) describe the
 * distribution after steps 1-3 and temperature but BEFORE any truncation
 * (5, 7, 8): OpenAI reports the model's distribution, not the truncated one.
 * At temperature 0 they use temperature 1. They are log-sum-exp stable.
 * Tokens whose logit is -Infinity or NaN, or whose probability underflows to 0
 * in float64, are never drawn. Where none is left, the error says whose doing
 * that was: a ParamError naming the bias or penalty that took out the last
 * logits the model left drawable (the caller's), else a NumericalError (the
 * model computed no finite logit: corrupt weights).
 *
 * Determinism: every float operation here is +, -, *, / or Math.round (exact
 * per IEEE 754 in every engine) and every sum runs in index order, so equal
 * seed + equal logits give equal tokens in Deno, Bun and Node. That is why exp
 * is computed by `expNonPositive` below rather than Math.exp, whose last bit
 * differs between V8 and JavaScriptCore. Only reported logprobs use Math.log.
 */
import { type KvasmError, NumericalError, ParamError } from "../errors.ts";
import { type ResolvedSamplingParams, type SamplingParams, samplingParamsOf, validateSamplingParams } from "./params.ts";
import { Rng } from "./rng.ts";

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface SampleResult {
  id: number;
  /**
   * log p(id) under the pre-truncation distribution (see the header comment); NaN for a greedy pick of
   * `sample(logits, history, false)` without `logprobs` alternatives, which does not compute it.
   */
  logprob: number;
  /** The `logprobs` most probable ids, descending (ties -> lower id); empty unless logprobs > 0. Banned ids are left out. */
  top: TokenLogprob[];
}

// One shared empty `top` so that sampling without logprobs allocates nothing but the result object.
const NO_TOP: TokenLogprob[] = Object.freeze([]) as unknown as TokenLogprob[];

export class Sampler {
  readonly vocabSize: number;
  readonly params: ResolvedSamplingParams;
  readonly rng: Rng;

  // Scratch, all vocabSize long and allocated once.
  private readonly weights: Float64Array; // exp((logit - max) / T): unnormalised probabilities, max token = 1 exactly
  /** expWeights' count of weights > 0, written there (one entry). */
  private readonly positive: Int32Array;
  private readonly ids: Int32Array; // candidate ids; heaps and the kept set live here
  private readonly counts: Int32Array; // occurrences in the whole history (zeroed again after use)
  private readonly inWindow: Uint8Array; // 1 if the id is among the last repeatLastN history tokens
  private readonly touched: Int32Array; // distinct ids seen in the history, so resetting is O(history)
  private readonly biasIds: Int32Array; // logit bias, ascending id
  private readonly biasValues: Float64Array;
  private readonly topIds: Int32Array; // min-heap for the top-N logprobs

  // The kept set of the last sample(), ids[keptFrom, keptTo), for candidates().
  private keptFrom = 0;
  private keptTo = 0;
  /**
   * Which of the caller's parameters turned a logit the model left drawable (finite or +Infinity) into -Infinity or NaN
   * in the last applyPenalties() (EMPTIED_BY_* bits): when nothing is left to draw, they are to blame, not the model.
   */
  private emptiedBy = 0;

  constructor(vocabSize: number, params: SamplingParams) {
    this.params = validateSamplingParams(params, vocabSize);
    this.vocabSize = vocabSize;
    this.rng = new Rng(this.params.seed);
    this.weights = new Float64Array(vocabSize);
    this.positive = new Int32Array(1);
    this.ids = new Int32Array(vocabSize);
    this.counts = new Int32Array(vocabSize);
    this.inWindow = new Uint8Array(vocabSize);
    this.touched = new Int32Array(vocabSize);
    const bias = [...this.params.logitBias.entries()].sort((a, b) => a[0] - b[0]);
    this.biasIds = Int32Array.from(bias, (e) => e[0]);
    this.biasValues = Float64Array.from(bias, (e) => e[1]);
    this.topIds = new Int32Array(this.params.logprobs);
  }

  /**
   * Same params, independent Rng. Without a seed, the child's seed is drawn from this sampler's Rng (so forks of a
   * seeded sampler are reproducible).
   */
  fork(seed?: number): Sampler {
    // the resolved params' sampling fields only: a field the resolved form gains would be refused as an unknown option
    return new Sampler(this.vocabSize, { ...samplingParamsOf(this.params), seed: seed ?? this.rng.nextU32() });
  }

  /** Whether applyPenalties() changes any logit (a bias, or a penalty that is on): beam search skips it otherwise. */
  get adjustsLogits(): boolean {
    const p = this.params;
    return this.biasIds.length > 0 || (p.repeatPenalty !== 1 && p.repeatLastN !== 0) || p.presencePenalty !== 0 ||
      p.frequencyPenalty !== 0;
  }

  /**
   * Why no token can be drawn: where the bias or a penalty removed the last drawable logit, that parameter (a
   * ParamError); where the model left none (NaN, or -Infinity everywhere), corrupt weights (a NumericalError).
   */
  private nothingToSample(logits: Float32Array): KvasmError {
    return noFiniteLogit(logits, this.emptiedBy);
  }

  /**
   * Applies bias and penalties (given the token history) to `logits` IN PLACE, then picks a token. `logprob`
   * false: the caller reads no logprob of the pick, and a greedy pick without `logprobs` alternatives then skips
   * the pass of exp over the vocabulary that only the logprob needs (its `logprob` is NaN, as a pick made on the
   * device reports it; the id is the same). A draw needs that pass for its weights, and reports its logprob anyway.
   */
  sample(logits: Float32Array, history?: ArrayLike<number>, logprob = true): SampleResult {
    this.checkLength(logits);
    this.applyPenalties(logits, history ?? []);
    const p = this.params;
    const greedy = p.temperature === 0 || p.topK === 1;
    const temperature = p.temperature === 0 ? 1 : p.temperature;

    // Pass 1: the max, then pass 2: the weights and their sum (for the logprob), both over the whole vocabulary. At
    // temperature 1 (the default, and a greedy pick's) without the division, and a greedy pick there without the
    // weights: the same sum, bit for bit (expWeights1, expTotal1). A greedy pick whose logprob nobody reads stops
    // after pass 1.
    const best = argmax(logits);
    const max = best < 0 ? -Infinity : logits[best];
    if (!(max > -Infinity)) throw this.nothingToSample(logits);
    if (greedy) {
      this.ids[0] = best;
      this.keptFrom = 0;
      this.keptTo = 1;
      if (!logprob && p.logprobs === 0) return { id: best, logprob: NaN, top: NO_TOP };
    }
    const total = temperature !== 1
      ? expWeights(logits, this.weights, max, temperature, this.positive)
      : greedy
      ? expTotal1(logits, max)
      : expWeights1(logits, this.weights, max, this.positive);
    const logTotal = Math.log(total);

    const id = greedy ? best : this.draw(total, this.positive[0]);
    const chosenZ = logits[id] === max ? 0 : (logits[id] - max) / temperature;
    return { id, logprob: chosenZ - logTotal, top: p.logprobs > 0 ? this.topLogprobs(logits, max, temperature, logTotal) : NO_TOP };
  }

  /**
   * Beam search's scores (see src/engine/beam.ts): bias and penalties as for a draw (steps 1-3, IN PLACE, over
   * `history`: the prompt and the beam's tokens), then the log-softmax at temperature 1 into `out`. No token left is the
   * same error as sample()'s.
   */
  logSoftmax(logits: Float32Array, history: ArrayLike<number>, out: Float64Array): Float64Array {
    this.applyPenalties(logits, history);
    const best = argmax(logits);
    if (!(best >= 0 && logits[best] > -Infinity)) throw this.nothingToSample(logits);
    return logSoftmax(logits, out);
  }

  /** Bias, then penalties, IN PLACE (steps 1-3 of the header). Exposed for beam search and tests. */
  applyPenalties(logits: Float32Array, history: ArrayLike<number>): void {
    this.checkLength(logits);
    this.emptiedBy = 0;
    const p = this.params;
    const repeat = p.repeatPenalty !== 1 && p.repeatLastN !== 0;
    const countBased = p.presencePenalty !== 0 || p.frequencyPenalty !== 0;
    const penalise = (repeat || countBased) && history.length > 0;

    // Count first, so a bad history id throws before `logits` is touched.
    const V = this.vocabSize, counts = this.counts, inWindow = this.inWindow, touched = this.touched;
    let distinct = 0;
    if (penalise) {
      const windowStart = p.repeatLastN < 0 ? 0 : Math.max(0, history.length - p.repeatLastN);
      for (let i = 0; i < history.length; i++) {
        const t = history[i];
        if (t >>> 0 !== t || t >= V) {
          for (let j = 0; j < distinct; j++) counts[touched[j]] = inWindow[touched[j]] = 0; // leave scratch clean
          throw new ParamError("history", `token id ${t} at position ${i} is not in [0, ${V})`);
        }
        if (counts[t] === 0) touched[distinct++] = t;
        counts[t]++;
        if (i >= windowStart) inWindow[t] = 1;
      }
    }

    for (let j = 0; j < this.biasIds.length; j++) {
      const id = this.biasIds[j], before = logits[id];
      logits[id] = before + this.biasValues[j];
      if (before > -Infinity && !(logits[id] > -Infinity)) this.emptiedBy |= EMPTIED_BY_BIAS;
    }

    for (let j = 0; j < distinct; j++) {
      const t = touched[j];
      const before = logits[t];
      let x = before;
      if (repeat && inWindow[t] === 1) x = x > 0 ? x / p.repeatPenalty : x * p.repeatPenalty;
      const repeated = x;
      if (countBased) x -= p.presencePenalty + p.frequencyPenalty * counts[t];
      logits[t] = x;
      // (the rare path: a penalty took this token out; which one, judged on the float32 the logit would have held)
      if (before > -Infinity && !(logits[t] > -Infinity)) this.emptiedBy |= this.penaltyThatEmptied(repeated, counts[t]);
      counts[t] = 0;
      inWindow[t] = 0;
    }
  }

  /**
   * Which penalty drove a token's logit to -Infinity or NaN: the repeat penalty where its result (`repeated`) alone no
   * longer fits a float32, else the larger of presence and frequency * `count`.
   */
  private penaltyThatEmptied(repeated: number, count: number): number {
    const p = this.params;
    if (!(Math.fround(repeated) > -Infinity)) return EMPTIED_BY_REPEAT;
    return Math.abs(p.presencePenalty) >= Math.abs(p.frequencyPenalty * count) ? EMPTIED_BY_PRESENCE : EMPTIED_BY_FREQUENCY;
  }

  /** Debug: the ids the last sample() could have drawn, ascending (just the chosen id after a greedy pick). */
  candidates(): number[] {
    return Array.from(this.ids.subarray(this.keptFrom, this.keptTo));
  }

  // ---------------------------------------------------------------- truncation and the draw

  /** Steps 5-9 over `weights`. `total` is the sum of all weights, `positive` how many are > 0. */
  private draw(total: number, positive: number): number {
    const p = this.params, w = this.weights, ids = this.ids;
    let n: number; // candidates in ids[0, n)
    let reference: number; // the mass top-p fractions are taken of: the top-k set's, or everything's
    let gathered = false; // ids[0, n) are in ascending order

    if (p.topK > 0 && p.topK < positive) {
      n = this.selectTopK(p.topK);
      reference = 0;
      for (let j = 0; j < n; j++) reference += w[ids[j]];
      if (p.topP >= 1) n = this.keepAtLeast(n, p.minP); // min-p alone needs no ordering
    } else {
      // No top-k: gather, dropping up front what min-p or top-p would drop anyway.
      // A token with w < (1 - topP) * total / (positive - 1) is never in the nucleus:
      // all such tokens together weigh less than (1 - topP) * total. Half that
      // bound keeps a margin for rounding.
      const nucleusFloor = p.topP < 1 && positive > 1 ? (0.5 * (1 - p.topP) * total) / (positive - 1) : 0;
      const floor = Math.max(p.minP, nucleusFloor);
      n = 0;
      for (let i = 0; i < w.length; i++) if (w[i] > 0 && w[i] >= floor) ids[n++] = i;
      reference = total;
      gathered = true;
    }

    let from = 0;
    if (p.topP < 1) from = this.nucleus(n, reference, p.minP);
    const kept = ids.subarray(from, n);
    // The draw walks the kept set in ascending id order; only the gather above leaves it that way already.
    if (!gathered || p.topP < 1) kept.sort();

    let keptMass = 0;
    for (let j = 0; j < kept.length; j++) keptMass += w[kept[j]];
    const r = this.rng.nextFloat() * keptMass;
    let cumulative = 0;
    let chosen = kept[kept.length - 1]; // if rounding leaves r >= the final sum
    for (let j = 0; j < kept.length; j++) {
      cumulative += w[kept[j]];
      if (cumulative > r) {
        chosen = kept[j];
        break;
      }
    }
    this.keptFrom = from;
    this.keptTo = n;
    return chosen;
  }

  /** Keeps ids[0, n) with weight >= minP (the max weight is exactly 1, so minP * p_max is minP). */
  private keepAtLeast(n: number, minP: number): number {
    if (minP <= 0) return n;
    const w = this.weights, ids = this.ids;
    let m = 0;
    for (let j = 0; j < n; j++) if (w[ids[j]] >= minP) ids[m++] = ids[j];
    return m;
  }

  /**
   * Top-k by partial selection: a size-k min-heap (worst kept id at the root)
   * over the whole vocabulary, O(V log k); most ids are rejected by one compare.
   * Leaves the k ids in ids[0, k) in heap order.
   */
  private selectTopK(k: number): number {
    const w = this.weights, heap = this.ids;
    let size = 0, i = 0;
    // the first k ids with a weight > 0 fill the heap
    for (; i < w.length && size < k; i++) {
      if (!(w[i] > 0)) continue;
      // sift up: a child stays below its parent while it ranks worse
      let c = size++;
      while (c > 0) {
        const parent = (c - 1) >> 1;
        if (!ranksAbove(w, heap[parent], i)) break;
        heap[c] = heap[parent];
        c = parent;
      }
      heap[c] = i;
    }
    // then an id enters only if it ranks above the root: every id in the heap came earlier (is lower), so a tie
    // with the root never ranks above it, and the test is the root's weight alone, kept here until the root changes
    // (the same heap, step for step, as ranksAbove against heap[0]; one load a rejected id instead of three)
    let floor = size > 0 ? w[heap[0]] : 0;
    for (; i < w.length; i++) {
      if (w[i] > floor) {
        siftDownMin(w, heap, 0, size, i);
        floor = w[heap[0]];
      }
    }
    return size;
  }

  /**
   * Top-p (and min-p) over ids[0, n): heapify as a max-heap, then pop in
   * descending order only as far as needed. Popped ids collect at the tail,
   * heap-sort style; returns `from` such that ids[from, n) is the kept set.
   */
  private nucleus(n: number, reference: number, minP: number): number {
    const w = this.weights, ids = this.ids;
    for (let c = (n >> 1) - 1; c >= 0; c--) siftDownMax(w, ids, c, n, ids[c]);
    const target = this.params.topP * reference;
    let size = n;
    let cumulative = 0;
    while (size > 0) {
      const top = ids[0];
      if (w[top] < minP) break; // min-p keeps a prefix of the same order: stop at its end
      size--;
      const last = ids[size];
      ids[size] = top;
      if (size > 0) siftDownMax(w, ids, 0, size, last);
      cumulative += w[top];
      if (cumulative >= target) break;
    }
    return size;
  }

  private topLogprobs(logits: Float32Array, max: number, temperature: number, logTotal: number): TokenLogprob[] {
    // Size-N min-heap keyed by logit (same order as probability at any T > 0, and
    // it still ranks ids whose weight underflowed to 0). -Infinity/NaN never enter.
    const N = this.params.logprobs, heap = this.topIds;
    let size = 0;
    for (let i = 0; i < logits.length; i++) {
      const x = logits[i];
      if (!(x > -Infinity)) continue;
      if (size < N) {
        let c = size++;
        while (c > 0) {
          const parent = (c - 1) >> 1;
          if (!logitRanksAbove(logits, heap[parent], i)) break;
          heap[c] = heap[parent];
          c = parent;
        }
        heap[c] = i;
      } else if (logitRanksAbove(logits, i, heap[0])) {
        // sift down from the root with i
        let c = 0;
        for (;;) {
          let child = 2 * c + 1;
          if (child >= size) break;
          if (child + 1 < size && logitRanksAbove(logits, heap[child], heap[child + 1])) child++;
          if (!logitRanksAbove(logits, i, heap[child])) break;
          heap[c] = heap[child];
          c = child;
        }
        heap[c] = i;
      }
    }
    const top: TokenLogprob[] = new Array(size);
    for (let j = 0; j < size; j++) {
      const id = heap[j];
      const z = logits[id] === max ? 0 : (logits[id] - max) / temperature;
      top[j] = { id, logprob: z - logTotal };
    }
    return top.sort((a, b) => logitRanksAbove(logits, a.id, b.id) ? -1 : 1);
  }

  private checkLength(logits: Float32Array): void {
    if (logits.length !== this.vocabSize) {
      throw new ParamError("logits", `length ${logits.length} does not match the sampler's vocabulary of ${this.vocabSize}`);
    }
  }
}

// ---------------------------------------------------------------- ordering and heaps

/** a ranks above b: higher weight, ties -> lower id. */
function ranksAbove(w: Float64Array, a: number, b: number): boolean {
  return w[a] > w[b] || (w[a] === w[b] && a < b);
}

function logitRanksAbove(logits: Float32Array, a: number, b: number): boolean {
  return logits[a] > logits[b] || (logits[a] === logits[b] && a < b);
}

/** Places `id` at heap[c] of a min-heap (worst-ranked at the root) of `size`, sifting down. */
function siftDownMin(w: Float64Array, heap: Int32Array, c: number, size: number, id: number): void {
  for (;;) {
    let child = 2 * c + 1;
    if (child >= size) break;
    if (child + 1 < size && ranksAbove(w, heap[child], heap[child + 1])) child++;
    if (!ranksAbove(w, id, heap[child])) break;
    heap[c] = heap[child];
    c = child;
  }
  heap[c] = id;
}

/** Places `id` at heap[c] of a max-heap (best-ranked at the root) of `size`, sifting down. */
function siftDownMax(w: Float64Array, heap: Int32Array, c: number, size: number, id: number): void {
  for (;;) {
    let child = 2 * c + 1;
    if (child >= size) break;
    if (child + 1 < size && ranksAbove(w, heap[child + 1], heap[child])) child++;
    if (!ranksAbove(w, heap[child], id)) break;
    heap[c] = heap[child];
    c = child;
  }
  heap[c] = id;
}

// ---------------------------------------------------------------- free functions

/**
 * Pass 2 of sample(): w[i] = exp((logits[i] - max) / temperature) for every id; returns their sum and writes how many
 * are > 0 to positive[0]. A function of its own, so V8 optimizes the loop by itself: inside sample(), which runs once a
 * token, the loop boxed doubles (expNonPositive's results) for a long while after start-up. Measured 2026-12-05, Deno,
 * stories260K Q8_0, two threads: the engine's bytes a token 6.7 KB -> 1.7 KB, generate()'s 3.5 -> 1.8 KB.
 * Exported, as its two temperature-1 forms below, for tests/sampler.test.ts, which holds them to this one.
 */
export function expWeights(logits: Float32Array, w: Float64Array, max: number, temperature: number, positive: Int32Array): number {
  let total = 0;
  let count = 0;
  for (let i = 0; i < w.length; i++) {
    const x = logits[i];
    const wi = expNonPositive(x === max ? 0 : (x - max) / temperature);
    w[i] = wi;
    total += wi;
    if (wi > 0) count++;
  }
  positive[0] = count;
  return total;
}

/**
 * expWeights at temperature 1 (the default), without the division: x / 1 is x for every double, so the same bits, and
 * the division was a fifth of the pass (32000 logits, 17:51 UTC: 173 -> 138 µs in Deno, 172 -> 138 in Bun). A
 * function of its own rather than a branch in expWeights, so that each loop is compiled for the one case it runs
 * (with both loops in one function, Bun's draws at other temperatures ran 0.87-0.97x).
 */
export function expWeights1(logits: Float32Array, w: Float64Array, max: number, positive: Int32Array): number {
  let total = 0;
  let count = 0;
  for (let i = 0; i < w.length; i++) {
    const x = logits[i];
    const wi = expNonPositive(x === max ? 0 : x - max);
    w[i] = wi;
    total += wi;
    if (wi > 0) count++;
  }
  positive[0] = count;
  return total;
}

/**
 * expWeights1's sum alone, in the same order from the same terms (the same bits): a greedy pick needs no weights,
 * only the sum for its logprob, and the 32000 weights were 256 KB of stores a token. logSoftmaxAt's sum too.
 */
export function expTotal1(logits: Float32Array, max: number): number {
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    total += expNonPositive(x === max ? 0 : x - max);
  }
  return total;
}

/** Index of the largest logit, ties -> lowest id; NaNs are skipped. -1 if there is none (empty or all NaN). */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x > max || (best < 0 && x === -Infinity)) {
      max = x;
      best = i;
    }
  }
  return best;
}

/** Bits of Sampler.emptiedBy, and the parameter each stands for: which took the last drawable logits out. */
const EMPTIED_BY_BIAS = 1, EMPTIED_BY_REPEAT = 2, EMPTIED_BY_PRESENCE = 4, EMPTIED_BY_FREQUENCY = 8;
const EMPTYING_PARAMS = [
  [EMPTIED_BY_BIAS, "logitBias"],
  [EMPTIED_BY_REPEAT, "repeatPenalty"],
  [EMPTIED_BY_PRESENCE, "presencePenalty"],
  [EMPTIED_BY_FREQUENCY, "frequencyPenalty"],
] as const;

/**
 * Why `logits` hold no finite logit (argmax found none). `emptiedBy` (EMPTIED_BY_* bits) says which of the caller's
 * parameters turned logits the model left drawable into -Infinity or NaN: with any, the caller's parameters left
 * nothing to draw, a ParamError naming them (the first of bias, repeat, presence, frequency as its `param`). Without,
 * the model itself left nothing (-Infinity everywhere): corrupt weights, a NumericalError. A NaN anywhere is the
 * model's first (a parameter makes one only from the model's own infinity), so it is a NumericalError whatever the
 * parameters did beside it.
 */
export function noFiniteLogit(logits: Float32Array, emptiedBy = 0): KvasmError {
  // a NaN is the model's, whatever the parameters took out beside it
  let nan = false;
  for (let i = 0; i < logits.length && !nan; i++) nan = logits[i] !== logits[i];
  if (nan) return new NumericalError("the model computed no finite logit (NaN): its weights are corrupt or overflow");
  if (emptiedBy === EMPTIED_BY_BIAS) return new ParamError("logitBias", "no token left to sample: the bias made every logit -Infinity");
  if (emptiedBy !== 0) {
    const names = EMPTYING_PARAMS.filter(([bit]) => (emptiedBy & bit) !== 0).map(([, name]) => name);
    const what = names.length === 1 ? "the penalty" : names.join(" and ");
    return new ParamError(names[0], `no token left to sample: ${what} took out every token the model left (use a smaller value)`);
  }
  return new NumericalError("the model computed no finite logit (all -Infinity): its weights are corrupt or overflow");
}

/**
 * log softmax(logits) at temperature 1 into `out` (beam search's scores), as sample() computes a logprob:
 * (x - max) - log(expTotal1(logits, max)). Every operation but the one Math.log is exact per IEEE 754 and the sum runs
 * in index order (expNonPositive, not Math.exp, whose last bit differs between V8 and JavaScriptCore), so the scores
 * are the same bits in Deno, Bun and Node except where that single Math.log's last bit differs (no standard fixes it;
 * the Sampler's reported logprobs share it). `out` is written, not allocated, where the caller passes it. NaN logits follow the
 * Sampler's rule: such a token is never chosen (its score is -Infinity, as its weight in the sum is 0), and logits
 * with no finite value at all are a NumericalError, not an empty distribution.
 */
export function logSoftmax(logits: Float32Array, out: Float64Array = new Float64Array(logits.length)): Float64Array {
  if (out.length !== logits.length) throw new ParamError("out", `has ${out.length} elements for ${logits.length} logits`);
  const best = argmax(logits);
  const max = best < 0 ? -Infinity : logits[best];
  if (!(max > -Infinity)) throw noFiniteLogit(logits);
  const logTotal = Math.log(expTotal1(logits, max));
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    out[i] = x > -Infinity ? (x === max ? 0 : x - max) - logTotal : -Infinity; // sample()'s logprob, bit for bit
  }
  return out;
}

/** log softmax(logits)[id] at temperature 1, computed as (x_id - max) - log(sum exp(x - max)). */
export function logSoftmaxAt(logits: Float32Array, id: number): number {
  if (!(id >= 0 && id < logits.length && Number.isInteger(id))) {
    throw new ParamError("id", `${id} is not an index into ${logits.length} logits`);
  }
  const best = argmax(logits);
  const max = best < 0 ? NaN : logits[best];
  if (!(max > -Infinity)) return NaN; // no finite distribution to speak of
  const x = logits[id];
  return (x === max ? 0 : x - max) - Math.log(expTotal1(logits, max));
}

// exp for x <= 0, from +, -, *, / and table lookups only, so every engine
// produces the same bits (Math.exp's last bit differs between V8 and
// JavaScriptCore). x = -(256 m + j) ln2 / 256 + r with |r| <= ln2 / 512, so
// exp(x) = 2^-m * 2^(-j/256) * exp(r), and exp(r) needs only a degree-5
// Taylor polynomial (truncation error < 1e-20). About 2.5x faster than the
// plain fdlibm routine below, which is kept to build the table accurately.
// Relative error under 2 ulp for normal results.
const LN2_HI = 6.93147180369123816490e-01; // high 32 bits of ln 2: k * LN2_HI is exact for |k| < 2^20
const LN2_LO = 1.90821492927058770002e-10; // ln 2 - LN2_HI
const INV_LN2 = 1.44269504088896338700e+00;
const STEPS = 256; // table entries per octave
const STEP_HI = LN2_HI / STEPS, STEP_LO = LN2_LO / STEPS; // exact: division by a power of two
const INV_STEP = INV_LN2 * STEPS;

// 2^-m for m in [0, 1075], by repeated halving (each step exact, down to the subnormals).
const POW2_NEG = new Float64Array(1076);
POW2_NEG[0] = 1;
for (let m = 1; m < POW2_NEG.length; m++) POW2_NEG[m] = POW2_NEG[m - 1] * 0.5;

// 2^(-j/256) for j in [0, 256).
const OCTAVE = new Float64Array(STEPS);
for (let j = 0; j < STEPS; j++) OCTAVE[j] = fdlibmExp(-j * (LN2_HI / STEPS) - j * (LN2_LO / STEPS));

/** exp(x) for x <= 0, bit-identical in every JS engine; 0 for NaN, -Infinity and x < -745.13 (underflow). */
export function expNonPositive(x: number): number {
  if (!(x > -745.1332191019411)) return 0;
  const k = (x * INV_STEP - 0.5) | 0; // round to nearest, in [-275200, 0]
  const r = x - k * STEP_HI - k * STEP_LO;
  const p = 1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120)))));
  const steps = -k;
  return OCTAVE[steps & (STEPS - 1)] * p * POW2_NEG[steps >> 8];
}

// fdlibm e_exp.c restricted to -ln2 < x <= 0 (no scaling needed): argument
// reduction by ln 2 in two parts and a degree-5 minimax rational form. < 1 ulp.
function fdlibmExp(x: number): number {
  const P1 = 1.66666666666666019037e-01;
  const P2 = -2.77777777770155933842e-03;
  const P3 = 6.61375632143793436117e-05;
  const P4 = -1.65339022054652515390e-06;
  const P5 = 4.13813679705723846039e-08;
  const k = Math.round(x * INV_LN2); // 0 or -1 here
  const hi = x - k * LN2_HI;
  const lo = k * LN2_LO;
  const r = hi - lo;
  const t = r * r;
  const c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  const y = 1 - ((lo - (r * c) / (2 - c)) - hi);
  return k === 0 ? y : y * 0.5;
}
