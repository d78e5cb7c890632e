// AssemblyScript, compiled by bench/lanes-kquant.bench.ts --t1 (relaxed or plain SIMD): candidate T = 1 steps of
// matmul_q4_k_lanes over the same lanes weights, against the kernel as built. Not formatted by deno fmt (it drops
// @inline decorators): deno.json excludes this folder.
//   u4  four quads from four far-apart bands per pass (as today), the chunk loop written out, the first chunk pair
//       starting the i16 sums, a pair of sub-blocks' scales from one zero-extending load (two shuffles, no masks
//       built per sub-block), the first sub-block starting the i32 sums
//   u2  the same, two quads (two bands) per pass
//   u1  the same, one quad per pass (fewest live vectors: JavaScriptCore)
//   l4, l1  u4 and u1 with the chunk pairs 1..3 of a sub-block in a loop
//   c1  u1 with both sub-blocks of a pair taken together, each activation chunk loaded once for both (word shuffles
//       instead of splat loads; relaxed build only)
//   v1  u1 with the high nibbles' shift count a run-time value (JavaScriptCore materializes a constant count per shift)
//   a1  u1 with the high nibbles by four byte averages of V & 0xf0 (pavgb: one instruction in both engines)
//   d4, d1  each sub-block summed in i32 lanes by the dot-add (operands 0..15, spec-deterministic), scales by i32x4.mul
//   f4, f1, f2  the same with the high nibbles masked in place (0..240: exact only where the dot-add is u8 x s8, V8 with
//       VNNI; they give wrong sums under JavaScriptCore), the low nibbles' chain shifted by 4 before the add
//   n1, n4  (session 10) the high nibbles masked in place against nibble planes of their activations (split_q8_kxn):
//       no shift, exact pmaddubsw pairs, for JavaScriptCore (see below)
//   x1  (session 10) u1 with pre-splatted activations: plain loads at constant offsets (see below)
//   p1k, p2k, p4k  f4 with each of the four streams touched 1152, 2048 or 4096 bytes ahead (a byte load per line, whose
//       sum the function returns so that it stays): a software prefetch
// u4 became matmul_q4_k_lanes's T = 1 step, u1 matmul_q4_k_lanes_q1's (Bun) and f4 matmul_q4_k_lanes_u8's (V8 with VNNI).
export { matmul_q4_k_lanes, matmul_q4_k_lanes_q1, matmul_q4_k_lanes_u8, repack_q4_k_lanes } from "../../assembly/lanes-kquant";
export { quantize_q8_kx } from "../../assembly/quant-act";
export { read_probe } from "../../assembly/f32";
import { matmul_q4_kx } from "../../assembly/kquant-decode";
import { dot16 } from "../../assembly/quant-util";

// @ts-ignore: decorator
@inline const WB: usize = 144;
// @ts-ignore: decorator
@inline const AB: usize = 292;
// @ts-ignore: decorator
@inline const LB: usize = 576;

// @ts-ignore: decorator
@inline function f16quad(p: usize, hmask: v128, p112: v128): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, 3), hmask), p112);
}

// @ts-ignore: decorator
@inline function act(x: usize, m: usize): v128 {
  if (RELAXED) return v128.load32_splat(x + (m << 2));
  const bm = i8x16.add(i16x8.splat(0x0100), i8x16.add(i64x2.replace_lane(i64x2.splat(0), 1, 0x0808080808080808), i8x16.splat(<i8>(m << 1))));
  return i8x16.swizzle(v128.load(x), bm);
}

// @ts-ignore: decorator
@inline function minsLo(p: usize, m4: v128, m30: v128): v128 {
  return v128.or(v128.and(v128.load(p + 48), m4), v128.and(i16x8.shr_u(v128.load(p + 16), 2), m30));
}

// @ts-ignore: decorator
@inline function minsHi(p: usize, m4: v128, m30: v128): v128 {
  return v128.or(v128.and(i16x8.shr_u(v128.load(p + 48), 4), m4), v128.and(i16x8.shr_u(v128.load(p + 32), 2), m30));
}

// @ts-ignore: decorator
@inline function finish(s: v128, q: usize, P: v128, lo: v128, hi: v128, dw: v128, dm: v128): v128 {
  const ms = i32x4.add(
    i32x4.add(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), v128.shuffle<i32>(P, P, 0, 0, 0, 0)),
      i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), v128.shuffle<i32>(P, P, 1, 1, 1, 1)),
    ),
    i32x4.add(
      i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), v128.shuffle<i32>(P, P, 2, 2, 2, 2)),
      i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), v128.shuffle<i32>(P, P, 3, 3, 3, 3)),
    ),
  );
  const da = v128.load32_splat(q);
  const f = f32x4.mul(f32x4.mul(dw, da), f32x4.convert_i32x4_s(s));
  return f32x4.sub(f, f32x4.mul(f32x4.mul(dm, da), f32x4.convert_i32x4_s(ms)));
}

// @ts-ignore: decorator
@inline function pairs(q: usize): v128 {
  return i16x8.narrow_i32x4_s(i32x4.extadd_pairwise_i16x8_s(v128.load(q + 260)), i32x4.extadd_pairwise_i16x8_s(v128.load(q + 276)));
}

