import { GGMLType, type GGMLTypeId } from "../../formats/ggml-types.ts";
import { forWeight } from "./wgsl-common.ts";
import { type Epilogue, QKV_PAIR } from "./wgsl-matmul.ts";

/**
 * Matmul kernels for many token rows (prefill, large batches): a workgroup
 * owns an output tile of BM tokens x BN = 64 weight rows and walks K in
 * steps, staging both operands' step in workgroup memory, so each weight
 * value read from memory serves BM tokens and each activation BN rows (the
 * one-row kernels of wgsl-matmul.ts reuse a weight for 8 tokens at most and
 * reduce every dot product through workgroup memory). Each of the 256 threads
 * keeps TM x 4 sums in registers: tokens tg + 16 i (i < TM, tg = li / 16) and
 * tile columns 2 cg, 2 cg + 1, 2 cg + 32, 2 cg + 33 (cg = li % 16), that is two
 * adjacent pairs, so the fused epilogues (swiglu: gate and up; qkv: a RoPE
 * pair) find both halves of a pair in one thread.
 *
 * Quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) are staged as 32-element units of
 * signed 8-bit values (Q4_0's q - 8 and Q6_K's q - 32 applied while staging,
 * which leaves each unit's integer dot product exactly the one-row kernel's)
 * plus their scales, and multiply the activations quantized as the one-row
 * kernels read them (Q8_0 blocks, Q8_K super-blocks), with the same per-unit
 * arithmetic; F32/F16 weights are staged as f32 (F16 activations rounded to
 * half, as ggml's F16 vec_dot). Only the order the units' terms are summed in
 * differs from the one-row kernels.
 *
 * Workgroup memory: 12 KiB (quantized, BM = 64), 8 KiB (float, BM = 64);
 * within WebGPU's default 16 KiB. Params are the one-row kernels' (wgsl-matmul.ts):
 * a = (-, x word, n, T), b = (rows, row0 | kvRows, d | vRows, rowBytes), c..f the epilogue's.
 */

/** Weight rows per tile; the tile's columns are "virtual rows" (swiglu interleaves gate/up, qkv walks RoPE pairs). */
export const TILE_N = 64;

/**
 * Token rows per tile: 64 where there are enough tiles to fill the GPU (2 per SM of a large GPU), else 32. At 512
 * rows, tiles of 64 measured 1.1-1.2x tiles of 32 on an H200 (`device-run.sh tiles`); at 128 rows about the same.
 */
export function tileTokens(T: number, virtualRows: number): number {
  return Math.ceil(virtualRows / TILE_N) * Math.ceil(T / 64) >= 256 ? 64 : 32;
}

/** Which weight (seg) and row (r) tile column vr (a virtual row) reads, and whether it exists. */
const COLUMN: Record<Epilogue, string> = {
  store: `let seg = 0u; let r = vr; let valid = r < P.b.x;`,
  residual: `let seg = 0u; let r = vr; let valid = r < P.b.x;`,
  swiglu: `let seg = vr & 1u; let r = vr >> 1u; let valid = r < P.b.x;`,
  qkv: `let pr = qkv_pair(vr >> 1u);
  let seg = pr.x;
  let r = select(pr.z, pr.w, (vr & 1u) == 1u);
  let valid = pr.y != NONE;`,
};

/** What becomes of the pair of sums (a, b) of virtual rows 2 gp, 2 gp + 1 and token t: the one-row epilogues' stores. */
const EMIT: Record<Epilogue, string> = {
  store: `
  for (var m = 0u; m < 2u; m++) {
    let r = 2u * gp + m;
    if (r < P.b.x) { stf(P.c.x + t * P.b.z + P.b.y + r, select(a, b, m == 1u)); }
  }`,
  residual: `
  for (var m = 0u; m < 2u; m++) {
    let r = 2u * gp + m;
    if (r < P.b.x) {
      let i = t * P.b.z + r;
      let v = select(a, b, m == 1u);
      stf(P.c.x + i, v);
      stf(P.c.y + i, ldf(P.c.y + i) + v);
    }
  }`,
  swiglu: `
  if (gp < P.b.x) {
    let i = t * P.b.x + gp;
    stf(P.c.y + i, b);
    stf(P.c.x + i, a / (1.0 + exp(-a)) * b);
  }`,
  qkv: `
  let pr = qkv_pair(gp);
  if (pr.y == NONE) { return; }
  qkv_store(t, pr, a, b);`,
};

/**
 * Fetches 32-element unit u of the row at byte wbase: its 32 signed bytes (lo: the first 16, hi: the last 16)
 * and up to three f32 scales (s, as bits). The arithmetic is wgsl-matmul.ts's UNIT bodies'.
 */
