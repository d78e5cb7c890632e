/**
 * Loopback load run of the OpenAI-compatible server: N clients, each issuing
 * streaming completions back to back until `requests` are done (or `seconds`
 * pass). Reports requests/s, tokens/s, time to first token and inter-token
 * latency percentiles.
 *
 *   deno run -A bench/serve.ts [--model PATH] [--clients 8] [--requests 64] [--max-tokens 64] [--seconds 120] [--parallel 8] [--help]
 *
 * Without --model it uses bench/synthetic.ts's random-weight model of the
 * stories110M shape: the speed depends on the shape, not on the weights' values.
 */
import { loadModel } from "../src/model/load.ts";
import { createHandler } from "../src/server/handler.ts";
import { serve } from "../src/server/serve.ts";
import { ensureSyntheticModel } from "./synthetic.ts";
import { benchArgs, floatFlag, intFlag } from "./cli.ts";

const USAGE = `Loopback load run of the OpenAI-compatible server: streaming completions from N clients; requests/s, tokens/s,
time to first token and inter-token latency percentiles.

  deno run -A bench/serve.ts [options]        bun bench/serve.ts [options]

  --model PATH       a model (default: bench/synthetic.ts's random-weight stories110M shape)
  --clients N        clients issuing requests back to back (default 8)
  --requests N       requests in all (default 64)
  --max-tokens N     tokens per completion (default 64)
  --seconds S        stop issuing after S seconds (default 120)
  --parallel N       sequences the model serves at once (default 8)
  -h, --help         this text`;
const { values: opts } = benchArgs(USAGE, {
  options: {
    model: { type: "string" },
    clients: { type: "string", default: "8" },
    requests: { type: "string", default: "64" },
    "max-tokens": { type: "string", default: "64" },
    seconds: { type: "string", default: "120" },
    parallel: { type: "string", default: "8" },
    help: { type: "boolean", short: "h" },
  },
});
const modelArg = opts.model;
const clients = intFlag(USAGE, "clients", opts.clients), requests = intFlag(USAGE, "requests", opts.requests);
const maxTokens = intFlag(USAGE, "max-tokens", opts["max-tokens"]), seconds = floatFlag(USAGE, "seconds", opts.seconds);
const parallel = intFlag(USAGE, "parallel", opts.parallel);

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const model = await loadModel(modelArg ?? await ensureSyntheticModel("stories110M"), {
  maxSequences: parallel,
  contextLength: 512,
});
const handler = createHandler(model, { modelId: "bench" });
const server = await serve(handler.fetch, { port: 0 });
const prompts = ["Once upon a time", "The little dog", "One day, a girl named Lily", "In a big forest"];
const ttft: number[] = [], itl: number[] = [];
let done = 0, tokens = 0, issued = 0;
const deadline = performance.now() + seconds * 1000;
const t0 = performance.now();

async function client(c: number): Promise<void> {
  while (issued < requests && performance.now() < deadline) {
    const i = issued++;
    const start = performance.now();
    const r = await fetch(`${server.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      // ignore_eos is not an OpenAI field: random weights may end early, so ban EOS (id 2) to keep lengths fixed
      body: JSON.stringify({
        prompt: prompts[(c + i) % prompts.length],
        max_tokens: maxTokens,
        stream: true,
        seed: i,
        logit_bias: { "2": -100 },
      }),
    });
    const reader = r.body!.getReader();
    const dec = new TextDecoder();
    let last = 0, buf = "";
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += dec.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, at);
        buf = buf.slice(at + 2);
        if (!line.startsWith("data: {")) continue;
        const chunk = JSON.parse(line.slice(6));
        if (!chunk.choices?.[0]?.text) continue;
        const now = performance.now();
        if (last === 0) ttft.push(now - start);
        else itl.push(now - last);
        last = now;
        tokens++;
      }
    }
    done++;
  }
}

await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
const wall = (performance.now() - t0) / 1000;
await server.close();
await handler.close();
await model.close();
const f = (x: number) => x.toFixed(1);
console.log(
  `model ${modelArg ?? "stories110M shape (random f32 weights)"} | ${clients} clients | ${done} requests x ${maxTokens} tokens in ${
    wall.toFixed(1)
  } s`,
);
console.log(`throughput: ${(done / wall).toFixed(2)} req/s, ${(tokens / wall).toFixed(1)} streamed chunks/s`);
console.log(`time to first token ms: p50 ${f(pct(ttft, 50))} p90 ${f(pct(ttft, 90))} p99 ${f(pct(ttft, 99))}`);
console.log(`inter-token latency ms: p50 ${f(pct(itl, 50))} p90 ${f(pct(itl, 90))} p99 ${f(pct(itl, 99))}`);
