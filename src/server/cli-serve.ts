/**
 * `kvasm serve`: loads a model and serves the OpenAI-compatible API on this
 * runtime's HTTP server until SIGINT/SIGTERM. Default host is loopback.
 */
import { createHandler } from "./handler.ts";
import { serve } from "./serve.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "./serve-types.ts";
import type { CommandSpec, Flags } from "../cli/flags.ts";
import type { Io } from "../cli/io.ts";
import { loadFromFlags, loadOptions, MODEL_FLAGS } from "../cli/model-flags.ts";

export const SERVE_COMMAND: CommandSpec = {
  name: "serve",
  summary: "Serve the OpenAI-compatible API (/v1/completions, /v1/chat/completions, /v1/models, /health).",
  usage: "kvasm serve [--model PATH|URL] [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--parallel N] [--alias NAME] [--cors ORIGIN] [...]",
  flags: [
    ...MODEL_FLAGS,
    { name: "host", kind: "string", value: "H", help: "interface to bind (default 127.0.0.1; 0.0.0.0 exposes the server)" },
    { name: "port", kind: "int", min: 0, max: 65535, value: "P", help: "port (default 8080; 0 picks a free one)" },
    { name: "api-key", kind: "string", value: "KEY", help: "require Authorization: Bearer KEY on /v1 routes (default: env KVASM_API_KEY)" },
    { name: "parallel", kind: "int", min: 1, help: "sequences generated at once, batched together (default 8)" },
    {
      name: "alias",
      kind: "string",
      value: "NAME",
      help: `the model id clients pass as "model" (default: the file's name without extension)`,
    },
    { name: "model-id", kind: "string", value: "NAME", help: "the same as --alias" },
    { name: "max-pending", kind: "int", min: 1, help: "requests admitted at once; more get 429 (default 64)" },
    { name: "max-body", kind: "int", min: 1, value: "BYTES", help: "largest request body (default 1048576)" },
    { name: "cors", kind: "string", value: "ORIGIN", help: "allow browsers from ORIGIN (or * for any) to call the API" },
    { name: "quiet", kind: "boolean", help: "no log line per request on stderr" },
  ],
};

export async function cmdServe(f: Flags, io: Io): Promise<void> {
  const opts = loadOptions(f, io);
  const host = f.string("host") ?? DEFAULT_HOST, port = f.number("port") ?? DEFAULT_PORT;
  const model = await loadFromFlags(f, io, { ...opts, maxSequences: f.number("parallel") ?? 8, ggmlOrder: f.boolean("ggml-order") });
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  const handler = createHandler(model, {
    apiKey: f.string("api-key") ?? env.KVASM_API_KEY,
    modelId: f.string("alias") ?? f.string("model-id"),
    maxPending: f.number("max-pending"),
    maxBodyBytes: f.number("max-body"),
    cors: f.string("cors"),
    log: f.boolean("quiet") ? null : (line) => io.err(`${line}\n`),
  });
  const server = await serve(handler.fetch, { host, port });
  io.err(`kvasm: serving ${handler.modelId} at ${server.url}/v1 (${model.kv.maxSeqs} sequences in parallel)\n`);
  await new Promise<void>((resolve) => {
    const proc = (globalThis as { process?: { once(s: string, f: () => void): void } }).process;
    const deno = (globalThis as { Deno?: { addSignalListener(s: string, f: () => void): void } }).Deno;
    for (const sig of ["SIGINT", "SIGTERM"]) {
      if (deno) deno.addSignalListener(sig, resolve);
      else proc?.once(sig, resolve);
    }
  });
  io.err("kvasm: shutting down\n");
  await server.close();
  await handler.close();
  await model.close();
}
