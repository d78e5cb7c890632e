// AssemblyScript, compiled by bench/lanes-q6_k.bench.ts --t1 (relaxed or plain SIMD): candidate T = 1 steps over
// the Q6_K lanes layout (assembly/lanes-q6_k.ts) against matmul_q6_k_lanes as built, in one small module.
// Every candidate takes (out, xq, w, n, d) for the whole weight (d a multiple of 16), one activation row.
// Not formatted by deno fmt (it drops @inline decorators): deno.json excludes this folder.
export { matmul_q6_k_lanes, matmul_q6_k_lanes_q1, repack_q6_k_lanes } from "../../assembly/lanes-q6_k";
export { quantize_q8_kx } from "../../assembly/quant-act";
export { read_probe } from "../../assembly/f32";
import { dot16 } from "../../assembly/quant-util";

// @ts-ignore: decorator
@inline const WB: usize = 210;
// @ts-ignore: decorator
@inline const AB: usize = 292;
// @ts-ignore: decorator
@inline const LB: usize = 840;
// @ts-ignore: decorator
@inline const DW: usize = 832;

// @ts-ignore: decorator
@inline function f16quad(p: usize, hmask: v128, p112: v128): v128 {
  const h = i32x4.shl(i32x4.extend_low_i16x8_u(v128.load64_zero(p)), 16);
  return f32x4.mul(v128.and(i32x4.shr_s(h, 3), hmask), p112);
}

// @ts-ignore: decorator
@inline function bcastMask(m: usize): v128 {
  return i8x16.add(i16x8.splat(0x0100), i8x16.add(i64x2.replace_lane(i64x2.splat(0), 1, 0x0808080808080808), i8x16.splat(<i8>(m << 1))));
}

// the activation bytes of sub-block word m of the chunk at x, in every row's place
// @ts-ignore: decorator
@inline function act(x: usize, m: usize, bm: v128): v128 {
  return RELAXED ? v128.load32_splat(x + (m << 2)) : i8x16.swizzle(v128.load(x), bm);
}

/** One packed quad of chunks at v against the activation chunks at x (sub-block word m): i32 sums, row r in lane r. */
// @ts-ignore: decorator
@inline function quadAt(v: usize, x: usize, m: usize, bm: v128, S: v128, m63: v128): v128 {
  const A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
  let t = i16x8.shr_u(v128.andnot(C, m63), 2);
  t = i16x8.shr_u(v128.or(t, v128.andnot(B, m63)), 2);
  const w3 = i16x8.shr_u(v128.or(t, v128.andnot(A, m63)), 2);
  const t0 = i16x8.add(dot16(v128.and(A, m63), act(x, m, bm)), dot16(v128.and(B, m63), act(x + 16, m, bm)));
  const t1 = i16x8.add(dot16(v128.and(C, m63), act(x + 32, m, bm)), dot16(w3, act(x + 48, m, bm)));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

/** Sub-block word sw of one quad (p: its lanes block; x: the activation's chunks of the word's half; bq: its bsum pair). */
// @ts-ignore: decorator
@inline function word(s: v128, p: usize, sw: usize, x: usize, m: usize, bm: v128, m63: v128): v128 {
  const S = v128.load8x8_s(p + (sw << 3));
  const v = p + 64 + sw * 96;
  return i32x4.add(s, i32x4.add(quadAt(v, x, m, bm, S, m63), quadAt(v + 48, x + 64, m, bm, S, m63)));
}

/**
 * q1w: one quad per pass, the quads in memory order (one sequential stream), every activation splat loaded where it
 * is used (few live vectors: JavaScriptCore spilled the four-quad step's), the eight sub-block words written out,
 * the -32 offset summed apart and shifted once per superblock.
 */
export function q1w(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const bm0 = bcastMask(0), bm1 = bcastMask(1), bm2 = bcastMask(2), bm3 = bcastMask(3);
  let p = w;
  for (let r = 0; r < d; r += 4) {
    let acc = f32x4.splat(0);
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s = i32x4.splat(0);
      const x0 = q + 4, x1 = q + 132;
      s = word(s, p, 0, x0, 0, bm0, m63);
      s = word(s, p, 1, x0, 1, bm1, m63);
      s = word(s, p, 2, x0, 2, bm2, m63);
      s = word(s, p, 3, x0, 3, bm3, m63);
      s = word(s, p, 4, x1, 0, bm0, m63);
      s = word(s, p, 5, x1, 1, bm1, m63);
      s = word(s, p, 6, x1, 2, bm2, m63);
      s = word(s, p, 7, x1, 3, bm3, m63);
      // Σ sc * bsum over the 16 groups, then the -32 offset in one shift
      let o = i32x4.dot_i16x8_s(v128.load8x8_s(p), v128.load32_splat(q + 260));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + 8), v128.load32_splat(q + 264)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + 16), v128.load32_splat(q + 268)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + 24), v128.load32_splat(q + 272)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + 32), v128.load32_splat(q + 276)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + 40), v128.load32_splat(q + 280)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + 48), v128.load32_splat(q + 284)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + 56), v128.load32_splat(q + 288)));
      s = i32x4.sub(s, i32x4.shl(o, 5));
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(s)));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), acc);
  }
}