const FETCH_W: Record<number, string> = {
  [GGMLType.Q8_0]: `
  let bo = wbase + u * 34u;
  var g: Unit;
  for (var j = 0u; j < 4u; j++) {
    g.lo[j] = w32(bo + 2u + 4u * j);
    g.hi[j] = w32(bo + 18u + 4u * j);
  }
  g.s = vec4<u32>(bitcast<u32>(wf16(bo)), 0u, 0u, 0u);
  return g;`,
  [GGMLType.Q4_0]: `
  let bo = wbase + u * 18u;
  var g: Unit;
  for (var j = 0u; j < 4u; j++) {
    let w = w32(bo + 2u + 4u * j);
    g.lo[j] = s8_minus(w & 0x0f0f0f0fu, 0x08080808u);
    g.hi[j] = s8_minus((w >> 4u) & 0x0f0f0f0fu, 0x08080808u);
  }
  g.s = vec4<u32>(bitcast<u32>(wf16(bo)), 0u, 0u, 0u);
  return g;`,
  [GGMLType.Q4_K]: `
  let sb = u >> 3u;
  let j = u & 7u;
  let bo = wbase + sb * 144u;
  let dd = unpack2x16float(wt[bo >> 2u]);
  let sm = q4k_scale_min(bo, j);
  let qo = ((bo + 16u) >> 2u) + 8u * (j >> 1u);
  let shift = (j & 1u) * 4u;
  var g: Unit;
  for (var i = 0u; i < 4u; i++) {
    g.lo[i] = (wt[qo + i] >> shift) & 0x0f0f0f0fu;
    g.hi[i] = (wt[qo + 4u + i] >> shift) & 0x0f0f0f0fu;
  }
  g.s = bitcast<vec4<u32>>(vec4<f32>(dd.x * f32(sm.x), dd.y * f32(sm.y), 0.0, 0.0));
  return g;`,
  [GGMLType.Q6_K]: `
  let sb = u >> 3u;
  let j = u & 7u;
  let h = j >> 2u;
  let kq = j & 3u;
  let bo = wbase + sb * 210u;
  let scA = f32(extractBits(bitcast<i32>(wbyte(bo + 192u + 8u * h + 2u * kq)), 0u, 8u));
  let scB = f32(extractBits(bitcast<i32>(wbyte(bo + 193u + 8u * h + 2u * kq)), 0u, 8u));
  var g: Unit;
  for (var i = 0u; i < 4u; i++) {
    for (var half = 0u; half < 2u; half++) {
      let e = i + 4u * half;
      let ql = w32(bo + 64u * h + 32u * (kq & 1u) + 4u * e);
      let qh = w32(bo + 128u + 32u * h + 4u * e);
      let q = s8_minus(((ql >> (4u * (kq >> 1u))) & 0x0f0f0f0fu) | (((qh >> (2u * kq)) & 0x03030303u) << 4u), 0x20202020u);
      if (half == 0u) { g.lo[i] = q; } else { g.hi[i] = q; }
    }
  }
  g.s = bitcast<vec4<u32>>(vec4<f32>(wf16(bo + 208u), scA, scB, 0.0));
  return g;`,
};

/**
 * One unit's integer sums (sa over its first 16 elements, sb over the last 16) to f32, per type
 * (w = the column's scales, xd / xs = the token's activation scale and its Q8_K block sums):
 * the one-row kernels' expressions with q - 8 and q - 32 already in the sums.
 */
const COMBINE: Record<number, string> = {
  [GGMLType.Q8_0]: `f32(sa + sb) * (w.x * xd)`,
  [GGMLType.Q4_0]: `f32(sa + sb) * (w.x * xd)`,
  [GGMLType.Q4_K]: `xd * (w.x * f32(sa + sb) - w.y * f32(xs.x + xs.y))`,
  [GGMLType.Q6_K]: `xd * w.x * (w.y * f32(sa) + w.z * f32(sb))`,
};

/** Fetches unit u of token row t: Q8_0 activations (9 words a block) or Q8_K (81 a super-block: d, 16 block sums, 64 words). */
function fetchX(type: GGMLTypeId): string {
  if (type === GGMLType.Q8_0 || type === GGMLType.Q4_0) {
    return `
  let xb = x + (t * (n / 32u) + u) * 9u;
  return Unit(vec4<u32>(st[xb + 1u], st[xb + 2u], st[xb + 3u], st[xb + 4u]), vec4<u32>(st[xb + 5u], st[xb + 6u], st[xb + 7u], st[xb + 8u]),
    vec4<u32>(st[xb], 0u, 0u, 0u));`;
  }
  return `
  let j = u & 7u;
  let xb = x + (t * (n / 256u) + (u >> 3u)) * 81u;
  let q = xb + 17u + 8u * j;
  return Unit(vec4<u32>(st[q], st[q + 1u], st[q + 2u], st[q + 3u]), vec4<u32>(st[q + 4u], st[q + 5u], st[q + 6u], st[q + 7u]),
    vec4<u32>(st[xb], st[xb + 1u + 2u * j], st[xb + 2u + 2u * j], 0u));`;
}

