/**
 * The decode step's attention over the paged KV cache, alone: one query row against `--positions` cached
 * positions on the stories110M shape (12 layers, 12 heads of 64, pages of 16 positions, every layer's K and V
 * in each page, as src/kv lays them out), each call a different layer as in a forward pass, so K and V come
 * from memory (11 MB a token at 150 positions on the f32 cache), not from L1. Kernels: `attention` (f32 cache),
 * attention_f16_twopass (F16 cache, default mode) and attention_f16 (F16 cache, --ggml-order's one-row path).
 * Prints µs per token (12 layer calls) for each cache type and the rate at which the f32 kernel reads K and V as a ratio of the machine's
 * read rate (read_probe) measured in the same run. `--against build.wasm` times a second kernel build in the
 * same process (old against new while iterating) and prints this build's speed over its.
 *
 *   deno run -A bench/attention.bench.ts [--positions 150] [--against /path/to/kvasm-relaxed.wasm] [--help]
 *   bun bench/attention.bench.ts ...
 */
import { instantiateKernels, type Kernels, pickVariant } from "../src/kernels/wasm.ts";
import { RESERVED } from "../src/memory/arena.ts";
import { benchArgs } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const runtime = g.Deno ? `deno ${g.Deno.version.deno}` : g.Bun ? `bun ${g.Bun.version}` : `node ${g.process.version}`;
const USAGE = `The decode step's attention over the paged KV cache alone (stories110M shape, 12 layers), per cache type.

  deno run -A bench/attention.bench.ts [options]        bun bench/attention.bench.ts [options]

  --positions N         cached positions the query row attends to (default 150)
  --against BUILD.wasm  also time this kernel build in the same process and print this build's speed over its
  -h, --help            this text`;
const { values: opts } = benchArgs(USAGE, {
  options: { positions: { type: "string", default: "150" }, against: { type: "string" }, help: { type: "boolean", short: "h" } },
});
const positions = Number(opts.positions);
const against = opts.against;
const { cpus, hostname } = await import("node:os");

const LAYERS = 12, HEADS = 12, HEAD_DIM = 64, PAGE = 16;
const kvDim = HEADS * HEAD_DIM, qDim = kvDim;
const nPages = Math.ceil(positions / PAGE);
type CacheType = { name: string; slot: number; kernel: "attention" | "attention_f16_twopass" | "attention_f16" };
const cacheTypes: CacheType[] = [
  { name: "f32", slot: kvDim * 4, kernel: "attention" },
  { name: "f16", slot: kvDim * 2, kernel: "attention_f16_twopass" }, // default mode
  { name: "f16 ggml-order", slot: kvDim * 2, kernel: "attention_f16" },
];

/** One memory per build: the cache pages (f32 sized, the f16 cache uses half of each), q, out, scores, page table. */
function layout() {
  const pageBytes = LAYERS * 2 * PAGE * kvDim * 4;
  const probeFloats = 64 << 20 >> 2; // 64 MiB: past any cache
  const bytes = RESERVED + nPages * pageBytes + probeFloats * 4 + (4 * qDim + HEADS * positions + 4 * nPages) * 4 + 4096;
  const mem = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: Math.ceil(bytes / 65536) });
  let top = RESERVED;
  const alloc = (n: number) => (top = Math.ceil((top + n) / 64) * 64) - Math.ceil(n / 64) * 64;
  const pages = alloc(nPages * pageBytes), probe = alloc(probeFloats * 4);
  const q = alloc(qDim * 4), out = alloc(qDim * 4), att = alloc(HEADS * positions * 4), table = alloc(nPages * 4);
  const f = new Float32Array(mem.buffer);
  let s = 7;
  for (let i = pages >> 2; i < (pages + nPages * pageBytes) >> 2; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    f[i] = (s / 2 ** 32) * 2 - 1;
  }
  for (let i = 0; i < qDim; i++) f[(q >> 2) + i] = Math.sin(i);
  // pages in a scrambled order, as a pool hands them out after some churn
  const i32 = new Int32Array(mem.buffer);
  for (let i = 0; i < nPages; i++) i32[(table >> 2) + i] = (i * 7) % nPages;
  return { mem, pages, probe, probeFloats, q, out, att, table };
}