/** q1l: q1w with the sub-block words in a loop (smaller code) instead of written out. */
export function q1l(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let p = w;
  for (let r = 0; r < d; r += 4) {
    let acc = f32x4.splat(0);
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s = i32x4.splat(0), o = s;
      let v = p + 64, sp = p, bq = q + 260, x = q + 4;
      for (let sw: usize = 0; sw < 8; sw++) {
        const m = sw & 3, bm = bcastMask(m);
        const S = v128.load8x8_s(sp);
        const xm = x + (RELAXED ? (m << 2) : 0);
        s = i32x4.add(s, i32x4.add(quadAt(v, xm, 0, bm, S, m63), quadAt(v + 48, xm + 64, 0, bm, S, m63)));
        o = i32x4.add(o, i32x4.dot_i16x8_s(S, v128.load32_splat(bq)));
        v += 96; sp += 8; bq += 4;
        if (sw == 3) x += 128;
      }
      s = i32x4.sub(s, i32x4.shl(o, 5));
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(s)));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), acc);
  }
}

/** q2: two quads per pass from two far-apart bands (halves of the weight), sharing nothing but the pointers. */
export function q2(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z));
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const bm0 = bcastMask(0), bm1 = bcastMask(1), bm2 = bcastMask(2), bm3 = bcastMask(3);
  const half = d >> 1; // a multiple of 4 when d is a multiple of 8
  const hs: usize = <usize>half * nb * WB;
  let p = w;
  for (let r = 0; r < half; r += 4) {
    let acc = f32x4.splat(0), acc2 = acc;
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s = i32x4.splat(0), s2 = s;
      const x0 = q + 4, x1 = q + 132, p2 = p + hs;
      s = word(s, p, 0, x0, 0, bm0, m63); s2 = word(s2, p2, 0, x0, 0, bm0, m63);
      s = word(s, p, 1, x0, 1, bm1, m63); s2 = word(s2, p2, 1, x0, 1, bm1, m63);
      s = word(s, p, 2, x0, 2, bm2, m63); s2 = word(s2, p2, 2, x0, 2, bm2, m63);
      s = word(s, p, 3, x0, 3, bm3, m63); s2 = word(s2, p2, 3, x0, 3, bm3, m63);
      s = word(s, p, 4, x1, 0, bm0, m63); s2 = word(s2, p2, 4, x1, 0, bm0, m63);
      s = word(s, p, 5, x1, 1, bm1, m63); s2 = word(s2, p2, 5, x1, 1, bm1, m63);
      s = word(s, p, 6, x1, 2, bm2, m63); s2 = word(s2, p2, 6, x1, 2, bm2, m63);
      s = word(s, p, 7, x1, 3, bm3, m63); s2 = word(s2, p2, 7, x1, 3, bm3, m63);
      let o = i32x4.splat(0), o2 = o;
      for (let sw: usize = 0; sw < 8; sw++) {
        const B = v128.load32_splat(q + 260 + (sw << 2));
        o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + (sw << 3)), B));
        o2 = i32x4.add(o2, i32x4.dot_i16x8_s(v128.load8x8_s(p2 + (sw << 3)), B));
      }
      s = i32x4.sub(s, i32x4.shl(o, 5));
      s2 = i32x4.sub(s2, i32x4.shl(o2, 5));
      const da = v128.load32_splat(q);
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), da), f32x4.convert_i32x4_s(s)));
      acc2 = f32x4.add(acc2, f32x4.mul(f32x4.mul(f16quad(p2 + DW, hmask, p112), da), f32x4.convert_i32x4_s(s2)));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), acc);
    v128.store(out + (<usize>(r + half) << 2), acc2);
  }
}

