// The kernels travel as base64 text (build/kvasm-X.ts, and gzipped in the edge bundle): its decoding, shared by both.

/** Base64 to bytes: the platform's Uint8Array.fromBase64 where it has one, else atob. */
export function decodeBase64(s: string): Uint8Array {
  const fromBase64 = (Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array }).fromBase64;
  if (fromBase64) return fromBase64(s);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
