// The run attention kernel (assembly/attn-run.ts: attention_run) over 300 random shapes, both kernel builds: a run
// of query rows of one sequence at consecutive positions in one call gives every row the bits of `attention` called
// for that row alone, over grouped-query heads, windows (a shared start),
// ALiBi, head dims that are and are not multiples of 4 and 16, page sizes that cut the runs of positions anywhere, and
// head splits; and the backends' grouping of a chunk's rows into runs (src/threads/control.ts attentionRun).
import { assert, assertEquals, test } from "./harness.ts";
import { BUILDS, instantiateBuilds, xorshift } from "./kernel-builds.ts";
import type { Kernels } from "../src/kernels/spec.ts";
import { attentionRun } from "../src/threads/control.ts";
import { runKernel, runRows } from "../src/backends/attention-runs.ts";

const BASE = 65536;

test("run attention: each row of a run has the one-row kernel's bits, 300 random shapes, both builds", () => {
  const memory = new WebAssembly.Memory({ initial: 128 });
  const builds = instantiateBuilds(memory);
  const r = xorshift(0x7075);
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  let compared = 0;
  for (let n = 0; n < 300; n++) {
    const nKvHeads = int(1, 3), nHeads = nKvHeads * pick([1, 1, 2, 3, 4]);
    const headDim = pick([1, 3, 4, 5, 8, 12, 16, 20, 32, 64]), pageSize = pick([1, 3, 4, 5, 8, 16]);
    const nRows = int(1, Math.min(nHeads, 6)), end = int(1, 70), start = r() < 0.3 ? int(0, end - 1) : 0;
    const alibi = r() < 0.3, nLayers = int(1, 2), layer = int(0, nLayers - 1);
    // the cache: positions [0, end + nRows - 1) in a scrambled page order, every layer written
    const kvDim = nKvHeads * headDim, slot = kvDim * 4, block = pageSize * slot, pageBytes = nLayers * 2 * block;
    const nPages = Math.ceil((end + nRows) / pageSize) + 1, rowFloats = nHeads * headDim;
    let top = BASE;
    const alloc = (bytes: number) => (top += Math.ceil(bytes / 64) * 64 + 64) - Math.ceil(bytes / 64) * 64 - 64;
    const pages = alloc(nPages * pageBytes), table = alloc(4 * nPages), q = alloc(4 * nRows * rowFloats);
    const outRun = alloc(4 * nRows * rowFloats), outOne = alloc(4 * nRows * rowFloats);
    const att = alloc(4 * nHeads * (end + nRows)), slopes = alloc(4 * nHeads);
    assert(top < memory.buffer.byteLength, "the shape fits the memory");
    const f = new Float32Array(memory.buffer), i32 = new Int32Array(memory.buffer);
    Array.from({ length: nPages }, (_, i) => i).sort(() => r() - 0.5).forEach((page, i) => i32[table / 4 + i] = page);
    for (let i = pages / 4; i < (pages + nPages * pageBytes) / 4; i++) f[i] = r() * 4 - 2;
    for (let i = 0; i < nRows * rowFloats; i++) f[q / 4 + i] = r() * 2 - 1;
    for (let h = 0; h < nHeads; h++) f[slopes / 4 + h] = 2 ** (-8 * (h + 1) / nHeads);
    const kOff = layer * 2 * block, vOff = kOff + block;
    // the cache's layout and the heads, as both kernels take them (spec.ts ATTENTION_CACHE from kvBase, ATTENTION_ROWS to headDim)
    const cache = [BASE, table, pageSize, pageBytes, kOff, vOff, kvDim, nHeads, nKvHeads, headDim] as const;
    for (const b of BUILDS) {
      const k: Kernels = builds[b];
      const u32 = () => new Uint32Array(memory.buffer);
      u32().fill(0x7fc00000, outRun / 4, outRun / 4 + nRows * rowFloats); // NaN: an element left unwritten shows
      // a canary past the scores the kernel may use (nHeads x the last row's span, what `attention` takes for that row)
      const canary = att + 4 * nHeads * (end - start + nRows - 1);
      u32().fill(0xdeadbeef, canary / 4, canary / 4 + 16);
      // the run over a head split, as two threads would call it by heads
      const cut = int(0, nHeads);
      for (const [h0, h1] of [[0, cut], [cut, nHeads]]) {
        k.attention_run(outRun, q, att, ...cache, start, end, h0, h1, alibi ? slopes : 0, nRows);
      }
      assert(
        u32().slice(canary / 4, canary / 4 + 16).every((v) => v === 0xdeadbeef),
        `scores past the scratch: ${b} ${nHeads} heads, ${nRows} rows`,
      );
      for (let t = 0; t < nRows; t++) {
        const o = 4 * t * rowFloats;
        k.attention(outOne + o, q + o, att, ...cache, start, end + t, 0, nHeads, alibi ? slopes : 0, 0, 0);
      }
      const run = u32().slice(outRun / 4, outRun / 4 + nRows * rowFloats), one = u32().slice(outOne / 4, outOne / 4 + nRows * rowFloats);
      const bad = run.findIndex((v, i) => v !== one[i]);
      const label = JSON.stringify({ b, nHeads, nKvHeads, headDim, pageSize, nRows, start, end, alibi, cut });
      assert(bad < 0, `row ${Math.floor(bad / rowFloats)} element ${bad % rowFloats} differs from the one-row kernel's: ${label}`);
      compared++;
    }
  }
  assertEquals(compared, 600);
});

test("run attention: a chunk's rows group into runs of one sequence, one start, consecutive positions", () => {
  // rows: [pageTable, pos, start, (unused)]: a chunk of 6 rows of sequence A at 10..15, one of B, a window's rows
  const fields = 4;
  const rows = [[100, 10, 0], [100, 11, 0], [100, 12, 0], [100, 13, 0], [100, 14, 0], [100, 15, 0], [200, 3, 0], [300, 7, 2], [300, 8, 3]];
  const heap = new Int32Array(64);
  rows.forEach(([pt, pos, start], t) => heap.set([pt, pos, start, 0], 8 + t * fields));
  const runs: number[] = [];
  for (let t = 0; t < rows.length;) {
    const n = attentionRun(heap, 32, t, rows.length, 4, fields, 0, 2, 1);
    runs.push(n);
    t += n;
  }
  assertEquals(runs, [4, 2, 1, 1, 1]); // at most 4; B alone; the window's rows differ in start
  assertEquals(attentionRun(heap, 32, 0, 3, 4, fields, 0, 2, 1), 3, "a run stops at the chunk's end (t1)");
  assertEquals(runRows(2), 2, "no more rows than heads (the kernel's score blocks)");
  assertEquals(runKernel("attention", 0), "attention_run");
  assertEquals(runKernel("attention_f16_twopass", 0), undefined, "the F16 cache keeps one row a call");
  assertEquals(runKernel("attention", 3), undefined, "top-k rows share a selection scratch: one at a time");
  assertEquals(runKernel("attention_f16", 0), undefined, "--ggml-order's F16 kernel keeps llama.cpp's row by row path");
});
