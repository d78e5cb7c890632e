// Each f32 kernel against a plain scalar oracle (float64 where it helps), on
// awkward sizes (not multiples of 4 or 8), in both the plain and relaxed builds.
import { assert, assertClose, test } from "./harness.ts";
import { instantiateKernels, type Kernels } from "../src/kernels/wasm.ts";
import type { KernelVariant } from "../src/kernels/binaries.ts";
import { f16ToF32, f32ToF16 } from "../src/quant/half.ts";

const BASE = 65536;

class Heap {
  top = BASE;
  constructor(readonly mem: WebAssembly.Memory) {}
  put(a: Float32Array | Int32Array | Uint16Array): number {
    const p = (this.top = Math.ceil(this.top / 64) * 64);
    new Uint8Array(this.mem.buffer, p, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    this.top += a.byteLength + 64;
    return p;
  }
  alloc(nFloats: number): number {
    return this.put(new Float32Array(nFloats));
  }
  f32(p: number, n: number): Float32Array {
    return new Float32Array(this.mem.buffer, p, n).slice();
  }
}

function rand(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

function toHalf(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000, e = ((u >>> 23) & 0xff) - 112, m = u & 0x7fffff;
  if (e <= 0) {
    // subnormal half: round m*2^(e-1) ... via float arithmetic
    const v = Math.abs(x) / 2 ** -24;
    const r = Math.round(v) - (Math.abs(v - Math.trunc(v) - 0.5) < 1e-12 && Math.round(v) % 2 ? 1 : 0);
    return sign | r;
  }
  let h = (e << 10) | (m >>> 13);
  const rest = m & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * One query value q (one head of dimension 1) attending positions with keys ks and values vs, all in one
 * f32 page: sum over p of softmax(q * ks)_p * vs[p].
 */
function attendOne(k: Kernels, heap: Heap, q: number, ks: ArrayLike<number>, vs: ArrayLike<number>): number {
  const n = ks.length;
  const page = heap.put(new Float32Array([...Array.from(ks), ...Array.from(vs)]));
  const table = heap.put(new Int32Array([0]));
  const pq = heap.put(new Float32Array([q])), out = heap.alloc(1), att = heap.alloc(n);
  k.attention(out, pq, att, page, table, n, 8 * n, 0, 4 * n, 1, 1, 1, 1, 0, n, 0, 1, 0, 0, 0);
  return heap.f32(out, 1)[0];
}

async function withKernels(fn: (k: Kernels, heap: Heap) => void | Promise<void>): Promise<void> {
  for (const variant of ["simd", "relaxed"] as KernelVariant[]) {
    const mem = new WebAssembly.Memory({ initial: 64, maximum: 64 });
    const k = await instantiateKernels(mem, variant);
    try {
      await fn(k, new Heap(mem));
    } catch (e) {
      (e as Error).message = `[${variant}] ${(e as Error).message}`;
      throw e;
    }
  }
}

function matmulRef(x: Float32Array, w: ArrayLike<number>, n: number, d: number, T: number): Float64Array {
  const out = new Float64Array(T * d);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < d; r++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += w[r * n + i] * x[t * n + i];
      out[t * d + r] = s;
    }
  }
  return out;
}

test("matmul_f32 matches the oracle for every T, odd n and d, and any row split", async () => {
  await withKernels((k, heap) => {
    for (const [n, d] of [[13, 7], [37, 9], [64, 33], [3, 5], [96, 4]]) {
      for (const T of [1, 2, 3, 5]) {
        const x = rand(T * n, n * 7 + T), w = rand(n * d, d * 13 + n);
        const px = heap.put(x), pw = heap.put(w), out = heap.alloc(T * d);
        k.matmul_f32(out, px, pw, n, d, T, 0, d);
        const full = heap.f32(out, T * d);
        assertClose(full, matmulRef(x, w, n, d, T), 1e-5, `n=${n} d=${d} T=${T}`, 1);
        // any split of the rows gives bit-identical results (threads split rows)
        const split = heap.alloc(T * d);
        const cut = Math.floor(d / 3) + 1;
        k.matmul_f32(split, px, pw, n, d, T, 0, cut);
        k.matmul_f32(split, px, pw, n, d, T, cut, d);
        assert(heap.f32(split, T * d).every((v, i) => Object.is(v, full[i])), `row split changes results n=${n} d=${d} T=${T}`);
      }
    }
  });
});

test("matmul_f16 matches the oracle with half weights and half-rounded activations", async () => {
  await withKernels((k, heap) => {
    for (const [n, d] of [[13, 7], [40, 9], [72, 6]]) {
      for (const T of [1, 2, 3]) {
        const x = rand(T * n, n + T), wf = rand(n * d, 3 * d + n);
        const wh = new Uint16Array(wf.length);
        for (let i = 0; i < wf.length; i++) wh[i] = toHalf(wf[i]);
        const px = heap.put(x), pw = heap.put(wh), xr = heap.alloc(T * n), out = heap.alloc(T * d);
        k.round_f16(xr, px, T * n);
        const rounded = heap.f32(xr, T * n);
        for (let i = 0; i < x.length; i++) assert(rounded[i] === fromHalf(toHalf(x[i])), `round_f16(${x[i]})`);
        k.matmul_f16(out, xr, pw, n, d, T, 0, d);
        const wd = Array.from(wh, fromHalf);
        const full = heap.f32(out, T * d);
        assertClose(full, matmulRef(rounded, wd, n, d, T), 1e-5, `n=${n} d=${d} T=${T}`, 1);
        const split = heap.alloc(T * d);
        k.matmul_f16(split, xr, pw, n, d, T, 0, 2);
        k.matmul_f16(split, xr, pw, n, d, T, 2, d);
        assert(heap.f32(split, T * d).every((v, i) => Object.is(v, full[i])), `f16 row split changes results n=${n} d=${d} T=${T}`);
      }
    }
  });
});

test("round_f16 rounds ties to even, overflow to infinity, and keeps subnormals", async () => {
  await withKernels((k, heap) => {
    const cases = [1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1e-9, -2.5, 0];
    const p = heap.put(new Float32Array(cases)), out = heap.alloc(cases.length);
    k.round_f16(out, p, cases.length);
    const got = heap.f32(out, cases.length);
    const want = [1, 1 + 4 * 2 ** -11, 65504, 65504, Infinity, 2 ** -24, 0, 2 ** -23, 0, -2.5, 0];
    for (let i = 0; i < cases.length; i++) assert(got[i] === want[i], `round_f16(${cases[i]}) = ${got[i]}, want ${want[i]}`);
  });
});

test("round_f16 (four lanes at a time) equals the scalar reference over a sweep of every kind of f32", async () => {
  await withKernels((k, heap) => {
    // every 65521st bit pattern: both signs, subnormals, every exponent, halfway cases, inf and NaN
    const n = Math.ceil(2 ** 32 / 65521);
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = (i * 65521) >>> 0;
    const x = new Float32Array(bits.buffer);
    const p = heap.put(x), out = heap.alloc(n);
    k.round_f16(out, p, n);
    const got = heap.f32(out, n);
    for (let i = 0; i < n; i++) {
      const want = Number.isNaN(x[i]) ? NaN : f16ToF32(f32ToF16(x[i]));
      if (!Object.is(got[i], want)) assert(false, `round_f16 of bits 0x${bits[i].toString(16)} (${x[i]}): ${got[i]}, want ${want}`);
    }
  });
});

test("dequantize_f16 converts a row exactly, including subnormals and signs", async () => {
  await withKernels((k, heap) => {
    const halves = new Uint16Array([0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xbc00, 0x7bff, 0x3555, 0xc123, 0x7c00]);
    const p = heap.put(halves), out = heap.alloc(halves.length);
    k.dequantize_f16(out, p, halves.length);
    const got = heap.f32(out, halves.length);
    for (let i = 0; i < halves.length; i++) assert(Object.is(got[i], fromHalf(halves[i])), `half 0x${halves[i].toString(16)}: ${got[i]}`);
  });
});

test("dequantize_f16 converts every finite half exactly through its eight-lane path (f16x8Lo/Hi)", async () => {
  await withKernels((k, heap) => {
    // the 63488 halves whose exponent is not all ones, in order (a multiple of 8: no scalar tail)
    const halves = new Uint16Array(63488);
    for (let h = 0, i = 0; h < 65536; h++) if ((h & 0x7c00) !== 0x7c00) halves[i++] = h;
    const p = heap.put(halves), out = heap.alloc(halves.length);
    k.dequantize_f16(out, p, halves.length);
    const got = heap.f32(out, halves.length);
    for (let i = 0; i < halves.length; i++) {
      if (!Object.is(got[i], fromHalf(halves[i]))) {
        assert(false, `half 0x${halves[i].toString(16)}: ${got[i]}, want ${fromHalf(halves[i])}`);
      }
    }
  });
});

test("rmsnorm, add, swiglu and attention's softmax match their oracles on odd sizes", async () => {
  await withKernels((k, heap) => {
    for (const n of [1, 5, 13, 67]) {
      const T = 3;
      const x = rand(T * n, n, 3), w = rand(n, n + 1), b = rand(T * n, n + 2);
      const px = heap.put(x), pw = heap.put(w), pb = heap.put(b), out = heap.alloc(T * n);
      k.rmsnorm(out, px, pw, n, 1e-5, T);
      const want = new Float64Array(T * n);
      for (let t = 0; t < T; t++) {
        let ss = 0;
        for (let i = 0; i < n; i++) ss += x[t * n + i] ** 2;
        const s = 1 / Math.sqrt(ss / n + 1e-5);
        for (let i = 0; i < n; i++) want[t * n + i] = x[t * n + i] * s * w[i];
      }
      assertClose(heap.f32(out, T * n), want, 1e-5, `rmsnorm n=${n}`, 1e-3);

      k.add(out, px, pb, T * n);
      assertClose(heap.f32(out, T * n), x.map((v, i) => v + b[i]), 1e-6, `add n=${n}`);

      k.swiglu(out, px, pb, n, T);
      assertClose(heap.f32(out, T * n), Array.from(x, (g, i) => (g / (1 + Math.exp(-g))) * b[i]), 2e-6, `swiglu n=${n}`, 1e-6);

      // the softmax inside attention (kvasm's only softmax kernel): large scores, so the max-subtraction must keep exp finite
      const big = rand(n, n + 9, 80), vs = rand(n, n + 10);
      const mx = Math.max(...big);
      const e = Array.from(big, (v) => Math.exp(v - mx));
      const sum = e.reduce((a, c) => a + c, 0);
      const want1 = e.reduce((acc, v, i) => acc + (v / sum) * vs[i], 0);
      assertClose([attendOne(k, heap, 1, big, vs)], [want1], 2e-6, `attention softmax n=${n}`, 1e-6);
    }
  });
});

test("swiglu gives the same bits in the relaxed build (fused relaxed_madd where the engine fuses) as in the plain one", async () => {
  // the relaxed build runs ggml_v_expf in f32 lanes with relaxed_madd where this engine fuses it (V8 on x86), the
  // plain build in f64 lanes emulating each fused step: ggml's bits either way, over every magnitude of gate, the
  // special values and random bit patterns (NaN payloads aside)
  const n = 2048, T = 4, gates = new Float32Array(T * n), gu32 = new Uint32Array(gates.buffer);
  const specials = [0, -0, 1, -1, 87, -87, 88.5, -88.5, 89, -89, 103, -104, 126, -126, 127, -127, 149, -150, 192, -192, 200, -200];
  let s = 99;
  const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < gates.length; i++) {
    if (i < specials.length) gates[i] = specials[i];
    else if (i % 7 === 6) gu32[i] = (rnd() * 2 ** 32) >>> 0;
    else gates[i] = (rnd() < 0.5 ? -1 : 1) * 2 ** (rnd() * 40 - 30) * (1 + rnd());
  }
  gates.set([Infinity, -Infinity, NaN, 1e-40, -1e-40, 3e38, -3e38], specials.length);
  const up = rand(T * n, 5, 2);
  const outs: Float32Array[] = [];
  await withKernels((k, heap) => {
    const pg = heap.put(gates), pu = heap.put(up), out = heap.alloc(T * n);
    k.swiglu(out, pg, pu, n, T);
    outs.push(heap.f32(out, T * n));
  });
  const [plain, relaxed] = outs.map((o) => new Uint32Array(o.buffer));
  let differ = 0;
  for (let i = 0; i < plain.length; i++) {
    if (plain[i] !== relaxed[i] && !(Number.isNaN(outs[0][i]) && Number.isNaN(outs[1][i]))) differ++;
  }
  assert(differ === 0, `${differ} of ${plain.length} swiglu outputs differ between the builds`);
  // and the values are SwiGLU's: a finite gate's output within 1e-6 of the float64 formula
  for (let i = specials.length + 7; i < 200; i++) {
    if (i % 7 === 6) continue;
    const g = gates[i], want = (g / (1 + Math.exp(-g))) * up[i];
    assert(Math.abs(outs[1][i] - want) <= 1e-6 * Math.abs(want) + 1e-30, `swiglu(${g}) = ${outs[1][i]}, want ${want}`);
  }
});

