/**
 * The decode step's attention over the paged KV cache, alone: one query row against `--positions` cached
 * positions on the stories110M shape (12 layers, 12 heads of 64, pages of 16 positions in a scrambled order,
 * every layer's K and V in each page, as src/kv lays them out), each call a different layer as in a forward
 * pass. Each token reads the pages of the next of `--sequences` sequences (8 by default: 94 MB of f32 K and V
 * at 150 positions, past the last-level cache), so K and V come from memory as in a decode step, where the
 * weights read between two of a layer's attention calls evict them; `--sequences 1` keeps them in cache (what
 * a prefill chunk's rows see). Kernels per cache type: the one-row kernel of a prefill chunk (`attention`,
 * attention_f16_twopass; attention_f16 for --ggml-order) and the decode row's (attention_stream,
 * attention_f16_stream: the same loops with each page's K and V swept into cache first).
 * Prints µs per token (12 layer calls), the rate at which K and V are read as a ratio of the machine's read rate
 * (read_probe, measured before and after the rounds), and whether every kernel's output has the bits of the
 * first one of its cache type. `--against build.wasm` times a second kernel build in the same process (old
 * against new) and prints this build's speed over its, kernel for kernel, and each kernel's over the first of its
 * cache type (an older build without a kernel times the one it ran instead: attention for attention_stream,
 * attention_f16 for the F16 default mode).
 *
 *   deno run -A bench/attention.bench.ts [--positions 150] [--sequences 8] [--against /path/to/kvasm-relaxed.wasm] [--help]
 *   bun bench/attention.bench.ts ...
 */
import { instantiateKernels, type Kernels, pickVariant } from "../src/kernels/wasm.ts";
import { RESERVED } from "../src/memory/arena.ts";
import { benchArgs, intFlag, median, runStamp, runtime, usageError } from "./cli.ts";

