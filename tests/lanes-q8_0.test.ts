/**
 * Q8_0's lanes layout in the VNNI form (assembly/lanes-q8_0-vnni.ts: weight bytes offset to unsigned, one relaxed
 * dot-add per 16 bytes) and the run-time probe that picks it (dotAddIsExactU8S8, src/kernels/wasm.ts): the repack's
 * bytes; dequantize_q8_0_vnni against dequantize_q8_0; matmul_q8_0_vnni against matmul_q8_0 and matmul_q8_0_lanes bit
 * for bit (T = 1, 2, 3, 17, 128, odd row counts, quad-aligned row ranges, each batched row alone, weights and
 * activations at ±127) in the plain build everywhere and in the relaxed build where the probe holds; the probe
 * predicting what the relaxed kernel does with bytes >= 128 in this runtime; -128 weight bytes summed exactly; the
 * backend's choice (named by its kernel) and its outputs against ggml's layout on one and two threads.
 * Bun's form (assembly/lanes-q8_0-nib.ts: the signed lanes layout against Q8_SN, nibble activations) and its probe
 * (byteDotReadsUnsigned): quantize_q8_sn's bytes; matmul_q8_0_nib against matmul_q8_0 bit for bit (T = 1..6, 17, 37,
 * 128, the tiles and the T < 4 pass, odd rows, ranges, each row alone, blocks of ±127 against ±127); -128 bytes.
 */
import { assert, assertEquals, test } from "./harness.ts";
import { type Build, BUILDS, instantiateBuilds, xorshift } from "./kernel-builds.ts";
import { f16ToF32, f32ToF16 } from "../src/quant/half.ts";
import { byteDotReadsUnsigned, dotAddIsExactU8S8, hasRelaxedSimd } from "../src/kernels/wasm.ts";
import { Q8_0_NIB_LANES, Q8_0_VNNI_LANES } from "../src/quant/kernels.ts";
import process from "node:process";
import { threadSupport } from "../src/threads/spawn.ts";
import { WasmBackend } from "../src/backends/wasm.ts";
import { ThreadedWasmBackend } from "../src/backends/wasm-threads.ts";
import { GGMLType } from "../src/formats/ggml-types.ts";
import { NaturalLayout, weightOutputs } from "./repacked-weights.ts";

const memory = new WebAssembly.Memory({ initial: 512 }); // 32 MiB
const kernels = instantiateBuilds(memory);
const QB = 34, SB = 40; // Q8_0 and Q8_S block bytes
const exact = dotAddIsExactU8S8();
/** The builds whose matmul_q8_0_vnni is valid here: the plain one always, the relaxed one where the probe holds. */
const VALID: readonly Build[] = BUILDS.filter((b) => b === "simd" || exact);

/**
 * d rows of n Q8_0 weights: values -127..127 with the ends frequent (a fifth of the bytes at ±127), small f16 d;
 * `minus128`: some bytes -128 too (ggml's quantizer never writes it; a file may).
 */
function q8Rows(n: number, d: number, seed: number, minus128 = false): Uint8Array {
  const u = xorshift(seed), out = new Uint8Array((n / 32) * d * QB);
  const v = new DataView(out.buffer);
  for (let p = 0; p < out.length; p += QB) {
    v.setUint16(p, f32ToF16(0.0005 + 0.01 * u()), true);
    for (let j = 0; j < 32; j++) {
      const r = u();
      v.setInt8(p + 2 + j, r < 0.1 ? 127 : r < 0.2 ? (minus128 && r < 0.15 ? -128 : -127) : Math.floor(u() * 255) - 127);
    }
  }
  return out;
}