test("expf stays accurate over the whole f32 range (through attention's softmax)", async () => {
  await withKernels((k, heap) => {
    // scores [v, 0] over values [1, 0]: out = e^v / (e^v + 1), which probes exp at v without saturation issues for |v| < 80
    const xs = [-87, -40, -10.5, -1, -1e-3, 0, 1e-3, 0.5, 1, 3.7, 20, 60, 87];
    for (const v of xs) {
      const got = attendOne(k, heap, v, [1, 0], [1, 0]);
      const ev = Math.exp(v - Math.max(v, 0)), e0 = Math.exp(-Math.max(v, 0));
      assertClose([got], [ev / (ev + e0)], 1e-6, `softmax([${v}, 0])`, 1e-30);
    }
  });
});

test("rope rotates interleaved pairs and rotate-half pairs, and leaves partial-rotary dims alone", async () => {
  await withKernels((k, heap) => {
    const nHeads = 3, headDim = 10, ropeDim = 6, half = ropeDim / 2, T = 2, maxPos = 9;
    const table = new Float32Array(maxPos * half * 2);
    for (let p = 0; p < maxPos; p++) {
      for (let i = 0; i < half; i++) {
        const th = p * Math.pow(10000, (-2 * i) / ropeDim);
        table[(p * half + i) * 2] = Math.cos(th);
        table[(p * half + i) * 2 + 1] = Math.sin(th);
      }
    }
    const pt = heap.put(table), pos = heap.put(new Int32Array([3, 8]));
    for (const halves of [0, 1]) {
      const x = rand(T * nHeads * headDim, 77 + halves);
      const px = heap.put(x);
      k.rope(px, pt, pos, T, nHeads, headDim, ropeDim, halves);
      const want = Float64Array.from(x);
      for (let t = 0; t < T; t++) {
        const p = [3, 8][t];
        for (let h = 0; h < nHeads; h++) {
          const o = (t * nHeads + h) * headDim;
          for (let i = 0; i < half; i++) {
            const [ia, ib] = halves ? [i, i + half] : [2 * i, 2 * i + 1];
            const c = table[(p * half + i) * 2], s = table[(p * half + i) * 2 + 1];
            want[o + ia] = x[o + ia] * c - x[o + ib] * s;
            want[o + ib] = x[o + ia] * s + x[o + ib] * c;
          }
        }
      }
      assertClose(heap.f32(px, x.length), want, 1e-6, `rope halves=${halves}`, 1);
    }
  });
});

