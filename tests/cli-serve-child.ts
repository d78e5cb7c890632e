/**
 * The child of tests/cli.test.ts's busy-port test: `kvasm serve` through main(), in this process, on a port another
 * server holds; prints main's exit code and stderr as JSON and then returns without exiting, so the process ends only
 * where serve's failure closed the model's worker pool and the handler's engine.
 *
 *   deno run -A tests/cli-serve-child.ts        bun tests/cli-serve-child.ts
 */
import { main } from "../src/cli.ts";
import { serve } from "../src/server/serve.ts";

const busy = await serve(() => new Response("busy"), { port: 0 });
let err = "";
try {
  const code = await main(["serve", "--port", String(busy.port), "--threads", "2"], {
    out: () => {},
    err: (s) => err += s,
    errIsTTY: false,
  });
  console.log(JSON.stringify({ code, err }));
} finally {
  await busy.close();
}
