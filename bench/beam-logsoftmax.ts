/**
 * Beam search's log-softmax, once per live beam per step over the whole vocabulary: the Sampler's logSoftmax (exp by
 * expNonPositive, the same bits in every engine, written into the BeamSearch's one array) against the one beam.ts had
 * until 2026-12-05 (Math.exp, whose last bit differs between V8 and JavaScriptCore, a new Float64Array a call), kept
 * here as the baseline. The variants run alternated in one process, one call of each in turn, on the same logits.
 *
 *   deno run -A bench/beam-logsoftmax.ts [--vocab 32000] [--calls 400]
 *   bun bench/beam-logsoftmax.ts ...
 */
import { benchArgs, intFlag, median, runStamp, runtime } from "./cli.ts";
import { logSoftmax } from "../src/sampling/sampler.ts";

const USAGE = `Beam search's log-softmax a call, old (Math.exp, allocating) against new (the Sampler's, into one array),
alternated in one process; µs a call (medians).

  deno run -A bench/beam-logsoftmax.ts [options]        bun bench/beam-logsoftmax.ts [options]

  --vocab N      logits a call (default 32000, Llama 2's vocabulary)
  --calls N      calls of each variant (default 400)
  -h, --help     this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    vocab: { type: "string", default: "32000" },
    calls: { type: "string", default: "400" },
    help: { type: "boolean", short: "h" },
  },
});
const vocab = intFlag(USAGE, "vocab", opts.vocab), calls = intFlag(USAGE, "calls", opts.calls);

/** beam.ts's log-softmax before it took the Sampler's (the baseline). */
function oldLogSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lse;
  return out;
}

// logits spread as a small model's are (most within a few units of each other, a long tail below), eight sets in turn
let seed = 0x9e3779b9;
const rnd = () => (seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32;
const sets = Array.from({ length: 8 }, () => Float32Array.from({ length: vocab }, () => 4 * Math.log(rnd() + 1e-9) + 2 * rnd()));
const out = new Float64Array(vocab);
const variants: Array<[string, (l: Float32Array) => Float64Array]> = [
  ["old: Math.exp, a new array a call", oldLogSoftmax],
  ["new: the Sampler's, into one array (beam.ts)", (l) => logSoftmax(l, out)],
  ["new, a new array a call", (l) => logSoftmax(l)],
];
const times: number[][] = variants.map(() => []);
let sink = 0;
for (let c = 0; c < calls; c++) {
  const l = sets[c & 7];
  for (let v = 0; v < variants.length; v++) {
    const t0 = performance.now();
    sink += variants[v][1](l)[c % vocab];
    times[v].push(performance.now() - t0);
  }
}
console.log(`bench/beam-logsoftmax.ts, ${runtime}, ${runStamp()}, ${vocab} logits, ${calls} calls of each variant alternated (medians)`);
const base = median(times[0]);
for (let v = 0; v < variants.length; v++) {
  const m = median(times[v]);
  console.log(`  ${variants[v][0].padEnd(46)} ${(m * 1000).toFixed(1).padStart(7)} µs  (${(base / m).toFixed(2)}x the old)`);
}
if (!Number.isFinite(sink)) throw new Error("a log-softmax gave no finite score"); // keeps the results live
