/**
 * One-row (decode) quantized matmuls in isolation: today's kernel (wgsl-matmul.ts matmulKernel) against candidate
 * forms on the same weights, each timed as N back-to-back dispatches in one timestamped pass (so the barriers
 * between dispatches are in the figure, as in a decode step), reported as microseconds a dispatch and GB/s of
 * weight bytes. Candidates: "split" rows (each row's f16 scales first, then its quants, 16-byte aligned, read as
 * vec4<u32>) and the ggml rows, with L threads a row, U blocks in flight a thread, the activation read from the
 * state buffer (global) or staged in workgroup memory (shared), and the fold (normq: RMSNorm + quantize in each
 * workgroup). Every candidate's output is checked against today's kernel on the same logical weights.
 *
 *   deno run -A bench/webgpu-matvec.ts [--cases gateup,down,qkv,cls] [--types Q4_0,Q8_0] [--n 100] [--variants all]
 */
import { GGMLType, type GGMLTypeId } from "../src/formats/ggml-types.ts";
import { f32ToF16 as f16 } from "../src/quant/half.ts";
import { prelude } from "../src/backends/webgpu/wgsl-common.ts";
import { lanesFor, matmulKernel, pairedUnits, prologueCode, ROW_UNIT, rowKernel, rowPlan } from "../src/backends/webgpu/wgsl-matmul.ts";
import { quantQ8_0Kernel } from "../src/backends/webgpu/wgsl-ops.ts";
import { benchArgs, intFlag, listFlag } from "./cli.ts";
import { xorshift } from "./candidates.ts";
import { COPY_DST, MATRICES, matrixOf, openGpuBench, STORAGE } from "./webgpu-bench.ts";

// deno-lint-ignore no-explicit-any
type Gpu = any;
void rowPlan;
const USAGE = `One-row quantized matmul kernels, today's and candidates, on the same weights (Deno, WebGPU).

  deno run -A bench/webgpu-matvec.ts [--cases gateup,down,qkv,cls] [--types Q4_0,Q8_0] [--n 100] [--variants LIST]

  --cases LIST     the 1B shape's gateup (16384 x 2048), down (2048 x 8192), qkv (3072 x 2048), out (2048 x 2048), cls
                   (128256 x 2048); stories110M's gateup110, down110, qkv110, out110, cls110 (bench/webgpu-bench.ts
                   MATRICES; default gateup,down,qkv,cls)
  --types LIST     Q4_0, Q8_0, F32 (default Q4_0,Q8_0)
  --n N            dispatches a timed pass (default 100)
  --variants LIST  names to run (default: all)
  --json FILE      also write the rows as JSON lines`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    cases: { type: "string", default: "gateup,down,qkv,cls" },
    types: { type: "string", default: "Q4_0,Q8_0" },
    n: { type: "string", default: "100" },
    variants: { type: "string", default: "all" },
    json: { type: "string", default: "" },
    help: { type: "boolean", short: "h" },
  },
});

// every flag held to what runs before the device opens: a misspelt case, type or variant ran nothing, or only today's
const cases = listFlag(USAGE, "cases", opts.cases, Object.keys(MATRICES));
const typeNames = listFlag(USAGE, "types", opts.types, ["Q4_0", "Q8_0", "F32"] as const);
const N = intFlag(USAGE, "n", opts.n);
const want = opts.variants === "all" ? null : new Set(listFlag(USAGE, "variants", opts.variants, [
  ...new Set(typeNames.flatMap((t) => variants(GGMLType[t]).map((v) => v.name))),
]));

const BLOCK_BYTES: Record<number, number> = { [GGMLType.Q4_0]: 18, [GGMLType.Q8_0]: 34, [GGMLType.F32]: 128 };

interface Variant {
  name: string;
  kind: "today" | "cand" | "row";
  layout: "ggml" | "split" | "oct";
  lanes: number;
  unroll: number;
  act: "global" | "shared";
  fold: boolean;
}

