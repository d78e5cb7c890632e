/**
 * What the engine makes of WebAssembly's int8 dot products on this CPU: eight
 * chains of 16-byte dot products into i32 lanes (eight weight-like operands
 * against two shared activation-like ones per step, as in a kernel's row tile),
 * over 4 KiB of L1-resident bytes, in one run. The module is assembled here (a few hand-written bytes),
 * so the comparison does not wait on a kernel build:
 *
 *   relaxed_add:  i32x4.relaxed_dot_i8x16_i7x16_add_s (one vpdpbusd where the engine uses AVX-VNNI)
 *   relaxed16:    i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(a, b), ones))   (pmaddubsw + pmaddwd)
 *   relaxed16x2:  two i16 dots added before one widening (the quantized kernels' sub-block step)
 *   plain:        extend + i16x8.mul + add, then i32x4.dot_i16x8_s (the plain-SIMD build's dot16)
 *
 *   deno run -A bench/dot-chains.bench.ts      bun bench/dot-chains.bench.ts
 *
 * Prints GMAC/s (16 multiply-adds per 16-byte dot) per variant; ratios are within one run.
 */
import { benchArgs, runStamp } from "./cli.ts";
import { leb, name, section, sleb, vec } from "./wasm-bytes.ts";

benchArgs(
  `Eight chains of WebAssembly int8 dot products per variant (relaxed_add, relaxed16, relaxed16x2, plain) over L1-resident
bytes, in GMAC/s, one run. No options.

  deno run -A bench/dot-chains.bench.ts        bun bench/dot-chains.bench.ts`,
  { options: { help: { type: "boolean", short: "h" } } },
);

const u = (...b: number[]) => b;

// locals: 0 a, 1 b, 2 n (params), 3..10 acc0..7 (v128), 11 ones, 12..13 b0, b1 (v128), 14 off (i32)
const ACC = 3, ONES = 11, B = 12, OFF = 14, CHAINS = 8;
const get = (i: number) => u(0x20, ...leb(i)), set = (i: number) => u(0x21, ...leb(i));
const simd = (op: number) => u(0xfd, ...leb(op));
const loadAt = (base: number, k: number) => u(...get(base), ...get(OFF), 0x6a, ...simd(0x00), 4, ...leb(16 * k));
// Like a kernel's tile of weight rows against one activation row: a (weights) is read
// fresh for every chain, b (activations) once per iteration for all eight (locals b0, b1).
const load = (base: number, k: number) => base === 0 ? loadAt(0, k) : get(B + (k & 1));
const I32X4_ADD = simd(0xae), DOT16 = simd(0xba), I16X8_ADD = simd(0x8e), I16X8_MUL = simd(0x95);
const RDOT16 = simd(0x112), RDOT_ADD = simd(0x113);

type Step = (k: number) => number[];
const steps: Record<string, Step> = {
  relaxed_add: (k) => u(...load(0, k), ...load(1, k), ...get(ACC + k), ...RDOT_ADD, ...set(ACC + k)),
  relaxed16: (k) => u(...get(ACC + k), ...load(0, k), ...load(1, k), ...RDOT16, ...get(ONES), ...DOT16, ...I32X4_ADD, ...set(ACC + k)),
  relaxed16x2: (k) =>
    k % 2 ? [] : u(
      ...get(ACC + k),
      ...load(0, k),
      ...load(1, k),
      ...RDOT16,
      ...load(0, k + 1),
      ...load(1, k + 1),
      ...RDOT16,
      ...I16X8_ADD,
      ...get(ONES),
      ...DOT16,
      ...I32X4_ADD,
      ...set(ACC + k),
    ),
  plain: (k) =>
    u(
      ...get(ACC + k),
      ...load(1, k),
      ...simd(0x89), // extend_low_u (b: the 7-bit side)
      ...load(0, k),
      ...simd(0x87), // extend_low_s
      ...I16X8_MUL,
      ...load(1, k),
      ...simd(0x8a),
      ...load(0, k),
      ...simd(0x88),
      ...I16X8_MUL,
      ...I16X8_ADD,
      ...get(ONES),
      ...DOT16,
      ...I32X4_ADD,
      ...set(ACC + k),
    ),
};
const names = Object.keys(steps);

function body(step: Step): number[] {
  const code = u(
    ...u(0x41, 1, 0xfd, 0x10), // i16x8.splat 1
    ...set(ONES),
    0x02,
    0x40,
    0x03,
    0x40,
    ...get(2),
    0x45,
    0x0d,
    1, // br_if out when n == 0
    ...loadAt(1, 0),
    ...set(B),
    ...loadAt(1, 1),
    ...set(B + 1),
    ...Array.from({ length: CHAINS }, (_, k) => step(k)).flat(),
    ...get(OFF),
    0x41,
    ...sleb(16 * CHAINS),
    0x6a,
    0x41,
    ...sleb(4095),
    0x71,
    ...set(OFF),
    ...get(2),
    0x41,
    1,
    0x6b,
    ...set(2),
    0x0c,
    0,
    0x0b,
    0x0b,
    ...get(ACC),
    ...Array.from({ length: CHAINS - 1 }, (_, k) => u(...get(ACC + 1 + k), ...I32X4_ADD)).flat(),
    ...set(ACC),
    // all four lanes: the builds pair lanes differently
    ...[0, 1, 2, 3].flatMap((l) => u(...get(ACC), ...simd(0x1b), l, ...(l ? [0x6a] : []))),
    0x0b,
  );
  const locals = vec([u(11, 0x7b), u(1, 0x7f)]);
  return [...leb(locals.length + code.length), ...locals, ...code];
}

const bytes = new Uint8Array([
  ...u(0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0),
  ...section(1, vec([u(0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f)])),
  ...section(2, vec([u(...name("env"), ...name("memory"), 2, 0, 1)])),
  ...section(3, vec(names.map(() => u(0)))),
  ...section(7, vec(names.map((n, i) => u(...name(n), 0, i)))),
  ...section(10, [...leb(names.length), ...names.flatMap((n) => body(steps[n]))]),
]);

const memory = new WebAssembly.Memory({ initial: 1 });
const heap = new Uint8Array(memory.buffer);
for (let i = 0; i < 8192; i++) heap[i] = i < 4096 ? (i * 37) & 0x7f : ((i * 91) & 0xff);
const fns = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as Record<
  string,
  (a: number, b: number, n: number) => number
>;
const runtime = (globalThis as { Deno?: unknown }).Deno ? "Deno" : (globalThis as { Bun?: unknown }).Bun ? "Bun" : "Node";
const iters = 2_000_000, macs = iters * CHAINS * 16;
const results = new Map<string, number[]>();
const check = new Map<string, number>();
for (let round = 0; round < 5; round++) {
  for (const name of names) {
    const t0 = performance.now();
    check.set(name, fns[name](4096, 0, iters)); // a = activations (signed), b = 7-bit
    const ms = performance.now() - t0;
    results.set(name, [...(results.get(name) ?? []), macs / ms / 1e6]);
  }
}
const best = (n: string) => Math.max(...results.get(n)!);
console.log(`${runtime}, ${runStamp()}: int8 dot chains (${CHAINS} accumulators, L1-resident), best of 5`);
for (const n of names) {
  console.log(
    `${n.padEnd(12)} ${best(n).toFixed(1).padStart(6)} GMAC/s  ${(best(n) / best("relaxed16")).toFixed(2)}x relaxed16  (sum ${
      check.get(n)
    })`,
  );
}
