/**
 * Q4_K lanes at T = 1 (decode): matmul_q4_k_lanes against candidate steps (bench/lanes-kquant/t1.ts) on one module
 * compiled here (relaxed SIMD, or plain with --plain), the same repacked weights and KX activations; every output,
 * over the whole range and over quad-aligned splits, checked bit for bit against matmul_q4_k_lanes. Also the
 * machine's read rate over the same weight bytes (read_probe), so each kernel's rate is a fraction of it.
 *
 *   deno run -A bench/lanes-kquant-t1.bench.ts          bun bench/lanes-kquant-t1.bench.ts        [--rounds 12]
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { benchArgs } from "./cli.ts";

const { values: opts } = benchArgs(
  `Q4_K lanes T = 1 candidates on one module compiled here: matmul_q4_k_lanes ("today") and bench/lanes-kquant/t1.ts's
steps on the same weights, outputs checked bit for bit; fastest call, GB/s of weights, ratio to today and to read_probe.

  deno run -A bench/lanes-kquant-t1.bench.ts [options]        bun bench/lanes-kquant-t1.bench.ts [options]

  --rounds N        timed rounds per variant, interleaved (default 12)
  --variants LIST   candidates (default u4,u2,u1)
  --shapes LIST     out x in shapes (default 2048x768,768x2048,12288x2048: the last one past the caches)
  --plain           the plain-SIMD build (and its lanes order) instead of the relaxed one
  --wasm FILE       use this compiled module instead of compiling (it must match --plain)
  -h, --help        this text`,
  {
    options: {
      rounds: { type: "string", default: "12" },
      variants: { type: "string", default: "u4,u2,u1" },
      shapes: { type: "string", default: "2048x768,768x2048,12288x2048" },
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
  wasmFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "lanes-k-t1-")), "k.wasm");
  const asc = spawnSync(path.join(root, "node_modules/.bin/asc"), [
    path.join(root, "bench/lanes-kquant/t1.ts"),
    ...["--runtime", "stub", "--importMemory", "-O3", "--noAssert", "--enable", "simd"],
    ...(plain ? ["--use", "RELAXED=0"] : ["--enable", "relaxed-simd", "--use", "RELAXED=1"]),
    ...["-o", wasmFile],
  ], { encoding: "utf8", cwd: os.tmpdir() }); // not the repository root, whose asconfig.json (converge) takes minutes
  if (asc.status !== 0) throw new Error(`asc failed:\n${asc.stderr}`);
}
type Fn = (...args: number[]) => number;
const memory = new WebAssembly.Memory({ initial: 1024 + 16 * 1024 }); // 1088 MiB
const ex = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(wasmFile)), { env: { memory } }).exports as Record<string, Fn>;
if (!opts.wasm) fs.rmSync(path.dirname(wasmFile), { recursive: true });

const MiB = 1 << 20;
// weights (up to 32 MiB), activations, outputs, f32 activations, repack scratch; a 256 MiB region read_probe sweeps to evict caches
const W = 64 * 1024, X = W + 32 * MiB, O = X + MiB, O2 = O + MiB, XF = O2 + MiB, TMP = XF + MiB, EVICT = TMP + MiB;
const heap = new Uint8Array(memory.buffer);
let seed = 12345;
const next = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
};
/** Random Q4_K blocks: finite normal f16 d and dmin, random scale/min bytes and nibbles. */
function fillWeights(bytes: number) {
  for (let b = 0; b < bytes; b += 144) {
    for (let i = 0; i < 144; i++) heap[W + b + i] = next() & 255;
    const half = (sign: number) => (sign << 15) | ((1 + (next() % 7)) << 10) | (next() & 0x3ff);
    const dv = half(next() & 1), dm = half(0);
    heap[W + b] = dv & 255, heap[W + b + 1] = dv >> 8;
    heap[W + b + 2] = dm & 255, heap[W + b + 3] = dm >> 8;
  }
}