/** T rows of n activations: every block's largest magnitude quantizes to ±127; one all-zero block; runs of equal signs. */
function activations(n: number, T: number, seed: number): Float32Array {
  const u = xorshift(seed), x = new Float32Array(n * T);
  for (let i = 0; i < x.length; i++) x[i] = (u() - 0.5) * 4 * ((i >> 4) % 3 === 0 ? 1 : (i >> 4) % 3 === 1 ? 0.5 : -0.5) + 0.1;
  x.fill(0, 32, 64);
  if (x.length > 100) x[100] = -9;
  return x;
}

const W = 1 << 16, WL = 5 << 20, WV = 10 << 20, X = 15 << 20, XF = 18 << 20, O = 22 << 20, O2 = 26 << 20, TMP = 30 << 20;
const XN = 19 << 20, SNB = 328; // Q8_SN at XN: per block 40 bytes of Q8_S (each row's blocks first), then 288 of tile operands
const u8 = (at: number, n: number) => new Uint8Array(memory.buffer, at, n);
const u32 = (at: number, n: number) => new Uint32Array(memory.buffer, at, n).slice();

/** Natural Q8_0 weights at W, the same in the signed lanes form at WL and in the VNNI form at WV (build b's repacks). */
function place(b: Build, w: Uint8Array, n: number, d: number): void {
  u8(W, w.length).set(w);
  u8(WL, w.length).set(w);
  u8(WV, w.length).set(w);
  kernels[b].repack_q8_0_lanes(WL, n, d, TMP);
  kernels[b].repack_q8_0_vnni(WV, n, d, TMP);
}

/** f32 activations quantized to Q8_S at X by build b. */
function quantize(b: Build, n: number, T: number, seed: number): void {
  new Float32Array(memory.buffer, XF, n * T).set(activations(n, T, seed));
  kernels[b].quantize_q8_s(X, XF, n, T);
}

test(`dotAddIsExactU8S8: ${exact} here (${"Bun" in globalThis ? "Bun" : "Deno" in globalThis ? "Deno" : "Node"}); false without relaxed SIMD, false in JavaScriptCore`, () => {
  if (!hasRelaxedSimd()) assertEquals(exact, false, "no relaxed SIMD, no dot-add");
  // JavaScriptCore lowers the dot-add to pmaddubsw's saturated i16 pairs (measured 2026-12-05: 4 x 255 x 127 gives 65534)
  if ("Bun" in globalThis) assertEquals(exact, false, "JavaScriptCore's dot-add saturates");
  assertEquals(dotAddIsExactU8S8(), exact, "asked again: the same answer, once per process");
});

test("the probe predicts the relaxed build: matmul_q8_0_vnni equals matmul_q8_0 on saturating blocks exactly where it holds", () => {
  // every weight 127 (255 once offset) against activations at +127: each pmaddubsw pair would be 2 x 255 x 127 > 32767
  const n = 64, d = 8, w = new Uint8Array((n / 32) * d * QB);
  const v = new DataView(w.buffer);
  for (let p = 0; p < w.length; p += QB) {
    v.setUint16(p, f32ToF16(0.01), true);
    w.fill(127, p + 2, p + QB);
  }
  place("relaxed", w, n, d);
  new Float32Array(memory.buffer, XF, n).fill(1);
  kernels.relaxed.quantize_q8_s(X, XF, n, 1);
  kernels.relaxed.matmul_q8_0(O, X, W, n, d, 1, 0, d);
  kernels.relaxed.matmul_q8_0_vnni(O2, X, WV, n, d, 1, 0, d);
  const same = u32(O, d).every((x, i) => x === u32(O2, d)[i]);
  assertEquals(same, exact, `the relaxed dot-add ${exact ? "is" : "is not"} exact here, and the kernel agrees`);
});

