// matmul_f32's prefill tile (five weight rows by two activation rows, then fours, then single rows) against its
// one-row path, bit for bit, in both builds: every row's dot keeps one order, so a T-row call equals T one-row calls
// for every row count a range can have (5a + 4b and the leftovers 1-3, 6, 7, 11), odd widths and odd T.
import { assert, test } from "./harness.ts";
import { BUILDS, instantiateBuilds, xorshift } from "./kernel-builds.ts";

test("matmul_f32: T rows at once give the bits of T one-row calls, for every row range and split", () => {
  const memory = new WebAssembly.Memory({ initial: 64 }); // 4 MiB
  const kernels = instantiateBuilds(memory);
  const f = new Float32Array(memory.buffer);
  const next = xorshift(16);
  const X = 65536, W = 262144, ONE = 1 << 20, MANY = 2 << 20; // byte addresses
  for (const b of BUILDS) {
    const k = kernels[b];
    for (const [n, d, T] of [[64, 23, 4], [37, 16, 5], [13, 11, 7], [8, 32, 9], [70, 7, 6], [5, 12, 4], [96, 48, 16]]) {
      for (let i = 0; i < T * n; i++) f[X / 4 + i] = 2 * next() - 1;
      for (let i = 0; i < d * n; i++) f[W / 4 + i] = 2 * next() - 1;
      // one row at a time: the T = 1 path (its four bands)
      for (let t = 0; t < T; t++) k.matmul_f32(ONE + 4 * t * d, X + 4 * t * n, W, n, d, 1, 0, d);
      const one = new Uint32Array(memory.buffer, ONE, T * d).slice();
      // every row range [r0, r1): the tile's groups of five and four and its single rows, as threads cut them
      for (let r0 = 0; r0 < d; r0 += 3) {
        for (let r1 = r0 + 1; r1 <= d; r1 += r1 - r0 < 13 ? 1 : 5) {
          new Uint32Array(memory.buffer, MANY, T * d).fill(0x7fc00001);
          k.matmul_f32(MANY, X, W, n, d, T, r0, r1);
          const many = new Uint32Array(memory.buffer, MANY, T * d);
          for (let t = 0; t < T; t++) {
            for (let r = 0; r < d; r++) {
              const want = r >= r0 && r < r1 ? one[t * d + r] : 0x7fc00001;
              assert(many[t * d + r] === want, `${b}: n=${n} d=${d} T=${T} rows [${r0}, ${r1}): row ${r} of activation row ${t}`);
            }
          }
        }
      }
    }
  }
});
