/**
 * One line per request (`POST /v1/completions 200 5+64 tokens 412 ms`: prompt + completion tokens): what `kvasm serve` writes to stderr
 * unless --quiet, and what HandlerOptions.log receives. A streamed answer is logged when its stream ends,
 * so its time is the whole answer's and its tokens are the final count.
 */
export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  /** Prompt and completion tokens; undefined for requests that generated nothing. */
  promptTokens?: number;
  completionTokens?: number;
  ms: number;
  /** A stream that ended early: its client went away or the server shut down (the line ends "(cancelled)"). */
  cancelled?: boolean;
}

export type RequestLogger = (line: string, entry: RequestLogEntry) => void;

export function formatLogLine(e: RequestLogEntry): string {
  return `${e.method} ${e.path} ${e.status}${e.promptTokens !== undefined ? ` ${e.promptTokens}+${e.completionTokens} tokens` : ""} ${
    e.ms.toFixed(0)
  } ms${e.cancelled ? " (cancelled)" : ""}`;
}
