/**
 * The WGSL every kvasm kernel starts with. Plain kernels use one bind group of
 * three bindings, shared by all pipelines so a bind group made once serves
 * every kernel; fused kernels that read two or three weight tensors at once
 * (Q/K/V, gate/up) add two more:
 *   0  st: the state buffer (activations, KV pages, page tables, row metadata);
 *      addresses the forward pass hands out are byte offsets into it, and it is
 *      declared as u32 words so integers (page tables) are read bit-exact.
 *   1  wt: one weight tensor (or a row range of one), raw ggml bytes as u32 words.
 *   2  P:  this dispatch's parameters, a 256-byte slot of the params buffer (128 bytes used).
 *   3  wt_1, 4 wt_2: the second and third weight tensor of a fused matmul;
 *   5  wt_3: the RMSNorm weight of a matmul that norms its input itself.
 */
export function prelude(hasDot4: boolean, weightBindings = 1, vec4Weights = false): string {
  let weights = "";
  for (let b = 0; b < weightBindings; b++) weights += weightAccess(b, vec4Weights);
  return /* wgsl */ `
struct Params { a: vec4<u32>, b: vec4<u32>, c: vec4<u32>, d: vec4<u32>, e: vec4<u32>, f: vec4<u32>, g: vec4<u32>, h: vec4<u32> }
@group(0) @binding(0) var<storage, read_write> st: array<u32>;
@group(0) @binding(2) var<uniform> P: Params;

fn ldf(i: u32) -> f32 { return bitcast<f32>(st[i]); }
fn stf(i: u32, v: f32) { st[i] = bitcast<u32>(v); }
${weights}
fn pack_i8(v: vec4<i32>) -> u32 {
  return (u32(v.x) & 0xffu) | ((u32(v.y) & 0xffu) << 8u) | ((u32(v.z) & 0xffu) << 16u) | ((u32(v.w) & 0xffu) << 24u);
}
${
    hasDot4 ? "fn dot4(a: u32, b: u32) -> i32 { return dot4I8Packed(a, b); }" : `fn dot4(a: u32, b: u32) -> i32 {
  let x = bitcast<i32>(a); let y = bitcast<i32>(b);
  return extractBits(x, 0u, 8u) * extractBits(y, 0u, 8u) + extractBits(x, 8u, 8u) * extractBits(y, 8u, 8u)
       + extractBits(x, 16u, 8u) * extractBits(y, 16u, 8u) + extractBits(x, 24u, 8u) * extractBits(y, 24u, 8u);
}`
  }
// flat invocation index of a 1-D job dispatched as (x, y) workgroups of 256
fn flat(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 { return (wg.y * nwg.x + wg.x) * 256u + li; }
`;
}

/** Binding numbers of weight tensors 0, 1, 2 (2 is the params). */
export const WEIGHT_BINDINGS = [1, 3, 4, 5];

/**
 * Renames the weight accessors a kernel body uses (wt, wf, wbyte, ...) to
 * those of weight binding b, so one body text serves every tensor of a fused matmul.
 */
export function forWeight(src: string, b: number): string {
  return b === 0 ? src : src.replace(/\b(wt|wf|wbyte|w16|wf16|w32|q4k_scale_min|wword)\b/g, `$1_${b}`);
}

/**
 * The weight binding b and its readers. vec4: the binding is declared as vec4<u32> (16-byte loads for kernels
 * that read aligned runs of a row, wgsl-matmul.ts rowKernel's octets); the word readers then go through wword.
 */
function weightAccess(b: number, vec4 = false): string {
  const decl = vec4
    ? `@group(0) @binding(${WEIGHT_BINDINGS[b]}) var<storage, read> wt: array<vec4<u32>>;
fn wword(i: u32) -> u32 { return wt[i >> 2u][i & 3u]; }`
    : `@group(0) @binding(${WEIGHT_BINDINGS[b]}) var<storage, read> wt: array<u32>;`;
  const readers = WEIGHT_READERS.replace(/\bwt\[([^\]]+)\]/g, vec4 ? "wword($1)" : "wt[$1]");
  return forWeight(decl + readers, b);
}