for (const b of BUILDS) {
  test(`repack_q8_0_vnni (${b}): the signed lanes layout with every weight byte xor 0x80, scales as they are, the last d % 4 rows natural`, () => {
    const n = 96, d = 11, nb = n / 32;
    const w = q8Rows(n, d, 3);
    place(b, w, n, d);
    const lanes = u8(WL, w.length).slice(), vnni = u8(WV, w.length).slice();
    for (let i = 0; i < 8 * nb * QB; i++) {
      const scale = i % (4 * QB) < 8;
      if (vnni[i] !== (scale ? lanes[i] : lanes[i] ^ 0x80)) assertEquals(vnni[i], scale ? lanes[i] : lanes[i] ^ 0x80, `byte ${i}`);
    }
    assertEquals([...vnni.subarray(8 * nb * QB)], [...w.subarray(8 * nb * QB)], "rows 8..10 stay natural");
  });

  test(`dequantize_q8_0_vnni (${b}): dequantize_q8_0 of the natural row, bit for bit, -128 bytes and tail rows included`, () => {
    const k = kernels[b], n = 256, d = 7;
    place(b, q8Rows(n, d, 5, true), n, d);
    for (let r = 0; r < d; r++) {
      k.dequantize_q8_0(O, W + r * (n / 32) * QB, n);
      k.dequantize_q8_0_vnni(O2, WV, n, r, d);
      assertEquals([...u32(O2, n)], [...u32(O, n)], `row ${r}`);
    }
  });
}

