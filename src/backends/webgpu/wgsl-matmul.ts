import { GGMLType, type GGMLTypeId } from "../../formats/ggml-types.ts";
import { forWeight, sumSquares } from "./wgsl-common.ts";

/**
 * Matmul kernels: out (T, d) = x (T, n) @ W^T for one weight type, W read
 * straight from its ggml blocks (never a dequantized copy).
 *
 * A workgroup of 256 threads owns 8 weight rows (32 threads per row, striding
 * over the row's units: a 32-element block for Q8_0/Q4_0/Q4_K sub-blocks, 4
 * elements for F32/F16) and a tile of TT = 8 token rows (dispatch y), so each
 * weight unit read is used for 8 activation rows. Quantized weights multiply
 * activations quantized the way llama.cpp's CPU backend does (Q8_0 for
 * Q8_0/Q4_0, Q8_K for Q4_K), with integer dot products; F16 multiplies
 * activations rounded to half, like ggml's F16 vec_dot.
 *
 * Params: a = (out word, x word, n, d), b = (T, row0, rows, rowBytes).
 * The weight binding starts at row row0 of the tensor (large tensors are bound
 * in row ranges); out is indexed by absolute row.
 */
const UNIT: Record<number, { units: string; body: string }> = {
  [GGMLType.F32]: {
    units: "n / 4u",
    body: `
      let wo = (wbase >> 2u) + u * 4u;
      let w4 = vec4<f32>(wf(wo), wf(wo + 1u), wf(wo + 2u), wf(wo + 3u));
      for (var k = 0u; k < nt; k++) {
        let xo = x + (t0 + k) * n + u * 4u;
        acc[k] += dot(w4, vec4<f32>(ldf(xo), ldf(xo + 1u), ldf(xo + 2u), ldf(xo + 3u)));
      }`,
  },
  [GGMLType.F16]: {
    units: "n / 4u",
    body: `
      let wo = (wbase >> 2u) + u * 2u;
      let w4 = vec4<f32>(unpack2x16float(wt[wo]), unpack2x16float(wt[wo + 1u]));
      for (var k = 0u; k < nt; k++) {
        let xo = x + (t0 + k) * n + u * 4u;
        acc[k] += dot(w4, quantizeToF16(vec4<f32>(ldf(xo), ldf(xo + 1u), ldf(xo + 2u), ldf(xo + 3u))));
      }`,
  },
  [GGMLType.Q8_0]: {
    units: "n / 32u",
    body: `
      let bo = wbase + u * 34u;
      let dw = wf16(bo);
      var q: array<u32, 8>;
      for (var j = 0u; j < 8u; j++) { q[j] = w32(bo + 2u + 4u * j); }
      for (var k = 0u; k < nt; k++) {
        let xb = x + ((t0 + k) * (n / 32u) + u) * 9u;
        var s = 0i;
        for (var j = 0u; j < 8u; j++) { s += dot4(q[j], st[xb + 1u + j]); }
        acc[k] += f32(s) * (dw * ldf(xb));
      }`,
  },
  [GGMLType.Q4_0]: {
    units: "n / 32u",
    body: `
      let bo = wbase + u * 18u;
      let dw = wf16(bo);
      var lo: array<u32, 4>;
      var hi: array<u32, 4>;
      for (var j = 0u; j < 4u; j++) {
        let w = w32(bo + 2u + 4u * j);
        lo[j] = w & 0x0f0f0f0fu;
        hi[j] = (w >> 4u) & 0x0f0f0f0fu;
      }
      for (var k = 0u; k < nt; k++) {
        let xb = x + ((t0 + k) * (n / 32u) + u) * 9u;
        var s = 0i;
        var sx = 0i;
        for (var j = 0u; j < 4u; j++) {
          let xl = st[xb + 1u + j];
          let xh = st[xb + 5u + j];
          s += dot4(lo[j], xl) + dot4(hi[j], xh);
          sx += dot4(0x01010101u, xl) + dot4(0x01010101u, xh);
        }
        acc[k] += f32(s - 8i * sx) * (dw * ldf(xb));
      }`,
  },
  [GGMLType.Q4_K]: {
    // unit = one 32-element sub-block j of a 256-element super-block
    units: "n / 32u",
    body: `
      let sb = u >> 3u;
      let j = u & 7u;
      let bo = wbase + sb * 144u;
      let dd = unpack2x16float(wt[bo >> 2u]);
      let sm = q4k_scale_min(bo, j);
      let qo = ((bo + 16u) >> 2u) + 8u * (j >> 1u);
      let shift = (j & 1u) * 4u;
      var q: array<u32, 8>;
      for (var i = 0u; i < 8u; i++) { q[i] = (wt[qo + i] >> shift) & 0x0f0f0f0fu; }
      let dsc = dd.x * f32(sm.x);
      let dmn = dd.y * f32(sm.y);
      for (var k = 0u; k < nt; k++) {
        let xb = x + ((t0 + k) * (n / 256u) + sb) * 81u;
        var s = 0i;
        for (var i = 0u; i < 8u; i++) { s += dot4(q[i], st[xb + 17u + 8u * j + i]); }
        let bsum = bitcast<i32>(st[xb + 1u + 2u * j]) + bitcast<i32>(st[xb + 2u + 2u * j]);
        acc[k] += ldf(xb) * (dsc * f32(s) - dmn * f32(bsum));
      }`,
  },
  [GGMLType.Q6_K]: {
    // unit = 32 elements (quarter k of half h) of a 210-byte super-block: two 16-element scales
    units: "n / 32u",
    body: `
      let sb = u >> 3u;
      let j = u & 7u;
      let h = j >> 2u;
      let k = j & 3u;
      let bo = wbase + sb * 210u;
      let dw = wf16(bo + 208u);
      let scA = f32(extractBits(bitcast<i32>(wbyte(bo + 192u + 8u * h + 2u * k)), 0u, 8u));
      let scB = f32(extractBits(bitcast<i32>(wbyte(bo + 193u + 8u * h + 2u * k)), 0u, 8u));
      var q: array<u32, 8>;
      for (var i = 0u; i < 8u; i++) {
        let ql = w32(bo + 64u * h + 32u * (k & 1u) + 4u * i);
        let qh = w32(bo + 128u + 32u * h + 4u * i);
        q[i] = ((ql >> (4u * (k >> 1u))) & 0x0f0f0f0fu) | (((qh >> (2u * k)) & 0x03030303u) << 4u);
      }
      for (var t = 0u; t < nt; t++) {
        let xb = x + ((t0 + t) * (n / 256u) + sb) * 81u;
        var sA = 0i;
        var sB = 0i;
        for (var i = 0u; i < 4u; i++) { sA += dot4(q[i], st[xb + 17u + 8u * j + i]); }
        for (var i = 4u; i < 8u; i++) { sB += dot4(q[i], st[xb + 17u + 8u * j + i]); }
        let bA = bitcast<i32>(st[xb + 1u + 2u * j]);
        let bB = bitcast<i32>(st[xb + 2u + 2u * j]);
        acc[t] += ldf(xb) * dw * (scA * f32(sA - 32i * bA) + scB * f32(sB - 32i * bB));
      }`,
  },
};

