// Q8_0's signed lanes layout (lanes-q8_0.ts, repack_q8_0_lanes) against "nibble" activations: the form JavaScriptCore
// (Bun) runs its prefill in.
//
// Why: in JavaScriptCore the relaxed dot-add is pmaddubsw's saturated i16 pairs, so the VNNI form's one-op step
// (lanes-q8_0-vnni.ts) is not exact there, and the signed step spends xor + sub moving each activation sign onto the
// weights, then pmaddubsw, pmaddwd and an add per 16 weight bytes and activation row. Here each activation byte a (Q8_S:
// -127..127) is split once per matmul input into two signed parts of magnitude <= 8,
//   al = ((a + 8) & 15) - 8,  ah = (a + 8) >> 4,  a = 16 ah + al,
// each a byte plane, and each weight vector is offset to unsigned once per tile (u = w ^ 0x80 = w + 128, 0..255).
// Every pmaddubsw pair is then at most 2 x 255 x 8 = 4080 in magnitude, so a block's eight vectors sum exactly in i16
// (<= 32640): per 16 weight bytes and activation row two pmaddubsw and two i16 adds, no sign moves and no widening; per
// block two pmaddwd (x16, x1) widen the planes' sums, and
//   Σ w a = Σ (u - 128) a = 16 Σ u ah + Σ u al - 128 Σ a
// (Q8_S carries Σa) is matmul_q8_0's exact integer block sum. The f32 steps are q8_0Row's, in block order, so every
// output is bit-identical to matmul_q8_0's for weight bytes in -127..127 (all that ggml's and kvasm's quantizers write).
//
// This needs i16x8.relaxed_dot_i8x16_i7x16_s to read its second operand's bytes as unsigned (pmaddubsw: V8 and
// JavaScriptCore on x86); the relaxed-SIMD spec also allows a signed reading (ARM), so the backend takes this form only
// where a run-time probe (src/kernels/wasm.ts, byteDotReadsUnsigned) finds the unsigned reading, and only in Bun (in V8
// the tiles run at 0.86-0.88x of the signed lanes kernel; V8 with AVX-VNNI takes the VNNI form).
//
// Activations (Q8_SN, quantize_q8_sn): each row is its Q8_S blocks (nb x 40 bytes), then per block 288 bytes: the two
// planes pre-splatted, ah then al, each group of 4 bytes repeated 4 times (the step's operand is then one plain 16-byte
// load; JavaScriptCore turns a load32_splat into a scalar load and a broadcast), then -128 Σa and d, four lanes each.
// Rows stand alone, so threads quantize row ranges independently.
//
// T < 4 (decode, batched decode of a few sequences) runs matmul_q8_0_lanes' own pass on the Q8_S blocks, so decode is
// unchanged; T >= 4 runs tiles of 2 quads (from two bands of the rows) x 2 activation rows. -128 weight bytes (ggml never
// writes them; a file may): the tiles would sum them exactly and the T < 4 pass as -128 |a| (the relaxed signed step
// moves the sign onto the weight, where -(-128) wraps), so a row's output would depend on how many rows share the call
// (other sequences' rows in a batched step included). This form's repack (repack_q8_0_nib) therefore stores a -128 byte
// as -127, which every pass and both builds multiply exactly: the same bits for any T. The d % 4 natural tail rows stay
// as they are and go through matmul_q8_0 at every T.
import { Q8_0_BYTES, Q8_S_BYTES } from "./ggml-common";
import { quantize_q8_s } from "./quant-act";
import { absmax32, blockAdd, f16quadMul, f32ToF16, roundToInt } from "./quant-util";
import { f16ToF32 } from "./math";
import { matmul_q8_0 } from "./quant-matmul";
import { QB, repackQuads } from "./lanes-q8_0-layout";
import { quads } from "./lanes-q8_0-steps";

/**
 * Bytes of one block's tile operands: the two pre-splatted planes (8 groups x 16 bytes each), then the block's
 * -128 Σa as i32x4 and its d as f32x4 (one load each in the tile, where a splat costs JavaScriptCore a scalar load,
 * shift, negation and broadcast).
 */
// @ts-ignore: decorator
@inline const PLANES: usize = 288;

/** Bytes of one Q8_SN block: its Q8_S block and its planes. */
// @ts-ignore: decorator
@inline const Q8_SN_BYTES: usize = Q8_S_BYTES + PLANES;

/**
 * Fewest activation rows that take the tiles: below, the four-band pass (batched decode of 2-3 sequences), which the
 * tiles did not beat there (0.87-1.05x on the layer shapes, 0.67-0.71x on the DRAM-sized 32000 x 768 classifier).
 */
// @ts-ignore: decorator
@inline const TILE_MIN_ROWS: i32 = 4;