/** A candidate one-row kernel (store epilogue): L threads a row, U blocks in flight a thread. */
function candidate(type: GGMLTypeId, v: Variant, n: number): string {
  const nb = n / 32, L = v.lanes, U = v.unroll, q4 = type === GGMLType.Q4_0;
  const act = v.act === "global" ? "st[P.a.y + (i)]" : "xq[(i)]";
  const xw = (e: string) => act.replace("(i)", `(${e})`);
  const staging = v.fold ? prologueCode(n, "normq") : v.act === "shared"
    ? `var<workgroup> xq: array<u32, ${nb * 9}>;
fn xqf(i: u32) -> f32 { return bitcast<f32>(xq[i]); }
fn stage_input(wgx: u32, nwgx: u32, li: u32, n: u32) {
  for (var i = li; i < ${nb * 9}u; i += 256u) { xq[i] = st[P.a.y + i]; }
  workgroupBarrier();
}`
    : "";
  const sums = q4 && v.act === "shared";
  if (v.layout === "oct" && !sums && q4) throw new Error("oct reads the activation from workgroup memory");
  // per block: loads of unit i (all issued before any sum), then its products
  const loads: string[] = [], uses: string[] = [];
  const guard = nb % (L * U) !== 0;
  for (let i = 0; i < U; i++) {
    const b = `b${i}`;
    loads.push(`let ${b} = b0 + ${i * L}u;`);
    if (v.layout === "oct") {
      // 8 blocks (4 paired units) of the ggml row, 16-byte aligned: 9 (Q4_0) or 17 (Q8_0) vec4 loads
      const unit = ROW_UNIT[type], W = unit.words, octs = nb / 8, rag = octs % (L * U) !== 0;
      for (let k = 0; k < W; k++) loads.push(`let v${i}_${k} = wq[rv + ${W}u * ${rag && i ? `min(${b}, ${octs - 1}u)` : b} + ${k}u];`);
      const word = (m: number) => `v${i}_${m >> 2}.${"xyzw"[m & 3]}`;
      const body = [0, 1, 2, 3].map((p) => `{ let u = 4u * ${b} + ${p}u; let xb = u * 18u;${unit.use((k) => word(p * W + k))} }`).join(
        "\n      ",
      );
      uses.push(rag && i ? `if (${b} < ${octs}u) { ${body} }` : `{ ${body} }`);
    } else if (v.layout === "split") {
      const sw = `wq[rv + min(${b}, ${nb - 1}u) / 8u][(min(${b}, ${nb - 1}u) / 2u) % 4u]`;
      loads.push(`let dw${i} = unpack2x16float(${sw} >> (16u * (${b} & 1u))).x;`);
      if (q4) loads.push(`let q${i} = wq[rv + ${nb / 8}u + min(${b}, ${nb - 1}u)];`);
      else {loads.push(
          `let qa${i} = wq[rv + ${nb / 8}u + 2u * min(${b}, ${nb - 1}u)]; let qb${i} = wq[rv + ${nb / 8}u + 2u * min(${b}, ${
            nb - 1
          }u) + 1u];`,
        );}
      const xo = `${b} * 9u`;
      let body: string;
      if (q4) {
        const sx = sums ? `xsum[${b}]` : `sx${i}`;
        body = `var s${i} = 0i;${sums ? "" : ` var sx${i} = 0i;`}
      for (var j = 0u; j < 4u; j++) {
        let xl = ${xw(`${xo} + 1u + j`)}; let xh = ${xw(`${xo} + 5u + j`)};
        s${i} += dot4(q${i}[j] & 0x0f0f0f0fu, xl) + dot4((q${i}[j] >> 4u) & 0x0f0f0f0fu, xh);${
          sums ? "" : `\n        sx${i} += dot4(0x01010101u, xl) + dot4(0x01010101u, xh);`
        }
      }
      acc += f32(s${i} - 8i * ${sx}) * (dw${i} * bitcast<f32>(${xw(xo)}));`;
      } else {
        body = `var s${i} = 0i;
      for (var j = 0u; j < 4u; j++) { s${i} += dot4(qa${i}[j], ${xw(`${xo} + 1u + j`)}) + dot4(qb${i}[j], ${xw(`${xo} + 5u + j`)}); }
      acc += f32(s${i}) * (dw${i} * bitcast<f32>(${xw(xo)}));`;
      }
      uses.push(guard ? `if (${b} < ${nb}u) { ${body} }` : `{ ${body} }`);
    } else {
      // ggml rows, paired blocks (9 words, Q4_0 only): unit b is blocks 2b, 2b + 1
      loads.push(`var wd${i}: array<u32, 9>; for (var j = 0u; j < 9u; j++) { wd${i}[j] = wt[rw + 9u * min(${b}, ${nb / 2 - 1}u) + j]; }`);
      const xo = `${b} * 18u`;
      const body = `let d0 = unpack2x16float(wd${i}[0]).x; let d1 = unpack2x16float(wd${i}[4]).y;
      var s0 = 0i; var sx0 = 0i; var s1 = 0i; var sx1 = 0i;
      for (var j = 0u; j < 4u; j++) {
        let w0 = (wd${i}[j] >> 16u) | (wd${i}[j + 1u] << 16u); let w1 = wd${i}[5u + j];
        let xl0 = ${xw(`${xo} + 1u + j`)}; let xh0 = ${xw(`${xo} + 5u + j`)}; let xl1 = ${xw(`${xo} + 10u + j`)}; let xh1 = ${
        xw(`${xo} + 14u + j`)
      };
        s0 += dot4(w0 & 0x0f0f0f0fu, xl0) + dot4((w0 >> 4u) & 0x0f0f0f0fu, xh0); sx0 += dot4(0x01010101u, xl0) + dot4(0x01010101u, xh0);
        s1 += dot4(w1 & 0x0f0f0f0fu, xl1) + dot4((w1 >> 4u) & 0x0f0f0f0fu, xh1); sx1 += dot4(0x01010101u, xl1) + dot4(0x01010101u, xh1);
      }
      acc += f32(s0 - 8i * sx0) * (d0 * bitcast<f32>(${xw(xo)})) + f32(s1 - 8i * sx1) * (d1 * bitcast<f32>(${xw(`${xo} + 9u`)}));`;
      uses.push(nb / 2 % (L * U) !== 0 ? `if (${b} < ${nb / 2}u) { ${body} }` : `{ ${body} }`);
    }
  }
  const units = v.layout === "split" ? nb : v.layout === "oct" ? nb / 8 : nb / 2;
  return /* wgsl */ `
@group(0) @binding(6) var<storage, read> wq: array<vec4<u32>>;
var<workgroup> red: array<f32, 256>;
${staging}
${sums ? `var<workgroup> xsum: array<i32, ${nb}>;` : ""}
const L: u32 = ${L}u;
const ROWS: u32 = ${256 / L}u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = P.a.z;
  let rowBytes = P.b.w;
  ${staging ? "stage_input(wg.x, nwg.x, li, n);" : ""}
  ${
    sums
      ? `for (var b = li; b < ${nb}u; b += 256u) { var s = 0i; for (var j = 1u; j < 9u; j++) { s += dot4(0x01010101u, xq[b * 9u + j]); } xsum[b] = s; }
  workgroupBarrier();`
      : ""
  }
  let lane = li % L;
  let rl = li / L;
  let r = wg.x * ROWS + rl;
  var acc = 0.0;
  if (r < P.b.x) {
    let rv = r * (rowBytes / 16u);
    let rw = r * (rowBytes / 4u);
    for (var b0 = lane; b0 < ${units}u; b0 += ${L * U}u) {
      ${loads.join("\n      ")}
      ${uses.join("\n      ")}
    }
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = L / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && r < P.b.x) { stf(P.c.x + P.b.y + r, red[li]); }
}
`;
}