const variants = ["today", ...opts.variants.split(",")];
for (const v of variants.slice(1)) if (!ex[v]) throw new Error(`no candidate ${v} in bench/lanes-kquant/t1.ts`);
console.log(
  `${engine}, ${plain ? "plain" : "relaxed"} build, ${new Date().toISOString()}, load ${
    os.loadavg().map((l) => l.toFixed(1)).join(" ")
  }: ` +
    `fastest call in us (GB/s of weights; ratio today / variant)`,
);
let allSame = true;
for (const [d, n] of opts.shapes.split(",").map((s) => s.split("x").map(Number))) {
  const bytes = d * (n / 256) * 144;
  if (bytes > 32 * MiB) throw new Error(`${d}x${n}: over 32 MiB of weights`);
  fillWeights(bytes);
  ex.repack_q4_k_lanes(W, n, d, TMP);
  const xf = new Float32Array(memory.buffer, XF, n);
  for (let i = 0; i < n; i++) xf[i] = Math.sin(i * 0.37) * 2 + Math.cos(i * 0.011);
  ex.quantize_q8_kx(X, XF, n, 1);
  const call = (v: string, out: number, r0 = 0, r1 = d) => {
    if (v === "today") ex.matmul_q4_k_lanes(out, X, W, n, d, 1, r0, r1);
    else ex[v](out, X, W, n, d, r0, r1);
  };
  call("today", O);
  const ref = new Uint32Array(memory.buffer, O, d).slice();
  const same: Record<string, boolean> = {};
  const cut = [0, 4 * Math.floor(d / 12), 4 * Math.floor(d / 5), d];
  for (const v of variants.slice(1)) {
    new Uint32Array(memory.buffer, O, d).fill(0);
    call(v, O);
    new Uint32Array(memory.buffer, O2, d).fill(0);
    for (let i = 0; i + 1 < cut.length; i++) call(v, O2, cut[i], cut[i + 1]);
    const a = new Uint32Array(memory.buffer, O, d), b = new Uint32Array(memory.buffer, O2, d);
    same[v] = ref.every((x, i) => x === a[i] && x === b[i]);
    allSame &&= same[v];
  }
  // past the caches (bytes > 8 MiB): each call after a 256 MiB sweep, so the weights come from DRAM
  const cold = bytes > 8 * MiB;
  const reps = cold ? 1 : Math.max(1, Math.round(2e6 / (d * n)));
  const best: Record<string, number> = Object.fromEntries([...variants, "read_probe"].map((v) => [v, Infinity]));
  // warm-up (300 ms a variant): JavaScriptCore times a large function in its baseline tier at first
  for (const v of [...variants, "read_probe"]) {
    for (const t0 = performance.now(); performance.now() - t0 < 300;) v === "read_probe" ? ex.read_probe(W, bytes / 4) : call(v, O);
  }
  for (let r = 0; r < rounds; r++) {
    for (const v of [...variants, "read_probe"]) {
      if (cold) ex.read_probe(EVICT, (256 * MiB) / 4);
      const t0 = performance.now();
      for (let i = 0; i < reps; i++) v === "read_probe" ? ex.read_probe(W, bytes / 4) : call(v, O);
      best[v] = Math.min(best[v], (performance.now() - t0) / reps);
    }
  }
  const gbs = (v: string) => bytes / best[v] / 1e6;
  console.log(
    `  ${`${d}x${n}`.padEnd(10)} ${(bytes / MiB).toFixed(1)} MiB${cold ? " (from DRAM)" : ""}: read_probe ${
      gbs("read_probe").toFixed(1)
    } GB/s;` +
      variants.map((v) =>
        ` ${v} ${(best[v] * 1000).toFixed(1)} (${gbs(v).toFixed(1)} GB/s = ${(gbs(v) / gbs("read_probe")).toFixed(2)} of read` +
        (v === "today" ? ")" : `, ${(best.today / best[v]).toFixed(2)}x${same[v] ? "" : ", DIFFERS"})`)
      ).join(""),
  );
}
if (!allSame) {
  console.error("a candidate differs from matmul_q4_k_lanes");
  if (typeof process !== "undefined") process.exitCode = 1;
}
