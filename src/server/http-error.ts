/**
 * An error the server answers with: an HTTP status plus OpenAI's error body
 * (`{ error: { message, type, param, code } }`), so OpenAI clients raise
 * their usual exception classes with a message that names the problem.
 */
import { KvasmError } from "../errors.ts";

export type OpenAIErrorType = "invalid_request_error" | "authentication_error" | "rate_limit_error" | "not_found_error" | "server_error";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: OpenAIErrorType = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  response(): Response {
    return jsonResponse(this.body(), this.status, this.headers);
  }
}

/** A request field is missing or wrong: 400 naming the field. */
export function badParam(param: string, problem: string): HttpError {
  return new HttpError(400, `${param}: ${problem}`, "invalid_request_error", param, "invalid_value");
}

/**
 * Any thrown value as an HttpError. kvasm's own errors map by code (a bad
 * sampling option or a prompt past the context is the caller's fault: 400);
 * anything else is a 500 whose message is kept but whose stack is not sent.
 */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof KvasmError) {
    const param = (e as { param?: string }).param ?? null;
    switch (e.code) {
      case "params": {
        const name = openAIName(param);
        const message = param !== null && name !== param && e.message.startsWith(`${param}:`)
          ? name + e.message.slice(param.length)
          : e.message;
        return new HttpError(400, message, "invalid_request_error", name, "invalid_value");
      }
      case "context":
        return new HttpError(400, e.message, "invalid_request_error", null, "context_length_exceeded");
      case "memory":
        return new HttpError(503, e.message, "server_error", null, "out_of_memory", { "Retry-After": "1" });
      case "aborted":
        return new HttpError(499, e.message, "invalid_request_error", null, "cancelled");
      // the model failed (NaN logits, a chat template past its budget): the server's fault, never the client's
      case "numerical":
      case "format":
        return new HttpError(500, `model error: ${e.message}`, "server_error", null, "model_error");
    }
  }
  return new HttpError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, "server_error", null, "internal_error");
}

/** kvasm's camelCase option names back to the request field the client sent. */
const OPENAI_NAMES: Record<string, string> = {
  maxTokens: "max_tokens",
  topK: "top_k",
  topP: "top_p",
  minP: "min_p",
  presencePenalty: "presence_penalty",
  frequencyPenalty: "frequency_penalty",
  repeatPenalty: "repeat_penalty",
  logitBias: "logit_bias",
  logprobs: "top_logprobs",
};

function openAIName(param: string | null): string | null {
  return param === null ? null : Object.hasOwn(OPENAI_NAMES, param) ? OPENAI_NAMES[param] : param;
}

export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}