/** Sub-block j's i16 sums of the quad at o (its four vectors) against the activation chunk bytes at x (sub-block m). */
// @ts-ignore: decorator
@inline function sub(o: usize, x: usize, m: usize, m4: v128): v128 {
  let V = v128.load(o);
  let t = i16x8.add(dot16(v128.and(V, m4), act(x, m)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 16, m)));
  V = v128.load(o + 16);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 32, m)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 48, m))));
  V = v128.load(o + 32);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 64, m)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 80, m))));
  V = v128.load(o + 48);
  return i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 96, m)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 112, m))));
}

/** sub() with the shift count a run-time value (4 + an opaque zero): JavaScriptCore materializes a constant count per shift. */
// @ts-ignore: decorator
@inline function subV(o: usize, x: usize, m: usize, m4: v128, sh: i32): v128 {
  let V = v128.load(o);
  let t = i16x8.add(dot16(v128.and(V, m4), act(x, m)), dot16(v128.and(i16x8.shr_u(V, sh), m4), act(x + 16, m)));
  V = v128.load(o + 16);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 32, m)), dot16(v128.and(i16x8.shr_u(V, sh), m4), act(x + 48, m))));
  V = v128.load(o + 32);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 64, m)), dot16(v128.and(i16x8.shr_u(V, sh), m4), act(x + 80, m))));
  V = v128.load(o + 48);
  return i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 96, m)), dot16(v128.and(i16x8.shr_u(V, sh), m4), act(x + 112, m))));
}

/** sub() with each high nibble by byte averages: (V & 0xf0) halved four times (pavgb: one instruction in both engines). */
// @ts-ignore: decorator
@inline function hiAvg(V: v128, mf0: v128, zero: v128): v128 {
  return i8x16.avgr_u(i8x16.avgr_u(i8x16.avgr_u(i8x16.avgr_u(v128.and(V, mf0), zero), zero), zero), zero);
}
// @ts-ignore: decorator
@inline function subA(o: usize, x: usize, m: usize, m4: v128, mf0: v128, zero: v128): v128 {
  let V = v128.load(o);
  let t = i16x8.add(dot16(v128.and(V, m4), act(x, m)), dot16(hiAvg(V, mf0, zero), act(x + 16, m)));
  V = v128.load(o + 16);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 32, m)), dot16(hiAvg(V, mf0, zero), act(x + 48, m))));
  V = v128.load(o + 32);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 64, m)), dot16(hiAvg(V, mf0, zero), act(x + 80, m))));
  V = v128.load(o + 48);
  return i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 96, m)), dot16(hiAvg(V, mf0, zero), act(x + 112, m))));
}

/** sub() with the chunk pairs 1..3 in a loop (smaller code, fewer live values for the register allocator). */
// @ts-ignore: decorator
@inline function subLoop(o: usize, x: usize, m: usize, m4: v128): v128 {
  let V = v128.load(o);
  let t = i16x8.add(dot16(v128.and(V, m4), act(x, m)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(x + 16, m)));
  for (let c: usize = 1; c < 4; c++) {
    V = v128.load(o + (c << 4));
    const xc = x + (c << 5);
    t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(xc, m)), dot16(v128.and(i16x8.shr_u(V, 4), m4), act(xc + 16, m))));
  }
  return t;
}

// @ts-ignore: decorator
@inline function S(LOOP: i32, o: usize, x: usize, m: usize, m4: v128): v128 {
  if (LOOP == 2) return subV(o, x, m, m4, 4 + <i32>(i8x16.extract_lane_u(m4, 0) >> 4));
  if (LOOP == 3) return subA(o, x, m, m4, v128.not(m4), i8x16.splat(0));
  return LOOP == 1 ? subLoop(o, x, m, m4) : sub(o, x, m, m4);
}

/**
 * The pmaddwd factors of sub-blocks 2k (even: true) or 2k + 1 of the quad at p: scale bytes scalePos(j, r) =
 * 8(k & 1) + 2r + (j & 1) of the 16 at p + 16 + 16(k >> 1), zero-extended, masked to 6 bits, each row's duplicated.
 */
// @ts-ignore: decorator
@inline function scalePair(p: usize, k: usize, m63: v128): v128 {
  return v128.and(v128.load8x8_u(p + 16 + ((k >> 1) << 4) + ((k & 1) << 3)), m63);
}
// @ts-ignore: decorator
@inline function evenOf(L: v128): v128 {
  return v128.shuffle<i16>(L, L, 0, 0, 2, 2, 4, 4, 6, 6);
}
// @ts-ignore: decorator
@inline function oddOf(L: v128): v128 {
  return v128.shuffle<i16>(L, L, 1, 1, 3, 3, 5, 5, 7, 7);
}