/**
 * F32's unit read as one 16-byte load (the weight binding declared vec4<u32>: prelude's vec4Weights) where UNIT's
 * reads its 4 words one at a time; the same values in the same dot, so the same bits. A row of n columns (n a
 * multiple of 4) is 16-byte aligned, as is every binding's offset.
 */
const F32_VEC4_UNIT = {
  units: "n / 4u",
  body: `
      let w4 = bitcast<vec4<f32>>(wt[(wbase >> 4u) + u]);
      for (var k = 0u; k < nt; k++) {
        let xo = x + (t0 + k) * n + u * 4u;
        acc[k] += dot(w4, vec4<f32>(ldf(xo), ldf(xo + 1u), ldf(xo + 2u), ldf(xo + 3u)));
      }`,
};

/**
 * Units of two blocks for Q8_0 and Q4_0 rows of an even number of blocks:
 * 68 and 36 bytes, so every weight word is read once, aligned (a lone 34- or
 * 18-byte block starts at an odd half-word every other time).
 */
const PAIRED_UNIT: Record<number, { units: string; body: string }> = {
  [GGMLType.Q8_0]: {
    units: "n / 64u",
    body: `
      let bo = (wbase >> 2u) + u * 17u;
      var wd: array<u32, 17>;
      for (var j = 0u; j < 17u; j++) { wd[j] = wt[bo + j]; }
      let d0 = unpack2x16float(wd[0]).x;
      let d1 = unpack2x16float(wd[8]).y;
      for (var k = 0u; k < nt; k++) {
        let xb = x + ((t0 + k) * (n / 32u) + 2u * u) * 9u;
        var s0 = 0i;
        var s1 = 0i;
        for (var j = 0u; j < 8u; j++) {
          s0 += dot4((wd[j] >> 16u) | (wd[j + 1u] << 16u), st[xb + 1u + j]);
          s1 += dot4(wd[9u + j], st[xb + 10u + j]);
        }
        acc[k] += f32(s0) * (d0 * ldf(xb)) + f32(s1) * (d1 * ldf(xb + 9u));
      }`,
  },
  [GGMLType.Q4_0]: {
    units: "n / 64u",
    body: `
      let bo = (wbase >> 2u) + u * 9u;
      var wd: array<u32, 9>;
      for (var j = 0u; j < 9u; j++) { wd[j] = wt[bo + j]; }
      let d0 = unpack2x16float(wd[0]).x;
      let d1 = unpack2x16float(wd[4]).y;
      for (var k = 0u; k < nt; k++) {
        let xb = x + ((t0 + k) * (n / 32u) + 2u * u) * 9u;
        var s0 = 0i;
        var sx0 = 0i;
        var s1 = 0i;
        var sx1 = 0i;
        for (var j = 0u; j < 4u; j++) {
          let w0 = (wd[j] >> 16u) | (wd[j + 1u] << 16u);
          let w1 = wd[5u + j];
          let xl0 = st[xb + 1u + j];
          let xh0 = st[xb + 5u + j];
          let xl1 = st[xb + 10u + j];
          let xh1 = st[xb + 14u + j];
          s0 += dot4(w0 & 0x0f0f0f0fu, xl0) + dot4((w0 >> 4u) & 0x0f0f0f0fu, xh0);
          sx0 += dot4(0x01010101u, xl0) + dot4(0x01010101u, xh0);
          s1 += dot4(w1 & 0x0f0f0f0fu, xl1) + dot4((w1 >> 4u) & 0x0f0f0f0fu, xh1);
          sx1 += dot4(0x01010101u, xl1) + dot4(0x01010101u, xh1);
        }
        acc[k] += f32(s0 - 8i * sx0) * (d0 * ldf(xb)) + f32(s1 - 8i * sx1) * (d1 * ldf(xb + 9u));
      }`,
  },
};

/** Whether a row of n columns of this type is read in paired-block units. */
export function pairedUnits(type: GGMLTypeId, n: number): boolean {
  return PAIRED_UNIT[type] !== undefined && (n / 32) % 2 === 0;
}

/** Units (the stride of one thread's loop) in a row of n columns: 4 elements for F32/F16, a block or paired blocks else. */
export function unitsPerRow(type: GGMLTypeId, n: number): number {
  if (pairedUnits(type, n)) return n / 64;
  return type === GGMLType.F32 || type === GGMLType.F16 ? n / 4 : n / 32;
}

/**
 * Threads per weight row: 64 for rows of 128 units or more (4 rows per
 * workgroup: a decode step's projections of few, long rows still spread over
 * the whole GPU), else 32. Fewer (8 or 16, more units per thread) measured
 * slower on an H200: the shorter reduction did not pay for the fewer workgroups.
 */
export function lanesFor(type: GGMLTypeId, n: number): number {
  return unitsPerRow(type, n) >= 128 ? 64 : 32;
}

export function matmulTypes(): GGMLTypeId[] {
  return Object.keys(UNIT).map(Number);
}

/**
 * What a matmul dispatch does with its rows once they are summed:
 *   store     out = x W^T (one weight; the tensor may be bound in row ranges)
 *   residual  out = x W^T and resid += out (the residual add of the output / down projection)
 *   swiglu    two weights, gate and up: up -> out2, silu(gate) * up -> out (llama's feed-forward)
 *   qkv       three weights, q, k, v: RoPE on q and k, q/k/v -> their buffers, k and v into their KV-cache slots
 */
export type Epilogue = "store" | "residual" | "swiglu" | "qkv";
export const EPILOGUE_WEIGHTS: Record<Epilogue, number> = { store: 1, residual: 1, swiglu: 2, qkv: 3 };

/**
 * Which weight (seg) and row (r) thread-row rl of workgroup wg.x computes.
 * swiglu interleaves gate and up rows so a workgroup holds both halves of its
 * 4 outputs; qkv holds 4 RoPE pairs (rows i and i + ropeDim/2, or 2i and
 * 2i + 1, of one head), so the epilogue rotates them without another pass.
 */
