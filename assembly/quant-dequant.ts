// One row of ggml blocks to f32 (embedding lookup, get_rows). The float
// operations follow ggml's dequantize_row_* in the same order, so the results
// are bit-identical to ggml's. out: n f32; w: one row of blocks.
import { f16, q3kScalesLo, q3kScalesHi } from "./quant-util";

// @ts-ignore: decorator
@inline function put(out: usize, i: i32, v: f32): void { store<f32>(out + (<usize>i << 2), v); }

/** BF16 row -> f32. */
export function dequantize_bf16(out: usize, w: usize, n: i32): void {
  for (let i = 0; i < n; i++) put(out, i, reinterpret<f32>(<u32>load<u16>(w + (<usize>i << 1)) << 16));
}

/** Q8_0 {f16 d; i8 qs[32]}: x = q*d. */
export function dequantize_q8_0(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 5; b++) {
    const p = w + <usize>b * 34, d = f16(p);
    for (let j = 0; j < 32; j++) put(out, b * 32 + j, <f32>load<i8>(p + 2 + j) * d);
  }
}

/** Q4_0 {f16 d; u8 qs[16]}: element j = low nibble of qs[j], j+16 = high nibble; x = (q-8)*d. */
export function dequantize_q4_0(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 5; b++) {
    const p = w + <usize>b * 18, d = f16(p);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 2 + j);
      put(out, b * 32 + j, <f32>((q & 15) - 8) * d);
      put(out, b * 32 + j + 16, <f32>((q >> 4) - 8) * d);
    }
  }
}

/** Q4_1 {f16 d; f16 m; u8 qs[16]}: x = q*d + m. */
export function dequantize_q4_1(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 5; b++) {
    const p = w + <usize>b * 20, d = f16(p), m = f16(p + 2);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 4 + j);
      put(out, b * 32 + j, <f32>(q & 15) * d + m);
      put(out, b * 32 + j + 16, <f32>(q >> 4) * d + m);
    }
  }
}

/** Q5_0 {f16 d; u32 qh; u8 qs[16]}: 5th bit of element j is bit j of qh; x = (q-16)*d. */
export function dequantize_q5_0(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 5; b++) {
    const p = w + <usize>b * 22, d = f16(p), qh = load<u32>(p + 2);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 6 + j);
      const h0 = <i32>((qh >> j) << 4) & 0x10, h1 = <i32>(qh >> (j + 12)) & 0x10;
      put(out, b * 32 + j, <f32>(((q & 15) | h0) - 16) * d);
      put(out, b * 32 + j + 16, <f32>(((q >> 4) | h1) - 16) * d);
    }
  }
}

/** Q5_1 {f16 d; f16 m; u32 qh; u8 qs[16]}: x = q*d + m. */
export function dequantize_q5_1(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 5; b++) {
    const p = w + <usize>b * 24, d = f16(p), m = f16(p + 2), qh = load<u32>(p + 4);
    for (let j = 0; j < 16; j++) {
      const q = <i32>load<u8>(p + 8 + j);
      const h0 = <i32>((qh >> j) << 4) & 0x10, h1 = <i32>(qh >> (j + 12)) & 0x10;
      put(out, b * 32 + j, <f32>((q & 15) | h0) * d + m);
      put(out, b * 32 + j + 16, <f32>((q >> 4) | h1) * d + m);
    }
  }
}

/** Q2_K {u8 scales[16] (low 4 bits scale, high 4 bits min); u8 qs[64]; f16 d; f16 dmin}. */
export function dequantize_q2_k(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 8; b++) {
    const p = w + <usize>b * 84, d = f16(p + 80), mn = f16(p + 82);
    let y = b * 256, is = 0;
    for (let g = 0; g < 2; g++) {
      const q = p + 16 + <usize>g * 32;
      for (let j = 0; j < 4; j++) {
        for (let h = 0; h < 2; h++) {
          const sc = <i32>load<u8>(p + is++);
          const dl = d * <f32>(sc & 15), ml = mn * <f32>(sc >> 4);
          for (let l = 0; l < 16; l++) put(out, y++, dl * <f32>((<i32>load<u8>(q + h * 16 + l) >> (2 * j)) & 3) - ml);
        }
      }
    }
  }
}

/** Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}: x = d*(sc-32)*((q&3) - (hbit ? 0 : 4)). */
export function dequantize_q3_k(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 8; b++) {
    const p = w + <usize>b * 110, d = f16(p + 108);
    const lo = q3kScalesLo(p + 96), hi = q3kScalesHi(p + 96);
    let y = b * 256, is = 0;
    for (let g = 0; g < 2; g++) {
      const q = p + 32 + <usize>g * 32;
      for (let j = 0; j < 4; j++) {
        const m = g * 4 + j;
        for (let h = 0; h < 2; h++) {
          const s = is++;
          const sc = <i32>(((s < 8 ? lo : hi) >> (<u64>(s & 7) * 8)) & 0xff) - 32;
          const dl = d * <f32>sc;
          for (let l = 0; l < 16; l++) {
            const ql = (<i32>load<u8>(q + h * 16 + l) >> (2 * j)) & 3;
            const hb = (<i32>load<u8>(p + h * 16 + l) >> m) & 1;
            put(out, y++, dl * <f32>(ql - (hb ? 0 : 4)));
          }
        }
      }
    }
  }
}

// get_scale_min_k4 over the 12 scale bytes of Q4_K / Q5_K.
// @ts-ignore: decorator
@inline function kScale(q: usize, j: i32): i32 {
  return j < 4 ? <i32>load<u8>(q + j) & 63 : (<i32>load<u8>(q + j + 4) & 0xF) | ((<i32>load<u8>(q + j - 4) >> 6) << 4);
}
// @ts-ignore: decorator
@inline function kMin(q: usize, j: i32): i32 {
  return j < 4 ? <i32>load<u8>(q + j + 4) & 63 : (<i32>load<u8>(q + j + 4) >> 4) | ((<i32>load<u8>(q + j) >> 6) << 4);
}

/** Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: x = d*sc*q - dmin*m per 32. */
export function dequantize_q4_k(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 8; b++) {
    const p = w + <usize>b * 144, d = f16(p), mn = f16(p + 2);
    let y = b * 256;
    for (let g = 0; g < 4; g++) {
      const q = p + 16 + <usize>g * 32;
      for (let k = 0; k < 2; k++) {
        const d1 = d * <f32>kScale(p + 4, 2 * g + k), m1 = mn * <f32>kMin(p + 4, 2 * g + k);
        for (let l = 0; l < 32; l++) put(out, y++, d1 * <f32>((<i32>load<u8>(q + l) >> (4 * k)) & 15) - m1);
      }
    }
  }
}

/** Q5_K {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}. */
export function dequantize_q5_k(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 8; b++) {
    const p = w + <usize>b * 176, d = f16(p), mn = f16(p + 2);
    let y = b * 256;
    for (let g = 0; g < 4; g++) {
      const q = p + 48 + <usize>g * 32;
      for (let k = 0; k < 2; k++) {
        const j = 2 * g + k;
        const d1 = d * <f32>kScale(p + 4, j), m1 = mn * <f32>kMin(p + 4, j);
        for (let l = 0; l < 32; l++) {
          const v = ((<i32>load<u8>(q + l) >> (4 * k)) & 15) + (((<i32>load<u8>(p + 16 + l) >> j) & 1) << 4);
          put(out, y++, d1 * <f32>v - m1);
        }
      }
    }
  }
}

/** Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: x = d*sc*(q-32) per 16. */
export function dequantize_q6_k(out: usize, w: usize, n: i32): void {
  for (let b = 0; b < n >> 8; b++) {
    const p = w + <usize>b * 210, d = f16(p + 208);
    for (let g = 0; g < 2; g++) {
      const ql = p + <usize>g * 64, qh = p + 128 + <usize>g * 32, sc = p + 192 + <usize>g * 8;
      const y = b * 256 + g * 128;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const a = <i32>load<u8>(ql + l), c = <i32>load<u8>(ql + l + 32), h = <i32>load<u8>(qh + l);
        const q1 = ((a & 15) | ((h & 3) << 4)) - 32;
        const q2 = ((c & 15) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((c >> 4) | (((h >> 6) & 3) << 4)) - 32;
        put(out, y + l, d * <f32>load<i8>(sc + is) * <f32>q1);
        put(out, y + l + 32, d * <f32>load<i8>(sc + is + 2) * <f32>q2);
        put(out, y + l + 64, d * <f32>load<i8>(sc + is + 4) * <f32>q3);
        put(out, y + l + 96, d * <f32>load<i8>(sc + is + 6) * <f32>q4);
      }
    }
  }
}
