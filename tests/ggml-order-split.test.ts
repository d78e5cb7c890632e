/**
 * llama.cpp's split-KV flash attention over the F16 cache, bit for bit, in
 * the plain and relaxed builds. ggml_compute_forward_flash_attn_ext_f16 takes
 * this path for one query row when the K view (llama.cpp's n_kv, padded to
 * 256) has >= 512 cells: on nth threads the padded range is cut into nth
 * chunks, each runs one_chunk's online softmax without the final division,
 * and ggml_flash_attn_ext_reduce_partials folds the chunks (M, S, VKQ). The
 * scalar model below is that code: one_chunk (half q, ggml_vec_dot_f16's
 * AVX-512 lanes, glibc expf, the half VKQ accumulator: scale then round, fma
 * then round) and the reduce (fmaxf, two expf, fma(VKQ, so, VKQc * sc) as
 * GCC contracts it in the zen4 build). attention_f16_split is the one-thread
 * case kvasm runs (a single chunk: one_chunk's result, but -0 becomes +0 in
 * the fold into zeros); attention_f16_chunks models nth threads.
 */
import { assert, assertEquals, test } from "./harness.ts";
import { f16ToF32, f32ToF16 } from "../src/quant/half.ts";
import { expf } from "../src/model/libm.ts";
import { BUILDS, instantiateBuilds } from "./kernel-builds.ts";

const f = Math.fround;
const half = (x: number) => f16ToF32(f32ToF16(x));
/** x86 FMA on f32 through a double (the product of an f32 and a half, or two f32, is exact there). */
const fma = (a: number, b: number, c: number) => f(a * b + c);

/** _mm512_reduce_add_ps as GCC expands it: lane i += lane i+8, then i += i+4, then i += i+2, then lane 0 + lane 1. */
function reduce16(l: number[]): number {
  const a = Array.from({ length: 8 }, (_, i) => f(l[i] + l[i + 8]));
  const b = Array.from({ length: 4 }, (_, i) => f(a[i] + a[i + 4]));
  return f(f(b[0] + b[2]) + f(b[1] + b[3]));
}

/** ggml_vec_dot_f16, AVX-512: four accumulators of 16 lanes over 64-value steps, folded (0+2, 1+3, then the two), leftovers in double. */
function dotF16(x: number[], y: number[]): number {
  const n = x.length, np = n & ~63;
  let sum = 0;
  if (np) {
    const acc = Array.from({ length: 4 }, () => new Array<number>(16).fill(0));
    for (let i = 0; i < np; i += 64) {
      for (let j = 0; j < 4; j++) for (let l = 0; l < 16; l++) acc[j][l] = f(acc[j][l] + f(x[i + 16 * j + l] * y[i + 16 * j + l]));
    }
    sum = reduce16(Array.from({ length: 16 }, (_, l) => f(f(acc[0][l] + acc[2][l]) + f(acc[1][l] + acc[3][l]))));
  }
  for (let i = np; i < n; i++) sum += f(x[i] * y[i]);
  return f(sum);
}

interface Head {
  q: number[];
  K: number[][];
  V: number[][];
} // q as f32, K and V as halves, by position

/** one_chunk for one head over [ic0, ic1), positions outside [start, end) masked (-inf: skipped): M, S and the half VKQ. */
function oneChunk(hd: Head, ic0: number, ic1: number, start: number, end: number) {
  const D = hd.q.length, scale = f(1 / f(Math.sqrt(D)));
  const q = hd.q.map(half);
  let VKQ = new Array<number>(D).fill(0), M = -Infinity, S = 0;
  for (let ic = ic0; ic < ic1; ic++) {
    if (ic < start || ic >= end) continue;
    const s = f(dotF16(q, hd.K[ic]) * scale);
    let ms = 1, vs = 1;
    if (s > M) {
      const Mold = M;
      M = s;
      ms = expf(Mold - M);
      VKQ = VKQ.map((y) => half(f(y * ms))); // ggml_vec_scale_f16
    } else {
      vs = expf(s - M);
    }
    VKQ = VKQ.map((y, i) => half(fma(hd.V[ic][i], vs, y))); // ggml_vec_mad_f16
    S = f(f(S * ms) + vs);
  }
  return { M, S, VKQ };
}

/** The non-split path: one_chunk over everything, then VKQ * (1 / S). */
function plain(hd: Head, start: number, end: number): number[] {
  const { S, VKQ } = oneChunk(hd, 0, end, start, end);
  const inv = S === 0 ? 0 : f(1 / S);
  return VKQ.map((y) => f(y * inv));
}

