/**
 * Bit-exact ports of glibc 2.36's single-precision `sinf`, `cosf` and `expf`
 * (sysdeps/ieee754/flt-32: s_sinf.c, s_cosf.c, s_sincosf.h, sincosf_poly.h,
 * s_sincosf_data.c, e_expf.c, e_exp2f_data.c; the Arm optimized-routines
 * algorithms), as llama.cpp calls them on x86-64: ggml's rope cache uses
 * sinf/cosf, its softmax and activations use expf.
 *
 * On a CPU with FMA, glibc's ifunc picks `__sinf_fma`, `__cosf_fma`, `__expf_fma`:
 * the same C compiled with -mfma, where GCC contracts the `a * b + c` steps. JS has no
 * fused multiply-add, so the two fusions that matter are reproduced exactly with
 * split constants (see `reduceFast` and `expf`); the remaining fusions sit in the
 * polynomials, where they move the double result by about an ulp of a double and
 * change no f32 result: these functions were compared with the system's glibc 2.36
 * (x86-64, FMA variants) over all 2^32 f32 inputs each, with no difference.
 * (Without the two exact steps, 2 expf, 12 sinf and 22 cosf inputs differ.)
 *
 * Inputs are f32 values (numbers already rounded with Math.fround; others are
 * rounded first); results are f32 values. Valid for every f32 input, including
 * the large-argument reduction (|x| >= 120), +-0, subnormals, +-inf and NaN
 * (NaN results are JS NaN: glibc's NaN sign and payload are not kept).
 */

// Scratch views for bit access (host side, so static data is fine here).
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const F64 = new Float64Array(1);
const U64 = new Uint32Array(F64.buffer); // [low word, high word] (little-endian hosts)

function f64FromBits(hi: number, lo: number): number {
  U64[0] = lo;
  U64[1] = hi;
  return F64[0];
}

// ---------------------------------------------------------------- sinf / cosf

// Polynomial coefficients of __sincosf_table[0] (s_sincosf_data.c); the table's
// second entry negates the cosine ones, which `sinCosPoly` does with `neg`.
// sin(x) ~ x + s1 x^3 + s2 x^5 + s3 x^7 on [-pi/4, pi/4]
const S1 = -0x1555545995a603 * 2 ** -55; // -0x1.555545995a603p-3
const S2 = 0x11107605230bc4 * 2 ** -59; //  0x1.1107605230bc4p-7
const S3 = -0x1994eb3774cf24 * 2 ** -65; // -0x1.994eb3774cf24p-13
// cos(x) ~ c0 + c1 x^2 + c2 x^4 + c3 x^6 + c4 x^8
const C0 = 1;
const C1 = -0x1ffffffd0c621c * 2 ** -54; // -0x1.ffffffd0c621cp-2
const C2 = 0x155553e1068f19 * 2 ** -57; //  0x1.55553e1068f19p-5
const C3 = -0x16c087e89a359d * 2 ** -62; // -0x1.6c087e89a359dp-10
const C4 = 0x199343027bf8c3 * 2 ** -68; //  0x1.99343027bf8c3p-16

/** 2/pi * 2^24 (hpi_inv with TOINT_INTRINSICS = 0, as on x86-64): the quadrant lands in bits 24..31. */
const HPI_INV = 0x145f306dc9c883 * 2 ** -29; // 0x1.45F306DC9C883p+23
/**
 * pi/2 as a double (0x1.921FB54442D18p0), split so n * HPI_HI is exact for the
 * 7-bit quadrant counts of the fast path: HPI_HI keeps the top 46 significant
 * bits, HPI_LO = pi/2 - HPI_HI (2 bits) is exact too.
 */
const HPI_HI = 0x1921fb54442d00 * 2 ** -52;
const HPI_LO = 0x18 * 2 ** -52;
/** 2pi * 2^-64: scales reduce_large's 2.62 fixed-point remainder back to radians. */
const PI63 = 0x1921fb54442d18 * 2 ** -114; // 0x1.921FB54442D18p-62
/** Sign of sin per quadrant (sign[] of __sincosf_table). */
const SIGN = [1, -1, -1, 1];

