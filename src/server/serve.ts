/** Starts a fetch handler on this runtime's own server (Deno.serve, Bun.serve), or on node:http where asked or where there is none. */
import type { FetchHandler, RunningServer, ServeOptions } from "./serve-types.ts";

export type { FetchHandler, RunningServer, ServeOptions } from "./serve-types.ts";

export async function serve(handler: FetchHandler, opts: ServeOptions = {}): Promise<RunningServer> {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (opts.http === "node") return (await import("./serve-node.ts")).serveNode(handler, opts);
  if (g.Deno) return (await import("./serve-deno.ts")).serveDeno(handler, opts);
  if (g.Bun) return (await import("./serve-bun.ts")).serveBun(handler, opts);
  return (await import("./serve-node.ts")).serveNode(handler, opts);
}
