/**
 * Q6_K lanes-layout T = 1 steps on one module compiled here (bench/lanes-q6_k/t1.ts, relaxed SIMD or --plain):
 * matmul_q6_k_lanes as built in that module ("lanes") against the candidates, on the same repacked weights; every
 * output checked bit for bit against lanes; 300 ms of warm-up per variant (JavaScriptCore tiers up late), then the
 * fastest call of interleaved rounds; and the fastest read_probe (assembly/f32.ts: four streams of plain f32 adds) over
 * the weight's bytes in the same rounds, the time one core takes to read them.
 *
 *   deno run -A bench/lanes-q6_k-t1.bench.ts          bun bench/lanes-q6_k-t1.bench.ts        [--variants q1,av1]
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { benchArgs } from "./cli.ts";

const { values: opts } = benchArgs(
  `Q6_K lanes-layout T = 1 candidates (bench/lanes-q6_k/t1.ts) against matmul_q6_k_lanes, one module compiled here;
outputs checked bit for bit; fastest call and ratio to matmul_q6_k_lanes, per shape.

  deno run -A bench/lanes-q6_k-t1.bench.ts [options]        bun bench/lanes-q6_k-t1.bench.ts [options]

  --variants LIST   candidates (default q1,av1,sh4; q1: matmul_q6_k_lanes_q1 as built)
  --rounds N        timed rounds per variant, interleaved (default 10)
  --shapes LIST     out x in shapes (default 32000x768,2048x768,768x2048)
  --cold            read 64 MiB of other memory before each timed call (weights from DRAM, as in the model)
  --plain           the plain-SIMD build (and its lanes order)
  --wasm FILE       use this compiled module (it must match --plain) instead of compiling
  -h, --help        this text`,
  {
    options: {
      variants: { type: "string", default: "q1,av1,sh4" },
      rounds: { type: "string", default: "10" },
      shapes: { type: "string", default: "32000x768,2048x768,768x2048" },
      cold: { type: "boolean" },
      plain: { type: "boolean" },
      wasm: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  },
);
const rounds = Number(opts.rounds);
const plain = opts.plain === true;
const engine = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

const root = new URL("..", import.meta.url).pathname;
let wasmFile = opts.wasm;
if (!wasmFile) {
  wasmFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "q6k-t1-")), "k.wasm");
  // run asc outside the repository so that it does not pick up asconfig.json (its --converge costs minutes)
  const asc = spawnSync(path.join(root, "node_modules/.bin/asc"), [
    path.join(root, "bench/lanes-q6_k/t1.ts"),
    ...["--runtime", "stub", "--importMemory", "-O3", "--noAssert", "--enable", "simd"],
    ...(plain ? ["--use", "RELAXED=0"] : ["--enable", "relaxed-simd", "--use", "RELAXED=1"]),
    ...["-o", wasmFile],
  ], { encoding: "utf8", cwd: os.tmpdir() });
  if (asc.status !== 0) throw new Error(`asc failed:\n${asc.stderr}`);
}

type Fn = (...args: number[]) => void;
const memory = new WebAssembly.Memory({ initial: 3072 }); // 192 MiB
const ex = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(wasmFile)), { env: { memory } }).exports as Record<string, Fn>;
if (!opts.wasm) fs.rmSync(path.dirname(wasmFile), { recursive: true });

const MiB = 1 << 20;
const WL = 64 * 1024, X = WL + 24 * MiB, O = X + MiB, XF = O + MiB, TMP = XF + MiB, EVICT = TMP + MiB;
const cold = opts.cold === true;
const heap = new Uint8Array(memory.buffer);
let s = 12345;
const rnd = () => {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return s >>> 0;
};

const candidates = opts.variants.split(",");
const variants = ["lanes", ...candidates];
const call = (v: string, n: number, d: number) => {
  if (v === "lanes") ex.matmul_q6_k_lanes(O, X, WL, n, d, 1, 0, d);
  else if (v === "q1") ex.matmul_q6_k_lanes_q1(O, X, WL, n, d, 1, 0, d);
  else ex[v](O, X, WL, n, d);
};
console.log(`${engine}, ${plain ? "plain" : "relaxed"}, ${new Date().toISOString()}: fastest call in us (ratio lanes / variant)`);
let allSame = true;
for (const shape of opts.shapes.split(",")) {
  const [d, n] = shape.split("x").map(Number);
  const bytes = d * (n / 256) * 210;
  for (let b = 0; b < bytes; b += 210) {
    for (let i = 0; i < 208; i++) heap[WL + b + i] = rnd() & 255;
    const dv = ((rnd() & 1) << 15) | ((1 + (rnd() % 7)) << 10) | (rnd() & 0x3ff);
    heap[WL + b + 208] = dv & 255, heap[WL + b + 209] = dv >> 8;
  }
  ex.repack_q6_k_lanes(WL, n, d, TMP);
  const xf = new Float32Array(memory.buffer, XF, n);
  for (let i = 0; i < n; i++) xf[i] = Math.sin(i * 0.37) * 2 + Math.cos(i * 0.011);
  ex.quantize_q8_kx(X, XF, n, 1);
  call("lanes", n, d);
  const ref = new Uint32Array(memory.buffer, O, d).slice();
  const same: Record<string, boolean> = {};
  for (const v of variants) {
    new Uint32Array(memory.buffer, O, d).fill(0x7fc00001);
    call(v, n, d);
    const o = new Uint32Array(memory.buffer, O, d);
    same[v] = ref.every((x, i) => x === o[i]);
    allSame &&= same[v];
  }
  for (const v of variants) for (const t0 = performance.now(); performance.now() - t0 < 300;) call(v, n, d);
  const reps = cold ? 1 : d >= 16384 ? 2 : 16;
  const best: Record<string, number> = Object.fromEntries(variants.map((v) => [v, Infinity]));
  let probe = Infinity;
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      if (cold) ex.read_probe(EVICT, (64 * MiB) >> 2);
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) call(v, n, d);
      best[v] = Math.min(best[v], (performance.now() - t0) / reps);
    }
    if (cold) ex.read_probe(EVICT, (64 * MiB) >> 2);
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) ex.read_probe(WL, bytes >> 2);
    probe = Math.min(probe, (performance.now() - t0) / reps);
  }
  const gops = (ms: number) => ((2 * n * d) / ms / 1e6).toFixed(0);
  console.log(
    `  ${shape.padEnd(9)}` +
      variants.map((v) =>
        ` ${v} ${(best[v] * 1000).toFixed(1)}us ${gops(best[v])}G ${(best.lanes / best[v]).toFixed(2)}x${same[v] ? "" : " DIFF"}`
      )
        .join(" |") +
      ` | read_probe ${(probe * 1000).toFixed(1)}us ${(bytes / probe / 1e6).toFixed(1)} GB/s`,
  );
}
if (!allSame) throw new Error("a candidate's outputs differ from matmul_q6_k_lanes's");