/** The weight-fetching function of each weight binding a fused epilogue reads, and the call that picks one by seg. */
function fetchers(epilogue: Epilogue, body: string): { fns: string; call: string } {
  const segs = epilogue === "qkv" ? 3 : epilogue === "swiglu" ? 2 : 1;
  let fns = "";
  const calls = [];
  for (let b = 0; b < segs; b++) {
    fns += `fn fetch_w${b}(wbase: u32, u: u32) -> Unit {${forWeight(body, b)}\n}\n`;
    calls.push(`if (seg == ${b}u) { return fetch_w${b}(wbase, u); }`);
  }
  return { fns, call: calls.join(" else ") };
}

/**
 * What both tiled forms (today's and the register tiles) run per unit: the staged unit, the activation's fetch and the
 * per-unit arithmetic, from one source, so that their products stay equal.
 */
function unitCode(type: GGMLTypeId): string {
  return /* wgsl */ `struct Unit { lo: vec4<u32>, hi: vec4<u32>, s: vec4<u32> }
fn combine(w: vec4<f32>, sa: i32, sb: i32, xa: vec4<u32>) -> f32 {
  let xd = bitcast<f32>(xa.x);
  let xs = bitcast<vec2<i32>>(xa.yz);
  return ${COMBINE[type]};
}
fn fetch_x(x: u32, n: u32, t: u32, u: u32) -> Unit {${fetchX(type)}
}`;
}

/** What both tiled kernels share: the tile's shape, the epilogue, the signed-byte offset. */
function frame(epilogue: Epilogue, bm: number): string {
  return /* wgsl */ `
${epilogue === "qkv" ? QKV_PAIR : ""}
const BN: u32 = ${TILE_N}u;
const BM: u32 = ${bm}u;
const TM: u32 = ${bm / 16}u;
fn emit(gp: u32, t: u32, a: f32, b: f32) {${EMIT[epilogue]}
}
fn s8_minus(q: u32, off: u32) -> u32 { return ((q | 0x80808080u) - off) ^ 0x80808080u; }
`;
}

/*
 * The per-thread sums are plain variables (acc0..acc3: one vec4 of 4 columns per token row), written out for each
 * row rather than as arrays indexed in loops: a driver that does not unroll such a loop keeps the array in local
 * memory, which measured several times slower on an H200.
 */
const rows = (bm: number, line: (i: number) => string) => Array.from({ length: bm / 16 }, (_, i) => line(i)).join("\n");
const accs = (bm: number) => rows(bm, (i) => `  var acc${i} = vec4<f32>(0.0);`);
const emitAll = (bm: number) =>
  rows(bm, (i) =>
    `  if (t0 + tg + ${16 * i}u < T) {
    emit(wg.x * (BN / 2u) + cg, t0 + tg + ${16 * i}u, acc${i}.x, acc${i}.y);
    emit(wg.x * (BN / 2u) + cg + 16u, t0 + tg + ${16 * i}u, acc${i}.z, acc${i}.w);
  }`);

/** One K step's products of the quantized kernel: per unit, the integer sums of each row's halves, then the scales. */
function quantCompute(bm: number): string {
  return `    for (var kk = 0u; kk < KU; kk++) {
      // the unit's first and second 16 elements summed apart (Q6_K scales them apart)
${
    rows(bm, (i) =>
      `      var sa${i} = vec4<i32>(0);
      var sb${i} = vec4<i32>(0);`)
  }
      for (var j = 0u; j < 4u; j++) {
        let wo = (kk * 8u + j) * BN + 2u * cg;
        let wa = vec4<u32>(wq[wo], wq[wo + 1u], wq[wo + 32u], wq[wo + 33u]);
        let wb = vec4<u32>(wq[wo + 4u * BN], wq[wo + 4u * BN + 1u], wq[wo + 4u * BN + 32u], wq[wo + 4u * BN + 33u]);
        let xo = (kk * 8u + j) * BM + tg;
${
    rows(bm, (i) =>
      `        let xa${i} = xq[xo + ${16 * i}u];
        let xb${i} = xq[xo + ${16 * i}u + 4u * BM];
        sa${i} += vec4<i32>(dot4(xa${i}, wa.x), dot4(xa${i}, wa.y), dot4(xa${i}, wa.z), dot4(xa${i}, wa.w));
        sb${i} += vec4<i32>(dot4(xb${i}, wb.x), dot4(xb${i}, wb.y), dot4(xb${i}, wb.z), dot4(xb${i}, wb.w));`)
  }
      }
      let o = kk * BN + 2u * cg;
      let w0 = wsc[o]; let w1 = wsc[o + 1u]; let w2 = wsc[o + 32u]; let w3 = wsc[o + 33u];
${
    rows(bm, (i) =>
      `      let xs${i} = xsc[kk * BM + tg + ${16 * i}u];
      acc${i} += vec4<f32>(combine(w0, sa${i}.x, sb${i}.x, xs${i}), combine(w1, sa${i}.y, sb${i}.y, xs${i}),
        combine(w2, sa${i}.z, sb${i}.z, xs${i}), combine(w3, sa${i}.w, sb${i}.w, xs${i}));`)
  }
    }`;
}