// deno-lint-ignore no-explicit-any
const g = globalThis as any;
const USAGE =
  `The decode step's attention over the paged KV cache alone (stories110M shape, 12 layers; --heads, --kv-heads for others), per cache type.

  deno run -A bench/attention.bench.ts [options]        bun bench/attention.bench.ts [options]

  --positions N         cached positions the query row attends to (default 150)
  --sequences N         sequences whose pages the tokens take in turn (default 8: K and V from memory; 1: from cache)
  --heads N             query heads of 64 (default 12)
  --kv-heads N          KV heads, a divisor of --heads (default --heads; fewer: grouped-query attention, e.g. 12 and 4)
  --against BUILD.wasm  also time this kernel build in the same process and print this build's speed over its
  -h, --help            this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    positions: { type: "string", default: "150" },
    sequences: { type: "string", default: "8" },
    heads: { type: "string", default: "12" },
    "kv-heads": { type: "string" },
    against: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
const positions = intFlag(USAGE, "positions", opts.positions), sequences = intFlag(USAGE, "sequences", opts.sequences);
const HEADS = intFlag(USAGE, "heads", opts.heads), KV_HEADS = intFlag(USAGE, "kv-heads", opts["kv-heads"] ?? opts.heads);
if (HEADS % KV_HEADS !== 0) usageError(`--kv-heads: ${KV_HEADS} does not divide --heads ${HEADS}`, USAGE);
const against = opts.against;
const { cpus } = await import("node:os");

const LAYERS = 12, HEAD_DIM = 64, PAGE = 16;
const kvDim = KV_HEADS * HEAD_DIM, qDim = HEADS * HEAD_DIM;
const seqPages = Math.ceil(positions / PAGE), nPages = seqPages * sequences;
type AttentionName = "attention" | "attention_stream" | "attention_f16_twopass" | "attention_f16_stream" | "attention_f16";
type CacheType = { name: string; slot: number; kernels: Array<{ kernel: AttentionName; role: string; older: AttentionName }> };
const cacheTypes: CacheType[] = [
  {
    name: "f32",
    slot: kvDim * 4,
    kernels: [
      { kernel: "attention", role: "prefill row", older: "attention" },
      { kernel: "attention_stream", role: "decode row", older: "attention" },
    ],
  },
  {
    name: "f16",
    slot: kvDim * 2,
    kernels: [
      { kernel: "attention_f16_twopass", role: "prefill row", older: "attention_f16" },
      { kernel: "attention_f16_stream", role: "decode row", older: "attention_f16_twopass" },
    ],
  },
  { name: "f16 ggml-order", slot: kvDim * 2, kernels: [{ kernel: "attention_f16", role: "one row", older: "attention_f16" }] },
];

/** One memory per build: the cache pages (f32 sized, the f16 cache uses half of each), q, out, scores, page tables. */
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
  // pages in a scrambled order, as a pool hands them out after some churn; sequence n owns table entries [n seqPages, (n + 1) seqPages)
  const i32 = new Int32Array(mem.buffer);
  for (let i = 0; i < nPages; i++) i32[(table >> 2) + i] = (i * 7) % nPages;
  return { mem, pages, probe, probeFloats, q, out, att, table, seq: 0 };
}

async function build(path?: string): Promise<{ k: Kernels; m: ReturnType<typeof layout> }> {
  const m = layout();
  if (!path) return { k: await instantiateKernels(m.mem, pickVariant({ shared: false })), m };
  const bytes = g.Deno ? await g.Deno.readFile(path) : new Uint8Array(await g.Bun.file(path).arrayBuffer());
  const inst = await WebAssembly.instantiate(bytes, { env: { memory: m.mem, abort: () => {}, seed: () => Date.now() } });
  return { k: inst.instance.exports as unknown as Kernels, m };
}

/** One token: the 12 layers' calls of a one-row kernel, over the next sequence's pages (sequence 0 when `first`). */
function attentionStep(k: Kernels, m: ReturnType<typeof layout>, type: CacheType, kernel: AttentionName): (first?: boolean) => void {
  const pageBytes = LAYERS * 2 * PAGE * type.slot;
  const fn = k[kernel];
  return (first = false) => {
    if (first) m.seq = 0;
    // one counter per memory: the next entry goes on to sequences none of its build's entries read lately
    const table = m.table + 4 * seqPages * (m.seq++ % sequences);
    for (let l = 0; l < LAYERS; l++) {
      const kOff = l * 2 * PAGE * type.slot, vOff = kOff + PAGE * type.slot;
      fn(m.out, m.q, m.att, m.pages, table, PAGE, pageBytes, kOff, vOff, kvDim, HEADS, KV_HEADS, HEAD_DIM, 0, positions, 0, HEADS, 0, 0, 0);
    }
  };
}

/** The output row of sequence 0's last layer (bits). */
function outputOf(run: (first?: boolean) => void, m: ReturnType<typeof layout>): Uint32Array {
  run(true);
  return new Uint32Array(m.mem.buffer, m.out, qDim).slice();
}

/**
 * Interleaved rounds (at least 5 or `seconds`), µs a token (a call of 10 tokens / 10) per entry and round: load
 * elsewhere hits the entries of a round alike, so ratios are taken round by round.
 */
function timeAll(fns: Array<() => void>, seconds = 3): number[][] {
  const rounds: number[][] = [];
  const t = performance.now();
  for (let round = 0; round < 5 || performance.now() - t < seconds * 1000; round++) {
    rounds.push(fns.map((fn) => {
      const t0 = performance.now();
      for (let r = 0; r < 10; r++) fn();
      return ((performance.now() - t0) * 1000) / 10;
    }));
    if (performance.now() - t > 30_000) break;
  }
  return rounds;
}
const best = (rounds: number[][], i: number) => Math.min(...rounds.map((r) => r[i]));
/** The median over rounds of entry j's time over entry i's: i's speed over j's. */
const speedup = (rounds: number[][], i: number, j: number) => median(rounds.map((r) => r[j] / r[i]));

const mine = await build();
const other = against ? await build(against) : undefined;
type Entry = { label: string; type: CacheType; run: (first?: boolean) => void; bits: Uint32Array; theirs: boolean };
const entries: Entry[] = [];
for (const type of cacheTypes) {
  for (const { kernel, role, older } of type.kernels) {
    const run = attentionStep(mine.k, mine.m, type, kernel);
    entries.push({ label: `${type.name} ${role} (${kernel})`, type, run, bits: outputOf(run, mine.m), theirs: false });
    if (!other) continue;
    const theirKernel = other.k[kernel] ? kernel : older;
    const runOld = attentionStep(other.k, other.m, type, theirKernel);
    entries.push({ label: `  --against (${theirKernel})`, type, run: runOld, bits: outputOf(runOld, other.m), theirs: true });
  }
}
const probe = () => mine.k.read_probe(mine.m.probe, mine.m.probeFloats);
const probeBefore = best(timeAll([probe], 1), 0);
const rounds = timeAll(entries.map((e) => () => e.run()), 10);
const probeUs = Math.min(probeBefore, best(timeAll([probe], 1), 0));

console.log(
  `attention, one query row, ${positions} positions, ${LAYERS} layers x ${HEADS} heads (${KV_HEADS} KV) x ${HEAD_DIM}, pages of ${PAGE}, ` +
    `${sequences} sequence(s): K and V from ${
      sequences > 1 ? "memory" : "cache"
    }; fastest of ${rounds.length} rounds, ratios the median of the rounds'`,
);
console.log(
  `${runtime}, ${runStamp()}, ${cpus()[0]?.model ?? "?"}, 1 thread`,
);
const probeGBs = (mine.m.probeFloats * 4) / (probeUs * 1e3);
console.log(`  ${"read_probe 64 MiB".padEnd(44)} ${probeGBs.toFixed(1)} GB/s (the machine's read rate)`);
entries.forEach((e, i) => {
  const us = best(rounds, i);
  const gbs = (LAYERS * 2 * positions * kvDim * (e.type.slot / kvDim)) / (us * 1e3);
  const first = entries.indexOf(entries.find((x) => x.type === e.type)!);
  const same = e.bits.every((v, j) => v === entries[first].bits[j]) ? "" : "  OUTPUT DIFFERS";
  const vs = other && !e.theirs ? `  ${speedup(rounds, i, i + 1).toFixed(2)}x --against's` : "";
  const vsFirst = i !== first && !e.theirs ? `, ${speedup(rounds, i, first).toFixed(2)}x the first's` : "";
  console.log(
    `  ${e.label.padEnd(44)} ${us.toFixed(0).padStart(6)} µs/token  K+V at ${gbs.toFixed(1)} GB/s = ${
      (gbs / probeGBs).toFixed(2)
    } of read_probe${vs}${vsFirst}${i === first ? "" : same}`,
  );
});