test("attention over a paged cache: causal, grouped-query, sliding window, any head split", async () => {
  await withKernels((k, heap) => {
    const nHeads = 6, nKvHeads = 2, headDim = 5, kvDim = nKvHeads * headDim, pageSize = 3, nLayers = 2, nPos = 8;
    const pageBytes = nLayers * 2 * pageSize * kvDim * 4;
    const nPages = 4;
    const pages = heap.alloc((nPages * pageBytes) / 4);
    const table = heap.put(new Int32Array([2, 0, 3])); // positions 0-2 in page 2, 3-5 in page 0, 6-7 in page 3
    const K = rand(nPos * kvDim, 5), V = rand(nPos * kvDim, 6);
    const layer = 1;
    const kOff = layer * 2 * pageSize * kvDim * 4, vOff = kOff + pageSize * kvDim * 4;
    const mem = new Float32Array(heap.mem.buffer);
    const pageOf = [2, 0, 3];
    for (let p = 0; p < nPos; p++) {
      const at = pages + pageOf[Math.floor(p / pageSize)] * pageBytes + (p % pageSize) * kvDim * 4;
      mem.set(K.subarray(p * kvDim, (p + 1) * kvDim), (at + kOff) / 4);
      mem.set(V.subarray(p * kvDim, (p + 1) * kvDim), (at + vOff) / 4);
    }
    const q = rand(nHeads * headDim, 9);
    const pq = heap.put(q), att = heap.alloc(nHeads * nPos), out = heap.alloc(nHeads * headDim);
    // heads [h0, h1) of query q over positions [start, end), no ALiBi, no top-k
    const attend = (dst: number, start: number, end: number, h0: number, h1: number) =>
      k.attention(
        dst,
        pq,
        att,
        pages,
        table,
        pageSize,
        pageBytes,
        kOff,
        vOff,
        kvDim,
        nHeads,
        nKvHeads,
        headDim,
        start,
        end,
        h0,
        h1,
        0,
        0,
        0,
      );
    for (const [start, end] of [[0, 8], [0, 1], [5, 8], [2, 7]]) {
      attend(out, start, end, 0, nHeads);
      const want = new Float64Array(nHeads * headDim);
      for (let h = 0; h < nHeads; h++) {
        const g = Math.floor(h / (nHeads / nKvHeads));
        const sc: number[] = [];
        for (let p = start; p < end; p++) {
          let s = 0;
          for (let i = 0; i < headDim; i++) s += q[h * headDim + i] * K[p * kvDim + g * headDim + i];
          sc.push(s / Math.sqrt(headDim));
        }
        const mx = Math.max(...sc), e = sc.map((s) => Math.exp(s - mx)), sum = e.reduce((a, b) => a + b, 0);
        for (let p = start; p < end; p++) {
          for (let i = 0; i < headDim; i++) want[h * headDim + i] += (e[p - start] / sum) * V[p * kvDim + g * headDim + i];
        }
      }
      const got = heap.f32(out, nHeads * headDim);
      assertClose(got, want, 1e-5, `attention [${start}, ${end})`, 1e-3);
      // heads split across two calls give the same bits
      const split = heap.alloc(nHeads * headDim);
      attend(split, start, end, 0, 4);
      attend(split, start, end, 4, nHeads);
      assert(heap.f32(split, nHeads * headDim).every((v, i) => Object.is(v, got[i])), "head split changes results");
    }
  });
});
