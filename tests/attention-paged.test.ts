// The f32 and F16 caches' paged attention (assembly/attn-paged.ts) over 300 random shapes, both kernel builds:
// grouped-query heads, sliding windows, ALiBi, top-k, odd head dims, page sizes and head splits. Checks
// that the decode rows' kernels (attention_stream, attention_f16_stream: each page's K and V swept into
// cache first) give the bits of `attention` and attention_f16_twopass; that all heads in one call (the
// softmax four heads at a time; two query heads of one KV head sharing each K and V load) give the bits of
// one call per head (one at a time), so a thread split changes nothing; and that every output is the
// float64 attention within rounding.
import { assert, assertClose, test } from "./harness.ts";
import { BUILDS, instantiateBuilds, xorshift } from "./kernel-builds.ts";
import { f16ToF32, f32ToF16 } from "../src/quant/half.ts";
import type { Kernels } from "../src/kernels/spec.ts";

const BASE = 65536;

type Shape = {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  pageSize: number;
  nLayers: number;
  layer: number;
  start: number;
  end: number;
  alibi: boolean;
  topK: number;
  f16: boolean;
};

function randomShape(r: () => number): Shape {
  const pick = <T>(a: readonly T[]) => a[Math.floor(r() * a.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const nKvHeads = int(1, 3), headDim = pick([1, 3, 4, 5, 7, 8, 12, 13, 16, 32, 64]);
  const end = int(1, 60), f16 = r() < 0.35, nLayers = int(1, 3);
  return {
    nKvHeads,
    nHeads: nKvHeads * pick([1, 1, 2, 3, 4]),
    headDim,
    pageSize: pick([1, 3, 4, 5, 8, 16]),
    nLayers,
    layer: int(0, nLayers - 1),
    start: r() < 0.3 ? int(0, end - 1) : 0,
    end,
    alibi: r() < 0.3,
    topK: !f16 && r() < 0.25 ? int(1, 8) : 0, // the F16 kernels take no top-k
    f16,
  };
}

/** Positions in a scrambled page order, K and V of every layer written (the layer read is s.layer); the float64 answer. */
function setUp(mem: WebAssembly.Memory, s: Shape, r: () => number) {
  const kvDim = s.nKvHeads * s.headDim, el = s.f16 ? 2 : 4, slot = kvDim * el, block = s.pageSize * slot;
  const pageBytes = s.nLayers * 2 * block, nPages = Math.ceil(s.end / s.pageSize) + 1;
  let top = BASE;
  const alloc = (bytes: number) => (top = Math.ceil((top + bytes) / 64) * 64 + 64) - Math.ceil(bytes / 64) * 64 - 64;
  const pages = alloc(nPages * pageBytes), table = alloc(4 * nPages), q = alloc(4 * s.nHeads * s.headDim);
  const outs = [0, 1, 2].map(() => alloc(4 * s.nHeads * s.headDim));
  const att = alloc(4 * s.nHeads * s.end), slopes = alloc(4 * s.nHeads), sel = alloc(8 * s.nHeads * Math.max(1, s.topK));
  const f = new Float32Array(mem.buffer), u16 = new Uint16Array(mem.buffer), i32 = new Int32Array(mem.buffer);
  const order = Array.from({ length: nPages }, (_, i) => i).sort(() => r() - 0.5);
  order.forEach((page, i) => i32[table / 4 + i] = page);
  // every byte of the pages set (other layers too): the kernel must read only its layer's K and V
  if (s.f16) { for (let i = pages / 2; i < (pages + nPages * pageBytes) / 2; i++) u16[i] = f32ToF16(r() * 4 - 2); }
  else for (let i = pages / 4; i < (pages + nPages * pageBytes) / 4; i++) f[i] = r() * 4 - 2;
  for (let i = 0; i < s.nHeads * s.headDim; i++) f[q / 4 + i] = r() * 2 - 1;
  for (let h = 0; h < s.nHeads; h++) f[slopes / 4 + h] = 2 ** (-8 * (h + 1) / s.nHeads);
  const kOff = s.layer * 2 * block, vOff = kOff + block;
  const at = (p: number, off: number, i: number) => {
    const a = pages + i32[table / 4 + Math.floor(p / s.pageSize)] * pageBytes + off + (p % s.pageSize) * slot + i * el;
    return s.f16 ? f16ToF32(u16[a / 2]) : f[a / 4];
  };
  const want = new Float64Array(s.nHeads * s.headDim);
  for (let h = 0; h < s.nHeads; h++) {
    const g = Math.floor(h / (s.nHeads / s.nKvHeads));
    const sc: number[] = [];
    for (let p = s.start; p < s.end; p++) {
      let d = 0;
      for (let i = 0; i < s.headDim; i++) d += f[q / 4 + h * s.headDim + i] * at(p, kOff, g * s.headDim + i);
      sc.push(d / Math.sqrt(s.headDim) + (s.alibi ? f[slopes / 4 + h] * (p - s.end + 1) : 0));
    }
    // top-k: the k best scores (an equal later one loses)
    const kept = sc.map((_, j) => j);
    if (s.topK > 0 && s.topK < sc.length) kept.sort((a, b) => sc[b] - sc[a] || a - b).splice(s.topK);
    const mx = Math.max(...kept.map((j) => sc[j])), e = kept.map((j) => Math.exp(sc[j] - mx)), sum = e.reduce((a, b) => a + b, 0);
    kept.forEach((j, n) => {
      for (let i = 0; i < s.headDim; i++) want[h * s.headDim + i] += (e[n] / sum) * at(s.start + j, vOff, g * s.headDim + i);
    });
  }
  return { pages, table, pageBytes, kOff, vOff, kvDim, q, outs, att, slopes, sel, want };
}

test("paged attention: decode kernels, all heads at once and head by head agree bit for bit over 300 random shapes, both builds", () => {
  const memory = new WebAssembly.Memory({ initial: 64 });
  const builds = instantiateBuilds(memory);
  const r = xorshift(0x5eed);
  let compared = 0;
  for (let n = 0; n < 300; n++) {
    const s = randomShape(r);
    const m = setUp(memory, s, r);
    for (const b of BUILDS) {
      const k: Kernels = builds[b];
      const [plain, stream] = s.f16 ? [k.attention_f16_twopass, k.attention_f16_stream] : [k.attention, k.attention_stream];
      const call = (fn: typeof plain, out: number, h0: number, h1: number) =>
        fn(
          out,
          m.q,
          m.att,
          BASE,
          m.table,
          s.pageSize,
          m.pageBytes,
          m.kOff,
          m.vOff,
          m.kvDim,
          s.nHeads,
          s.nKvHeads,
          s.headDim,
          s.start,
          s.end,
          h0,
          h1,
          s.alibi ? m.slopes : 0,
          s.topK,
          m.sel,
        );
      const u32 = () => new Uint32Array(memory.buffer);
      for (const out of m.outs) u32().fill(0x7fc00000, out / 4, out / 4 + s.nHeads * s.headDim); // NaN: a head left unwritten shows
      call(plain, m.outs[0], 0, s.nHeads);
      for (let h = 0; h < s.nHeads; h++) call(plain, m.outs[1], h, h + 1);
      // the stream kernel over a head split, as two threads call it
      const cut = Math.floor(r() * (s.nHeads + 1));
      call(stream, m.outs[2], 0, cut);
      call(stream, m.outs[2], cut, s.nHeads);
      const len = s.nHeads * s.headDim, [all, one, streamed] = m.outs.map((o) => u32().slice(o / 4, o / 4 + len));
      const label = `${b} ${JSON.stringify(s)}`;
      assert(all.every((v, i) => v === one[i]), `all heads at once differ from head by head: ${label}`);
      assert(all.every((v, i) => v === streamed[i]), `the decode kernel differs from the plain one: ${label}`);
      assertClose(new Float32Array(all.buffer), m.want, 1e-5, `against float64: ${label}`, 1); // V and the outputs lie in [-2, 2]
      compared++;
    }
  }
  assert(compared === 600, `${compared} comparisons`);
});