const ROW_MAP: Record<Epilogue, string> = {
  store: `let seg = 0u; let r = wg.x * ROWS + rl; let valid = r < P.b.x;`,
  residual: `let seg = 0u; let r = wg.x * ROWS + rl; let valid = r < P.b.x;`,
  swiglu: `let seg = rl & 1u; let r = wg.x * PAIRS + (rl >> 1u); let valid = r < P.b.x;`,
  qkv: `let pr = qkv_pair(wg.x * PAIRS + (rl >> 1u));
  let seg = pr.x;
  let r = select(pr.z, pr.w, (rl & 1u) == 1u);
  let valid = pr.y != NONE;`,
};

/**
 * The opening of a one-row kernel's main (rowKernel's, f32RowKernel's): the row width, the thread's lane and
 * thread-row, the one token row (t0, nt), then ROW_MAP's weight and row for the epilogue.
 */
function oneRowThread(epilogue: Epilogue): string {
  return `  let n = P.a.z;
  let rowBytes = P.b.w;
  let lane = li % LANES;
  let rl = li / LANES;
  let t0 = 0u;
  let nt = 1u;
  ${ROW_MAP[epilogue]}`;
}

/**
 * qkv: pair gp of the concatenated q|k|v rows -> (segment, valid, row a, row b).
 * P: b = (qRows, kvRows, -, rowBytes), d = (-, -, headDim, ropeDim | halves << 16).
 */
export const QKV_PAIR = /* wgsl */ `
const NONE: u32 = 0xffffffffu;
fn qkv_pair(gp: u32) -> vec4<u32> {
  let qp = P.b.x / 2u; let kp = P.b.y / 2u;
  let hd = P.d.z; let ropeHalf = (P.d.w & 0xffffu) / 2u; let halves = P.d.w >> 16u;
  if (gp >= qp + 2u * kp) { return vec4<u32>(0u, NONE, 0u, 0u); }
  if (gp >= qp + kp) { let i = gp - qp - kp; return vec4<u32>(2u, 0u, 2u * i, 2u * i + 1u); }
  let seg = select(0u, 1u, gp >= qp);
  let pp = gp - select(0u, qp, gp >= qp);
  let head = pp / (hd / 2u);
  let s = pp % (hd / 2u);
  var a = 2u * s;
  var b = 2u * s + 1u;
  if (halves == 1u && s < ropeHalf) { a = s; b = s + ropeHalf; }
  return vec4<u32>(seg, 0u, head * hd + a, head * hd + b);
}
// Token t's reads for pair pr of Q/K/V outputs: the RoPE factors (rot: whether the pair rotates, Q and K) and, for K
// and V, the word of the token's KV-cache slot (its position, the position's page, then the slot: three dependent
// reads). Apart from qkv_store_ahead so that a kernel can issue them before its sums (f32RowKernel's EARLY_EPILOGUE).
struct QkvAhead { fc: f32, fs: f32, rot: bool, at: u32 }
fn qkv_ahead(t: u32, pr: vec4<u32>) -> QkvAhead {
  var q = QkvAhead(1.0, 0.0, false, 0u);
  let hd = P.d.z; let ropeHalf = (P.d.w & 0xffffu) / 2u;
  let s = (pr.z % hd) / select(2u, 1u, (P.d.w >> 16u) == 1u && (pr.z % hd) < ropeHalf);
  if (pr.x < 2u && s < ropeHalf) {
    let c = P.d.x + (st[P.c.w + t] * ropeHalf + s) * 2u;
    q.fc = ldf(c);
    q.fs = ldf(c + 1u);
    q.rot = true;
  }
  if (pr.x > 0u) {
    let m = P.d.y + t * 4u;
    let pos = st[m + 1u];
    let page = st[(st[m] >> 2u) + pos / P.e.z];
    q.at = ((P.e.x + page * P.e.y + (pos % P.e.z) * P.e.w * 4u) >> 2u) + (select(P.f.y, P.f.x, pr.x == 1u) >> 2u);
  }
  return q;
}
// Token t's pair pr of Q/K/V outputs (a, b), its reads done (qkv_ahead): rotated by RoPE (Q and K), stored to its
// output rows, and K and V also to the token's KV-cache slot.
fn qkv_store_ahead(t: u32, pr: vec4<u32>, a: f32, b: f32, q: QkvAhead) {
  var ra = a;
  var rb = b;
  if (q.rot) {
    ra = a * q.fc - b * q.fs;
    rb = a * q.fs + b * q.fc;
  }
  let rows = select(P.b.y, P.b.x, pr.x == 0u);
  let out = select(select(P.c.z, P.c.y, pr.x == 1u), P.c.x, pr.x == 0u);
  stf(out + t * rows + pr.z, ra);
  stf(out + t * rows + pr.w, rb);
  if (pr.x > 0u) {
    stf(q.at + pr.z, ra);
    stf(q.at + pr.w, rb);
  }
}
// The same with the reads after the sums: shared by the many-row and the tiled matmuls' qkv epilogues.
fn qkv_store(t: u32, pr: vec4<u32>, a: f32, b: f32) {
  qkv_store_ahead(t, pr, a, b, qkv_ahead(t, pr));
}
`;

/** The epilogues; sum(rl, k) is the reduced dot product of thread-row rl and token t0 + k. */
const EPILOGUE: Record<Epilogue, string> = {
  // P: a = (-, x, n, T), b = (rows, row0, d, rowBytes), c.x = out
  store: `
  if (lane == 0u && valid) {
    for (var k = 0u; k < nt; k++) { stf(P.c.x + (t0 + k) * P.b.z + P.b.y + r, sum(rl, k)); }
  }`,
  // c = (out, resid)
  residual: `
  if (lane == 0u && valid) {
    for (var k = 0u; k < nt; k++) {
      let i = (t0 + k) * P.b.z + r;
      let v = sum(rl, k);
      stf(P.c.x + i, v);
      stf(P.c.y + i, ldf(P.c.y + i) + v);
    }
  }`,
  // c = (out, up out); the silu expression is SWIGLU's
  swiglu: `
  if (li < PAIRS * TT) {
    let p = li % PAIRS;
    let k = li / PAIRS;
    let rr = wg.x * PAIRS + p;
    if (k < nt && rr < P.b.x) {
      let g = sum(2u * p, k);
      let u = sum(2u * p + 1u, k);
      let i = (t0 + k) * P.b.x + rr;
      stf(P.c.y + i, u);
      stf(P.c.x + i, g / (1.0 + exp(-g)) * u);
    }
  }`,
  // c = (q out, k out, v out, positions), d = (rope table, row metadata, headDim, ropeDim | halves << 16),
  // e = (cache base, pageBytes, pageSize, kvDim), f = (kOff, vOff) bytes; the rotation is ROPE's, the slot KV_STORE's
  qkv: `
  if (li < PAIRS * TT) {
    let p = li % PAIRS;
    let k = li / PAIRS;
    let pr = qkv_pair(wg.x * PAIRS + p);
    if (k < nt && pr.y != NONE) { qkv_store(t0 + k, pr, sum(2u * p, k), sum(2u * p + 1u, k)); }
  }`,
};

