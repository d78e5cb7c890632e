/**
 * `kvasm serve`: loads a model and serves the OpenAI-compatible API on this
 * runtime's HTTP server until SIGINT/SIGTERM. Default host is loopback.
 */
import { createHandler, type KvasmHandler } from "./handler.ts";
import { type RunningServer, serve } from "./serve.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "./serve-types.ts";
import { ParamError } from "../errors.ts";
import type { CommandSpec, Flags } from "../cli/flags.ts";
import type { Io } from "../cli/io.ts";
import { loadFromFlags, loadOptions, MODEL_FLAGS } from "../cli/model-flags.ts";

export const SERVE_COMMAND: CommandSpec = {
  name: "serve",
  summary: "Serve the OpenAI-compatible API (/v1/completions, /v1/chat/completions, /v1/models, /health).",
  usage:
    "kvasm serve [--model PATH|URL] [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--parallel N] [--alias NAME] [--cors ORIGIN] [...]",
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
    { name: "max-pending", kind: "int", min: 1, help: "choices (prompts x n) admitted at once; more get 429 (default 64)" },
    { name: "max-body", kind: "int", min: 1, value: "BYTES", help: "largest request body (default 1048576)" },
    { name: "max-choices", kind: "int", min: 1, help: "prompts x n in one request; more get 400 (default 64)" },
    { name: "max-stop", kind: "int", min: 0, help: "stop strings in one request (default 16)" },
    { name: "max-stop-length", kind: "int", min: 1, help: "characters in one stop string (default 256)" },
    { name: "max-logit-bias", kind: "int", min: 0, help: "logit_bias entries in one request (default 1024)" },
    {
      name: "max-queued-tokens",
      kind: "int",
      min: 1,
      help: "tokens of work (prompts + n x max_tokens) admitted at once (default 4 x the KV cache's positions)",
    },
    {
      name: "body-timeout",
      kind: "number",
      min: 0,
      value: "S",
      help: "seconds a client has to send its whole body (default 30); later: 408",
    },
    {
      name: "idle-timeout",
      kind: "number",
      min: 0,
      value: "S",
      help:
        "seconds a connection may stay silent, headers included, before it is closed (default 30 on Bun and node:http; under Deno it selects node:http)",
    },
    {
      name: "http",
      kind: "string",
      value: "native|node",
      help: "node: serve through node:http (under Deno, what --idle-timeout selects); default: the runtime's own server",
    },
    {
      name: "gc-slack",
      kind: "number",
      min: 0,
      value: "MIB",
      help: "Bun: a full garbage collection each time resident memory grows this much past the last one's level (default 16; 0: off)",
    },
    { name: "cors", kind: "string", value: "ORIGIN", help: "allow browsers from ORIGIN (or * for any) to call the API" },
    { name: "quiet", kind: "boolean", help: "no log line per request on stderr" },
  ],
};

export async function cmdServe(f: Flags, io: Io): Promise<void> {
  const opts = loadOptions(f, io);
  const host = f.string("host") ?? DEFAULT_HOST, port = f.number("port") ?? DEFAULT_PORT;
  let http = f.string("http") as "native" | "node" | undefined;
  if (http !== undefined && http !== "native" && http !== "node") {
    throw new ParamError("--http", `must be native or node, got ${JSON.stringify(http)}`);
  }
  const seconds = (name: string) => {
    const s = f.number(name);
    return s === undefined ? undefined : s * 1000;
  };
  // Deno.serve has no header or idle timeout (2.9.6 keeps a silent, half-headed or kept-alive connection open
  // indefinitely); Deno's node:http enforces both, so an idle timeout asked for by name is served through it
  const isDeno = (globalThis as { Deno?: unknown }).Deno !== undefined;
  const idleAsked = f.number("idle-timeout");
  if (isDeno && idleAsked !== undefined && idleAsked > 0) {
    if (http === "native") {
      throw new ParamError("--idle-timeout", "Deno.serve has no idle or header timeout; drop --http native (node:http enforces it)");
    }
    http = "node";
  }
  const limits = Object.fromEntries(
    Object.entries({
      maxChoices: f.number("max-choices"),
      maxStopStrings: f.number("max-stop"),
      maxStopLength: f.number("max-stop-length"),
      maxLogitBias: f.number("max-logit-bias"),
      maxQueuedTokens: f.number("max-queued-tokens"),
      bodyTimeoutMs: seconds("body-timeout"),
    }).filter(([, v]) => v !== undefined),
  );
  const model = await loadFromFlags(f, io, { ...opts, maxSequences: f.number("parallel") ?? 8, ggmlOrder: f.boolean("ggml-order") });
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  // a handler option or an address that fails (a busy port: serve's ParamError) closes what was opened before it: the
  // model's worker pool and the handler's engine kept a Deno process that called main() running after its exit code
  let handler: KvasmHandler | undefined;
  let server: RunningServer;
  try {
    handler = createHandler(model, {
      apiKey: f.string("api-key") ?? env.KVASM_API_KEY,
      modelId: f.string("alias") ?? f.string("model-id"),
      maxPending: f.number("max-pending"),
      maxBodyBytes: f.number("max-body"),
      cors: f.string("cors"),
      log: f.boolean("quiet") ? null : (line) => io.err(`${line}\n`),
      limits,
    });
    const gcSlack = f.number("gc-slack");
    server = await serve(handler.fetch, {
      host,
      port,
      idleTimeoutMs: seconds("idle-timeout"),
      http,
      ...(gcSlack !== undefined ? { gcSlackBytes: gcSlack * 2 ** 20 } : {}),
    });
  } catch (e) {
    await handler?.close();
    await model.close();
    throw e;
  }
  io.err(`kvasm: serving ${handler.modelId} at ${server.url}/v1 (${model.sequences.maxSequences} sequences in parallel)\n`);
  if (handler.chatTemplateError !== undefined) {
    io.err(
      `kvasm: warning: ${handler.chatTemplateError}; /v1/chat/completions answers 500 for this model, /v1/completions works\n`,
    );
  }
  if (isDeno && http !== "node") {
    io.err("kvasm: Deno.serve closes no idle or half-sent connection (they hold no slot); --idle-timeout S serves through node:http\n");
  }
  await new Promise<void>((resolve) => {
    const proc = (globalThis as { process?: { once(s: string, f: () => void): void } }).process;
    const deno = (globalThis as { Deno?: { addSignalListener(s: string, f: () => void): void } }).Deno;
    for (const sig of ["SIGINT", "SIGTERM"]) {
      if (deno) deno.addSignalListener(sig, resolve);
      else proc?.once(sig, resolve);
    }
  });
  // stop accepting, cancel every request (streams end, sequences are freed), then let the connections drain briefly
  io.err("kvasm: shutting down\n");
  const closing = server.close();
  await handler.close();
  await Promise.race([closing, new Promise((r) => setTimeout(r, 2000))]);
  await model.close();
  io.err("kvasm: stopped\n");
}