/** The split-KV path on nth threads over a K view of nKv cells: chunks, then ggml_flash_attn_ext_reduce_partials. */
function split(hd: Head, start: number, end: number, nKv: number, nth: number): number[] {
  const chunk = Math.ceil(nKv / nth);
  let F = new Array<number>(hd.q.length).fill(0), M = -Infinity, S = 0;
  for (let c = 0; c < nth; c++) {
    const c0 = c * chunk;
    if (c0 >= nKv) continue;
    const p = oneChunk(hd, c0, Math.min(c0 + chunk, nKv), start, end);
    if (p.S === 0) continue;
    const Mn = Math.max(M, p.M), so = expf(M - Mn), sc = expf(p.M - Mn);
    F = F.map((y, i) => fma(y, so, f(p.VKQ[i] * sc)));
    S = fma(S, so, f(p.S * sc));
    M = Mn;
  }
  if (S !== 0) {
    const inv = f(1 / S);
    F = F.map((y) => f(y * inv));
  }
  return F;
}

// ---- the kernels, both builds, on one memory

const memory = new WebAssembly.Memory({ initial: 256 });
const kernels = instantiateBuilds(memory);
const builds = BUILDS.map((b) => [b, kernels[b]] as const);

let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;

const PAGE = 16;
interface Case {
  nHeads: number;
  nKvHeads: number;
  D: number;
  n: number;
  q: Float32Array;
  K: Uint16Array[];
  V: Uint16Array[];
}

/** Random K/V halves for n positions; big q spreads the scores (expf underflows, half VKQ values flush to zeros of either sign). */
function makeCase(nHeads: number, nKvHeads: number, D: number, n: number, qScale: number): Case {
  const kvDim = nKvHeads * D;
  const hv = (x: number) => f32ToF16(x);
  const K = Array.from({ length: n }, () => Uint16Array.from({ length: kvDim }, () => hv(rnd())));
  const V = Array.from(
    { length: n },
    () => Uint16Array.from({ length: kvDim }, () => (rnd() < 0.05 ? 0x8000 : hv(rnd() * (rnd() < 0.2 ? 1e-4 : 1)))),
  );
  const q = Float32Array.from({ length: nHeads * D }, () => qScale * rnd());
  return { nHeads, nKvHeads, D, n, q, K, V };
}

/** Writes the case's pages (a shuffled page table, K then V in each page) and q; returns the kernel's layout arguments. */
function place(c: Case) {
  const kvDim = c.nKvHeads * c.D, slot = kvDim * 2, pageBytes = 2 * PAGE * slot;
  const nPages = Math.ceil(c.n / PAGE);
  const TABLE = 1024, BASE = 4096;
  const order = Array.from({ length: nPages }, (_, i) => i).sort(() => rnd());
  new Int32Array(memory.buffer, TABLE, nPages).set(order);
  const u16 = new Uint16Array(memory.buffer);
  for (let p = 0; p < c.n; p++) {
    const at = BASE + order[Math.floor(p / PAGE)] * pageBytes + (p % PAGE) * slot;
    u16.set(c.K[p], at >> 1);
    u16.set(c.V[p], (at + PAGE * slot) >> 1);
  }
  const Q = BASE + nPages * pageBytes + 64, OUT = Q + c.q.length * 4 + 64, SCR = OUT + c.q.length * 4 + 64;
  return { TABLE, BASE, pageBytes, kOff: 0, vOff: PAGE * slot, kvDim, Q, OUT, SCR };
}

function head(c: Case, h: number): Head {
  const kh = Math.floor(h / (c.nHeads / c.nKvHeads)) * c.D;
  return {
    q: Array.from(c.q.subarray(h * c.D, (h + 1) * c.D)),
    K: c.K.map((k) => Array.from(k.subarray(kh, kh + c.D), f16ToF32)),
    V: c.V.map((v) => Array.from(v.subarray(kh, kh + c.D), f16ToF32)),
  };
}