/** One superblock's integer sums Σ sc * q * a of QN quads (p, p + qs, ...) against the activation block q. */
// @ts-ignore: decorator
@inline function bandU(out: usize, oqs: usize, q: usize, p: usize, nb: i32, qs: usize, z: i32, QN: i32, LOOP: i32): void {
  const m4 = i8x16.splat(<i8>(15 + z)), m63 = i8x16.splat(<i8>(63 + z)), m30 = i8x16.splat(<i8>(0x30 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let k: usize = 0; k < 4; k++) {
      // sub-blocks 2k and 2k + 1: half k >> 1, sub-block words m = 2(k & 1), 2(k & 1) + 1
      const x = q + 4 + ((k >> 1) << 7), m = (k & 1) << 1;
      const o = p + 64 + (k << 7);
      let L = scalePair(p, k, m63);
      s0 = i32x4.add(s0, i32x4.add(i32x4.dot_i16x8_s(S(LOOP, o, x, m, m4), evenOf(L)), i32x4.dot_i16x8_s(S(LOOP, o + 64, x, m + 1, m4), oddOf(L))));
      if (QN > 1) {
        L = scalePair(p + qs, k, m63);
        s1 = i32x4.add(s1, i32x4.add(i32x4.dot_i16x8_s(S(LOOP, o + qs, x, m, m4), evenOf(L)), i32x4.dot_i16x8_s(S(LOOP, o + qs + 64, x, m + 1, m4), oddOf(L))));
      }
      if (QN > 2) {
        L = scalePair(p + 2 * qs, k, m63);
        s2 = i32x4.add(s2, i32x4.add(i32x4.dot_i16x8_s(S(LOOP, o + 2 * qs, x, m, m4), evenOf(L)), i32x4.dot_i16x8_s(S(LOOP, o + 2 * qs + 64, x, m + 1, m4), oddOf(L))));
        L = scalePair(p + 3 * qs, k, m63);
        s3 = i32x4.add(s3, i32x4.add(i32x4.dot_i16x8_s(S(LOOP, o + 3 * qs, x, m, m4), evenOf(L)), i32x4.dot_i16x8_s(S(LOOP, o + 3 * qs + 64, x, m + 1, m4), oddOf(L))));
      }
    }
    const P = pairs(q);
    a0 = f32x4.add(a0, finish(s0, q, P, minsLo(p, m4, m30), minsHi(p, m4, m30), f16quad(p, hmask, p112), f16quad(p + 8, hmask, p112)));
    if (QN > 1) {
      const p1 = p + qs;
      a1 = f32x4.add(a1, finish(s1, q, P, minsLo(p1, m4, m30), minsHi(p1, m4, m30), f16quad(p1, hmask, p112), f16quad(p1 + 8, hmask, p112)));
    }
    if (QN > 2) {
      const p2 = p + 2 * qs, p3 = p + 3 * qs;
      a2 = f32x4.add(a2, finish(s2, q, P, minsLo(p2, m4, m30), minsHi(p2, m4, m30), f16quad(p2, hmask, p112), f16quad(p2 + 8, hmask, p112)));
      a3 = f32x4.add(a3, finish(s3, q, P, minsLo(p3, m4, m30), minsHi(p3, m4, m30), f16quad(p3, hmask, p112), f16quad(p3 + 8, hmask, p112)));
    }
    p += LB;
    q += AB;
  }
  v128.store(out, a0);
  if (QN > 1) v128.store(out + oqs, a1);
  if (QN > 2) {
    v128.store(out + 2 * oqs, a2);
    v128.store(out + 3 * oqs, a3);
  }
}

// @ts-ignore: decorator
@inline function run(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32, QN: i32, LOOP: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3, e = min(r1, d4);
  let r = r0;
  if (QN > 1) {
    // QN quads from QN far-apart bands of the range per pass
    const qn = (e - r0) / (4 * QN), qo: usize = <usize>qn << 4;
    for (let g = 0; g < qn; g++) {
      const rr = r0 + 4 * g;
      if (QN == 4) bandU(out + (<usize>rr << 2), qo, xq, w + <usize>rr * ws, nb, (qo >> 2) * ws, z, 4, LOOP);
      else bandU(out + (<usize>rr << 2), qo, xq, w + <usize>rr * ws, nb, (qo >> 2) * ws, z, 2, LOOP);
    }
    r = r0 + 4 * QN * qn;
  }
  for (; r + 4 <= e; r += 4) bandU(out + (<usize>r << 2), 16, xq, w + <usize>r * ws, nb, ws << 2, z, 1, LOOP);
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, 1, max(r0, d4), r1);
}

