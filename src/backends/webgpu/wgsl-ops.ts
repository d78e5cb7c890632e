/**
 * Elementwise, norm, RoPE, KV-store and attention kernels. Every address in
 * the params is a word index into the state buffer `st`; see wgsl-common.ts.
 */
import { sumSquares } from "./wgsl-common.ts";

/** RMSNorm, one workgroup per row; the weight vector is the bound tensor. a = (out, x, n, T), b.x = eps bits. */
export const RMSNORM = rmsnormKernel(0);

/**
 * RMSNORM, built for its row width n (P.a.z must equal it; 0: any width, the loop over a parameter), its sum of
 * squares through sumSquares (8 loads in flight, the same order, so the same bits as the loop's).
 */
export function rmsnormKernel(n: number): string {
  const squares = n ? sumSquares(n, "xr") : `var ss = 0.0;
  for (var i = li; i < n; i += 256u) { let v = ldf(xr + i); ss += v * v; }`;
  return /* wgsl */ `
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let x = P.a.y; let n = P.a.z;
  let eps = bitcast<f32>(P.b.x);
  let xr = x + wg.x * n;
  let orow = out + wg.x * n;
  ${squares}
  red[li] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(red[0] / f32(n) + eps);
  for (var i = li; i < n; i += 256u) { stf(orow + i, ldf(xr + i) * scale * wf(i)); }
}
`;
}

/**
 * Q8_0 activation quantizer (QUANTIZE_Q8_0's arithmetic), 32 threads per
 * block and 8 blocks per workgroup (dispatch (ceil(blocks / 8), T)), so a
 * row's blocks are quantized side by side rather than one thread walking
 * each. With norm, it is also the RMSNorm before it (RMSNORM's arithmetic and
 * reduction order): every workgroup sums its row's squares, writes the normed
 * values of its blocks and quantizes them; the norm weight is the bound tensor.
 * The norm's kernel is built for its row width n (P.a.z must equal it), so its
 * sum of squares keeps 8 loads in flight (wgsl-common.ts sumSquares).
 * a = (quantized out, x, n, T), b = (eps bits, normed out).
 */
export function quantQ8_0Kernel(norm: boolean, n = 0): string {
  if (norm && !(n > 0 && n % 32 === 0)) throw new Error(`quantQ8_0Kernel: the norm's row width must be a multiple of 32, got ${n}`);
  return /* wgsl */ `
var<workgroup> red: array<f32, 256>;
var<workgroup> qs: array<i32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let x = P.a.y; let n = P.a.z;
  let t = wg.y;
  let xr = x + t * n;
  var scale = 1.0;
${
    norm
      ? `  ${sumSquares(n, "xr")}
  red[li] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  scale = 1.0 / sqrt(red[0] / f32(n) + bitcast<f32>(P.b.x));
  workgroupBarrier();`
      : ""
  }
  let nb = n / 32u;
  let b = wg.x * 8u + (li >> 5u);
  let e = li & 31u;
  let first = li & ~31u;
  var v = 0.0;
  if (b < nb) {
    let i = b * 32u + e;
${norm ? "    v = ldf(xr + i) * scale * wf(i);\n    stf(P.b.y + t * n + i, v);" : "    v = ldf(xr + i);"}
  }
  red[li] = abs(v);
  workgroupBarrier();
  for (var s = 16u; s > 0u; s >>= 1u) {
    if (e < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let amax = red[first];
  let id = select(0.0, 127.0 / amax, amax != 0.0);
  qs[li] = i32(round(v * id));
  workgroupBarrier();
  if (b < nb) {
    let o = out + (t * nb + b) * 9u;
    if (e == 0u) { stf(o, quantizeToF16(amax / 127.0)); }
    if (e < 8u) {
      let q = first + 4u * e;
      st[o + 1u + e] = pack_i8(vec4<i32>(qs[q], qs[q + 1u], qs[q + 2u], qs[q + 3u]));
    }
  }
}
`;
}

