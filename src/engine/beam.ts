// src/engine/ owns generation: the scheduler (engine.ts), the one per-choice decoder (decoder.ts), events and their
// queue (events.ts), beam search (this file) and the CLI's generate command.
/**
 * Beam search over forked sequences: each live beam is one Sequence; a step
 * scores every beam's continuations, keeps the `width` best partial
 * hypotheses (forking a sequence when it is kept more than once, releasing
 * the ones not kept), and sets aside hypotheses that end in
 * end-of-generation. Scores use the model's log-softmax at temperature 1
 * (no sampling filters), the Sampler's own (logSoftmax in src/sampling/sampler.ts:
 * the same bits in Deno and Bun but for one Math.log, a NaN logit never chosen,
 * no finite logit a NumericalError). The request's logitBias and repeat,
 * presence and frequency penalties do apply, as they do to a draw and as
 * Hugging Face's beam search applies its logits processors: each beam's logits
 * are biased and penalised over its own history (the prompt and the beam's
 * tokens) before the log-softmax, so a banned token never enters a beam and
 * the scores are those of the adjusted distribution; where they leave a beam
 * no token, the ParamError names the parameter, as the Sampler's does.
 * (temperature, topK, topP and minP shape a draw; beams do not draw, and
 * ignore them.) A hypothesis' score is its summed logprob divided by
 * length ** lengthPenalty, where length counts its generated tokens,
 * including the end-of-generation token that finished it.
 */
import type { Sequence } from "../kv/paged-cache.ts";
import { logSoftmax } from "../sampling/sampler.ts";

export interface Beam {
  seq: Sequence;
  tokens: number[];
  logprobs: number[];
  sum: number;
  /** The token the next step feeds (the last one chosen). */
  pending: number;
}

export interface Hypothesis {
  tokens: number[];
  logprobs: number[];
  sum: number;
  score: number;
  reason: "stop" | "length";
}

export interface BeamOptions {
  width: number;
  lengthPenalty: number;
  earlyStopping: boolean;
  maxTokens: number;
  isEnd: (id: number) => boolean;
  /** The request's bias and penalties (its Sampler) and its prompt; none: the model's log-softmax alone. */
  penalties?: { scorer: BeamScorer; prompt: readonly number[] };
}

/** Bias and penalties, then the log-softmax (Sampler.logSoftmax): a beam's scores over its history. */
export interface BeamScorer {
  logSoftmax(logits: Float32Array, history: ArrayLike<number>, out: Float64Array): Float64Array;
}

/** Length-penalised score of a hypothesis of `length` generated tokens. */
function beamScore(sum: number, length: number, lengthPenalty: number): number {
  return sum / Math.pow(Math.max(length, 1), lengthPenalty);
}

/** The sequence operations beam search needs (the engine's KV cache). */
export interface BeamSeqOps {
  fork(seq: Sequence): Sequence;
  release(seq: Sequence): void;
}

export class BeamSearch {
  live: Beam[] = [];
  readonly finished: Hypothesis[] = [];
  private done = false;
  // one beam's log-softmax at a time (topIds reads it before the next beam's overwrites it): 8 bytes a vocabulary entry
  private lsm = new Float64Array(0);

  constructor(readonly opts: BeamOptions) {}

  get isDone(): boolean {
    return this.done;
  }

  /** Starts from the prompt's sequence; the first step() expands it. */
  start(seq: Sequence): void {
    this.live = [{ seq, tokens: [], logprobs: [], sum: 0, pending: -1 }];
  }

