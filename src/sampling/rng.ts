/**
 * xoshiro128** (Blackman & Vigna, 2018), seeded through splitmix32.
 *
 * Only 32-bit integer operations (Math.imul, shifts, xor) are used, so the
 * stream is bit-identical in V8 (Deno, Node) and JavaScriptCore (Bun), with no
 * BigInt on the per-token path. Period 2^128 - 1; not cryptographic.
 */
export class Rng {
  // State as four signed 32-bit integers (JS engines keep these as SMIs / int32).
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is reduced to a u32; equal seeds give equal streams. */
  constructor(seed: number) {
    // splitmix32 (a Weyl sequence through murmur3's fmix32) spreads one u32 over
    // 128 bits of state. Four distinct counter values through a bijection can
    // never all be zero, which xoshiro forbids.
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
  }

  /** Next output as an unsigned 32-bit integer. */
  nextU32(): number {
    const s1 = this.s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result >>> 0;
  }

  /** Uniform in [0, 1) with 24 random bits (the top bits, which are the best ones). */
  nextFloat(): number {
    return (this.nextU32() >>> 8) * (1 / 16777216);
  }

  /** Writes the state (s0..s3 as u32) to out[0, 4): how a device sampler takes over the stream (backends/webgpu/sample.ts). */
  getState(out: Uint32Array): void {
    out[0] = this.s0;
    out[1] = this.s1;
    out[2] = this.s2;
    out[3] = this.s3;
  }

  /** Continues the stream from a state getState wrote (after the device drew from it). */
  setState(s: ArrayLike<number>): void {
    this.s0 = s[0] | 0;
    this.s1 = s[1] | 0;
    this.s2 = s[2] | 0;
    this.s3 = s[3] | 0;
  }

  /** An independent copy at the same position in the stream. */
  clone(): Rng {
    const r = new Rng(0); // then overwrite: keeps one object shape for the JIT
    r.s0 = this.s0;
    r.s1 = this.s1;
    r.s2 = this.s2;
    r.s3 = this.s3;
    return r;
  }
}