export function u4(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { run(out, xq, w, n, d, r0, r1, 4, 0); }
export function u2(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { run(out, xq, w, n, d, r0, r1, 2, 0); }
export function u1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { run(out, xq, w, n, d, r0, r1, 1, 0); }
export function l4(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { run(out, xq, w, n, d, r0, r1, 4, 1); }
export function v1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { run(out, xq, w, n, d, r0, r1, 1, 2); }
export function a1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { run(out, xq, w, n, d, r0, r1, 1, 3); }
export function l1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { run(out, xq, w, n, d, r0, r1, 1, 1); }

/** Word w (0..3) of the chunk C in every lane. */
// @ts-ignore: decorator
@inline function word(C: v128, w: usize): v128 {
  return w == 0 ? v128.shuffle<i32>(C, C, 0, 0, 0, 0) : w == 1 ? v128.shuffle<i32>(C, C, 1, 1, 1, 1) : w == 2 ? v128.shuffle<i32>(C, C, 2, 2, 2, 2) : v128.shuffle<i32>(C, C, 3, 3, 3, 3);
}

/** Sub-blocks 2k, 2k + 1 of one quad together: each activation chunk loaded once for both (two shuffles), relaxed only. */
// @ts-ignore: decorator
@inline function pairC(p: usize, o: usize, k: usize, x: usize, m4: v128, m63: v128): v128 {
  let te = i16x8.splat(0), to = te;
  for (let c: usize = 0; c < 4; c++) {
    const C0 = v128.load(x + (c << 5)), C1 = v128.load(x + (c << 5) + 16);
    const Ve = v128.load(o + (c << 4)), Vo = v128.load(o + 64 + (c << 4));
    const ae = (k & 1) << 1;
    const e = i16x8.add(dot16(v128.and(Ve, m4), word(C0, ae)), dot16(v128.and(i16x8.shr_u(Ve, 4), m4), word(C1, ae)));
    const od = i16x8.add(dot16(v128.and(Vo, m4), word(C0, ae + 1)), dot16(v128.and(i16x8.shr_u(Vo, 4), m4), word(C1, ae + 1)));
    te = c == 0 ? e : i16x8.add(te, e);
    to = c == 0 ? od : i16x8.add(to, od);
  }
  const L = scalePair(p, k, m63);
  return i32x4.add(i32x4.dot_i16x8_s(te, evenOf(L)), i32x4.dot_i16x8_s(to, oddOf(L)));
}

export function c1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3, e = min(r1, d4);
  const m4 = i8x16.splat(<i8>(15 + z)), m63 = i8x16.splat(<i8>(63 + z)), m30 = i8x16.splat(<i8>(0x30 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  for (let r = r0; r + 4 <= e; r += 4) {
    let p = w + <usize>r * ws, q = xq;
    let a0 = f32x4.splat(0);
    for (let b = 0; b < nb; b++) {
      let s0 = pairC(p, p + 64, 0, q + 4, m4, m63);
      s0 = i32x4.add(s0, pairC(p, p + 64 + 128, 1, q + 4, m4, m63));
      s0 = i32x4.add(s0, pairC(p, p + 64 + 256, 2, q + 4 + 128, m4, m63));
      s0 = i32x4.add(s0, pairC(p, p + 64 + 384, 3, q + 4 + 128, m4, m63));
      a0 = f32x4.add(a0, finish(s0, q, pairs(q), minsLo(p, m4, m30), minsHi(p, m4, m30), f16quad(p, hmask, p112), f16quad(p + 8, hmask, p112)));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), a0);
  }
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, 1, max(r0, d4), r1);
}

// ---- dot-add candidates (relaxed only): each sub-block summed in i32 lanes by i32x4.relaxed_dot_i8x16_i7x16_add_s
// (one vpdpbusd in V8 on a VNNI CPU; pmaddubsw + pmaddwd + add under JavaScriptCore), its scale applied by i32x4.mul.
//   d4  nibbles unpacked as today (0..15: the dot-add's spec-deterministic operand range), two chains a sub-block
//   f4  high nibbles masked in place (16 x 0..15 = 0..240: exact only where the dot-add is u8 x s8, V8 with VNNI;
//       needs the run-time check), the low ones' chain shifted by 4 before the add; the result / 16 at the end

/** The dot-add (relaxed only: the d and f candidates trap in the plain build, which has none). */
// @ts-ignore: decorator
@inline function dadd(a: v128, b: v128, c: v128): v128 {
  if (RELAXED) return i32x4.relaxed_dot_i8x16_i7x16_add_s(a, b, c);
  unreachable();
  return c;
}

/** Sub-block's i32 sums of the quad at o (four vectors) against activation chunks at x (word m): D: exact (0..15 operands), else 16x. */
// @ts-ignore: decorator
@inline function subD(o: usize, x: usize, m: usize, m4: v128, mF0: v128, F: bool): v128 {
  // written out (a loop here stays a loop in the module: V8 ran it at 0.56-0.73x)
  let V = v128.load(o);
  let ta = dadd(act(x, m), v128.and(V, m4), i32x4.splat(0));
  let tb = dadd(act(x + 16, m), F ? v128.and(V, mF0) : v128.and(i16x8.shr_u(V, 4), m4), i32x4.splat(0));
  V = v128.load(o + 16);
  ta = dadd(act(x + 32, m), v128.and(V, m4), ta);
  tb = dadd(act(x + 48, m), F ? v128.and(V, mF0) : v128.and(i16x8.shr_u(V, 4), m4), tb);
  V = v128.load(o + 32);
  ta = dadd(act(x + 64, m), v128.and(V, m4), ta);
  tb = dadd(act(x + 80, m), F ? v128.and(V, mF0) : v128.and(i16x8.shr_u(V, 4), m4), tb);
  V = v128.load(o + 48);
  ta = dadd(act(x + 96, m), v128.and(V, m4), ta);
  tb = dadd(act(x + 112, m), F ? v128.and(V, mF0) : v128.and(i16x8.shr_u(V, 4), m4), tb);
  return F ? i32x4.add(i32x4.shl(ta, 4), tb) : i32x4.add(ta, tb);
}

/** Sub-blocks 2k, 2k + 1 of the quad at p (vectors from o), times their scales (i32 multiplies). */
// @ts-ignore: decorator
@inline function pairD(p: usize, o: usize, k: usize, x: usize, m: usize, m4: v128, mF0: v128, m3f: v128, F: bool): v128 {
  const L = v128.load8x8_u(p + 16 + ((k >> 1) << 4) + ((k & 1) << 3));
  const se = v128.and(L, m3f), so = v128.and(i32x4.shr_u(L, 16), m3f);
  return i32x4.add(i32x4.mul(subD(o, x, m, m4, mF0, F), se), i32x4.mul(subD(o + 64, x, m + 1, m4, mF0, F), so));
}

// @ts-ignore: decorator
@inline function bandD(out: usize, oqs: usize, q: usize, p: usize, nb: i32, qs: usize, z: i32, QN: i32, F: bool): void {
  const m4 = i8x16.splat(<i8>(15 + z)), m30 = i8x16.splat(<i8>(0x30 + z)), mF0 = i8x16.splat(<i8>(0xF0 + z));
  const m3f = i32x4.splat(63 + z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let k: usize = 0; k < 4; k++) {
      const x = q + 4 + ((k >> 1) << 7), m = (k & 1) << 1;
      const o = p + 64 + (k << 7);
      s0 = i32x4.add(s0, pairD(p, o, k, x, m, m4, mF0, m3f, F));
      if (QN > 1) s1 = i32x4.add(s1, pairD(p + qs, o + qs, k, x, m, m4, mF0, m3f, F));
      if (QN > 2) {
        s2 = i32x4.add(s2, pairD(p + 2 * qs, o + 2 * qs, k, x, m, m4, mF0, m3f, F));
        s3 = i32x4.add(s3, pairD(p + 3 * qs, o + 3 * qs, k, x, m, m4, mF0, m3f, F));
      }
    }
    if (F) {
      s0 = i32x4.shr_s(s0, 4);
      s1 = i32x4.shr_s(s1, 4);
      s2 = i32x4.shr_s(s2, 4);
      s3 = i32x4.shr_s(s3, 4);
    }
    const P = pairs(q);
    a0 = f32x4.add(a0, finish(s0, q, P, minsLo(p, m4, m30), minsHi(p, m4, m30), f16quad(p, hmask, p112), f16quad(p + 8, hmask, p112)));
    if (QN > 1) {
      const p1 = p + qs;
      a1 = f32x4.add(a1, finish(s1, q, P, minsLo(p1, m4, m30), minsHi(p1, m4, m30), f16quad(p1, hmask, p112), f16quad(p1 + 8, hmask, p112)));
    }
    if (QN > 2) {
      const p2 = p + 2 * qs, p3 = p + 3 * qs;
      a2 = f32x4.add(a2, finish(s2, q, P, minsLo(p2, m4, m30), minsHi(p2, m4, m30), f16quad(p2, hmask, p112), f16quad(p2 + 8, hmask, p112)));
      a3 = f32x4.add(a3, finish(s3, q, P, minsLo(p3, m4, m30), minsHi(p3, m4, m30), f16quad(p3, hmask, p112), f16quad(p3 + 8, hmask, p112)));
    }
    p += LB;
    q += AB;
  }
  v128.store(out, a0);
  if (QN > 1) v128.store(out + oqs, a1);
  if (QN > 2) {
    v128.store(out + 2 * oqs, a2);
    v128.store(out + 3 * oqs, a3);
  }
}

// @ts-ignore: decorator
@inline function runD(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32, QN: i32, F: bool): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3, e = min(r1, d4);
  let r = r0;
  if (QN > 1) {
    const qn = (e - r0) / (4 * QN), qo: usize = <usize>qn << 4;
    for (let g = 0; g < qn; g++) {
      const rr = r0 + 4 * g;
      if (QN == 4) bandD(out + (<usize>rr << 2), qo, xq, w + <usize>rr * ws, nb, (qo >> 2) * ws, z, 4, F);
      else bandD(out + (<usize>rr << 2), qo, xq, w + <usize>rr * ws, nb, (qo >> 2) * ws, z, 2, F);
    }
    r = r0 + 4 * QN * qn;
  }
  for (; r + 4 <= e; r += 4) bandD(out + (<usize>r << 2), 16, xq, w + <usize>r * ws, nb, ws << 2, z, 1, F);
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, 1, max(r0, d4), r1);
}