/** Units (32 elements) staged per step of K. */
const KU = 2;

/**
 * The tiled kernel for quantized weights. Threads 0..127 stage weight units (column li / KU, slot li % KU), the
 * rest activation units (token row (li - 128) / KU); each fetches its next step's unit into registers before the
 * current step's products, so the loads are in flight while the tile is used.
 */
export function tiledQuantKernel(type: GGMLTypeId, epilogue: Epilogue, bm: number): string {
  const { fns, call } = fetchers(epilogue, FETCH_W[type]);
  return /* wgsl */ `
${frame(epilogue, bm)}
const KU: u32 = ${KU}u;
var<workgroup> wq: array<u32, ${KU * 8 * TILE_N}>;
var<workgroup> wsc: array<vec4<f32>, ${KU * TILE_N}>;
var<workgroup> xq: array<u32, ${KU * 8 * bm}>;
var<workgroup> xsc: array<vec4<u32>, ${KU * bm}>;
${fns}
${unitCode(type)}
/** The unit this thread stages for the step at u0 (zeros past the row, the tokens or the weight's rows). */
fn fetch(li: u32, u0: u32, seg: u32, valid: bool, wbase: u32, t0: u32) -> Unit {
  let x = P.a.y; let n = P.a.z; let T = P.a.w;
  let nu = n / 32u;
  if (li < ${KU * TILE_N}u) {
    let u = u0 + li % KU;
    if (valid && u < nu) { ${call} }
  } else {
    let xi = li - ${KU * TILE_N}u;
    let u = u0 + xi % KU;
    let t = t0 + xi / KU;
    if (xi / KU < BM && t < T && u < nu) { return fetch_x(x, n, t, u); }
  }
  return Unit(vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u));
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = P.a.z; let T = P.a.w;
  let rowBytes = P.b.w;
  let nu = n / 32u;
  let t0 = wg.y * BM;
  let cg = li % 16u;
  let tg = li / 16u;
  let c = li / KU;
  let k = li % KU;
  let vr = wg.x * BN + c;
  ${COLUMN[epilogue].replaceAll("\n", "\n  ")}
  let wbase = r * rowBytes;
  let xi = li - ${KU * TILE_N}u;
  let tr = xi / KU;
  let xk = xi % KU;
${accs(bm)}
  var g = fetch(li, 0u, seg, valid, wbase, t0);
  for (var u0 = 0u; u0 < nu; u0 += KU) {
    if (li < ${KU * TILE_N}u) {
      for (var j = 0u; j < 4u; j++) {
        wq[(k * 8u + j) * BN + c] = g.lo[j];
        wq[(k * 8u + 4u + j) * BN + c] = g.hi[j];
      }
      wsc[k * BN + c] = bitcast<vec4<f32>>(g.s);
    } else if (tr < BM) {
      for (var j = 0u; j < 4u; j++) {
        xq[(xk * 8u + j) * BM + tr] = g.lo[j];
        xq[(xk * 8u + 4u + j) * BM + tr] = g.hi[j];
      }
      xsc[xk * BM + tr] = g.s;
    }
    workgroupBarrier();
    if (u0 + KU < nu) { g = fetch(li, u0 + KU, seg, valid, wbase, t0); }
${quantCompute(bm)}
    workgroupBarrier();
  }
${emitAll(bm)}
}
`;
}

/** Elements of K staged per step by the float kernel. */
const BK = 16;