/**
 * The fourth chunk of a packed quad without shifts: x / 2 is avgr_u(x, 0) for an even byte, and (x + y) / 2 is
 * avgr_u(x, y) when x + y is even, so w3 = C_hi / 64 + B_hi / 16 + A_hi / 4 is six byte averages. JavaScriptCore
 * lowers each i16x8.shr_u by a constant to four instructions (the count moved through a general register into a
 * vector register); pavgb is one in both engines.
 */
// @ts-ignore: decorator
@inline function w3avg(A: v128, B: v128, C: v128, m63: v128, zero: v128): v128 {
  let u = i8x16.avgr_u(i8x16.avgr_u(v128.andnot(C, m63), zero), zero); // C_hi / 4
  u = i8x16.avgr_u(i8x16.avgr_u(u, v128.andnot(B, m63)), zero); // (C_hi / 4 + B_hi) / 4
  return i8x16.avgr_u(i8x16.avgr_u(u, v128.andnot(A, m63)), zero); // (... + A_hi) / 4
}

/** quadAt with w3avg. */
// @ts-ignore: decorator
@inline function quadAv(v: usize, x: usize, m: usize, bm: v128, S: v128, m63: v128, zero: v128): v128 {
  const A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
  const w3 = w3avg(A, B, C, m63, zero);
  const t0 = i16x8.add(dot16(v128.and(A, m63), act(x, m, bm)), dot16(v128.and(B, m63), act(x + 16, m, bm)));
  const t1 = i16x8.add(dot16(v128.and(C, m63), act(x + 32, m, bm)), dot16(w3, act(x + 48, m, bm)));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

/** av1: q1l with w3avg. */
export function av1(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let p = w;
  for (let r = 0; r < d; r += 4) {
    let acc = f32x4.splat(0);
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s = i32x4.splat(0), o = s;
      let v = p + 64, sp = p, bq = q + 260, x = q + 4;
      for (let sw: usize = 0; sw < 8; sw++) {
        const m = sw & 3, bm = bcastMask(m);
        const S = v128.load8x8_s(sp);
        const xm = x + (RELAXED ? (m << 2) : 0);
        s = i32x4.add(s, i32x4.add(quadAv(v, xm, 0, bm, S, m63, zero), quadAv(v + 48, xm + 64, 0, bm, S, m63, zero)));
        o = i32x4.add(o, i32x4.dot_i16x8_s(S, v128.load32_splat(bq)));
        v += 96; sp += 8; bq += 4;
        if (sw == 3) x += 128;
      }
      s = i32x4.sub(s, i32x4.shl(o, 5));
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(s)));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), acc);
  }
}

/** Sub-block word of one quad with w3avg: the pair of packed quads at v, v + 48 against x, x + 64. */
// @ts-ignore: decorator
@inline function wordAv(v: usize, S: v128, x0: v128, x1: v128, x2: v128, x3: v128, y0: v128, y1: v128, y2: v128, y3: v128, m63: v128, zero: v128): v128 {
  let A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
  let w3 = w3avg(A, B, C, m63, zero);
  let t0 = i16x8.add(dot16(v128.and(A, m63), x0), dot16(v128.and(B, m63), x1));
  let t1 = i16x8.add(dot16(v128.and(C, m63), x2), dot16(w3, x3));
  const r = i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
  A = v128.load(v + 48), B = v128.load(v + 64), C = v128.load(v + 80);
  w3 = w3avg(A, B, C, m63, zero);
  t0 = i16x8.add(dot16(v128.and(A, m63), y0), dot16(v128.and(B, m63), y1));
  t1 = i16x8.add(dot16(v128.and(C, m63), y2), dot16(w3, y3));
  return i32x4.add(r, i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S)));
}

/**
 * av4: four quads from four far-apart bands per pass (as matmul_q6_k_lanes), w3avg, the two chunk quads of a word
 * written out, each quad's scales loaded once per word, the -32 offset summed apart and shifted once per superblock.
 */
