/**
 * One lanes-layout matmul kernel of this tree's build against the same kernel of an earlier build (a copy of build/),
 * in one process: each build in its own memory holding the same weights (random natural blocks of the type, repacked by
 * its own repack kernel) and the same activations (its own quantize kernel); calls alternate between the builds, both
 * outputs are checked bit for bit, and the fastest call of each (after 300 ms of calls: JavaScriptCore tiers up late)
 * is printed with old / new. `--cold` reads every call's weights from memory (a 64 MiB sweep between calls), as a
 * decode step does. The kernel is the one this runtime takes (src/quant/kernels.ts lanesKernel) unless --kernel names one.
 *
 *   deno run -A bench/kernel-ab.ts --baseline /tmp/old-build [--types Q4_0,Q4_K,Q6_K] [--T 1] [--cold]
 *   bun bench/kernel-ab.ts --baseline /tmp/old-build ...
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { benchArgs, choiceFlag, intFlag, intListFlag, listFlag, runStamp, runtime, shapeListFlag, usageError } from "./cli.ts";
import { checkKernelExports, dotAddIsExactU8S8, hasRelaxedSimd, type Kernels } from "../src/kernels/wasm.ts";
import { lanesKernel } from "../src/quant/kernels.ts";
import { GGMLType, rowBytes } from "../src/formats/ggml-types.ts";
import { actRowBytes } from "../src/quant/kernels.ts";
import { KERNEL_NAMES } from "../src/kernels/spec.ts";

const USAGE = `A lanes matmul kernel, this tree's build/ against an earlier build's (--baseline DIR), one process: outputs compared bit
for bit, fastest call of alternating rounds, old / new.

  deno run -A bench/kernel-ab.ts --baseline DIR [options]        bun bench/kernel-ab.ts --baseline DIR [options]

  --baseline DIR   the earlier build's folder (kvasm-relaxed.wasm or kvasm-simd.wasm in it)
  --types LIST     weight types (default Q4_0,Q4_K,Q6_K)
  --kernel NAME    this matmul export instead of the one this runtime takes (both builds must have it)
  --shapes LIST    out x in (default 2048x768,768x2048,32000x768)
  --T LIST         activation rows (default 1)
  --rounds N       timed rounds (default 15)
  --cold           a 64 MiB sweep before every timed call: weights from memory
  -h, --help       this text`;
const { values: opts } = benchArgs(
  USAGE,
  {
    options: {
      baseline: { type: "string" },
      types: { type: "string", default: "Q4_0,Q4_K,Q6_K" },
      kernel: { type: "string" },
      shapes: { type: "string", default: "2048x768,768x2048,32000x768" },
      T: { type: "string", default: "1" },
      rounds: { type: "string", default: "15" },
      cold: { type: "boolean", default: false },
      help: { type: "boolean", short: "h" },
    },
  },
);
if (!opts.baseline) usageError("--baseline DIR is required (a copy of an earlier build/)", USAGE);
const variant = hasRelaxedSimd() ? "relaxed" : "simd";
const root = new URL("..", import.meta.url).pathname;

const MiB = 1 << 20;
const W = MiB, X = 64 * MiB, XF = 72 * MiB, O = 80 * MiB, TMP = 88 * MiB, SWEEP = 96 * MiB, TOTAL = 168 * MiB;
/** Byte offsets of a block's f16 scales (kept small and finite, so that outputs are numbers). */
const F16_AT: Record<string, { block: number; at: number[] }> = {
  Q4_0: { block: 18, at: [0] },
  Q4_K: { block: 144, at: [0, 2] },
  Q6_K: { block: 210, at: [208] },
};
const typeNames = listFlag(USAGE, "types", opts.types, Object.keys(F16_AT));
const shapes = shapeListFlag(USAGE, "shapes", opts.shapes), Ts = intListFlag(USAGE, "T", opts.T);
const rounds = intFlag(USAGE, "rounds", opts.rounds);
const kernelName = opts.kernel === undefined
  ? undefined
  : choiceFlag(USAGE, "kernel", opts.kernel, KERNEL_NAMES.filter((k) => k.startsWith("matmul_")));