export function d4(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { runD(out, xq, w, n, d, r0, r1, 4, 0); }
export function d1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { runD(out, xq, w, n, d, r0, r1, 1, 0); }
export function f4(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { runD(out, xq, w, n, d, r0, r1, 4, 1); }
export function f1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { runD(out, xq, w, n, d, r0, r1, 1, 1); }
export function f2(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { runD(out, xq, w, n, d, r0, r1, 2, true); }

// ---- p*: f4 with each stream touched DIST bytes ahead (one byte load per 64-byte line): a software prefetch
// @ts-ignore: decorator
@inline function bandP(out: usize, oqs: usize, q: usize, p: usize, nb: i32, qs: usize, z: i32, QN: i32, F: bool, DIST: usize): u32 {
  let touch: u32 = 0;
  const m4 = i8x16.splat(<i8>(15 + z)), m30 = i8x16.splat(<i8>(0x30 + z)), mF0 = i8x16.splat(<i8>(0xF0 + z));
  const m3f = i32x4.splat(63 + z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  for (let b = 0; b < nb; b++) {
    // touch each 64-byte line DIST bytes ahead in each stream (a load the result of which is returned, so kept)
    for (let l: usize = 0; l < LB; l += 64) {
      touch += load<u8>(p + DIST + l);
      if (QN > 1) touch += load<u8>(p + qs + DIST + l);
      if (QN > 2) touch += load<u8>(p + 2 * qs + DIST + l) + load<u8>(p + 3 * qs + DIST + l);
    }
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let k: usize = 0; k < 4; k++) {
      const x = q + 4 + ((k >> 1) << 7), m = (k & 1) << 1;
      const o = p + 64 + (k << 7);
      s0 = i32x4.add(s0, pairD(p, o, k, x, m, m4, mF0, m3f, F));
      if (QN > 1) s1 = i32x4.add(s1, pairD(p + qs, o + qs, k, x, m, m4, mF0, m3f, F));
      if (QN > 2) {
        s2 = i32x4.add(s2, pairD(p + 2 * qs, o + 2 * qs, k, x, m, m4, mF0, m3f, F));
        s3 = i32x4.add(s3, pairD(p + 3 * qs, o + 3 * qs, k, x, m, m4, mF0, m3f, F));
      }
    }
    if (F) {
      s0 = i32x4.shr_s(s0, 4);
      s1 = i32x4.shr_s(s1, 4);
      s2 = i32x4.shr_s(s2, 4);
      s3 = i32x4.shr_s(s3, 4);
    }
    const P = pairs(q);
    a0 = f32x4.add(a0, finish(s0, q, P, minsLo(p, m4, m30), minsHi(p, m4, m30), f16quad(p, hmask, p112), f16quad(p + 8, hmask, p112)));
    if (QN > 1) {
      const p1 = p + qs;
      a1 = f32x4.add(a1, finish(s1, q, P, minsLo(p1, m4, m30), minsHi(p1, m4, m30), f16quad(p1, hmask, p112), f16quad(p1 + 8, hmask, p112)));
    }
    if (QN > 2) {
      const p2 = p + 2 * qs, p3 = p + 3 * qs;
      a2 = f32x4.add(a2, finish(s2, q, P, minsLo(p2, m4, m30), minsHi(p2, m4, m30), f16quad(p2, hmask, p112), f16quad(p2 + 8, hmask, p112)));
      a3 = f32x4.add(a3, finish(s3, q, P, minsLo(p3, m4, m30), minsHi(p3, m4, m30), f16quad(p3, hmask, p112), f16quad(p3 + 8, hmask, p112)));
    }
    p += LB;
    q += AB;
  }
  v128.store(out, a0);
  if (QN > 1) v128.store(out + oqs, a1);
  if (QN > 2) {
    v128.store(out + 2 * oqs, a2);
    v128.store(out + 3 * oqs, a3);
  }
  return touch;
}

// @ts-ignore: decorator
@inline function runP(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32, DIST: usize): u32 {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB;
  const d4 = d & ~3, e = min(r1, d4);
  let touch: u32 = 0;
  const qn = (e - r0) / 16, qo: usize = <usize>qn << 4;
  for (let g = 0; g < qn; g++) {
    const rr = r0 + 4 * g;
    touch += bandP(out + (<usize>rr << 2), qo, xq, w + <usize>rr * ws, nb, (qo >> 2) * ws, z, 4, true, DIST);
  }
  for (let r = r0 + 16 * qn; r + 4 <= e; r += 4) bandD(out + (<usize>r << 2), 16, xq, w + <usize>r * ws, nb, ws << 2, z, 1, true);
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, 1, max(r0, d4), r1);
  return touch;
}
export function p2k(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): u32 { return runP(out, xq, w, n, d, r0, r1, 2048); }
export function p4k(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): u32 { return runP(out, xq, w, n, d, r0, r1, 4096); }
export function p1k(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): u32 { return runP(out, xq, w, n, d, r0, r1, 1152); }

// ---- n1, n4 (session 10, for JavaScriptCore): the high nibbles masked in place (h = V & 0xf0, 16 x 0..15) against
// "nibble planes" of the activation bytes they pair with (a = 16 ah + al, |ah|, |al| <= 8: Q8_0's Bun form's split), so
// that pmaddubsw's pairs stay exact (2 x 240 x 8) and no shift is needed (JavaScriptCore lowers each constant vector
// shift to four instructions). 16 Σ q a = 16 (Σ lo a + Σ h ah) + Σ h al per sub-block: t = Σ lo a + Σ h ah (|t| <=
// 4 x 2 x 15 x 128 + 4 x 2 x 240 x 8 = 30720, fits i16) and u = Σ h al, widened by pmaddwd with 16 sc and sc; the
// superblock's 16 isum shifted right by 4 before finish (as f4). Needs the i16 dot to read its weight operand unsigned
// (byteDotReadsUnsigned: V8 and JavaScriptCore on x86). The planes (split_q8_kxn) lie after the row's nb KX blocks:
// per superblock 1024 bytes, half H at 512 H, the half's odd chunk i (bytes 16 + 32 i: what vector i's high nibbles
// pair with) at 128 i, sub-block word m at 32 m: ah's four bytes four times, then al's.

/**
 * The candidates' extra activation data after the KX row at xq (nb = n / 256 blocks): the nibble planes (n1, n4), then
 * the pre-splatted row (x1). Scalar: a bench's helper.
 */
export function split_q8_kxn(xq: usize, n: i32): void {
  const nb = n >> 8;
  splat_q8_kx(xq, n);
  const P = xq + <usize>nb * AB;
  for (let b = 0; b < nb; b++) {
    for (let H: usize = 0; H < 2; H++) {
      for (let i: usize = 0; i < 4; i++) {
        for (let m: usize = 0; m < 4; m++) {
          const src = xq + <usize>b * AB + 4 + (H << 7) + 16 + (i << 5) + (m << 2);
          const dst = P + (<usize>b << 10) + (H << 9) + (i << 7) + (m << 5);
          for (let k: usize = 0; k < 4; k++) {
            const a = <i32>load<i8>(src + k);
            const ah = (a + 8) >> 4, al = a - (ah << 4);
            for (let rep: usize = 0; rep < 16; rep += 4) {
              store<i8>(dst + rep + k, <i8>ah);
              store<i8>(dst + 16 + rep + k, <i8>al);
            }
          }
        }
      }
    }
  }
}

/**
 * Sub-block word m (half plane pl) of the quad's four vectors at o, widened: pmaddwd of t by e16 (16 x the scales) plus
 * of u by e (the scales), row r in lane r.
 */
// @ts-ignore: decorator
@inline function subN(o: usize, x: usize, m: usize, pl: usize, m4: v128, mf0: v128, e16: v128, e: v128): v128 {
  const pm = pl + (m << 5);
  let V = v128.load(o);
  let h = v128.and(V, mf0);
  let t = i16x8.add(dot16(v128.and(V, m4), act(x, m)), dot16(h, v128.load(pm)));
  let u = dot16(h, v128.load(pm + 16));
  V = v128.load(o + 16);
  h = v128.and(V, mf0);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 32, m)), dot16(h, v128.load(pm + 128))));
  u = i16x8.add(u, dot16(h, v128.load(pm + 144)));
  V = v128.load(o + 32);
  h = v128.and(V, mf0);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 64, m)), dot16(h, v128.load(pm + 256))));
  u = i16x8.add(u, dot16(h, v128.load(pm + 272)));
  V = v128.load(o + 48);
  h = v128.and(V, mf0);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), act(x + 96, m)), dot16(h, v128.load(pm + 384))));
  u = i16x8.add(u, dot16(h, v128.load(pm + 400)));
  return i32x4.add(i32x4.dot_i16x8_s(t, e16), i32x4.dot_i16x8_s(u, e));
}