/**
 * RMSNorm fused with the Q8_K activation quantizer of the (Q4_K / Q6_K) matmul
 * that reads its output: one workgroup per row writes the normed row (RMSNORM's
 * arithmetic) and its Q8_K blocks (QUANTIZE_Q8_K's), one thread per block, from
 * the same values, so the matmul needs no quantize dispatch. (Q8_0: quantQ8_0Kernel.)
 * a = (out, x, n, T), b = (eps bits, quantized out); the norm weight is the bound tensor.
 */
export function normQuantKernel(block: 256): string {
  const quantize = `
    var amax = 0.0;
    var mx = 0.0;
    for (var i = 0u; i < 256u; i++) { if (abs(v[i]) > amax) { amax = abs(v[i]); mx = v[i]; } }
    let o = qo + g * 81u;
    if (amax == 0.0) {
      for (var i = 0u; i < 81u; i++) { st[o + i] = 0u; }
    } else {
      let iscale = -127.0 / mx;
      for (var b = 0u; b < 16u; b++) {
        var sum = 0i;
        for (var j = 0u; j < 4u; j++) {
          let e = b * 16u + j * 4u;
          let q = min(vec4<i32>(round(vec4<f32>(v[e], v[e + 1u], v[e + 2u], v[e + 3u]) * iscale)), vec4<i32>(127));
          st[o + 17u + b * 4u + j] = pack_i8(q);
          sum += q.x + q.y + q.z + q.w;
        }
        st[o + 1u + b] = bitcast<u32>(sum);
      }
      stf(o, 1.0 / iscale);
    }`;
  return /* wgsl */ `
const QB: u32 = ${block}u;
var<workgroup> red: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let x = P.a.y; let n = P.a.z;
  let eps = bitcast<f32>(P.b.x);
  let xr = x + wg.x * n;
  let orow = out + wg.x * n;
  var ss = 0.0;
  for (var i = li; i < n; i += 256u) { let v = ldf(xr + i); ss += v * v; }
  red[li] = ss;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(red[0] / f32(n) + eps);
  let nb = n / QB;
  let qo = P.b.y;
  for (var blk = li; blk < nb; blk += 256u) {
    let g = wg.x * nb + blk;
    var v: array<f32, ${block}>;
    for (var i = 0u; i < QB; i++) {
      let e = blk * QB + i;
      v[i] = ldf(xr + e) * scale * wf(e);
      stf(orow + e, v[i]);
    }${quantize}
  }
}
`;
}

/** a = (out, a, b, n) */
export const ADD = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = flat(wg, nwg, li);
  if (g >= P.a.w) { return; }
  stf(P.a.x + g, ldf(P.a.y + g) + ldf(P.a.z + g));
}
`;

/** out = silu(gate) * up; a = (out, gate, up, n) */
export const SWIGLU = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = flat(wg, nwg, li);
  if (g >= P.a.w) { return; }
  let x = ldf(P.a.y + g);
  stf(P.a.x + g, x / (1.0 + exp(-x)) * ldf(P.a.z + g));
}
`;

/**
 * Up to 7 word copies in one dispatch (dispatch y = copy index), for the
 * small host-side gathers between steps (positions, row metadata); their
 * ranges never overlap (the backend checks). b..h = (dst, src, words, -).
 */
export const COPY_MANY = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  var cp = array<vec4<u32>, 7>(P.b, P.c, P.d, P.e, P.f, P.g, P.h);
  let c = cp[wg.y];
  let g = wg.x * 256u + li;
  if (g >= c.z) { return; }
  st[c.x + g] = st[c.y + g];
}
`;

/** Word copy; a = (dst, src, words) */
export const COPY = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = flat(wg, nwg, li);
  if (g >= P.a.z) { return; }
  st[P.a.x + g] = st[P.a.y + g];
}
`;

/**
 * RoPE in place, one thread per (row, head, pair); the table holds (cos, sin)
 * per (position, pair). halves = 1 pairs (i, i + ropeDim/2), else (2i, 2i+1).
 * a = (x, table, positions, T), b = (nHeads, headDim, ropeDim, halves)
 */
