/**
 * `kvasm serve`: loads a model and serves the OpenAI-compatible API on this
 * runtime's HTTP server until SIGINT/SIGTERM. Default host is loopback.
 */
import { loadModel } from "../model/model.ts";
import { loadProgress } from "../io/load-progress.ts";
import { ParamError } from "../errors.ts";
import { kvCacheFlag } from "../engine/cli-generate.ts";
import { createHandler } from "./handler.ts";
import { serve } from "./serve.ts";
import { DEFAULT_HOST, DEFAULT_PORT } from "./serve-types.ts";

type Flags = Map<string, string[]>;
interface Io {
  out(s: string): void;
  err(s: string): void;
  errIsTTY?: boolean;
}

export const SERVE_USAGE = `  kvasm serve [--model PATH|URL] [--host 127.0.0.1] [--port 8080] [--api-key KEY]
              [--parallel N] [--context N] [--model-id NAME] [--max-pending N] [--max-body BYTES]`;

export const SERVE_OPTIONS = `serve options:
  --host H            interface to bind (default 127.0.0.1; 0.0.0.0 exposes the server)
  --port P            port (default 8080; 0 picks a free one)
  --api-key KEY       require Authorization: Bearer KEY on /v1 routes (default: env KVASM_API_KEY)
  --parallel N        sequences generated at once, batched together (default 8)
  --model-id NAME     name clients pass as "model" (default: the file's general.name)
  --max-pending N     requests admitted at once; more get 429 (default 64)
  --max-body BYTES    largest request body (default 1048576)
  --kv-cache TYPE     f32 (default), f16, q8_0 or u8_asym
  --ggml-order        llama.cpp's CPU arithmetic bit for bit (F16 cache, matmuls in ggml's order; slower)
  --attention-top-k K sparse top-k attention: each row's softmax over its K best scores (long contexts; 0 = dense)
`;

function last(f: Flags, key: string): string | undefined {
  const v = f.get(key);
  return v?.[v.length - 1];
}

function int(f: Flags, key: string): number | undefined {
  const v = last(f, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new ParamError(`--${key}`, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

export async function cmdServe(f: Flags, io: Io): Promise<void> {
  const modelPath = last(f, "model"); // none: the model bundled with kvasm
  const kvCacheType = kvCacheFlag(last(f, "kv-cache"), f.has("ggml-order") ? "f16" : "f32");
  const model = await loadModel(modelPath, {
    tokenizer: last(f, "tokenizer"),
    contextLength: int(f, "context"),
    maxSequences: int(f, "parallel") ?? 8,
    threads: int(f, "threads"),
    kvCacheType,
    ggmlOrder: f.has("ggml-order"),
    onProgress: loadProgress(modelPath, io.err, io.errIsTTY ?? false),
    attention: { topK: int(f, "attention-top-k") },
  });
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  const handler = createHandler(model, {
    apiKey: last(f, "api-key") ?? env.KVASM_API_KEY,
    modelId: last(f, "model-id"),
    maxPending: int(f, "max-pending"),
    maxBodyBytes: int(f, "max-body"),
  });
  const server = await serve(handler.fetch, { host: last(f, "host") ?? DEFAULT_HOST, port: int(f, "port") ?? DEFAULT_PORT });
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