/** F32 candidate: L threads a row, U vec4 loads in flight a thread, the f32 row staged in workgroup memory. */
function candidateF32(v: Variant, n: number): string {
  const n4 = n / 4, L = v.lanes, U = v.unroll, ragged = n4 % (L * U) !== 0;
  const loads: string[] = [], uses: string[] = [];
  for (let i = 0; i < U; i++) {
    const u = i ? `u0 + ${i * L}u` : "u0";
    loads.push(`let w${i} = bitcast<vec4<f32>>(wq[rv + ${ragged && i ? `min(${u}, ${n4 - 1}u)` : u}]);`);
    uses.push(`${ragged && i ? `if (${u} < ${n4}u) ` : ""}{ acc += dot(w${i}, xs[${u}]); }`);
  }
  return /* wgsl */ `
@group(0) @binding(6) var<storage, read> wq: array<vec4<u32>>;
var<workgroup> red: array<f32, 256>;
var<workgroup> xs: array<vec4<f32>, ${n4}>;
const L: u32 = ${L}u;
const ROWS: u32 = ${256 / L}u;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  for (var i = li; i < ${n4}u; i += 256u) {
    let o = P.a.y + 4u * i;
    xs[i] = vec4<f32>(ldf(o), ldf(o + 1u), ldf(o + 2u), ldf(o + 3u));
  }
  workgroupBarrier();
  let lane = li % L;
  let rl = li / L;
  let r = wg.x * ROWS + rl;
  var acc = 0.0;
  if (r < P.b.x) {
    let rv = r * ${n4}u;
    for (var u0 = lane; u0 < ${n4}u; u0 += ${L * U}u) {
      ${loads.join("\n      ")}
      ${uses.join("\n      ")}
    }
  }
  red[li] = acc;
  workgroupBarrier();
  for (var s = L / 2u; s > 0u; s >>= 1u) {
    if (lane < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  if (lane == 0u && r < P.b.x) { stf(P.c.x + P.b.y + r, red[li]); }
}
`;
}

