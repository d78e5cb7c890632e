/**
 * Plain JavaScript dequantizers for every block type kvasm runs, written
 * straight from ggml's dequantize_row_* (same f32 operations in the same order,
 * via Math.fround). They are test oracles for the WebAssembly kernels, not a
 * fast path. Activation formats (Q8_1, Q8_K, kvasm's Q8_S) are included so tests can
 * dequantize what the quantize_* kernels wrote.
 */
import { GGMLType, type GGMLTypeId, ggmlTypeName, rowBytes } from "../formats/ggml-types.ts";
import { UnsupportedError } from "../errors.ts";
import { bf16ToF32, f16ToF32 } from "./half.ts";
import { actRowBytesOrUndefined, Q8_S } from "./act-formats.ts";

const fr = Math.fround;

/** Dequantizes `n` elements (whole rows, back to back) of `type` from `src`. */
export function dequantizeRef(type: GGMLTypeId, src: Uint8Array, n: number): Float32Array {
  if (type === Q8_S) {
    // kvasm's activation format (act-formats.ts): {f32 d; i32 sum; i8 qs[32]}
    const need = actRowBytesOrUndefined(Q8_S, n);
    if (need === undefined) throw new UnsupportedError(`Q8_S: ${n} elements do not split into blocks of 32`);
    if (src.length < need) throw new RangeError(`Q8_S: need ${need} bytes for ${n} elements, got ${src.length}`);
    const v = new DataView(src.buffer, src.byteOffset, src.byteLength), y = new Float32Array(n);
    for (let b = 0; b < n / 32; b++) {
      const d = v.getFloat32(b * 40, true);
      for (let j = 0; j < 32; j++) y[b * 32 + j] = fr(v.getInt8(b * 40 + 8 + j) * d);
    }
    return y;
  }
  const need = rowBytes(type, n);
  if (need === undefined) throw new UnsupportedError(`${ggmlTypeName(type)}: ${n} elements do not split into blocks`);
  if (src.length < need) throw new RangeError(`${ggmlTypeName(type)}: need ${need} bytes for ${n} elements, got ${src.length}`);
  const v = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const u8 = (o: number) => src[o];
  const i8 = (o: number) => (src[o] << 24) >> 24;
  const h = (o: number) => f16ToF32(v.getUint16(o, true));
  const y = new Float32Array(n);
  switch (type) {
    case GGMLType.F32:
      for (let i = 0; i < n; i++) y[i] = v.getFloat32(4 * i, true);
      return y;
    case GGMLType.F16:
      for (let i = 0; i < n; i++) y[i] = h(2 * i);
      return y;
    case GGMLType.BF16:
      for (let i = 0; i < n; i++) y[i] = bf16ToF32(v.getUint16(2 * i, true));
      return y;
    case GGMLType.Q8_0:
      for (let b = 0; b < n / 32; b++) {
        const p = b * 34, d = h(p);
        for (let j = 0; j < 32; j++) y[b * 32 + j] = fr(i8(p + 2 + j) * d);
      }
      return y;
    case GGMLType.Q8_1:
      for (let b = 0; b < n / 32; b++) {
        const p = b * 36, d = h(p);
        for (let j = 0; j < 32; j++) y[b * 32 + j] = fr(i8(p + 4 + j) * d);
      }
      return y;
    case GGMLType.Q8_K:
      for (let b = 0; b < n / 256; b++) {
        const p = b * 292, d = v.getFloat32(p, true);
        for (let j = 0; j < 256; j++) y[b * 256 + j] = fr(i8(p + 4 + j) * d);
      }
      return y;
    case GGMLType.Q4_0:
      for (let b = 0; b < n / 32; b++) {
        const p = b * 18, d = h(p);
        for (let j = 0; j < 16; j++) {
          const q = u8(p + 2 + j);
          y[b * 32 + j] = fr(((q & 15) - 8) * d);
          y[b * 32 + j + 16] = fr(((q >> 4) - 8) * d);
        }
      }
      return y;
    case GGMLType.Q4_1:
      for (let b = 0; b < n / 32; b++) {
        const p = b * 20, d = h(p), m = h(p + 2);
        for (let j = 0; j < 16; j++) {
          const q = u8(p + 4 + j);
          y[b * 32 + j] = fr(fr((q & 15) * d) + m);
          y[b * 32 + j + 16] = fr(fr((q >> 4) * d) + m);
        }
      }
      return y;
    case GGMLType.Q5_0:
    case GGMLType.Q5_1: {
      const one = type === GGMLType.Q5_1;
      const bs = one ? 24 : 22;
      for (let b = 0; b < n / 32; b++) {
        const p = b * bs, d = h(p), m = one ? h(p + 2) : 0;
        const qh = v.getUint32(p + (one ? 4 : 2), true);
        const qs = p + (one ? 8 : 6);
        for (let j = 0; j < 16; j++) {
          const q = u8(qs + j);
          const x0 = (q & 15) | (((qh >>> j) << 4) & 0x10);
          const x1 = (q >> 4) | ((qh >>> (j + 12)) & 0x10);
          y[b * 32 + j] = one ? fr(fr(x0 * d) + m) : fr((x0 - 16) * d);
          y[b * 32 + j + 16] = one ? fr(fr(x1 * d) + m) : fr((x1 - 16) * d);
        }
      }
      return y;
    }
    case GGMLType.Q2_K:
      for (let b = 0; b < n / 256; b++) {
        const p = b * 84, d = h(p + 80), mn = h(p + 82);
        let k = b * 256, is = 0;
        for (let g = 0; g < 2; g++) {
          const q = p + 16 + 32 * g;
          for (let j = 0; j < 4; j++) {
            for (let half = 0; half < 2; half++) {
              const sc = u8(p + is++);
              const dl = fr(d * (sc & 15)), ml = fr(mn * (sc >> 4));
              for (let l = 0; l < 16; l++) y[k++] = fr(fr(dl * ((u8(q + 16 * half + l) >> (2 * j)) & 3)) - ml);
            }
          }
        }
      }
      return y;
    case GGMLType.Q3_K:
      for (let b = 0; b < n / 256; b++) {
        const p = b * 110, d = h(p + 108);
        const sc = q3kScales(src, p + 96);
        let k = b * 256, is = 0;
        for (let g = 0; g < 2; g++) {
          const q = p + 32 + 32 * g;
          for (let j = 0; j < 4; j++) {
            const m = 4 * g + j;
            for (let half = 0; half < 2; half++) {
              const dl = fr(d * (sc[is++] - 32));
              for (let l = 0; l < 16; l++) {
                const ql = (u8(q + 16 * half + l) >> (2 * j)) & 3;
                const hb = (u8(p + 16 * half + l) >> m) & 1;
                y[k++] = fr(dl * (ql - (hb ? 0 : 4)));
              }
            }
          }
        }
      }
      return y;
    case GGMLType.Q4_K:
    case GGMLType.Q5_K: {
      const five = type === GGMLType.Q5_K;
      const bs = five ? 176 : 144;
      for (let b = 0; b < n / 256; b++) {
        const p = b * bs, d = h(p), mn = h(p + 2);
        let k = b * 256;
        for (let g = 0; g < 4; g++) {
          const q = p + (five ? 48 : 16) + 32 * g;
          for (let s = 0; s < 2; s++) {
            const j = 2 * g + s;
            const [sc, m] = scaleMinK4(src, p + 4, j);
            const d1 = fr(d * sc), m1 = fr(mn * m);
            for (let l = 0; l < 32; l++) {
              let x = (u8(q + l) >> (4 * s)) & 15;
              if (five) x += ((u8(p + 16 + l) >> j) & 1) << 4;
              y[k++] = fr(fr(d1 * x) - m1);
            }
          }
        }
      }
      return y;
    }
    case GGMLType.Q6_K:
      for (let b = 0; b < n / 256; b++) {
        const p = b * 210, d = h(p + 208);
        for (let g = 0; g < 2; g++) {
          const ql = p + 64 * g, qh = p + 128 + 32 * g, sc = p + 192 + 8 * g, o = b * 256 + 128 * g;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4, a = u8(ql + l), c = u8(ql + l + 32), hh = u8(qh + l);
            const q1 = ((a & 15) | ((hh & 3) << 4)) - 32;
            const q2 = ((c & 15) | (((hh >> 2) & 3) << 4)) - 32;
            const q3 = ((a >> 4) | (((hh >> 4) & 3) << 4)) - 32;
            const q4 = ((c >> 4) | (((hh >> 6) & 3) << 4)) - 32;
            y[o + l] = fr(fr(d * i8(sc + is)) * q1);
            y[o + l + 32] = fr(fr(d * i8(sc + is + 2)) * q2);
            y[o + l + 64] = fr(fr(d * i8(sc + is + 4)) * q3);
            y[o + l + 96] = fr(fr(d * i8(sc + is + 6)) * q4);
          }
        }
      }
      return y;
  }
  throw new UnsupportedError(`no reference dequantizer for ${ggmlTypeName(type)}`);
}

/** ggml's get_scale_min_k4: 6-bit scale and min j of the 12 bytes at `o`. */
export function scaleMinK4(q: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [q[o + j] & 63, q[o + j + 4] & 63];
  return [(q[o + j + 4] & 0xf) | ((q[o + j - 4] >> 6) << 4), (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4)];
}

/** Q3_K's 16 scales (each + 32, i.e. 0..63) from the 12 bytes at `o`. */
function q3kScales(q: Uint8Array, o: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < 16; j++) {
    const lo = j < 8 ? q[o + j] & 0xf : q[o + j - 8] >> 4;
    out.push(lo | (((q[o + 8 + (j % 4)] >> (2 * (j >> 2))) & 3) << 4));
  }
  return out;
}