export const ROPE = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let x = P.a.x; let table = P.a.y; let positions = P.a.z; let T = P.a.w;
  let nHeads = P.b.x; let headDim = P.b.y; let half = P.b.z / 2u; let halves = P.b.w;
  let g = flat(wg, nwg, li);
  if (g >= T * nHeads * half) { return; }
  let i = g % half;
  let h = (g / half) % nHeads;
  let t = g / (half * nHeads);
  let c = table + (st[positions + t] * half + i) * 2u;
  let fc = ldf(c); let fs = ldf(c + 1u);
  let hp = x + (t * nHeads + h) * headDim;
  let ia = select(2u * i, i, halves == 1u);
  let ib = select(2u * i + 1u, i + half, halves == 1u);
  let a = ldf(hp + ia); let b = ldf(hp + ib);
  stf(hp + ia, a * fc - b * fs);
  stf(hp + ib, a * fs + b * fc);
}
`;

/**
 * Writes K and V rows into their cache slots through each row's page table;
 * one thread per (row, element). Row metadata: (page table byte address, pos, start, -).
 * a = (k, v, rows, T), b = (base, pageBytes, pageSize, kvDim), c = (kOff, vOff) bytes.
 */
export const KV_STORE = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let k = P.a.x; let v = P.a.y; let rows = P.a.z; let T = P.a.w;
  let base = P.b.x; let pageBytes = P.b.y; let pageSize = P.b.z; let kvDim = P.b.w;
  let g = flat(wg, nwg, li);
  if (g >= T * kvDim) { return; }
  let t = g / kvDim;
  let i = g % kvDim;
  let r = rows + t * 4u;
  let pos = st[r + 1u];
  let page = st[(st[r] >> 2u) + pos / pageSize];
  let at = (base + page * pageBytes + (pos % pageSize) * kvDim * 4u) >> 2u;
  st[at + (P.c.x >> 2u) + i] = st[k + g];
  st[at + (P.c.y >> 2u) + i] = st[v + g];
}
`;

/** The per-row attention kernels' word address of position p's slot in the paged cache (its K at + kOff, its V at + vOff). */
const KV_SLOT = `fn slot(pt: u32, p: u32, base: u32, pageBytes: u32, pageSize: u32, kvDim: u32) -> u32 {
  let page = st[pt + p / pageSize];
  return (base + page * pageBytes + (p % pageSize) * kvDim * 4u) >> 2u;
}
`;

/**
 * The per-row attention kernels' params, and the workgroup's head h, token t, its row metadata r and page table pt
 * (headDim built in, or 0: read from P.b.w).
 */
function rowAttentionParams(headDim: number): string {
  return `  let out = P.a.x; let q = P.a.y; let rows = P.a.z; let base = P.a.w;
  let pageBytes = P.b.x; let pageSize = P.b.y; let kvDim = P.b.z; let headDim = ${headDim ? `${headDim}u` : "P.b.w"};
  let nHeads = P.c.x; let nKvHeads = P.c.y; let kOff = P.c.z >> 2u; let vOff = P.c.w >> 2u;
  let h = wg.x;
  let t = wg.y;
  let r = rows + t * 4u;
  let pt = st[r] >> 2u;`;
}

/**
 * Causal grouped-query attention over the paged cache: one workgroup of 128
 * threads per (query head, row). Positions [start, pos] are taken in chunks
 * of 256 with an online softmax (running max and sum), so context length is
 * bounded by nothing but the cache. headDim <= 256. The scores pass keeps each
 * position's cache slot in workgroup memory, and the weighted sum of V splits
 * the chunk's positions over 128 / headDim thread groups (summed at the end),
 * so no thread walks the page table or every position one after another.
 * ALiBi (d.x = 1): each score gains slope * (p - own position), the slope at word d.y + h.
 * a = (out, q, rows, base), b = (pageBytes, pageSize, kvDim, headDim), c = (nHeads, nKvHeads, kOff, vOff), d = (alibi, slopes)
 */
export const ATTENTION = attentionKernel(false);

/** The V pass's four steps of four positions: the 16 loads (plain variables: an array here may live in local memory), then the sums. */
function vBatch(): string {
  let src = "";
  const at = (u: number, k: number) => `j + ${4 * u + k}u * vgroups`;
  for (let u = 0; u < 4; u++) {
    src += `\n        let v${u} = vec4<f32>(${[0, 1, 2, 3].map((k) => `ldf(vs[${at(u, k)}] + vd)`).join(", ")});`;
  }
  for (let u = 0; u < 4; u++) src += `\n        a4 += vec4<f32>(${[0, 1, 2, 3].map((k) => `sc[${at(u, k)}]`).join(", ")}) * v${u};`;
  return src;
}