export function av4(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const qn = d >> 4;
  const qs: usize = <usize>qn * nb * LB; // bytes between the bands
  for (let g = 0; g < qn; g++) {
    let p = w + <usize>g * nb * LB;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0, o0 = s0, o1 = s0, o2 = s0, o3 = s0;
      let v = p + 64, sp = p, bq = q + 260, x = q + 4;
      for (let sw: usize = 0; sw < 8; sw++) {
        const m = sw & 3, bm = bcastMask(m);
        const xm = x + (RELAXED ? (m << 2) : 0);
        const x0 = act(xm, 0, bm), x1 = act(xm + 16, 0, bm), x2 = act(xm + 32, 0, bm), x3 = act(xm + 48, 0, bm);
        const y0 = act(xm + 64, 0, bm), y1 = act(xm + 80, 0, bm), y2 = act(xm + 96, 0, bm), y3 = act(xm + 112, 0, bm);
        const B = v128.load32_splat(bq);
        let S = v128.load8x8_s(sp);
        s0 = i32x4.add(s0, wordAv(v, S, x0, x1, x2, x3, y0, y1, y2, y3, m63, zero));
        o0 = i32x4.add(o0, i32x4.dot_i16x8_s(S, B));
        S = v128.load8x8_s(sp + qs);
        s1 = i32x4.add(s1, wordAv(v + qs, S, x0, x1, x2, x3, y0, y1, y2, y3, m63, zero));
        o1 = i32x4.add(o1, i32x4.dot_i16x8_s(S, B));
        S = v128.load8x8_s(sp + 2 * qs);
        s2 = i32x4.add(s2, wordAv(v + 2 * qs, S, x0, x1, x2, x3, y0, y1, y2, y3, m63, zero));
        o2 = i32x4.add(o2, i32x4.dot_i16x8_s(S, B));
        S = v128.load8x8_s(sp + 3 * qs);
        s3 = i32x4.add(s3, wordAv(v + 3 * qs, S, x0, x1, x2, x3, y0, y1, y2, y3, m63, zero));
        o3 = i32x4.add(o3, i32x4.dot_i16x8_s(S, B));
        v += 96; sp += 8; bq += 4;
        if (sw == 3) x += 128;
      }
      const da = v128.load32_splat(q);
      a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(s0, i32x4.shl(o0, 5)))));
      a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(f16quad(p + qs + DW, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(s1, i32x4.shl(o1, 5)))));
      a2 = f32x4.add(a2, f32x4.mul(f32x4.mul(f16quad(p + 2 * qs + DW, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(s2, i32x4.shl(o2, 5)))));
      a3 = f32x4.add(a3, f32x4.mul(f32x4.mul(f16quad(p + 3 * qs + DW, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(s3, i32x4.shl(o3, 5)))));
      p += LB;
      q += AB;
    }
    const o = out + (<usize>g << 4), oq: usize = <usize>qn << 4;
    v128.store(o, a0);
    v128.store(o + oq, a1);
    v128.store(o + 2 * oq, a2);
    v128.store(o + 3 * oq, a3);
  }
}

/** sh1: q1l (shifts) but the words' loop as av1, for a like-for-like look at w3avg. (= q1l) */

/** One packed quad of chunks at v against the four activation words at x (+ 0, 16, 32, 48: load offsets). */
// @ts-ignore: decorator
@inline function quadG(v: usize, x: usize, bm: v128, S: v128, m63: v128, zero: v128, AVG: bool): v128 {
  const A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
  let w3: v128;
  if (AVG) w3 = w3avg(A, B, C, m63, zero);
  else {
    let t = i16x8.shr_u(v128.andnot(C, m63), 2);
    t = i16x8.shr_u(v128.or(t, v128.andnot(B, m63)), 2);
    w3 = i16x8.shr_u(v128.or(t, v128.andnot(A, m63)), 2);
  }
  let x0: v128, x1: v128, x2: v128, x3: v128;
  if (RELAXED) {
    x0 = v128.load32_splat(x); x1 = v128.load32_splat(x, 16); x2 = v128.load32_splat(x, 32); x3 = v128.load32_splat(x, 48);
  } else {
    x0 = i8x16.swizzle(v128.load(x), bm); x1 = i8x16.swizzle(v128.load(x, 16), bm);
    x2 = i8x16.swizzle(v128.load(x, 32), bm); x3 = i8x16.swizzle(v128.load(x, 48), bm);
  }
  const t0 = i16x8.add(dot16(v128.and(A, m63), x0), dot16(v128.and(B, m63), x1));
  const t1 = i16x8.add(dot16(v128.and(C, m63), x2), dot16(w3, x3));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

/** One quad per pass (memory order), the -32 offset first (s starts at -32 Σ sc * bsum), splats with load offsets. */
// @ts-ignore: decorator
@inline function one(out: usize, xq: usize, w: usize, n: i32, d: i32, AVG: bool): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let p = w;
  for (let r = 0; r < d; r += 4) {
    let acc = f32x4.splat(0);
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let o = i32x4.dot_i16x8_s(v128.load8x8_s(p), v128.load32_splat(q, 260));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p, 8), v128.load32_splat(q, 264)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p, 16), v128.load32_splat(q, 268)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p, 24), v128.load32_splat(q, 272)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p, 32), v128.load32_splat(q, 276)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p, 40), v128.load32_splat(q, 280)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p, 48), v128.load32_splat(q, 284)));
      o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p, 56), v128.load32_splat(q, 288)));
      let s = i32x4.sub(i32x4.splat(0), i32x4.shl(o, 5));
      let v = p + 64, sp = p, x = q + 4;
      for (let sw: usize = 0; sw < 8; sw++) {
        const m = sw & 3, bm = bcastMask(m);
        const S = v128.load8x8_s(sp);
        const xm = x + (RELAXED ? (m << 2) : 0);
        s = i32x4.add(s, i32x4.add(quadG(v, xm, bm, S, m63, zero, AVG), quadG(v + 48, xm + 64, bm, S, m63, zero, AVG)));
        v += 96; sp += 8;
        if (sw == 3) x += 128;
      }
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(s)));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), acc);
  }
}

