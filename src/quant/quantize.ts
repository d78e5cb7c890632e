/**
 * Offline quantization, bit-exact with ggml's reference quantizers
 * (ggml-quants.c: quantize_row_q8_0_ref, q4_0_ref, q4_1_ref, q5_0_ref,
 * q5_1_ref, q4_K_ref with make_qkx2_quants, q6_K_ref with make_qx_quants),
 * and a model-level quantizer that picks tensor types the way llama.cpp's
 * `llama-quantize` does (no importance matrix), so kvasm-written files are what
 * llama.cpp would write. Every f32 operation goes through Math.fround in ggml's
 * evaluation order.
 */
import { checkOptionNames, FormatError, optionNames, ParamError, UnsupportedError } from "../errors.ts";
import { GGMLType, type GGMLTypeId, ggmlTypeName, rowBytes } from "../formats/ggml-types.ts";
import type { ModelFile } from "../formats/types.ts";
import type { GGUFFile } from "../formats/gguf.ts";
import {
  type ByteSink,
  type GGUFContents,
  type GGUFMetadataEntry,
  type GGUFTensorToWrite,
  inferValueType,
  metadataEntries,
  writeGGUF,
} from "../formats/gguf-writer.ts";
import { bf16ToF32, f16ToF32, f32ToF16 } from "./half.ts";
import { hfGGUFContents, isHFMapped } from "../convert/hf-to-gguf.ts";

const fr = Math.fround;
const GROUP_MAX_EPS = fr(1e-15);

/** ggml's nearest_int: round half to even of an f32 (|x| < 2^22). */
function nearestInt(x: number): number {
  return fr(x + 12582912) - 12582912;
}
/** C roundf: half away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

// ------------------------------------------------------------------ 32-element blocks

function q8_0(x: Float32Array, y: DataView, o: number): void {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[j]));
  const d = fr(amax / 127), id = d ? fr(1 / d) : 0;
  y.setUint16(o, f32ToF16(d), true);
  for (let j = 0; j < 32; j++) y.setInt8(o + 2 + j, roundf(fr(x[j] * id)));
}

/** Q4_0 and Q5_0: d = max / -8 (-16), q = min(15 (31), trunc(x/d + 8.5 (16.5))). */
function qx_0(x: Float32Array, y: DataView, o: number, bits: 4 | 5): void {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) {
    if (amax < Math.abs(x[j])) {
      amax = Math.abs(x[j]);
      max = x[j];
    }
  }
  const half = bits === 4 ? 8 : 16, top = bits === 4 ? 15 : 31;
  const d = fr(max / -half), id = d ? fr(1 / d) : 0;
  y.setUint16(o, f32ToF16(d), true);
  let qh = 0;
  const qs = o + (bits === 4 ? 2 : 6);
  for (let j = 0; j < 16; j++) {
    const x0 = Math.min(top, Math.trunc(fr(fr(x[j] * id) + half + 0.5)));
    const x1 = Math.min(top, Math.trunc(fr(fr(x[j + 16] * id) + half + 0.5)));
    y.setUint8(qs + j, (x0 & 15) | ((x1 & 15) << 4));
    qh |= ((x0 & 0x10) >> 4) << j;
    qh |= ((x1 & 0x10) >> 4) << (j + 16);
  }
  if (bits === 5) y.setUint32(o + 2, qh >>> 0, true);
}

/** Q4_1 and Q5_1: d = (max - min) / 15 (31), m = min, q = trunc((x - min)/d + 0.5). */
function qx_1(x: Float32Array, y: DataView, o: number, bits: 4 | 5): void {
  let min = Infinity, max = -Infinity;
  for (let j = 0; j < 32; j++) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const d = fr(fr(max - min) / (bits === 4 ? 15 : 31)), id = d ? fr(1 / d) : 0;
  y.setUint16(o, f32ToF16(d), true);
  y.setUint16(o + 2, f32ToF16(min), true);
  let qh = 0;
  const qs = o + (bits === 4 ? 4 : 8);
  for (let j = 0; j < 16; j++) {
    let x0 = Math.trunc(fr(fr(fr(x[j] - min) * id) + 0.5)) & 0xff;
    let x1 = Math.trunc(fr(fr(fr(x[j + 16] - min) * id) + 0.5)) & 0xff;
    if (bits === 4) {
      x0 = Math.min(15, x0);
      x1 = Math.min(15, x1);
    }
    y.setUint8(qs + j, (x0 & 15) | ((x1 & 15) << 4));
    qh |= ((x0 & 0x10) >> 4) << j;
    qh |= ((x1 & 0x10) >> 4) << (j + 16);
  }
  if (bits === 5) y.setUint32(o + 4, qh >>> 0, true);
}