// every case inside its region before anything is compiled: the weights (and their repacked copy), a T-row output
for (const typeName of typeNames) {
  for (const [d, n] of shapes) {
    const bytes = (rowBytes(GGMLType[typeName as keyof typeof GGMLType], n) ?? NaN) * d;
    if (!(bytes <= X - W)) {
      usageError(`--shapes: ${d}x${n} is not a whole number of ${typeName} blocks a row within ${(X - W) / MiB} MiB`, USAGE);
    }
    for (const T of Ts) {
      if (4 * d * T > TMP - O) usageError(`--T: ${T} rows of ${d} outputs pass the output's ${(TMP - O) / MiB} MiB`, USAGE);
    }
  }
}
type Build = { k: Kernels; mem: WebAssembly.Memory };
async function build(file: string): Promise<Build> {
  const mem = new WebAssembly.Memory({ initial: TOTAL >> 16 });
  const { instance } = await WebAssembly.instantiate(fs.readFileSync(file), { env: { memory: mem } });
  return { k: checkKernelExports(instance.exports, variant), mem };
}
const builds = {
  new: await build(path.join(root, "build", `kvasm-${variant}.wasm`)),
  old: await build(path.join(opts.baseline, `kvasm-${variant}.wasm`)),
};
const exact = variant === "relaxed" && dotAddIsExactU8S8();

let seed = 12345;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
};
console.log(
  `${runtime}, ${variant}, ${runStamp()}: ` +
    `this build (new) against ${opts.baseline} (old)${opts.cold ? ", weights from memory" : ""}; fastest call, old / new`,
);
let allSame = true;
for (const typeName of typeNames) {
  const type = GGMLType[typeName as keyof typeof GGMLType];
  const lanes = lanesKernel(type, exact);
  if (!lanes) throw new Error(`${typeName}: no lanes kernel`);
  const kernel = (kernelName ?? lanes.matmul) as typeof lanes.matmul;
  for (const [d, n] of shapes) {
    const bytes = rowBytes(type, n)! * d, f = F16_AT[typeName];
    const nat = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) nat[i] = rnd() & 0xff;
    const dv = new DataView(nat.buffer);
    for (let p = 0; p < bytes; p += f.block) for (const a of f.at) dv.setUint16(p + a, 0x1400 + (rnd() & 0x0fff), true);
    for (const T of Ts) {
      const xf = new Float32Array(n * T);
      for (let i = 0; i < xf.length; i++) xf[i] = Math.sin(i * 0.37 + T) * 2;
      for (const b of Object.values(builds)) {
        new Uint8Array(b.mem.buffer, W, bytes).set(nat);
        b.k[lanes.repack](W, n, d, TMP);
        new Float32Array(b.mem.buffer, XF, xf.length).set(xf);
        b.k[lanes.quantize](X, XF, n, T);
      }
      if (actRowBytes(lanes.actType, n) * T > 8 * MiB) throw new Error("activations past their region");
      const call = (b: Build) => b.k[kernel](O, X, W, n, d, T, 0, d);
      const sweep = (b: Build) => b.k.read_probe(SWEEP, 16 * MiB); // 64 MiB of floats
      for (const b of Object.values(builds)) call(b);
      const same = new Uint32Array(builds.new.mem.buffer, O, d * T).every((x, i) =>
        x === new Uint32Array(builds.old.mem.buffer, O, d * T)[i]
      );
      allSame &&= same;
      for (const b of Object.values(builds)) for (const t0 = performance.now(); performance.now() - t0 < 300;) call(b);
      const best = { new: Infinity, old: Infinity };
      for (let r = 0; r < rounds; r++) {
        for (const w of (r & 1) ? ["old", "new"] as const : ["new", "old"] as const) {
          if (opts.cold) sweep(builds[w]);
          const t0 = performance.now();
          call(builds[w]);
          best[w] = Math.min(best[w], performance.now() - t0);
        }
      }
      const gops = (ms: number) => ((2 * n * d * T) / ms / 1e6).toFixed(0);
      console.log(
        `  ${kernel} ${`${d}x${n}`.padEnd(9)} T=${String(T).padEnd(3)} new ${(best.new * 1000).toFixed(0)} µs (${
          gops(best.new)
        } GOP/s)  old ${(best.old * 1000).toFixed(0)} µs  ${(best.old / best.new).toFixed(3)}x${same ? "" : "  DIFFER"}`,
      );
    }
  }
}
if (!allSame) throw new Error("the builds' outputs differ");