export function av1o(out: usize, xq: usize, w: usize, n: i32, d: i32): void { one(out, xq, w, n, d, true); }
export function sh1o(out: usize, xq: usize, w: usize, n: i32, d: i32): void { one(out, xq, w, n, d, false); }

/** Four bands per pass as matmul_q6_k_lanes, but the offset first, k written out, scales once per word. */
// @ts-ignore: decorator
@inline function four(out: usize, xq: usize, w: usize, n: i32, d: i32, AVG: bool): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const qn = d >> 4;
  const qs: usize = <usize>qn * nb * LB;
  for (let g = 0; g < qn; g++) {
    let p = w + <usize>g * nb * LB;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
      for (let sw: usize = 0; sw < 8; sw++) {
        const B = v128.load32_splat(q + 260 + (sw << 2));
        s0 = i32x4.add(s0, i32x4.dot_i16x8_s(v128.load8x8_s(p + (sw << 3)), B));
        s1 = i32x4.add(s1, i32x4.dot_i16x8_s(v128.load8x8_s(p + qs + (sw << 3)), B));
        s2 = i32x4.add(s2, i32x4.dot_i16x8_s(v128.load8x8_s(p + 2 * qs + (sw << 3)), B));
        s3 = i32x4.add(s3, i32x4.dot_i16x8_s(v128.load8x8_s(p + 3 * qs + (sw << 3)), B));
      }
      s0 = i32x4.sub(i32x4.splat(0), i32x4.shl(s0, 5)); s1 = i32x4.sub(i32x4.splat(0), i32x4.shl(s1, 5));
      s2 = i32x4.sub(i32x4.splat(0), i32x4.shl(s2, 5)); s3 = i32x4.sub(i32x4.splat(0), i32x4.shl(s3, 5));
      let v = p + 64, sp = p, x = q + 4;
      for (let sw: usize = 0; sw < 8; sw++) {
        const m = sw & 3, bm = bcastMask(m);
        const xm = x + (RELAXED ? (m << 2) : 0);
        for (let k: usize = 0; k < 2; k++) {
          const xk = xm + (k << 6), vk = v + k * 48;
          let x0: v128, x1: v128, x2: v128, x3: v128;
          if (RELAXED) {
            x0 = v128.load32_splat(xk); x1 = v128.load32_splat(xk, 16); x2 = v128.load32_splat(xk, 32); x3 = v128.load32_splat(xk, 48);
          } else {
            x0 = i8x16.swizzle(v128.load(xk), bm); x1 = i8x16.swizzle(v128.load(xk, 16), bm);
            x2 = i8x16.swizzle(v128.load(xk, 32), bm); x3 = i8x16.swizzle(v128.load(xk, 48), bm);
          }
          s0 = i32x4.add(s0, quadSumG(vk, x0, x1, x2, x3, v128.load8x8_s(sp), m63, zero, AVG));
          s1 = i32x4.add(s1, quadSumG(vk + qs, x0, x1, x2, x3, v128.load8x8_s(sp + qs), m63, zero, AVG));
          s2 = i32x4.add(s2, quadSumG(vk + 2 * qs, x0, x1, x2, x3, v128.load8x8_s(sp + 2 * qs), m63, zero, AVG));
          s3 = i32x4.add(s3, quadSumG(vk + 3 * qs, x0, x1, x2, x3, v128.load8x8_s(sp + 3 * qs), m63, zero, AVG));
        }
        v += 96; sp += 8;
        if (sw == 3) x += 128;
      }
      const da = v128.load32_splat(q);
      a0 = f32x4.add(a0, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), da), f32x4.convert_i32x4_s(s0)));
      a1 = f32x4.add(a1, f32x4.mul(f32x4.mul(f16quad(p + qs + DW, hmask, p112), da), f32x4.convert_i32x4_s(s1)));
      a2 = f32x4.add(a2, f32x4.mul(f32x4.mul(f16quad(p + 2 * qs + DW, hmask, p112), da), f32x4.convert_i32x4_s(s2)));
      a3 = f32x4.add(a3, f32x4.mul(f32x4.mul(f16quad(p + 3 * qs + DW, hmask, p112), da), f32x4.convert_i32x4_s(s3)));
      p += LB;
      q += AB;
    }
    const o = out + (<usize>g << 4), oq: usize = <usize>qn << 4;
    v128.store(o, a0);
    v128.store(o + oq, a1);
    v128.store(o + 2 * oq, a2);
    v128.store(o + 3 * oq, a3);
  }
}