/**
 * The scores' dot product of q and a K row, as four partial sums over groups of four dimensions: a loop over
 * headDim, or (headDim known when the kernel is built) written out, so every load of the row is issued before the
 * sums wait on them (a loop whose bound is a parameter runs as 16 rounds of 4 loads at head size 64). Same sums, same order.
 */
function kDot(headDim: number): string {
  if (!headDim) {
    return `
      var s4 = vec4<f32>(0.0);
      var i = 0u;
      for (; i + 4u <= headDim; i += 4u) {
        s4 += vec4<f32>(qv[i], qv[i + 1u], qv[i + 2u], qv[i + 3u]) * vec4<f32>(ldf(ko + i), ldf(ko + i + 1u), ldf(ko + i + 2u), ldf(ko + i + 3u));
      }`;
  }
  const groups = Math.floor(headDim / 4);
  let src = "";
  for (let g = 0; g < groups; g++) {
    src += `\n      let k${g} = vec4<f32>(ldf(ko + ${4 * g}u), ldf(ko + ${4 * g + 1}u), ldf(ko + ${4 * g + 2}u), ldf(ko + ${4 * g + 3}u));`;
  }
  src += `\n      var s4 = vec4<f32>(0.0);`;
  for (let g = 0; g < groups; g++) {
    src += `\n      s4 += vec4<f32>(qv[${4 * g}u], qv[${4 * g + 1}u], qv[${4 * g + 2}u], qv[${4 * g + 3}u]) * k${g};`;
  }
  return src + `\n      var i = ${4 * groups}u;`;
}

/**
 * The per-row attention kernels' quantize epilogue (attentionKernel's, attentionWideKernel's): the head's output in sc
 * (headDim values) as whole Q8_0 blocks at P.e.y, with quantQ8_0Kernel's arithmetic; any workgroup size from 128 up.
 */
const QUANTIZE_HEAD = `
  // the head's blocks of 32: amax over each, then d = amax / 127 (f16-rounded) and q = round(v * 127 / amax)
  workgroupBarrier();
  let e = li & 31u;
  let first = li & ~31u;
  let v = select(0.0, sc[li], li < headDim);
  red[li] = abs(v);
  workgroupBarrier();
  for (var s = 16u; s > 0u; s >>= 1u) {
    if (e < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let amax = red[first];
  let id = select(0.0, 127.0 / amax, amax != 0.0);
  vs[li] = bitcast<u32>(i32(round(v * id)));
  workgroupBarrier();
  if (li < headDim) {
    let o = P.e.y + (t * (nHeads * headDim / 32u) + (h * headDim + first) / 32u) * 9u;
    if (e == 0u) { stf(o, quantizeToF16(amax / 127.0)); }
    if (e < 8u) {
      let q = first + 4u * e;
      st[o + 1u + e] = pack_i8(vec4<i32>(bitcast<i32>(vs[q]), bitcast<i32>(vs[q + 1u]), bitcast<i32>(vs[q + 2u]), bitcast<i32>(vs[q + 3u])));
    }
  }`;

/**
 * ATTENTION, and with quantize the Q8_0 activation blocks of its output for the Q8_0/Q4_0 matmul that reads it
 * (the output projection), so that matmul needs no quantize dispatch: the workgroup's head is headDim / 32 whole
 * blocks (headDim a multiple of 32, at most 128), quantized with quantQ8_0Kernel's arithmetic from the values it
 * stores. e.y = the quantized blocks' word address.
 */