/** The tiled kernel for F32/F16 weights. */
export function tiledFloatKernel(type: GGMLTypeId, epilogue: Epilogue, bm: number): string {
  const f16 = type === GGMLType.F16;
  const load = f16
    ? `let wo = (wbase >> 2u) + e / 2u;\n  return vec4<f32>(unpack2x16float(wt[wo]), unpack2x16float(wt[wo + 1u]));`
    : `let wo = (wbase >> 2u) + e;\n  return vec4<f32>(wf(wo), wf(wo + 1u), wf(wo + 2u), wf(wo + 3u));`;
  const segs = epilogue === "qkv" ? 3 : epilogue === "swiglu" ? 2 : 1;
  let fns = "";
  const calls = [];
  for (let b = 0; b < segs; b++) {
    fns += `fn load_w${b}(wbase: u32, e: u32) -> vec4<f32> {\n  ${forWeight(load, b)}\n}\n`;
    calls.push(`if (seg == ${b}u) { return load_w${b}(wbase, e); }`);
  }
  return /* wgsl */ `
${frame(epilogue, bm)}
const BK: u32 = ${BK}u;
var<workgroup> wtile: array<f32, ${BK * TILE_N}>;
var<workgroup> xtile: array<f32, ${BK * bm}>;
${fns}
fn fetch_w(seg: u32, valid: bool, wbase: u32, e: u32, n: u32) -> vec4<f32> {
  if (valid && e < n) { ${calls.join(" else ")} }
  return vec4<f32>(0.0);
}
fn fetch_x(t: u32, e: u32, n: u32, staging: bool) -> vec4<f32> {
  if (!staging || t >= P.a.w || e >= n) { return vec4<f32>(0.0); }
  let xo = P.a.y + t * n + e;
  return ${f16 ? "quantizeToF16(" : ""}vec4<f32>(ldf(xo), ldf(xo + 1u), ldf(xo + 2u), ldf(xo + 3u))${f16 ? ")" : ""};
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = P.a.z; let T = P.a.w;
  let rowBytes = P.b.w;
  let t0 = wg.y * BM;
  let cg = li % 16u;
  let tg = li / 16u;
  // staging: each thread one 4-element run of a weight row (column li / 4) and, while li / 4 < BM, of a token row
  let c = li / 4u;
  let q4 = (li % 4u) * 4u;
  let vr = wg.x * BN + c;
  ${COLUMN[epilogue].replaceAll("\n", "\n  ")}
  let wbase = r * rowBytes;
  let tr = c;
  let t = t0 + tr;
${accs(bm)}
  // each thread fetches its next step's 4 weights and 4 activations into registers before the current step's products
  var wv = fetch_w(seg, valid, wbase, q4, n);
  var xv = fetch_x(t, q4, n, tr < BM);
  for (var k0 = 0u; k0 < n; k0 += BK) {
    for (var j = 0u; j < 4u; j++) { wtile[(q4 + j) * BN + c] = wv[j]; }
    if (tr < BM) {
      for (var j = 0u; j < 4u; j++) { xtile[(q4 + j) * BM + tr] = xv[j]; }
    }
    workgroupBarrier();
    wv = fetch_w(seg, valid, wbase, k0 + BK + q4, n);
    xv = fetch_x(t, k0 + BK + q4, n, tr < BM);
    for (var kk = 0u; kk < BK; kk++) {
      let wo = kk * BN + 2u * cg;
      let w = vec4<f32>(wtile[wo], wtile[wo + 1u], wtile[wo + 32u], wtile[wo + 33u]);
      let xo = kk * BM + tg;
${rows(bm, (i) => `      acc${i} += xtile[xo + ${16 * i}u] * w;`)}
    }
    workgroupBarrier();
  }
${emitAll(bm)}
}
`;
}

/** The tiled kernel of a weight type. */
export function tiledKernel(type: GGMLTypeId, epilogue: Epilogue, bm: number): string {
  return type === GGMLType.F32 || type === GGMLType.F16 ? tiledFloatKernel(type, epilogue, bm) : tiledQuantKernel(type, epilogue, bm);
}

/**
 * A register-tiled form of the quantized kernel (the backend takes it by default: options.ts TILES, `tiles` "auto"): a workgroup owns
 * bm tokens x bn weight rows, each of its (bm / tm) x (bn / tn) threads tm x tn sums, and the step's units sit in
 * workgroup memory as vec4<u32> (a unit's 16 low and 16 high bytes, one 16-byte load each), so a thread's loads
 * of workgroup memory per unit are 2 (tm + tn) + tn against today's 8 for 4 x 4 sums: each dot4 of a 4 x 4 tile
 * costs half a load today, an eighth of one at 8 x 8. Columns are stored even ones first, odd ones after (cs
 * below), so the threads of a warp read consecutive 16-byte words; a thread still owns pairs of adjacent virtual
 * rows (tile columns 2p, 2p + 1 for p = tx + (bn / tn) j), which the fused epilogues need.
 *
 * Each output's units are summed in K order by one thread with the one-row kernels' per-unit expression
 * (COMBINE), as in tiledQuantKernel, and a unit's integer sum is exact in any order, so the products equal
 * tiledQuantKernel's (bit for bit where the compiler contracts the multiply-add the same way in both).
 */