// @ts-ignore: decorator
@inline function quadSumG(v: usize, x0: v128, x1: v128, x2: v128, x3: v128, S: v128, m63: v128, zero: v128, AVG: bool): v128 {
  const A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
  let w3: v128;
  if (AVG) w3 = w3avg(A, B, C, m63, zero);
  else {
    let t = i16x8.shr_u(v128.andnot(C, m63), 2);
    t = i16x8.shr_u(v128.or(t, v128.andnot(B, m63)), 2);
    w3 = i16x8.shr_u(v128.or(t, v128.andnot(A, m63)), 2);
  }
  const t0 = i16x8.add(dot16(v128.and(A, m63), x0), dot16(v128.and(B, m63), x1));
  const t1 = i16x8.add(dot16(v128.and(C, m63), x2), dot16(w3, x3));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

export function sh4(out: usize, xq: usize, w: usize, n: i32, d: i32): void { four(out, xq, w, n, d, false); }
export function av4o(out: usize, xq: usize, w: usize, n: i32, d: i32): void { four(out, xq, w, n, d, true); }

/** Word m of the activation chunk at x in every i32 lane: one vector load (offset folded) and one shuffle. */
// @ts-ignore: decorator
@inline function bc(x: usize, m: i32): v128 {
  const c = v128.load(x);
  if (m == 0) return v128.shuffle<i32>(c, c, 0, 0, 0, 0);
  if (m == 1) return v128.shuffle<i32>(c, c, 1, 1, 1, 1);
  if (m == 2) return v128.shuffle<i32>(c, c, 2, 2, 2, 2);
  return v128.shuffle<i32>(c, c, 3, 3, 3, 3);
}

// @ts-ignore: decorator
@inline function quadS(v: usize, x: usize, m: i32, S: v128, m63: v128, zero: v128): v128 {
  const A = v128.load(v), B = v128.load(v + 16), C = v128.load(v + 32);
  const w3 = w3avg(A, B, C, m63, zero);
  const t0 = i16x8.add(dot16(v128.and(A, m63), bc(x, m)), dot16(v128.and(B, m63), bc(x + 16, m)));
  const t1 = i16x8.add(dot16(v128.and(C, m63), bc(x + 32, m)), dot16(w3, bc(x + 48, m)));
  return i32x4.add(i32x4.dot_i16x8_s(t0, S), i32x4.dot_i16x8_s(t1, S));
}

// @ts-ignore: decorator
@inline function wordS(s: v128, o: v128, p: usize, q: usize, sw: i32, m63: v128, zero: v128): v128 {
  const S = v128.load8x8_s(p + (<usize>sw << 3));
  const v = p + 64 + <usize>sw * 96, x = q + 4 + (<usize>(sw >> 2) << 7), m = sw & 3;
  return i32x4.add(s, i32x4.add(quadS(v, x, m, S, m63, zero), quadS(v + 48, x + 64, m, S, m63, zero)));
}

/** avs (relaxed only): av1 with the activation words broadcast by shuffles of whole-chunk loads, the words written out. */
export function avs(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  let p = w;
  for (let r = 0; r < d; r += 4) {
    let acc = f32x4.splat(0);
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s = i32x4.splat(0), o = s;
      for (let sw: usize = 0; sw < 8; sw++) o = i32x4.add(o, i32x4.dot_i16x8_s(v128.load8x8_s(p + (sw << 3)), v128.load32_splat(q + 260 + (sw << 2))));
      s = i32x4.sub(s, i32x4.shl(o, 5));
      s = wordS(s, o, p, q, 0, m63, zero); s = wordS(s, o, p, q, 1, m63, zero);
      s = wordS(s, o, p, q, 2, m63, zero); s = wordS(s, o, p, q, 3, m63, zero);
      s = wordS(s, o, p, q, 4, m63, zero); s = wordS(s, o, p, q, 5, m63, zero);
      s = wordS(s, o, p, q, 6, m63, zero); s = wordS(s, o, p, q, 7, m63, zero);
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(s)));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), acc);
  }
}