// ------------------------------------------------------------------ K-quants

/** make_qkx2_quants: scale and -min for n values at 0..nmax (weighted least squares search). */
function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  weights: Float32Array,
  L: Uint8Array,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
): [scale: number, theMin: number] {
  let min = x[0], max = x[0];
  let sumW = weights[0];
  let sumX = fr(sumW * x[0]);
  for (let i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const w = weights[i];
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * x[i]));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, 0, n);
    return [0, -min];
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(fr(iscale * fr(x[i] - min)));
    L[i] = Math.max(0, Math.min(nmax, l));
    let diff = fr(fr(fr(scale * L[i]) + min) - x[i]);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestError = fr(bestError + fr(weights[i] * diff));
  }
  if (nstep < 1) return [scale, -min];
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestInt(fr(iscale * fr(x[i] - min)));
      l = Math.max(0, Math.min(nmax, l));
      Laux[i] = l;
      const w = weights[i];
      sumL = fr(sumL + fr(w * l));
      sumL2 = fr(sumL2 + fr(fr(w * l) * l));
      sumXL = fr(sumXL + fr(fr(w * l) * x[i]));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = fr(fr(fr(thisScale * Laux[i]) + thisMin) - x[i]);
        diff = useMad ? Math.abs(diff) : fr(diff * diff);
        curError = fr(curError + fr(weights[i] * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[i] = Laux[i];
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** make_qx_quants with rmse_type 1 and no importance weights (w = x^2); L gets l + nmax. */
function makeQxQuants(n: number, nmax: number, x: Float32Array, L: Int8Array | Uint8Array): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    let l = nearestInt(fr(iscale * x[i]));
    l = Math.max(-nmax, Math.min(nmax - 1, l));
    L[i] = l + nmax;
    const w = fr(x[i] * x[i]);
    sumlx = fr(sumlx + fr(fr(w * x[i]) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    sumlx = suml2 = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestInt(fr(iscale * x[i]));
      l = Math.max(-nmax, Math.min(nmax - 1, l));
      const w = fr(x[i] * x[i]);
      sumlx = fr(sumlx + fr(fr(w * x[i]) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(fr(iscale * x[i]));
        L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

function q4_K(x: Float32Array, y: DataView, o: number): void {
  const L = new Uint8Array(256), Laux = new Uint8Array(32), weights = new Float32Array(32);
  const mins = new Float32Array(8), scales = new Float32Array(8);
  let maxScale = 0, maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const xs = x.subarray(32 * j, 32 * j + 32);
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(xs[l] * xs[l]));
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(xs[l]));
    const [sc, mn] = makeQkx2Quants(32, 15, xs, weights, L.subarray(32 * j), Laux, -1, fr(0.1), 20, false);
    scales[j] = sc;
    mins[j] = mn;
    if (scales[j] > maxScale) maxScale = scales[j];
    if (mins[j] > maxMin) maxMin = mins[j];
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0, invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const sb = new Uint8Array(12);
  for (let j = 0; j < 8; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * scales[j])) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * mins[j])) & 0xff);
    if (j < 4) {
      sb[j] = ls;
      sb[j + 4] = lm;
    } else {
      sb[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      sb[j - 4] |= (ls >> 4) << 6;
      sb[j] |= (lm >> 4) << 6;
    }
  }
  const dh = f32ToF16(fr(maxScale / 63)), mh = f32ToF16(fr(maxMin / 63));
  y.setUint16(o, dh, true);
  y.setUint16(o + 2, mh, true);
  for (let i = 0; i < 12; i++) y.setUint8(o + 4 + i, sb[i]);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = j < 4
      ? [sb[j] & 63, sb[j + 4] & 63]
      : [(sb[j + 4] & 0xf) | ((sb[j - 4] >> 6) << 4), (sb[j + 4] >> 4) | ((sb[j] >> 6) << 4)];
    const d = fr(f16ToF32(dh) * sc);
    if (!d) continue;
    const dm = fr(f16ToF32(mh) * m);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(fr(fr(x[32 * j + ii] + dm) / d));
      L[32 * j + ii] = Math.max(0, Math.min(15, l));
    }
  }
  for (let j = 0, q = o + 16; j < 256; j += 64, q += 32) {
    for (let l = 0; l < 32; l++) y.setUint8(q + l, L[j + l] | (L[j + l + 32] << 4));
  }
}