export function attentionKernel(quantize: boolean, headDim = 0): string {
  return /* wgsl */ `
const CH: u32 = 256u;
var<workgroup> qv: array<f32, 256>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> red: array<f32, 128>;
var<workgroup> vs: array<u32, 256>;
var<workgroup> span: vec2<u32>;

${KV_SLOT}
@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${rowAttentionParams(headDim)}
  // the position range decides the loop (and its barriers): read it through
  // workgroup memory so the compiler knows every thread sees the same values
  if (li == 0u) { span = vec2<u32>(st[r + 2u], st[r + 1u] + 1u); }
  let range = workgroupUniformLoad(&span);
  let start = range.x;
  let end = range.y;
  let kvh = (h / (nHeads / nKvHeads)) * headDim;
  let qo = q + (t * nHeads + h) * headDim;
  for (var i = li; i < headDim; i += 128u) { qv[i] = ldf(qo + i); }
  workgroupBarrier();
  let scale = 1.0 / sqrt(f32(headDim));
  // V: thread li sums dimension d over the positions of its group (dimensions d and d + 128 when headDim > 128)
  let vgroups = max(1u, 128u / headDim);
  let d = li % min(headDim, 128u);
  let vgroup = li / min(headDim, 128u);
  var slope = 0.0;
  if (P.d.x != 0u) { slope = ldf(P.d.y + h); }
  var m = -3.0e38;
  var l = 0.0;
  var acc0 = 0.0;
  var acc1 = 0.0;
  for (var c0 = start; c0 < end; c0 += CH) {
    let cn = min(CH, end - c0);
    var mx = -3.0e38;
    for (var j = li; j < cn; j += 128u) {
      let at = slot(pt, c0 + j, base, pageBytes, pageSize, kvDim);
      vs[j] = at;
      let ko = at + kOff + kvh;
      // four partial sums: four independent loads in flight instead of one chain${kDot(headDim)}
      var s = (s4.x + s4.y) + (s4.z + s4.w);
      for (; i < headDim; i++) { s += qv[i] * ldf(ko + i); }
      s *= scale;
      if (P.d.x != 0u) { s += slope * (f32(c0 + j) - f32(end - 1u)); }
      sc[j] = s;
      mx = max(mx, s);
    }
    red[li] = mx;
    workgroupBarrier();
    for (var s = 64u; s > 0u; s >>= 1u) {
      if (li < s) { red[li] = max(red[li], red[li + s]); }
      workgroupBarrier();
    }
    let newM = max(m, red[0]);
    workgroupBarrier();
    var part = 0.0;
    for (var j = li; j < cn; j += 128u) { let e = exp(sc[j] - newM); sc[j] = e; part += e; }
    red[li] = part;
    workgroupBarrier();
    for (var s = 64u; s > 0u; s >>= 1u) {
      if (li < s) { red[li] += red[li + s]; }
      workgroupBarrier();
    }
    let corr = exp(m - newM);
    l = l * corr + red[0];
    m = newM;
    acc0 *= corr;
    acc1 *= corr;
    if (vgroup < vgroups) {
      // four positions a step, four partial sums: their V loads are in flight together
      let vd = vOff + kvh + d;
      var j = vgroup;
      var a4 = vec4<f32>(0.0);
      // four steps' 16 loads issued before their sums, which run in the one-step loop's order (the same bits)
      for (; j + 15u * vgroups < cn; j += 16u * vgroups) {${vBatch()}
      }
      for (; j + 3u * vgroups < cn; j += 4u * vgroups) {
        let j1 = j + vgroups;
        let j2 = j1 + vgroups;
        let j3 = j2 + vgroups;
        a4 += vec4<f32>(sc[j], sc[j1], sc[j2], sc[j3]) * vec4<f32>(ldf(vs[j] + vd), ldf(vs[j1] + vd), ldf(vs[j2] + vd), ldf(vs[j3] + vd));
      }
      for (; j < cn; j += vgroups) { a4.x += sc[j] * ldf(vs[j] + vd); }
      acc0 += (a4.x + a4.y) + (a4.z + a4.w);
      if (d + 128u < headDim) {
        for (var jj = vgroup; jj < cn; jj += vgroups) { acc1 += sc[jj] * ldf(vs[jj] + vd + 128u); }
      }
    }
    workgroupBarrier();
  }
  red[li] = acc0;
  workgroupBarrier();
  let oo = out + (t * nHeads + h) * headDim;
  if (vgroup == 0u) {
    var o = 0.0;
    for (var k = 0u; k < vgroups; k++) { o += red[k * headDim + d]; }
    stf(oo + d, o / l);
    if (d + 128u < headDim) { stf(oo + d + 128u, acc1 / l); }${
    quantize
      ? `
    sc[d] = o / l;`
      : ""
  }
  }${quantize ? QUANTIZE_HEAD : ""}
}
`;
}