  /**
   * One expansion: `logits[i]` holds the next-token logits of live[i].
   * `atContextEnd` says whether the beams' sequences can hold no more positions.
   */
  step(logits: Float32Array[], ops: BeamSeqOps, atContextEnd: boolean): void {
    const W = this.opts.width;
    // candidates: the 2W best continuations of each beam (enough that W survive even if W end)
    const cands: Array<{ beam: number; id: number; lp: number; total: number }> = [];
    for (let b = 0; b < this.live.length; b++) {
      if (this.lsm.length !== logits[b].length) this.lsm = new Float64Array(logits[b].length);
      const lsm = this.scores(b, logits[b]);
      for (const id of topIds(lsm, 2 * W)) cands.push({ beam: b, id, lp: lsm[id], total: this.live[b].sum + lsm[id] });
    }
    cands.sort((x, y) => y.total - x.total || x.beam - y.beam || x.id - y.id);

    const next: Array<{ beam: number; id: number; lp: number; total: number }> = [];
    for (let rank = 0; rank < cands.length && next.length < W; rank++) {
      const c = cands[rank];
      const parent = this.live[c.beam];
      if (this.opts.isEnd(c.id)) {
        // as in Hugging Face: an ending only counts if it ranks among the W best
        if (rank < W) {
          this.addFinished([...parent.tokens], [...parent.logprobs, c.lp], c.total, parent.tokens.length + 1, "stop");
        }
        continue;
      }
      next.push(c);
    }

    // release the parents nobody continues first (so forks never need more than `width` sequences),
    // then reuse each parent's sequence for its first surviving child and fork it for the others
    const kept = new Array<boolean>(this.live.length).fill(false);
    for (const c of next) kept[c.beam] = true;
    for (let b = 0; b < this.live.length; b++) if (!kept[b]) ops.release(this.live[b].seq);
    const used = new Array<boolean>(this.live.length).fill(false);
    const newLive: Beam[] = [];
    for (const c of next) {
      const parent = this.live[c.beam];
      const seq = used[c.beam] ? ops.fork(parent.seq) : parent.seq;
      used[c.beam] = true;
      newLive.push({ seq, tokens: [...parent.tokens, c.id], logprobs: [...parent.logprobs, c.lp], sum: c.total, pending: c.id });
    }
    this.live = newLive;

    const len = newLive.length > 0 ? newLive[0].tokens.length : 0;
    if (newLive.length === 0 || len >= this.opts.maxTokens || atContextEnd) {
      for (const beam of newLive) this.addFinished(beam.tokens, beam.logprobs, beam.sum, beam.tokens.length, "length");
      this.finishAll(ops);
      return;
    }
    if (this.finished.length >= W) {
      if (this.opts.earlyStopping) return this.finishAll(ops);
      // Hugging Face's heuristic: the best live beam, scored at its current length, cannot beat the worst kept hypothesis
      const worst = this.finished[Math.min(W, this.finished.length) - 1].score;
      const bestLive = beamScore(newLive[0].sum, len, this.opts.lengthPenalty);
      if (worst >= bestLive) this.finishAll(ops);
    }
  }

  /** live[b]'s scores, into `lsm`: the log-softmax of its logits, biased and penalised first where the request asks. */
  private scores(b: number, logits: Float32Array): Float64Array {
    const pen = this.opts.penalties;
    if (!pen) return logSoftmax(logits, this.lsm);
    return pen.scorer.logSoftmax(logits, [...pen.prompt, ...this.live[b].tokens], this.lsm);
  }

  /** Ends the search now (cancellation): live beams are released, not scored. */
  abort(ops: BeamSeqOps): void {
    for (const b of this.live) ops.release(b.seq);
    this.live = [];
    this.done = true;
  }

  /** The `n` best hypotheses, best first. */
  best(n: number): Hypothesis[] {
    return this.finished.slice(0, n);
  }

  private addFinished(tokens: number[], logprobs: number[], sum: number, length: number, reason: "stop" | "length"): void {
    const h: Hypothesis = { tokens, logprobs, sum, score: beamScore(sum, length, this.opts.lengthPenalty), reason };
    // keep sorted, best first (stable: earlier hypotheses win ties)
    let i = this.finished.length;
    while (i > 0 && this.finished[i - 1].score < h.score) i--;
    this.finished.splice(i, 0, h);
    if (this.finished.length > this.opts.width) this.finished.length = this.opts.width;
  }

  private finishAll(ops: BeamSeqOps): void {
    for (const b of this.live) ops.release(b.seq);
    this.live = [];
    this.done = true;
  }
}

/** Ids of the k largest values, descending (ties: lower id first). */
export function topIds(x: Float64Array, k: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (!(x[i] > -Infinity)) continue;
    if (ids.length < k) {
      ids.push(i);
      if (ids.length === k) ids.sort((a, b) => x[b] - x[a] || a - b);
    } else if (x[i] > x[ids[k - 1]]) {
      let j = k - 1;
      while (j > 0 && x[ids[j - 1]] < x[i]) {
        ids[j] = ids[j - 1];
        j--;
      }
      ids[j] = i;
    }
  }
  if (ids.length < k) ids.sort((a, b) => x[b] - x[a] || a - b);
  return ids;
}