function variants(type: GGMLTypeId): Variant[] {
  if (type === GGMLType.F32) {
    const out: Variant[] = [
      { name: "today", kind: "today", layout: "ggml", lanes: 0, unroll: 1, act: "global", fold: false },
      // matmulKernel with each unit one 16-byte load (the backend's F32 form)
      { name: "today-vec4", kind: "today", layout: "oct", lanes: 0, unroll: 1, act: "global", fold: false },
    ];
    for (const [lanes, unroll] of [[8, 4], [16, 4], [32, 2], [32, 4], [64, 2]]) {
      out.push({ name: `f32-L${lanes}-U${unroll}`, kind: "cand", layout: "ggml", lanes, unroll, act: "shared", fold: false });
    }
    return out;
  }
  const out: Variant[] = [
    { name: "today", kind: "today", layout: "ggml", lanes: 0, unroll: 1, act: "global", fold: false },
    { name: "today-fold", kind: "today", layout: "ggml", lanes: 0, unroll: 1, act: "global", fold: true },
  ];
  // wgsl-matmul.ts rowKernel (ggml rows, the activation staged), at several lanes x units in flight, and its fold
  for (const [lanes, unroll] of [[4, 2], [4, 4], [8, 2], [8, 4], [16, 2], [16, 4], [32, 1], [32, 2]]) {
    out.push({ name: `row-L${lanes}-U${unroll}`, kind: "row", layout: "ggml", lanes, unroll, act: "shared", fold: false });
  }
  for (const [lanes, unroll] of [[2, 1], [2, 2], [4, 1], [4, 2], [8, 1], [8, 2], [16, 1], [32, 1]]) {
    out.push({ name: `rowoct-L${lanes}-U${unroll}`, kind: "row", layout: "oct", lanes, unroll, act: "shared", fold: false });
  }
  for (const [lanes, unroll] of [[4, 1], [8, 1]]) {
    out.push({ name: `rowoct-L${lanes}-U${unroll}-fold`, kind: "row", layout: "oct", lanes, unroll, act: "shared", fold: true });
  }
  for (const [lanes, unroll] of [[8, 2], [8, 4], [16, 2]]) {
    out.push({ name: `row-L${lanes}-U${unroll}-fold`, kind: "row", layout: "ggml", lanes, unroll, act: "shared", fold: true });
  }
  const c = (layout: "ggml" | "split" | "oct", lanes: number, unroll: number, act: "global" | "shared", fold = false) =>
    out.push({ name: `${layout}-L${lanes}-U${unroll}-${act}${fold ? "-fold" : ""}`, kind: "cand", layout, lanes, unroll, act, fold });
  if (type === GGMLType.Q4_0) {
    c("ggml", 8, 2, "shared");
    c("ggml", 16, 1, "shared");
    c("ggml", 4, 4, "shared");
    c("ggml", 8, 2, "global");
    c("ggml", 8, 2, "shared", true);
  }
  c("oct", 4, 1, "shared");
  c("oct", 4, 2, "shared");
  c("oct", 8, 1, "shared");
  c("oct", 8, 2, "shared");
  c("oct", 16, 1, "shared");
  c("oct", 2, 2, "shared");
  c("oct", 4, 1, "shared", true);
  c("oct", 8, 1, "shared", true);
  c("split", 32, 1, "global");
  c("split", 32, 2, "shared");
  c("split", 16, 2, "shared");
  c("split", 16, 4, "shared");
  c("split", 8, 4, "shared");
  c("split", 8, 8, "shared");
  c("split", 4, 8, "shared");
  c("split", 8, 4, "global");
  c("split", 16, 2, "shared", true);
  c("split", 8, 4, "shared", true);
  c("split", 4, 8, "shared", true);
  return out;
}