/** 4/pi to 192 bits, one 32-bit window per 8 bits so any window is one load (__inv_pio4). */
const INV_PIO4 = new Uint32Array([
  0xa2,
  0xa2f9,
  0xa2f983,
  0xa2f9836e,
  0xf9836e4e,
  0x836e4e44,
  0x6e4e4415,
  0x4e441529,
  0x441529fc,
  0x1529fc27,
  0x29fc2757,
  0xfc2757d1,
  0x2757d1f5,
  0x57d1f534,
  0xd1f534dd,
  0xf534ddc0,
  0x34ddc0db,
  0xddc0db62,
  0xc0db6295,
  0xdb629599,
  0x6295993c,
  0x95993c43,
  0x993c4390,
  0x3c439041,
]);

/**
 * sinf_poly: sine polynomial of x when n is even, cosine polynomial of x when n
 * is odd (negated when `neg`, i.e. __sincosf_table[1]); x2 = x*x. The operation
 * order is glibc's; each `a * b + c` is fused in glibc but not here (see above).
 */
function sinCosPoly(x: number, x2: number, neg: boolean, n: number): number {
  if ((n & 1) === 0) {
    const x3 = x * x2;
    const s1 = S2 + x2 * S3;
    const x7 = x3 * x2;
    const s = x + x3 * S1;
    return Math.fround(s + x7 * s1);
  }
  const g = neg ? -1 : 1;
  const x4 = x2 * x2;
  const c2 = g * C3 + x2 * (g * C4);
  const c1 = g * C0 + x2 * (g * C1);
  const x6 = x4 * x2;
  const c = c1 + x4 * (g * C2);
  return Math.fround(c + x6 * c2);
}

// reduce_fast / reduce_large return the reduced argument and leave the quadrant here.
let quadrant = 0;

/**
 * reduce_fast for pi/4 <= |x| < 120: n = round(x * 2/pi) by the scaled
 * truncation glibc uses, then x - n*pi/2, which __sinf_fma computes with one
 * fused multiply-add (a single rounding of the exact value). n*HPI_HI and
 * n*HPI_LO are exact and x - n*HPI_HI is exact too (both are multiples of 2^-45
 * and the difference is below 1), so the last subtraction is the only rounding,
 * as in the fused form. A rounded n*pi/2 would instead lose up to 2^-47, far too
 * much when x is near a multiple of pi/2.
 */
function reduceFast(x: number): number {
  const r = x * HPI_INV;
  const n = ((r | 0) + 0x800000) >> 24; // (int32_t) r truncates, like r | 0 for |r| < 2^31
  quadrant = n;
  return (x - n * HPI_HI) - n * HPI_LO;
}

/**
 * High 32 bits of the 64-bit product of a (< 2^31) and b (< 2^32), exactly:
 * with P = a * b_hi and Q = a * b_lo (16-bit halves of b, both < 2^47 so exact),
 * a*b = floor(P / 2^16) * 2^32 + (P mod 2^16) * 2^16 + Q, every piece exact in doubles.
 */
function mulHi(a: number, b: number): number {
  const p = a * (b >>> 16);
  const q = a * (b & 0xffff);
  const ph = Math.floor(p / 65536);
  return ph + Math.floor(((p - ph * 65536) * 65536 + q) / 4294967296);
}

/**
 * reduce_large for 120 <= |x| < inf (sign ignored): the exact 2.62 fixed-point
 * value of x * 4/pi mod 4 from a 32x96-bit product with the 4/pi table, in
 * 64-bit unsigned arithmetic carried here as two 32-bit words. Returns the
 * remainder in radians (an int64 rounded once to double, times 2pi 2^-64) and
 * leaves the quadrant (0..3) in `quadrant`.
 */