/** Sub-blocks 2k, 2k + 1 of the quad at p: 16 x their scaled sums, row r in lane r. */
// @ts-ignore: decorator
@inline function pairN(p: usize, o: usize, k: usize, x: usize, m: usize, pl: usize, m4: v128, mf0: v128, m63: v128, k16: v128): v128 {
  const L = v128.and(v128.load8x8_u(p + 16 + ((k >> 1) << 4) + ((k & 1) << 3)), m63);
  const e = i8x16.relaxed_swizzle(L, i8x16(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13));
  const od = i8x16.relaxed_swizzle(L, i8x16(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15));
  return i32x4.add(subN(o, x, m, pl, m4, mf0, i16x8.mul(e, k16), e), subN(o + 64, x, m + 1, pl, m4, mf0, i16x8.mul(od, k16), od));
}

// @ts-ignore: decorator
@inline function bandN(out: usize, oqs: usize, q: usize, pl0: usize, p: usize, nb: i32, qs: usize, z: i32, QN: i32): void {
  const m4 = i8x16.splat(<i8>(15 + z)), m30 = i8x16.splat(<i8>(0x30 + z)), mf0 = i8x16.splat(<i8>(0xF0 + z));
  const m63 = i8x16.splat(<i8>(63 + z)), k16 = i16x8.splat(<i16>(16 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  let pl = pl0;
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let k: usize = 0; k < 4; k++) {
      const x = q + 4 + ((k >> 1) << 7), m = (k & 1) << 1, ph = pl + ((k >> 1) << 9);
      const o = p + 64 + (k << 7);
      s0 = i32x4.add(s0, pairN(p, o, k, x, m, ph, m4, mf0, m63, k16));
      if (QN > 1) s1 = i32x4.add(s1, pairN(p + qs, o + qs, k, x, m, ph, m4, mf0, m63, k16));
      if (QN > 2) {
        s2 = i32x4.add(s2, pairN(p + 2 * qs, o + 2 * qs, k, x, m, ph, m4, mf0, m63, k16));
        s3 = i32x4.add(s3, pairN(p + 3 * qs, o + 3 * qs, k, x, m, ph, m4, mf0, m63, k16));
      }
    }
    const P = pairs(q);
    a0 = f32x4.add(a0, finish(i32x4.shr_s(s0, 4), q, P, minsLo(p, m4, m30), minsHi(p, m4, m30), f16quad(p, hmask, p112), f16quad(p + 8, hmask, p112)));
    if (QN > 1) {
      const p1 = p + qs;
      a1 = f32x4.add(a1, finish(i32x4.shr_s(s1, 4), q, P, minsLo(p1, m4, m30), minsHi(p1, m4, m30), f16quad(p1, hmask, p112), f16quad(p1 + 8, hmask, p112)));
    }
    if (QN > 2) {
      const p2 = p + 2 * qs, p3 = p + 3 * qs;
      a2 = f32x4.add(a2, finish(i32x4.shr_s(s2, 4), q, P, minsLo(p2, m4, m30), minsHi(p2, m4, m30), f16quad(p2, hmask, p112), f16quad(p2 + 8, hmask, p112)));
      a3 = f32x4.add(a3, finish(i32x4.shr_s(s3, 4), q, P, minsLo(p3, m4, m30), minsHi(p3, m4, m30), f16quad(p3, hmask, p112), f16quad(p3 + 8, hmask, p112)));
    }
    p += LB;
    q += AB;
    pl += 1024;
  }
  v128.store(out, a0);
  if (QN > 1) v128.store(out + oqs, a1);
  if (QN > 2) {
    v128.store(out + 2 * oqs, a2);
    v128.store(out + 3 * oqs, a3);
  }
}