function q6_K(x: Float32Array, y: DataView, o: number): void {
  const L = new Int8Array(256), scales = new Float32Array(16);
  let maxScale = 0, maxAbsScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const scale = makeQxQuants(16, 32, x.subarray(16 * ib, 16 * ib + 16), L.subarray(16 * ib, 16 * ib + 16));
    scales[ib] = scale;
    const a = Math.abs(scale);
    if (a > maxAbsScale) {
      maxAbsScale = a;
      maxScale = scale;
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    for (let i = 0; i < 210; i++) y.setUint8(o + i, 0);
    return;
  }
  const iscale = fr(-128 / maxScale);
  const dh = f32ToF16(fr(1 / iscale));
  y.setUint16(o + 208, dh, true);
  const sc = new Int8Array(16);
  for (let ib = 0; ib < 16; ib++) sc[ib] = Math.min(127, nearestInt(fr(iscale * scales[ib])));
  for (let ib = 0; ib < 16; ib++) y.setInt8(o + 192 + ib, sc[ib]);
  for (let j = 0; j < 16; j++) {
    const d = fr(f16ToF32(dh) * sc[j]);
    if (!d) continue;
    for (let ii = 0; ii < 16; ii++) {
      const l = nearestInt(fr(x[16 * j + ii] / d));
      L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
    }
  }
  for (let j = 0, ql = o, qh = o + 128; j < 256; j += 128, ql += 64, qh += 32) {
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l] & 0xf, q2 = L[j + l + 32] & 0xf, q3 = L[j + l + 64] & 0xf, q4 = L[j + l + 96] & 0xf;
      y.setUint8(ql + l, q1 | (q3 << 4));
      y.setUint8(ql + l + 32, q2 | (q4 << 4));
      y.setUint8(qh + l, (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
    }
  }
}

// ------------------------------------------------------------------ rows

/** Types quantizeRows writes. */
const QUANTIZE_TYPES: readonly GGMLTypeId[] = [
  GGMLType.F32,
  GGMLType.F16,
  GGMLType.Q8_0,
  GGMLType.Q4_0,
  GGMLType.Q4_1,
  GGMLType.Q5_0,
  GGMLType.Q5_1,
  GGMLType.Q4_K,
  GGMLType.Q6_K,
];

/**
 * Quantizes rows of `n` f32 values (src.length / n rows) to `type`, exactly as
 * ggml's reference quantizer would (what llama-quantize writes without an imatrix).
 */
export function quantizeRows(type: GGMLTypeId, src: Float32Array, n: number): Uint8Array {
  if (!QUANTIZE_TYPES.includes(type)) throw new UnsupportedError(`kvasm cannot quantize to ${ggmlTypeName(type)}`);
  const rb = rowBytes(type, n);
  if (rb === undefined || n <= 0) throw new ParamError("n", `rows of ${n} elements do not split into ${ggmlTypeName(type)} blocks`);
  if (src.length % n !== 0) throw new ParamError("src", `${src.length} values are not whole rows of ${n}`);
  const rows = src.length / n;
  const out = new Uint8Array(rb * rows);
  const y = new DataView(out.buffer);
  if (type === GGMLType.F32) {
    new Float32Array(out.buffer).set(src);
    return out;
  }
  if (type === GGMLType.F16) {
    for (let i = 0; i < src.length; i++) y.setUint16(2 * i, f32ToF16(src[i]), true);
    return out;
  }
  const qk = type === GGMLType.Q4_K || type === GGMLType.Q6_K ? 256 : 32;
  const bs = rowBytes(type, qk)!;
  for (let b = 0; b < src.length / qk; b++) {
    const x = src.subarray(b * qk, b * qk + qk), o = b * bs;
    switch (type) {
      case GGMLType.Q8_0:
        q8_0(x, y, o);
        break;
      case GGMLType.Q4_0:
        qx_0(x, y, o, 4);
        break;
      case GGMLType.Q5_0:
        qx_0(x, y, o, 5);
        break;
      case GGMLType.Q4_1:
        qx_1(x, y, o, 4);
        break;
      case GGMLType.Q5_1:
        qx_1(x, y, o, 5);
        break;
      case GGMLType.Q4_K:
        q4_K(x, y, o);
        break;
      case GGMLType.Q6_K:
        q6_K(x, y, o);
        break;
    }
  }
  return out;
}

// ------------------------------------------------------------------ models