async function build(path?: string): Promise<{ k: Kernels; m: ReturnType<typeof layout> }> {
  const m = layout();
  if (!path) return { k: await instantiateKernels(m.mem, pickVariant({ shared: false })), m };
  const bytes = g.Deno ? await g.Deno.readFile(path) : new Uint8Array(await g.Bun.file(path).arrayBuffer());
  const inst = await WebAssembly.instantiate(bytes, { env: { memory: m.mem, abort: () => {}, seed: () => Date.now() } });
  return { k: inst.instance.exports as unknown as Kernels, m };
}

/** µs per token: the 12 layers' calls of one cache type's one-row kernel at `positions`. */
function attentionStep(k: Kernels, m: ReturnType<typeof layout>, type: CacheType): () => void {
  const pageBytes = LAYERS * 2 * PAGE * type.slot;
  const fn = k[type.kernel];
  return () => {
    for (let l = 0; l < LAYERS; l++) {
      const kOff = l * 2 * PAGE * type.slot, vOff = kOff + PAGE * type.slot;
      fn(m.out, m.q, m.att, m.pages, m.table, PAGE, pageBytes, kOff, vOff, kvDim, HEADS, HEADS, HEAD_DIM, 0, positions, 0, HEADS, 0, 0, 0);
    }
  };
}

/** Fastest of interleaved rounds (at least 5 rounds or 2 s): a burst of load elsewhere hits every entry alike. */
function timeAll(fns: Array<() => void>): number[] {
  const best = fns.map(() => Infinity);
  const t = performance.now();
  for (let round = 0; round < 5 || performance.now() - t < 2000; round++) {
    fns.forEach((fn, i) => {
      const t0 = performance.now();
      for (let r = 0; r < 10; r++) fn();
      best[i] = Math.min(best[i], ((performance.now() - t0) * 1000) / 10);
    });
    if (performance.now() - t > 20_000) break;
  }
  return best;
}

const mine = await build();
const other = against ? await build(against) : undefined;
const entries: Array<{ label: string; run: () => void }> = [];
for (const type of cacheTypes) {
  entries.push({ label: `${type.name} cache`, run: attentionStep(mine.k, mine.m, type) });
  // an older build may lack the kernel (attention_f16_twopass): its f16 line then times attention_f16, what it ran
  const theirs = other && (other.k[type.kernel] ? type : { ...type, kernel: "attention_f16" } as CacheType);
  if (other) entries.push({ label: `${type.name} cache (--against)`, run: attentionStep(other.k, other.m, theirs!) });
}
entries.push({ label: "read_probe 64 MiB", run: () => mine.k.read_probe(mine.m.probe, mine.m.probeFloats) });
const us = timeAll(entries.map((e) => e.run));

console.log(`attention, one query row, ${positions} positions, ${LAYERS} layers x ${HEADS} heads x ${HEAD_DIM}, pages of ${PAGE}`);
console.log(`${runtime}, ${new Date().toISOString().slice(0, 16)}Z, ${hostname()}, ${cpus()[0]?.model ?? "?"}, 1 thread`);
const probeGBs = (mine.m.probeFloats * 4) / (us.at(-1)! * 1e3);
entries.forEach((e, i) => {
  if (i === entries.length - 1) return console.log(`  ${e.label.padEnd(28)} ${probeGBs.toFixed(1)} GB/s (the machine's read rate)`);
  const type = cacheTypes.find((t) => e.label.startsWith(t.name + " cache"))!;
  const gbs = (LAYERS * 2 * positions * kvDim * (type.slot / kvDim)) / (us[i] * 1e3);
  const vs = other && !e.label.includes("against") ? `  ${(us[i + 1] / us[i]).toFixed(2)}x the speed of --against` : "";
  console.log(
    `  ${e.label.padEnd(28)} ${us[i].toFixed(0).padStart(6)} µs/token  K+V at ${gbs.toFixed(1)} GB/s = ${
      (gbs / probeGBs).toFixed(2)
    } of read_probe${vs}`,
  );
});