/** Head sizes attentionWideKernel is built for: a multiple of 4 (its V pass reads quads) up to 128 (8 position groups or more). */
export function wideAttentionFits(headDim: number): boolean {
  return headDim > 0 && headDim % 4 === 0 && headDim <= 128;
}

/**
 * One token row's attention in one dispatch, shorter than attentionKernel's (same bindings and params, one workgroup
 * per (head, row)): 256 threads, so a chunk of 256 positions is one score a thread (every K row's loads issued at
 * once, where 128 threads take two rounds), the query read into each thread's registers at the start up to head
 * size 64 (no staging barrier before the first scores); the chunk's max and sum each in two steps (16 threads reduce 16 values,
 * then every thread the 16: 2 barriers where the tree takes 7); the V pass over 256 / (headDim / 4) position groups
 * (16 at head size 64, where attentionKernel has 2), each thread summing 4 dimensions of one position a step (a
 * 16-byte run of the V row), up to 16 positions' loads issued before their sums (a full chunk's share at head size 64). Same online softmax over chunks of 256; the
 * sums' order differs from attentionKernel's, so its output is equal to 1e-5, not bit for bit.
 */
export function attentionWideKernel(quantize: boolean, headDim: number): string {
  if (!wideAttentionFits(headDim)) throw new Error(`attentionWideKernel: head size ${headDim} is not a multiple of 4 up to 128`);
  const quads = headDim / 4, groups = Math.floor(256 / quads);
  const g4 = Array.from({ length: quads }, (_, g) => g);
  const four = (at: string, g: number) => `vec4<f32>(${[0, 1, 2, 3].map((w) => `ldf(${at} + ${4 * g + w}u)`).join(", ")})`;
  // the query in registers up to head size 64, read once (no staging, no barrier before the first K row; past 64 the
  // query and a K row would take every register a thread has, so it is staged), and a K row's loads all issued before
  // their products (kDot's order: four partial sums over groups of four dimensions)
  const inRegs = headDim <= 64;
  const qLoads = inRegs
    ? g4.map((g) => `let q${g} = ${four("qo", g)};`).join("\n  ")
    : `if (li < headDim) { qv[li] = ldf(qo + li); }\n  workgroupBarrier();`;
  const qAt = (g: number) => inRegs ? `q${g}` : `vec4<f32>(${[0, 1, 2, 3].map((w) => `qv[${4 * g + w}u]`).join(", ")})`;
  const kLoads = g4.map((g) => `let k${g} = ${four("ko", g)};`).join("\n      ");
  const kSums = g4.map((g) => `s4 += ${qAt(g)} * k${g};`).join("\n      ");
  // the head's output also kept in sc for QUANTIZE_HEAD
  const keep = quantize ? "xyzw".split("").map((c, k) => `\n    sc[4u * li + ${k}u] = o.${c};`).join("") : "";
  // a run of `count` positions of a thread's group: their loads (4 words of a V row each), then their sums in position order
  const vRun = (count: number) => {
    const lines: string[] = [];
    const at = (k: number) => k ? `j + ${k}u * G` : "j";
    for (let k = 0; k < count; k++) {
      lines.push(`let v${k} = vec4<f32>(${[0, 1, 2, 3].map((w) => `ldf(vs[${at(k)}] + vd${w ? ` + ${w}u` : ""})`).join(", ")});`);
    }
    for (let k = 0; k < count; k++) lines.push(`acc += sc[${at(k)}] * v${k};`);
    const cond = count > 1 ? `j + ${count - 1}u * G < cn` : "j < cn", step = count > 1 ? `${count}u * G` : "G";
    return `for (; ${cond}; j += ${step}) {\n        ${lines.join("\n        ")}\n      }`;
  };
  return /* wgsl */ `
const CH: u32 = 256u;
const QUADS: u32 = ${quads}u;
const G: u32 = ${groups}u;
${inRegs ? "" : `var<workgroup> qv: array<f32, ${headDim}>;\n`}var<workgroup> sc: array<f32, 256>;
var<workgroup> red: array<f32, 256>;
var<workgroup> red16: array<f32, 16>;
var<workgroup> vs: array<u32, 256>;
var<workgroup> parts: array<vec4<f32>, 256>;
var<workgroup> span: vec2<u32>;

${KV_SLOT}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
${rowAttentionParams(headDim)}
  let qo = q + (t * nHeads + h) * headDim;
  ${qLoads}
  if (li == 0u) { span = vec2<u32>(st[r + 2u], st[r + 1u] + 1u); }
  let range = workgroupUniformLoad(&span);
  let start = range.x;
  let end = range.y;
  let kvh = (h / (nHeads / nKvHeads)) * headDim;
  let scale = 1.0 / sqrt(f32(headDim));
  // V: thread li sums dimensions 4 quad .. 4 quad + 3 over the positions of its group
  let quad = li % QUADS;
  let group = li / QUADS;
  var slope = 0.0;
  if (P.d.x != 0u) { slope = ldf(P.d.y + h); }
  var m = -3.0e38;
  var l = 0.0;
  var acc = vec4<f32>(0.0);
  for (var c0 = start; c0 < end; c0 += CH) {
    let cn = min(CH, end - c0);
    var sj = -3.0e38;
    if (li < cn) {
      let at = slot(pt, c0 + li, base, pageBytes, pageSize, kvDim);
      vs[li] = at;
      let ko = at + kOff + kvh;
      ${kLoads}
      var s4 = vec4<f32>(0.0);
      ${kSums}
      var s = (s4.x + s4.y) + (s4.z + s4.w);
      s *= scale;
      if (P.d.x != 0u) { s += slope * (f32(c0 + li) - f32(end - 1u)); }
      sj = s;
    }
    // the chunk's max: 16 threads each take 16 scores, then every thread the 16 maxima
    red[li] = sj;
    workgroupBarrier();
    if (li < 16u) {
      var x = red[16u * li];
      for (var k = 1u; k < 16u; k++) { x = max(x, red[16u * li + k]); }
      red16[li] = x;
    }
    workgroupBarrier();
    var cm = red16[0];
    for (var k = 1u; k < 16u; k++) { cm = max(cm, red16[k]); }
    let newM = max(m, cm);
    var e = 0.0;
    if (li < cn) { e = exp(sj - newM); }
    sc[li] = e;
    red[li] = e;
    workgroupBarrier();
    if (li < 16u) {
      var x = red[16u * li];
      for (var k = 1u; k < 16u; k++) { x += red[16u * li + k]; }
      red16[li] = x;
    }
    workgroupBarrier();
    var cs = red16[0];
    for (var k = 1u; k < 16u; k++) { cs += red16[k]; }
    let corr = exp(m - newM);
    l = l * corr + cs;
    m = newM;
    acc *= corr;
    if (group < G) {
      let vd = vOff + kvh + 4u * quad;
      var j = group;
      // 16 positions' 64 loads in flight (a group's whole share of a full chunk at head size 64), then 4, then 1
      ${vRun(16)}
      ${vRun(4)}
      ${vRun(1)}
    }
    workgroupBarrier();
  }
  parts[li] = acc;
  workgroupBarrier();
  let oo = out + (t * nHeads + h) * headDim;
  if (li < QUADS) {
    var o = parts[li];
    for (var k = 1u; k < G; k++) { o += parts[k * QUADS + li]; }
    o = o / l;
    stf(oo + 4u * li, o.x);
    stf(oo + 4u * li + 1u, o.y);
    stf(oo + 4u * li + 2u, o.z);
    stf(oo + 4u * li + 3u, o.w);${keep}
  }${quantize ? QUANTIZE_HEAD : ""}
}
`;
}