export type QuantizeTarget = "Q8_0" | "Q4_0" | "Q4_K" | "Q4_K_M";

/** llama_ftype written to general.file_type (pure Q4_K is labelled Q4_K_S, 14). */
const FILE_TYPE: Record<QuantizeTarget, number> = { Q8_0: 7, Q4_0: 2, Q4_K: 14, Q4_K_M: 15 };
const BASE: Record<QuantizeTarget, GGMLTypeId> = { Q8_0: GGMLType.Q8_0, Q4_0: GGMLType.Q4_0, Q4_K: GGMLType.Q4_K, Q4_K_M: GGMLType.Q4_K };

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third one between. */
export function useMoreBits(iLayer: number, nLayers: number): boolean {
  return iLayer < Math.trunc(nLayers / 8) || iLayer >= Math.trunc((7 * nLayers) / 8) ||
    (iLayer - Math.trunc(nLayers / 8)) % 3 === 2;
}

/**
 * The type llama.cpp's llama_tensor_get_type picks for one tensor (no imatrix,
 * default params), with its fallback when rows do not split into blocks.
 */
export function chooseTensorType(
  target: QuantizeTarget,
  t: { name: string; shape: number[] },
  ctx: { hasOutput: boolean; iAttnV: number; nAttnV: number; iFfnDown: number; nFfnDown: number },
): GGMLTypeId {
  if (t.shape.length < 2 || !t.name.endsWith("weight")) return GGMLType.F32;
  const nx = t.shape[0];
  let type = BASE[target];
  const pure = target === "Q4_K";
  if (!pure) {
    if (t.name === "output.weight" || (!ctx.hasOutput && t.name === "token_embd.weight")) {
      if (nx % blockSize(type) !== 0) type = GGMLType.Q8_0;
      else if (type !== GGMLType.Q8_0) type = GGMLType.Q6_K;
    } else if (target === "Q4_K_M" && t.name.includes("attn_v.weight")) {
      if (useMoreBits(ctx.iAttnV, ctx.nAttnV)) type = GGMLType.Q6_K;
    } else if (target === "Q4_K_M" && t.name.includes("ffn_down")) {
      if (useMoreBits(ctx.iFfnDown, ctx.nFfnDown)) type = GGMLType.Q6_K;
    }
  }
  if (nx % blockSize(type) !== 0) {
    // llama.cpp's convert_incompatible_tensor
    if (type === GGMLType.Q4_K) type = GGMLType.Q5_0;
    else if (type === GGMLType.Q6_K) type = GGMLType.Q8_0;
    else type = GGMLType.F16;
    if (nx % blockSize(type) !== 0) type = GGMLType.F16;
  }
  return type;
}

function blockSize(t: GGMLTypeId): number {
  return t === GGMLType.Q4_K || t === GGMLType.Q6_K ? 256 : t === GGMLType.F16 || t === GGMLType.F32 ? 1 : 32;
}

/** llama.cpp's tensor order in quantized files: non-block tensors by name, then blocks by index, names sorted. */
function tensorOrder(names: string[]): string[] {
  const key = (s: string) => {
    const m = /^blk\.(\d+)\./.exec(s);
    return m ? [1, Number(m[1])] : [0, 0];
  };
  return [...names].sort((a, b) => {
    const [ga, ia] = key(a), [gb, ib] = key(b);
    return ga - gb || ia - ib || (a < b ? -1 : a > b ? 1 : 0);
  });
}