/** Runs kernel `name` (extra trailing args) for heads [h0, h1) in both builds; compares every output bit for bit with want. */
function check(
  name: "attention_f16" | "attention_f16_split" | "attention_f16_chunks",
  c: Case,
  start: number,
  end: number,
  want: (hd: Head) => number[],
  extra: number[] = [],
): number {
  const L = place(c);
  const h0 = 1, h1 = c.nHeads; // head 0 stays untouched
  const ref = Array.from({ length: c.nHeads }, (_, h) => (h >= h0 ? want(head(c, h)) : null));
  let negZeros = 0;
  for (const [build, k] of builds) {
    new Float32Array(memory.buffer, L.Q, c.q.length).set(c.q); // the kernel rounds q in place
    const out = new Float32Array(memory.buffer, L.OUT, c.q.length);
    out.fill(NaN);
    const att = name === "attention_f16_chunks" ? L.SCR : 0;
    // after h1: the chunk pass's nKv and nChunks (its slopes 0), or the one-row kernels' slopes, topK, sel (0)
    const tail: [number, number, number] = name === "attention_f16_chunks" ? [extra[0], extra[1], 0] : [0, 0, 0];
    k[name](
      L.OUT,
      L.Q,
      att,
      L.BASE,
      L.TABLE,
      PAGE,
      L.pageBytes,
      L.kOff,
      L.vOff,
      L.kvDim,
      c.nHeads,
      c.nKvHeads,
      c.D,
      start,
      end,
      h0,
      h1,
      ...tail,
    );
    let bad = 0, first = "";
    for (let h = 0; h < c.nHeads; h++) {
      for (let i = 0; i < c.D; i++) {
        const got = out[h * c.D + i], exp = ref[h] ? ref[h]![i] : NaN;
        if (Object.is(exp, -0)) negZeros++;
        if (!Object.is(got, exp)) {
          if (!bad) first = `head ${h}, [${i}]: ${got} vs ${exp}`;
          bad++;
        }
      }
    }
    assertEquals(bad, 0, `${name} ${build} D=${c.D} heads ${c.nHeads}/${c.nKvHeads} [${start}, ${end}) ${extra}: first ${first}`);
  }
  return negZeros;
}

const SHAPES: [number, number, number][] = [[4, 2, 8], [4, 2, 32], [3, 1, 40], [4, 4, 64], [2, 1, 128]];

test("attention_f16_split: llama.cpp's split-KV path on one thread (a single chunk, then the reduce), plain and relaxed builds", () => {
  for (const [nH, nKv, D] of SHAPES) {
    for (const qScale of [1, 40]) {
      const c = makeCase(nH, nKv, D, 300, qScale);
      for (const [start, end] of [[0, 257], [0, 300], [37, 300], [0, 1]]) {
        check("attention_f16_split", c, start, end, (hd) => split(hd, start, end, Math.max(512, Math.ceil(end / 256) * 256), 1));
        // and the one_chunk path stays exact
        check("attention_f16", c, start, end, (hd) => plain(hd, start, end));
      }
    }
  }
});

test("attention_f16_split: a -0 of one_chunk's half VKQ comes out +0 (the reduce adds it to the zeroed accumulator)", () => {
  // position 0: V = -1, a low score; position 1: V = -0, a score 100 higher: VKQ = half(-1 * expf(-100)) = -0, then fma(-0, 1, -0) = -0
  const D = 8, c = makeCase(1, 1, D, 2, 1);
  c.q.fill(0);
  c.q[0] = 1;
  c.K[0].fill(0);
  c.K[1].fill(0);
  c.K[1][0] = f32ToF16(100 * Math.sqrt(D));
  c.V[0].fill(f32ToF16(-1));
  c.V[1].fill(0x8000);
  c.V[1][3] = f32ToF16(0.5);
  c.nHeads = 2, c.q = Float32Array.from([...c.q, ...c.q]); // head 1 is checked (head 0 is left alone by check)
  const p = plain(head(c, 1), 0, 2), s = split(head(c, 1), 0, 2, 512, 1);
  assert(Object.is(p[0], -0) && Object.is(s[0], 0) && s[3] === p[3], "the model: one_chunk gives -0, the split path +0");
  assert(check("attention_f16", c, 0, 2, (hd) => plain(hd, 0, 2)) > 0, "one_chunk's -0 reproduced");
  check("attention_f16_split", c, 0, 2, (hd) => split(hd, 0, 2, 512, 1));
});

test("attention_f16_chunks: the split-KV path on nth threads (chunks of the padded K view, folded in order), plain and relaxed builds", () => {
  for (const [nH, nKv, D] of SHAPES) {
    const c = makeCase(nH, nKv, D, 600, 8);
    for (const [start, end] of [[0, 257], [0, 600], [300, 520]]) {
      const nKvCells = Math.max(512, Math.ceil(end / 256) * 256);
      for (const nth of [1, 2, 3, 4, 16]) {
        check("attention_f16_chunks", c, start, end, (hd) => split(hd, start, end, nKvCells, nth), [nKvCells, nth]);
      }
    }
  }
});
