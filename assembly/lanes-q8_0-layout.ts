// The Q8_0 lanes layout's geometry, shared by its two forms (lanes-q8_0.ts: signed weight bytes;
// lanes-q8_0-vnni.ts: the same bytes offset to unsigned). Not re-exported by index.ts: inline helpers only.
//
// Rows are taken in quads (4 rows). Quad Q occupies exactly the bytes of its 4 natural rows
// (w + 4Q * ws, ws = nb * 34); per block b, 136 bytes at + 136b: the 4 rows' f16 scales (8 bytes),
// then 8 vectors, vector g = elements 4g..4g+3 of rows 0..3, row r's element 4g+k at byte 4r + k (both builds).
// Rows past the last whole quad (d % 4 of them) stay in the natural layout.
import { Q8_0_BYTES } from "./ggml-common";
import { f16 } from "./quant-util";
import { dequantize_q8_0 } from "./quant-dequant";

/** Bytes of one quad's block: 4 f16 scales and 4 x 32 int8, the size of 4 natural blocks. */
// @ts-ignore: decorator
@inline export const QB: usize = 4 * Q8_0_BYTES;

/** Position of row r's element k (0..3) of a group within its 16-byte vector (both builds). */
// @ts-ignore: decorator
@inline export function lanePos(r: usize, k: usize): usize {
  return (r << 2) + k;
}

/**
 * Repacks the d x n Q8_0 weight at w in place into the lanes layout, quad by quad (the d % 4 last rows
 * stay natural), each weight byte xor `bias` (0: as it is; 0x80: offset to unsigned, w + 128). `clampMinus128`: a -128
 * byte (0x80; ggml's quantizers never write one, a file may) is stored as -127, for a form whose kernels would otherwise
 * read it differently at different T (lanes-q8_0-nib.ts).
 * tmp: 4 rows of scratch (4 * n / 32 * 34 bytes).
 */
// @ts-ignore: decorator
@inline export function repackQuads(w: usize, n: i32, d: i32, tmp: usize, bias: u8, clampMinus128: bool): void {
  const nb = n >> 5;
  const ws: usize = <usize> nb * Q8_0_BYTES;
  for (let r = 0; r + 4 <= d; r += 4) {
    const p = w + <usize> r * ws;
    memory.copy(tmp, p, ws << 2);
    for (let b = 0; b < nb; b++) {
      const o = p + <usize> b * QB;
      for (let i: usize = 0; i < 4; i++) {
        const s = tmp + i * ws + <usize> b * Q8_0_BYTES;
        store<u16>(o + (i << 1), load<u16>(s));
        for (let g: usize = 0; g < 8; g++) {
          for (let k: usize = 0; k < 4; k++) {
            const q = load<u8>(s + 2 + (g << 2) + k);
            store<u8>(o + 8 + (g << 4) + lanePos(i, k), (clampMinus128 && q == 0x80 ? <u8> 0x81 : q) ^ bias);
          }
        }
      }
    }
  }
}

/**
 * Row `row` of the d x n weight at w (the table's start, not the row's), repacked by repackQuads with `bias`, as n f32,
 * as dequantize_q8_0 gives it from the natural layout (x = q * d, bit for bit): embedding lookups. Rows past the last
 * whole quad are natural.
 */
// @ts-ignore: decorator
@inline export function dequantizeQuadRow(out: usize, w: usize, n: i32, row: i32, d: i32, bias: u8): void {
  const nb = n >> 5;
  const ws: usize = <usize> nb * Q8_0_BYTES;
  if (row >= (d & ~3)) {
    dequantize_q8_0(out, w + <usize> row * ws, n);
    return;
  }
  const i = <usize> (row & 3);
  const quad = w + <usize> (row & ~3) * ws;
  for (let b = 0; b < nb; b++) {
    const p = quad + <usize> b * QB, s = f16(p + (i << 1));
    const o = out + (<usize> b << 7);
    for (let g: usize = 0; g < 8; g++) {
      for (let k: usize = 0; k < 4; k++) {
        store<f32>(o + (((g << 2) + k) << 2), <f32> <i8> (load<u8>(p + 8 + (g << 4) + lanePos(i, k)) ^ bias) * s);
      }
    }
  }
}
