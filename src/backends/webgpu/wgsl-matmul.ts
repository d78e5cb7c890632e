import { GGMLType, type GGMLTypeId } from "../../formats/ggml-types.ts";

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

/** ggml's get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 packed bytes after d, dmin. */
export const Q4K_SCALE_MIN = /* wgsl */ `
fn q4k_scale_min(bo: u32, j: u32) -> vec2<u32> {
  let s = bo + 4u;
  if (j < 4u) { return vec2<u32>(wbyte(s + j) & 63u, wbyte(s + j + 4u) & 63u); }
  let a = wbyte(s + j + 4u);
  return vec2<u32>((a & 0xfu) | ((wbyte(s + j - 4u) >> 6u) << 4u), (a >> 4u) | ((wbyte(s + j) >> 6u) << 4u));
}
`;

export const MATMUL_ROWS_PER_GROUP = 8;
export const MATMUL_TOKENS_PER_GROUP = 8;

export function matmulTypes(): GGMLTypeId[] {
  return Object.keys(UNIT).map(Number);
}

export function matmulKernel(type: GGMLTypeId): string {
  const u = UNIT[type];
  return /* wgsl */ `
${Q4K_SCALE_MIN}
const TT: u32 = 8u;
var<workgroup> red: array<f32, 2048>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let x = P.a.y; let n = P.a.z; let d = P.a.w;
  let T = P.b.x; let row0 = P.b.y; let rows = P.b.z; let rowBytes = P.b.w;
  let lane = li & 31u;
  let r = wg.x * 8u + (li >> 5u);
  let t0 = wg.y * TT;
  let nt = min(TT, T - t0);
  var acc: array<f32, 8>;
  if (r < rows) {
    let wbase = r * rowBytes;
    let nu = ${u.units};
    for (var u = lane; u < nu; u += 32u) {${u.body}
    }
  }
  for (var k = 0u; k < TT; k++) { red[li * TT + k] = acc[k]; }
  workgroupBarrier();
  for (var s = 16u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var k = 0u; k < TT; k++) { red[li * TT + k] += red[(li + s) * TT + k]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && r < rows) {
    for (var k = 0u; k < nt; k++) { stf(out + (t0 + k) * d + row0 + r, red[li * TT + k]); }
  }
}
`;
}

/**
 * Activation quantizers, one thread per block, as ggml's x86 CPU path:
 * Q8_0: d = amax/127 stored f16-rounded, q = round_even(x * 127/amax);
 * Q8_K: the signed value of largest magnitude maps to -127, q = min(127, round(x * -127/max)), d = 1/iscale, block sums per 16.
 * Params: a = (out word, x word, n, T).
 */
export const QUANTIZE_Q8_0 = /* wgsl */ `
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let x = P.a.y; let n = P.a.z; let T = P.a.w;
  let g = flat(wg, nwg, li);
  let nb = n / 32u;
  if (g >= nb * T) { return; }
  let xo = x + (g / nb) * n + (g % nb) * 32u;
  var amax = 0.0;
  for (var i = 0u; i < 32u; i++) { amax = max(amax, abs(ldf(xo + i))); }
  let id = select(0.0, 127.0 / amax, amax != 0.0);
  let o = out + g * 9u;
  stf(o, quantizeToF16(amax / 127.0));
  for (var j = 0u; j < 8u; j++) {
    let v = vec4<f32>(ldf(xo + 4u * j), ldf(xo + 4u * j + 1u), ldf(xo + 4u * j + 2u), ldf(xo + 4u * j + 3u));
    st[o + 1u + j] = pack_i8(vec4<i32>(round(v * id)));
  }
}
`;

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
${Q4K_SCALE_MIN}
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