/** Activation rows per chunk of the tiles: a chunk's Q8_SN rows (126 KB at n = 768) stay in L2 (8 and 32 measured the same). */
// @ts-ignore: decorator
@inline const CHUNK: i32 = 16;

/** Four x * id rounded to nearest, ties to even, as i32 (roundToInt: exact for |x * id| < 2^22, here <= 127). */
// @ts-ignore: decorator
@inline function round4(p: usize, id: v128, magic: v128): v128 {
  return roundToInt(f32x4.mul(v128.load(p), id), magic);
}

/**
 * T rows of n f32 at x as Q8_SN at out, row t at out + t * (n / 32) * 328: quantize_q8_s' blocks, bit for bit (the
 * same d, sum and values; a block whose scale or inverse is not finite goes through quantize_q8_s itself), then each
 * block's tile operands (see above).
 */
export function quantize_q8_sn(out: usize, x: usize, n: i32, T: i32): void {
  const nb = n >> 5, rs: usize = <usize> nb * Q8_SN_BYTES;
  const eight16 = i16x8.splat(8), m15 = i16x8.splat(15), eight8 = i8x16.splat(8), magic = f32x4.splat(12582912.0);
  const mag = i32x4.splat(0x7fffffff);
  for (let t = 0; t < T; t++) {
    const q = out + <usize> t * rs, pl = q + <usize> nb * Q8_S_BYTES, xr = x + (<usize> t * <usize> n << 2);
    for (let b: usize = 0; b < <usize> nb; b++) {
      const s = q + b * Q8_S_BYTES, p = xr + (b << 7), o = pl + b * PLANES;
      const amax = absmax32(p, mag), id: f32 = amax != 0 ? <f32> 127.0 / amax : 0;
      if (amax <= F32.MAX_VALUE && id <= F32.MAX_VALUE) {
        store<u16>(s, <u16> f32ToF16(amax / 127.0)); // the f16 d, read back widened (quantize_q8_s)
        store<f32>(s, f16ToF32(<u32> load<u16>(s))); // exactly, as quantize_q8_s (an f16 d past 65504 is +inf)
        const idv = f32x4.splat(id);
        const i0 = round4(p, idv, magic), i1 = round4(p + 16, idv, magic), i2 = round4(p + 32, idv, magic), i3 = round4(p + 48, idv, magic);
        const i4 = round4(p + 64, idv, magic), i5 = round4(p + 80, idv, magic), i6 = round4(p + 96, idv, magic), i7 = round4(p + 112, idv, magic);
        v128.store(s + 8, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(i0, i1), i16x8.narrow_i32x4_s(i2, i3)));
        v128.store(s + 24, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(i4, i5), i16x8.narrow_i32x4_s(i6, i7)));
        const sum = i32x4.add(i32x4.add(i32x4.add(i0, i1), i32x4.add(i2, i3)), i32x4.add(i32x4.add(i4, i5), i32x4.add(i6, i7)));
        const s2 = i32x4.add(sum, v128.shuffle<i32>(sum, sum, 2, 3, 0, 1));
        store<i32>(s + 4, i32x4.extract_lane(s2, 0) + i32x4.extract_lane(s2, 1));
      } else {
        quantize_q8_s(s, p, 32, 1); // NaN, infinities, scales whose inverse overflows: its saturating conversions
      }
      for (let h: usize = 0; h < 2; h++) {
        // in i16: a + 8 reaches 135
        const a = v128.load(s + 8 + (h << 4));
        const lo = i16x8.add(i16x8.extend_low_i8x16_s(a), eight16), hi = i16x8.add(i16x8.extend_high_i8x16_s(a), eight16);
        const ah = i8x16.narrow_i16x8_s(i16x8.shr_s(lo, 4), i16x8.shr_s(hi, 4));
        const al = i8x16.sub(i8x16.narrow_i16x8_s(v128.and(lo, m15), v128.and(hi, m15)), eight8);
        const g = o + (h << 6);
        v128.store(g, v128.shuffle<i32>(ah, ah, 0, 0, 0, 0));
        v128.store(g + 16, v128.shuffle<i32>(ah, ah, 1, 1, 1, 1));
        v128.store(g + 32, v128.shuffle<i32>(ah, ah, 2, 2, 2, 2));
        v128.store(g + 48, v128.shuffle<i32>(ah, ah, 3, 3, 3, 3));
        v128.store(g + 128, v128.shuffle<i32>(al, al, 0, 0, 0, 0));
        v128.store(g + 144, v128.shuffle<i32>(al, al, 1, 1, 1, 1));
        v128.store(g + 160, v128.shuffle<i32>(al, al, 2, 2, 2, 2));
        v128.store(g + 176, v128.shuffle<i32>(al, al, 3, 3, 3, 3));
      }
      v128.store(o + 256, i32x4.splat(-(load<i32>(s + 4) << 7)));
      v128.store(o + 272, v128.load32_splat(s));
    }
  }
}