/**
 * LayerNorm without its bias, one workgroup per row: out = (x - mean) / sqrt(var + eps) * w
 * (the bias is a second dispatch, ADD_BIAS: one weight is bound per dispatch). a = (out, x, n, T), b.x = eps bits.
 */
export const LAYERNORM_SCALE = /* wgsl */ `
var<workgroup> red: array<f32, 256>;
fn rowSum(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let x = P.a.y; let n = P.a.z;
  let eps = bitcast<f32>(P.b.x);
  let xr = x + wg.x * n;
  let orow = out + wg.x * n;
  var s = 0.0;
  for (var i = li; i < n; i += 256u) { s += ldf(xr + i); }
  let mean = rowSum(li, s) / f32(n);
  var v = 0.0;
  for (var i = li; i < n; i += 256u) { let d = ldf(xr + i) - mean; v += d * d; }
  let scale = 1.0 / sqrt(rowSum(li, v) / f32(n) + eps);
  for (var i = li; i < n; i += 256u) { stf(orow + i, (ldf(xr + i) - mean) * scale * wf(i)); }
}
`;

/** x (rows, n) += bias (the bound weight); a = (x, rows * n, n) */
export const ADD_BIAS = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = flat(wg, nwg, li);
  if (g >= P.a.y) { return; }
  stf(P.a.x + g, ldf(P.a.x + g) + wf(g % P.a.z));
}
`;

/** GELU, tanh approximation; a = (out, x, n) */
export const GELU_TANH = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = flat(wg, nwg, li);
  if (g >= P.a.z) { return; }
  let x = ldf(P.a.y + g);
  // tanh(u) as 1 - 2/(e^{2u}+1): no overflow to NaN for large |u|
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
  stf(P.a.x + g, 0.5 * x * (1.0 + th));
}
`;

