/**
 * f32 kernel micro-benchmarks (tinybench): matmul at decode (T=1) and prefill
 * (T=16, 128) sizes of the stories110M shape, each reported next to the read
 * bandwidth probe over the same bytes, so the ratio says how close a
 * memory-bound kernel gets to the machine's limit.
 *
 *   deno run -A bench/kernels.bench.ts      bun bench/kernels.bench.ts
 */
import { Bench } from "tinybench";
import { instantiateKernels, pickVariant } from "../src/kernels/wasm.ts";
import { benchArgs, runtime } from "./cli.ts";

benchArgs(
  `f32 matmul micro-benchmarks (tinybench) at decode and prefill sizes of the stories110M shape, each beside the read
bandwidth probe over the same bytes. No options.

  deno run -A bench/kernels.bench.ts        bun bench/kernels.bench.ts`,
  { options: { help: { type: "boolean", short: "h" } } },
);

/** Mean latency (ms) of a finished tinybench task (its result type is a union over task states). */
function meanMs(task: { result?: unknown }): number {
  return (task.result as { latency: { mean: number } }).latency.mean;
}

const PAGES = 3000; // ~196 MB: weights well past the 32 MB L3
const mem = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES });
const results: string[] = [];
for (const relaxed of [false, true]) {
  const k = await instantiateKernels(mem, pickVariant({ shared: false, relaxed }));
  const f = new Float32Array(mem.buffer);
  for (let i = 0; i < f.length; i += 7) f[i] = (i % 13) * 0.01;
  const x = 65536, out = x + (4 << 20), w = out + (4 << 20);
  const bench = new Bench({ time: 400 });
  const shapes: Array<[string, number, number, number]> = [
    ["wq 768x768 T=1", 768, 768, 1],
    ["w1 2048x768 T=1", 768, 2048, 1],
    ["cls 32000x768 T=1", 768, 32000, 1],
    ["w1 2048x768 T=16", 768, 2048, 16],
    ["w1 2048x768 T=128", 768, 2048, 128],
  ];
  // rotate through 16 copies of each matrix so decode-size weights come from memory, not cache
  const copies = (n: number, d: number) => Math.max(1, Math.min(16, Math.floor((150 << 20) / (n * d * 4))));
  for (const [name, n, d, T] of shapes) {
    let c = 0;
    const nc = copies(n, d);
    bench.add(`${relaxed ? "relaxed" : "simd   "} matmul_f32 ${name}`, () => {
      k.matmul_f32(out, x, w + (c++ % nc) * n * d * 4, n, d, T, 0, d);
    });
  }
  bench.add(`${relaxed ? "relaxed" : "simd   "} read_probe 150 MB`, () => {
    k.read_probe(w, (150 << 20) / 4);
  });
  await bench.run();
  const probe = bench.tasks.at(-1)!;
  const probeGBs = (150 << 20) / (meanMs(probe) / 1000) / 1e9;
  for (const [i, [name, n, d, T]] of shapes.entries()) {
    const ms = meanMs(bench.tasks[i]);
    const gflops = (2 * n * d * T) / (ms / 1000) / 1e9;
    const gbs = (n * d * 4) / (ms / 1000) / 1e9;
    results.push(
      `${relaxed ? "relaxed" : "simd"}\t${name}\t${ms.toFixed(3)} ms\t${gflops.toFixed(1)} GFLOP/s\t${gbs.toFixed(1)} GB/s\t${
        ((100 * gbs) / probeGBs).toFixed(0)
      }% of read_probe (${probeGBs.toFixed(1)} GB/s)`,
    );
  }
}
console.log(`# ${runtime}, single thread`);
for (const r of results) console.log(r);