/** A plane's next step: acc + pmaddubsw(u, x) (x's bytes signed, |x| <= 8; u's unsigned where the form is chosen). */
// @ts-ignore: decorator
@inline function step(acc: v128, x: v128, u: v128): v128 {
  return i16x8.add(acc, i16x8.relaxed_dot_i8x16_i7x16_s(x, u));
}

/** The exact block sum from the planes' i16 sums h (x16) and l and the block's -128 Σa at c: 16 h + l - 128 Σa. */
// @ts-ignore: decorator
@inline function blockSum(h: v128, l: v128, c: usize, s16: v128, one: v128): v128 {
  return i32x4.add(i32x4.add(i32x4.dot_i16x8_s(h, s16), i32x4.dot_i16x8_s(l, one)), v128.load(c, 256));
}

/**
 * Relaxed build, T >= 4: nq (1 or 2, constant) quads at p and p + qs x nr (1 or 2, constant) Q8_SN activation rows at x
 * and x + rs: each weight vector loaded and offset once for both rows, each plane vector loaded once for both quads, the
 * quads' f16 scales converted once per block. Outputs: row t's at o + t * od, the second quad's at oq bytes on. Live vectors: 8 i16 sums, 4 f32 sums, 2 weights, 2 planes, the 0x80 splat (JavaScriptCore has 16 xmm registers;
 * 2 x 2 measured best in Bun, 2026-12-05: docs/cpu-performance.md "Q8_0 in Bun: nibble activations").
 */