/**
 * What a decode (T = 1) matmul does to its input row before the products, in
 * each workgroup (the row is small and in cache), so that the op before it
 * needs no dispatch of its own; the staged row lives in workgroup memory:
 *   norm   F32/F16 weights: the RMSNorm before it; the normed row is staged as f32
 *   normq  Q8_0/Q4_0 weights: the RMSNorm and the Q8_0 activation quantizer; the row's Q8_0 blocks are staged
 *   quant  Q8_0/Q4_0 weights: the quantizer alone (the down projection's input, SwiGLU's output)
 * The arithmetic is RMSNORM's and quantQ8_0Kernel's (wgsl-ops.ts), reduction orders included, so the
 * products are bit-identical to those of the separate dispatches. Memory is left as those dispatches
 * leave it: the normed row and the quantized blocks are written too, spread over the workgroups.
 */
export type Prologue = "none" | "norm" | "normq" | "quant";

/** Words of workgroup memory the staged row of n columns takes (0: it does not fit the default 16 KiB beside the reduction). */
export function stagedWords(n: number, prologue: Prologue = "norm"): number {
  const words = prologue === "normq" || prologue === "quant" ? (n % 32 === 0 ? (n / 32) * 9 : Infinity) : n;
  return words * 4 + 1024 <= 16384 ? words : 0;
}

/** The RMSNorm's scale of the row at P.g.x of n columns: RMSNORM's sum of squares, in its order (sumSquares). */
const normScale = (n: number) => /* wgsl */ `
  ${sumSquares(n, "xin")}
  red[li] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(red[0] / f32(n) + bitcast<f32>(P.g.z));
  workgroupBarrier();`;

/**
 * The prologue's WGSL. P.g = (source row word, normed-row word, eps bits, quantized-blocks word); the norm weight is wt_3.
 * norm: workgroup 0 writes the normed row. normq/quant: a thread takes 4 elements (one packed word of a block),
 * 8 threads a block, 1024 elements a round; block b's normed values and Q8_0 block are written by workgroup b % workgroups.
 */
export function prologueCode(n: number, prologue: Prologue): string {
  if (prologue === "norm") {
    return /* wgsl */ `
var<workgroup> xq: array<u32, ${stagedWords(n)}>;
fn xqf(i: u32) -> f32 { return bitcast<f32>(xq[i]); }
fn stage_input(wgx: u32, nwgx: u32, li: u32, n: u32) {
  let xin = P.g.x;${normScale(n)}
  for (var i = li; i < n; i += 256u) {
    let v = ldf(xin + i) * scale * wf_3(i);
    xq[i] = bitcast<u32>(v);
    if (wgx == 0u) { stf(P.g.y + i, v); }
  }
  workgroupBarrier();
}
`;
  }
  const norm = prologue === "normq";
  return /* wgsl */ `
var<workgroup> xq: array<u32, ${stagedWords(n, prologue)}>;
fn xqf(i: u32) -> f32 { return bitcast<f32>(xq[i]); }
fn stage_input(wgx: u32, nwgx: u32, li: u32, n: u32) {
  let xin = P.g.x;${norm ? normScale(n) : ""}
  for (var r = 0u; r < ${Math.ceil(n / 1024)}u; r++) {
    let e = r * 1024u + 4u * li;
    let b = e / 32u;
    let mine = b % nwgx == wgx;
    var v = vec4<f32>(0.0);
    if (e < n) {
      v = vec4<f32>(ldf(xin + e), ldf(xin + e + 1u), ldf(xin + e + 2u), ldf(xin + e + 3u));${
    norm
      ? `
      v = v * scale * vec4<f32>(wf_3(e), wf_3(e + 1u), wf_3(e + 2u), wf_3(e + 3u));
      if (mine) { stf(P.g.y + e, v.x); stf(P.g.y + e + 1u, v.y); stf(P.g.y + e + 2u, v.z); stf(P.g.y + e + 3u, v.w); }`
      : ""
  }
    }
    red[li] = max(max(abs(v.x), abs(v.y)), max(abs(v.z), abs(v.w)));
    workgroupBarrier();
    let first = li & ~7u;
    var amax = red[first];
    for (var j = 1u; j < 8u; j++) { amax = max(amax, red[first + j]); }
    workgroupBarrier();
    if (e < n) {
      let id = select(0.0, 127.0 / amax, amax != 0.0);
      let word = pack_i8(vec4<i32>(round(v * id)));
      let o = b * 9u;
      xq[o + 1u + (li & 7u)] = word;
      if (mine) { st[P.g.w + o + 1u + (li & 7u)] = word; }
      if ((li & 7u) == 0u) {
        let d = quantizeToF16(amax / 127.0);
        xq[o] = bitcast<u32>(d);
        if (mine) { stf(P.g.w + o, d); }
      }
    }
  }
  workgroupBarrier();
}
`;
}

/**
 * A matmul kernel of one weight type, epilogue and token tile TT (1 for
 * decode: no accumulator is spent on rows that do not exist). A workgroup of
 * 256 threads owns 256 / lanes weight rows (`lanes` threads per row, striding
 * over the row's units) and TT token rows (dispatch y), so each weight unit
 * read serves TT activation rows; a row's partial sums meet in a tree in
 * workgroup memory. 64 lanes (4 rows per workgroup) keep more workgroups in
 * flight where a matrix has few rows. vec4 (F32 only): the weights are bound as vec4<u32> and each unit is one
 * 16-byte load (F32_VEC4_UNIT).
 */