for (const b of VALID) {
  test(`matmul_q8_0_vnni (${b}): matmul_q8_0's and matmul_q8_0_lanes' floats bit for bit, T = 1, 2, 3, 17, 128, odd rows, ranges on quads`, () => {
    const k = kernels[b];
    const cases = [[64, 16, 1], [256, 37, 1], [768, 68, 3], [512, 23, 2], [256, 52, 17], [96, 3, 2], [1024, 101, 1], [256, 29, 128]];
    for (const [n, d, T] of cases) {
      place(b, q8Rows(n, d, n + d + T), n, d);
      quantize(b, n, T, T + d);
      k.matmul_q8_0(O, X, W, n, d, T, 0, d);
      const want = u32(O, d * T);
      k.matmul_q8_0_lanes(O2, X, WL, n, d, T, 0, d);
      assertEquals([...u32(O2, d * T)], [...want], `signed lanes: n ${n} d ${d} T ${T}`);
      k.matmul_q8_0_vnni(O2, X, WV, n, d, T, 0, d);
      assertEquals([...u32(O2, d * T)], [...want], `VNNI: n ${n} d ${d} T ${T}`);
      // row ranges as threads take them: on multiples of 16, then of 4 (the quads), the last one to d
      for (const cuts of [[0, 16], [0, 4, 20, 36], [0, 8, 12]]) {
        const ranges = [...cuts.filter((c) => c < d), d];
        u8(O2, d * T * 4).fill(0);
        for (let i = 0; i + 1 < ranges.length; i++) k.matmul_q8_0_vnni(O2, X, WV, n, d, T, ranges[i], ranges[i + 1]);
        assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}, rows split at ${ranges.join(", ")}`);
      }
      // batch invariance: each activation row alone (the T = 1 path) gives its batched row (the tiles)
      for (let t = 0; t < T; t += T > 20 ? 13 : 1) {
        k.matmul_q8_0_vnni(O2, X + t * (n / 32) * SB, WV, n, d, 1, 0, d);
        assertEquals([...u32(O2, d)], [...want.subarray(t * d, (t + 1) * d)], `n ${n} d ${d} row ${t} of ${T} alone`);
      }
    }
  });

  test(`matmul_q8_0_vnni (${b}): -128 weight bytes get their exact products (each block's integer sum in JavaScript, the f32 steps)`, () => {
    // whole quads only: the d % 4 natural rows go to matmul_q8_0, which (both builds) moves the activation's sign onto
    // the weight and so gives -128 |a| for a -128 byte
    for (const [n, d, T] of [[256, 40, 1], [512, 24, 5], [128, 16, 3]]) {
      const w = q8Rows(n, d, 11 + T, true);
      place(b, w, n, d);
      quantize(b, n, T, 3);
      kernels[b].matmul_q8_0_vnni(O, X, WV, n, d, T, 0, d);
      assertEquals([...u32(O, d * T)], [...exactMatmul(w, n, d, T)], `n ${n} d ${d} T ${T}`);
    }
  });
}

/**
 * The matmul of natural Q8_0 weights w by the Q8_S activations at X as kvasm's kernels round it, with exact integer
 * block sums: per block acc += (d_w * d_a) * isum in f32, blocks in order. Bits, T rows of d.
 */
function exactMatmul(w: Uint8Array, n: number, d: number, T: number): Uint32Array {
  const nb = n / 32, wv = new DataView(w.buffer), xv = new DataView(memory.buffer, X), out = new Float32Array(d * T);
  for (let t = 0; t < T; t++) {
    for (let r = 0; r < d; r++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        const p = (r * nb + b) * QB, q = (t * nb + b) * SB;
        let isum = 0;
        for (let j = 0; j < 32; j++) isum += wv.getInt8(p + 2 + j) * xv.getInt8(q + 8 + j);
        acc = Math.fround(acc + Math.fround(Math.fround(f16ToF32(wv.getUint16(p, true)) * xv.getFloat32(q, true)) * isum));
      }
      out[t * d + r] = acc;
    }
  }
  return new Uint32Array(out.buffer);
}

/** A d x n Q8_0 weight (q8Rows' bytes) through `backend`: its products and rows, see weightOutputs. */
const outputs = (backend: WasmBackend, n: number, d: number, T: number) =>
  weightOutputs(backend, GGMLType.Q8_0, q8Rows(n, d, 77), activations(n, T, 9), n, d, T);

const unsigned = byteDotReadsUnsigned();
/** The relaxed build's Q8_0 form in this runtime: VNNI where the dot-add is exact, Bun's nibble form, else the signed one. */
const FORM = exact ? Q8_0_VNNI_LANES.matmul : "Bun" in globalThis && unsigned ? Q8_0_NIB_LANES.matmul : "matmul_q8_0_lanes";

test(`the WASM backend's Q8_0 form: ${FORM} here, the signed form on the plain build; the natural layout's outputs on 1 and 2 threads`, async () => {
  const relaxed = new WasmBackend(), plain = new WasmBackend({ relaxed: false });
  assertEquals(
    relaxed.lanesKernelFor(GGMLType.Q8_0)?.matmul,
    FORM,
    "the relaxed build's form, known before init (the plan sizes scratch by it)",
  );
  if (FORM === Q8_0_NIB_LANES.matmul) {
    assertEquals(relaxed.matmulScratchBytes(GGMLType.Q8_0, 512, 17), 17 * (512 / 32) * SNB, "the matmul scratch holds 17 Q8_SN rows");
  }
  const natural = await outputs(new NaturalLayout(), 512, 103, 17);
  const got = await outputs(relaxed, 512, 103, 17);
  assertEquals(relaxed.lanesKernelFor(GGMLType.Q8_0)?.matmul, FORM, "the relaxed build's form");
  assertEquals(got.layout, "lanes");
  assertEquals([...got.logits], [...natural.logits], "matmul, T = 17");
  assertEquals([...got.rows], [...natural.rows], "embedding rows");
  const plainGot = await outputs(plain, 512, 103, 17);
  assertEquals(
    plain.lanesKernelFor(GGMLType.Q8_0)?.matmul,
    "matmul_q8_0_lanes",
    "the plain build takes neither the VNNI nor the nibble form",
  );
  assertEquals([...plainGot.logits], [...natural.logits], "plain build's matmul");
  assert(threadSupport() !== undefined, "this runtime should have Workers and shared memory");
  for (const T of [1, 128]) {
    const one = await outputs(new NaturalLayout(), 256, 1003, T);
    const two = new ThreadedWasmBackend({ threads: 2, minWork: 0 });
    const twoGot = await outputs(two, 256, 1003, T);
    assertEquals(two.lanesKernelFor(GGMLType.Q8_0)?.matmul, relaxed.lanesKernelFor(GGMLType.Q8_0)?.matmul, "the threaded backend's form");
    assertEquals([...twoGot.logits], [...one.logits], `two threads, T = ${T}`);
    assertEquals([...twoGot.rows], [...one.rows], "two threads' embedding rows");
  }
});

// Bun's form: the signed lanes layout (repack_q8_0_lanes) against Q8_SN activations (quantize_q8_sn)

/** The builds whose matmul_q8_0_nib is valid here: the plain one always (no tiles), the relaxed one where the probe holds. */
const NIB_VALID: readonly Build[] = BUILDS.filter((b) => b === "simd" || unsigned);
const x86 = process.arch === "x64" || process.arch === "ia32";

test(`byteDotReadsUnsigned: ${unsigned} here (${process.arch}); true on x86 (pmaddubsw in V8 and JavaScriptCore), false without relaxed SIMD`, () => {
  if (!hasRelaxedSimd()) assertEquals(unsigned, false, "no relaxed SIMD, no byte dot");
  if (hasRelaxedSimd() && x86) assertEquals(unsigned, true, "x86 engines lower the relaxed i16 dot to pmaddubsw (measured 2026-12-05)");
  assertEquals(byteDotReadsUnsigned(), unsigned, "asked again: the same answer, once per process");
});

/** T rows of activations (seed) at XF, quantize_q8_s'd at X and quantize_q8_sn'd at XN by build b. */
/** Q8_0 rows w with each -128 byte of the rows in whole quads (r < d & ~3) made -127, as repack_q8_0_nib stores them. */
function clampQuads(w: Uint8Array, n: number, d: number): Uint8Array {
  const out = w.slice(), nb = n / 32;
  for (let r = 0; r < (d & ~3); r++) {
    for (let b = 0; b < nb; b++) {
      for (let j = 0; j < 32; j++) {
        const at = (r * nb + b) * QB + 2 + j;
        if (out[at] === 0x80) out[at] = 0x81;
      }
    }
  }
  return out;
}

function quantizeBoth(b: Build, n: number, T: number, seed: number): void {
  quantize(b, n, T, seed);
  kernels[b].quantize_q8_sn(XN, XF, n, T);
}

for (const b of BUILDS) {
  test(`quantize_q8_sn (${b}): each row quantize_q8_s' blocks, then per block 16 ah + al = a (|ah|, |al| <= 8) each group 4 times, -128 Σa and d x 4`, () => {
    const n = 256, T = 3, nb = n / 32;
    quantizeBoth(b, n, T, 21);
    // blocks quantize_q8_sn takes its own way through (ties to even at id = 1) or hands to quantize_q8_s (not finite)
    const x = new Float32Array(memory.buffer, XF, n * T);
    const ties = [127, 2.5, -3.5, 0.5, -0.5, 1.5, 126.5, -126.5, -0];
    x.set(ties, 0);
    x.fill(0, 32, 64); // all zero: d = 0
    x[64 + 3] = NaN;
    x[96 + 7] = Infinity;
    x[128 + 1] = -Infinity;
    x.fill(1e-39, 160, 192); // subnormal: 127 / amax overflows
    x.fill(-3e38, 192, 200); // near the largest f32
    x[224] = -0;
    kernels[b].quantize_q8_s(X, XF, n, T);
    kernels[b].quantize_q8_sn(XN, XF, n, T);
    assertEquals([...new Int8Array(memory.buffer, X + 8, 8)], [127, 2, -4, 0, 0, 2, 126, -126], "ties to even, as f32x4.nearest");
    const q8s = new DataView(memory.buffer, X), sn = new DataView(memory.buffer, XN);
    for (let t = 0; t < T; t++) {
      const row = t * nb * SNB;
      assertEquals([...u8(XN + row, nb * SB)], [...u8(X + t * nb * SB, nb * SB)], `row ${t}: the Q8_S blocks`);
      for (let blk = 0; blk < nb; blk++) {
        const q = (t * nb + blk) * SB, o = row + nb * SB + blk * 288;
        let sum = 0;
        for (let k = 0; k < 32; k++) {
          const a = q8s.getInt8(q + 8 + k);
          sum += a;
          for (let c = 0; c < 4; c++) {
            const at = (k >> 2) * 16 + c * 4 + (k & 3), ah = sn.getInt8(o + at), al = sn.getInt8(o + 128 + at);
            if (16 * ah + al !== a || Math.abs(ah) > 8 || Math.abs(al) > 8) {
              assertEquals(
                [ah, al],
                [Math.floor((a + 8) / 16), ((a + 8) & 15) - 8],
                `row ${t} block ${blk} element ${k} copy ${c} (a = ${a})`,
              );
            }
          }
        }
        // row 0's blocks 2..5 (NaN, ±infinity, an inverse scale that overflows): quantize_q8_s' sum is of its saturated
        // i32 conversions, not of the narrowed bytes; the tiles take whatever sum it stored
        const stored = q8s.getInt32(q + 4, true);
        if (t > 0 || blk < 2 || blk > 5) assertEquals(sum, stored, `row ${t} block ${blk}: Q8_S's block sum`);
        for (let c = 0; c < 4; c++) {
          assertEquals(sn.getInt32(o + 256 + 4 * c, true), Math.imul(stored, -128), `row ${t} block ${blk}: -128 Σa`);
          assertEquals(sn.getUint32(o + 272 + 4 * c, true), q8s.getUint32(q, true), `row ${t} block ${blk}: d`);
        }
      }
    }
  });
}

for (const b of NIB_VALID) {
  test(`matmul_q8_0_nib (${b}): matmul_q8_0's floats bit for bit, T = 1..6, 17, 37, 128, odd rows, ranges on quads, each row alone`, () => {
    const k = kernels[b];
    const cases = [[64, 16, 1], [256, 37, 2], [768, 68, 3], [512, 23, 4], [256, 52, 5], [96, 3, 6], [1024, 101, 17], [256, 29, 37], [
      256,
      40,
      128,
    ]];
    for (const [n, d, T] of cases) {
      place(b, q8Rows(n, d, n + d + T), n, d);
      quantizeBoth(b, n, T, T + d);
      k.matmul_q8_0(O, X, W, n, d, T, 0, d);
      const want = u32(O, d * T);
      k.matmul_q8_0_nib(O2, XN, WL, n, d, T, 0, d);
      assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}`);
      for (const cuts of [[0, 16], [0, 4, 20, 36], [0, 8, 12]]) {
        const ranges = [...cuts.filter((c) => c < d), d];
        u8(O2, d * T * 4).fill(0);
        for (let i = 0; i + 1 < ranges.length; i++) k.matmul_q8_0_nib(O2, XN, WL, n, d, T, ranges[i], ranges[i + 1]);
        assertEquals([...u32(O2, d * T)], [...want], `n ${n} d ${d} T ${T}, rows split at ${ranges.join(", ")}`);
      }
      // batch invariance: each activation row alone (the T < 4 pass) gives its batched row (the tiles where T >= 4)
      for (let t = 0; t < T; t += T > 20 ? 13 : 1) {
        k.matmul_q8_0_nib(O2, XN + t * (n / 32) * SNB, WL, n, d, 1, 0, d);
        assertEquals([...u32(O2, d)], [...want.subarray(t * d, (t + 1) * d)], `n ${n} d ${d} row ${t} of ${T} alone`);
      }
    }
  });

  test(`matmul_q8_0_nib (${b}): blocks of 127 and -127 weights against activations at ±127, every sign pairing, T = 8`, () => {
    // every pmaddubsw pair at its largest: u = 255 or 1 against planes at ±8; the i16 sums at their bounds
    const n = 128, d = 8, T = 8, w = new Uint8Array((n / 32) * d * QB), v = new DataView(w.buffer);
    for (let p = 0, r = 0; p < w.length; p += QB, r = Math.floor(p / ((n / 32) * QB))) {
      v.setUint16(p, f32ToF16(0.01), true);
      w.fill(r & 1 ? 0x81 : 0x7f, p + 2, p + QB); // -127, 127
    }
    place(b, w, n, d);
    const x = new Float32Array(n * T);
    for (let t = 0; t < T; t++) x.fill(t & 1 ? -3 : 3, t * n, (t + 1) * n);
    x[5] = -3, x[n + 7] = 3; // mixed signs in one block
    new Float32Array(memory.buffer, XF, n * T).set(x);
    kernels[b].quantize_q8_s(X, XF, n, T);
    kernels[b].quantize_q8_sn(XN, XF, n, T);
    kernels[b].matmul_q8_0(O, X, W, n, d, T, 0, d);
    kernels[b].matmul_q8_0_nib(O2, XN, WL, n, d, T, 0, d);
    assertEquals([...u32(O2, d * T)], [...u32(O, d * T)], "all ±127");
  });

  test(`repack_q8_0_nib (${b}): repack_q8_0_lanes' bytes, a -128 byte in a quad stored as -127, the d % 4 tail rows untouched`, () => {
    for (const [n, d] of [[256, 40], [128, 23]]) {
      const w = q8Rows(n, d, 5 + d, true), clamped = clampQuads(w, n, d);
      assert(clamped.some((x, i) => x !== w[i]), "the case has -128 bytes in its quads");
      place(b, clamped, n, d);
      const want = u8(WL, w.length).slice();
      u8(WL, w.length).set(w);
      kernels[b].repack_q8_0_nib(WL, n, d, TMP);
      assertEquals([...u8(WL, w.length)], [...want], `n ${n} d ${d}`);
    }
  });

  test(`matmul_q8_0_nib (${b}): after repack_q8_0_nib, -128 weight bytes read as -127 at every T (one row and the tiles agree), tail rows as matmul_q8_0`, () => {
    for (const [n, d, T] of [[256, 40, 1], [512, 24, 5], [128, 16, 3], [256, 16, 16], [256, 19, 6]]) {
      const w = q8Rows(n, d, 11 + T, true), clamped = clampQuads(w, n, d);
      u8(WL, w.length).set(w);
      kernels[b].repack_q8_0_nib(WL, n, d, TMP);
      quantizeBoth(b, n, T, 3);
      kernels[b].matmul_q8_0_nib(O, XN, WL, n, d, T, 0, d);
      const want = exactMatmul(clamped, n, d, T), got = u32(O, d * T);
      const quadRows = d & ~3;
      for (let t = 0; t < T; t++) {
        for (let r = 0; r < quadRows; r++) {
          assertEquals(got[t * d + r], want[t * d + r], `exact on -127: n ${n} d ${d} T ${T} row ${t}, ${r}`);
        }
      }
      if (quadRows < d) {
        u8(W, w.length).set(w);
        kernels[b].matmul_q8_0(O2, X, W, n, d, T, 0, d);
        const natural = u32(O2, d * T);
        for (let t = 0; t < T; t++) {
          for (let r = quadRows; r < d; r++) assertEquals(got[t * d + r], natural[t * d + r], `tail row: T ${T} row ${t}, ${r}`);
        }
      }
      // one row at a time (the T < 4 pass) gives the tiles' bits
      for (let t = 0; t < T; t++) {
        kernels[b].matmul_q8_0_nib(O2, XN + t * (n / 32) * SNB, WL, n, d, 1, 0, d);
        assertEquals([...u32(O2, d)], [...got.slice(t * d, t * d + d)], `row ${t} alone: n ${n} d ${d} T ${T}`);
      }
    }
  });
}