// @ts-ignore: decorator
@inline function tile(o: usize, od: usize, oq: usize, p: usize, qs: usize, x: usize, rs: usize, nb: i32, z: i32, nq: i32, nr: i32): void {
  // + z: one splat each, not a constant at each use (JavaScriptCore rebuilds those)
  const b80 = i8x16.splat(<i8> (0x80 + z)), k13 = i32x4.splat(8192 + z);
  const hmask = i32x4.splat(<i32> 0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const s16 = i16x8.splat(<i16> (16 + z)), one = i16x8.splat(<i16> (1 + z));
  let f00 = f32x4.splat(0), f10 = f00, f01 = f00, f11 = f00;
  const x1 = x + rs, pl = <usize> nb * Q8_S_BYTES;
  for (let b: usize = 0; b < <usize> nb; b++) {
    const po = b * QB, xo = pl + b * PLANES;
    const zero = i32x4.splat(0);
    let h00 = zero, l00 = zero, h10 = zero, l10 = zero, h01 = zero, l01 = zero, h11 = zero, l11 = zero;
    // running pointers: each load's offset is a constant (JavaScriptCore folds it into the address)
    let pw = p + po + 8, xa = x + xo;
    const pwEnd = pw + 128;
    for (; pw < pwEnd; pw += 16, xa += 16) {
      // the weights offset to unsigned, once for both rows
      const w0 = v128.xor(v128.load(pw), b80), w1 = nq > 1 ? v128.xor(v128.load(pw + qs), b80) : w0;
      let xh = v128.load(xa), xl = v128.load(xa, 128);
      h00 = step(h00, xh, w0);
      l00 = step(l00, xl, w0);
      if (nq > 1) {
        h10 = step(h10, xh, w1);
        l10 = step(l10, xl, w1);
      }
      if (nr > 1) {
        xh = v128.load(xa + rs);
        xl = v128.load(xa + rs, 128);
        h01 = step(h01, xh, w0);
        l01 = step(l01, xl, w0);
        if (nq > 1) {
          h11 = step(h11, xh, w1);
          l11 = step(l11, xl, w1);
        }
      }
    }
    const dw0 = f16quadMul(p + po, hmask, p112, k13), dw1 = nq > 1 ? f16quadMul(p + qs + po, hmask, p112, k13) : dw0;
    let da = v128.load(x + xo, 272);
    f00 = blockAdd(f00, dw0, da, blockSum(h00, l00, x + xo, s16, one));
    if (nq > 1) f10 = blockAdd(f10, dw1, da, blockSum(h10, l10, x + xo, s16, one));
    if (nr > 1) {
      da = v128.load(x1 + xo, 272);
      f01 = blockAdd(f01, dw0, da, blockSum(h01, l01, x1 + xo, s16, one));
      if (nq > 1) f11 = blockAdd(f11, dw1, da, blockSum(h11, l11, x1 + xo, s16, one));
    }
  }
  v128.store(o, f00);
  if (nq > 1) v128.store(o + oq, f10);
  if (nr > 1) {
    v128.store(o + od, f01);
    if (nq > 1) v128.store(o + od + oq, f11);
  }
}

/** Activation rows [t0, t1) of one tile column: nq (constant) quads at p, rows two at a time, an odd last one alone. */
// @ts-ignore: decorator
@inline function tileRows(o: usize, od: usize, oq: usize, p: usize, qs: usize, x: usize, rs: usize, nb: i32, z: i32, nq: i32, t0: i32, t1: i32): void {
  let t = t0;
  for (; t + 2 <= t1; t += 2) tile(o + <usize> t * od, od, oq, p, qs, x + <usize> t * rs, rs, nb, z, nq, 2);
  if (t < t1) tile(o + <usize> t * od, od, oq, p, qs, x + <usize> t * rs, rs, nb, z, nq, 1);
}

/**
 * repack_q8_0_lanes with each -128 byte of the repacked quads stored as -127 (see the file's comment: without it the
 * T < 4 pass and the tiles would read it differently). Embedding lookups take dequantize_q8_0_lanes, so they read -127 too.
 */
export function repack_q8_0_nib(w: usize, n: i32, d: i32, tmp: usize): void {
  repackQuads(w, n, d, tmp, 0, true);
}

/**
 * out[t*d + r] = W[r] . x[t] for r in [r0, r1), t < T, W in the lanes layout (repack_q8_0_nib), x in Q8_SN
 * (quantize_q8_sn). r0 and r1 fall on quad boundaries or r1 == d; rows from d & ~3 on are natural (matmul_q8_0, one
 * activation row at a time). T >= 4, relaxed build: activation rows in chunks of CHUNK, each chunk's rows going over
 * pairs of adjacent quads (weights in L1) in 2 x 2 tiles. Else (and in the plain build) matmul_q8_0_lanes' four-band
 * pass over the rows' Q8_S blocks.
 */
export function matmul_q8_0_nib(out: usize, xq: usize, w: usize, n: i32, d: i32, T: i32, r0: i32, r1: i32): void {
  const nb = n >> 5, z = <i32> (<u32> n >> 31);
  const ws: usize = <usize> nb * Q8_0_BYTES, rs: usize = <usize> nb * Q8_SN_BYTES, od: usize = <usize> d << 2;
  const e = min(r1, d & ~3);
  if (RELAXED && T >= TILE_MIN_ROWS) {
    // quad pairs from two bands (quads g and g + h): two streams through the weights, as matmul_q8_0_lanes' four
    const nq = max(0, e - r0) >> 2, h = nq >> 1;
    const qs: usize = <usize> h * (ws << 2), oq: usize = <usize> h << 4;
    for (let t = 0; t < T; t += CHUNK) {
      const t1 = min(T, t + CHUNK);
      for (let g = 0; g < h; g++) {
        const r = r0 + (g << 2);
        tileRows(out + (<usize> r << 2), od, oq, w + <usize> r * ws, qs, xq, rs, nb, z, 2, t, t1);
      }
      if (nq & 1) {
        const r = r0 + ((nq - 1) << 2);
        tileRows(out + (<usize> r << 2), od, 0, w + <usize> r * ws, 0, xq, rs, nb, z, 1, t, t1);
      }
    }
  } else {
    // matmul_q8_0_lanes' pass: four quads from four bands, each pass over every activation row while its weights are in L1
    const nq = max(0, e - r0) >> 2, q = nq >> 2;
    const bs: usize = <usize> q * (ws << 2), bo: usize = <usize> q << 4; // one band's bytes of weights and of outputs
    for (let g = 0; g < q; g++) {
      const r = r0 + (g << 2);
      const p = w + <usize> r * ws;
      for (let t = 0; t < T; t++) {
        const o = out + <usize> t * od + (<usize> r << 2);
        quads(o, o + bo, o + 2 * bo, o + 3 * bo, xq + <usize> t * rs, p, p + bs, p + 2 * bs, p + 3 * bs, nb, z, 4);
      }
    }
    for (let r = r0 + (q << 4); r + 4 <= e; r += 4) {
      const p = w + <usize> r * ws;
      for (let t = 0; t < T; t++) {
        const o = out + <usize> t * od + (<usize> r << 2);
        quads(o, o, o, o, xq + <usize> t * rs, p, p, p, p, nb, z, 1);
      }
    }
  }
  // the natural rows after the last quad, one activation row at a time (Q8_SN rows are not Q8_S's 40-byte stride)
  if (r1 > (d & ~3)) {
    for (let i = 0; i < T; i++) matmul_q8_0(out + <usize> i * od, xq + <usize> i * rs, w, n, d, 1, max(r0, d & ~3), r1);
  }
}