// @ts-ignore: decorator
@inline function runN(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32, QN: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB, pl = xq + <usize>nb * AB;
  const d4 = d & ~3, e = min(r1, d4);
  let r = r0;
  if (QN > 1) {
    const qn = (e - r0) / 16, qo: usize = <usize>qn << 4;
    for (let g = 0; g < qn; g++) {
      const rr = r0 + 4 * g;
      bandN(out + (<usize>rr << 2), qo, xq, pl, w + <usize>rr * ws, nb, (qo >> 2) * ws, z, 4);
    }
    r = r0 + 16 * qn;
  }
  for (; r + 4 <= e; r += 4) bandN(out + (<usize>r << 2), 16, xq, pl, w + <usize>r * ws, nb, ws << 2, z, 1);
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, 1, max(r0, d4), r1);
}
export function n1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { runN(out, xq, w, n, d, r0, r1, 1); }
export function n4(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void { runN(out, xq, w, n, d, r0, r1, 4); }

// ---- x1 (session 10, for JavaScriptCore): u1 with the activation's 4-byte words pre-splatted (splat_q8_kx), so that each
// act() is one plain 16-byte load at a constant offset. JavaScriptCore's Air for u1's step (BUN_JSC_dumpOMGDisassembly)
// spends three instructions on each v128.load32_splat at a computed address (two adds, the broadcast load) where a
// v128.load's constant offset folds into its address: 16.5 instructions a weight vector, of which 6 for the two splats.
// Layout after the planes (nb * 1024 bytes on): per superblock 1024 bytes, half H at 512 H, chunk c at 64 c, word m at
// 16 m.

/** The pre-splatted KX row (x1's activations), after the planes. */
function splat_q8_kx(xq: usize, n: i32): void {
  const nb = n >> 8;
  const S = xq + <usize>nb * AB + (<usize>nb << 10);
  for (let b = 0; b < nb; b++) {
    for (let H: usize = 0; H < 2; H++) {
      for (let c: usize = 0; c < 8; c++) {
        for (let m: usize = 0; m < 4; m++) {
          v128.store(S + (<usize>b << 10) + (H << 9) + (c << 6) + (m << 4), v128.load32_splat(xq + <usize>b * AB + 4 + (H << 7) + (c << 4) + (m << 2)));
        }
      }
    }
  }
}

/** sub() against the pre-splatted words at sx (sub-block word m's chunks at sx + 64 c). */
// @ts-ignore: decorator
@inline function subX(o: usize, sx: usize, m4: v128): v128 {
  let V = v128.load(o);
  let t = i16x8.add(dot16(v128.and(V, m4), v128.load(sx)), dot16(v128.and(i16x8.shr_u(V, 4), m4), v128.load(sx, 64)));
  V = v128.load(o + 16);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), v128.load(sx, 128)), dot16(v128.and(i16x8.shr_u(V, 4), m4), v128.load(sx, 192))));
  V = v128.load(o + 32);
  t = i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), v128.load(sx, 256)), dot16(v128.and(i16x8.shr_u(V, 4), m4), v128.load(sx, 320))));
  V = v128.load(o + 48);
  return i16x8.add(t, i16x8.add(dot16(v128.and(V, m4), v128.load(sx, 384)), dot16(v128.and(i16x8.shr_u(V, 4), m4), v128.load(sx, 448))));
}

