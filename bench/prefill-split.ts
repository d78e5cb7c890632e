/**
 * How each op of a 128-row prefill step scales on two threads, op by op, on a host too loaded for wall times of whole
 * runs: each op (a prefill matmul of every shape, the activation quantization, attention over the 128 causal rows,
 * the norms, SwiGLU, the residual add) is called on one thread and on two, interleaved, and its fastest call of --reps
 * is kept (load only slows a call). Two cuts on two threads: the backend's own (what a prefill runs) and, for the
 * matmuls, halves (one chunk a thread: no claims, no tail; what the two cores give a perfectly balanced op). Then
 * the one-thread step's time by op (from the same calls, times each op's calls per layer) and the two-thread step
 * those speed-ups compose to: the bound that the ops' split sets, whatever the rest.
 *
 * --baseline DIR adds another checkout's tree (DIR/src: `git archive main | tar -x -C DIR`, with its build/ and
 * node_modules) on two threads, its calls interleaved with this tree's: old / new per op in the same seconds.
 *
 *   deno run -A bench/prefill-split.ts [--type Q4_0] [--rows 128] [--reps 30] [--baseline DIR] [--help]
 *   bun bench/prefill-split.ts ...
 */
import { loadModel } from "../src/model/load.ts";
import type { Model } from "../src/model/model.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import type { Weight } from "../src/backends/backend.ts";
import type { LlamaWeights } from "../src/architectures/llama.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { benchArgs, choiceFlag, intFlag, runStamp } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE = `Each op of a prefill step on one and two threads, fastest call of each, and the step they compose to.

  deno run -A bench/prefill-split.ts [options]        bun bench/prefill-split.ts [options]

  --type T     F32, F16, Q8_0, Q4_0 or Q4_K_M: bench/synthetic.ts's stories110M model (default Q4_0)
  --rows N     prompt rows of the step (default 128)
  --reps N     calls of each op on each thread count, fastest kept (default 30)
  --baseline DIR  also another checkout's tree on two threads, interleaved (old / new per op)
  -h, --help   this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    type: { type: "string", default: "Q4_0" },
    rows: { type: "string", default: "128" },
    reps: { type: "string", default: "30" },
    baseline: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
const T = intFlag(USAGE, "rows", opts.rows, 1, 512), reps = intFlag(USAGE, "reps", opts.reps); // 512: the context loaded
const runtime = g.Deno ? "deno" : g.Bun ? "bun" : "node";
const path = await ensureSyntheticModel("stories110M", choiceFlag(USAGE, "type", opts.type, SYNTHETIC_TYPES));

const one = await loadModel(path, { backend: new WasmBackend(), contextLength: 512 });
// each matmul run when called, as a case times it (not held back to join the next over the same input: ThreadedWasmBackend.matmul)
const twoBackend = new ThreadedWasmBackend({ threads: 2, mergeMatmuls: false });
const two = await loadModel(path, { backend: twoBackend, contextLength: 512 });

/** Fills each model's state and cache as a prefill of T rows leaves them: attention then has T causal rows to run. */
async function prefill(m: Model): Promise<void> {
  const ids = Array.from({ length: T }, (_, i) => 300 + ((i * 104729) % 20000));
  await m.prefill(m.newSequence(), ids);
}
await prefill(one);
await prefill(two);
let base: Model | undefined;
if (opts.baseline) {
  const root = new URL(opts.baseline.replace(/\/?$/, "/"), `file://${g.Deno ? g.Deno.cwd() : g.process.cwd()}/`);
  const { loadModel } = await import(new URL("src/model/load.ts", root).href);
  const { ThreadedWasmBackend } = await import(new URL("src/backends/wasm-threads.ts", root).href);
  const backend = new ThreadedWasmBackend({ threads: 2, mergeMatmuls: false });
  base = (await loadModel(path, { backend, contextLength: 512 })) as Model;
  await prefill(base);
}