export interface TileShape {
  /** Token rows of a tile. */
  bm: number;
  /** Tile columns (virtual weight rows; even). */
  bn: number;
  /** Token rows a thread sums. */
  tm: number;
  /** Tile columns a thread sums (even: pairs). */
  tn: number;
  /** Units (32 elements) staged per step of K. */
  ku: number;
  /**
   * Double-buffered staging: two copies of the step's workgroup memory, the next step's units stored into one while
   * the other is multiplied, so a step takes one barrier instead of two (and twice the memory).
   */
  db?: boolean;
}

/** Threads of a tile shape's workgroup. */
export function tileThreads(s: TileShape): number {
  return (s.bm / s.tm) * (s.bn / s.tn);
}

/** Bytes of workgroup memory a tile shape's kernel declares (units and scales of both operands, 16 bytes each). */
export function tileStorageBytes(s: TileShape): number {
  return 16 * 3 * s.ku * (s.bm + s.bn) * (s.db ? 2 : 1);
}

/** Whether the shape's kernel is well formed (tiles divide, threads within 256, even columns a thread). */
export function validTileShape(s: TileShape): boolean {
  const t = tileThreads(s);
  return s.bm % s.tm === 0 && s.bn % s.tn === 0 && s.tn % 2 === 0 && Number.isInteger(t) && t >= 32 && t <= 256 &&
    s.ku >= 1 && s.ku <= 8;
}

/**
 * A unit's 8 dot4 products of one token row's words (xl, xh: its 16 low and 16 high bytes) and one column's (wl, wh);
 * the first 16 and last 16 apart.
 */
function unitDots(xl: string, xh: string, wl: string, wh: string): [string, string] {
  const d = (x: string, w: string) => ["x", "y", "z", "w"].map((c) => `dot4(${x}.${c}, ${w}.${c})`).join(" + ");
  return [d(xl, wl), d(xh, wh)];
}