/** GELU, exact form 0.5 x (1 + erf(x / sqrt 2)), erf by Abramowitz & Stegun 7.1.26; a = (out, x, n) */
export const GELU_ERF = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = flat(wg, nwg, li);
  if (g >= P.a.z) { return; }
  let x = ldf(P.a.y + g);
  let z = x * 0.7071067811865476;
  let a = abs(z);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  let erf = sign(z) * (1.0 - poly * exp(-a * a));
  stf(P.a.x + g, 0.5 * x * (1.0 + erf));
}
`;

/**
 * Greedy pick on the device: the index of the largest of n floats, ties to
 * the lowest index, NaN never chosen, -Infinity only when nothing is larger
 * (the host Sampler's argmax, bit for bit), written as an i32 to `out`; all
 * NaN writes -1. Two stages: workgroup g of the first takes `chunk` logits and
 * writes its (value, index) pair to partial g; one workgroup then picks among
 * the pairs (ties still to the lower index: chunks are in order). In a
 * workgroup each thread scans a strided slice in ascending order, then a tree
 * reduction keeps (larger value, lower index).
 * a = (out, logits, n, out2): out2 (a second copy, the next step's input token) unless 0xffffffff;
 * b = (input is pairs, chunk, output is pairs).
 */
export const ARGMAX = /* wgsl */ `
const NONE: u32 = 0xffffffffu;
var<workgroup> bv: array<f32, 256>;
var<workgroup> bi: array<u32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let logits = P.a.y; let n = P.a.z;
  let pairs = P.b.x == 1u;
  let lo = wg.x * P.b.y;
  let hi = min(n, lo + P.b.y);
  let ninf = bitcast<f32>(0xff800000u);
  var v = ninf;
  var idx = NONE;
  for (var i = lo + li; i < hi; i += 256u) {
    var x: f32;
    var xi = i;
    if (pairs) {
      x = ldf(logits + 2u * i);
      xi = st[logits + 2u * i + 1u];
    } else {
      x = ldf(logits + i);
    }
    if (xi != NONE && (x > v || (idx == NONE && x == ninf))) { v = x; idx = xi; }
  }
  bv[li] = v;
  bi[li] = idx;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (li < s) {
      let oi = bi[li + s];
      let ov = bv[li + s];
      let mi = bi[li];
      if (oi != NONE && (mi == NONE || ov > bv[li] || (ov == bv[li] && oi < mi))) { bv[li] = ov; bi[li] = oi; }
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    if (P.b.z == 1u) {
      st[out + 2u * wg.x] = bitcast<u32>(bv[0]);
      st[out + 2u * wg.x + 1u] = bi[0];
    } else {
      st[out] = bi[0];
      if (P.a.w != NONE) { st[P.a.w] = bi[0]; }
    }
  }
}
`;
