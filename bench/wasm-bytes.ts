/**
 * The few pieces of the WebAssembly binary format the benches that assemble their own modules need
 * (bench/dot-chains.bench.ts, bench/noop-kernels.ts): LEB128 integers, vectors, sections and names.
 */

/** An unsigned LEB128 integer. */
export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** A signed LEB128 integer. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

/** A vector: its length, then its items. */
export const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];

/** A section: its id, its byte length, then its body. */
export const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];

/** A name: its UTF-8 byte length, then the bytes. */
export function name(s: string): number[] {
  const bytes = new TextEncoder().encode(s);
  return [...leb(bytes.length), ...bytes];
}