/** ggml rows of random quants and scales near 5e-4, and the same rows split (scales first, then quants). */
function weights(type: GGMLTypeId, rows: number, cols: number): { ggml: Uint8Array; split: Uint8Array } {
  const bs = BLOCK_BYTES[type], nb = cols / 32, rb = nb * bs;
  const ggml = new Uint8Array(rows * rb);
  const rnd = xorshift(7 + type);
  if (type === GGMLType.F32) {
    const f = new Float32Array(ggml.buffer);
    for (let i = 0; i < f.length; i++) f[i] = ((rnd() % 2001) - 1000) * 2e-5;
    return { ggml, split: ggml };
  }
  const w32 = new Uint32Array(ggml.buffer, 0, Math.floor(ggml.length / 4));
  for (let i = 0; i < w32.length; i++) w32[i] = rnd();
  const split = new Uint8Array(ggml.length);
  for (let r = 0; r < rows; r++) {
    const ro = r * rb;
    for (let b = 0; b < nb; b++) {
      const d = f16(0.0004 + (rnd() % 1000) * 2e-7);
      ggml[ro + b * bs] = d & 0xff;
      ggml[ro + b * bs + 1] = d >> 8;
      split[ro + 2 * b] = d & 0xff;
      split[ro + 2 * b + 1] = d >> 8;
      split.set(ggml.subarray(ro + b * bs + 2, ro + (b + 1) * bs), ro + 2 * nb + (bs - 2) * b);
    }
  }
  return { ggml, split };
}

const { adapter, device, hasDot4, timed, layout, pipelineLayout, upload, readWords, timeIt: timePass } = await openGpuBench(7);
console.log(`adapter: ${adapter.info?.description} | dot4I8Packed ${hasDot4} | timestamps ${timed} | ${new Date().toISOString()}`);
const S = STORAGE, U = COPY_DST, ST = STORAGE | COPY_DST;

function pipeline(code: string, vec4 = false): Gpu {
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: prelude(hasDot4, 4, vec4) + code });
  const p = device.createComputePipeline({ layout: pipelineLayout, compute: { module, entryPoint: "main" } });
  return device.popErrorScope().then((e: Gpu) => {
    if (e) throw new Error(e.message + "\n" + code);
    return p;
  });
}