/** av2: two quads from two bands (the weight's halves) per pass sharing the activation splats; w3avg. */
export function av2(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const half = d >> 1;
  const hs: usize = <usize>half * nb * WB;
  let p = w;
  for (let r = 0; r < half; r += 4) {
    let acc = f32x4.splat(0), acc2 = acc;
    let q = xq;
    for (let b = 0; b < nb; b++) {
      let s = i32x4.splat(0), o = s, s2 = s, o2 = s;
      let v = p + 64, sp = p, bq = q + 260, x = q + 4;
      for (let sw: usize = 0; sw < 8; sw++) {
        const m = sw & 3, bm = bcastMask(m);
        const xm = x + (RELAXED ? (m << 2) : 0);
        const B = v128.load32_splat(bq);
        let S = v128.load8x8_s(sp);
        o = i32x4.add(o, i32x4.dot_i16x8_s(S, B));
        for (let k: usize = 0; k < 2; k++) {
          const xk = xm + (k << 6);
          const x0 = act(xk, 0, bm), x1 = act(xk + 16, 0, bm), x2 = act(xk + 32, 0, bm), x3 = act(xk + 48, 0, bm);
          s = i32x4.add(s, quadSumG(v + k * 48, x0, x1, x2, x3, v128.load8x8_s(sp), m63, zero, true));
          s2 = i32x4.add(s2, quadSumG(v + hs + k * 48, x0, x1, x2, x3, v128.load8x8_s(sp + hs), m63, zero, true));
        }
        o2 = i32x4.add(o2, i32x4.dot_i16x8_s(v128.load8x8_s(sp + hs), B));
        v += 96; sp += 8; bq += 4;
        if (sw == 3) x += 128;
      }
      const da = v128.load32_splat(q);
      acc = f32x4.add(acc, f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(s, i32x4.shl(o, 5)))));
      acc2 = f32x4.add(acc2, f32x4.mul(f32x4.mul(f16quad(p + hs + DW, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(s2, i32x4.shl(o2, 5)))));
      p += LB;
      q += AB;
    }
    v128.store(out + (<usize>r << 2), acc);
    v128.store(out + (<usize>(r + half) << 2), acc2);
  }
}

/**
 * b4: four quads from four far-apart bands (four sequential streams through memory, as matmul_q6_k_lanes), each
 * quad's whole superblock in turn (one quad's sums live at a time, as quadRow), four f32 accumulators.
 */
export function b4(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const qn = d >> 4;
  const qs: usize = <usize>qn * nb * LB;
  for (let g = 0; g < qn; g++) {
    let p = w + <usize>g * nb * LB;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let q = xq;
    for (let b = 0; b < nb; b++) {
      const da = v128.load32_splat(q);
      for (let j = 0; j < 4; j++) {
        const pj = p + <usize>j * qs;
        let s = i32x4.splat(0), o = s;
        let v = pj + 64, sp = pj, bq = q + 260, x = q + 4;
        for (let sw: usize = 0; sw < 8; sw++) {
          const m = sw & 3, bm = bcastMask(m);
          const S = v128.load8x8_s(sp);
          const xm = x + (RELAXED ? (m << 2) : 0);
          s = i32x4.add(s, i32x4.add(quadAv(v, xm, 0, bm, S, m63, zero), quadAv(v + 48, xm + 64, 0, bm, S, m63, zero)));
          o = i32x4.add(o, i32x4.dot_i16x8_s(S, v128.load32_splat(bq)));
          v += 96; sp += 8; bq += 4;
          if (sw == 3) x += 128;
        }
        const r = f32x4.mul(f32x4.mul(f16quad(pj + DW, hmask, p112), da), f32x4.convert_i32x4_s(i32x4.sub(s, i32x4.shl(o, 5))));
        if (j == 0) a0 = f32x4.add(a0, r);
        else if (j == 1) a1 = f32x4.add(a1, r);
        else if (j == 2) a2 = f32x4.add(a2, r);
        else a3 = f32x4.add(a3, r);
      }
      p += LB;
      q += AB;
    }
    const o = out + (<usize>g << 4), oq: usize = <usize>qn << 4;
    v128.store(o, a0);
    v128.store(o + oq, a1);
    v128.store(o + 2 * oq, a2);
    v128.store(o + 3 * oq, a3);
  }
}

