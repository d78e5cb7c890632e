/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk and
 * a final `data: [DONE]\n\n`. The body is pulled by the client: a slow reader
 * slows generation down instead of buffering it, and a reader that goes away
 * (the stream is cancelled) calls `onCancel`, which aborts the generation.
 */
export function sseResponse(
  chunks: AsyncIterable<unknown>,
  onCancel: () => void,
  headers: Record<string, string> = {},
): Response {
  const enc = new TextEncoder();
  const it = chunks[Symbol.asyncIterator]();
  let finished = false;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const r = await it.next();
        if (r.done) {
          finished = true;
          controller.enqueue(enc.encode("data: [DONE]\n\n"));
          controller.close();
        } else controller.enqueue(enc.encode(`data: ${JSON.stringify(r.value)}\n\n`));
      } catch (e) {
        // headers are gone already: report the failure in-band, as OpenAI does, then end the stream
        finished = true;
        controller.enqueue(enc.encode(`data: ${JSON.stringify(errorChunk(e))}\n\n`));
        controller.close();
      }
    },
    cancel() {
      if (!finished) onCancel();
      finished = true;
      void it.return?.();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "x-accel-buffering": "no", ...headers },
  });
}

function errorChunk(e: unknown) {
  const err = e as { body?: () => unknown; message?: string };
  if (typeof err?.body === "function") return err.body();
  return { error: { message: err?.message ?? String(e), type: "server_error", param: null, code: "internal_error" } };
}
