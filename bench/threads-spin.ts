/**
 * What a spinning pool thread costs the thread that computes: one 128-row prefill matmul (layer 0's q projection of
 * bench/synthetic.ts's stories110M model) on the calling thread alone (ThreadPool.solo "whole"), while the worker spins
 * for the next op with Atomics.pause() each turn, spins bare, or sleeps in Atomics.wait. Interleaved, fastest and
 * median of --reps each. Where the two threads run on hyperthread siblings of one core, a bare spin takes issue slots
 * from the computing sibling; on separate cores all three match (a sleeping worker leaves its core to other processes,
 * whose traffic in the shared cache then shows). The pool spins with Atomics.pause() where the runtime has it.
 *
 *   deno run -A bench/threads-spin.ts [--type F32] [--reps 20]        bun bench/threads-spin.ts ...
 */
import { loadModel } from "../src/model/load.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import type { LlamaWeights } from "../src/architectures/llama.ts";
import { ensureSyntheticModel, SYNTHETIC_TYPES } from "./synthetic.ts";
import { benchArgs, choiceFlag, intFlag, median, runStamp } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE = `A 128-row matmul on the calling thread while the pool's worker spins with Atomics.pause(), spins bare, or sleeps.

  deno run -A bench/threads-spin.ts [options]        bun bench/threads-spin.ts [options]

  --type T   F32, F16, Q8_0, Q4_0 or Q4_K_M: bench/synthetic.ts's stories110M model (default F32)
  --reps N   calls in each state, interleaved (default 20)
  -h, --help this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      type: { type: "string", default: "F32" },
      reps: { type: "string", default: "20" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const T = 128, reps = intFlag(USAGE, "reps", opts.reps);
const path = await ensureSyntheticModel("stories110M", choiceFlag(USAGE, "type", opts.type, SYNTHETIC_TYPES));
// each matmul run when called (not held back to join the next over the same input: see ThreadedWasmBackend.matmul)
const backend = new ThreadedWasmBackend({ threads: 2, mergeMatmuls: false });
const model = await loadModel(path, { backend, contextLength: 512 });
try {
  const pool = backend.pool;
  if (!pool) throw new Error("no worker threads in this runtime");
  const s = model.state, w = (model.weights as LlamaWeights).layers[0].wq;
  await model.prefill(model.newSequence(), Array.from({ length: T }, (_, i) => 300 + ((i * 104729) % 20000)));
  // a prompt's activations (normal floats: what a finished prefill leaves in the scratch may be subnormal, which is slow)
  const x = new Float32Array(T * w.cols);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37) * 2;
  backend.write(s.xb, x);
  const states = ["pause", "bare", "asleep"] as const;
  const ms: Record<(typeof states)[number], number[]> = { pause: [], bare: [], asleep: [] };
  for (let r = 0; r < reps; r++) {
    for (const state of states) {
      pool.spinPause = state === "pause";
      backend.matmul(s.q, s.xb, w, T); // quantizes xb (on both threads) and wakes the worker
      await backend.flush();
      if (state === "asleep") await new Promise((res) => setTimeout(res, 15)); // past the worker's 5 ms spin
      else pool.split("add", "elements", s.xb2, s.xb2, s.xb2, 0); // an empty op: the worker spins from here (5 ms)
      pool.solo = "whole";
      const t = performance.now();
      try {
        backend.matmul(s.q, s.xb, w, T, true);
      } finally {
        pool.solo = "off";
      }
      ms[state].push(performance.now() - t);
    }
  }
  pool.spinPause = true;
  console.log(`# ${g.Deno ? "deno" : "bun"}, ${path.split("/").pop()}, matmul ${w.rows}x${w.cols}, T = ${T}, ${runStamp()}`);
  for (const state of states) {
    const v = ms[state];
    console.log(`worker ${state.padEnd(6)}: fastest ${Math.min(...v).toFixed(3)} ms, median ${median(v).toFixed(3)} ms`);
  }
} finally {
  await model.close();
}