function reduceLarge(xi: number): number {
  const k = (xi >>> 26) & 15;
  const shift = (xi >>> 23) & 7;
  const m = (((xi & 0xffffff) | 0x800000) << shift) >>> 0; // < 2^31
  const a0 = INV_PIO4[k];
  const a4 = INV_PIO4[k + 4];
  const a8 = INV_PIO4[k + 8];
  // res0 = (u32)(m * a0) << 32 | (m * a8) >> 32, plus res1 = m * a4 (all mod 2^64)
  const res1Lo = Math.imul(m, a4) >>> 0;
  const res1Hi = mulHi(m, a4);
  let lo = mulHi(m, a8) + res1Lo;
  let carry = 0;
  if (lo >= 4294967296) {
    lo -= 4294967296;
    carry = 1;
  }
  let hi = ((Math.imul(m, a0) >>> 0) + res1Hi + carry) >>> 0;
  // n = (res0 + 2^61) >> 62; res0 -= n << 62 (only the high word changes)
  const n = ((hi + 0x20000000) >>> 0) >>> 30;
  hi = (hi - n * 0x40000000) | 0; // signed high word of the int64 remainder
  quadrant = n;
  // (double)(int64_t) res0: hi * 2^32 is exact, so the addition is the one rounding (to nearest).
  return (hi * 4294967296 + lo) * PI63;
}

/** glibc 2.36 sinf (the FMA build's results): f32 in, f32 out. */
export function sinf(y: number): number {
  F32[0] = y;
  const ix = U32[0];
  const x = F32[0];
  const abstop = (ix >>> 20) & 0x7ff;
  if (abstop < 0x3f4) {
    // |y| < pi/4: no reduction; below 2^-12, sin(y) rounds to y.
    if (abstop < 0x398) return x;
    return sinCosPoly(x, x * x, false, 0);
  }
  if (abstop < 0x42f) {
    // |y| < 120
    const r = reduceFast(x);
    const n = quadrant;
    return sinCosPoly(r * SIGN[n & 3], r * r, (n & 2) !== 0, n);
  }
  if (abstop < 0x7f8) {
    const sign = ix >>> 31;
    const r = reduceLarge(ix);
    const n = quadrant;
    // the input's sign folds into the quadrant used for the sign and the table, not the parity
    return sinCosPoly(r * SIGN[(n + sign) & 3], r * r, ((n + sign) & 2) !== 0, n);
  }
  return NaN; // inf or NaN
}

/** glibc 2.36 cosf (the FMA build's results): f32 in, f32 out. */
export function cosf(y: number): number {
  F32[0] = y;
  const ix = U32[0];
  const x = F32[0];
  const abstop = (ix >>> 20) & 0x7ff;
  if (abstop < 0x3f4) {
    if (abstop < 0x398) return 1;
    return sinCosPoly(x, x * x, false, 1);
  }
  if (abstop < 0x42f) {
    const r = reduceFast(x);
    const n = quadrant;
    return sinCosPoly(r * SIGN[n & 3], r * r, (n & 2) !== 0, n ^ 1);
  }
  if (abstop < 0x7f8) {
    const sign = ix >>> 31;
    const r = reduceLarge(ix);
    const n = quadrant;
    return sinCosPoly(r * SIGN[(n + sign) & 3], r * r, ((n + sign) & 2) !== 0, n ^ 1);
  }
  return NaN;
}

// ----------------------------------------------------------------------- expf

/**
 * __exp2f_data.tab: tab[i] = bits(2^(i/32)) - (i << 47), so that adding k << 47
 * (k = 32 e + i) gives the bits of 2^(k/32). Kept as [high word, low word].
 */
const EXP2_TAB = [
  "3ff0000000000000",
  "3fefd9b0d3158574",
  "3fefb5586cf9890f",
  "3fef9301d0125b51",
  "3fef72b83c7d517b",
  "3fef54873168b9aa",
  "3fef387a6e756238",
  "3fef1e9df51fdee1",
  "3fef06fe0a31b715",
  "3feef1a7373aa9cb",
  "3feedea64c123422",
  "3feece086061892d",
  "3feebfdad5362a27",
  "3feeb42b569d4f82",
  "3feeab07dd485429",
  "3feea47eb03a5585",
  "3feea09e667f3bcd",
  "3fee9f75e8ec5f74",
  "3feea11473eb0187",
  "3feea589994cce13",
  "3feeace5422aa0db",
  "3feeb737b0cdc5e5",
  "3feec49182a3f090",
  "3feed503b23e255d",
  "3feee89f995ad3ad",
  "3feeff76f2fb5e47",
  "3fef199bdd85529c",
  "3fef3720dcef9069",
  "3fef5818dcfba487",
  "3fef7c97337b9b5f",
  "3fefa4afa2a490da",
  "3fefd0765b6e4540",
];
const EXP2_HI = new Uint32Array(EXP2_TAB.map((h) => parseInt(h.slice(0, 8), 16)));
const EXP2_LO = new Uint32Array(EXP2_TAB.map((h) => parseInt(h.slice(8), 16)));