// @ts-ignore: decorator
@inline function bandX(out: usize, q: usize, sx0: usize, p: usize, nb: i32, z: i32): void {
  const m4 = i8x16.splat(<i8>(15 + z)), m30 = i8x16.splat(<i8>(0x30 + z)), m63 = i8x16.splat(<i8>(63 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let a0 = f32x4.splat(0);
  let sx = sx0;
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0);
    for (let k: usize = 0; k < 4; k++) {
      // sub-blocks 2k, 2k + 1: half k >> 1, words 2(k & 1) and 2(k & 1) + 1
      const L = v128.and(v128.load8x8_u(p + 16 + ((k >> 1) << 4) + ((k & 1) << 3)), m63);
      const e = i8x16.relaxed_swizzle(L, i8x16(0, 1, 0, 1, 4, 5, 4, 5, 8, 9, 8, 9, 12, 13, 12, 13));
      const od = i8x16.relaxed_swizzle(L, i8x16(2, 3, 2, 3, 6, 7, 6, 7, 10, 11, 10, 11, 14, 15, 14, 15));
      const h = sx + ((k >> 1) << 9) + ((k & 1) << 5), o = p + 64 + (k << 7);
      s0 = i32x4.add(s0, i32x4.add(i32x4.dot_i16x8_s(subX(o, h, m4), e), i32x4.dot_i16x8_s(subX(o + 64, h + 16, m4), od)));
    }
    a0 = f32x4.add(a0, finish(s0, q, pairs(q), minsLo(p, m4, m30), minsHi(p, m4, m30), f16quad(p, hmask, p112), f16quad(p + 8, hmask, p112)));
    p += LB;
    q += AB;
    sx += 1024;
  }
  v128.store(out, a0);
}

export function x1(out: usize, xq: usize, w: usize, n: i32, d: i32, r0: i32, r1: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const ws: usize = <usize>nb * WB, sx = xq + <usize>nb * AB + (<usize>nb << 10);
  const d4 = d & ~3, e = min(r1, d4);
  for (let r = r0; r + 4 <= e; r += 4) bandX(out + (<usize>r << 2), xq, sx, w + <usize>r * ws, nb, z);
  if (r1 > d4) matmul_q4_kx(out, xq, w, n, d, 1, max(r0, d4), r1);
}