/** One superblock of one quad (av1's inner loop): (d_w * d_a) * f32(isum) for the four rows. */
// @ts-ignore: decorator
@inline function sbAv(p: usize, q: usize, m63: v128, zero: v128, hmask: v128, p112: v128): v128 {
  let s = i32x4.splat(0), o = s;
  let v = p + 64, sp = p, bq = q + 260, x = q + 4;
  for (let sw: usize = 0; sw < 8; sw++) {
    const m = sw & 3, bm = bcastMask(m);
    const S = v128.load8x8_s(sp);
    const xm = x + (RELAXED ? (m << 2) : 0);
    s = i32x4.add(s, i32x4.add(quadAv(v, xm, 0, bm, S, m63, zero), quadAv(v + 48, xm + 64, 0, bm, S, m63, zero)));
    o = i32x4.add(o, i32x4.dot_i16x8_s(S, v128.load32_splat(bq)));
    v += 96; sp += 8; bq += 4;
    if (sw == 3) x += 128;
  }
  return f32x4.mul(f32x4.mul(f16quad(p + DW, hmask, p112), v128.load32_splat(q)), f32x4.convert_i32x4_s(i32x4.sub(s, i32x4.shl(o, 5))));
}

/** b4x: four bands (four streams), each quad's superblock in turn through sbAv written out four times. */
export function b4x(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const qn = d >> 4;
  const qs: usize = <usize>qn * nb * LB;
  for (let g = 0; g < qn; g++) {
    let p = w + <usize>g * nb * LB;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let q = xq;
    for (let b = 0; b < nb; b++) {
      a0 = f32x4.add(a0, sbAv(p, q, m63, zero, hmask, p112));
      a1 = f32x4.add(a1, sbAv(p + qs, q, m63, zero, hmask, p112));
      a2 = f32x4.add(a2, sbAv(p + 2 * qs, q, m63, zero, hmask, p112));
      a3 = f32x4.add(a3, sbAv(p + 3 * qs, q, m63, zero, hmask, p112));
      p += LB;
      q += AB;
    }
    const o = out + (<usize>g << 4), oq: usize = <usize>qn << 4;
    v128.store(o, a0);
    v128.store(o + oq, a1);
    v128.store(o + 2 * oq, a2);
    v128.store(o + 3 * oq, a3);
  }
}

/** b2x: two bands (two streams), as b4x. */
export function b2x(out: usize, xq: usize, w: usize, n: i32, d: i32): void {
  const nb = n >> 8, z = <i32>(<u32>n >> 31);
  const m63 = i8x16.splat(<i8>(63 + z)), zero = i8x16.splat(<i8>z);
  const hmask = i32x4.splat(<i32>0x8FFFE000 + z), p112 = f32x4.splat(reinterpret<f32>(0x77800000 + z));
  const qn = d >> 3;
  const qs: usize = <usize>qn * nb * LB;
  for (let g = 0; g < qn; g++) {
    let p = w + <usize>g * nb * LB;
    let a0 = f32x4.splat(0), a1 = a0;
    let q = xq;
    for (let b = 0; b < nb; b++) {
      a0 = f32x4.add(a0, sbAv(p, q, m63, zero, hmask, p112));
      a1 = f32x4.add(a1, sbAv(p + qs, q, m63, zero, hmask, p112));
      p += LB;
      q += AB;
    }
    const o = out + (<usize>g << 4), oq: usize = <usize>qn << 4;
    v128.store(o, a0);
    v128.store(o + oq, a1);
  }
}
