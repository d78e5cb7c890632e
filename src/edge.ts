/**
 * kvasm as an edge function: a module exporting `{ fetch }` for Deno Deploy,
 * Supabase Edge Functions and Workers-style hosts. Everything runs on the
 * calling isolate's one thread (no Worker, no SharedArrayBuffer needed) and
 * nothing touches a file system: the model comes as bytes, or from a URL read
 * front to back into the arena (StreamSource), so it is never in memory twice.
 *
 *   import { createEdgeHandler } from "kvasm/edge";
 *   export default createEdgeHandler({ model: "https://example.com/stories260K.gguf" });
 *
 * The default export reads the model URL from the KVASM_MODEL_URL environment
 * variable (and the API key from KVASM_API_KEY) on the first request.
 * The model loads once per isolate, on the first request; later requests reuse it.
 */
import { LOAD_OPTION_NAMES, loadModel, type LoadOptions } from "./model/load.ts";
import type { Model } from "./model/model.ts";
import { createHandler, HANDLER_OPTION_NAMES, type HandlerOptions, type KvasmHandler } from "./server/handler.ts";
import { checkOptionNames, optionNames } from "./errors.ts";
import { HttpError } from "./server/http-error.ts";

export interface EdgeOptions extends HandlerOptions {
  /** The model: its bytes, a URL (string or URL), or a fetch Response of it. */
  model: Uint8Array | string | URL | Response | (() => Promise<Uint8Array | string | URL | Response>);
  /** Passed to loadModel (contextLength, maxSequences, ...). Defaults: maxSequences 4, threads 1 (no Worker). */
  load?: LoadOptions;
}

/** EdgeOptions' names: createEdgeHandler refuses any other key, before any request (a load fails only on the first). */
const EDGE_OPTION_NAMES = optionNames<EdgeOptions>()([...HANDLER_OPTION_NAMES, "model", "load"]);

export interface EdgeHandler {
  fetch(req: Request): Promise<Response>;
  /** Loads the model now instead of on the first request. */
  ready(): Promise<KvasmHandler>;
}

export function createEdgeHandler(opts: EdgeOptions): EdgeHandler {
  checkOptionNames("createEdgeHandler", opts, EDGE_OPTION_NAMES);
  checkOptionNames("load", opts.load, LOAD_OPTION_NAMES);
  // createHandler takes the handler's options only (it refuses model and load as unknown)
  const { model: _model, load: _load, ...handlerOpts } = opts;
  let loading: Promise<KvasmHandler> | null = null;
  const ready = () => {
    loading ??= (async () => {
      const input = typeof opts.model === "function" ? await opts.model() : opts.model;
      const model = await loadFrom(input, { maxSequences: 4, threads: 1, ...opts.load });
      return createHandler(model, handlerOpts);
    })();
    // a failed load is retried by the next request rather than cached forever
    loading.catch(() => (loading = null));
    return loading;
  };
  return {
    ready,
    async fetch(req: Request): Promise<Response> {
      let handler: KvasmHandler;
      try {
        handler = await ready();
      } catch (e) {
        return new HttpError(503, `model failed to load: ${(e as Error).message}`, "server_error", null, "model_unavailable").response();
      }
      return handler.fetch(req);
    },
  };
}

async function loadFrom(input: Uint8Array | string | URL | Response, load: LoadOptions): Promise<Model> {
  // no file system here: a string is a URL (loadModel would take a plain one for a path)
  return await loadModel(typeof input === "string" ? new URL(input) : input, load);
}

function env(name: string): string | undefined {
  const g = globalThis as { Deno?: { env: { get(k: string): string | undefined } }; process?: { env: Record<string, string | undefined> } };
  try {
    return g.Deno?.env.get(name) ?? g.process?.env[name];
  } catch {
    return undefined; // no permission to read the environment
  }
}

let fromEnv: EdgeHandler | null = null;

/** `{ fetch }` configured from KVASM_MODEL_URL / KVASM_API_KEY. */
const fromEnvironment: { fetch(req: Request): Promise<Response> } = {
  fetch(req: Request): Promise<Response> {
    if (!fromEnv) {
      const url = env("KVASM_MODEL_URL");
      if (!url) {
        return Promise.resolve(new HttpError(503, "KVASM_MODEL_URL is not set", "server_error", null, "model_unavailable").response());
      }
      fromEnv = createEdgeHandler({ model: url, apiKey: env("KVASM_API_KEY") });
    }
    return fromEnv.fetch(req);
  },
};
export default fromEnvironment;
