/** IEEE half and bfloat16 conversions, bit-exact with ggml's. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f16 bits -> number (exact). */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** number -> f16 bits, round to nearest even (what F16C's _cvtss_sh(x, 0) and ggml's fallback give). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const w = u32[0];
  const sign = (w >>> 16) & 0x8000;
  const a = w & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  const v = Math.abs(f32[0]);
  if (v >= 65520) return sign | 0x7c00; // rounds to infinity
  if (v < 2 ** -14) {
    // subnormal: units of 2^-24, round half to even
    const q = v / 2 ** -24;
    let r = Math.round(q);
    if (r - q === 0.5 && r % 2 === 1) r -= 1;
    return sign | r;
  }
  let e = Math.floor(Math.log2(v));
  if (2 ** e > v) e--;
  if (2 ** (e + 1) <= v) e++;
  const q = v / 2 ** (e - 10); // in [1024, 2048)
  let r = Math.round(q);
  if (r - q === 0.5 && r % 2 === 1) r -= 1;
  if (r === 2048) {
    r = 1024;
    e++;
  }
  if (e + 15 >= 31) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (r - 1024);
}

/** bf16 bits -> number. */
export function bf16ToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** number -> bf16 bits, round to nearest even (ggml's GGML_FP32_TO_BF16). */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
  return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff;
}