export function tiledWideKernel(type: GGMLTypeId, epilogue: Epilogue, s: TileShape): string {
  if (!validTileShape(s)) throw new Error(`tiledWideKernel: bad tile shape ${JSON.stringify(s)}`);
  const { bm, bn, tm, tn, ku } = s;
  const nt = tileThreads(s), nx = bn / tn, ny = bm / tm, slots = Math.ceil((ku * (bn + bm)) / nt);
  const split = type === GGMLType.Q6_K; // its two halves are scaled apart
  const { fns, call } = fetchers(epilogue, FETCH_W[type]);
  const L: string[] = [];
  // the slots this thread stages: its columns' (seg, row) found once, outside the loop over K
  for (let m = 0; m < slots; m++) {
    L.push(`  let s${m} = li + ${nt * m}u;`);
    L.push(`  let c${m} = column(wg.x * BN + min(s${m} / KU, BN - 1u));`);
  }
  const fetchAll = (u0: string) => Array.from({ length: slots }, (_, m) => `g${m} = fetch_slot(s${m}, ${u0}, c${m}, t0);`).join(" ");
  const putAll = (b: string) => Array.from({ length: slots }, (_, m) => `    put(s${m}, g${m}, ${b});`).join("\n");
  const nb = s.db ? 2 : 1;
  const accDecl: string[] = [];
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn / 2; j++) accDecl.push(`  var a${i}_${j} = vec2<f32>(0.0);`);
  // one unit k of the step: the tm token rows' words in registers, then per column pair its words and sums
  const body: string[] = [];
  for (let i = 0; i < tm; i++) {
    body.push(`      let xl${i} = xq[bx + 2u * k * BM + ty + ${ny * i}u]; let xh${i} = xq[bx + (2u * k + 1u) * BM + ty + ${ny * i}u];`);
    body.push(`      let xs${i} = xsc[bxs + k * BM + ty + ${ny * i}u];`);
  }
  for (let j = 0; j < tn / 2; j++) {
    for (const [h, off] of [["e", "0u"], ["o", "BN / 2u"]]) {
      const c = `tx + ${nx * j}u + ${off}`;
      body.push(
        `      let w${h}l${j} = wq[bw + 2u * k * BN + ${c}]; let w${h}h${j} = wq[bw + (2u * k + 1u) * BN + ${c}]; let w${h}s${j} = wsc[bws + k * BN + ${c}];`,
      );
    }
    for (let i = 0; i < tm; i++) {
      // token row i against the pair's even (e) or odd (o) column: Q6_K's halves scaled apart, the others' summed
      const unit = (h: string) => {
        const [lo, hi] = unitDots(`xl${i}`, `xh${i}`, `w${h}l${j}`, `w${h}h${j}`);
        return split ? `combine(w${h}s${j}, ${lo}, ${hi}, xs${i})` : `combine(w${h}s${j}, ${lo} + ${hi}, 0i, xs${i})`;
      };
      body.push(`      a${i}_${j} += vec2<f32>(${unit("e")},\n        ${unit("o")});`);
    }
  }
  const units = (buf: string) =>
    `    let bx = ${buf} * 2u * KU * BM; let bxs = ${buf} * KU * BM; let bw = ${buf} * 2u * KU * BN; let bws = ${buf} * KU * BN;
    for (var k = 0u; k < KU; k++) {
${body.join("\n")}
    }`;
  // one buffer: store the step, barrier, fetch the next step's units into registers, multiply, barrier
  const singleBuffered = `  for (var u0 = 0u; u0 < nu; u0 += KU) {
${putAll("0u")}
    workgroupBarrier();
    if (u0 + KU < nu) { ${fetchAll("u0 + KU")} }
${units("0u")}
    workgroupBarrier();
  }`;
  // two: the first step stored before the loop; each step fetches the next, multiplies its buffer, stores the next
  // step into the other buffer (whose readers all passed the previous barrier) and ends with the one barrier
  const doubleBuffered = `${putAll("0u")}
  workgroupBarrier();
  var buf = 0u;
  for (var u0 = 0u; u0 < nu; u0 += KU) {
    let more = u0 + KU < nu;
    if (more) { ${fetchAll("u0 + KU")} }
${units("buf")}
    if (more) {
${putAll("1u - buf")}
    }
    workgroupBarrier();
    buf = 1u - buf;
  }`;
  const emits: string[] = [];
  for (let i = 0; i < tm; i++) {
    const t = `t0 + ty + ${ny * i}u`;
    const e = Array.from({ length: tn / 2 }, (_, j) => `emit(wg.x * (BN / 2u) + tx + ${nx * j}u, ${t}, a${i}_${j}.x, a${i}_${j}.y);`);
    emits.push(`  if (${t} < T) { ${e.join(" ")} }`);
  }
  return /* wgsl */ `
${epilogue === "qkv" ? QKV_PAIR : ""}
const BN: u32 = ${bn}u;
const BM: u32 = ${bm}u;
const KU: u32 = ${ku}u;
fn emit(gp: u32, t: u32, a: f32, b: f32) {${EMIT[epilogue]}
}
fn s8_minus(q: u32, off: u32) -> u32 { return ((q | 0x80808080u) - off) ^ 0x80808080u; }
// unit k of column c at wq[2k BN + cs(c)] (low 16 bytes) and wq[(2k + 1) BN + cs(c)], cs(c) = (c & 1) BN / 2 + c / 2
var<workgroup> wq: array<vec4<u32>, ${2 * ku * bn * nb}>;
var<workgroup> wsc: array<vec4<f32>, ${ku * bn * nb}>;
var<workgroup> xq: array<vec4<u32>, ${2 * ku * bm * nb}>;
var<workgroup> xsc: array<vec4<u32>, ${ku * bm * nb}>;
${fns}
${unitCode(type)}
/** Tile column vr's weight (x), row (y) and whether it exists (z). */
fn column(vr: u32) -> vec3<u32> {
  ${COLUMN[epilogue].replaceAll("\n", "\n  ")}
  return vec3<u32>(seg, r, select(0u, 1u, valid));
}
/** Slot s of a step at unit u0: weight slots first (column s / KU, unit s % KU), then the token rows'. */
fn fetch_slot(s: u32, u0: u32, col: vec3<u32>, t0: u32) -> Unit {
  let n = P.a.z; let nu = n / 32u;
  if (s < KU * BN) {
    let u = u0 + s % KU;
    let seg = col.x;
    let wbase = col.y * P.b.w;
    if (col.z == 1u && u < nu) { ${call} }
  } else if (s < KU * (BN + BM)) {
    let xi = s - KU * BN;
    let u = u0 + xi % KU;
    let t = t0 + xi / KU;
    if (t < P.a.w && u < nu) { return fetch_x(P.a.y, n, t, u); }
  }
  return Unit(vec4<u32>(0u), vec4<u32>(0u), vec4<u32>(0u));
}
/** Stores slot s's unit into buffer b (0 unless double-buffered). */
fn put(s: u32, g: Unit, b: u32) {
  if (s < KU * BN) {
    let c = s / KU; let k = s % KU;
    let cs = (c & 1u) * (BN / 2u) + (c >> 1u);
    wq[b * 2u * KU * BN + 2u * k * BN + cs] = g.lo;
    wq[b * 2u * KU * BN + (2u * k + 1u) * BN + cs] = g.hi;
    wsc[b * KU * BN + k * BN + cs] = bitcast<vec4<f32>>(g.s);
  } else if (s < KU * (BN + BM)) {
    let xi = s - KU * BN;
    let tr = xi / KU; let k = xi % KU;
    xq[b * 2u * KU * BM + 2u * k * BM + tr] = g.lo;
    xq[b * 2u * KU * BM + (2u * k + 1u) * BM + tr] = g.hi;
    xsc[b * KU * BM + k * BM + tr] = g.s;
  }
}
@compute @workgroup_size(${nt})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = P.a.z; let T = P.a.w;
  let nu = n / 32u;
  let t0 = wg.y * BM;
  let tx = li % ${nx}u;
  let ty = li / ${nx}u;
${L.join("\n")}
${accDecl.join("\n")}
${Array.from({ length: slots }, (_, m) => `  var g${m}: Unit;`).join("\n")}
  ${fetchAll("0u")}
${s.db ? doubleBuffered : singleBuffered}
${emits.join("\n")}
}
`;
}