/** f32 values of a tensor's F32, F16 or BF16 bytes. */
function toF32(bytes: Uint8Array, type: GGMLTypeId, name: string): Float32Array {
  if (type !== GGMLType.F32 && type !== GGMLType.F16 && type !== GGMLType.BF16) {
    throw new UnsupportedError(`tensor "${name}" is ${ggmlTypeName(type)}; kvasm quantizes from F32, F16 or BF16 only`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = Math.floor(bytes.length / (type === GGMLType.F32 ? 4 : 2));
  const out = new Float32Array(count);
  if (type === GGMLType.F32) { for (let i = 0; i < count; i++) out[i] = v.getFloat32(4 * i, true); }
  else if (type === GGMLType.F16) { for (let i = 0; i < count; i++) out[i] = f16ToF32(v.getUint16(2 * i, true)); }
  else for (let i = 0; i < count; i++) out[i] = bf16ToF32(v.getUint16(2 * i, true));
  return out;
}

/**
 * The input as the GGUF it would be written as, before quantizing: a Hugging
 * Face checkpoint mapped through its config.json takes the converter's form
 * (llama.cpp's keys and names, Q/K rows interleaved, rope_freqs), so a quantized
 * file and a converted one share one set of layout rules; a GGUF keeps its value
 * types, and llama2.c's values are typed by inference.
 */
function contentsOf(input: ModelFile): GGUFContents {
  if (isHFMapped(input)) return hfGGUFContents(input);
  if (input.format === "safetensors") {
    throw new FormatError(
      input.source.name,
      "is safetensors without its config.json: kvasm quantizes a Hugging Face checkpoint as a directory (or a .safetensors file) " +
        "with config.json beside it",
    );
  }
  const gguf = input as GGUFFile;
  const metadata: GGUFMetadataEntry[] = input.format === "gguf" && gguf.metadataTypes
    ? metadataEntries(gguf)
    : [...input.metadata].map(([key, value]) => ({ key, type: inferValueType(value), value }));
  const tensors = [...input.tensors.values()].map((t): GGUFTensorToWrite => ({
    name: t.name,
    type: t.type,
    shape: t.shape,
    data: async () => {
      const bytes = new Uint8Array(t.byteLength);
      // sharded safetensors carry their own source per tensor
      await ((t as { source?: ModelFile["source"] }).source ?? input.source).read(t.offset, bytes);
      return bytes;
    },
  }));
  return { metadata, tensors };
}

async function bytesOf(t: GGUFTensorToWrite): Promise<Uint8Array> {
  return typeof t.data === "function" ? await t.data() : t.data;
}

/** quantizeModel's names: it refuses any other key (`tokenizerMetaData` dropped the tokenizer's entries unseen). */
const QUANTIZE_OPTION_NAMES = optionNames<Parameters<typeof quantizeModel>[0]>()(["input", "output", "type", "tokenizerMetadata"]);

/**
 * Quantizes a model into a GGUF file, one tensor at a time. The input is a GGUF
 * (F32, F16 or BF16 tensors), a llama2.c checkpoint, or a Hugging Face
 * safetensors checkpoint mapped through its config.json (`withHFConfig`), which
 * is written with llama.cpp's metadata and names as src/convert/hf-to-gguf.ts writes it
 * (hfGGUFContents); safetensors without that mapping are refused. Metadata is
 * copied (GGUF value types kept; llama2.c's values typed by inference),
 * `tokenizerMetadata` entries are added or replace same-named keys, and
 * general.file_type / general.quantization_version (2) are set.
 */
export async function quantizeModel(opts: {
  input: ModelFile;
  output: ByteSink;
  type: QuantizeTarget;
  tokenizerMetadata?: Array<GGUFMetadataEntry>;
}): Promise<void> {
  checkOptionNames("quantizeModel", opts, QUANTIZE_OPTION_NAMES);
  const { input, output, type: target } = opts;
  if (!Object.hasOwn(FILE_TYPE, target)) throw new ParamError("type", `must be one of ${Object.keys(FILE_TYPE).join(", ")}, got ${target}`);
  const contents = contentsOf(input);
  const override = [
    ...(opts.tokenizerMetadata ?? []),
    { key: "general.quantization_version", type: { type: "u32" as const }, value: 2 },
    { key: "general.file_type", type: { type: "u32" as const }, value: FILE_TYPE[target] },
  ];
  const overridden = new Set(override.map((e) => e.key));
  const entries = [...contents.metadata.filter((e) => !overridden.has(e.key)), ...override];

  const byName = new Map(contents.tensors.map((t) => [t.name, t]));
  const names = tensorOrder([...byName.keys()]);
  const nAttnV = names.filter((n) => n.includes("attn_v.weight")).length;
  const nFfnDown = names.filter((n) => n.includes("ffn_down")).length;
  const ctx = { hasOutput: byName.has("output.weight"), iAttnV: 0, nAttnV, iFfnDown: 0, nFfnDown };
  const tensors: GGUFTensorToWrite[] = [];
  for (const name of names) {
    const info = byName.get(name)!;
    const type = chooseTensorType(target, info, ctx);
    if (name.includes("attn_v.weight")) ctx.iAttnV++;
    if (name.includes("ffn_down")) ctx.iFfnDown++;
    tensors.push({
      name,
      type,
      shape: info.shape,
      data: async () =>
        quantizeRows(
          type,
          toF32(await bytesOf(info), info.type, name),
          type === GGMLType.F32 && info.shape.length < 2 ? info.shape[0] ?? 1 : info.shape[0],
        ),
    });
  }
  await writeGGUF(output, entries, tensors);
}
