// src/io/ owns where a model comes from: paths, URLs, Responses, streams and bytes as a ByteSource, the bundled default
// model, and load progress.
/**
 * The command line's load progress on stderr: a line that updates in place
 * (only on a terminal, only for loads past a second), and for a model that is
 * a URL, first a line saying what is downloaded, so a slow start is explained.
 */
import { fmtBytes } from "../memory/arena.ts";

export function loadProgress(
  model: string | undefined,
  err: (s: string) => void,
  isTTY: boolean,
): (loadedBytes: number, totalBytes: number) => void {
  const download = model !== undefined && /^https?:\/\//i.test(model);
  if (download) err(`downloading ${model}\n`);
  const t0 = performance.now();
  let lastShown = 0;
  return (done, total) => {
    const now = performance.now();
    if (isTTY && now - t0 > 1000 && (now - lastShown > 100 || done === total)) {
      lastShown = now;
      const verb = download ? "downloading" : "loading";
      err(`\r${verb} ${fmtBytes(done)} / ${fmtBytes(total)} (${((100 * done) / total).toFixed(0)}%)${done === total ? "\n" : ""}`);
    }
  };
}