interface OpCase {
  name: string;
  /** Calls of the op per layer in a prefill step. */
  perLayer: number;
  run: (m: Model) => void;
  /** Untimed, before each timed call: the matmuls' activation preparation. */
  setup?: (m: Model) => void;
  /** Two threads, halves: one chunk a thread (matmuls only). */
  halves?: (m: Model) => void;
}

const layer = (m: Model) => (m.weights as LlamaWeights).layers[0];
const c = one.config;
function matmulCase(name: string, perLayer: number, pick: (m: Model) => { out: number; x: number; w: Weight }): OpCase {
  return {
    name,
    perLayer,
    setup: (m) => {
      const { out, x, w } = pick(m);
      m.backend.matmul(out, x, w, T); // prepares (quantizes) x: the timed call below takes it as it is
    },
    run: (m) => {
      const { out, x, w } = pick(m);
      m.backend.matmul(out, x, w, T, true);
    },
    halves: (m) => {
      const { out, x, w } = pick(m);
      const b = m.backend as ThreadedWasmBackend;
      // deno-lint-ignore no-explicit-any
      const prepared = (b as any).matmulScratch as number, kernel = (b as any).preparedKernel;
      const input = w.type === 0 ? x : prepared;
      // deno-lint-ignore no-explicit-any
      b.pool!.splitGrouped((b as any).rowGroupOf(w), kernel, "rows", "streaming", 8, out, input, w.ptr, w.cols, w.rows, T, 0, w.rows);
    },
  };
}

function qkvCase(merge: boolean): OpCase {
  return {
    name: `matmuls q, k, v as ${merge ? "one op" : "three ops"} (${c.dim}x${c.dim} x3)`,
    perLayer: 0,
    setup: (m) => m.backend.matmul(m.state.q, m.state.xb, layer(m).wq, T),
    run: (m) => {
      const b = m.backend, s = m.state, L = layer(m), two = b === twoBackend;
      if (two) twoBackend.mergeMatmuls = merge;
      b.matmul(s.q, s.xb, L.wq, T, true);
      b.matmul(s.k, s.xb, L.wk, T, true);
      b.matmul(s.v, s.xb, L.wv, T, true);
      if (two) {
        void twoBackend.idle;
        twoBackend.mergeMatmuls = false;
      }
    },
  };
}

const cases: OpCase[] = [
  matmulCase(`matmul ${c.dim}x${c.dim} (q, k, v, o)`, 4, (m) => ({ out: m.state.q, x: m.state.xb, w: layer(m).wq })),
  matmulCase(`matmul ${c.hiddenDim}x${c.dim} (gate, up)`, 2, (m) => ({ out: m.state.hb, x: m.state.xb, w: layer(m).wGate })),
  matmulCase(`matmul ${c.dim}x${c.hiddenDim} (down)`, 1, (m) => ({ out: m.state.xb2, x: m.state.hb, w: layer(m).wDown })),
  // q, k and v over one prepared input: three ops, or (two threads) one op with no join between them
  // (ThreadedWasmBackend.mergeMatmuls; reading `idle` runs the held matmuls at once). Not in the layer's sum.
  qkvCase(false),
  qkvCase(true),
  {
    name: "quantize act (x4: xb, xb, xb, hb)",
    perLayer: 1,
    run: (m) => {
      const s = m.state, L = layer(m);
      m.backend.matmul(s.q, s.xb, L.wq, T); // quantize + matmul, less the matmul alone below
    },
  },
  {
    name: "attention",
    perLayer: 1,
    run: (m) => m.backend.attention(m.state.xb, m.state.q, m.kv.layout, 0, m.state.rows, T, m.state.attScratch),
  },
  { name: "rmsnorm (x2)", perLayer: 2, run: (m) => m.backend.rmsnorm(m.state.xb, m.state.x, layer(m).attnNorm, c.dim, c.normEps, T) },
  {
    name: "rope (q, k)",
    perLayer: 2,
    run: (m) => m.backend.rope(m.state.q, m.state.ropeTable, m.state.positions, T, c.nHeads, c.headDim, c.ropeDim, false),
  },
  { name: "swiglu", perLayer: 1, run: (m) => m.backend.swiglu(m.state.hb, m.state.hb, m.state.hb2, c.hiddenDim, T) },
  { name: "add (x2)", perLayer: 2, run: (m) => m.backend.add(m.state.x, m.state.x, m.state.xb2, T * c.dim) },
];

