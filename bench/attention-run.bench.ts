/**
 * A prefill chunk's causal attention over the paged f32 cache, on one module compiled here (bench/attention-run/kernels.ts,
 * relaxed SIMD, a few seconds): the chunk's T rows one call a row (`attention`), and in runs of R rows a call
 * (attention_run, assembly/attn-run.ts), stories110M's heads (12 x 64), pages of 16 in a scrambled order, the chunk's
 * first row at position --from (the rows before it cached). Every run's output is checked bit for bit against row by
 * row; fastest call of interleaved rounds.
 *
 *   deno run -A bench/attention-run.bench.ts        bun bench/attention-run.bench.ts        [--from 0,512,1920] [--T 128]
 */
import { benchArgs, intFlag, intListFlag } from "./cli.ts";
import { fastest, finish, header, MiB, openStandalone, place, report, sameBits, snapshot, xorshift } from "./candidates.ts";

const USAGE = `A prefill chunk's attention (stories110M heads, pages of 16, f32 cache) row by row against runs of 2, 4 and 8
rows a call, on one module compiled here (relaxed SIMD); outputs checked bit for bit.

  deno run -A bench/attention-run.bench.ts [options]        bun bench/attention-run.bench.ts [options]

  --from LIST       position of the chunk's first row (default 0,512,1920): the rows attend to [0, from + t]
  --T N             rows in the chunk (default 128)
  --rounds N        timed rounds per variant, interleaved (default 7)
  --warmup MS       untimed calls of every variant first, for this long each (default 200)
  -h, --help        this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    from: { type: "string", default: "0,512,1920" },
    T: { type: "string", default: "128" },
    rounds: { type: "string", default: "7" },
    warmup: { type: "string", default: "200" },
    help: { type: "boolean", short: "h" },
  },
});
const CTX = 4096;
const T = intFlag(USAGE, "T", opts.T, 1, 512);
const froms = intListFlag(USAGE, "from", opts.from, 0, CTX - T);
const rounds = intFlag(USAGE, "rounds", opts.rounds), warmupMs = intFlag(USAGE, "warmup", opts.warmup, 0);

const nHeads = 12, headDim = 64, kvDim = nHeads * headDim, pageSize = 16, nPages = CTX / pageSize;
const { ex, memory, relaxed } = openStandalone("bench/attention-run/kernels.ts", { relaxed: true, mib: 256 });
header(`prefill attention, ${T} rows, ${nHeads} heads x ${headDim}: fastest call in us (ratio row by row / variant)`, relaxed);
{
  const pageBytes = pageSize * kvDim * 4 * 2; // one layer's K then V
  const at = place(64 * 1024, {
    KV: nPages * pageBytes,
    PT: nPages * 4,
    Q: T * kvDim * 4,
    OUT: T * kvDim * 4,
    ATT: nHeads * CTX * 4,
  }, 256 * MiB);
  const rnd = xorshift();
  const f = new Float32Array(memory.buffer), i32 = new Int32Array(memory.buffer);
  // K, V and q in [-1, 1]
  for (let i = at.KV / 4; i < (at.KV + nPages * pageBytes) / 4; i++) f[i] = (rnd() / 2 ** 32) * 2 - 1;
  for (let i = at.Q / 4; i < (at.Q + T * kvDim * 4) / 4; i++) f[i] = (rnd() / 2 ** 32) * 2 - 1;
  const order = Array.from({ length: nPages }, (_, i) => i).sort(() => (rnd() & 1) - 0.5);
  order.forEach((page, i) => i32[at.PT / 4 + i] = page);
  const vOff = pageSize * kvDim * 4;
  for (const from of froms) {
    const call = (v: string) => {
      const args = [at.OUT, at.Q, at.ATT, at.KV, at.PT, pageSize, pageBytes, 0, vOff, kvDim, nHeads, nHeads, headDim, from, T];
      if (v === "rows") ex.rowByRow(...args);
      else ex.inRuns(...args, Number(v.slice(1)));
    };
    const variants = ["rows", "R2", "R4", "R8"];
    call("rows");
    const ref = snapshot(memory, at.OUT, T * kvDim);
    const same = Object.fromEntries(variants.map((v) => [v, sameBits(memory, at.OUT, ref, () => call(v))]));
    const best = fastest(variants, call, { rounds, reps: 1, warmupMs });
    // multiply-adds: each row's scores and weighted sum over its span, every head
    let positions = 0;
    for (let t = 0; t < T; t++) positions += from + t + 1;
    report(`from ${String(from).padEnd(5)}`, variants, best, { base: "rows", ops: 4 * positions * kvDim, same });
  }
}
finish();
