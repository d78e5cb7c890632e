#!/usr/bin/env -S deno run -A
/**
 * kvasm's command line: `generate`, `chat`, `serve`, `quantize`. Runs unchanged under `deno run -A src/cli.ts`,
 * `bun src/cli.ts` and Node (the bundle): generated text goes to stdout as it is produced, everything else to
 * stderr. Each command declares its flags in a CommandSpec; src/cli/flags.ts parses them all the same way.
 */
import { KvasmError } from "./errors.ts";
import { closest, commandHelp, type CommandSpec, type Flags, parseFlags } from "./cli/flags.ts";
import { defaultInteractiveIo, defaultIo, type InteractiveIo, type Io } from "./cli/io.ts";
import { cmdGenerate, GENERATE_COMMAND } from "./engine/cli-generate.ts";
import { CHAT_COMMAND, cmdChat } from "./cli/chat.ts";
import { cmdServe, SERVE_COMMAND } from "./server/cli-serve.ts";
import { cmdQuantize, QUANTIZE_COMMAND } from "./quant/cli-quantize.ts";
import { VERSION } from "./version.ts";

export type { InteractiveIo, Io } from "./cli/io.ts";

interface Command {
  spec: CommandSpec;
  run(f: Flags, io: Io): Promise<void>;
}

export const COMMANDS: Record<string, Command> = {
  generate: { spec: GENERATE_COMMAND, run: cmdGenerate },
  chat: { spec: CHAT_COMMAND, run: async (f, io) => cmdChat(f, await interactive(io)) },
  serve: { spec: SERVE_COMMAND, run: cmdServe },
  quantize: { spec: QUANTIZE_COMMAND, run: cmdQuantize },
};

function usage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length)) + 3;
  return `kvasm ${VERSION}: LLM inference on WebAssembly SIMD for Deno, Bun and Node

usage: kvasm COMMAND [flags]

commands:
${names.map((n) => `  ${n.padEnd(width)}${COMMANDS[n].spec.summary}`).join("\n")}

  kvasm COMMAND --help    the command's flags
  kvasm --version         the version

examples:
  kvasm generate --prompt "Once upon a time" --max-tokens 64     the model bundled with kvasm (stories260K)
  kvasm generate --model path/to/model.gguf --prompt "Hello"      a GGUF, llama2.c .bin (+ --tokenizer) or HF directory
  kvasm chat                                                      talk with the bundled model
  kvasm serve --port 8080                                         the OpenAI-compatible API on it
`;
}

/** The command `name` names, or undefined (own keys only: argv may say "constructor" or "toString"). */
function commandNamed(name: string | undefined): Command | undefined {
  return name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
}

/** Runs the CLI with `args`; returns the exit code (0 done, 1 a typed error, 2 no or unknown command). */
export async function main(args: string[], io: Io = defaultIo()): Promise<number> {
  const [cmd, ...rest] = args;
  if (cmd === "--version" || cmd === "-v" || cmd === "version") {
    io.out(`kvasm ${VERSION}\n`);
    return 0;
  }
  if (cmd === undefined) {
    io.err(usage());
    return 2;
  }
  if (cmd === "help" || cmd === "--help" || cmd === "-h") {
    const topic = commandNamed(rest[0]);
    io.out(topic ? commandHelp(topic.spec) : usage());
    return 0;
  }
  const command = commandNamed(cmd);
  if (!command) {
    const near = closest(cmd, Object.keys(COMMANDS));
    io.err(`kvasm: unknown command ${JSON.stringify(cmd)}${near ? `; did you mean ${near}?` : ""}\n\n${usage()}`);
    return 2;
  }
  // --help wins over anything else on the line, even flags that do not parse
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(commandHelp(command.spec));
    return 0;
  }
  try {
    await command.run(parseFlags(command.spec, rest), io);
    return 0;
  } catch (e) {
    if (e instanceof KvasmError) {
      io.err(`kvasm: ${e.name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** `io` when it can read lines (tests pass their own), else stdin and SIGINT with io's output. */
async function interactive(io: Io): Promise<InteractiveIo> {
  if ("lines" in io) return io as InteractiveIo;
  const std = await defaultInteractiveIo();
  return { ...std, out: io.out, err: io.err, errIsTTY: io.errIsTTY };
}

function argv(): string[] {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  return g.Deno ? g.Deno.args : g.process.argv.slice(2);
}

/** Deno and Bun set import.meta.main; Node (running the bundle) does not, so compare the entry script's URL. */
async function isEntryPoint(): Promise<boolean> {
  if (import.meta.main !== undefined) return import.meta.main;
  // deno-lint-ignore no-explicit-any
  const entry = (globalThis as any).process?.argv?.[1];
  if (!entry) return false;
  const { pathToFileURL } = await import("node:url");
  const { realpathSync } = await import("node:fs");
  return pathToFileURL(realpathSync(entry)).href === import.meta.url;
}

if (await isEntryPoint()) {
  const code = await main(argv());
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (g.Deno) g.Deno.exit(code);
  else g.process.exit(code);
}