function timed(fn: () => void, setup?: () => void): number {
  setup?.();
  const t = performance.now();
  fn();
  return performance.now() - t;
}

const best = cases.map(() => ({ one: Infinity, two: Infinity, halves: Infinity, base: Infinity }));
/**
 * Lets the last pool's worker fall asleep (it spins 5 ms after an op, PoolOptions.spinMs) before another model's op:
 * a spinning worker of one tree holds the second core while the other tree's op runs.
 */
const idle = () => new Promise((res) => setTimeout(res, 8));

for (let r = 0; r < reps; r++) {
  for (const [i, k] of cases.entries()) {
    const setup = k.setup;
    best[i].one = Math.min(best[i].one, timed(() => k.run(one), setup && (() => setup(one))));
    await idle();
    k.run(two); // wakes the worker: in a prefill, ops follow each other within its spin
    best[i].two = Math.min(best[i].two, timed(() => k.run(two), setup && (() => setup(two))));
    // a join that outlived the pool's spin (a descheduled worker) leaves the op pending: finish it before the next
    await two.backend.flush();
    if (base) {
      await idle();
      k.run(base);
      best[i].base = Math.min(best[i].base, timed(() => k.run(base!), setup && (() => setup(base!))));
      await base.backend.flush();
      await idle();
    }
    if (k.halves) best[i].halves = Math.min(best[i].halves, timed(() => k.halves!(two), setup && (() => setup(two))));
    await two.backend.flush();
  }
}
// the quantize row timed quantize + q's matmul: take the matmul off (F32 prepares nothing: its row is left out)
const quantizeAt = cases.findIndex((k) => k.name.startsWith("quantize"));
const q = best[quantizeAt], mm = best[0];
q.one -= mm.one, q.two -= mm.two, q.base -= mm.base;
if (layer(one).wq.type === 0) cases.splice(quantizeAt, 1), best.splice(quantizeAt, 1);

console.log(`# ${runtime}, ${path.split("/").pop()}, ${T} rows, fastest of ${reps} calls, ${runStamp()}`);
const baseHead = base ? " baseline, 2 threads ms (speed-up) |" : "";
console.log(`| op | calls a layer | 1 thread ms | 2 threads ms (speed-up) | 2 threads, halves ms (speed-up) |${baseHead}`);
console.log(`|---|---|---|---|---|${base ? "---|" : ""}`);
let step1 = 0, step2 = 0, stepBase = 0;
cases.forEach((k, i) => {
  const b = best[i], calls = k.name.startsWith("quantize") ? 4 : k.perLayer;
  step1 += calls * b.one, step2 += calls * b.two, stepBase += calls * b.base;
  const halves = k.halves ? `${b.halves.toFixed(3)} (${(b.one / b.halves).toFixed(2)}x)` : "";
  const old = base ? ` ${b.base.toFixed(3)} (${(b.one / b.base).toFixed(2)}x) |` : "";
  console.log(`| ${k.name} | ${calls} | ${b.one.toFixed(3)} | ${b.two.toFixed(3)} (${(b.one / b.two).toFixed(2)}x) | ${halves} |${old}`);
});
console.log(
  `a layer of these ops: ${step1.toFixed(2)} ms on 1 thread, ${step2.toFixed(2)} ms on 2: ${(step1 / step2).toFixed(2)}x` +
    (base ? `; baseline on 2: ${stepBase.toFixed(2)} ms, ${(step1 / stepBase).toFixed(2)}x` : "") +
    ` (the classifier, embedding, KV store and JS between calls left out)`,
);
await one.close();
await two.close();
await base?.close();