/**
 * The register-tiled shapes bench/webgpu-gemm.ts measures against today's tiles, by name (b{bm}x{bn}-t{tm}x{tn}-k{ku});
 * the backend's `tiles` option takes one of these names.
 */
export const TILE_SHAPES: Record<string, TileShape> = {
  "b64x64-t4x4-k2": { bm: 64, bn: 64, tm: 4, tn: 4, ku: 2 },
  "b64x64-t4x8-k2": { bm: 64, bn: 64, tm: 4, tn: 8, ku: 2 },
  "b64x64-t8x8-k2": { bm: 64, bn: 64, tm: 8, tn: 8, ku: 2 },
  "b64x64-t8x8-k4": { bm: 64, bn: 64, tm: 8, tn: 8, ku: 4 },
  "b32x64-t4x4-k2": { bm: 32, bn: 64, tm: 4, tn: 4, ku: 2 },
  "b64x128-t4x8-k2": { bm: 64, bn: 128, tm: 4, tn: 8, ku: 2 },
  "b128x64-t8x4-k2": { bm: 128, bn: 64, tm: 8, tn: 4, ku: 2 },
  "b128x128-t8x8-k1": { bm: 128, bn: 128, tm: 8, tn: 8, ku: 1 },
  "b128x128-t8x8-k2": { bm: 128, bn: 128, tm: 8, tn: 8, ku: 2 },
  "b64x64-t8x4-k2": { bm: 64, bn: 64, tm: 8, tn: 4, ku: 2 },
  "b64x128-t8x8-k2": { bm: 64, bn: 128, tm: 8, tn: 8, ku: 2 },
  "b128x64-t8x8-k2": { bm: 128, bn: 64, tm: 8, tn: 8, ku: 2 },
  "b64x64-t8x8-k2-db": { bm: 64, bn: 64, tm: 8, tn: 8, ku: 2, db: true },
  "b64x128-t8x8-k1-db": { bm: 64, bn: 128, tm: 8, tn: 8, ku: 1, db: true },
  "b128x128-t8x8-k1-db": { bm: 128, bn: 128, tm: 8, tn: 8, ku: 1, db: true },
};

/** Names of TILE_SHAPES in a fixed order: a shape's kernel key carries its index + 1 (0: today's tiles). */
export const TILE_SHAPE_NAMES = Object.keys(TILE_SHAPES);

/**
 * `tiles: "auto"`'s shapes, from the H200's `bench/webgpu-gemm.ts` (2026-12-05 15:00 UTC, `device-run.sh decide`):
 * over the 1B's and stories110M's four matmul shapes at 128 and 512 token rows, 64 x 64 tiles with 4 x 8 sums were
 * fastest where the 64-row tiles number at least 256 (1.72-4.67x today's tiles), 64 x 64 with 4 x 4 where they number
 * 72 to 255, and 32 x 64 with 4 x 4 below (fewer, fatter tiles leave SMs idle); that rule picks the fastest shape in
 * 15 of the 16 cases and one within 1.08x of it in the last. The larger 8 x 8 and 128-wide shapes lost everywhere
 * but one (their registers cost occupancy). Below 64 token rows (batched decode) nothing was measured, so today's
 * tiles stay. In preference order, each followed by the smaller ones that fit where the adapter's memory is short.
 */
const AUTO_SHAPES = ["b64x64-t4x8-k2", "b64x64-t4x4-k2", "b32x64-t4x4-k2"];

/** The shape "auto" takes for T tokens by `rows` virtual rows, given the device's workgroup memory (null: today's tiles). */
export function autoTileShape(T: number, rows: number, maxBytes: number): string | null {
  if (T < 64) return null;
  const tiles = Math.ceil(rows / 64) * Math.ceil(T / 64);
  const first = tiles >= 256 ? 0 : tiles >= 72 ? 1 : 2;
  for (const name of AUTO_SHAPES.slice(first)) {
    if (tileStorageBytes(TILE_SHAPES[name]) <= maxBytes) return name;
  }
  return null;
}