/**
 * 32/ln2 (invln2_scaled, 0x1.71547652b82fep+5) split in two: INVLN2N_HI keeps 29
 * significant bits and INVLN2N_LO the other 24, so each times an f32 (24 bits)
 * is an exact double product.
 */
const INVLN2N_HI = 0x171547650 * 2 ** -27;
const INVLN2N_LO = 0x2b82fe * 2 ** -47;
/** 1.5 * 2^52: adding it rounds a double below 2^51 to an integer (ties to even). */
const SHIFT = 0x18 * 2 ** 48;
// poly_scaled: 2^(r/32) ~ 1 + E2 r + E1 r^2 + E0 r^3
const E0 = 0x1c6af84b912394 * 2 ** -72; // 0x1.c6af84b912394p-5 / 32^3
const E1 = 0x1ebfce50fac4f3 * 2 ** -65; // 0x1.ebfce50fac4f3p-3 / 32^2
const E2 = 0x162e42ff0c52d6 * 2 ** -58; // 0x1.62e42ff0c52d6p-1 / 32

/**
 * glibc 2.36 expf (the FMA build's results): f32 in, f32 out.
 *
 * x * 32/ln2 = k + r with integer k and |r| <= 1/2; e^x = 2^(k/32) * 2^(r/32),
 * 2^(k/32) from the table and the exponent bits, 2^(r/32) by a cubic, all in double.
 * Special cases as glibc returns them: NaN -> NaN, -inf -> 0, x > 88.72 -> +inf,
 * x < -103.97 -> 0, x in [-103.97, -103.28) -> 2^-149 (its may-underflow path).
 */
export function expf(x0: number): number {
  F32[0] = x0;
  const ix = U32[0];
  const x = F32[0];
  const abstop = (ix >>> 20) & 0x7ff;
  if (abstop >= 0x42b) {
    // |x| >= 88 or not finite
    if (ix === 0xff800000) return 0;
    if (abstop >= 0x7f8) return x + x;
    if (x > 88.72283172607422) return Infinity; // 0x1.62e42ep6f
    if (x < -103.97207641601562) return 0; // 0x1.9fe368p6f
    if (x < -103.27892303466797) return 1.401298464324817e-45; // 0x1.9d1d9ep6f: 2^-149
  }
  // The FMA build computes kd = round(InvLn2N * x) from the exact product and
  // r = InvLn2N * x - kd with one rounding. zh + zl is that exact product.
  const p1 = INVLN2N_HI * x;
  const p2 = INVLN2N_LO * x;
  const zh = p1 + p2;
  const zl = p2 - (zh - p1); // exact error of zh (|p1| >= |p2|)
  let kd = zh + SHIFT - SHIFT;
  // The exact product is never a half-integer, but zh can be one: settle the tie by zl.
  const d = zh - kd;
  if (d === 0.5) {
    if (zl > 0) kd += 1;
  } else if (d === -0.5) {
    if (zl < 0) kd -= 1;
  }
  const r = zh - kd + zl; // zh - kd is exact, so this is the one rounding of the fused form
  const k = kd | 0;
  const i = k & 31;
  // t = tab[k % 32] + (k << 47) in 64-bit arithmetic: only the high word changes
  const s = f64FromBits((EXP2_HI[i] + (k << 15)) >>> 0, EXP2_LO[i]);
  const z = E0 * r + E1;
  const r2 = r * r;
  let y = E2 * r + 1;
  y = z * r2 + y;
  return Math.fround(y * s);
}