export function matmulKernel(
  type: GGMLTypeId,
  epilogue: Epilogue = "store",
  tt = 8,
  paired = false,
  lanes = 32,
  prologue: Prologue = "none",
  n = 0,
  vec4 = false,
): string {
  const u = paired ? PAIRED_UNIT[type] : vec4 && type === GGMLType.F32 ? F32_VEC4_UNIT : UNIT[type];
  const segs = EPILOGUE_WEIGHTS[epilogue];
  // with a prologue the input row is read from workgroup memory (xq), not the state buffer
  const body = (
    b: number,
  ) => (prologue === "none" ? forWeight(u.body, b) : forWeight(u.body, b).replace(/\bst\[/g, "xq[").replace(/\bldf\(/g, "xqf("));
  // F32/F16: 4 units a round, written out one after another (straight-line code: the compiler issues every unit's
  // loads before the sums wait on them, where a loop keeps one unit's in flight), then the rest one at a time; each
  // thread still adds its units in the loop's order, so the sums are the same bits. Quantized units stay one at a
  // time: written out twice, the fused kernels' larger bodies measured 0.87x on the 1B shape (H200, 2026-12-05), a
  // thread there having one or two units of a row anyway.
  const unroll = type === GGMLType.F32 || type === GGMLType.F16 ? 4 : 1;
  const loops = [];
  for (let b = 0; b < segs; b++) {
    const one = (i: number) =>
      `\n        {\n        let u = u0${i ? ` + ${i}u * LANES` : ""};${body(b).replaceAll("\n", "\n  ")}\n        }`;
    const round = Array.from({ length: unroll }, (_, i) => one(i)).join("");
    const last = unroll - 1;
    const rounds = unroll > 1 ? `\n      for (; u0 + ${last}u * LANES < nu; u0 += ${unroll}u * LANES) {${round}\n      }` : "";
    loops.push(`if (seg == ${b}u) {\n      var u0 = lane;${rounds}\n      for (; u0 < nu; u0 += LANES) {${one(0)}\n      }\n    }`);
  }
  return /* wgsl */ `
${prologue === "none" ? "" : prologueCode(n, prologue)}
${epilogue === "qkv" ? QKV_PAIR : ""}
const TT: u32 = ${tt}u;
var<workgroup> red: array<f32, ${256 * tt}>;
const LANES: u32 = ${lanes}u;
const ROWS: u32 = ${256 / lanes}u;
const PAIRS: u32 = ${128 / lanes}u;
fn sum(rl: u32, k: u32) -> f32 { return red[rl * LANES * TT + k]; }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let x = P.a.y; let n = P.a.z; let T = P.a.w;
  let rowBytes = P.b.w;
  let lane = li % LANES;
  let rl = li / LANES;
  let t0 = wg.y * TT;
  // one token row (decode: as many y workgroups as rows): a constant, so the per-unit loops over rows vanish
  let nt = ${tt === 1 ? "1u" : "min(TT, T - t0)"};
  ${ROW_MAP[epilogue]}
  ${prologue === "none" ? "" : "stage_input(wg.x, nwg.x, li, n);"}
  var acc: array<f32, ${tt}>;
  if (valid) {
    let wbase = r * rowBytes;
    let nu = ${u.units};
    ${loops.join(" else ")}
  }
  for (var k = 0u; k < TT; k++) { red[li * TT + k] = acc[k]; }
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var k = 0u; k < TT; k++) { red[li * TT + k] += red[(li + s) * TT + k]; }
    }
    workgroupBarrier();
  }${EPILOGUE[epilogue]}
}
`;
}

/**
 * Decode (one token row) kernels for Q8_0/Q4_0 weights whose rows are whole pairs of blocks: `lanes` threads a
 * row (256 / lanes rows a workgroup) and `unroll` paired units in flight a thread, the activation's Q8_0 blocks
 * staged once in workgroup memory (copied from the state buffer, or made there by a normq / quant prologue) and,
 * for Q4_0, each block's sum of its 32 quants precomputed there once, where matmulKernel's threads each fetch
 * their one or two units and the activation from memory and sum a Q4_0 block's quants again per row. Every weight
 * word is read once as an aligned u32 (the paired unit). Integer sums per block are exact, so a row's products
 * depend only on which thread adds which blocks and the tree after: the same for every prologue (the fold's
 * variants are bit-identical to each other), not matmulKernel's order.
 */
export interface RowPlan {
  lanes: number;
  unroll: number;
  /**
   * Units of 8 blocks (4 paired units: 144 bytes of Q4_0, 272 of Q8_0), read as 9 or 17 vec4<u32> loads: the row
   * is 16-byte aligned where its block count is a multiple of 8, so ggml's own layout serves (no repacked copy).
   * The kernel then binds its weights as vec4<u32> (prelude's vec4Weights).
   */
  octets: boolean;
}

/**
 * Threads a row and units in flight a thread for `rows` rows of n columns (null: matmulKernel's form, as for rows
 * of an odd number of blocks, other types, or an activation that does not fit workgroup memory beside its sums).
 * "auto" takes paired units, 16 threads a row (fewer where a row has fewer units) and up to 4 units in flight a thread
 * (a row's units in one round where they are fewer: stories110M's 12 units a row as 8 threads x 2): on an H200
 * (2026-12-05 15:02 UTC, bench/webgpu-matvec.ts, the 1B shape's matrices) that form was the fastest of the 31-35
 * unfolded forms measured, or within 1.07x of it, for every matrix and both types (Q4_0 gate/up 8.56 us against
 * matmulKernel's 19.6, down 31.8 against 51.9, Q/K/V 20.8 against 28.9, the classifier 47.9 against 648; Q8_0 55.7 /
 * 156.7, 39.4 / 72.6, 22.3 / 40.3, 169 / 968), where the first rule's fewest threads that still made 256 workgroups (2
 * a row and octets for the classifier, 4 for gate/up) ran 1.06-1.9x slower. "pairs" and "octets" keep that first rule
 * (as few threads a row as still give ROW_WORKGROUPS workgroups, up to 2 octets or 4 paired units in flight) for
 * measuring.
 */
export function rowPlan(type: GGMLTypeId, n: number, form: RowForm = "auto", rows = 0): RowPlan | null {
  if (form === "off" || (type !== GGMLType.Q4_0 && type !== GGMLType.Q8_0) || !pairedUnits(type, n)) return null;
  if (rowStagedWords(type, n) === 0) return null;
  if (form === "auto") {
    const units = n / 64;
    let lanes = 2;
    while (lanes * 2 <= Math.min(16, units)) lanes *= 2;
    return { lanes, unroll: Math.min(4, Math.ceil(units / lanes)), octets: false };
  }
  const octets = form === "octets" && n % 256 === 0;
  if (form === "octets" && !octets) return null;
  const units = octets ? n / 256 : n / 64;
  let lanes = 2;
  while (lanes * 2 <= Math.min(32, units) && Math.ceil(rows / (256 / lanes)) < ROW_WORKGROUPS) lanes *= 2;
  return { lanes, unroll: Math.max(1, Math.min(octets ? 2 : 4, Math.floor(units / lanes))), octets };
}

/** Workgroups a row kernel's dispatch aims at (rowPlan): two for each of a large GPU's ~130 multiprocessors. */
export const ROW_WORKGROUPS = 256;

/**
 * Which one-row kernels decode's Q8_0/Q4_0 matmuls take, folded or not: matmulKernel's (off), the row kernel's
 * pairs or octets by the first rule, or the best measured (auto: rowPlan's; see options.ts ROW_FORM).
 */
export type RowForm = "off" | "pairs" | "octets" | "auto";

/** Words of workgroup memory a row kernel stages (the Q8_0 blocks, and Q4_0's block sums); 0 where it does not fit. */
export function rowStagedWords(type: GGMLTypeId, n: number): number {
  if (n % 64 !== 0) return 0;
  const words = (n / 32) * 9 + (type === GGMLType.Q4_0 ? n / 32 : 0);
  return words * 4 + 1024 <= 16384 ? words : 0;
}

/**
 * A paired unit's products, written out (w(k): the name of the unit's word k; xb: its first block's word in xq):
 * straight-line code on plain variables, so no driver keeps a per-thread array in local memory.
 */
export const ROW_UNIT: Record<number, { words: number; use: (w: (k: number) => string) => string }> = {
  [GGMLType.Q8_0]: {
    words: 17,
    use: (w) => {
      const j8 = [0, 1, 2, 3, 4, 5, 6, 7];
      const s0 = j8.map((j) => `dot4((${w(j)} >> 16u) | (${w(j + 1)} << 16u), xq[xb + ${1 + j}u])`).join(" + ");
      const s1 = j8.map((j) => `dot4(${w(9 + j)}, xq[xb + ${10 + j}u])`).join(" + ");
      return `
        let s0 = ${s0};
        let s1 = ${s1};
        acc += f32(s0) * (unpack2x16float(${w(0)}).x * xqf(xb)) + f32(s1) * (unpack2x16float(${w(8)}).y * xqf(xb + 9u));`;
    },
  },
  [GGMLType.Q4_0]: {
    words: 9,
    use: (w) => {
      const j4 = [0, 1, 2, 3];
      const lo = (v: string) => `${v} & 0x0f0f0f0fu`, hi = (v: string) => `(${v} >> 4u) & 0x0f0f0f0fu`;
      const w0 = (j: number) => `((${w(j)} >> 16u) | (${w(j + 1)} << 16u))`;
      const s0 = j4.map((j) => `dot4(${lo(w0(j))}, xq[xb + ${1 + j}u]) + dot4(${hi(w0(j))}, xq[xb + ${5 + j}u])`).join("\n          + ");
      const s1 = j4.map((j) => `dot4(${lo(w(5 + j))}, xq[xb + ${10 + j}u]) + dot4(${hi(w(5 + j))}, xq[xb + ${14 + j}u])`).join(
        "\n          + ",
      );
      return `
        let s0 = ${s0};
        let s1 = ${s1};
        acc += f32(s0 - 8i * xsum[2u * u]) * (unpack2x16float(${w(0)}).x * xqf(xb))
          + f32(s1 - 8i * xsum[2u * u + 1u]) * (unpack2x16float(${w(4)}).y * xqf(xb + 9u));`;
    },
  },
};

/** The row kernel: see RowPlan. Prologue "none" copies the activation's blocks (at P.a.y) into workgroup memory. */
export function rowKernel(type: GGMLTypeId, epilogue: Epilogue, prologue: Prologue, n: number, plan: RowPlan): string {
  const nb = n / 32, { lanes: L, unroll: U, octets } = plan, units = octets ? nb / 8 : nb / 2, q4 = type === GGMLType.Q4_0;
  const unit = ROW_UNIT[type], segs = EPILOGUE_WEIGHTS[epilogue];
  const ragged = units % (L * U) !== 0;
  const staging = prologue === "none"
    ? /* wgsl */ `
var<workgroup> xq: array<u32, ${nb * 9}>;
fn xqf(i: u32) -> f32 { return bitcast<f32>(xq[i]); }
fn stage_input(wgx: u32, nwgx: u32, li: u32, n: u32) {
  for (var i = li; i < ${nb * 9}u; i += 256u) { xq[i] = st[P.a.y + i]; }
  workgroupBarrier();
}`
    : prologueCode(n, prologue);
  const loops: string[] = [];
  for (let b = 0; b < segs; b++) {
    const loads: string[] = [], uses: string[] = [];
    for (let i = 0; i < U; i++) {
      const u = i ? `u0 + ${i * L}u` : "u0";
      // a unit past the row (ragged rows) reads the row's last unit again and adds nothing
      const at = ragged && i ? `min(${u}, ${units - 1}u)` : u;
      let use: string;
      if (octets) {
        // the octet's 4 paired units, word m of unit p being word 9p + m (Q4_0) or 17p + m (Q8_0) of its vec4 loads
        const W = unit.words, word = (m: number) => `v${i}_${m >> 2}.${"xyzw"[m & 3]}`;
        loads.push(`let o${i} = rv + ${W}u * (${at});`);
        for (let k = 0; k < W; k++) loads.push(`let v${i}_${k} = ${forWeight("wt", b)}[o${i} + ${k}u];`);
        use = [0, 1, 2, 3].map((p) =>
          `{
        let u = 4u * (${u}) + ${p}u;
        let xb = u * 18u;${unit.use((k) => word(p * W + k)).replaceAll("\n", "\n  ")}
        }`
        ).join("\n        ");
        use = `{\n        ${use}\n        }`;
      } else {
        loads.push(`let o${i} = rw + ${unit.words}u * (${at});`);
        for (let k = 0; k < unit.words; k++) loads.push(`let w${i}_${k} = ${forWeight("wt", b)}[o${i} + ${k}u];`);
        use = `{
        let u = ${u};
        let xb = u * 18u;${unit.use((k) => `w${i}_${k}`).replaceAll("\n", "\n  ")}
        }`;
      }
      uses.push(ragged && i ? `if (${u} < ${units}u) ${use}` : use);
    }
    loops.push(`if (seg == ${b}u) {
      for (var u0 = lane; u0 < ${units}u; u0 += ${L * U}u) {
        ${loads.join("\n        ")}
        ${uses.join("\n        ")}
      }
    }`);
  }
  return /* wgsl */ `
${staging}
${epilogue === "qkv" ? QKV_PAIR : ""}
const TT: u32 = 1u;
var<workgroup> red: array<f32, 256>;
${q4 ? `var<workgroup> xsum: array<i32, ${nb}>;` : ""}
const LANES: u32 = ${L}u;
const ROWS: u32 = ${256 / L}u;
const PAIRS: u32 = ${128 / L}u;
fn sum(rl: u32, k: u32) -> f32 { return red[rl * LANES]; }
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${oneRowThread(epilogue)}
  stage_input(wg.x, nwg.x, li, n);${
    q4
      ? `
  // each block's sum of its 32 activation quants, for Q4_0's q - 8 (once here, not once per row)
  for (var b = li; b < ${nb}u; b += 256u) {
    var s = 0i;
    for (var j = 1u; j < 9u; j++) { s += dot4(0x01010101u, xq[b * 9u + j]); }
    xsum[b] = s;
  }
  workgroupBarrier();`
      : ""
  }
  var acc = 0.0;
  if (valid) {
    let ${octets ? "rv = r * (rowBytes / 16u)" : "rw = r * (rowBytes / 4u)"};
    ${loops.join(" else ")}
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }${EPILOGUE[epilogue]}
}
`;
}

/**
 * Which kernel decode's one-row F32 matmuls take: matmulKernel's (today: the activation read from the state buffer
 * a unit at a time, lanesFor's or f32Lanes' threads a row) or f32RowKernel's (rows). See options.ts F32_FORM.
 */
export type F32Form = "today" | "rows";
export const F32_FORMS: F32Form[] = ["today", "rows"];

/** Words of workgroup memory f32RowKernel stages for a row of n columns (0: n not a multiple of 4, or too wide beside its sums). */
export function f32RowStagedWords(n: number): number {
  return n % 4 === 0 && n * 4 + 1024 <= 16384 ? n : 0;
}

/** Units (16-byte loads) f32RowKernel keeps in flight a thread for a row of n columns at `lanes` threads a row. */
export function f32RowUnroll(n: number, lanes: number): number {
  return Math.min(16, Math.ceil(n / 4 / lanes));
}

/**
 * f32RowKernel's epilogues that read memory (residual, qkv), with those reads issued before the staging: the
 * residual's old value (EPILOGUE.residual reads it after the sums), and qkv_store's RoPE factors and KV-cache slot
 * (QKV_PAIR's qkv_ahead: the position, its page, then the slot, three dependent reads, after the sums in qkv_store). The same
 * arithmetic on the same values as EPILOGUE's, for one token row. "before": thread code run ahead of the staging;
 * "after": the epilogue proper.
 */
const EARLY_EPILOGUE: Partial<Record<Epilogue, { before: string; after: string }>> = {
  residual: {
    before: `var old = 0.0;
  if (lane == 0u && valid) { old = ldf(P.c.y + r); }`,
    after: `
  if (lane == 0u && valid) {
    let v = sum(rl, 0u);
    stf(P.c.x + r, v);
    stf(P.c.y + r, old + v);
  }`,
  },
  qkv: {
    // QKV_PAIR's qkv_ahead and qkv_store_ahead for token 0: the reads before the staging, the stores after the sums
    before: `var pa = vec4<u32>(0u, NONE, 0u, 0u);
  var ahead = QkvAhead(1.0, 0.0, false, 0u);
  if (li < PAIRS) {
    pa = qkv_pair(wg.x * PAIRS + li);
    if (pa.y != NONE) { ahead = qkv_ahead(0u, pa); }
  }`,
    after: `
  if (li < PAIRS && pa.y != NONE) { qkv_store_ahead(0u, pa, sum(2u * li, 0u), sum(2u * li + 1u, 0u), ahead); }`,
  },
};

/**
 * Decode's one-row F32 matmul (F32Form "rows"): the activation row (normed first with prologue "norm", RMSNORM's
 * arithmetic as prologueCode's) staged once a workgroup in workgroup memory as vec4<f32>, where matmulKernel reads
 * it from the state buffer four words a unit for every row; each thread issues all its units' 16-byte weight loads
 * (f32RowUnroll's, up to 16) before the first dot waits on one (matmulKernel's loop keeps one unit in flight where a
 * thread has fewer than 4 rounds), and where that is the whole row's share (one round) before the staging, so the
 * weights' latency runs under the activation's loads, the norm and the barrier (as do the residual and qkv epilogues'
 * own reads, EARLY_EPILOGUE); a row's partial sums meet in two steps (lanes 0-3 each add a quarter
 * of the row's lanes in order, the epilogue's reader adds those four), 2 barriers where the tree takes log2(lanes).
 * A thread adds its units in matmulKernel's order, so only the reduction's order differs from today's.
 */
export function f32RowKernel(epilogue: Epilogue, prologue: "none" | "norm", n: number, lanes: number): string {
  const n4 = n / 4, L = lanes, U = f32RowUnroll(n, L), segs = EPILOGUE_WEIGHTS[epilogue];
  const norm = prologue === "norm";
  // one round (a thread's units all in flight at once, as for every stories110M matrix at 32 and 64 lanes): the weight
  // loads go before the staging, their latency under the activation's loads (and the norm's) and its barrier
  const single = L * U >= n4, whole = Math.floor(n4 / L);
  const at = (u: string, i: number) => (single ? i >= whole : n4 % (L * U) !== 0 && i > 0) ? `min(${u}, ${n4 - 1}u)` : u;
  const guard = (u: string, i: number) => (single ? i >= whole : n4 % (L * U) !== 0 && i > 0) ? `if (${u} < ${n4}u) ` : "";
  const unit = (i: number) => single ? (i ? `lane + ${i * L}u` : "lane") : (i ? `u0 + ${i * L}u` : "u0");
  const perSeg: string[] = [], uses: string[] = [];
  for (let i = 0; i < U; i++) uses.push(`${guard(unit(i), i)}{ acc += dot(w${i}, xs[${unit(i)}]); }`);
  for (let b = 0; b < segs; b++) {
    const loads: string[] = [];
    for (let i = 0; i < U; i++) {
      // a unit past the row (ragged rows) reads the row's last unit again and adds nothing
      const load = `bitcast<vec4<f32>>(${forWeight("wt", b)}[rv + ${at(unit(i), i)}])`;
      loads.push(single ? `w${i} = ${load};` : `let w${i} = ${load};`);
    }
    perSeg.push(
      single ? `if (seg == ${b}u) {\n      ${loads.join("\n      ")}\n    }` : `if (seg == ${b}u) {
      for (var u0 = lane; u0 < ${n4}u; u0 += ${L * U}u) {
        ${loads.join("\n        ")}
        ${uses.join("\n        ")}
      }
    }`,
    );
  }
  const early = single
    ? `${Array.from({ length: U }, (_, i) => `var w${i} = vec4<f32>(0.0);`).join("\n  ")}
  if (valid) {
    let rv = r * (rowBytes / 16u);
    ${perSeg.join(" else ")}
  }`
    : "";
  const products = single ? uses.join("\n    ") : `let rv = r * (rowBytes / 16u);\n    ${perSeg.join(" else ")}`;
  const quarter = L / 4, ahead = EARLY_EPILOGUE[epilogue];
  return /* wgsl */ `
${epilogue === "qkv" ? QKV_PAIR : ""}
const TT: u32 = 1u;
var<workgroup> red: array<f32, 256>;
var<workgroup> xs: array<vec4<f32>, ${n4}>;
const LANES: u32 = ${L}u;
const ROWS: u32 = ${256 / L}u;
const PAIRS: u32 = ${128 / L}u;
// the row's four partial sums (its lanes 0-3), added in one order for every reader
fn sum(rl: u32, k: u32) -> f32 {
  let o = rl * LANES;
  return (red[o] + red[o + 1u]) + (red[o + 2u] + red[o + 3u]);
}
fn stage_input(wgx: u32, li: u32, n: u32) {
  let xin = ${norm ? "P.g.x" : "P.a.y"};${norm ? normScale(n) : ""}
  for (var i = li; i < ${n4}u; i += 256u) {
    let o = xin + 4u * i;
    var v = vec4<f32>(ldf(o), ldf(o + 1u), ldf(o + 2u), ldf(o + 3u));${
    norm
      ? `
    v = v * scale * vec4<f32>(wf_3(4u * i), wf_3(4u * i + 1u), wf_3(4u * i + 2u), wf_3(4u * i + 3u));
    if (wgx == 0u) { stf(P.g.y + 4u * i, v.x); stf(P.g.y + 4u * i + 1u, v.y); stf(P.g.y + 4u * i + 2u, v.z); stf(P.g.y + 4u * i + 3u, v.w); }`
      : ""
  }
    xs[i] = v;
  }
  workgroupBarrier();
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${oneRowThread(epilogue)}
  ${early}${ahead ? `\n  ${ahead.before}` : ""}
  stage_input(wg.x, li, n);
  var acc = 0.0;
  if (valid) {
    ${products}
  }
  red[li] = acc;
  workgroupBarrier();
  // lanes 0-3 each add every fourth lane's sum in order (lane j: j, j + 4, ...); each reads its own slot before writing it
  if (lane < 4u) {
    var s = red[li];
    for (var j = 1u; j < ${quarter}u; j++) { s += red[li + 4u * j]; }
    red[li] = s;
  }
  workgroupBarrier();${ahead ? ahead.after : EPILOGUE[epilogue]}
}
`;
}

/**
 * Activation quantizer, one thread per block, as ggml's x86 CPU path (Q8_0's,
 * d = amax/127 stored f16-rounded, q = round_even(x * 127/amax), is wgsl-ops.ts quantQ8_0Kernel):
 * Q8_K: the signed value of largest magnitude maps to -127, q = min(127, round(x * -127/max)), d = 1/iscale, block sums per 16.
 * Params: a = (out word, x word, n, T).
 */
export const QUANTIZE_Q8_K = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let x = P.a.y; let n = P.a.z; let T = P.a.w;
  let g = flat(wg, nwg, li);
  let nb = n / 256u;
  if (g >= nb * T) { return; }
  let xo = x + (g / nb) * n + (g % nb) * 256u;
  let o = out + g * 81u;
  var amax = 0.0;
  var mx = 0.0;
  for (var i = 0u; i < 256u; i++) {
    let v = ldf(xo + i);
    if (abs(v) > amax) { amax = abs(v); mx = v; }
  }
  if (amax == 0.0) {
    for (var i = 0u; i < 81u; i++) { st[o + i] = 0u; }
    return;
  }
  let iscale = -127.0 / mx;
  for (var b = 0u; b < 16u; b++) {
    var sum = 0i;
    for (var j = 0u; j < 4u; j++) {
      let e = xo + b * 16u + j * 4u;
      let q = min(vec4<i32>(round(vec4<f32>(ldf(e), ldf(e + 1u), ldf(e + 2u), ldf(e + 3u)) * iscale)), vec4<i32>(127));
      st[o + 17u + b * 4u + j] = pack_i8(q);
      sum += q.x + q.y + q.z + q.w;
    }
    st[o + 1u + b] = bitcast<u32>(sum);
  }
  stf(o, 1.0 / iscale);
}
`;

/**
 * Element i of a weight row as f32, for every supported type (row fetch / embedding).
 * ro: byte offset of the row in the binding.
 */
export const DEQUANT_ELEMENT: Record<number, string> = {
  [GGMLType.F32]: "return wf((ro >> 2u) + i);",
  [GGMLType.F16]: "return wf16(ro + 2u * i);",
  [GGMLType.Q8_0]: `let bo = ro + (i / 32u) * 34u;
  return wf16(bo) * f32(extractBits(bitcast<i32>(wbyte(bo + 2u + (i % 32u))), 0u, 8u));`,
  [GGMLType.Q4_0]: `let bo = ro + (i / 32u) * 18u;
  let j = i % 32u;
  let q = wbyte(bo + 2u + (j % 16u));
  return wf16(bo) * (f32(select(q >> 4u, q & 15u, j < 16u)) - 8.0);`,
  [GGMLType.Q4_K]: `let bo = ro + (i / 256u) * 144u;
  let e = i % 256u;
  let w = e % 64u;
  let j = 2u * (e / 64u) + select(1u, 0u, w < 32u);
  let q = wbyte(bo + 16u + 32u * (e / 64u) + (w % 32u));
  let dd = unpack2x16float(wt[bo >> 2u]);
  let sm = q4k_scale_min(bo, j);
  return dd.x * f32(sm.x) * f32(select(q >> 4u, q & 15u, w < 32u)) - dd.y * f32(sm.y);`,
  [GGMLType.Q6_K]: `let bo = ro + (i / 256u) * 210u;
  let e = i % 256u;
  let h = e / 128u;
  let k = (e % 128u) / 32u;
  let l = e % 32u;
  let ql = (wbyte(bo + 64u * h + 32u * (k & 1u) + l) >> (4u * (k >> 1u))) & 15u;
  let qh = (wbyte(bo + 128u + 32u * h + l) >> (2u * k)) & 3u;
  let sc = extractBits(bitcast<i32>(wbyte(bo + 192u + 8u * h + l / 16u + 2u * k)), 0u, 8u);
  return wf16(bo + 208u) * f32(sc) * (f32(ql | (qh << 4u)) - 32.0);`,
};

/**
 * Embedding fetch: out (T, n) = table rows tokens[t]; one thread per output
 * element. The table may be bound in row ranges: rows outside [row0, row0+rows) are left to another dispatch.
 * Params: a = (out word, tokens word, n, T), b = (row0, rows, rowBytes).
 */
export function embedKernel(type: GGMLTypeId): string {
  return /* wgsl */ `
fn element(ro: u32, i: u32) -> f32 {
  ${DEQUANT_ELEMENT[type]}
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let tokens = P.a.y; let n = P.a.z; let T = P.a.w;
  let row0 = P.b.x; let rows = P.b.y; let rowBytes = P.b.z;
  let g = flat(wg, nwg, li);
  if (g >= n * T) { return; }
  let t = g / n;
  let id = st[tokens + t];
  if (id < row0 || id >= row0 + rows) { return; }
  stf(out + g, element((id - row0) * rowBytes, g % n));
}
`;
}
