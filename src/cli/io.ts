/**
 * Where the CLI writes and reads: stdout for generated text, stderr for everything else, stdin lines for
 * `kvasm chat`, and Ctrl-C. One interface so tests pass their own, and one implementation per runtime family
 * (Deno's own API; Node's process object, which Bun provides too).
 */
// deno-lint-ignore no-explicit-any
const g = globalThis as any;

export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** Whether stderr is a terminal (progress lines are drawn only there). */
  errIsTTY: boolean;
}

/** What an interactive command needs beyond Io. */
export interface InteractiveIo extends Io {
  /** Whether stdin is a terminal (a prompt marker is shown only there). */
  inIsTTY: boolean;
  /** Lines of stdin, without their line ends, until it closes or `close()` is called. */
  lines(): AsyncIterable<string>;
  /** Calls `fn` on each Ctrl-C (SIGINT) instead of exiting; returns a function that removes it. */
  onInterrupt(fn: () => void): () => void;
  /** Stops `lines()`. */
  close(): void;
}

/**
 * The process's stdout and stderr. A reader that goes away (`kvasm generate ... | head`) ends the process with
 * exit code 0, as the pipe's other commands end: Deno threw BrokenPipe with a stack trace, and Node and Bun kept
 * generating into the closed pipe until --max-tokens.
 */
export function defaultIo(): Io {
  const enc = new TextEncoder();
  if (g.Deno) {
    const writeAll = (f: { writeSync(b: Uint8Array): number }, s: string) => {
      let b = enc.encode(s);
      try {
        while (b.length > 0) b = b.subarray(f.writeSync(b));
      } catch (e) {
        if (e instanceof g.Deno.errors.BrokenPipe) g.Deno.exit(0);
        throw e;
      }
    };
    return { out: (s) => writeAll(g.Deno.stdout, s), err: (s) => writeAll(g.Deno.stderr, s), errIsTTY: g.Deno.stderr.isTerminal() };
  }
  // a failed write marks the stream `errored` at once, while its 'error' event waits for a turn of the event loop that
  // a generation running on resolved promises may not give until it ends: so each write checks
  // deno-lint-ignore no-explicit-any
  const write = (stream: any, s: string) => {
    stream.write(s);
    if (stream.errored?.code === "EPIPE") g.process.exit(0);
  };
  for (const stream of [g.process.stdout, g.process.stderr]) {
    if (stream.listenerCount("error") === 0) {
      stream.on("error", (e: { code?: string }) => {
        if (e.code === "EPIPE") g.process.exit(0);
        throw e;
      });
    }
  }
  return { out: (s) => write(g.process.stdout, s), err: (s) => write(g.process.stderr, s), errIsTTY: Boolean(g.process.stderr.isTTY) };
}

/** The process's own stdin and SIGINT, through node:readline (Deno, Bun and Node all provide it). */
export async function defaultInteractiveIo(): Promise<InteractiveIo> {
  const readline = await import("node:readline");
  const proc = (await import("node:process")).default;
  // terminal: false keeps the terminal in cooked mode, so Ctrl-C reaches us as SIGINT rather than as a key
  const rl = readline.createInterface({ input: proc.stdin, terminal: false });
  // the iterator buffers lines from its creation on: made now, it keeps those piped in while the model loads
  const lines = rl[Symbol.asyncIterator]();
  const inIsTTY = g.Deno ? g.Deno.stdin.isTerminal() : Boolean(proc.stdin.isTTY);
  return {
    ...defaultIo(),
    inIsTTY,
    lines: () => ({ [Symbol.asyncIterator]: () => lines }),
    close: () => rl.close(),
    onInterrupt(fn) {
      if (g.Deno) {
        g.Deno.addSignalListener("SIGINT", fn);
        return () => g.Deno.removeSignalListener("SIGINT", fn);
      }
      proc.on("SIGINT", fn);
      return () => void proc.off("SIGINT", fn);
    },
  };
}