/** Nanoseconds a dispatch of gx workgroups (past 65535, as rows of 65535), back to back `count` times. */
function timeIt(p: Gpu, bg: Gpu, gx: number, count: number): Promise<number> {
  return timePass(p, bg, Math.min(gx, 65535), Math.ceil(gx / 65535), count);
}

const rows: unknown[] = [];
// the floor: a dispatch of one workgroup that writes one word
{
  const p = await pipeline(
    `@compute @workgroup_size(256) fn main(@builtin(local_invocation_index) li: u32) { if (li == 0u) { st[P.c.x] = P.a.x; } }`,
  );
  const st = device.createBuffer({ size: 1024, usage: ST | 0x04 });
  const pb = device.createBuffer({ size: 256, usage: 0x40 | U });
  const dummy = device.createBuffer({ size: 16, usage: S });
  const bg = device.createBindGroup({
    layout,
    entries: [0, 1, 2, 3, 4, 5, 6].map((b) => ({ binding: b, resource: { buffer: b === 0 ? st : b === 2 ? pb : dummy } })),
  });
  const ns = await timeIt(p, bg, 1, N);
  console.log(`floor (one workgroup, one word): ${(ns / 1000).toFixed(2)} us a dispatch`);
  rows.push({ case: "floor", us: ns / 1000 });
}
for (const cname of cases) {
  const [R, K] = matrixOf(cname);
  for (const tname of typeNames) {
    const type = (GGMLType as unknown as Record<string, GGMLTypeId>)[tname];
    const nb = K / 32, rb = nb * BLOCK_BYTES[type];
    const { ggml, split } = weights(type, R, K);
    const wg = upload(ggml), ws = upload(split);
    // state words: x (K f32), normed (K), act (nb*9), act2 (nb*9), out (R)
    const X = 0, NORMED = K, ACT = 2 * K, ACT2 = ACT + nb * 9, OUT = ACT2 + nb * 9;
    const stWords = OUT + R;
    const st = device.createBuffer({ size: stWords * 4, usage: ST | 0x04 });
    const rnd = xorshift(99);
    const host = new Uint32Array(OUT);
    const hf = new Float32Array(host.buffer);
    for (let i = 0; i < K; i++) hf[X + i] = ((rnd() % 2001) - 1000) / 500;
    for (let b = 0; b < nb; b++) {
      hf[ACT + 9 * b] = 0.01 + (rnd() % 100) * 1e-4;
      for (let j = 1; j < 9; j++) host[ACT + 9 * b + j] = rnd();
    }
    device.queue.writeBuffer(st, 0, host);
    const normW = device.createBuffer({ size: K * 4, usage: S | U });
    device.queue.writeBuffer(normW, 0, new Float32Array(K).map(() => 0.5 + (rnd() % 1000) / 1000));
    const pb = device.createBuffer({ size: 256, usage: 0x40 | U });
    const bgFor = (w: Gpu, act: number) => {
      const params = new Uint32Array(64);
      params.set([0, act, K, 1, R, 0, R, rb, OUT, 0, 0, 0]);
      params.set([X, NORMED, new Uint32Array(new Float32Array([1e-5]).buffer)[0], ACT2], 24); // g
      const b = device.createBuffer({ size: 256, usage: 0x40 | U });
      device.queue.writeBuffer(b, 0, params);
      return device.createBindGroup({
        layout,
        entries: [0, 1, 2, 3, 4, 5, 6].map((i) => ({
          binding: i,
          resource: { buffer: i === 0 ? st : i === 2 ? b : i === 5 ? normW : i === 6 || i === 1 || i === 3 || i === 4 ? w : pb },
        })),
      });
    };
    if (type !== GGMLType.F32) {
      // the dispatch a fold saves: RMSNorm + Q8_0 quantize of the row (wgsl-ops.ts quantQ8_0Kernel), as decode runs it
      const p = await pipeline(quantQ8_0Kernel(true, K));
      const params = new Uint32Array(64);
      params.set([ACT2, X, K, 1, new Uint32Array(new Float32Array([1e-5]).buffer)[0], NORMED]);
      const ub = device.createBuffer({ size: 256, usage: 0x40 | U });
      device.queue.writeBuffer(ub, 0, params);
      const bg = device.createBindGroup({
        layout,
        entries: [0, 1, 2, 3, 4, 5, 6].map((i) => ({ binding: i, resource: { buffer: i === 0 ? st : i === 2 ? ub : normW } })),
      });
      const ns = await timeIt(p, bg, Math.ceil(K / 256), N);
      console.log(`${cname.padEnd(7)} ${tname} ${"normquant dispatch".padEnd(28)} ${(ns / 1000).toFixed(2).padStart(8)} us`);
      rows.push({ case: cname, type: tname, variant: "normquant", us: +(ns / 1000).toFixed(2) });
    }
    let ref: Float32Array | null = null, refFold: Float32Array | null = null;
    for (const v of variants(type)) {
      if (want && !want.has(v.name) && v.name !== "today") continue;
      const lanes = v.kind === "today" ? lanesFor(type, K) : v.lanes;
      const code = v.kind === "today"
        ? matmulKernel(type, "store", 1, pairedUnits(type, K), lanes, v.fold ? "normq" : "none", K, v.layout === "oct")
        : type === GGMLType.F32
        ? candidateF32(v, K)
        : v.kind === "row"
        ? rowKernel(type, "store", v.fold ? "normq" : "none", K, { lanes: v.lanes, unroll: v.unroll, octets: v.layout === "oct" })
        : candidate(type, v, K);
      let p: Gpu;
      try {
        p = await pipeline(code, v.kind !== "cand" && v.layout === "oct"); // octets and today-vec4 bind the weights as vec4<u32>
      } catch (e) {
        console.log(`${cname} ${tname} ${v.name}: does not compile: ${(e as Error).message.split("\n")[0]}`);
        continue;
      }
      const w = v.layout === "split" ? ws : wg;
      // a prologue stages the row: the kernel reads it at 0 of workgroup memory
      const bg = bgFor(w, v.fold ? 0 : type === GGMLType.F32 ? X : ACT);
      const gx = Math.ceil(R / (256 / lanes));
      const ns = await timeIt(p, bg, gx, N);
      const out = await readWords(st, OUT * 4, R);
      // check: against today's kernel on the same activation (the fold's own blocks for fold variants)
      let err = 0;
      if (v.name === "today") ref = out;
      else if (v.name === "today-fold") refFold = out;
      const against = v.fold ? refFold : ref;
      if (against && out !== against) {
        let scale = 0;
        for (let i = 0; i < R; i++) scale = Math.max(scale, Math.abs(against[i]));
        for (let i = 0; i < R; i++) err = Math.max(err, Math.abs(out[i] - against[i]) / (scale || 1));
      }
      const gbs = (R * rb) / ns;
      if (err > 1e-5) console.log("  got", Array.from(out.slice(0, 4)), "want", Array.from((against ?? out).slice(0, 4)));
      const row = { case: cname, rows: R, cols: K, type: tname, variant: v.name, us: +(ns / 1000).toFixed(2), GBs: Math.round(gbs), err };
      rows.push(row);
      console.log(
        `${cname.padEnd(7)} ${tname} ${v.name.padEnd(28)} ${(ns / 1000).toFixed(2).padStart(8)} us ${
          String(Math.round(gbs)).padStart(6)
        } GB/s  err ${err.toExponential(1)}${err > 1e-5 ? "  MISMATCH" : ""}`,
      );
    }
    wg.destroy();
    ws.destroy();
    st.destroy();
  }
}
if (opts.json) await Deno.writeTextFile(opts.json, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