/** The word readers of a weight binding (written against wt[...], which a vec4 binding replaces with wword(...)). */
const WEIGHT_READERS = /* wgsl */ `
fn wf(i: u32) -> f32 { return bitcast<f32>(wt[i]); }
// ggml blocks of 18 or 34 bytes leave rows and blocks 2-byte aligned: these read at any even byte offset
fn wbyte(o: u32) -> u32 { return (wt[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu; }
fn w16(o: u32) -> u32 { return (wt[o >> 2u] >> ((o & 2u) * 8u)) & 0xffffu; }
fn wf16(o: u32) -> f32 { return unpack2x16float(w16(o)).x; }
fn w32(o: u32) -> u32 {
  let i = o >> 2u;
  if ((o & 2u) == 0u) { return wt[i]; }
  return (wt[i] >> 16u) | (wt[i + 1u] << 16u);
}
/** ggml's get_scale_min_k4: 6-bit scale and min of sub-block j from the 12 packed bytes after d, dmin. */
fn q4k_scale_min(bo: u32, j: u32) -> vec2<u32> {
  let s = bo + 4u;
  if (j < 4u) { return vec2<u32>(wbyte(s + j) & 63u, wbyte(s + j + 4u) & 63u); }
  let a = wbyte(s + j + 4u);
  return vec2<u32>((a & 0xfu) | ((wbyte(s + j - 4u) >> 6u) << 4u), (a >> 4u) | ((wbyte(s + j) >> 6u) << 4u));
}
`;

/** Words of the Q8_0 activation block kvasm's quantizer writes: f32 d (f16-rounded), then 32 i8 in 8 words. */
export const Q8_0_ACT_WORDS = 9;
/** Words of the Q8_K activation block: f32 d, 16 i32 block sums, 256 i8 in 64 words. */
export const Q8_K_ACT_WORDS = 81;

/**
 * `var ss`: thread li's sum of squares of the row at word `row` of n columns (n known when the kernel is built), in
 * RMSNORM's order (elements li, li + 256, ... added one after another) but with 8 loads in flight: a loop over a
 * runtime n leaves each load's latency to the add that waits for it, 8 round trips to memory for a 2048-wide row
 * (the decode step's RMSNorm+quantize dispatch, 8.8 us on an H200 against a 5.7 us floor). Elements past the row
 * add +0, which leaves a sum of squares unchanged, so the sum is RMSNORM's bit for bit.
 */
export function sumSquares(n: number, row: string): string {
  const per = Math.ceil(n / 256), lines: string[] = ["var ss = 0.0;"];
  // loads v0..v(k-1) of elements base + 256 j, then their squares added in that order; only the row's last element
  // column (j = per - 1) can lie past a ragged row
  const body = (base: string, j0: number, k: number) => {
    const out: string[] = [];
    for (let j = 0; j < k; j++) {
      const i = `${base} + ${j * 256}u`;
      out.push(
        n % 256 !== 0 && j0 + j === per - 1
          ? `var v${j} = 0.0; if (${i} < ${n}u) { v${j} = ldf(${row} + ${i}); }`
          : `let v${j} = ldf(${row} + ${i});`,
      );
    }
    for (let j = 0; j < k; j++) out.push(`ss += v${j} * v${j};`);
    return out;
  };
  // whole chunks of 8 loads (none past the row) as a loop of a constant count, the rest written out
  const whole = Math.floor((n % 256 === 0 ? per : per - 1) / 8);
  if (whole > 0) lines.push(`for (var c = 0u; c < ${whole}u; c++) {`, ...body("li + c * 2048u", 0, 8).map((l) => "  " + l), "}");
  const rest = per - whole * 8;
  if (rest > 0) lines.push("{", ...body(`li + ${whole * 2048}u`, whole * 8, rest).map((l) => "  " + l), "}");
  return lines.join("\n  ");
}
