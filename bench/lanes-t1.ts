/**
 * The T = 1 (decode) half of bench/lanes-kquant.bench.ts and bench/lanes-q6_k.bench.ts (`--t1`): one lanes-layout
 * type's matmul as built ("today") against the other T = 1 kernels of the build and the candidate steps of a small
 * module compiled here (bench/lanes-kquant/t1.ts, bench/lanes-q6_k/t1.ts), on the same repacked weights and KX
 * activations. Every output, over the whole range and (where a candidate takes a row range) over quad-aligned
 * splits, is checked bit for bit against today's; 300 ms of warm-up per variant (JavaScriptCore tiers a large
 * function up late), then the fastest call of interleaved rounds, with read_probe (assembly/f32.ts: four streams of
 * f32 adds) over the same weight bytes in the same rounds: each kernel's GB/s as a fraction of one core's read rate.
 * Weights over 8 MiB (or every shape with --cold) are read after a 256 MiB sweep, so from DRAM, as in the model.
 */
import { engine, MiB, openStandalone, xorshift } from "./candidates.ts";
import { runStamp } from "./cli.ts";

/** One weight type's T = 1 comparison. */
export interface T1Type {
  name: string;
  /** the AssemblyScript module with the candidates, relative to the repository root */
  entry: string;
  /** bytes of one natural block (256 weights) */
  blockBytes: number;
  /** natural blocks of `bytes` at `at`: random weight bytes, a finite normal f16 d (and dmin) */
  fill(heap: Uint8Array, at: number, bytes: number, rnd: () => number): void;
  repack: string;
  /** today's kernel: (out, xq, w, n, d, T, r0, r1) */
  today: string;
  /** other kernels of the build by short name, same arguments (q1: Bun's, u8: V8 with VNNI's) */
  kernels: Record<string, string>;
  /** whether the module's candidates take a row range: (out, xq, w, n, d, r0, r1), else (out, xq, w, n, d) */
  candidateRange: boolean;
  /** an export (xq, n) run after the activation row is quantized: candidates' extra activation data after the row */
  prepare?: string;
}

export interface T1Options {
  variants: string[];
  shapes: [number, number][];
  rounds: number;
  plain: boolean;
  cold: boolean;
  wasm?: string;
}

/** Runs the comparison and prints one line per shape; false where any output differs from today's. */
export function runT1(type: T1Type, o: T1Options): boolean {
  const { ex, memory, heap } = openStandalone(type.entry, { relaxed: !o.plain, mib: 1088, wasm: o.wasm });
  // weights (up to 32 MiB), activations, outputs, f32 activations, repack scratch; a 256 MiB region swept to evict caches
  const W = 64 * 1024, X = W + 32 * MiB, O = X + MiB, O2 = O + MiB, XF = O2 + MiB, TMP = XF + MiB, EVICT = TMP + MiB;
  const rnd = xorshift();
  const variants = ["today", ...o.variants];
  for (const v of o.variants) if (!type.kernels[v] && !ex[v]) throw new Error(`no kernel or candidate ${v} in ${type.entry}`);
  const build = o.plain ? "plain" : "relaxed";
  console.log(
    `${type.name} T = 1, ${engine}, ${build} build, ${runStamp()}: fastest call in us (GB/s of weights = fraction of read_probe's; ratio today / variant)`,
  );
  let allSame = true;
  for (const [d, n] of o.shapes) {
    const bytes = d * (n / 256) * type.blockBytes;
    if (bytes > 32 * MiB) throw new Error(`${d}x${n}: over 32 MiB of weights`);
    type.fill(heap, W, bytes, rnd);
    ex[type.repack](W, n, d, TMP);
    const xf = new Float32Array(memory.buffer, XF, n);
    for (let i = 0; i < n; i++) xf[i] = Math.sin(i * 0.37) * 2 + Math.cos(i * 0.011);
    ex.quantize_q8_kx(X, XF, n, 1);
    if (type.prepare) ex[type.prepare](X, n);
    const call = (v: string, out: number, r0 = 0, r1 = d) => {
      if (v === "today") ex[type.today](out, X, W, n, d, 1, r0, r1);
      else if (type.kernels[v]) ex[type.kernels[v]](out, X, W, n, d, 1, r0, r1);
      else if (type.candidateRange) ex[v](out, X, W, n, d, r0, r1);
      else ex[v](out, X, W, n, d);
    };
    call("today", O);
    const ref = new Uint32Array(memory.buffer, O, d).slice();
    const same: Record<string, boolean> = {};
    const cut = [0, 4 * Math.floor(d / 12), 4 * Math.floor(d / 5), d];
    for (const v of o.variants) {
      new Uint32Array(memory.buffer, O, d).fill(0x7fc00001);
      call(v, O);
      let ok = ref.every((x, i) => x === new Uint32Array(memory.buffer, O, d)[i]);
      if (type.kernels[v] || type.candidateRange) {
        new Uint32Array(memory.buffer, O2, d).fill(0x7fc00001);
        for (let i = 0; i + 1 < cut.length; i++) call(v, O2, cut[i], cut[i + 1]);
        const b = new Uint32Array(memory.buffer, O2, d);
        ok &&= ref.every((x, i) => x === b[i]);
      }
      same[v] = ok;
      allSame &&= ok;
    }
    const cold = o.cold || bytes > 8 * MiB;
    const reps = cold ? 1 : Math.max(1, Math.round(2e6 / (d * n)));
    const best: Record<string, number> = Object.fromEntries([...variants, "read_probe"].map((v) => [v, Infinity]));
    for (const v of [...variants, "read_probe"]) {
      for (const t0 = performance.now(); performance.now() - t0 < 300;) v === "read_probe" ? ex.read_probe(W, bytes / 4) : call(v, O);
    }
    for (let r = 0; r < o.rounds; r++) {
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
          ` ${v} ${(best[v] * 1000).toFixed(1)} (${gbs(v).toFixed(1)} GB/s = ${(gbs(v) / gbs("read_probe")).toFixed(2)}, ` +
          `${((2 * n * d) / best[v] / 1e6).toFixed(0)} GOP/s` +
          (v === "today" ? ")" : `, ${(best.today / best[v]).toFixed(2)}x${same[v] ? "" : ", DIFFERS"})`)
        ).join(""),
    );
  }
  return allSame;
}
