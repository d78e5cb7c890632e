/**
 * The F16 KV cache on the GPU: the store that rounds K and V rows to IEEE halves, and attention over those
 * halves with the arithmetic of ggml's CPU flash attention (ggml_compute_forward_flash_attn_ext_f16_one_chunk,
 * what llama.cpp runs with its default F16 cache and flash attention "auto"), as assembly/kv16.ts does it on
 * the WASM backend. Why it matters: llama.cpp's references are made with that cache, and on files whose
 * activations are re-quantized to 8 bits before every matmul (Q8_0, Q4_0) the F32 cache's logits part from
 * llama.cpp's by ~1 (in ~90) on the synthetic files, enough to pass llama.cpp's runner-up where its margin
 * is 0.1-0.4; with this cache the GPU's logits are the WASM F16 cache's.
 *
 * Halves are rounded in integer arithmetic (round to nearest even, subnormals kept), not by quantizeToF16 or
 * pack2x16float, whose rounding mode and subnormals WGSL leaves to the implementation.
 */

/** f32 -> IEEE half bits, round to nearest even (F16C's vcvtps2ph, mode 0), and the half back as f32. */
const HALF = /* wgsl */ `
fn half_bits(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let sign = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) { return sign | 0x7e00u | ((a >> 13u) & 0x3ffu); }
  if (a >= 0x477ff000u) { return sign | 0x7c00u; } // 65520 and up: past the largest half's rounding interval
  if (a < 0x38800000u) { return sign | u32(round(bitcast<f32>(a) * 16777216.0)); } // subnormal: on the 2^-24 grid, ties to even
  return sign | ((a + 0xfffu + ((a >> 13u) & 1u) - 0x38000000u) >> 13u);
}
fn half_value(h: u32) -> f32 {
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  var v: f32;
  if (e == 0u) { v = f32(m) * 5.9604644775390625e-8; } // subnormal: m * 2^-24, exact
  else { v = bitcast<f32>(((e + 112u) << 23u) | (m << 13u)); } // (halves of the cache are finite: rounded from finite K, V)
  return select(v, -v, (h & 0x8000u) != 0u);
}
fn round_half(x: f32) -> f32 { return half_value(half_bits(x)); }
`;

/**
 * K and V rows into their F16 cache slots through each row's page table; one thread per (row, pair of
 * elements), a word of two halves each. Parameters as KV_STORE's.
 */
export const KV_STORE_F16 = /* wgsl */ `${HALF}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let k = P.a.x; let v = P.a.y; let rows = P.a.z; let T = P.a.w;
  let base = P.b.x; let pageBytes = P.b.y; let pageSize = P.b.z; let kvDim = P.b.w;
  let g = flat(wg, nwg, li);
  let words = kvDim / 2u;
  if (g >= T * words) { return; }
  let t = g / words;
  let i = g % words;
  let r = rows + t * 4u;
  let pos = st[r + 1u];
  let page = st[(st[r] >> 2u) + pos / pageSize];
  let at = (base + page * pageBytes + (pos % pageSize) * kvDim * 2u) >> 2u;
  let e = k + t * kvDim + 2u * i;
  let f = v + t * kvDim + 2u * i;
  st[at + (P.c.x >> 2u) + i] = half_bits(ldf(e)) | (half_bits(ldf(e + 1u)) << 16u);
  st[at + (P.c.y >> 2u) + i] = half_bits(ldf(f)) | (half_bits(ldf(f + 1u)) << 16u);
}
`;

/**
 * Attention of one (query head, row) a workgroup of 64 threads over the F16 cache, ggml's one_chunk arithmetic:
 * q rounded to half; each score ggml_vec_dot_f16 as the AVX-512 build sums it (64 values a step in four
 * accumulators of 16 lanes, folded (acc0 + acc2) + (acc1 + acc3), the lanes reduced as _mm512_reduce_add_ps,
 * the headDim % 64 leftover products added as in f64: here a two-word sum, exact to far below an f32 ulp) times
 * the scale; then the online softmax position by position in order, the running output in halves
 * (half(y * expf(Mold - M)) on a new maximum, y = half(fma(v, expf(s - M), y))) and the running sum S = S * ms
 * + vs in f32; the output is y * (1 / S). Each thread scores one position of a chunk of 64 (its own sequential
 * dot product), then every thread runs the same softmax recurrence and updates its own output dimensions.
 * What is not llama.cpp's to the bit: exp is the GPU's, not glibc's expf (an ulp or two, which the half
 * rounding of y absorbs but for values at a half's rounding boundary).
 * Parameters as ATTENTION's, with d.z = the score scale's f32 bits (1 / sqrtf(headDim), computed on the host).
 */
