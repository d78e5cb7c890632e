import { ParamError } from "../../errors.ts";
import type { ResolvedSamplingParams } from "../../sampling/params.ts";
import type { Sampler } from "../../sampling/sampler.ts";
import type { WebGpuBackend } from "./backend.ts";
import { SPREAD_WORDS } from "./wgsl-sample.ts";

/** Words of the block before the picks: [12, 16) the RNG state, [16] the history length. */
const RNG_WORD = 12;
const HIST_WORD = 16;
const PICKS_WORD = 17;
const FLAG_PENALTIES = 1, FLAG_BIAS = 2;

const f32Bits = (x: number) => new Uint32Array(new Float32Array([x]).buffer)[0];

/**
 * The host side of sampling on the device (wgsl-sample.ts): one block of the
 * state buffer holds a sampler's state as the kernel sees it (RNG, history
 * counts and last positions, the bias as a dense vector, the picks of a run),
 * loaded from a CPU Sampler before a run and handed back to it after, so the
 * CPU sampler and the device take turns on one RNG stream and one history.
 * Everything host-side is allocated once, per model.
 */
export class DeviceSampler {
  readonly ptr: number;
  private readonly header = new Uint32Array(PICKS_WORD);
  private readonly counts: Uint32Array;
  private readonly last: Uint32Array;
  private readonly bias: Float32Array;
  /** One params row per step of a run: the backend records a dispatch after the call returns. */
  private readonly paramRows: Uint32Array[];
  /** Two, so that a run's readback can be in flight while the next run's is started (Model's device loop). */
  private readonly readBack: [Uint32Array, Uint32Array];
  private readIndex = 0;
  private flags = 0;

  /** `rows`: the longest run (steps between two readbacks). */
  constructor(private readonly backend: WebGpuBackend, readonly vocabSize: number, readonly rows: number) {
    const V = vocabSize;
    // after the four V-word vectors: the spread top-p search's masses (wgsl-sample.ts SAMPLE_PASS)
    this.ptr = backend.alloc((PICKS_WORD + rows + 4 * V + SPREAD_WORDS) * 4, "device sampler");
    this.counts = new Uint32Array(V);
    this.last = new Uint32Array(V);
    this.bias = new Float32Array(V);
    this.paramRows = Array.from({ length: rows }, () => new Uint32Array(16));
    this.readBack = [new Uint32Array(PICKS_WORD - RNG_WORD + rows), new Uint32Array(PICKS_WORD - RNG_WORD + rows)];
  }

  /** Whether these params can be sampled on the device: a draw at a temperature, nothing that needs the logits on the host. */
  static supports(p: ResolvedSamplingParams): boolean {
    return p.temperature > 0 && p.topK !== 1 && p.logprobs === 0;
  }

  /** Copies the sampler's RNG state, params, bias and `history`'s counts to the device, for steps that write picks at logits. */
  load(sampler: Sampler, history: ArrayLike<number>, logits: number, nextToken: number): void {
    const p = sampler.params, V = this.vocabSize;
    if (!DeviceSampler.supports(p)) {
      throw new ParamError("sampling", "the device sampler draws at a temperature > 0 without logprobs (greedy picks use argmax)");
    }
    if (sampler.vocabSize !== V) {
      throw new ParamError("logits", `the sampler's vocabulary of ${sampler.vocabSize} does not match the model's ${V}`);
    }
    const penalties = (p.repeatPenalty !== 1 && p.repeatLastN !== 0) || p.presencePenalty !== 0 || p.frequencyPenalty !== 0;
    // count first, so a bad history id throws before the device is touched
    if (penalties) {
      this.counts.fill(0);
      for (let i = 0; i < history.length; i++) {
        const t = history[i];
        if (t >>> 0 !== t || t >= V) throw new ParamError("history", `token id ${t} at position ${i} is not in [0, ${V})`);
        this.counts[t]++;
        this.last[t] = i;
      }
    }
    this.flags = (penalties ? FLAG_PENALTIES : 0) | (p.logitBias.size > 0 ? FLAG_BIAS : 0);
    const h = this.header;
    h.fill(0);
    sampler.rng.getState(h.subarray(RNG_WORD, RNG_WORD + 4));
    h[HIST_WORD] = history.length;
    const b = this.backend, words = this.ptr;
    b.write(words, h);
    if (penalties) {
      b.write(words + (PICKS_WORD + this.rows + V) * 4, this.counts);
      b.write(words + (PICKS_WORD + this.rows + 2 * V) * 4, this.last);
    }
    if (this.flags & FLAG_BIAS) {
      this.bias.fill(0);
      for (const [id, v] of p.logitBias) this.bias[id] = v;
      b.write(words + (PICKS_WORD + this.rows) * 4, this.bias);
    }
    const repN = p.repeatPenalty !== 1 ? p.repeatLastN : 0;
    for (let k = 0; k < this.rows; k++) {
      this.paramRows[k].set([
        words / 4,
        logits / 4,
        words / 4 + PICKS_WORD + k,
        nextToken / 4,
        V,
        this.flags,
        f32Bits(p.temperature),
        p.topK,
        f32Bits(p.topP),
        f32Bits(p.minP),
        f32Bits(p.repeatPenalty),
        repN >>> 0,
        f32Bits(p.presencePenalty),
        f32Bits(p.frequencyPenalty),
        PICKS_WORD + this.rows,
        this.rows,
      ]);
    }
  }

  /** Records step k of the run: samples the logits (bias and penalties applied in place), writes pick k and the next token. */
  step(k: number): void {
    if (!(k >= 0 && k < this.rows)) throw new ParamError("k", `step ${k} is outside the run of ${this.rows}`);
    this.backend.sampleOnDevice(this.paramRows[k]);
  }

  /**
   * Reads the first m picks back (-1: nothing finite to draw from) and hands the RNG state to the sampler.
   * The copy is recorded before this returns its promise, so the next run may be recorded before it is
   * awaited; await the runs' finishes in order, so the sampler ends with the last run's state.
   */
  async finish(sampler: Sampler, out: Int32Array, m: number): Promise<void> {
    const back = this.readBack[this.readIndex ^= 1].subarray(0, PICKS_WORD - RNG_WORD + m);
    await this.backend.read(this.ptr + RNG_WORD * 4, new Float32Array(back.buffer, 0, back.length)); // u32 bits, copied as they are
    sampler.rng.setState(back.subarray(0, 4));
    out.set(new Int32Array(back.buffer, (PICKS_WORD - RNG_WORD) * 4, m));
  }
}
