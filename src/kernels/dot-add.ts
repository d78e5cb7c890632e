/**
 * What this engine's i32x4.relaxed_dot_i8x16_i7x16_add_s does with second-operand bytes >= 128, which the
 * relaxed-SIMD spec leaves open: V8 on a CPU with AVX-VNNI emits one vpdpbusd, an exact u8 x s8 four-way dot
 * product; JavaScriptCore (and engines without VNNI) use pmaddubsw, whose i16 pair sums saturate. Kernels that
 * keep 4-bit weights in a byte's high nibble (assembly/lanes-kquant.ts, matmul_q4_k_lanes_u8) need the first.
 */

// (module (func (export "f") (param i32 i32) (result i32)
//   local.get 0 i32x4.splat  local.get 1 i32x4.splat  v128.const i32x4 0 0 0 0
//   i32x4.relaxed_dot_i8x16_i7x16_add_s  i32x4.extract_lane 0))
const PROBE = new Uint8Array([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
  ...[0x01, 0x07, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f], // type: (i32, i32) -> i32
  ...[0x03, 0x02, 0x01, 0x00], // one function of that type
  ...[0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00], // exported as "f"
  ...[0x0a, 0x24, 0x01, 0x22, 0x00],
  ...[0x20, 0x00, 0xfd, 0x11, 0x20, 0x01, 0xfd, 0x11, 0xfd, 0x0c, ...new Array(16).fill(0)],
  ...[0xfd, 0x93, 0x02, 0xfd, 0x1b, 0x00, 0x0b],
]);

let exact: boolean | undefined;

/**
 * Is the dot-add an exact u8 x s8 dot product here? 127 x 240, four times, is 121920 exactly and 65534 through
 * pmaddubsw's saturated pairs; asked once per process (a tiny module, compiled synchronously), false where the
 * engine has no relaxed SIMD.
 */
export function dotAddIsExactU8(): boolean {
  if (exact !== undefined) return exact;
  try {
    const f = new WebAssembly.Instance(new WebAssembly.Module(PROBE)).exports.f as (a: number, b: number) => number;
    // both extremes of the signed operand against large unsigned bytes (V8 on this VM answered the same in every tier,
    // so the first tier's answer is the kernels' too)
    exact = f(0x7f7f7f7f, 0xf0f0f0f0 | 0) === 121920 && f(0x80808080 | 0, 0xffffffff | 0) === -130560;
  } catch {
    exact = false;
  }
  return exact;
}