export const ATTENTION_F16 = /* wgsl */ `${HALF}
const CH: u32 = 64u;
var<workgroup> qh: array<f32, 256>;
var<workgroup> sc: array<f32, 64>;
var<workgroup> slots: array<u32, 64>;
var<workgroup> span: vec2<u32>;

fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let out = P.a.x; let q = P.a.y; let rows = P.a.z; let base = P.a.w;
  let pageBytes = P.b.x; let pageSize = P.b.y; let kvDim = P.b.z; let headDim = P.b.w;
  let nHeads = P.c.x; let nKvHeads = P.c.y; let kOff = P.c.z; let vOff = P.c.w;
  let scale = bitcast<f32>(P.d.z);
  let h = wg.x;
  let t = wg.y;
  let r = rows + t * 4u;
  let pt = st[r] >> 2u;
  if (li == 0u) { span = vec2<u32>(st[r + 2u], st[r + 1u] + 1u); }
  let range = workgroupUniformLoad(&span);
  let start = range.x;
  let end = range.y;
  // byte offset of this head's halves within a slot
  let kvh = (h / (nHeads / nKvHeads)) * headDim * 2u;
  let qo = q + (t * nHeads + h) * headDim;
  for (var i = li; i < headDim; i += 64u) { qh[i] = round_half(ldf(qo + i)); }
  workgroupBarrier();
  var slope = 0.0;
  if (P.d.x != 0u) { slope = ldf(P.d.y + h); }
  let np = headDim & ~63u;
  // output dimensions li, li + 64, li + 128, li + 192 (those below headDim): halves held as f32
  var y = vec4<f32>(0.0);
  var M = 0.0;
  var S = 0.0;
  var seen = false;
  for (var c0 = start; c0 < end; c0 += CH) {
    let cn = min(CH, end - c0);
    if (li < cn) {
      let p = c0 + li;
      let at = base + st[pt + p / pageSize] * pageBytes + (p % pageSize) * kvDim * 2u + kvh;
      slots[li] = at;
      let ko = (at + kOff) >> 2u;
      var sum = 0.0;
      if (np > 0u) {
        var acc: array<f32, 64>;
        for (var l = 0u; l < 64u; l++) { acc[l] = 0.0; }
        for (var i = 0u; i < np; i += 64u) {
          for (var l = 0u; l < 64u; l += 2u) {
            let kk = st[ko + (i + l) / 2u];
            acc[l] += qh[i + l] * half_value(kk & 0xffffu);
            acc[l + 1u] += qh[i + l + 1u] * half_value(kk >> 16u);
          }
        }
        // per lane (acc0 + acc2) + (acc1 + acc3); lanes m, m+4, m+8, m+12 as (y3 + y1) + (y2 + y0); then (w0 + w2) + (w1 + w3)
        var w = vec4<f32>(0.0);
        for (var m = 0u; m < 4u; m++) {
          var yl: array<f32, 4>;
          for (var g = 0u; g < 4u; g++) {
            let l = 4u * g + m;
            yl[g] = (acc[l] + acc[32u + l]) + (acc[16u + l] + acc[48u + l]);
          }
          w[m] = (yl[3] + yl[1]) + (yl[2] + yl[0]);
        }
        sum = (w.x + w.z) + (w.y + w.w);
      }
      var hi = sum;
      var lo = 0.0;
      for (var i = np; i < headDim; i += 2u) {
        let kk = st[ko + i / 2u];
        let a = two_sum(hi, qh[i] * half_value(kk & 0xffffu));
        let b = two_sum(a.x, qh[i + 1u] * half_value(kk >> 16u));
        hi = b.x;
        lo += a.y + b.y;
      }
      var s = (hi + lo) * scale;
      if (P.d.x != 0u) { s += slope * f32(i32(p) - i32(end - 1u)); }
      sc[li] = s;
    }
    workgroupBarrier();
    for (var j = 0u; j < cn; j++) {
      let s = sc[j];
      var ms = 1.0;
      var vs = 1.0;
      if (!seen) {
        // the first position: y is zero and S = 0 * ms + 1 whatever expf(-inf - s) is
        M = s;
        seen = true;
      } else if (s > M) {
        ms = exp(M - s);
        M = s;
        for (var e = 0u; e < 4u; e++) { y[e] = round_half(y[e] * ms); }
      } else {
        vs = exp(s - M);
      }
      let vo = slots[j] + vOff;
      for (var e = 0u; e < 4u; e++) {
        let d = li + 64u * e;
        if (d < headDim) {
          let word = st[(vo >> 2u) + d / 2u];
          let v = half_value(select(word & 0xffffu, word >> 16u, (d & 1u) == 1u));
          y[e] = round_half(fma(v, vs, y[e]));
        }
      }
      S = S * ms + vs;
    }
    workgroupBarrier();
  }
  // 1 / S correctly rounded (a division may be off by ulps on a GPU): one Newton step on the estimate
  var inv = 0.0;
  if (S != 0.0) {
    let r0 = 1.0 / S;
    inv = fma(r0, fma(-S, r0, 1.0), r0);
  }
  let oo = out + (t * nHeads + h) * headDim;
  for (var e = 0u; e < 4u; e++) {
    let d = li + 64u * e;
    if (d < headDim) { stf(oo + d, y[e] * inv); }
  }
}
`;
