// src/cli/ owns the command line's parts: one node:util parseArgs flag table per command (flags.ts), the model flags
// every command shares (model-flags.ts), and `kvasm chat`. src/cli.ts dispatches to them.
/**
 * `kvasm chat`: a conversation in the terminal. Each line on stdin is a user turn; the whole conversation is
 * rendered through the model's chat template (ChatML when the file has none), exactly as the server's chat
 * route renders it, and the reply streams to stdout. The engine's prefix cache keeps the earlier turns' KV
 * pages, so a turn computes only what is new. Ctrl-C stops a reply; a second Ctrl-C exits. `/reset` forgets
 * the conversation. Piped stdin works the same (one turn per line).
 */
import { Engine } from "../engine/engine.ts";
import { KvasmError } from "../errors.ts";
import type { Model } from "../model/model.ts";
import type { SamplingParams } from "../sampling/params.ts";
import { CHATML_STOPS, ChatTemplate } from "../server/chat-template.ts";
import { chatPromptIds } from "../server/chat-prompt.ts";
import type { ChatMessage } from "../server/openai-request.ts";
import type { CommandSpec, Flags } from "./flags.ts";
import type { InteractiveIo } from "./io.ts";
import { BACKEND_FLAG, loadFromFlags, loadOptions, MODEL_FLAGS, SAMPLING_FLAGS, samplingFromFlags } from "./model-flags.ts";

export const CHAT_COMMAND: CommandSpec = {
  name: "chat",
  summary: "Talk with a model: each line you type is a turn, the reply streams back.",
  usage: "kvasm chat [--model PATH|URL] [--system TEXT] [--temperature T] [--max-tokens N] [...]",
  flags: [
    ...MODEL_FLAGS,
    BACKEND_FLAG,
    { name: "system", kind: "string", value: "TEXT", help: "system message that opens the conversation" },
    ...SAMPLING_FLAGS,
  ],
  notes: `In the conversation: /reset forgets it (the system message stays), /exit or end of input leaves.
Ctrl-C stops a reply; a second Ctrl-C exits. After each reply, stderr gets its prompt and reply token counts.`,
};

export async function cmdChat(f: Flags, io: InteractiveIo): Promise<void> {
  const opts = loadOptions(f, io);
  const sampling = samplingFromFlags(f);
  const maxTokens = f.number("max-tokens") ?? 256;
  const system = f.string("system");
  let model: Model;
  try {
    model = await loadFromFlags(f, io, opts);
  } catch (e) {
    io.close(); // stdin is open already: a failed load must not leave it holding the process
    throw e;
  }
  let engine: Engine, template: ChatTemplate;
  try {
    // the template first: a file whose template fails to parse must not leave an engine (and its pages) behind
    template = ChatTemplate.forModel(model);
    engine = new Engine(model);
  } catch (e) {
    io.close();
    await model.close();
    throw e;
  }
  const stop = template.isFallback ? [...CHATML_STOPS] : undefined;
  const fresh = (): ChatMessage[] => (system !== undefined ? [{ role: "system", content: system }] : []);
  let messages = fresh();
  let replying: AbortController | null = null;
  let interrupts = 0;
  const removeInterrupt = io.onInterrupt(() => {
    interrupts++;
    if (replying) replying.abort();
    else if (interrupts >= 2) io.close();
    else io.err("\n(Ctrl-C again to exit)\n");
  });
  const prompt = () => io.inIsTTY && io.err("> ");
  try {
    if (io.inIsTTY) {
      io.err(
        `kvasm chat: ${model.file.source.name}${
          template.isFallback ? " (no chat template in the file: ChatML)" : ""
        }; /reset, /exit, Ctrl-C\n`,
      );
    }
    prompt();
    for await (const line of io.lines()) {
      interrupts = 0;
      const text = line.trim();
      if (text === "/exit" || text === "/quit") break;
      if (text === "/reset") {
        messages = fresh();
        io.err("(conversation reset)\n");
      } else if (text !== "") {
        replying = new AbortController();
        const reply = await turn(
          model,
          engine,
          template,
          [...messages, { role: "user", content: text }],
          { ...sampling, maxTokens, stop },
          replying.signal,
          io,
        );
        replying = null;
        // a reply cut off by Ctrl-C stays in the conversation as far as it went
        if (reply !== null) messages = [...messages, { role: "user", content: text }, { role: "assistant", content: reply }];
        if (interrupts >= 2) break;
      }
      prompt();
    }
  } finally {
    removeInterrupt();
    io.close();
    await engine.close();
    await model.close();
  }
}

/** One reply, streamed; its text, or null when the turn failed (a prompt past the context: the turn is dropped). */
async function turn(
  model: Model,
  engine: Engine,
  template: ChatTemplate,
  messages: ChatMessage[],
  params: SamplingParams & { maxTokens: number; stop?: string[] },
  signal: AbortSignal,
  io: InteractiveIo,
): Promise<string | null> {
  const t0 = performance.now();
  try {
    const ids = chatPromptIds(model, template, messages);
    const req = engine.submit({ ...params, prompt: ids, signal });
    for await (const ev of req) io.out(ev.text);
    const res = await req.done;
    const c = res.choices[0];
    io.out("\n");
    const s = (performance.now() - t0) / 1000;
    io.err(
      `[prompt ${res.usage.promptTokens} tokens (${res.usage.cachedTokens} cached), reply ${c.tokens.length} tokens, ${
        (c.tokens.length / s).toFixed(1)
      } tok/s, ${c.finishReason}]\n`,
    );
    return c.text;
  } catch (e) {
    if (!(e instanceof KvasmError)) throw e;
    io.out("\n");
    io.err(`kvasm: ${e.name}: ${e.message}${e.code === "context" ? " (/reset starts over)" : ""}\n`);
    return null;
  }
}
